"""Seconds and peak memory of every goodness-of-fit method against n, and of the default against d
(issue 26 item 5).

Each run is one test in its own process (``--one METHOD N D``): the data are n draws of
N(0, 1.02² I_d) tested against the model N(0, I_d) through ``steinkit.gof_test``; the child prints
one JSON line with the wall seconds of the test, the peak resident memory of the process
(``resource.getrusage``) and the resident memory once the data were made, and the outcome: the
p-value, ``refused`` when the cost guard declined in one line (quadratic methods above their time
or memory limit), or the one-line error. The driver stops a child at ``--limit`` seconds
(``timeout``), and once a method times out or is refused it does not try it at a larger n
(``skipped``). Results go to a JSON-lines store (``--store``), one line per (method, n, d,
limit, threads): a rerun resumes where it stopped and never repeats a finished run.

Outputs: ``docs/figures/scaling.png`` (log-log seconds and peak memory against n per method, and
seconds against d for the default method), ``docs/scaling.md`` (the tables), and a JSON summary
printed last.

Usage (from the repository root; one thread per run):

    PYTHONPATH=src python benchmarks/scaling.py                           # the full grid
    PYTHONPATH=src python benchmarks/scaling.py --limit 120 --max-n 1e5 --linear-max-n 1e6
    PYTHONPATH=src python benchmarks/scaling.py --one lsd 1e5 20         # one run, in this process
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["main", "run_one", "LINEAR", "N_GRID", "D_GRID"]

N_GRID = (1_000, 10_000, 100_000, 1_000_000)
D_GRID = (2, 8, 32, 128, 512, 1024)
LINEAR = ("witnesses", "lsd", "lksd", "fssd", "ksdagg-inc")
"""Methods whose cost is linear in n (run up to ``--linear-max-n``; the others up to ``--max-n``)."""
_ROOT = Path(__file__).resolve().parents[1]


def _gb(kib: float) -> float:
    return round(kib / 2**20, 3)  # ru_maxrss is in KiB on Linux


def run_one(method: str, n: int, d: int, threads: int = 1) -> dict:
    """One test of ``method`` on n draws of N(0, 1.02² I_d) against N(0, I_d), in this process."""
    import torch

    import steinkit as sk

    torch.set_num_threads(threads)
    x = torch.randn(n, d, generator=torch.Generator().manual_seed(0)).mul_(1.02)
    data_gb = _gb(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    model = sk.models.Gaussian(torch.zeros(d), torch.eye(d))
    start = time.perf_counter()
    try:
        res = sk.gof_test(model, x, method=method, seed=0)
        outcome = {"status": "ok", "pvalue": res.pvalue}
    except (ValueError, MemoryError, RuntimeError) as exc:
        text = " ".join(str(exc).split())
        refused = isinstance(exc, ValueError) and ("linear-time method" in text or "max_seconds" in text)
        outcome = {"status": "refused" if refused else "error", "message": f"{type(exc).__name__}: {text}"[:300]}
    seconds = time.perf_counter() - start
    return {"method": method, "n": n, "d": d, "threads": threads, "seconds": round(seconds, 2),
            "peak_rss_gb": _gb(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss), "data_rss_gb": data_gb,
            **outcome}


def _child(method: str, n: int, d: int, limit: float, threads: int) -> dict:
    """Run one test in a child process stopped at ``limit`` seconds."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    cmd = [sys.executable, __file__, "--one", method, str(n), str(d), "--threads", str(threads)]
    start = time.perf_counter()
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=limit, env=env, cwd=_ROOT)
    except subprocess.TimeoutExpired:
        return {"method": method, "n": n, "d": d, "threads": threads, "status": "timeout",
                "seconds": round(time.perf_counter() - start, 1)}
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = " ".join(done.stderr.strip().splitlines()[-1:])[:300]
        return {"method": method, "n": n, "d": d, "threads": threads, "status": "error",
                "message": f"exit {done.returncode}: {tail}", "seconds": round(time.perf_counter() - start, 1)}
    return json.loads(lines[-1])


def _key(row: dict, limit: float) -> tuple:
    return row["method"], row["n"], row["d"], limit, row["threads"]


def _load(store: Path) -> dict[tuple, dict]:
    rows = {}
    if store.exists():
        for line in store.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                rows[_key(row, row["limit"])] = row
    return rows


def _runs(methods: list[str], default: str, args: argparse.Namespace) -> list[tuple[str, int, int]]:
    runs = []
    for method in methods:
        top = args.linear_max_n if method in LINEAR else args.max_n
        runs += [(method, n, args.d) for n in N_GRID if n <= top]
    runs += [(default, args.d_n, d) for d in D_GRID if d != args.d or args.d_n not in N_GRID]
    return runs


def _report(rows: list[dict], methods: list[str], default: str, args: argparse.Namespace) -> dict:
    """The figure, the markdown page and the summary."""
    from steinkit._io import markdown_table, pyplot

    by_n = [r for r in rows if r["d"] == args.d]
    by_d = sorted((r for r in rows if r["method"] == default and r["n"] == args.d_n), key=lambda r: r["d"])
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for method in methods:
        ok = sorted((r for r in by_n if r["method"] == method and r["status"] == "ok"), key=lambda r: r["n"])
        if ok:
            line, = axes[0].plot([r["n"] for r in ok], [r["seconds"] for r in ok], "o-", label=method)
            axes[1].plot([r["n"] for r in ok], [r["peak_rss_gb"] for r in ok], "o-", label=method)
            stopped = [r["n"] for r in by_n if r["method"] == method and r["status"] in ("timeout", "refused")]
            axes[0].plot(stopped, [args.limit] * len(stopped), "x", color=line.get_color(), ms=9)
    ok_d = [r for r in by_d if r["status"] == "ok"]
    axes[2].plot([r["d"] for r in ok_d], [r["seconds"] for r in ok_d], "o-", color="k", label=default)
    for ax, (xl, yl) in zip(axes, [("n", "seconds"), ("n", "peak RSS (GB)"), ("d", "seconds")]):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(xl)
        ax.set_ylabel(yl)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_title(f"one test, d = {args.d} (x: stopped at {args.limit:g} s or refused)")
    axes[1].set_title("peak resident memory of the process")
    axes[2].set_title(f"default method ({default}), n = {args.d_n}")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    figure = Path(args.figure)
    figure.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(figure, dpi=110)

    def cell(r: dict | None) -> str:
        if r is None:
            return "–"
        if r["status"] == "ok":
            return f"{r['seconds']:.3g} s, {r['peak_rss_gb']:.2g} GB"
        if r["status"] == "timeout":
            return f"> {args.limit:g} s (stopped)"
        return r["status"]

    ns = sorted({r["n"] for r in by_n})
    table = [[m] + [cell(next((r for r in by_n if r["method"] == m and r["n"] == n), None)) for n in ns]
             for m in methods]
    d_table = [[r["d"], cell(r)] for r in by_d]
    page = [
        "# Scaling: seconds and peak memory of one test",
        "",
        f"Data: n draws of N(0, 1.02² I_d) against N(0, I_d); one test per process, {args.threads} thread(s), "
        f"stopped at {args.limit:g} s; `refused` is the cost guard's one-line refusal (quadratic methods above "
        "their predicted time or memory limit); `skipped`: not tried after a timeout or refusal at a smaller n; "
        "`–`: not in this run's grid. "
        "Peak memory is the process's peak resident set (Python, torch and the data included).",
        "",
        f"{args.note}",
        "",
        f"Made by `PYTHONPATH=src python benchmarks/scaling.py --limit {args.limit:g} --max-n {args.max_n:g} "
        f"--linear-max-n {args.linear_max_n:g}`. Figure: `{args.figure}`.",
        "",
        f"## Against n (d = {args.d})",
        "",
        markdown_table(["method"] + [f"n = {n:,}" for n in ns], table),
        f"## The default method ({default}) against d (n = {args.d_n:,})",
        "",
        markdown_table(["d", "result"], d_table),
    ]
    Path(args.page).parent.mkdir(parents=True, exist_ok=True)
    Path(args.page).write_text("\n".join(page))
    return {"benchmark": "scaling", "limit_s": args.limit, "threads": args.threads, "d": args.d, "d_n": args.d_n,
            "by_n": {m: {str(r["n"]): (r["seconds"] if r["status"] == "ok" else r["status"])
                         for r in by_n if r["method"] == m} for m in methods},
            "peak_rss_gb": {m: {str(r["n"]): r["peak_rss_gb"] for r in by_n if r["method"] == m and r["status"] == "ok"}
                            for m in methods},
            "by_d": {str(r["d"]): (r["seconds"] if r["status"] == "ok" else r["status"]) for r in by_d},
            "figure": args.figure, "page": args.page}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--one", nargs=3, metavar=("METHOD", "N", "D"), help="run one test here and print its JSON line")
    ap.add_argument("--limit", type=float, default=600.0, help="seconds before a run is stopped")
    ap.add_argument("--max-n", type=float, default=1e6, help="largest n for the quadratic-cost methods")
    ap.add_argument("--linear-max-n", type=float, default=1e6, help="largest n for the linear-cost methods")
    ap.add_argument("--d", type=int, default=20, help="dimension of the n sweep")
    ap.add_argument("--d-n", type=int, default=10_000, help="n of the d sweep")
    ap.add_argument("--methods", default=None, help="comma-separated methods (default: every registered one)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--store", default="out/scaling.jsonl")
    ap.add_argument("--figure", default="docs/figures/scaling.png")
    ap.add_argument("--page", default="docs/scaling.md")
    ap.add_argument("--note", default="Measured on a shared 2-core machine under CPU contention from other jobs: "
                                      "the seconds are wall times and read as orders of magnitude.")
    args = ap.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one[0], int(float(args.one[1])), int(args.one[2]), args.threads)))
        return
    from steinkit.gof import get_method, registered

    methods = args.methods.split(",") if args.methods else list(registered())
    default = get_method(None).name
    store = Path(args.store)
    store.parent.mkdir(parents=True, exist_ok=True)
    done = _load(store)
    stopped: dict[tuple[str, int], int] = {}  # (method, d) -> the n where it timed out or was refused
    for method, n, d in _runs(methods, default, args):
        key = (method, n, d, args.limit, args.threads)
        row = done.get(key)
        if row is None:
            if (method, d) in stopped and n > stopped[(method, d)]:
                row = {"method": method, "n": n, "d": d, "threads": args.threads, "status": "skipped"}
            else:
                row = _child(method, n, d, args.limit, args.threads)
            row["limit"] = args.limit
            with store.open("a") as fh:
                fh.write(json.dumps(row) + "\n")
            done[key] = row
            print(json.dumps(row), file=sys.stderr, flush=True)
        if row["status"] in ("timeout", "refused", "skipped") and d == args.d:
            stopped[(method, d)] = min(n, stopped.get((method, d), n))
    rows = [r for k, r in done.items() if k[3] == args.limit and k[4] == args.threads]
    print(json.dumps(_report(rows, methods, default, args)))


if __name__ == "__main__":
    main()

"""Power that grows with n (issue 26 item 6): the RBM benchmark at a perturbation too small for n = 10³.

The problem is Figure 5's (a Gaussian-Bernoulli RBM p with dx = 50 visible and dh = 40 hidden
units, model q_σ: p with B perturbed by N(0, σ²) noise; ``steinkit.experiments.rbm_power.rbm_problem``)
at σ = .005, and at σ = 0 for the size. Repetition r draws its own RBM, perturbation direction and
data. The data are n_max Gibbs chains after 2000 sweeps, sampled once per repetition and cached
(``--cache``, one file per repetition); the test at n uses the first n chains, so the sizes are
nested and sampling, the slow part, is paid once at the largest n.

Every method runs ``sk.gof_test(q_σ, x[:n], method=..., seed=r)`` at α = .05; by default the
default method (the registry's), KSDAggInc (500 + 500 draws, as the paper's benchmark), LKSD and
FSSD. One JSON line per (method, n, σ, repetition) goes to the store (``--store``): a rerun skips
what it holds, so the run can be stopped and resumed, and pieces (``--n``, ``--reps``,
``--first-rep``, ``--methods``) can run apart, in processes sharing the store. A test the cost
guard refuses is stored as ``refused``; any other error as ``error`` (both count as no rejection
in the power, and are reported).

``--report`` writes the table (``docs/power_vs_n.md``) and the figure
(``docs/figures/power_vs_n.png``) from the store and prints a JSON summary last.

Usage (from the repository root; one thread):

    PYTHONPATH=src python benchmarks/power_vs_n.py                        # the full run: 50 reps
    PYTHONPATH=src python benchmarks/power_vs_n.py --n 1000 10000 --reps 10
    PYTHONPATH=src python benchmarks/power_vs_n.py --report
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import time
from pathlib import Path

import torch

__all__ = ["main", "DX", "DH", "SIGMA", "NS"]

DX, DH = 50, 40
SIGMA = 0.005
NS = (1_000, 10_000, 100_000)
ALPHA = 0.05
BURN_IN = 2000
METHOD_OPTIONS = {"ksdagg-inc": {"n_bootstrap": 500, "n_correction": 500}}


def _data(cache: Path, rep: int, n: int, n_max: int) -> torch.Tensor:
    """The first n of repetition rep's n_max cached chains (sampled now if not cached)."""
    from steinkit.experiments.rbm_power import rbm_problem

    have = sorted(cache.glob(f"rbm{DX}x{DH}_rep{rep}_n*.pt"), key=lambda p: int(p.stem.split("_n")[-1]))
    usable = [p for p in have if int(p.stem.split("_n")[-1]) >= n]
    if usable:
        return torch.load(usable[0])[:n]
    cache.mkdir(parents=True, exist_ok=True)
    x = rbm_problem(DX, DH, rep, 0.0, n=max(n, n_max), burn_in=BURN_IN)[2].float()  # x does not depend on σ
    path = cache / f"rbm{DX}x{DH}_rep{rep}_n{x.shape[0]}.pt"
    torch.save(x, path)
    return x[:n]


def _model(rep: int, sigma: float):
    from steinkit.experiments.rbm_power import rbm_problem

    return rbm_problem(DX, DH, rep, sigma, n=2, burn_in=0)[1]  # same p and direction, no sampling


def _run(method: str, model, x: torch.Tensor, rep: int) -> dict:
    import steinkit as sk

    wall, cpu = time.perf_counter(), time.process_time()
    try:
        res = sk.gof_test(model, x, method=method, seed=rep, **METHOD_OPTIONS.get(method, {}))
        out = {"status": "ok", "pvalue": res.pvalue, "reject": bool(res.pvalue < ALPHA)}
    except ValueError as exc:
        text = " ".join(str(exc).split())
        status = "refused" if "linear-time method" in text or "max_seconds" in text else "error"
        out = {"status": status, "reject": False, "message": text[:300]}
    return {**out, "wall_seconds": round(time.perf_counter() - wall, 3),
            "cpu_seconds": round(time.process_time() - cpu, 3)}


def _load(store: Path) -> list[dict]:
    if not store.exists():
        return []
    return [json.loads(line) for line in store.read_text().splitlines() if line.strip()]


def _key(row: dict) -> tuple:
    return row["method"], row["n"], row["sigma"], row["rep"]


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent).stdout.strip()
    except OSError:
        return ""


def run(args: argparse.Namespace) -> None:
    from steinkit.gof import get_method

    methods = args.methods or [get_method(None).name, "ksdagg-inc", "lksd", "fssd"]
    store = Path(args.store)
    store.parent.mkdir(parents=True, exist_ok=True)
    done = {_key(r) for r in _load(store)}
    commit = _commit()
    for n in args.n:
        for rep in range(args.first_rep, args.first_rep + args.reps):
            x = None
            for sigma in args.sigmas:
                model = None
                for method in methods:
                    key = (method, n, sigma, rep)
                    if key in done:
                        continue
                    x = _data(Path(args.cache), rep, n, max(args.n_max, n)) if x is None else x
                    model = _model(rep, sigma) if model is None else model
                    row = {"method": method, "n": n, "sigma": sigma, "rep": rep, **_run(method, model, x, rep),
                           "commit": commit}
                    with store.open("a") as fh:
                        fh.write(json.dumps(row) + "\n")
                    done.add(key)
                    print(json.dumps(row), flush=True)


def _wilson(k: int, m: int) -> tuple[float, float]:
    if m == 0:
        return math.nan, math.nan
    z, p = 1.96, k / m
    centre = (p + z * z / (2 * m)) / (1 + z * z / m)
    half = z * math.sqrt(p * (1 - p) / m + z * z / (4 * m * m)) / (1 + z * z / m)
    return max(0.0, centre - half), min(1.0, centre + half)


def report(args: argparse.Namespace) -> dict:
    from steinkit._io import markdown_table, pyplot

    rows = _load(Path(args.store))
    cells: dict[tuple, list[dict]] = {}
    for r in rows:
        cells.setdefault((r["method"], r["sigma"], r["n"]), []).append(r)
    methods = list(dict.fromkeys(r["method"] for r in rows))  # in the order they ran
    summary, table = {}, []
    for (method, sigma, n), rs in sorted(cells.items()):
        k, m = sum(r["reject"] for r in rs), len(rs)
        lo, hi = _wilson(k, m)
        other = sum(r["status"] != "ok" for r in rs)
        secs = sorted(r["wall_seconds"] for r in rs)[len(rs) // 2]
        cell = {"rate": k / m, "reps": m, "ci": [lo, hi], "not_ok": other, "median_seconds": secs}
        summary.setdefault(method, {}).setdefault(str(sigma), {})[str(n)] = cell
        table.append([method, sigma, f"{n:,}", f"{k}/{m} = {k / m:.2f}", f"[{lo:.2f}, {hi:.2f}]", other,
                      f"{secs:.3g}"])
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, sigma in zip(axes, sorted({s for _, s, _ in cells}, reverse=True)):
        for method in methods:
            pts = sorted((n, summary[method][str(sigma)][str(n)]) for m_, s, n in cells if m_ == method and s == sigma)
            if pts:
                ax.errorbar([n for n, _ in pts], [c["rate"] for _, c in pts],
                            yerr=[[c["rate"] - c["ci"][0] for _, c in pts], [c["ci"][1] - c["rate"] for _, c in pts]],
                            marker="o", capsize=3, label=method)
        ax.set_xscale("log")
        ax.set_ylim(-0.03, 1.03)
        ax.axhline(ALPHA, color="grey", lw=0.8, ls="--")
        ax.set_xlabel("n")
        ax.set_ylabel("rejection rate at α = .05")
        ax.set_title(f"RBM dx={DX}, dh={DH}, σ = {sigma:g}" + (" (size)" if sigma == 0 else " (power)"))
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    Path(args.figure).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.figure, dpi=110)
    page = ["# Power against n: the RBM benchmark at σ = .005", "",
            f"Figure 5's problem (dx = {DX}, dh = {DH}, {BURN_IN} Gibbs sweeps), a new RBM and perturbation per "
            "repetition; rejection rates at α = .05 with 95% Wilson intervals. `not ok`: tests refused by the cost "
            "guard or failed (counted as no rejection). Seconds: the median wall time of one test on a shared, "
            "contended 2-core machine.", "", args.note, "",
            f"Made by `PYTHONPATH=src python benchmarks/power_vs_n.py --report` from {len(rows)} stored tests. "
            f"Figure: `{args.figure}`.", "",
            markdown_table(["method", "σ", "n", "rejected", "95% CI", "not ok", "seconds"], table)]
    Path(args.page).parent.mkdir(parents=True, exist_ok=True)
    Path(args.page).write_text("\n".join(page))
    out = {"benchmark": "power_vs_n", "dx": DX, "dh": DH, "sigma": SIGMA, "alpha": ALPHA, "tests": len(rows),
           "rates": summary, "figure": args.figure, "page": args.page}
    print(json.dumps(out))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=lambda s: int(float(s)), nargs="+", default=list(NS))
    ap.add_argument("--n-max", type=lambda s: int(float(s)), default=NS[-1],
                    help="chains sampled per repetition (the tests at smaller n use the first n)")
    ap.add_argument("--reps", type=int, default=50)
    ap.add_argument("--first-rep", type=int, default=0,
                    help="run repetitions first-rep .. first-rep + reps − 1 "
                         "(processes sharing a store take disjoint ranges)")
    ap.add_argument("--sigmas", type=float, nargs="+", default=[SIGMA, 0.0])
    ap.add_argument("--methods", nargs="+", default=None, help="default: the default method, ksdagg-inc, lksd, fssd")
    ap.add_argument("--store", default="out/power_vs_n.jsonl")
    ap.add_argument("--cache", default="out/rbm_cache")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--report", action="store_true", help="write the table and figure from the store")
    ap.add_argument("--page", default="docs/power_vs_n.md")
    ap.add_argument("--figure", default="docs/figures/power_vs_n.png")
    ap.add_argument("--note", default="")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.report:
        report(args)
    else:
        run(args)


if __name__ == "__main__":
    main()

"""Figures and tables of the RBM sweeps (issue 12): power against σ and against the sample size n.

Reads the JSON lines that ``benchmarks/rbm_sweep.py`` appends (one per method, dx, σ, n) and
writes, per dx, ``power_sigma_dx{DX}.png`` (rejection rate against σ at n = 1000) and, where
several n were run, ``power_n_dx{DX}_sigma{S}.png`` (against n at that σ), with ±1 binomial
standard error bars and the level α = .05 dashed; it prints the matching markdown tables.

Usage: python benchmarks/rbm_figures.py OUT_DIR SWEEP.jsonl [SWEEP.jsonl ...]
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import Path

LABELS = {"lsd": "LSD (default)", "lsd:combined": "LSD combined (default)", "lsd:features": "LSD features",
          "lsd:sequential": "LSD sequential", "lsd:aggregated": "LSD aggregated",
          "lsd:paper": "LSD Algorithm 2", "ksd-seq": "KSD-Seq", "ksdagg": "KSDAgg", "ksdagg-inc": "KSDAggInc",
          "ksd": "KSD", "lksd": "LKSD", "fssd": "FSSD"}
ORDER = list(dict.fromkeys(LABELS.values()))


def load(paths: list[str]) -> dict[tuple, dict]:
    """Rows by (label, dx, n, σ); a later file's row replaces an earlier one with more repetitions."""
    rows: dict[tuple, dict] = {}
    for path in paths:
        for line in Path(path).read_text().splitlines():
            r = json.loads(line)
            key = (LABELS.get(r["method"], r["method"]), r.get("dx", 50), r.get("n", 1000), r["sigma"])
            if key not in rows or r["reps"] >= rows[key]["reps"]:
                rows[key] = r
    return rows


def _plot(path: Path, curves: dict[str, list[tuple[float, dict]]], xlabel: str, title: str) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.0), layout="constrained")
    ax = fig.subplots()
    for i, label in enumerate(sorted(curves, key=lambda s: ORDER.index(s) if s in ORDER else len(ORDER))):
        pts = sorted(curves[label], key=lambda p: p[0])
        ax.errorbar([p[0] for p in pts], [p[1]["reject_05"] for p in pts], [p[1]["stderr"] for p in pts],
                    marker="o", ms=3, capsize=2, label=label, color=f"C{i}" if i < 10 else "black",
                    ls="-" if "LSD" in label else "--")
    ax.axhline(0.05, color="gray", ls=":", lw=0.8)
    ax.set(xlabel=xlabel, ylabel="rejection rate at α = .05", ylim=(-0.02, 1.02), title=title)
    ax.legend(fontsize=7)
    fig.savefig(path, dpi=120)


def _table(curves: dict[str, list[tuple[float, dict]]], xs: list[float], head: str) -> str:
    """Rejection rates by test and x, with the repetitions and the CPU seconds per test (mean over the
    cells), and a last line with the CPU hours of all the table's tests."""
    lines = [f"| test | {' | '.join(head.format(x) for x in xs)} | reps | CPU s/test |", "|---" * (len(xs) + 3) + "|"]
    hours = 0.0
    for label in sorted(curves, key=lambda s: ORDER.index(s) if s in ORDER else len(ORDER)):
        cells = dict(curves[label])
        reps = sorted({c["reps"] for c in cells.values()})
        cpu = [c["cpu_seconds_per_test"] for c in cells.values()]
        hours += sum(c["cpu_seconds_per_test"] * c["reps"] for c in cells.values()) / 3600
        lines.append(f"| {label} | " + " | ".join(f"{cells[x]['reject_05']:.3g}" if x in cells else "" for x in xs)
                     + f" | {'/'.join(map(str, reps))} | {sum(cpu) / len(cpu):.3g} |")
    return "\n".join(lines + ["", f"CPU time of these tests: {hours:.2f} h"])


def main() -> None:
    out, rows = Path(sys.argv[1]), load(sys.argv[2:])
    out.mkdir(parents=True, exist_ok=True)
    for dx in sorted({k[1] for k in rows}):
        by_sigma: dict[str, list] = defaultdict(list)
        for (label, d, n, sigma), r in rows.items():
            if d == dx and n == 1000:
                by_sigma[label].append((sigma, r))
        sigmas = sorted({s for pts in by_sigma.values() for s, _ in pts})
        _plot(out / f"power_sigma_dx{dx}.png", by_sigma, "σ (perturbation of B)", f"RBM dx = {dx}, n = 1000")
        print(f"\ndx = {dx}, n = 1000\n\n" + _table(by_sigma, sigmas, "σ = {:g}"))
        for sigma in sorted({k[3] for k in rows if k[1] == dx and k[2] != 1000}):
            by_n: dict[str, list] = defaultdict(list)
            for (label, d, n, s), r in rows.items():
                if d == dx and s == sigma:
                    by_n[label].append((n, r))
            ns = sorted({n for pts in by_n.values() for n, _ in pts})
            _plot(out / f"power_n_dx{dx}_sigma{sigma:g}.png", by_n, "sample size n", f"RBM dx = {dx}, σ = {sigma:g}")
            print(f"\ndx = {dx}, σ = {sigma:g}\n\n" + _table(by_n, ns, "n = {:g}"))


if __name__ == "__main__":
    main()

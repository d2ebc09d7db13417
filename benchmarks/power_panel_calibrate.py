"""Calibrate a power-panel cell's strength: quick power of a few methods over a grid of strengths.

Each repetition draws its data with a seed of (cell, "calibration", value, r), apart from the
panel's own data. Prints one JSON line per (value, method): the rejection rate at α = .05, the
repetitions and the mean CPU seconds per test. Power grows with the strength; pick the value
where the better method's rate is intermediate and write it into ``benchmarks/power_panel.py``.

Usage: python benchmarks/power_panel_calibrate.py CELL PARAM VALUE [VALUE ...] [--reps 10]
       [--methods ksdagg lsd:sequential] [--n N]
       e.g. ``power_panel_calibrate.py banana curvature 0.2 0.3 0.5 --reps 20``
"""

from __future__ import annotations

import argparse
import dataclasses
import json

import torch

from power_panel import HALVES, Cell, derive_seed, run_test


def calibrate(cell: Cell, param: str, value: float, methods: list[str], reps: int) -> list[dict]:
    """The quick power of each method at ``param`` = ``value``."""
    if param in ("d", "n"):                       # a size, not a family parameter
        cell = dataclasses.replace(cell, **{param: int(value)})
    else:
        cell = dataclasses.replace(cell, params={**cell.params, param: value})
    hits = {m: [] for m in methods}
    for rep in range(reps):
        prob = dataclasses.replace(cell, name=f"{cell.name}:calibration").problem(rep)
        x = prob.sample(cell.n, seed=derive_seed(cell.name, "calibration", value, rep))
        for m in methods:
            hits[m].append(run_test(prob, x, m, rep))
    return [{"cell": cell.name, "n": cell.n, param: value, "method": m, "reps": reps,
             "rate": sum(r["reject"] for r in rs) / reps, "cpu": sum(r["cpu_seconds"] for r in rs) / reps}
            for m, rs in hits.items()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("cell")
    ap.add_argument("param")
    ap.add_argument("values", nargs="+", type=float)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--methods", nargs="+", default=["ksdagg", "lsd:sequential"])
    ap.add_argument("--n", type=int, default=None, help="another sample size than the cell's")
    args = ap.parse_args()
    torch.set_num_threads(1)
    (cell,) = [c for c in HALVES["all"] if c.name == args.cell]
    if args.n:
        cell = dataclasses.replace(cell, n=args.n)
    for value in args.values:
        for row in calibrate(cell, args.param, value, args.methods, args.reps):
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()

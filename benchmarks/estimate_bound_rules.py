"""How the default estimate's choice among its lower bounds was made (issue 24), re-run from a store.

The default estimate reports the largest of three lower bounds of the LSD: the fitted critic's
value at its best scale and two U-statistic bounds that need no fit
(:mod:`steinkit.feature_bounds`). The per-coordinate bound's features (raw, or less their fit on
[1, z_j]), its ridge and the rule that picks among the bounds were chosen on the tuning half of the
estimate panel: for every cell of an ``estimate_panel.py`` store, this script redraws the cell's
data (same seed), computes the bounds with both kinds of features at several ridges, and scores
each (features, ridge, rule) by the panel's criteria against the stored
critic value (``scaled``, or ``value`` in a store made with ``value="scaled"``). Rules: the
largest value, or the largest value less k standard errors; where the store holds the pooled and
interaction bounds, they are reported as the default does (:data:`GATED`: a value less
GATED_MARGIN standard errors above the rest). A ridge r with ``--power p`` is r·(1000/n)^p at n
rows (p = 0: the same at every n).

Usage:
  python benchmarks/estimate_bound_rules.py STORE [--half tuning] [--ridges 0 0.01 0.1 1] [--ks 0 1 2]
      [--power 0] [--residual-only] [--cells]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from estimate_panel import HALVES, LAM, cell_data, load
from steinkit.feature_bounds import GATED, GATED_MARGIN, coordinate_lsd, linear_lsd
from steinkit.scores import as_scores, score_rows


def bounds(row: dict, ridges: list[float], power: float, kinds: tuple[bool, ...]) -> dict:
    """The cell's linear bound and its per-coordinate bound at each ridge (times (1000/n)^power),
    on the cell's own data, for each kind of features in ``kinds`` (residual or not)."""
    prob, x = cell_data(row["family"], row["params"], row["d"], row["n"], row["rep"])  # run_cell's data
    s = score_rows(as_scores([prob.model], x.device)[0], x)
    out = {"linear": linear_lsd(x, s, LAM, seed=row["rep"])}
    for ridge in ridges:
        for residual in kinds:
            out[ridge, residual] = coordinate_lsd(x, s, LAM, seed=row["rep"], ridge=ridge * (1000 / row["n"]) ** power,
                                                  residual=residual)
    return out


def chosen(row: dict, b: dict, key: float | tuple, k: float) -> tuple[float, float]:
    """The (value, stderr) the rule reports for one cell: the largest of the critic, the linear and
    the per-coordinate bound (less k stderr), or the store's gated bound that clears them by most."""
    critic = tuple(row["scaled"]) if "scaled" in row else (row["value"], row["stderr"])
    candidates = [critic] + [c for c in (b["linear"], b[key]) if c is not None]
    value, stderr = max(candidates, key=lambda c: c[0] - k * c[1])
    gated = [tuple(row[g]) for g in GATED if g in row and row[g][0] == row[g][0]]
    clear = [c for c in gated if c[0] - GATED_MARGIN * c[1] > value]
    return max(clear, key=lambda c: c[0] - GATED_MARGIN * c[1]) if clear else (value, stderr)


def score(rows: list[dict], found: list[dict], ridge: float | tuple, k: float) -> dict:
    """Right / within 10% / above by > 15% / above by > 1 stderr / over (> 3 stderr), for one
    (ridge, rule); ``ridge`` is a key of ``found``'s bounds, (ridge, residual features or not)."""
    tally = {"right": 0, "within 10%": 0, "above 15%": 0, "above 1 stderr": 0, "over": 0}
    for row, b in zip(rows, found):
        value, stderr = chosen(row, b, ridge, k)
        err, truth = value - row["truth"], row["truth"]
        tally["right"] += abs(err) <= 0.15 * abs(truth) or abs(err) <= 3 * stderr
        tally["within 10%"] += abs(err) <= 0.1 * abs(truth)
        tally["above 15%"] += err > 0.15 * abs(truth)
        tally["above 1 stderr"] += err > stderr
        tally["over"] += err > 3 * stderr
    return tally


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("store", type=Path)
    parser.add_argument("--half", choices=list(HALVES), default="tuning")
    parser.add_argument("--ridges", type=float, nargs="+", default=[0.0, 0.01, 0.1, 1.0])
    parser.add_argument("--ks", type=float, nargs="+", default=[0.0, 1.0, 2.0])
    parser.add_argument("--power", type=float, default=0.0, help="each ridge is r·(1000/n)^power at n rows")
    parser.add_argument("--residual-only", action="store_true", help="score the residual features only")
    parser.add_argument("--cells", action="store_true", help="print each cell's value/truth per ridge (k = 0)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    names = {name for name, _, _ in HALVES[args.half]}
    rows = [r for r in load(args.store) if r["name"] in names]
    kinds = (True,) if args.residual_only else (True, False)
    found = [bounds(r, args.ridges, args.power, kinds) for r in rows]
    print(f"{len(rows)} estimates ({args.half} half), ridge r·(1000/n)^{args.power:g}")
    for residual in kinds:
        for ridge in args.ridges:
            for k in args.ks:
                print(json.dumps({"features": "less their fit on [1, z]" if residual else "raw", "ridge": ridge,
                                  "rule": f"largest value - {k:g} stderr", **score(rows, found, (ridge, residual), k)}))
    if args.cells:
        for row, b in zip(rows, found):
            ratios = " ".join(f"{chosen(row, b, (r, True), 0)[0] / row['truth']:.2f}" for r in args.ridges)
            print(f"{row['name']} d={row['d']} n={row['n']} rep={row['rep']}: {ratios}")


if __name__ == "__main__":
    main()

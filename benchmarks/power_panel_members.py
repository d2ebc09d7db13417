"""Which members should the witness-family test aggregate? Every subset, scored from one panel run.

A ``witnesses`` row of the power panel's store keeps each member's z statistic and their
estimated correlation, so the test restricted to a subset S of the members is recomputed exactly
from the row: max_{m ∈ S} z_m with the p-value of the maximum under the correlation's S × S
block (the same seed as the test). This prints, for each cell of the chosen half, the rejection
rate of every subset, and per subset its worst shortfall against the best single competitor
(KSDAgg, KSD-Seq, the learned sequential protocol) in standard errors.

``--weights`` scores weighted families instead (each family's share of the level, as
``witness_tests(weights=...)``; a family left out or at 0 is not in the test).

Usage: python benchmarks/power_panel_members.py STORE [--half tuning] [--method witnesses@TAG] [--largest 10]
       [--weights trained=5,features=1,linear=1,coordinate=1,kernel=2 ...]
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
from pathlib import Path

import torch

from power_panel import ALPHA, HALVES, Store
from steinkit.gof.aggregate import max_normal_pvalue
from steinkit.gof.witnesses import statistic_weights

COMPETITORS = ("ksdagg", "ksd-seq", "lsd:sequential")


def member_groups(names: list[str]) -> dict[str, list[int]]:
    """The families' statistic indices (the kernel family has one statistic per bandwidth,
    "kernel 0.25" and so on)."""
    out: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        out.setdefault(name.split(" ")[0], []).append(i)
    return out


def subset_pvalue(row: dict, subset: tuple[str, ...]) -> float:
    """The p-value of the test restricted to the families in ``subset``."""
    names = list(row["members"]["statistics"])
    idx = [i for fam, ids in member_groups(names).items() if fam in subset for i in ids]
    z = torch.tensor([row["members"]["statistics"][names[i]] for i in idx], dtype=torch.float64)
    corr = torch.tensor(row["members"]["correlation"], dtype=torch.float64)[idx][:, idx]
    return max_normal_pvalue(z, corr, generator=torch.Generator().manual_seed(row["rep"] + 3))[1]


def weighted_pvalue(row: dict, weights: dict[str, float]) -> float:
    """The p-value of the test over the families with a positive weight, each with that share of
    the level split equally among its statistics (as ``witness_tests(weights=...)``)."""
    names = list(row["members"]["statistics"])
    idx = [i for fam, ids in member_groups(names).items() if weights.get(fam, 0.0) > 0 for i in ids]
    z = torch.tensor([row["members"]["statistics"][names[i]] for i in idx], dtype=torch.float64)
    corr = torch.tensor(row["members"]["correlation"], dtype=torch.float64)[idx][:, idx]
    return max_normal_pvalue(z, corr, weights=statistic_weights([names[i] for i in idx], weights),
                             generator=torch.Generator().manual_seed(row["rep"] + 3))[1]


def parse_weights(text: str) -> dict[str, float]:
    """"trained=5,kernel=2" -> {"trained": 5.0, "kernel": 2.0}.

    Example:
        >>> parse_weights("trained=5,kernel=2")
        {'trained': 5.0, 'kernel': 2.0}
    """
    try:
        return {k: float(v) for k, v in (part.split("=") for part in text.split(","))}
    except ValueError:
        raise SystemExit(f"--weights must look like trained=5,kernel=2, got {text!r}") from None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store", type=Path)
    parser.add_argument("--half", default="tuning", choices=tuple(HALVES))
    parser.add_argument("--method", default="witnesses", help="the stored method whose members to score (METHOD@TAG)")
    parser.add_argument("--largest", type=int, default=10, help="how many subsets to list at the end, the best first")
    parser.add_argument("--weights", nargs="+", type=parse_weights, default=None, metavar="NAME=W,...",
                        help="score these weightings of the families instead of every unweighted subset")
    args = parser.parse_args()
    store = Store(args.store)
    store.refresh()
    seen = next((r for r in store.rows if r["method"] == args.method and "members" in r), None)
    if seen is None:
        raise SystemExit(f"no {args.method} rows with members in {args.store}")
    families = list(member_groups(list(seen["members"]["statistics"])))
    if args.weights:
        subsets = [tuple(f"{k}={v:g}" for k, v in w.items()) for w in args.weights]
        score = {s: (lambda r, w=w: weighted_pvalue(r, w)) for s, w in zip(subsets, args.weights)}
    else:
        subsets = [s for k in range(1, len(families) + 1) for s in itertools.combinations(families, k)]
        score = {s: (lambda r, s=s: subset_pvalue(r, s)) for s in subsets}
    worst = {s: math.inf for s in subsets}
    for cell in HALVES[args.half]:
        rows = [r for r in store.rows if r["cell_key"] == cell.key]
        wit = [r for r in rows if r["method"] == args.method and "members" in r]
        if not wit:
            continue
        best, best_se = 0.0, 0.0
        for m in COMPETITORS:
            rs = [r["reject"] for r in rows if r["method"] == m]
            if rs and sum(rs) / len(rs) >= best:
                best = sum(rs) / len(rs)
                best_se = math.sqrt(max(best * (1 - best), 1e-4) / len(rs))
        rates = {}
        for s in subsets:
            rate = sum(score[s](r) < ALPHA for r in wit) / len(wit)
            se = math.sqrt(max(rate * (1 - rate), 1e-4) / len(wit))
            rates[s] = rate
            if not cell.null:
                worst[s] = min(worst[s], (rate - best) / math.hypot(se, best_se))
        print(json.dumps({"cell": cell.name, "reps": len(wit), "best_competitor": round(best, 3),
                          **{"+".join(s): round(v, 3) for s, v in rates.items()}}))
    for s in sorted(subsets, key=lambda s: -worst[s])[:args.largest]:
        print(f"{'+'.join(s):32s} worst shortfall against the best competitor: {worst[s]:+.2f} SE")


if __name__ == "__main__":
    main()

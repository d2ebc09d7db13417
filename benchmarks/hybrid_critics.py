"""Does aggregating the network's stopping points with kernel witnesses add power? (issue 12)

For each RBM repetition (dx = 50, cached by ``benchmarks/rbm_data.py``), the aggregated learned
test's six critic snapshots (``fit_heldout_critics(snapshots=True)`` with
``LEARNED_TEST``) and the closed-form kernel witnesses of the same training part at six
bandwidths (``steinkit.gof.sequential.witness_terms``, ℓ = −5..0) are tested on the same test half, alone and
all twelve together, each with the level-corrected maximum.

Usage: python benchmarks/hybrid_critics.py SIGMA REPS [--cache DIR]   (prints a JSON line)
"""

from __future__ import annotations

import argparse
import json

import torch

from rbm_data import load
from steinkit.problems import rbm_problem
from steinkit.heldout import fit_heldout_critics
from steinkit.gof.aggregate import max_t_pvalue
from steinkit.gof.kernels import median_bandwidth
from steinkit.gof.sequential import witness_terms
from steinkit.scores import as_score
from steinkit.settings import LEARNED_TEST
from steinkit.splits import split_data

ELLS = (-5, -4, -3, -2, -1, 0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sigma", type=float)
    ap.add_argument("reps", type=int)
    ap.add_argument("--cache", default="bench-cache")
    args = ap.parse_args()
    torch.set_num_threads(1)
    xs, ss = load(args.cache, 50, args.reps, args.sigma)
    seeds = [900 + r for r in range(args.reps)]
    problems = [(as_score(rbm_problem(50, 40, r, args.sigma, n=2, burn_in=0)[1]), xs[r], seeds[r])
                for r in range(args.reps)]
    rejected = {"network": 0, "kernel": 0, "both": 0}
    for first in range(0, args.reps, 50):
        fits = fit_heldout_critics(problems[first:first + 50], LEARNED_TEST, snapshots=True)
        for r, fit in enumerate(fits, start=first):
            rows = torch.arange(xs.shape[1], dtype=torch.float32)[:, None]  # the fit's split, as row numbers
            tr, va, te = split_data(rows, LEARNED_TEST.split, generator=torch.Generator().manual_seed(seeds[r]))
            a, b = torch.cat([tr, va]).long().squeeze(1), te.long().squeeze(1)
            x, s = xs[r].double(), ss[r].double()
            med = median_bandwidth(x[a])
            kernel = witness_terms(x[a], s[a], x[b], s[b], [med * 2.0**e for e in ELLS])
            network = fit.snapshot_terms.double()
            g = torch.Generator().manual_seed(r)
            for name, terms in (("network", network), ("kernel", kernel), ("both", torch.cat([network, kernel]))):
                rejected[name] += max_t_pvalue(terms, generator=g)[1] <= 0.05
    print(json.dumps({"sigma": args.sigma, "reps": args.reps, **{k: v / args.reps for k, v in rejected.items()}}))


if __name__ == "__main__":
    main()

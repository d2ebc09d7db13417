"""Is it the split or the network that limits the learned test's power? (issue 12)

The aggregated learned test (``protocol="aggregated"``) fits its critic on one half of the data and
tests it on the other. This replaces the network by the closed-form critic of the same split: the
kernel Stein witness of the training half, f(x) = mean_j [s(a_j) k(a_j, x) + ∇_a k(a_j, x)], whose
Stein terms at a test point b are mean_j u(a_j, b) (u the IMQ Stein kernel). Its terms on the test
half are aggregated over bandwidths 2^ℓ·λ_med(training half) with the same level-corrected maximum
(:func:`steinkit.gof.aggregate.max_t_pvalue`), so it is the learned test with the RKHS-optimal
critic in place of the trained one (a cross U-statistic over the n²/4 train×test pairs).

Usage: python benchmarks/cross_witness.py REPS [--sigmas 0,0.01,0.02] [--ells -3,-2,-1,0,1] [--cache DIR]
       (RBM benchmark data from benchmarks/rbm_data.py; prints one JSON line per σ)
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from rbm_data import load
from steinkit.gof.aggregate import max_t_pvalue
from steinkit.gof.kernels import median_bandwidth
from steinkit.gof.sequential import witness_terms


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("reps", type=int)
    ap.add_argument("--sigmas", default="0,0.01,0.02")
    ap.add_argument("--ells", default="-3,-2,-1,0,1")
    ap.add_argument("--cache", default="bench-cache")
    args = ap.parse_args()
    torch.set_num_threads(1)
    ells = [int(e) for e in args.ells.split(",")]
    for sigma in map(float, args.sigmas.split(",")):
        xs, ss = load(args.cache, 50, args.reps, sigma)
        start, rejected = time.process_time(), 0
        for r in range(args.reps):
            g = torch.Generator().manual_seed(r)
            perm = torch.randperm(xs.shape[1], generator=g)
            x, s = xs[r][perm].double(), ss[r][perm].double()
            h = x.shape[0] // 2
            med = median_bandwidth(x[:h])
            terms = witness_terms(x[:h], s[:h], x[h:], s[h:], [med * 2.0**e for e in ells])
            rejected += max_t_pvalue(terms, generator=g)[1] <= 0.05
        print(json.dumps({"sigma": sigma, "reps": args.reps, "ells": ells, "reject_05": rejected / args.reps,
                          "cpu_seconds_per_test": (time.process_time() - start) / args.reps}), flush=True)


if __name__ == "__main__":
    main()

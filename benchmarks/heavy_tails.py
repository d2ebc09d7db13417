"""Power against heavy tails: multivariate Student-t₃ data tested against the Gaussian of equal covariance.

Each repetition draws n points x = u / √(v/3), u ~ N(0, I_d), v ~ χ²₃ (covariance 3·I), and tests
them against N(0, 3·I) with each method; the rejection rate at α = .05 is the power. The
random-feature closed-form witness (``lsd:features``) is weak here, the trained critic strong.

Usage: python benchmarks/heavy_tails.py REPS METHOD[:PROTOCOL] ... [--d 20] [--n 1000]
       e.g. ``heavy_tails.py 50 lsd:features lsd:sequential lsd:combined ksd-seq ksd``
"""

from __future__ import annotations

import argparse
import json
import time

import torch

import steinkit as sk


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("reps", type=int)
    ap.add_argument("methods", nargs="+")
    ap.add_argument("--d", type=int, default=20)
    ap.add_argument("--n", type=int, default=1000)
    args = ap.parse_args()
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(11)
    xs = []
    for _ in range(args.reps):
        u = torch.randn(args.n, args.d, generator=g)
        v = (torch.randn(args.n, 3, generator=g) ** 2).sum(1, keepdim=True)
        xs.append(u / (v / 3).sqrt())
    model = sk.models.Gaussian(torch.zeros(args.d), 3.0 * torch.eye(args.d))
    for spec in args.methods:
        method, _, protocol = spec.partition(":")
        start = time.process_time()
        res = sk.gof_tests([model] * args.reps, xs, method=method, seeds=list(range(args.reps)),
                           **({"protocol": protocol} if protocol else {}))
        print(json.dumps({"method": spec, "d": args.d, "n": args.n, "reps": args.reps,
                          "power": sum(r.reject for r in res) / args.reps,
                          "cpu_seconds_per_test": (time.process_time() - start) / args.reps}), flush=True)


if __name__ == "__main__":
    main()

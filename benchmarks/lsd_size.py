"""Size of the default learned Stein test (and optionally others) on several kinds of null problem.

Each repetition draws n points from a model and tests them against that same model, so every
rejection is a false one. Null problems:
  * ``rbm``: the Figure-5 Gaussian-Bernoulli RBM at σ = 0 (dx = 50, dh = 40, n = 1000), data
    from the cache of ``benchmarks/rbm_data.py``;
  * ``correlated``: N(0, Σ) with Σᵢⱼ = .5^|i−j| in d = 10, n = 1000;
  * ``mixture``: ½N(μ, I) + ½N(−μ, I), μ = (2, 0, …, 0) in d = 10, n = 1000 (bimodal).
Prints one JSON line per problem and method: rejection rates at α = .01/.05/.10 with the binomial
standard error at .05, and the mean seconds per test.

Usage: python benchmarks/lsd_size.py PROBLEM REPS [METHOD[:PROTOCOL]] [--cache DIR]
       e.g. ``lsd_size.py rbm 200 lsd --cache bench-cache``, ``lsd_size.py mixture 100 lsd:paper``
"""

from __future__ import annotations

import argparse
import json
import math
import time

import torch

import steinkit as sk


def mixture_score(mu: torch.Tensor):
    """Score of ½N(μ, I) + ½N(−μ, I)."""
    def score(x: torch.Tensor) -> torch.Tensor:
        w = torch.sigmoid(2 * x @ mu)[:, None]            # posterior weight of the +μ component
        return (2 * w - 1) * mu - x
    return score


def null_problems(name: str, reps: int, cache: str | None, seed: int = 0) -> tuple[list, list]:
    """(models, data sets) of ``reps`` null repetitions of problem ``name``."""
    g = torch.Generator().manual_seed(seed)
    if name == "rbm":
        from rbm_data import load_problems
        models, xs = load_problems(cache or "bench-cache", 50, 40, reps, 0.0)
        return models, list(xs)
    d, n = 10, 1000
    if name == "correlated":
        idx = torch.arange(d, dtype=torch.float64)
        cov = 0.5 ** (idx[:, None] - idx[None, :]).abs()
        model = sk.models.Gaussian(torch.zeros(d, dtype=torch.float64), cov)
        chol = torch.linalg.cholesky(cov)
        xs = [(torch.randn(n, d, generator=g, dtype=torch.float64) @ chol.T).float() for _ in range(reps)]
        return [model] * reps, xs
    if name == "mixture":
        mu = torch.zeros(d)
        mu[0] = 2.0
        xs = []
        for _ in range(reps):
            sign = torch.where(torch.rand(n, 1, generator=g) < 0.5, 1.0, -1.0)
            xs.append(sign * mu + torch.randn(n, d, generator=g))
        return [mixture_score(mu)] * reps, xs
    raise SystemExit(f"unknown problem {name!r}: rbm, correlated or mixture")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("problem")
    ap.add_argument("reps", type=int)
    ap.add_argument("method", nargs="?", default="lsd")
    ap.add_argument("--cache", default=None)
    ap.add_argument("--batch", type=int, default=50, help="LSD tests trained as one ensemble")
    args = ap.parse_args()
    method, _, protocol = args.method.partition(":")
    models, xs = null_problems(args.problem, args.reps, args.cache)
    extra = {"protocol": protocol} if protocol else {}
    start, pvalues = time.perf_counter(), []
    for i in range(0, args.reps, args.batch):
        res = sk.gof_tests(models[i:i + args.batch], xs[i:i + args.batch], method=method,
                           seeds=[1000 + r for r in range(i, min(i + args.batch, args.reps))], **extra)
        pvalues += [r.pvalue for r in res]
    seconds = (time.perf_counter() - start) / args.reps
    rate = {a: sum(p <= a for p in pvalues) / len(pvalues) for a in (0.01, 0.05, 0.10)}
    print(json.dumps({"problem": args.problem, "method": args.method, "reps": args.reps,
                      "size_01": rate[0.01], "size_05": rate[0.05], "size_10": rate[0.10],
                      "stderr_05": math.sqrt(0.05 * 0.95 / args.reps), "seconds_per_test": seconds}))


if __name__ == "__main__":
    main()

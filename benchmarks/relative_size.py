"""Size of the relative test (``steinkit.relative_test``) for two models exactly equally far from the data.

Each repetition draws n points from N(0, I_d) and tests H0 "A fits no better than B", which holds
with equality, so every rejection is a false one. Problems:
  * ``shift``: A = N(+m, I), B = N(−m, I), m = SHIFT·(1, …, 1): mirror images, LSD* = d·SHIFT²/(2λ) each;
  * ``mixed``: A = N(m, I) against B = N(0, s²I) with s chosen so that the Fisher divergences are
    equal (d·SHIFT² = d(1 − 1/s²)²): equal truth, but a constant optimal critic against a linear one,
    which shows whether the learned test leans toward the model whose critic is harder to fit;
  * ``rbm-mirror``: the Figure-5 RBM p (dx = 50, dh = 40, a new one per repetition, data from
    p), A and B = p with its weights moved by +σE and −σE (E the rbm-power direction, σ =
    ``--sigma``): equally good to first order in σ, a null with a model that is not Gaussian.
    ``--cache DIR`` takes the data from ``benchmarks/rbm_data.py``'s cache (else Gibbs sampling).
Prints one JSON line per method: rejection rates at α = .01/.05/.10, that of the reverse test (B no
better than A, whose p-value is 1 − p) at .05, the binomial standard error at .05, the mean p-value
and the seconds per test. The full check of issue 15 is 200 repetitions:

Usage: python benchmarks/relative_size.py PROBLEM REPS [METHOD ...] [--d 10] [--n 1000] [--shift 0.1]
       [--sigma 0.02] [--cache DIR]
       e.g. ``relative_size.py shift 200 lsd optimal``, ``relative_size.py rbm-mirror 200 --cache bench-cache``
"""

from __future__ import annotations

import argparse
import json
import math
import time

import torch

import steinkit as sk
from steinkit.problems import derive_seed, rbm_problem
from steinkit.models import GaussianBernoulliRBM
from rbm_data import load


def models(problem: str, d: int, shift: float) -> tuple:
    m = torch.full((d,), shift)
    if problem == "shift":
        return sk.models.Gaussian(m, torch.eye(d)), sk.models.Gaussian(-m, torch.eye(d))
    if problem == "mixed":
        s = 1 / math.sqrt(1 - shift)  # (1 − 1/s²)² = shift²
        return sk.models.Gaussian(m, torch.eye(d)), sk.models.Gaussian(torch.zeros(d), s * s * torch.eye(d))
    raise SystemExit(f"unknown problem {problem!r}: shift, mixed or rbm-mirror")


def rbm_mirror(rep: int, sigma: float, n: int, x: torch.Tensor | None) -> tuple:
    """(A, B, x): p's weights moved by ±σE, and x (n samples of p by Gibbs when None)."""
    p, _, drawn = rbm_problem(50, 40, rep, 0.0, n=2 if x is not None else n, burn_in=0 if x is not None else 2000)
    g = torch.Generator().manual_seed(derive_seed(0, 50, 40, rep, "perturb"))
    e = torch.randn(p.B.shape, generator=g, dtype=p.B.dtype)
    a, b = (GaussianBernoulliRBM(p.B + sign * sigma * e, p.b.clone(), p.c.clone()) for sign in (1, -1))
    return a, b, drawn if x is None else x[:n]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("problem")
    ap.add_argument("reps", type=int)
    ap.add_argument("methods", nargs="*", default=["lsd", "optimal"])
    ap.add_argument("--d", type=int, default=10)
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--shift", type=float, default=0.1)
    ap.add_argument("--sigma", type=float, default=0.02, help="rbm-mirror: the perturbation's size")
    ap.add_argument("--cache", default=None, help="rbm-mirror: the data cache of benchmarks/rbm_data.py")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.problem == "rbm-mirror":
        cached = load(args.cache, 50, args.reps, 0.0)[0] if args.cache else [None] * args.reps
        problems = [rbm_mirror(r, args.sigma, args.n, cached[r]) for r in range(args.reps)]
    else:
        a, b = models(args.problem, args.d, args.shift)
        g = torch.Generator().manual_seed(0)
        problems = [(a, b, torch.randn(args.n, args.d, generator=g)) for _ in range(args.reps)]
    for method in args.methods:
        start = time.perf_counter()
        pvalues = [sk.relative_test(a, b, x, seed=1000 + r, method=method).pvalue for r, (a, b, x) in enumerate(problems)]
        rates = {str(alpha): sum(p < alpha for p in pvalues) / len(pvalues) for alpha in (0.01, 0.05, 0.1)}
        # the same critics test the reverse H0 "B fits no better than A" with p' = 1 − p (t flips sign)
        reverse = sum(p > 0.95 for p in pvalues) / len(pvalues)
        size = {"sigma": args.sigma} if args.problem == "rbm-mirror" else {"d": args.d, "shift": args.shift}
        print(json.dumps({"problem": args.problem, "method": method, "n": args.n, **size,
                          "reps": args.reps, "rejection_rate": rates, "reverse_rejection_rate_at_05": reverse,
                          "stderr_at_05": math.sqrt(0.05 * 0.95 / args.reps),
                          "mean_pvalue": sum(pvalues) / len(pvalues),
                          "seconds_per_test": (time.perf_counter() - start) / args.reps}), flush=True)


if __name__ == "__main__":
    main()

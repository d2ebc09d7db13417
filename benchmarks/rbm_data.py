"""The RBM benchmark's data (Figure 5), sampled once per repetition and cached on disk.

Repetition r of size (dx, dh) draws the RBM p and n Gibbs samples x exactly as
``steinkit.problems.rbm_problem(dx, dh, r, σ, ...)`` does (x does not depend on σ),
and the scores s_q(x) of every perturbed model q_σ. Sampling is the slow part (2000 burn-in
sweeps), so chunks of repetitions are stored as ``rbm{dx}_{first}_{last}.pt`` in a cache folder
and reused by every benchmark that tests the same problems.

Usage: python benchmarks/rbm_data.py CACHE DX DH FIRST LAST [N] [SIGMAS]
       (e.g. ``... cache 50 40 0 100 1000 0,0.01,0.02,0.03,0.04`` writes repetitions 0..99)
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from steinkit.problems import rbm_problem

SIGMAS = (0.0, 0.01, 0.02, 0.03, 0.04)


def sample_chunk(dx: int, dh: int, first: int, last: int, n: int = 1000,
                 sigmas: tuple[float, ...] = SIGMAS) -> dict:
    """{"x": (R, n, dx), "scores": {σ: (R, n, dx)}} for repetitions first..last-1."""
    xs, scores = [], {s: [] for s in sigmas}
    for rep in range(first, last):
        _, _, x = rbm_problem(dx, dh, rep, 0.0, n=n, burn_in=2000)
        xs.append(x)
        for s in sigmas:
            q = rbm_problem(dx, dh, rep, s, n=2, burn_in=0)[1]  # same p and perturbation direction
            scores[s].append(q.score(x).detach())
    return {"x": torch.stack(xs), "scores": {s: torch.stack(v) for s, v in scores.items()}}


def load(cache: str | Path, dx: int, reps: int, sigma: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(x, scores) of the first ``reps`` cached repetitions at σ, from the chunks in ``cache``."""
    chunks = sorted(Path(cache).glob(f"rbm{dx}_*_*.pt"), key=lambda p: int(p.stem.split("_")[1]))
    xs, ss, have = [], [], 0
    for path in chunks:
        first = int(path.stem.split("_")[1])
        if first != have:
            break
        data = torch.load(path)
        xs.append(data["x"])
        ss.append(data["scores"][sigma])
        have += data["x"].shape[0]
        if have >= reps:
            break
    if have < reps:
        raise SystemExit(f"only {have} repetitions cached in {cache} for dx={dx}; run benchmarks/rbm_data.py")
    return torch.cat(xs)[:reps], torch.cat(ss)[:reps]


def load_problems(cache: str | Path, dx: int, dh: int, reps: int, sigma: float) -> tuple[list, torch.Tensor]:
    """(models q_σ, data x) of the first ``reps`` cached repetitions: each q_σ rebuilt by
    ``rbm_problem`` (cheap without sampling), x from the cache."""
    xs, _ = load(cache, dx, reps, sigma)
    return [rbm_problem(dx, dh, r, sigma, n=2, burn_in=0)[1] for r in range(reps)], xs


if __name__ == "__main__":
    cache, dx, dh, first, last = sys.argv[1], *map(int, sys.argv[2:6])
    n = int(sys.argv[6]) if len(sys.argv) > 6 else 1000
    sigmas = tuple(float(s) for s in sys.argv[7].split(",")) if len(sys.argv) > 7 else SIGMAS
    torch.set_num_threads(1)
    Path(cache).mkdir(parents=True, exist_ok=True)
    torch.save(sample_chunk(dx, dh, first, last, n, sigmas), Path(cache) / f"rbm{dx}_{first}_{last}.pt")

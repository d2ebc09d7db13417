"""Figure 5's RBM benchmark as the reproductions and benchmarks draw it: every random choice
derives from the cell (seed, dx, dh, repetition), so a cell gives the same RBM, perturbation and
samples on every machine and in every run.

Example:
    >>> p, q, x = rbm_problem(6, 3, 0, 0.01, n=20, burn_in=10)
    >>> x.shape, derive_seed(0, 6, 3, 0) == derive_seed(0, 6, 3, 0) != derive_seed(0, 6, 3, 1)
    (torch.Size([20, 6]), True)
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import torch

from ..models import GaussianBernoulliRBM

__all__ = ["derive_seed", "rbm_problem"]


def derive_seed(*parts: Any) -> int:
    """A seed in [0, 2**31) determined by JSON-serializable parts (stable across runs and machines).

    Example:
        >>> derive_seed(0, 50, 40, 3) == derive_seed(0, 50, 40, 3) != derive_seed(0, 50, 40, 4)
        True
    """
    digest = hashlib.sha256(json.dumps(parts, separators=(",", ":")).encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def rbm_problem(
    dx: int, dh: int, rep: int | None, sigma: float, *, n: int, burn_in: int, seed: int = 0
) -> tuple[GaussianBernoulliRBM, GaussianBernoulliRBM, torch.Tensor]:
    """(p, q, x): a random RBM p, p with B perturbed by N(0, sigma²), and n Gibbs samples from p;
    p, x and the perturbation's direction derive from (seed, dx, dh, rep), or (seed, dx, dh)."""
    key = (seed, dx, dh) if rep is None else (seed, dx, dh, rep)
    g = torch.Generator().manual_seed(derive_seed(*key))
    p = GaussianBernoulliRBM.random(dx, dh, generator=g)
    x = p.sample(n, burn_in=burn_in, generator=g)
    q = p.perturb(sigma, generator=torch.Generator().manual_seed(derive_seed(*key, "perturb")))
    return p, q, x

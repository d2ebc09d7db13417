"""Gaussian pairs: data and model both Gaussian, with the Fisher divergence in closed form.

Example:
    >>> round(gaussian_ar1(2, 0.5).exact_fisher, 4)     # N(0, Σ) data, Σ₁₂ = .5, against N(0, I)
    0.6667
"""

from __future__ import annotations

import math

import torch

from ..validation import nonneg_float, one_of, positive_float, positive_int
from .base import Problem, gaussian_pair

__all__ = ["gaussian_mean", "gaussian_scale", "gaussian_correlation", "gaussian_diagonal", "gaussian_ar1",
           "ar1_cov"]


def gaussian_mean(d: int, shift: float = 1.0) -> Problem:
    """Data N(0, I), model N(μ, I) with μ = shift·(1, …, 1)/√d (‖μ‖ = shift)."""
    d, shift = positive_int(d, "d"), nonneg_float(shift, "shift")
    return gaussian_pair("gaussian-mean", torch.full((d,), shift / math.sqrt(d), dtype=torch.float64),
                         torch.eye(d, dtype=torch.float64), {"shift": float(shift)})


def gaussian_scale(d: int, factor: float = 2.0) -> Problem:
    """Data N(0, I), model N(0, factor·I): factor > 1 a model too wide, < 1 too narrow."""
    d, factor = positive_int(d, "d"), positive_float(factor, "factor")
    return gaussian_pair("gaussian-scale", torch.zeros(d, dtype=torch.float64),
                         factor * torch.eye(d, dtype=torch.float64), {"factor": float(factor)})


def gaussian_correlation(d: int, rho: float = 0.3) -> Problem:
    """Data N(0, I), model N(0, (1 − ρ)I + ρ11ᵀ) (equicorrelated)."""
    d, rho = positive_int(d, "d"), nonneg_float(rho, "rho")
    if rho >= 1:
        raise ValueError(f"rho must lie in [0, 1), got {rho}")
    cov = (1 - rho) * torch.eye(d, dtype=torch.float64) + rho
    return gaussian_pair("gaussian-correlation", torch.zeros(d, dtype=torch.float64), cov, {"rho": float(rho)})


def gaussian_diagonal(d: int, spread: float = 2.0, seed: int = 0) -> Problem:
    """Data N(0, I), model N(0, diag(v)) with log v uniform on [−log spread, log spread]."""
    d, spread = positive_int(d, "d"), positive_float(spread, "spread")
    g = torch.Generator().manual_seed(seed)
    v = torch.exp((2 * torch.rand(d, generator=g, dtype=torch.float64) - 1) * math.log(spread))
    return gaussian_pair("gaussian-diagonal", torch.zeros(d, dtype=torch.float64), torch.diag(v),
                         {"spread": float(spread), "seed": seed})


def ar1_cov(d: int, rho: float) -> torch.Tensor:
    """The AR(1) correlation matrix Σᵢⱼ = ρ^|i−j|, float64.

    Example:
        >>> ar1_cov(3, 0.5)[0].tolist()
        [1.0, 0.5, 0.25]
    """
    idx = torch.arange(positive_int(d, "d"), dtype=torch.float64)
    return float(rho) ** (idx[:, None] - idx[None, :]).abs()


def gaussian_ar1(d: int, rho: float = 0.3, side: str = "data") -> Problem:
    """A correlation misfit: with ``side="data"`` data N(0, Σ_ρ) against the independent model N(0, I);
    with ``side="model"`` the reverse (data N(0, I), model N(0, Σ_ρ)); Σ_ρ the AR(1) matrix ρ^|i−j|.
    The strength is ρ ∈ [0, 1) (ρ = 0: p = q)."""
    d, rho, side = positive_int(d, "d"), nonneg_float(rho, "rho"), one_of(side, "side", ("data", "model"))
    if rho >= 1:
        raise ValueError(f"rho must lie in [0, 1), got {rho}")
    cov, eye, zero = ar1_cov(d, rho), torch.eye(d, dtype=torch.float64), torch.zeros(d, dtype=torch.float64)
    params = {"rho": float(rho), "side": side}
    if side == "data":
        return gaussian_pair("gaussian-ar1", zero, eye, params, cov_p=cov)
    return gaussian_pair("gaussian-ar1", zero, cov, params)

"""Non-Gaussian problem families: tails, skew, curved dependence, local perturbations, mixtures, RBMs.

Each family is a function of the dimension d first, then its parameters (a *strength* where one
makes sense: 0, or ν = ∞, gives p = q), returning a :class:`~steinkit.problems.Problem`.
:func:`~steinkit.problems.null` turns any family's data distribution into a null problem.

Example:
    >>> prob = banana(10, curvature=1.0)
    >>> prob.family, prob.d, prob.null
    ('banana', 10, False)
"""

from __future__ import annotations

import math

import torch

from ..models import Gaussian, GaussianBernoulliRBM
from ..validation import fraction, nonneg_float, nonneg_int, positive_float, positive_int, real
from .base import Problem
from .distributions import (Banana, Funnel, GaussianMixture, Laplace, LinearMap, RBMData, SinhArcsinh, SinPerturbed,
                            SkewNormal, StudentT)

__all__ = ["rbm", "student_t", "laplace", "mixture", "heavy_model", "banana", "funnel", "skew_normal", "sinh_arcsinh",
           "sin_perturbed", "mixture_weights", "mixture_missing", "mode_means"]


def _standard_normal(d: int) -> Gaussian:
    return Gaussian(torch.zeros(d), torch.eye(d))


def rbm(d: int, hidden: int | None = None, sigma: float = 0.1, seed: int = 0, burn_in: int = 1000) -> Problem:
    """Data from a random Gaussian-Bernoulli RBM p (B.1 of the paper, ``hidden`` = 4d/5 units by
    default), model p with B perturbed by N(0, σ²) noise (Figure 5's benchmark; σ = 0 is a null)."""
    d = positive_int(d, "d")
    hidden = max(1, (4 * d) // 5) if hidden is None else positive_int(hidden, "hidden")
    burn_in = nonneg_int(burn_in, "burn_in")
    g = torch.Generator().manual_seed(seed)
    p = GaussianBernoulliRBM.random(d, hidden, generator=g, dtype=torch.float64)
    q = p.perturb(nonneg_float(sigma, "sigma"), generator=g).float()
    params = {"hidden": hidden, "sigma": float(sigma), "seed": seed}
    if burn_in != 1000:
        params["burn_in"] = burn_in
    return Problem("rbm", d, q, RBMData(p, burn_in), params, 0.0 if sigma == 0 else None)


def _equicorrelation(d: int, rho: float) -> torch.Tensor:
    return (1 - rho) * torch.eye(d, dtype=torch.float64) + rho


def student_t(d: int, nu: float = 5.0, rho: float = 0.0) -> Problem:
    """Data Student-t_ν with covariance Σ = (1 − ρ)I + ρ11ᵀ (ρ = 0: unit covariance), model N(0, Σ):
    heavy tails, same covariance. The strength is 1/ν; ``rho`` in [0, 1) correlates the coordinates."""
    d, nu, rho = positive_int(d, "d"), positive_float(nu, "nu"), nonneg_float(rho, "rho")
    if nu <= 2:
        raise ValueError(f"nu must be > 2 for a finite covariance, got {nu}")
    if rho >= 1:
        raise ValueError(f"rho must lie in [0, 1), got {rho}")
    data = StudentT(d, nu, math.sqrt((nu - 2) / nu))
    if rho == 0:
        return Problem("student-t", d, _standard_normal(d), data, {"nu": float(nu)})
    cov = _equicorrelation(d, rho)
    data = LinearMap(data, torch.linalg.cholesky(cov))
    return Problem("student-t", d, Gaussian(torch.zeros(d), cov.float()), data, {"nu": float(nu), "rho": float(rho)})


def laplace(d: int) -> Problem:
    """Data with independent unit-variance Laplace coordinates, model N(0, I)."""
    d = positive_int(d, "d")
    return Problem("laplace", d, _standard_normal(d), Laplace(d), {})


def mixture(d: int, separation: float = 3.0) -> Problem:
    """Data ½N(−a e₁, I) + ½N(a e₁, I) with a = separation/2, model N(a e₁, I): one mode missing."""
    d, separation = positive_int(d, "d"), positive_float(separation, "separation")
    means = torch.zeros(2, d, dtype=torch.float64)
    means[:, 0] = torch.tensor([-separation / 2, separation / 2])
    data = GaussianMixture(means, torch.tensor([0.5, 0.5]))
    return Problem("mixture", d, Gaussian(means[1].float(), torch.eye(d)), data, {"separation": float(separation)})


def heavy_model(d: int, nu: float = 5.0) -> Problem:
    """Data N(0, I), model Student-t_ν scaled to unit covariance (a model with too heavy tails)."""
    d, nu = positive_int(d, "d"), positive_float(nu, "nu")
    if nu <= 2:
        raise ValueError(f"nu must be > 2 for a finite covariance, got {nu}")
    model = StudentT(d, nu, math.sqrt((nu - 2) / nu))
    data = Gaussian(torch.zeros(d, dtype=torch.float64), torch.eye(d, dtype=torch.float64))
    return Problem("heavy-model", d, model, data, {"nu": float(nu)})


def banana(d: int, curvature: float = 1.0) -> Problem:
    """Curved dependence: data N(0, I) with y₂ = z₂ + b(z₁² − 1) (b = ``curvature``, the strength), model
    the Gaussian of the same mean and covariance, N(0, diag(1, 1 + 2b², 1, …)). Needs d ≥ 2."""
    d = positive_int(d, "d")
    data = Banana(d, curvature)
    var = torch.ones(d)
    var[1] = 1 + 2 * data.b**2
    return Problem("banana", d, Gaussian(torch.zeros(d), torch.diag(var)), data, {"curvature": float(data.b)})


def funnel(d: int, strength: float = 1.0) -> Problem:
    """Curved scale: data with x₂'s spread e^{a·x₁/2} set by x₁ (Neal's funnel, a = ``strength``), model
    the Gaussian of the same mean and covariance, N(0, diag(1, e^{a²/2}, 1, …)). Needs d ≥ 2."""
    d = positive_int(d, "d")
    data = Funnel(d, strength)
    var = torch.ones(d)
    var[1] = math.exp(data.a**2 / 2)
    return Problem("funnel", d, Gaussian(torch.zeros(d), torch.diag(var)), data, {"strength": float(data.a)})


def skew_normal(d: int, alpha: float = 2.0) -> Problem:
    """Skew: data with independent skew-normal coordinates of shape α (the strength), standardized
    to mean 0 and variance 1, model N(0, I)."""
    d = positive_int(d, "d")
    return Problem("skew-normal", d, _standard_normal(d), SkewNormal(d, alpha), {"alpha": real(alpha, "alpha")})


def sinh_arcsinh(d: int, skew: float = 0.0, tail: float = 0.8) -> Problem:
    """Tails and skew: data with independent sinh-arcsinh coordinates (skew ε, tail δ: δ < 1 heavier,
    δ > 1 lighter tails than the normal) standardized to mean 0 and variance 1, model N(0, I)."""
    d = positive_int(d, "d")
    data = SinhArcsinh(d, skew, tail)
    return Problem("sinh-arcsinh", d, _standard_normal(d), data, {"skew": data.skew, "tail": data.tail})


def sin_perturbed(d: int, eps: float = 0.5, omega: float = 1.0) -> Problem:
    """A local perturbation: data N(x; 0, I)·(1 + ε sin(ωx₁)) (ε in [0, 1], the strength), model N(0, I)."""
    d = positive_int(d, "d")
    data = SinPerturbed(d, eps, omega)
    return Problem("sin-perturbed", d, _standard_normal(d), data, {"eps": data.eps, "omega": data.omega})


def mode_means(d: int, modes: int, radius: float) -> torch.Tensor:
    """Means of ``modes`` well-spread components: mode j at ±radius·e_{j mod d} (sign − from j ≥ d on).

    Example:
        >>> mode_means(2, 4, 3.0).tolist()
        [[3.0, 0.0], [0.0, 3.0], [-3.0, 0.0], [0.0, -3.0]]
    """
    d, modes = positive_int(d, "d"), positive_int(modes, "modes")
    if modes > 2 * d:
        raise ValueError(f"modes must be at most 2d = {2 * d} for distinct means, got {modes}")
    means = torch.zeros(modes, d, dtype=torch.float64)
    for j in range(modes):
        means[j, j % d] = radius * (1 if j < d else -1)
    return means


def mixture_weights(d: int, tilt: float = 1.0, modes: int = 4, radius: float = 2.0) -> Problem:
    """Misplaced weights: data an equal-weight mixture of ``modes`` N(μ_j, I) (:func:`mode_means`), model
    the same components with weights ∝ exp(tilt·c_j), c_j evenly spaced in [−1, 1] (tilt: the strength)."""
    d, tilt, radius = positive_int(d, "d"), real(tilt, "tilt"), positive_float(radius, "radius")
    modes = positive_int(modes, "modes")
    if modes < 2:
        raise ValueError(f"modes must be at least 2, got {modes}")
    means = mode_means(d, modes, radius)
    data = GaussianMixture(means, torch.ones(modes))
    model = GaussianMixture(means, torch.exp(tilt * torch.linspace(-1, 1, modes, dtype=torch.float64)))
    return Problem("mixture-weights", d, model, data, {"tilt": tilt, "modes": modes, "radius": radius},
                   0.0 if tilt == 0 else None)


def mixture_missing(d: int, weight: float = 0.1, modes: int = 3, radius: float = 3.0) -> Problem:
    """A missing mode: data a mixture of ``modes`` N(μ_j, I) (:func:`mode_means`) whose last mode has weight
    ``weight`` (the strength) and the others equal weights; model the first ``modes`` − 1 components alone."""
    d, weight, radius = positive_int(d, "d"), fraction(weight, "weight"), positive_float(radius, "radius")
    modes = positive_int(modes, "modes")
    if modes < 2:
        raise ValueError(f"modes must be at least 2, got {modes}")
    means = mode_means(d, modes, radius)
    weights = torch.full((modes,), (1 - weight) / (modes - 1), dtype=torch.float64)
    weights[-1] = weight
    data = GaussianMixture(means, weights) if weight > 0 else GaussianMixture(means[:-1], weights[:-1])
    model = GaussianMixture(means[:-1], torch.ones(modes - 1))
    return Problem("mixture-missing", d, model, data, {"weight": weight, "modes": modes, "radius": radius},
                   0.0 if weight == 0 else None)

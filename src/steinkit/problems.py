"""Problem families: a data distribution p and a model q, with the truth where the math gives it.

A :class:`Problem` holds p (``data``: draws and its score ∇ log p) and q (``model``: anything
:func:`steinkit.as_score` takes). :meth:`Problem.fisher_divergence` is E_p‖s_q − s_p‖², in
closed form for Gaussian pairs and by Monte Carlo with p's exact score otherwise, so
:meth:`Problem.lsd` = E_p‖s_q − s_p‖²/(2λ), the value of the λ-penalised optimal critic (Eq. 9),
is known for every problem. Benchmarks and tests draw their problems from :data:`FAMILIES`.

Example:
    >>> import torch
    >>> prob = gaussian_scale(20, 2.0)              # data N(0, I), model N(0, 2I)
    >>> round(prob.lsd(), 3)
    5.0
    >>> prob.sample(100, generator=torch.Generator().manual_seed(0)).shape
    torch.Size([100, 20])
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import torch
from torch import Tensor

from .models import Gaussian, GaussianBernoulliRBM
from .validation import as_generator, nonneg_float, positive_float, positive_int

__all__ = [
    "Problem", "FAMILIES", "gaussian_mean", "gaussian_scale", "gaussian_correlation", "gaussian_diagonal",
    "rbm", "student_t", "laplace", "mixture", "heavy_model", "StudentT", "Laplace", "GaussianMixture",
]


class StudentT:
    """Isotropic multivariate Student-t with ν degrees of freedom and scale ``scale``.

    Example:
        >>> StudentT(1, 5.0).score(torch.tensor([[1.0]])).tolist()   # −(ν + d) x/(ν + x²)
        [[-1.0]]
    """

    def __init__(self, d: int, nu: float, scale: float = 1.0) -> None:
        self.dim, self.nu, self.scale = positive_int(d, "d"), positive_float(nu, "nu"), positive_float(scale, "scale")

    def log_prob(self, x: Tensor) -> Tensor:
        """Unnormalized log-density, (n,)."""
        return -0.5 * (self.nu + self.dim) * torch.log1p(x.pow(2).sum(-1) / (self.nu * self.scale**2))

    def score(self, x: Tensor) -> Tensor:
        """∇ log p, (n, d)."""
        return -(self.nu + self.dim) * x / (self.nu * self.scale**2 + x.pow(2).sum(-1, keepdim=True))

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        """n draws, (n, d), float64."""
        z = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
        chi2 = 2.0 * torch._standard_gamma(torch.full((n,), self.nu / 2, dtype=torch.float64), generator=generator)
        return self.scale * z / (chi2 / self.nu).sqrt()[:, None]


class Laplace:
    """Independent Laplace(0, b) coordinates (variance 2b²).

    Example:
        >>> Laplace(2, 0.5).score(torch.tensor([[1.0, -1.0]])).tolist()
        [[-2.0, 2.0]]
    """

    def __init__(self, d: int, b: float = 2**-0.5) -> None:
        self.dim, self.b = positive_int(d, "d"), positive_float(b, "b")

    def log_prob(self, x: Tensor) -> Tensor:
        """Unnormalized log-density, (n,)."""
        return -x.abs().sum(-1) / self.b

    def score(self, x: Tensor) -> Tensor:
        """∇ log p (almost everywhere), (n, d)."""
        return -torch.sign(x) / self.b

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        """n draws, (n, d), float64."""
        e = torch.empty(2, n, self.dim, dtype=torch.float64).exponential_(generator=generator)
        return self.b * (e[0] - e[1])


class GaussianMixture:
    """Mixture Σ_k w_k N(μ_k, σ²I) of isotropic Gaussians with one shared variance.

    Example:
        >>> mix = GaussianMixture(torch.tensor([[-1.0], [1.0]]), torch.tensor([0.5, 0.5]))
        >>> mix.score(torch.zeros(1, 1)).tolist()
        [[0.0]]
    """

    def __init__(self, means: Tensor, weights: Tensor, sigma: float = 1.0) -> None:
        self.means, self.weights = means.double(), weights.double() / weights.sum()
        self.dim, self.sigma = int(means.shape[1]), positive_float(sigma, "sigma")

    def _responsibilities(self, x: Tensor) -> Tensor:
        logits = self.weights.log() - (x[:, None, :] - self.means.to(x)).pow(2).sum(-1) / (2 * self.sigma**2)
        return torch.softmax(logits, dim=1)

    def log_prob(self, x: Tensor) -> Tensor:
        """Unnormalized log-density, (n,)."""
        d2 = (x[:, None, :] - self.means.to(x)).pow(2).sum(-1)
        return torch.logsumexp(self.weights.log().to(x) - d2 / (2 * self.sigma**2), dim=1)

    def score(self, x: Tensor) -> Tensor:
        """∇ log p, (n, d)."""
        r = self._responsibilities(x).to(x)
        return (r @ self.means.to(x) - x) / self.sigma**2

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        """n draws, (n, d), float64."""
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        return self.means[k] + self.sigma * torch.randn(n, self.dim, generator=generator, dtype=torch.float64)


class _RBMData:
    """Draws of an RBM by blocked Gibbs sampling (``burn_in`` sweeps) and its exact score."""

    def __init__(self, rbm: GaussianBernoulliRBM, burn_in: int) -> None:
        self.rbm, self.burn_in, self.dim = rbm, burn_in, rbm.dim

    def score(self, x: Tensor) -> Tensor:
        return self.rbm.score(x.to(self.rbm.B.dtype)).detach().to(x.dtype)

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        return self.rbm.sample(n, burn_in=self.burn_in, generator=generator)


@dataclass(frozen=True)
class Problem:
    """Data distribution ``data`` (p) and ``model`` (q) of one problem.

    Attributes:
        family: the family's name in :data:`FAMILIES`.
        d: the dimension.
        model: q, anything :func:`steinkit.as_score` takes.
        data: p, with ``sample(n, generator=)`` and ``score(x)``.
        params: the family's parameters.
        exact_fisher: E_p‖s_q − s_p‖² in closed form, or None (then Monte Carlo).
    """

    family: str
    d: int
    model: Any
    data: Any
    params: Mapping[str, Any] = field(default_factory=dict)
    exact_fisher: float | None = None

    @property
    def null(self) -> bool:
        """Whether p = q (the Fisher divergence is zero)."""
        return self.exact_fisher == 0.0

    @property
    def name(self) -> str:
        """``family(d=…, parameters…)``."""
        args = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in self.params.items())
        return f"{self.family}(d={self.d}{', ' + args if args else ''})"

    def sample(self, n: int, *, seed: int | None = None, generator: torch.Generator | None = None,
               dtype: torch.dtype = torch.float32) -> Tensor:
        """n draws from p, (n, d), in ``dtype``."""
        gen = as_generator(seed, generator)
        return self.data.sample(positive_int(n, "n"), generator=gen).to(dtype)

    def fisher_divergence(self, *, n_mc: int = 200_000, seed: int = 12345) -> float:
        """E_p‖s_q − s_p‖²: the closed form, else a Monte Carlo mean over ``n_mc`` draws of p."""
        if self.exact_fisher is not None:
            return self.exact_fisher
        from .scores import as_score

        x = self.sample(n_mc, seed=seed, dtype=torch.float64)
        total = 0.0
        model_score = as_score(self.model)
        for chunk in x.split(20_000):
            with torch.no_grad():
                diff = model_score(chunk.to(torch.float32)).double() - self.data.score(chunk)
            total += float(diff.pow(2).sum())
        return total / n_mc

    def lsd(self, lam: float = 0.5, **mc: Any) -> float:
        """E_p‖s_q − s_p‖²/(2λ): the LSD of the λ-penalised optimal critic."""
        return self.fisher_divergence(**mc) / (2 * positive_float(lam, "lam"))


def _gaussian_fisher(mean_p: Tensor, cov_p: Tensor, mean_q: Tensor, cov_q: Tensor) -> float:
    """E_p‖s_q − s_p‖² for p = N(mean_p, cov_p), q = N(mean_q, cov_q): s_q − s_p = A x + c."""
    prec_p, prec_q = torch.linalg.inv(cov_p), torch.linalg.inv(cov_q)
    A, c = prec_p - prec_q, prec_q @ mean_q - prec_p @ mean_p
    return float(torch.trace(A @ cov_p @ A.T) + (A @ mean_p + c).pow(2).sum())


def _gaussian_pair(family: str, mean_q: Tensor, cov_q: Tensor, params: dict, cov_p: Tensor | None = None) -> Problem:
    d = mean_q.shape[0]
    mean_p = torch.zeros(d, dtype=torch.float64)
    cov_p = torch.eye(d, dtype=torch.float64) if cov_p is None else cov_p
    fisher = _gaussian_fisher(mean_p, cov_p, mean_q, cov_q)
    return Problem(family, d, Gaussian(mean_q.float(), cov_q.float()), Gaussian(mean_p, cov_p), params, fisher)


def gaussian_mean(d: int, shift: float = 1.0) -> Problem:
    """Data N(0, I), model N(μ, I) with μ = shift·(1, …, 1)/√d (‖μ‖ = shift)."""
    d, shift = positive_int(d, "d"), nonneg_float(shift, "shift")
    return _gaussian_pair("gaussian-mean", torch.full((d,), shift / math.sqrt(d), dtype=torch.float64),
                          torch.eye(d, dtype=torch.float64), {"shift": float(shift)})


def gaussian_scale(d: int, factor: float = 2.0) -> Problem:
    """Data N(0, I), model N(0, factor·I): factor > 1 a model too wide, < 1 too narrow."""
    d, factor = positive_int(d, "d"), positive_float(factor, "factor")
    return _gaussian_pair("gaussian-scale", torch.zeros(d, dtype=torch.float64),
                          factor * torch.eye(d, dtype=torch.float64), {"factor": float(factor)})


def gaussian_correlation(d: int, rho: float = 0.3) -> Problem:
    """Data N(0, I), model N(0, (1 − ρ)I + ρ11ᵀ) (equicorrelated)."""
    d, rho = positive_int(d, "d"), nonneg_float(rho, "rho")
    if rho >= 1:
        raise ValueError(f"rho must lie in [0, 1), got {rho}")
    cov = (1 - rho) * torch.eye(d, dtype=torch.float64) + rho
    return _gaussian_pair("gaussian-correlation", torch.zeros(d, dtype=torch.float64), cov, {"rho": float(rho)})


def gaussian_diagonal(d: int, spread: float = 2.0, seed: int = 0) -> Problem:
    """Data N(0, I), model N(0, diag(v)) with log v uniform on [−log spread, log spread]."""
    d, spread = positive_int(d, "d"), positive_float(spread, "spread")
    g = torch.Generator().manual_seed(seed)
    v = torch.exp((2 * torch.rand(d, generator=g, dtype=torch.float64) - 1) * math.log(spread))
    return _gaussian_pair("gaussian-diagonal", torch.zeros(d, dtype=torch.float64), torch.diag(v),
                          {"spread": float(spread), "seed": seed})


def rbm(d: int, hidden: int | None = None, sigma: float = 0.1, seed: int = 0, burn_in: int = 1000) -> Problem:
    """Data from a random Gaussian-Bernoulli RBM p (B.1 of the paper, ``hidden`` = 4d/5 units by
    default), model p with B perturbed by N(0, σ²) noise (Figure 5's benchmark)."""
    d = positive_int(d, "d")
    hidden = max(1, (4 * d) // 5) if hidden is None else positive_int(hidden, "hidden")
    g = torch.Generator().manual_seed(seed)
    p = GaussianBernoulliRBM.random(d, hidden, generator=g, dtype=torch.float64)
    q = p.perturb(nonneg_float(sigma, "sigma"), generator=g).float()
    return Problem("rbm", d, q, _RBMData(p, burn_in), {"hidden": hidden, "sigma": float(sigma), "seed": seed},
                   0.0 if sigma == 0 else None)


def student_t(d: int, nu: float = 5.0) -> Problem:
    """Data Student-t_ν scaled to unit covariance, model N(0, I) (heavy tails, same covariance)."""
    d, nu = positive_int(d, "d"), positive_float(nu, "nu")
    if nu <= 2:
        raise ValueError(f"nu must be > 2 for a finite covariance, got {nu}")
    data = StudentT(d, nu, math.sqrt((nu - 2) / nu))
    return Problem("student-t", d, Gaussian(torch.zeros(d), torch.eye(d)), data, {"nu": float(nu)})


def laplace(d: int) -> Problem:
    """Data with independent unit-variance Laplace coordinates, model N(0, I)."""
    d = positive_int(d, "d")
    return Problem("laplace", d, Gaussian(torch.zeros(d), torch.eye(d)), Laplace(d), {})


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


FAMILIES: dict[str, Callable[..., Problem]] = {
    "gaussian-mean": gaussian_mean,
    "gaussian-scale": gaussian_scale,
    "gaussian-correlation": gaussian_correlation,
    "gaussian-diagonal": gaussian_diagonal,
    "rbm": rbm,
    "student-t": student_t,
    "laplace": laplace,
    "mixture": mixture,
    "heavy-model": heavy_model,
}
"""Every family by name: a function of the dimension (first argument) and its parameters."""

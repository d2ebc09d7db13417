"""The :class:`Problem` record: a data distribution p, a model q, and the truth between them.

Example:
    >>> import torch
    >>> from steinkit.problems import gaussian_scale
    >>> gaussian_scale(3, 2.0).exact_fisher       # E_p‖s_q − s_p‖² = d(1 − 1/2)² for N(0, I) against N(0, 2I)
    0.75
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import torch
from torch import Tensor

from ..models import Gaussian
from ..validation import as_generator, positive_float, positive_int

__all__ = ["Problem", "gaussian_fisher", "gaussian_pair", "model_of"]


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
        from ..scores import as_score

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


def gaussian_fisher(mean_p: Tensor, cov_p: Tensor, mean_q: Tensor, cov_q: Tensor) -> float:
    """E_p‖s_q − s_p‖² for p = N(mean_p, cov_p), q = N(mean_q, cov_q): s_q − s_p = A x + c."""
    prec_p, prec_q = torch.linalg.inv(cov_p), torch.linalg.inv(cov_q)
    A, c = prec_p - prec_q, prec_q @ mean_q - prec_p @ mean_p
    return float(torch.trace(A @ cov_p @ A.T) + (A @ mean_p + c).pow(2).sum())


def gaussian_pair(family: str, mean_q: Tensor, cov_q: Tensor, params: dict, cov_p: Tensor | None = None) -> Problem:
    """Data N(0, ``cov_p``) (default I), model N(``mean_q``, ``cov_q``), with the closed-form Fisher divergence."""
    d = mean_q.shape[0]
    mean_p = torch.zeros(d, dtype=torch.float64)
    cov_p = torch.eye(d, dtype=torch.float64) if cov_p is None else cov_p
    fisher = gaussian_fisher(mean_p, cov_p, mean_q, cov_q)
    return Problem(family, d, Gaussian(mean_q.float(), cov_q.float()), Gaussian(mean_p, cov_p), params, fisher)


def model_of(dist: Any) -> Any:
    """``dist`` as a model for :func:`steinkit.as_score`: a float32 copy of a :class:`~steinkit.models.Gaussian`
    (whose methods compute in its parameters' dtype), any other distribution of this package itself.

    Example:
        >>> p = Gaussian(torch.zeros(2, dtype=torch.float64), torch.eye(2, dtype=torch.float64))
        >>> model_of(p).mean.dtype
        torch.float32
    """
    if isinstance(dist, Gaussian):
        return Gaussian(dist.mean.detach().float(), dist.cov.detach().float())
    return dist

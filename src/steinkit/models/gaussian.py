"""Multivariate Gaussian with a full covariance matrix.

Input checks follow :mod:`steinkit.validation` (model methods take tensors of shape (n, d)
and cast them to the parameters' dtype and device).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..validation import as_param, float_dtype, model_points, positive_int

__all__ = ["Gaussian"]


class Gaussian(nn.Module):
    r"""Normal distribution :math:`N(\mu, \Sigma)` with a full covariance matrix.

    ``mean`` and ``cov`` are :class:`~torch.nn.Parameter`\ s; :meth:`log_prob` is normalized and
    :meth:`score` is the analytic :math:`-\Sigma^{-1}(x - \mu)`, differentiable in both.

    Arguments:
        mean: The mean, shape (d,).
        cov: The covariance, shape (d, d), symmetric positive definite.

    Example:
        >>> q = Gaussian(torch.zeros(2), torch.eye(2))
        >>> x = q.sample(5, generator=torch.Generator().manual_seed(0))
        >>> q.log_prob(x).shape, q.score(x).shape
        (torch.Size([5]), torch.Size([5, 2]))
        >>> torch.allclose(q.score(x), -x)
        True
    """

    normalized: bool = True

    def __init__(self, mean: Tensor, cov: Tensor) -> None:
        super().__init__()
        dtype = float_dtype(mean, cov)
        mean_t = as_param(mean, "mean", dtype, ndim=1)
        cov_t = as_param(cov, "cov", dtype, ndim=2)
        d = mean_t.shape[0]
        if d == 0:
            raise ValueError("mean must have at least one entry, got shape (0,)")
        if cov_t.shape != (d, d):
            raise ValueError(f"cov must have shape ({d}, {d}) to match mean of shape ({d},), got {tuple(cov_t.shape)}")
        tol = 1e-6 if dtype == torch.float64 else 1e-4
        if not torch.allclose(cov_t, cov_t.T, rtol=tol, atol=tol * float(cov_t.abs().max())):
            raise ValueError("cov must be symmetric")
        _, info = torch.linalg.cholesky_ex(cov_t)
        if int(info) != 0:
            raise ValueError("cov must be positive definite (its Cholesky factorization failed)")
        self.dim: int = int(d)
        self.mean = nn.Parameter(mean_t)
        self.cov = nn.Parameter(cov_t)

    def _cholesky(self) -> Tensor:
        chol, info = torch.linalg.cholesky_ex(self.cov)
        if int(info) != 0:
            raise ValueError("cov is no longer positive definite (its Cholesky factorization failed)")
        return chol

    def log_prob(self, x: Tensor) -> Tensor:
        """Normalized log-density of each row of ``x`` (n, d); returns (n,)."""
        x = model_points(x, self.dim, self.mean)
        chol = self._cholesky()
        white = torch.linalg.solve_triangular(chol, (x - self.mean).T, upper=False)  # (d, n)
        half_logdet = torch.log(torch.diagonal(chol)).sum()
        return -0.5 * white.square().sum(0) - half_logdet - 0.5 * self.dim * math.log(2 * math.pi)

    def score(self, x: Tensor) -> Tensor:
        """Score :math:`-\\Sigma^{-1}(x - \\mu)` of each row of ``x`` (n, d); returns (n, d)."""
        x = model_points(x, self.dim, self.mean)
        chol = self._cholesky()
        return -torch.cholesky_solve((x - self.mean).T, chol, upper=False).T

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        """Draw ``n`` independent samples, shape (n, d)."""
        n = positive_int(n, "n")
        with torch.no_grad():
            chol = self._cholesky()
            z = torch.randn(n, self.dim, generator=generator, dtype=self.mean.dtype, device=self.mean.device)
            return torch.addmm(self.mean, z, chol.T)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"

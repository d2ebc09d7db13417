"""Multivariate Gaussian with a full covariance matrix.

The module also holds the small input checks shared by every model in
:mod:`steinkit.models` (``_check_points``, ``_check_count``, ``_as_param``).
"""

from __future__ import annotations

import math
import operator
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["Gaussian"]


def _float_dtype(*values: Any) -> torch.dtype:
    """The floating dtype shared by ``values`` (the default dtype if none is floating)."""
    dtypes = [v.dtype for v in values if isinstance(v, Tensor) and v.is_floating_point()]
    if not dtypes:
        return torch.get_default_dtype()
    dtype = dtypes[0]
    for other in dtypes[1:]:
        dtype = torch.promote_types(dtype, other)
    return dtype


def _as_param(value: Any, name: str, dtype: torch.dtype, ndim: int) -> Tensor:
    """Convert ``value`` to a finite floating tensor with ``ndim`` dimensions, or raise."""
    try:
        t = torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(f"{name} must be a tensor or array-like of numbers, got {type(value).__name__}") from err
    if t.is_complex() or t.dtype == torch.bool:
        raise TypeError(f"{name} must be a real tensor, got dtype {t.dtype}")
    if t.ndim != ndim:
        raise ValueError(f"{name} must be a {ndim}-D tensor, got shape {tuple(t.shape)}")
    t = t.detach().to(dtype=dtype).clone()
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} must contain only finite values")
    return t


def _check_points(x: Tensor, dim: int, like: Tensor) -> Tensor:
    """Validate a batch of points ``x`` of shape (n, dim); return it in ``like``'s dtype and device."""
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a torch.Tensor of shape (n, {dim}), got {type(x).__name__}")
    if x.ndim != 2 or x.shape[1] != dim:
        raise ValueError(f"x must be a 2-D tensor (n, {dim}) matching the model dimension {dim}, got shape {tuple(x.shape)}")
    if x.dtype != like.dtype or x.device != like.device:
        x = x.to(dtype=like.dtype, device=like.device)
    return x


def _check_count(n: Any, name: str = "n", minimum: int = 1) -> int:
    """Validate an integer count such as a sample size or a number of steps."""
    if isinstance(n, bool):
        raise TypeError(f"{name} must be an int, got bool")
    try:
        n = operator.index(n)
    except TypeError:
        raise TypeError(f"{name} must be an int, got {type(n).__name__}") from None
    if n < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {n}")
    return n


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
        dtype = _float_dtype(mean, cov)
        mean_t = _as_param(mean, "mean", dtype, ndim=1)
        cov_t = _as_param(cov, "cov", dtype, ndim=2)
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
        x = _check_points(x, self.dim, self.mean)
        chol = self._cholesky()
        white = torch.linalg.solve_triangular(chol, (x - self.mean).T, upper=False)  # (d, n)
        half_logdet = torch.log(torch.diagonal(chol)).sum()
        return -0.5 * white.square().sum(0) - half_logdet - 0.5 * self.dim * math.log(2 * math.pi)

    def score(self, x: Tensor) -> Tensor:
        """Score :math:`-\\Sigma^{-1}(x - \\mu)` of each row of ``x`` (n, d); returns (n, d)."""
        x = _check_points(x, self.dim, self.mean)
        chol = self._cholesky()
        return -torch.cholesky_solve((x - self.mean).T, chol, upper=False).T

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        """Draw ``n`` independent samples, shape (n, d)."""
        n = _check_count(n)
        with torch.no_grad():
            chol = self._cholesky()
            z = torch.randn(n, self.dim, generator=generator, dtype=self.mean.dtype, device=self.mean.device)
            return torch.addmm(self.mean, z, chol.T)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"

r"""Linear ICA with Laplace sources: :math:`z_i \sim \mathrm{Laplace}(0, 1)` i.i.d., :math:`x = W z`.

.. math:: \log p(x) = \sum_i \log p_z\big((W^{-1}x)_i\big) - \log|\det W|, \qquad \log p_z(z) = -|z| - \log 2,

and the score is :math:`\nabla_x \log p(x) = -W^{-T}\,\mathrm{sign}(W^{-1}x)` (paper Eq. 14).

The score is piecewise constant in ``x``, with jumps on the hyperplanes :math:`(W^{-1}x)_i = 0`
that move with ``W``. Plain autograd differentiates ``sign`` to zero, which drops the jumps from
every derivative: expectations such as :math:`E_p[s_q(x)^\top f(x)]` then get a parameter gradient
without the contribution of the moving boundaries, and Stein-type training (LSD) stalls at
spurious fixed points short of the maximum-likelihood solution, while SSM's Hessian term
is identically 0. ``boundary_width`` keeps the value ``sign`` but differentiates it as
:math:`\tanh(z/w)`, whose derivative integrates to the jump: a kernel estimate of the delta
term. Where the model is right the critic vanishes, so the width does not move LSD's fixed
point; it trades bias for variance only on the way there.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .gaussian import _as_param, _check_count, _check_points, _float_dtype

__all__ = ["LinearICA"]

_LOG2 = math.log(2.0)


def _sign_with_smoothed_gradient(z: Tensor, width: float | None) -> Tensor:
    """``sign(z)`` whose derivatives are those of ``tanh(z / width)`` (``width=None``: plain sign)."""
    if width is None:
        return torch.sign(z)
    smooth = torch.tanh(z / width)
    return smooth + (torch.sign(z) - smooth).detach()


class LinearICA(nn.Module):
    r"""Linear ICA model :math:`x = W z` with i.i.d. Laplace(0, 1) sources ``z``.

    ``W`` is a trainable :class:`~torch.nn.Parameter`; :meth:`log_prob` is normalized. Both
    :meth:`log_prob` and :meth:`score` factor ``W`` once per call (LU) instead of inverting it.
    The score's value uses ``sign``; its derivatives (in ``x`` and ``W``) are those of
    ``tanh(z / boundary_width)`` (see the module docstring), or zero with ``boundary_width=None``.

    Arguments:
        W: The square, non-singular mixing matrix, shape (d, d).
        boundary_width: Width, in source units, of the smoothed derivative of ``sign``
            (default 0.5); ``None`` differentiates ``sign`` to zero.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> q = LinearICA.random(3, generator=g)
        >>> x = q.sample(10, generator=g)
        >>> q.log_prob(x).shape, q.score(x).shape
        (torch.Size([10]), torch.Size([10, 3]))
    """

    normalized: bool = True

    def __init__(self, W: Tensor, *, boundary_width: float | None = 0.5) -> None:
        super().__init__()
        W_t = _as_param(W, "W", _float_dtype(W), ndim=2)
        d = W_t.shape[0]
        if d == 0 or W_t.shape != (d, d):
            raise ValueError(f"W must be a non-empty square matrix (d, d), got shape {tuple(W_t.shape)}")
        _, _, info = torch.linalg.lu_factor_ex(W_t)
        if int(info) != 0:
            raise ValueError("W must be non-singular (its LU factorization has a zero pivot)")
        if boundary_width is not None and not (isinstance(boundary_width, (int, float)) and boundary_width > 0):
            raise ValueError(f"boundary_width must be a positive float or None, got {boundary_width!r}")
        self.dim: int = int(d)
        self.boundary_width = None if boundary_width is None else float(boundary_width)
        self.W = nn.Parameter(W_t)

    @classmethod
    def random(
        cls,
        dim: int,
        *,
        generator: torch.Generator | None = None,
        max_condition: float | None = None,
        dtype: torch.dtype = torch.float32,
        max_tries: int = 10_000,
    ) -> LinearICA:
        """Random mixing matrix as in the paper's B.5: standard Gaussian entries, redrawn until
        the 2-norm condition number is at most ``max_condition`` (default ``dim``).

        Example:
            >>> q = LinearICA.random(5, generator=torch.Generator().manual_seed(0))
            >>> bool(torch.linalg.cond(q.W) <= 5)
            True
        """
        dim = _check_count(dim, "dim")
        max_tries = _check_count(max_tries, "max_tries")
        if max_condition is None:
            max_condition = float(dim)
        max_condition = float(max_condition)
        if not max_condition >= 1.0:  # also rejects NaN
            raise ValueError(f"max_condition must be >= 1 (no matrix has a condition number below 1), got {max_condition}")
        for _ in range(max_tries):
            W = torch.randn(dim, dim, generator=generator, dtype=torch.float64)
            if float(torch.linalg.cond(W)) <= max_condition:
                return cls(W.to(dtype))
        raise RuntimeError(
            f"no {dim}x{dim} Gaussian matrix with condition number <= {max_condition} in {max_tries} draws; "
            "raise max_condition or max_tries"
        )

    def _unmix(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """LU factors of ``W`` and the sources ``z = W^{-1} x`` for each row of ``x``."""
        lu, pivots, info = torch.linalg.lu_factor_ex(self.W)
        if int(info) != 0:
            raise ValueError("W is singular (its LU factorization has a zero pivot)")
        z = torch.linalg.lu_solve(lu, pivots, x.T).T
        return lu, pivots, z

    def log_prob(self, x: Tensor) -> Tensor:
        """Normalized log-density of each row of ``x`` (n, d); returns (n,)."""
        x = _check_points(x, self.dim, self.W)
        lu, _, z = self._unmix(x)
        log_abs_det = torch.log(torch.diagonal(lu).abs()).sum()
        return -z.abs().sum(1) - self.dim * _LOG2 - log_abs_det

    def score(self, x: Tensor) -> Tensor:
        """Score :math:`-W^{-T}\\mathrm{sign}(W^{-1}x)` of each row of ``x`` (n, d); returns (n, d)."""
        x = _check_points(x, self.dim, self.W)
        lu, pivots, z = self._unmix(x)
        sign = _sign_with_smoothed_gradient(z, self.boundary_width)
        return -torch.linalg.lu_solve(lu, pivots, sign.T, adjoint=True).T

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        """Draw ``n`` independent samples ``x = W z``, shape (n, d)."""
        n = _check_count(n)
        W = self.W.detach()
        with torch.no_grad():
            # Laplace(0, 1) = difference of two independent Exponential(1) variables.
            e = torch.empty(2, n, self.dim, dtype=W.dtype, device=W.device).exponential_(generator=generator)
            return (e[0] - e[1]) @ W.T

    def extra_repr(self) -> str:
        return f"dim={self.dim}"

r"""Linear ICA: :math:`x = W z` with i.i.d. Laplace(0, 1) sources (default) or Logistic(0, 1) ones.

.. math:: \log p(x) = \sum_i \log p_z\big((W^{-1}x)_i\big) - \log|\det W|, \qquad \log p_z(z) = -|z| - \log 2,

and the score is :math:`\nabla_x \log p(x) = -W^{-T}\,\mathrm{sign}(W^{-1}x)` (paper Eq. 14).
With ``sources="logistic"``, :math:`\log p_z(z) = -2\log(2\cosh(z/2))` and the source score is
:math:`-\tanh(z/2)` (smooth, so ``boundary_width`` plays no role).

The score is piecewise constant in ``x``, with jumps on the hyperplanes :math:`(W^{-1}x)_i = 0`
that move with ``W``. Plain autograd differentiates ``sign`` to zero, which drops the jumps from
every derivative: expectations such as :math:`E_p[s_q(x)^\top f(x)]` then get a parameter gradient
without the contribution of the moving boundaries, and Stein-type training (LSD) stalls at
spurious fixed points short of the maximum-likelihood solution, while SSM's Hessian term
is identically 0. ``boundary_width`` keeps the value ``sign`` but differentiates it as
:math:`\tanh(z/w)`, whose derivative integrates to the jump: a kernel estimate of the delta
term. Where the model is right the critic vanishes, so the width does not move LSD's fixed
point; it trades bias for variance only on the way there.

What is trained is either the mixing matrix W (``parametrization="mixing"``, the paper's Eq. 14)
or the unmixing matrix B = W^{-1} (``"unmixing"``, as in the authors' released code). The
density is the same; the optimization landscape is not: with B the score ``-B^T sign(B x)`` is
linear in the parameter away from the jumps, and Stein-type training is far better conditioned
(measured in docs/archive/ica.md).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Literal

import torch
from torch import Tensor, nn

from ..validation import as_param, float_dtype, model_points, one_of, positive_float, positive_int

__all__ = ["LinearICA", "Parametrization", "SOURCES"]

Parametrization = Literal["mixing", "unmixing"]
SOURCES = ("laplace", "logistic")

_LOG2 = math.log(2.0)


def _sign_with_smoothed_gradient(z: Tensor, width: float | None) -> Tensor:
    """``sign(z)`` whose derivatives are those of ``tanh(z / width)`` (``width=None``: plain sign)."""
    if width is None:
        return torch.sign(z)
    smooth = torch.tanh(z / width)
    return smooth + (torch.sign(z) - smooth).detach()


def _log_2cosh(a: Tensor) -> Tensor:
    r"""Numerically stable :math:`\log(2\cosh a) = |a| + \log(1 + e^{-2|a|})`."""
    b = a.abs()
    return b + torch.log1p(torch.exp(-2.0 * b))


class LinearICA(nn.Module):
    r"""Linear ICA model :math:`x = W z` with i.i.d. Laplace(0, 1) (or Logistic(0, 1)) sources ``z``.

    The trainable :class:`~torch.nn.Parameter` is ``weight``: the mixing matrix W, or with
    ``parametrization="unmixing"`` the unmixing matrix B = W^{-1}; the properties :attr:`W`
    and :attr:`B` give both. :meth:`log_prob` is normalized. The score's value uses ``sign``;
    its derivatives (in ``x`` and the parameter) are those of ``tanh(z / boundary_width)``
    (see the module docstring), or zero with ``boundary_width=None``. ``sources="logistic"``
    takes Logistic(0, 1) sources instead; subclasses may change the source density by
    overriding :meth:`source_log_prob`, :meth:`source_score` and :meth:`sample_sources`.

    Arguments:
        W: The square, non-singular mixing matrix, shape (d, d).
        boundary_width: Width, in source units, of the smoothed derivative of ``sign``
            (default 0.5); ``None`` differentiates ``sign`` to zero.
        parametrization: ``"mixing"`` (train W, default) or ``"unmixing"`` (train B = W^{-1}).
        sources: ``"laplace"`` (default, the paper's model) or ``"logistic"``.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> q = LinearICA.random(3, generator=g)
        >>> x = q.sample(10, generator=g)
        >>> q.log_prob(x).shape, q.score(x).shape
        (torch.Size([10]), torch.Size([10, 3]))
        >>> u = LinearICA(q.W.detach(), parametrization="unmixing")
        >>> bool(torch.allclose(u.log_prob(x), q.log_prob(x), atol=1e-4))
        True
        >>> LinearICA(q.W.detach(), sources="logistic").score(x).shape
        torch.Size([10, 3])
    """

    normalized: bool = True

    def __init__(
        self,
        W: Tensor,
        *,
        boundary_width: float | None = 0.5,
        parametrization: Parametrization = "mixing",
        sources: str = "laplace",
    ) -> None:
        super().__init__()
        W_t = as_param(W, "W", float_dtype(W), ndim=2)
        d = W_t.shape[0]
        if d == 0 or W_t.shape != (d, d):
            raise ValueError(f"W must be a non-empty square matrix (d, d), got shape {tuple(W_t.shape)}")
        _, _, info = torch.linalg.lu_factor_ex(W_t)
        if int(info) != 0:
            raise ValueError("W must be non-singular (its LU factorization has a zero pivot)")
        if boundary_width is not None:
            boundary_width = positive_float(boundary_width, "boundary_width")
        one_of(parametrization, "parametrization", ("mixing", "unmixing"))
        self.sources: str = one_of(sources, "sources", SOURCES)
        self.dim: int = int(d)
        self.boundary_width = None if boundary_width is None else float(boundary_width)
        self.parametrization: Parametrization = parametrization
        self.weight = nn.Parameter(W_t if parametrization == "mixing" else torch.linalg.inv(W_t))

    @property
    def W(self) -> Tensor:
        """The mixing matrix (the parameter itself when ``parametrization == "mixing"``)."""
        return self.weight if self.parametrization == "mixing" else torch.linalg.inv(self.weight)

    @property
    def B(self) -> Tensor:
        """The unmixing matrix W^{-1} (the parameter itself when ``parametrization == "unmixing"``)."""
        return self.weight if self.parametrization == "unmixing" else torch.linalg.inv(self.weight)

    @classmethod
    def random(
        cls,
        dim: int,
        *,
        generator: torch.Generator | None = None,
        max_condition: float | None = None,
        dtype: torch.dtype = torch.float32,
        max_tries: int = 10_000,
        **options: Any,
    ) -> LinearICA:
        """Random mixing matrix as in the paper's B.5: standard Gaussian entries, redrawn until
        the 2-norm condition number is at most ``max_condition`` (default ``dim``).

        ``options`` (``boundary_width``, ``parametrization``, ``sources``) go to the constructor.

        Example:
            >>> q = LinearICA.random(5, generator=torch.Generator().manual_seed(0))
            >>> bool(torch.linalg.cond(q.W) <= 5)
            True
        """
        dim = positive_int(dim, "dim")
        max_tries = positive_int(max_tries, "max_tries")
        if max_condition is None:
            max_condition = float(dim)
        max_condition = float(max_condition)
        if not max_condition >= 1.0:  # also rejects NaN
            raise ValueError(f"max_condition must be >= 1 (no matrix has a condition number below 1), got {max_condition}")
        for _ in range(max_tries):
            W = torch.randn(dim, dim, generator=generator, dtype=torch.float64)
            if float(torch.linalg.cond(W)) <= max_condition:
                return cls(W.to(dtype), **options)
        raise RuntimeError(
            f"no {dim}x{dim} Gaussian matrix with condition number <= {max_condition} in {max_tries} draws; "
            "raise max_condition or max_tries"
        )

    # ---- the source density (override in subclasses) --------------------------------------
    def source_log_prob(self, z: Tensor) -> Tensor:
        """Log-density of the sources, summed over each row of ``z`` (n, d); returns (n,)."""
        if self.sources == "logistic":
            return -2.0 * _log_2cosh(0.5 * z).sum(1)
        return -z.abs().sum(1) - self.dim * _LOG2

    def source_score(self, z: Tensor) -> Tensor:
        """Score of the sources at each row of ``z``: ``-sign(z)`` with smoothed derivatives
        (Laplace), or ``-tanh(z / 2)`` (logistic)."""
        if self.sources == "logistic":
            return -torch.tanh(0.5 * z)
        return -_sign_with_smoothed_gradient(z, self.boundary_width)

    def sample_sources(self, n: int, generator: torch.Generator | None, dtype: torch.dtype) -> Tensor:
        """``n`` rows of i.i.d. sources, shape (n, d)."""
        if self.sources == "logistic":  # inverse CDF of uniforms, in float64
            u = torch.rand(n, self.dim, generator=generator, dtype=torch.float64).clamp(1e-12, 1 - 1e-12)
            return (torch.log(u) - torch.log1p(-u)).to(dtype)
        # Laplace(0, 1) = difference of two independent Exponential(1) variables.
        e = torch.empty(2, n, self.dim, dtype=dtype).exponential_(generator=generator)
        return e[0] - e[1]

    # ---- the linear map -------------------------------------------------------------------
    def _unmix(self, x: Tensor) -> tuple[Tensor, Tensor, Callable[[Tensor], Tensor]]:
        """Sources ``z = W^{-1} x`` of each row of ``x``, ``log|det W|``, and the map taking
        rows ``g`` to rows of ``W^{-T} g`` (how a source-space score becomes an x-space one).
        Factors the parameter once (LU) instead of inverting it."""
        lu, pivots, info = torch.linalg.lu_factor_ex(self.weight)
        if int(info) != 0:
            raise ValueError(
                f"the {self.parametrization} matrix is singular (its LU factorization has a zero pivot)"
            )
        log_abs_det = torch.log(torch.diagonal(lu).abs()).sum()
        if self.parametrization == "mixing":
            z = torch.linalg.lu_solve(lu, pivots, x.T).T
            return z, log_abs_det, lambda g: torch.linalg.lu_solve(lu, pivots, g.T, adjoint=True).T
        B = self.weight
        return x @ B.T, -log_abs_det, lambda g: g @ B

    def log_prob(self, x: Tensor) -> Tensor:
        """Normalized log-density of each row of ``x`` (n, d); returns (n,)."""
        x = model_points(x, self.dim, self.weight)
        z, log_abs_det_W, _ = self._unmix(x)
        return self.source_log_prob(z) - log_abs_det_W

    def score(self, x: Tensor) -> Tensor:
        """Score :math:`-W^{-T}\\mathrm{sign}(W^{-1}x)` (Laplace sources) of each row of ``x`` (n, d);
        returns (n, d)."""
        x = model_points(x, self.dim, self.weight)
        z, _, pull_back = self._unmix(x)
        return pull_back(self.source_score(z))

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        """Draw ``n`` independent samples ``x = W z``, shape (n, d)."""
        n = positive_int(n, "n")
        with torch.no_grad():
            W = self.W.detach()
            return self.sample_sources(n, generator, W.dtype).to(W.device) @ W.T

    def extra_repr(self) -> str:
        return f"dim={self.dim}, parametrization={self.parametrization!r}, sources={self.sources!r}"

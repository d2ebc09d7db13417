r"""Gaussian-Bernoulli restricted Boltzmann machine with hidden units in {-1, +1}.

Joint density (paper Sec. 7.1), with visible :math:`x \in R^{d_x}` and hidden
:math:`h \in \{-1, +1\}^{d_h}`:

.. math:: p(x, h) \propto \exp(\tfrac12 x^T B h + b^T x + c^T h - \tfrac12 \|x\|^2).

Summing out :math:`h` gives the unnormalized marginal

.. math:: \log p(x) = b^T x - \tfrac12\|x\|^2 + \sum_j \log\cosh(\tfrac12 (B^T x)_j + c_j) + \text{const},

so the score is :math:`b - x + \tfrac12 B \tanh(\tfrac12 B^T x + c)`. (The paper prints it without
the two factors 1/2; that is a slip.) The conditionals used by the Gibbs sampler are
:math:`P(h_j = +1 \mid x) = \sigma(2(\tfrac12 B^T x + c)_j)` and :math:`x \mid h \sim N(b + \tfrac12 B h, I)`.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..validation import (
    as_device,
    as_param,
    float_dtype,
    generator_on,
    model_points,
    nonneg_float,
    nonneg_int,
    positive_int,
    wrong_type,
)

__all__ = ["GaussianBernoulliRBM"]

_LOG2 = math.log(2.0)


def _log_cosh(a: Tensor) -> Tensor:
    """Numerically stable :math:`\\log\\cosh(a) = |a| + \\log(1 + e^{-2|a|}) - \\log 2`."""
    abs_a = a.abs()
    return abs_a + torch.log1p(torch.exp(-2.0 * abs_a)) - _LOG2


class GaussianBernoulliRBM(nn.Module):
    r"""Gaussian-Bernoulli RBM :math:`p(x, h) \propto \exp(\tfrac12 x^T B h + b^T x + c^T h - \tfrac12\|x\|^2)`.

    :meth:`log_prob` is the marginal of :math:`x` *without* its normalizing constant
    (``normalized = False``); :meth:`score` is exact and differentiable in ``B``, ``b``, ``c``.

    Arguments:
        B: Interaction weights, shape (dx, dh).
        b: Visible bias, shape (dx,).
        c: Hidden bias, shape (dh,).

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> rbm = GaussianBernoulliRBM.random(5, 3, generator=g)
        >>> x = rbm.sample(100, burn_in=100, generator=g)
        >>> rbm.score(x).shape, rbm.log_prob(x).shape
        (torch.Size([100, 5]), torch.Size([100]))
        >>> rbm.perturb(0.01, generator=g).B.shape
        torch.Size([5, 3])
    """

    normalized: bool = False

    def __init__(self, B: Tensor, b: Tensor, c: Tensor) -> None:
        super().__init__()
        dtype = float_dtype(B, b, c)
        B_t = as_param(B, "B", dtype, ndim=2)
        b_t = as_param(b, "b", dtype, ndim=1)
        c_t = as_param(c, "c", dtype, ndim=1)
        dx, dh = B_t.shape
        if dx == 0 or dh == 0:
            raise ValueError(f"B must have shape (dx, dh) with dx, dh >= 1, got {tuple(B_t.shape)}")
        if b_t.shape != (dx,):
            raise ValueError(f"b must have shape ({dx},) to match B of shape {tuple(B_t.shape)}, got {tuple(b_t.shape)}")
        if c_t.shape != (dh,):
            raise ValueError(f"c must have shape ({dh},) to match B of shape {tuple(B_t.shape)}, got {tuple(c_t.shape)}")
        self.dim: int = int(dx)
        self.hidden_dim: int = int(dh)
        self.B = nn.Parameter(B_t)
        self.b = nn.Parameter(b_t)
        self.c = nn.Parameter(c_t)

    @classmethod
    def random(
        cls,
        dx: int,
        dh: int,
        *,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> GaussianBernoulliRBM:
        """Random RBM as in the paper's B.1: entries of ``B`` uniform on {-1, +1}, ``b``, ``c`` ~ N(0, I).

        Example:
            >>> rbm = GaussianBernoulliRBM.random(50, 40, generator=torch.Generator().manual_seed(0))
            >>> rbm.dim, rbm.hidden_dim
            (50, 40)
        """
        dx = positive_int(dx, "dx")
        dh = positive_int(dh, "dh")
        B = torch.randint(0, 2, (dx, dh), generator=generator).to(dtype) * 2 - 1
        b = torch.randn(dx, generator=generator, dtype=dtype)
        c = torch.randn(dh, generator=generator, dtype=dtype)
        return cls(B, b, c)

    def perturb(self, std: float, *, generator: torch.Generator | None = None) -> GaussianBernoulliRBM:
        """A new RBM whose ``B`` has i.i.d. N(0, std²) noise added; ``b`` and ``c`` are copied unchanged.

        Example:
            >>> rbm = GaussianBernoulliRBM.random(4, 2, generator=torch.Generator().manual_seed(0))
            >>> torch.equal(rbm.perturb(0.0).B, rbm.B)
            True
        """
        std = nonneg_float(std, "std")
        with torch.no_grad():
            noise = torch.randn(self.B.shape, generator=generator, dtype=self.B.dtype, device=self.B.device)
            return type(self)(self.B + std * noise, self.b.clone(), self.c.clone())

    def _preactivation(self, x: Tensor) -> Tensor:
        """:math:`\\tfrac12 B^T x + c` for each row of ``x``; shape (n, dh)."""
        return torch.addmm(self.c, x, self.B, alpha=0.5)

    def visible_mean(self, x: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        r"""One more half-sweep from visible states ``x``: draw :math:`h \mid x`, return
        :math:`E[x \mid h] = b + \tfrac12 B h`, (n, dx).

        This is the noise-free image a Gibbs chain at ``x`` is about to emit (the usual way to
        show Gaussian-visible RBM samples, next to the raw ``x``). Runs under ``torch.no_grad()``.

        Example:
            >>> rbm = GaussianBernoulliRBM.random(4, 2, generator=torch.Generator().manual_seed(0))
            >>> rbm.visible_mean(torch.zeros(3, 4), generator=torch.Generator().manual_seed(1)).shape
            torch.Size([3, 4])
        """
        x = model_points(x, self.dim, self.B)
        with torch.no_grad():
            B, b, c = self.B.detach(), self.b.detach(), self.c.detach()
            p = torch.sigmoid(2.0 * (0.5 * x @ B + c))  # P(h = +1 | x)
            u = torch.rand(p.shape, generator=generator, dtype=p.dtype, device=p.device)
            h = (u < p).to(B.dtype) * 2.0 - 1.0
            return b + 0.5 * h @ B.T

    def log_prob(self, x: Tensor) -> Tensor:
        """Unnormalized marginal :math:`b^T x - \\tfrac12\\|x\\|^2 + \\sum_j \\log\\cosh(\\cdot)`; returns (n,)."""
        x = model_points(x, self.dim, self.B)
        return x @ self.b - 0.5 * x.square().sum(1) + _log_cosh(self._preactivation(x)).sum(1)

    def score(self, x: Tensor) -> Tensor:
        """Exact score :math:`b - x + \\tfrac12 B \\tanh(\\tfrac12 B^T x + c)`; returns (n, dx)."""
        x = model_points(x, self.dim, self.B)
        return torch.addmm(self.b - x, torch.tanh(self._preactivation(x)), self.B.T, alpha=0.5)

    def sample(
        self,
        n: int,
        *,
        burn_in: int = 2000,
        generator: torch.Generator | None = None,
        x0: Tensor | None = None,
        device: torch.device | str | None = None,
    ) -> Tensor:
        """Run ``n`` independent blocked Gibbs chains for ``burn_in`` sweeps; return their last ``x``, (n, dx).

        One sweep draws h | x then x | h (:func:`_gibbs`). Chains start at ``x0`` (n, dx), by
        default N(0, I) draws, and all advance together as matrix products on preallocated
        buffers (no per-chain Python work). Runs under ``torch.no_grad()``; the same
        ``generator`` state gives the same samples. The chains run on ``device`` (default: where
        ``x0`` lives, else where the RBM's parameters are), with ``generator`` there; the RBM
        itself is not moved.

        Example:
            >>> rbm = GaussianBernoulliRBM.random(3, 2, generator=torch.Generator().manual_seed(0))
            >>> rbm.sample(4, burn_in=50, generator=torch.Generator().manual_seed(1)).shape
            torch.Size([4, 3])
        """
        n = positive_int(n, "n")
        burn_in = nonneg_int(burn_in, "burn_in")
        device = as_device(device, x0 if isinstance(x0, Tensor) else self.B)
        generator_on(generator, device)
        B, b, c = (t.detach().to(device) for t in (self.B, self.b, self.c))
        dx = self.dim
        with torch.no_grad():
            if x0 is None:
                x = torch.randn(n, dx, generator=generator, dtype=B.dtype, device=device)
            else:
                if not isinstance(x0, Tensor):
                    raise wrong_type("x0", f"a torch.Tensor of shape ({n}, {dx})", x0)
                if x0.shape != (n, dx):
                    raise ValueError(f"x0 must have shape ({n}, {dx}), got {tuple(x0.shape)}")
                x = x0.detach().to(dtype=B.dtype, device=device, copy=True)
            return x if burn_in == 0 else _gibbs(x, B, b, c, burn_in, generator)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, hidden_dim={self.hidden_dim}"


def _gibbs(x: Tensor, B: Tensor, b: Tensor, c: Tensor, burn_in: int, generator: torch.Generator | None) -> Tensor:
    r"""``burn_in`` >= 1 blocked Gibbs sweeps from the chains' states ``x`` (n, dx), overwritten.

    With :math:`h = 2u - 1`, :math:`u \in \{0, 1\}^{d_h}`: :math:`b + \tfrac12 B h = (b - \tfrac12 B 1) + B u`
    and the logits of :math:`u` are :math:`y = 2(\tfrac12 B^T x + c) = B^T x + 2c`. Between sweeps
    ``x`` enters only through ``y``, so when :math:`d_h < d_x` the intermediate sweeps draw ``y``
    directly, :math:`y \mid u \sim N(B^T(b - \tfrac12 B 1) + 2c + B^T B u,\; B^T B)`, with
    :math:`d_h` instead of :math:`d_x` normal draws (an exact reformulation of the same chain;
    random numbers dominate the cost). The last sweep draws ``x`` itself.
    """
    dtype, (dx, dh) = B.dtype, B.shape
    two_c = 2.0 * c
    x_bias = b - 0.5 * B.sum(1)  # mean of x given u = 0
    B_T = B.T.contiguous()
    y = torch.addmm(two_c, x, B)  # logits of u given x0
    uniform = torch.empty_like(y)
    u = torch.empty_like(y)
    noise = torch.empty_like(x)
    projected = dh < dx and burn_in > 1
    if projected:
        gram = (B_T.double() @ B.double())  # B^T B, the covariance of y given u
        evals, evecs = torch.linalg.eigh(gram)
        factor_T = (evecs * evals.clamp_min(0).sqrt()).T.to(dtype)  # L^T with L L^T = B^T B
        gram = gram.to(dtype)
        y_bias = x_bias @ B + two_c
        noise_y = torch.empty_like(y)
        tmp = torch.empty_like(y)
    for step in range(burn_in):
        # u | x: u_j = 1 with probability sigmoid(y_j).
        torch.sigmoid(y, out=y)
        uniform.uniform_(generator=generator)
        torch.lt(uniform, y, out=u)  # writes 0.0 / 1.0 straight into the float buffer
        last = step == burn_in - 1
        if projected and not last:
            # y | u ~ N(y_bias + B^T B u, B^T B), drawn as y_bias + L z + B^T B u.
            noise_y.normal_(generator=generator)
            torch.addmm(y_bias, noise_y, factor_T, out=tmp)
            torch.addmm(tmp, u, gram, out=y)
        else:
            # x | u ~ N(x_bias + B u, I).
            noise.normal_(generator=generator)
            noise.add_(x_bias)
            torch.addmm(noise, u, B_T, out=x)
            if not last:
                torch.addmm(two_c, x, B, out=y)
    return x

"""The base of radial kernels, and the Stein blocks of several kernels with shared pieces.

A radial kernel is k(x, y) = φ(z) with z = ‖x − y‖²_Γ / h² = (x − y)ᵀΓ⁻¹(x − y) / h² (Γ = I
without a preconditioner). A new radial kernel subclasses :class:`Radial` and supplies only
its profile φ and φ', φ'' (derivatives in z); the base gives its values, ∇ₓk and the Langevin
Stein kernel. With r = x − y, M = Γ⁻¹, s = s(x) and t = s(y):

    ∇ₓk = 2φ'(z) M r / h²,   ∇_y k = −∇ₓk,
    tr ∇ₓ∇_y k = −2φ'(z) tr M / h² − 4φ''(z) ‖M r‖² / h⁴,
    u_q(x, y) = sᵀt k + sᵀ∇_y k + ∇ₓkᵀt + tr ∇ₓ∇_y k
              = φ(z) sᵀt − (2φ'(z) / h²) [(s − t)ᵀ M r + tr M] − (4φ''(z) / h⁴) ‖M r‖².

A block of u_q between rows (x, s) and (y, t) needs the matrices ‖r‖²_Γ, ‖Mr‖², sᵀt and
(s − t)ᵀMr, each one matrix product of (n, d) by (d, m) factors (no (n, m, d) tensor), and
then element-wise work per bandwidth; everything is float64.

Example:
    >>> import torch
    >>> from steinkit.kernels import IMQ
    >>> x = torch.randn(5, 2, generator=torch.Generator().manual_seed(0))
    >>> U = IMQ(1.0).stein_matrix(x, -x, x, -x)
    >>> bool(torch.allclose(U, U.T))
    True
"""

from __future__ import annotations

import copy
import dataclasses
from abc import ABC, abstractmethod
from dataclasses import KW_ONLY, dataclass
from functools import cached_property
from typing import Any, Iterable, Iterator

import torch
from torch import Tensor

from .bandwidths import Bandwidths, check_bandwidth, median_bandwidth
from .protocol import _matrix, _points, _with_scores
from .sum import Sum

__all__ = ["Radial", "stein_blocks", "stein_pair_values"]


@dataclass
class _Pieces:
    """The bandwidth-free parts of u_q (matrices, or vectors for pairs)."""

    sq: Tensor  # ‖r‖²_Γ
    sq_m: Tensor  # ‖Γ⁻¹r‖²
    dot: Tensor  # s(x)ᵀs(y)
    cross: Tensor  # (s(x) − s(y))ᵀΓ⁻¹r + tr Γ⁻¹


def _own(*ts: Any, like: Tensor) -> bool:
    """Whether the tensors may be overwritten: distinct storages of ``like``'s shape, no autograd."""
    if not all(isinstance(t, Tensor) and t.shape == like.shape and not t.requires_grad for t in ts):
        return False
    return len({t.untyped_storage().data_ptr() for t in ts}) == len(ts)


def _check_preconditioner(gamma: Any) -> Tensor | None:
    """A positive vector (a diagonal Γ) or a symmetric positive definite matrix, as float64."""
    if gamma is None:
        return None
    if not isinstance(gamma, Tensor) or gamma.dim() not in (1, 2) or gamma.is_complex():
        raise TypeError("preconditioner must be a real tensor: a (d,) vector of positive numbers (a diagonal) "
                        f"or a (d, d) symmetric positive definite matrix, got {type(gamma).__name__}")
    g = gamma.detach().to(torch.float64)
    if not bool(torch.isfinite(g).all()):
        raise ValueError("preconditioner contains NaN or infinite values")
    if g.dim() == 1:
        if not bool((g > 0).all()):
            raise ValueError("preconditioner (a diagonal) must have positive entries")
    elif g.shape[0] != g.shape[1] or not torch.allclose(g, g.T, rtol=1e-10, atol=0.0) or \
            torch.linalg.cholesky_ex(g).info != 0:
        raise ValueError(f"preconditioner must be a symmetric positive definite matrix, got shape {tuple(g.shape)}")
    return g


@dataclass(frozen=True, eq=False, repr=False)
class Radial(ABC):
    """Base of the radial kernels k(x, y) = φ(‖x − y‖²_Γ / h²): a subclass defines :meth:`profile`.

    Arguments:
        bandwidth: h: a positive number, ``"median"`` (the median distance between rows of the
            data, in the preconditioned metric), or a :class:`~steinkit.kernels.Bandwidths`
            collection (or list of numbers) for the aggregated tests.
        preconditioner: Γ: None (the identity), a (d,) positive vector (a diagonal Γ) or a
            (d, d) symmetric positive definite matrix; ‖r‖²_Γ = rᵀΓ⁻¹r.

    Example:
        >>> import torch
        >>> from steinkit.kernels import Gaussian
        >>> k = Gaussian(2.0, preconditioner=torch.tensor([4.0, 1.0]))
        >>> float(k.value(torch.zeros(1, 2), torch.tensor([[4.0, 0.0]])))  # exp(-(16 / 4) / (2 * 4))
        0.6065306597126334
    """

    bandwidth: Any = "median"
    _: KW_ONLY
    preconditioner: Tensor | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "bandwidth", check_bandwidth(self.bandwidth))
        object.__setattr__(self, "preconditioner", _check_preconditioner(self.preconditioner))

    @abstractmethod
    def profile(self, z: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """φ(z), φ'(z) and φ''(z) element-wise, for z = ‖x − y‖²_Γ / h² >= 0."""

    # --- the protocol ---------------------------------------------------------------------

    def resolve(self, x: Tensor) -> tuple[Radial, ...]:
        """The kernels with fixed bandwidths for data x: one, or one per bandwidth of a collection.

        Example:
            >>> import torch
            >>> from steinkit.kernels import IMQ, Bandwidths
            >>> x = torch.tensor([[0.0], [1.0], [3.0]])
            >>> [k.bandwidth for k in IMQ(Bandwidths.powers_of_two(-1, 0)).resolve(x)]
            [1.0, 2.0]
        """
        bw = self.bandwidth
        if isinstance(bw, Bandwidths):
            points = self._metric_points(x) if bw.base == "median" else None
            return tuple(self.with_bandwidth(h) for h in bw.values(points))
        if isinstance(bw, str):  # "median", the one rule
            return (self.with_bandwidth(median_bandwidth(self._metric_points(x))),)
        return (self,)

    def with_bandwidth(self, bandwidth: Any) -> Radial:
        """A copy with another bandwidth (a number, a rule, a collection or a 0-d tensor); the copy
        shares the preconditioner and its factors, so :func:`stein_blocks` shares their pieces."""
        new = copy.copy(self)
        object.__setattr__(new, "bandwidth", check_bandwidth(bandwidth))
        return new

    def value(self, x: Tensor, y: Tensor) -> Tensor:
        """(n, m) k(x_i, y_j), differentiable in y and in a tensor bandwidth."""
        x, y = _points(x, y)
        shift = x.mean(0).detach()
        xt, yt = self._coords(x - shift), self._coords(y - shift)
        sq = ((xt * xt).sum(1)[:, None] + (yt * yt).sum(1)[None, :] - 2.0 * xt @ yt.T).clamp_min(0.0)
        return self.profile(sq / self._h2())[0]

    def grad_x(self, x: Tensor, y: Tensor) -> Tensor:
        """(n, m, d) ∇ₓk(x_i, y_j) = 2φ'(z) Γ⁻¹(x_i − y_j) / h², differentiable in y and the bandwidth."""
        x, y = _points(x, y)
        diff = x[:, None, :] - y[None, :, :]
        tdiff = diff if self.preconditioner is None else self._coords(diff)
        h2 = self._h2()
        d1 = self.profile((tdiff * tdiff).sum(-1) / h2)[1]
        return (2.0 * d1 / h2)[:, :, None] * self._metric(diff)

    def stein_matrix(self, x: Tensor, sx: Tensor, y: Tensor, sy: Tensor) -> Tensor:
        """(n, m) Langevin Stein kernel u_q((x_i, sx_i), (y_j, sy_j)), float64."""
        return self._from_pieces(self._matrix_pieces(*_with_scores(x, sx, y, sy)))

    def stein_pairs(self, x: Tensor, sx: Tensor, y: Tensor, sy: Tensor) -> Tensor:
        """(n,) u_q((x_i, sx_i), (y_i, sy_i)) for rows paired one to one, float64."""
        x, sx, y, sy = _with_scores(x, sx, y, sy)
        if y.shape != x.shape:
            raise ValueError(f"y must have the shape of x (pairs), got {tuple(y.shape)} and {tuple(x.shape)}")
        return self._from_pieces(self._pair_pieces(x, sx, y, sy))

    # --- pieces ---------------------------------------------------------------------------

    @cached_property
    def _factors(self) -> tuple[Tensor, Tensor, float] | None:
        """(L, M, tr M) with M = Γ⁻¹ = L Lᵀ, or None for Γ = I."""
        g = self.preconditioner
        if g is None:
            return None
        if g.dim() == 1:
            return (1.0 / g).sqrt().diag(), (1.0 / g).diag(), float((1.0 / g).sum())
        m = torch.cholesky_inverse(torch.linalg.cholesky(g))
        m = 0.5 * (m + m.T)
        return torch.linalg.cholesky(m), m, float(m.diagonal().sum())

    def _coords(self, x: Tensor) -> Tensor:
        """Rows x̃ with ‖x̃_i − x̃_j‖² = ‖x_i − x_j‖²_Γ (x L)."""
        f = self._factors
        return x if f is None else x @ self._fit(f[0], x)

    def _metric(self, x: Tensor) -> Tensor:
        """Rows Γ⁻¹x (x M)."""
        f = self._factors
        return x if f is None else x @ self._fit(f[1], x)

    def _fit(self, factor: Tensor, x: Tensor) -> Tensor:
        if factor.shape[0] != x.shape[-1]:
            raise ValueError(f"preconditioner is for d = {factor.shape[0]} coordinates, but the points have "
                             f"d = {x.shape[-1]}")
        return factor.to(x.device)

    def _metric_points(self, x: Tensor) -> Tensor:
        return self._coords(_matrix(x, "x"))

    def _trace(self, d: int) -> float:
        f = self._factors
        return float(d) if f is None else f[2]

    def _h2(self) -> float | Tensor:
        h = self.bandwidth
        if isinstance(h, (str, Bandwidths)):
            raise ValueError(f"{self!r} has no fixed bandwidth: resolve it on the data first (kernel.resolve(x))")
        return h * h

    def _matrix_pieces(self, x: Tensor, sx: Tensor, y: Tensor, sy: Tensor) -> _Pieces:
        # few (n, m) temporaries, updated in place: a fresh large tensor costs page faults
        shift = x.mean(0)
        x, y = x - shift, y - shift  # u_q is translation invariant; centring limits cancellation
        xt, yt = self._coords(x), self._coords(y)
        sq = ((xt * xt).sum(1)[:, None] + (yt * yt).sum(1)[None, :]).addmm_(xt, yt.T, alpha=-2.0).clamp_min_(0.0)
        xm, ym = self._metric(x), self._metric(y)
        if self.preconditioner is None:
            sq_m = sq
        else:
            sq_m = ((xm * xm).sum(1)[:, None] + (ym * ym).sum(1)[None, :]).addmm_(xm, ym.T, alpha=-2.0).clamp_min_(0.0)
        # (s_i − t_j)ᵀM(x_i − y_j) + tr M = s_iᵀMx_i + t_jᵀMy_j − [s_i, Mx_i]ᵀ[My_j, t_j] + tr M
        cross = ((sx * xm).sum(1)[:, None] + ((sy * ym).sum(1) + self._trace(x.shape[1]))[None, :])
        cross.addmm_(torch.cat([sx, xm], 1), torch.cat([ym, sy], 1).T, alpha=-1.0)
        return _Pieces(sq, sq_m, sx @ sy.T, cross)

    def _pair_pieces(self, x: Tensor, sx: Tensor, y: Tensor, sy: Tensor) -> _Pieces:
        r = x - y
        rt, rm = self._coords(r), self._metric(r)
        sq = (rt * rt).sum(1)
        sq_m = sq if self.preconditioner is None else (rm * rm).sum(1)
        return _Pieces(sq, sq_m, (sx * sy).sum(1), ((sx - sy) * rm).sum(1) + self._trace(x.shape[1]))

    def _from_pieces(self, p: _Pieces) -> Tensor:
        h2 = self._h2()
        phi, d1, d2 = self.profile(p.sq / h2)
        a, b = -2.0 / h2, -4.0 / (h2 * h2)
        if isinstance(h2, Tensor) or not _own(phi, d1, d2, like=p.sq):
            return phi * p.dot + a * d1 * p.cross + b * d2 * p.sq_m
        return d1.mul_(p.cross).mul_(a).addcmul_(phi, p.dot).addcmul_(d2, p.sq_m, value=b)

    # --- values ---------------------------------------------------------------------------

    def _fields(self) -> list[tuple[str, Any]]:
        return [(f.name, getattr(self, f.name)) for f in dataclasses.fields(self)]

    def __repr__(self) -> str:
        parts = []
        for name, value in self._fields():
            if name == "preconditioner":
                if value is not None:
                    parts.append(f"preconditioner=<{'x'.join(map(str, value.shape))} tensor>")
            elif isinstance(value, Tensor):
                parts.append(f"{name}={float(value):.6g}")
            else:
                parts.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(parts)})"

    def __eq__(self, other: Any) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        for (name, a), (_, b) in zip(self._fields(), other._fields()):
            if isinstance(a, Tensor) or isinstance(b, Tensor):
                if not (isinstance(a, Tensor) and isinstance(b, Tensor) and a.shape == b.shape and torch.equal(a, b)):
                    return False
            elif a != b:
                return False
        return True

    def __hash__(self) -> int:
        return hash((type(self), tuple(v for n, v in self._fields() if not isinstance(v, Tensor))))

    def __add__(self, other: Any) -> Sum:
        return Sum(self, other)


def stein_blocks(kernels: Iterable[Any], x: Tensor, sx: Tensor, y: Tensor, sy: Tensor) -> Iterator[Tensor]:
    """Each kernel's (n, m) Stein block in turn; radial kernels with the same preconditioner share
    the bandwidth-free pieces (computed once). Inputs are float64 tensors on one device.

    Example:
        >>> import torch
        >>> from steinkit.kernels import IMQ
        >>> x = torch.randn(4, 2, dtype=torch.float64)
        >>> [tuple(u.shape) for u in stein_blocks([IMQ(1.0), IMQ(2.0)], x, -x, x[:3], -x[:3])]
        [(4, 3), (4, 3)]
    """
    shared: dict[int, _Pieces] = {}
    for k in kernels:
        if isinstance(k, Radial):
            key = id(k.preconditioner)
            if key not in shared:
                shared[key] = k._matrix_pieces(x, sx, y, sy)
            yield k._from_pieces(shared[key])
        else:
            yield k.stein_matrix(x, sx, y, sy)


def stein_pair_values(kernels: Iterable[Any], x: Tensor, sx: Tensor, y: Tensor, sy: Tensor) -> Tensor:
    """(K, n) u_q(x_i, y_i) for each of K kernels, the pieces shared as in :func:`stein_blocks`.

    Example:
        >>> import torch
        >>> from steinkit.kernels import Gaussian
        >>> x = torch.randn(6, 2, dtype=torch.float64)
        >>> stein_pair_values([Gaussian(1.0), Gaussian(3.0)], x[:3], -x[:3], x[3:], -x[3:]).shape
        torch.Size([2, 3])
    """
    shared: dict[int, _Pieces] = {}
    rows = []
    for k in kernels:
        if isinstance(k, Radial):
            key = id(k.preconditioner)
            if key not in shared:
                shared[key] = k._pair_pieces(x, sx, y, sy)
            rows.append(k._from_pieces(shared[key]))
        else:
            rows.append(k.stein_pairs(x, sx, y, sy))
    return torch.stack(rows)

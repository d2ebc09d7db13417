"""A sum of kernels: its value, gradient and Stein kernel are the sums of the parts'.

Example:
    >>> import torch
    >>> from steinkit.kernels import Gaussian, IMQ
    >>> x = torch.randn(4, 2, dtype=torch.float64)
    >>> k = Gaussian(1.0) + IMQ(2.0)
    >>> U = Gaussian(1.0).stein_matrix(x, -x, x, -x) + IMQ(2.0).stein_matrix(x, -x, x, -x)
    >>> bool(torch.allclose(k.stein_matrix(x, -x, x, -x), U))
    True
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from .protocol import SteinKernel, _with_scores

__all__ = ["Sum"]


class Sum:
    """k = k_1 + ... + k_m for Stein kernels k_i (``k1 + k2`` for radial kernels).

    Each part keeps its own bandwidth; ``with_bandwidth(h)`` gives every part the bandwidth h.
    A part may not be a collection of bandwidths (aggregate over a collection of sums instead).

    Arguments:
        *parts: two or more kernels following :class:`~steinkit.kernels.SteinKernel`.

    Example:
        >>> from steinkit.kernels import Gaussian, IMQ
        >>> Gaussian(1.0) + IMQ(beta=-0.3)
        Sum(Gaussian(bandwidth=1.0), IMQ(bandwidth='median', beta=-0.3, c=1.0))
    """

    def __init__(self, *parts: Any) -> None:
        flat: list[Any] = []
        for part in parts:
            if not isinstance(part, SteinKernel):
                raise TypeError(f"parts of a Sum must be Stein kernels (steinkit.kernels.SteinKernel), "
                                f"got {type(part).__name__}")
            flat.extend(part.parts if isinstance(part, Sum) else [part])
        if len(flat) < 2:
            raise ValueError(f"a Sum needs at least two parts, got {len(flat)}")
        self.parts = tuple(flat)

    @property
    def bandwidth(self) -> tuple[Any, ...]:
        """The parts' bandwidths."""
        return tuple(p.bandwidth for p in self.parts)

    def resolve(self, x: Tensor) -> tuple[Sum, ...]:
        """One sum of the parts resolved on x (each part must resolve to one kernel)."""
        resolved = []
        for part in self.parts:
            r = part.resolve(x)
            if len(r) != 1:
                raise ValueError(f"kernel: each part of a Sum needs one bandwidth, but {part!r} has {len(r)}")
            resolved.append(r[0])
        return (Sum(*resolved),)

    def with_bandwidth(self, bandwidth: Any) -> Sum:
        """Every part with this bandwidth."""
        return Sum(*(p.with_bandwidth(bandwidth) for p in self.parts))

    def value(self, x: Tensor, y: Tensor) -> Tensor:
        """(n, m) Σ_i k_i(x, y)."""
        return sum(p.value(x, y) for p in self.parts)

    def grad_x(self, x: Tensor, y: Tensor) -> Tensor:
        """(n, m, d) Σ_i ∇ₓk_i(x, y)."""
        return sum(p.grad_x(x, y) for p in self.parts)

    def stein_matrix(self, x: Tensor, sx: Tensor, y: Tensor, sy: Tensor) -> Tensor:
        """(n, m) Σ_i u_i."""
        return sum(p.stein_matrix(*_with_scores(x, sx, y, sy)) for p in self.parts)

    def stein_pairs(self, x: Tensor, sx: Tensor, y: Tensor, sy: Tensor) -> Tensor:
        """(n,) Σ_i u_i on paired rows."""
        x, sx, y, sy = _with_scores(x, sx, y, sy)
        if y.shape != x.shape:
            raise ValueError(f"y must have the shape of x (pairs), got {tuple(y.shape)} and {tuple(x.shape)}")
        return sum(p.stein_pairs(x, sx, y, sy) for p in self.parts)

    def __add__(self, other: Any) -> Sum:
        return Sum(self, other)

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, Sum) and self.parts == other.parts

    def __hash__(self) -> int:
        return hash(self.parts)

    def __repr__(self) -> str:
        return f"Sum({', '.join(map(repr, self.parts))})"

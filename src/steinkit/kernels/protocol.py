"""What a kernel test asks of a Stein kernel: the :class:`SteinKernel` protocol.

Example:
    >>> from steinkit.kernels import IMQ
    >>> isinstance(IMQ(), SteinKernel), isinstance("imq", SteinKernel)
    (True, False)
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

from ..validation import as_data

__all__ = ["SteinKernel"]


@runtime_checkable
class SteinKernel(Protocol):
    """The methods a kernel test calls; any object with them works as ``kernel=`` of every test.

    Inputs are float64 tensors: points ``x`` (n, d) and ``y`` (m, d), and the model's scores
    ``sx``, ``sy`` at them. :class:`Radial` implements all of them; a kernel of another kind
    implements them itself (check it with :func:`steinkit.kernels.autograd_stein_kernel`).

    * ``bandwidth``: what ``with_bandwidth`` set (a number once resolved).
    * ``resolve(x)``: the kernels with fixed bandwidths for data x (one per bandwidth of a
      collection); every test calls it first.
    * ``with_bandwidth(h)``: a copy with bandwidth h (a test that learns or is given a bandwidth).
    * ``stein_matrix(x, sx, y, sy)``: (n, m) u_q(x_i, y_j) (ksd, ksdagg, ksd-seq).
    * ``stein_pairs(x, sx, y, sy)``: (n,) u_q(x_i, y_i), n = m (lksd, ksdagg-inc).
    * ``value(x, y)``: (n, m) k(x_i, y_j) and ``grad_x(x, y)``: (n, m, d) ∇ₓk(x_i, y_j) (fssd,
      whose optimisation passes a 0-d tensor to ``with_bandwidth`` and differentiates through both).
    """

    bandwidth: Any

    def resolve(self, x: Tensor) -> tuple[SteinKernel, ...]: ...

    def with_bandwidth(self, bandwidth: Any) -> SteinKernel: ...

    def stein_matrix(self, x: Tensor, sx: Tensor, y: Tensor, sy: Tensor) -> Tensor: ...

    def stein_pairs(self, x: Tensor, sx: Tensor, y: Tensor, sy: Tensor) -> Tensor: ...

    def value(self, x: Tensor, y: Tensor) -> Tensor: ...

    def grad_x(self, x: Tensor, y: Tensor) -> Tensor: ...



def _matrix(a: Any, name: str) -> Tensor:
    return as_data(a, name, tensors_only=True, dtype=torch.float64, finite=False)


def _points(x: Any, y: Any) -> tuple[Tensor, Tensor]:
    x, y = _matrix(x, "x"), _matrix(y, "y")
    if y.shape[1] != x.shape[1]:
        raise ValueError(f"y must have the same number of columns as x, got {y.shape[1]} and {x.shape[1]}")
    return x, y.to(x.device)


def _with_scores(x: Any, sx: Any, y: Any, sy: Any) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    x, y = _points(x, y)
    sx, sy = _matrix(sx, "sx").to(x.device), _matrix(sy, "sy").to(x.device)
    if sx.shape != x.shape:
        raise ValueError(f"sx must have the shape of x, got {tuple(sx.shape)} and {tuple(x.shape)}")
    if sy.shape != y.shape:
        raise ValueError(f"sy must have the shape of y, got {tuple(sy.shape)} and {tuple(y.shape)}")
    return x, sx, y, sy

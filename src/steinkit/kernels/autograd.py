"""The Langevin Stein kernel of any kernel by automatic differentiation: the reference that
every kernel's closed form is checked against (yours too).

u_q(x, y) = s(x)ᵀs(y) k + s(x)ᵀ∇_y k + ∇ₓkᵀ s(y) + tr ∇ₓ∇_y k, with the gradients and the
d second derivatives of the trace taken by autograd from ``kernel.value``. It costs d + 2
backward passes through an (n, n) kernel matrix: a check for a few pairs, not a test's path.

Example:
    >>> import torch
    >>> from steinkit.kernels import IMQ
    >>> g = torch.Generator().manual_seed(0)
    >>> x, y, sx, sy = (torch.randn(5, 3, generator=g, dtype=torch.float64) for _ in range(4))
    >>> k = IMQ(0.8, beta=-0.3)
    >>> bool(torch.allclose(autograd_stein_kernel(k, x, sx, y, sy), k.stein_pairs(x, sx, y, sy)))
    True
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

__all__ = ["autograd_stein_kernel"]


def autograd_stein_kernel(kernel: Any, x: Tensor, sx: Tensor, y: Tensor, sy: Tensor) -> Tensor:
    """u_q(x_i, y_i) for paired rows by autograd of ``kernel.value`` (a kernel with a fixed bandwidth).

    Arguments:
        kernel: any object with ``value(x, y) -> (n, m)`` differentiable in x and y.
        x, y: paired points, (n, d) each.
        sx, sy: the scores at them, (n, d) each.

    Returns:
        (n,) float64 tensor.
    """
    x = x.detach().to(torch.float64).clone().requires_grad_(True)
    y = y.detach().to(torch.float64).clone().requires_grad_(True)
    sx, sy = sx.detach().to(torch.float64), sy.detach().to(torch.float64)
    with torch.enable_grad():
        k = kernel.value(x, y).diagonal()  # k(x_i, y_i): row i depends on x_i and y_i only
        gx, gy = torch.autograd.grad(k.sum(), (x, y), create_graph=True)
        trace = torch.zeros_like(k)
        for a in range(x.shape[1]):  # ∂²k / ∂x_a ∂y_a, one backward pass per coordinate
            trace = trace + torch.autograd.grad(gy[:, a].sum(), x, retain_graph=True)[0][:, a]
    u = (sx * sy).sum(1) * k + (sx * gy).sum(1) + (gx * sy).sum(1) + trace
    return u.detach()

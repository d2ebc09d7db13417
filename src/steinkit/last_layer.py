"""The closed-form last layer of a critic: the Stein witness of fixed network features.

A critic f(x) = W φ(x) + b with fixed features φ (the last hidden layer, h units) has Stein
terms linear in (W, b): T(x) = ⟨W, s(x) φ(x)ᵀ + J_φ(x)ᵀ⟩ + ⟨b, s(x)⟩, J_φ the (h, d) Jacobian of the
features. Under a weight penalty ½(‖W‖² + ‖b‖²) the best last layer on data x₁..x_n is therefore
the mean of those coefficients,

    W* = mean_i [s(x_i) φ(x_i)ᵀ + J_φ(x_i)ᵀ],   b* = mean_i s(x_i),

the finite-dimensional analogue of Eq. 9 (the kernel Stein witness of the kernel
k(x, y) = φ(x)ᵀφ(y) + 1; :mod:`steinkit.gof.sequential` does the same with IMQ kernels). No step of
gradient descent is needed; the scale of (W*, b*) is irrelevant to a studentised statistic. With
φ the features of a critic at its random initialisation this is a random-feature Stein witness.

Example:
    >>> import torch
    >>> from steinkit.critics import MLPCritic
    >>> critic = MLPCritic(2, hidden=8, generator=torch.Generator().manual_seed(0))
    >>> x = torch.randn(50, 2, generator=torch.Generator().manual_seed(1))
    >>> feature_witness(critic, x, -x).weights[-1].shape
    torch.Size([2, 8])
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor

from .critics import MLPCritic, swish

__all__ = ["features", "witness_sums", "with_last_layer", "feature_witness"]


def features(critic: MLPCritic, x: Tensor) -> Tensor:
    """The critic's last hidden layer φ(x): (n, h), or (K, n, h) for an ensemble (no dropout)."""
    a = x
    for W, b in zip(list(critic.weights)[:-1], list(critic.biases)[:-1]):
        a = swish(a @ W.transpose(-1, -2) + b.unsqueeze(-2))
    return a


def witness_sums(critic: MLPCritic, x: Tensor, s: Tensor) -> tuple[Tensor, Tensor]:
    """The sums over the rows of x of the last layer's Stein coefficients: (Σ_i s_i φ_iᵀ + J_φ(x_i)ᵀ,
    Σ_i s_i), shapes (…, d, h) and (…, d). Sums over disjoint parts add up, so a growing data set
    costs each point once. ``s``: the model's scores at x, same shape."""
    xg = x.detach().requires_grad_(True)
    with torch.enable_grad():
        phi = features(critic, xg)
        rows = [torch.autograd.grad(phi[..., j].sum(), xg, retain_graph=j < phi.shape[-1] - 1)[0].sum(-2)
                for j in range(phi.shape[-1])]
    s = s.detach().to(phi.dtype)
    return s.transpose(-1, -2) @ phi.detach() + torch.stack(rows, -1), s.sum(-2)


def with_last_layer(critic: MLPCritic, weight: Tensor, bias: Tensor) -> MLPCritic:
    """A copy of ``critic`` (eval mode) with last layer (weight, bias)."""
    out = copy.deepcopy(critic).eval()
    with torch.no_grad():
        out.weights[-1].copy_(weight)
        out.biases[-1].copy_(bias)
    return out


def feature_witness(critic: MLPCritic, x: Tensor, s: Tensor) -> MLPCritic:
    """A copy of ``critic`` (eval mode) whose last layer is the closed-form witness (W*, b*) of
    its features on the data x with model scores s ((n, d), or (K, n, d) for an ensemble)."""
    weight, bias = witness_sums(critic, x, s)
    n = x.shape[-2]
    return with_last_layer(critic, weight / n, bias / n)

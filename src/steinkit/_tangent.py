"""The Swish MLP critic's forward-mode pass: outputs and Jacobian-vector products together.

:class:`TangentMLP` pushes the primal rows x and the tangent rows (the probes ε) through the
network in the same matrix products, so one pass gives f(x) and (∇f(x))ε, and its hand-written
backward pass gives the gradients of both without a double backward. :class:`~steinkit.critics.MLPCritic`
calls it for its Stein terms (a Hutchinson trace εᵀ(∇f)ε per probe).

Example:
    >>> import torch
    >>> from steinkit.critics import MLPCritic
    >>> critic = MLPCritic(dim=2, hidden=4, generator=torch.Generator().manual_seed(0))
    >>> x, eps = torch.randn(3, 2), torch.randn(3, 2)
    >>> out, tangent = critic.jvp(x, eps)
    >>> expected = torch.func.jvp(critic, (x,), (eps,))[1]
    >>> torch.allclose(tangent, expected, atol=1e-6), torch.allclose(out, critic(x), atol=1e-6)
    (True, True)
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

__all__ = ["TangentMLP"]


def _tangent_forward(
    rows: Tensor,
    n: int,
    weights: Sequence[Tensor],
    biases: Sequence[Tensor],
    masks: Sequence[Tensor | None],
) -> tuple[Tensor, list[tuple[Tensor, ...]]]:
    """Push primal rows ``rows[..., :n, :]`` and tangent rows ``rows[..., n:, :]`` through the MLP.

    Tangent rows are grouped in blocks of n (one block per probe) and share the primal row's
    Jacobian. Returns the stacked output rows and what the backward pass needs per layer.
    """
    saved: list[tuple[Tensor, ...]] = []
    a = rows
    for W, b, m in zip(weights[:-1], biases[:-1], masks):
        z = a @ W.transpose(-1, -2)
        h = z[..., :n, :]
        h += b.unsqueeze(-2)
        u = z[..., n:, :]
        s = torch.sigmoid(h)
        nxt = torch.empty_like(z)
        act = torch.mul(h, s, out=nxt[..., :n, :])
        g = torch.addcmul(s, act, s, value=-1.0).add_(act)  # swish'(h) = s + h s (1 - s)
        if m is not None:
            act.mul_(m)
            gm = g * m
        else:
            gm = g
        lead, width = u.shape[:-2], u.shape[-1]
        probes = u.shape[-2] // n
        torch.mul(
            u.view(*lead, probes, n, width),
            gm.unsqueeze(-3),
            out=nxt[..., n:, :].view(*lead, probes, n, width),
        )
        saved.append((a, h, s, g, u, m))
        a = nxt
    out = a @ weights[-1].transpose(-1, -2)
    out[..., :n, :] += biases[-1].unsqueeze(-2)
    saved.append((a,))
    return out, saved


class TangentMLP(torch.autograd.Function):
    """MLP output and Jacobian-vector products with a fused first-order backward pass."""

    @staticmethod
    def forward(ctx, x, probes, n_layers, *params_and_masks):  # type: ignore[override]
        n = x.shape[-2]
        weights = params_and_masks[0 : 2 * n_layers + 2 : 2]
        biases = params_and_masks[1 : 2 * n_layers + 2 : 2]
        masks = list(params_and_masks[2 * n_layers + 2 :]) or [None] * n_layers
        lead = torch.broadcast_shapes(x.shape[:-2], weights[0].shape[:-2])
        rows = torch.cat(
            [x.expand(*lead, *x.shape[-2:]), probes.expand(*lead, *probes.shape[-2:])], dim=-2
        )
        out, saved = _tangent_forward(rows, n, weights, biases, masks)
        ctx.n, ctx.n_layers = n, n_layers
        ctx.saved = saved
        ctx.weights = weights
        ctx.needs_rows = ctx.needs_input_grad[0] or ctx.needs_input_grad[1]
        ctx.x_shape, ctx.p_shape = x.shape, probes.shape
        return out[..., :n, :], out[..., n:, :]

    @staticmethod
    def backward(ctx, d_out, d_tan):  # type: ignore[override]
        n, weights, saved = ctx.n, ctx.weights, ctx.saved
        (a_last,) = saved[-1]
        grad = a_last.new_empty(*a_last.shape[:-1], weights[-1].shape[-2])
        grad[..., :n, :] = 0.0 if d_out is None else d_out
        grad[..., n:, :] = 0.0 if d_tan is None else d_tan
        w_grads: list[Tensor] = []
        b_grads: list[Tensor] = []
        w_grads.append(grad.transpose(-1, -2) @ a_last)
        b_grads.append(grad[..., :n, :].sum(-2))
        for layer in range(ctx.n_layers - 1, -1, -1):
            W_next = weights[layer + 1]
            grad = grad @ W_next
            a, h, s, g, u, m = saved[layer]
            da = grad[..., :n, :]
            dv = grad[..., n:, :]
            lead, width = dv.shape[:-2], dv.shape[-1]
            probes = dv.shape[-2] // n
            dv4 = dv.view(*lead, probes, n, width)
            u4 = u.view(*lead, probes, n, width)
            if m is not None:
                da.mul_(m)
                dv4.mul_(m.unsqueeze(-3))
            # swish''(h) = s (1 - s) (2 + h (1 - 2 s))
            d2 = torch.addcmul(h, h, s, value=-2.0).add_(2.0).mul_(s).mul_(1.0 - s)
            dvu = dv4 * u4 if probes > 1 else dv * u
            if probes > 1:
                dvu = dvu.sum(-3)
            dh = torch.addcmul(dvu.mul_(d2), da, g, out=da)  # rows :n of grad become dh
            dv4.mul_(g.unsqueeze(-3))  # rows n: of grad become du
            w_grads.append(grad.transpose(-1, -2) @ a)
            b_grads.append(dh.sum(-2))
        d_x = d_probes = None
        if ctx.needs_rows:
            d_rows = grad @ weights[0]
            d_x = _reduce_to(d_rows[..., :n, :], ctx.x_shape)
            d_probes = _reduce_to(d_rows[..., n:, :], ctx.p_shape)
        params: list[Tensor | None] = []
        for wg, bg in zip(reversed(w_grads), reversed(b_grads)):
            params.extend([wg, bg])
        n_masks = ctx.n_layers if ctx.saved[0][5] is not None else 0
        return (d_x, d_probes, None, *params, *([None] * n_masks))


def _reduce_to(t: Tensor, shape: torch.Size) -> Tensor:
    """Sum broadcast leading dimensions of ``t`` so it has ``shape``."""
    while t.dim() > len(shape):
        t = t.sum(0)
    for i, size in enumerate(shape):
        if size == 1 and t.shape[i] != 1:
            t = t.sum(i, keepdim=True)
    return t

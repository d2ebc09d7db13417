"""The Stein operator: per-example terms s_q(x)ᵀf(x) + tr ∇f(x), traces, optimal critic.

Any critic that maps (n, d) to (n, d) works through the autograd functions here; the
:class:`~steinkit.critics.MLPCritic` has a faster path of its own and :func:`stein_terms`
picks it when it can.

Example:
    >>> import torch
    >>> x = torch.randn(4, 3)
    >>> terms, f = stein_terms(lambda z: -z, x, -x, trace="exact")  # f(x) = -x, tr ∇f = -3
    >>> torch.allclose(terms, (x * x).sum(1) - 3)
    True
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from .critics import MLPCritic

__all__ = [
    "stein_terms",
    "hutchinson_trace",
    "exact_trace",
    "optimal_critic",
    "optimal_lsd",
    "fisher_divergence",
]

Critic = Callable[[Tensor], Tensor]


def _with_input_grad(x: Tensor) -> Tensor:
    return x if x.requires_grad else x.detach().requires_grad_(True)


def hutchinson_trace(
    critic: Critic,
    x: Tensor,
    *,
    n_probes: int = 1,
    probes: Tensor | None = None,
    generator: torch.Generator | None = None,
    create_graph: bool | None = None,
) -> tuple[Tensor, Tensor]:
    """Hutchinson estimate of tr ∇f(x), εᵀ(∇f)ε averaged over Gaussian probes (Eq. 10).

    One vector-Jacobian product per probe; ``create_graph`` (default: whether grad mode is on)
    keeps the graph so the estimate can be differentiated again (the plain double-backward
    formulation). Returns (trace (n,), f (n, d)).

    Example:
        >>> x = torch.randn(8, 2)
        >>> tr, f = hutchinson_trace(lambda z: 3 * z, x, n_probes=2)
        >>> tr.shape
        torch.Size([8])
    """
    if probes is None and n_probes < 1:
        raise ValueError(f"n_probes must be >= 1, got {n_probes!r}")
    if create_graph is None:
        create_graph = torch.is_grad_enabled()
    with torch.enable_grad():
        xg = _with_input_grad(x)
        f = critic(xg)
        n = x.shape[0]
        if probes is None:
            probes = torch.randn(
                n_probes * n, x.shape[1], generator=generator, dtype=x.dtype, device=x.device
            )
        blocks = probes.reshape(-1, n, x.shape[1])
        total = torch.zeros(n, dtype=f.dtype, device=f.device)
        for eps in blocks if f.requires_grad else []:
            (vjp,) = torch.autograd.grad(
                f, xg, eps, create_graph=create_graph, retain_graph=True, allow_unused=True
            )
            if vjp is not None:
                total = total + (vjp * eps).sum(1)
    return total / blocks.shape[0], f


def exact_trace(
    critic: Critic, x: Tensor, *, create_graph: bool | None = None
) -> tuple[Tensor, Tensor]:
    """Exact tr ∇f(x) with d vector-Jacobian products. Returns (trace (n,), f (n, d)).

    ``create_graph`` defaults to whether grad mode is on.

    Example:
        >>> tr, _ = exact_trace(lambda z: 3 * z, torch.randn(5, 4))
        >>> tr.tolist()
        [12.0, 12.0, 12.0, 12.0, 12.0]
    """
    if create_graph is None:
        create_graph = torch.is_grad_enabled()
    with torch.enable_grad():
        xg = _with_input_grad(x)
        f = critic(xg)
        total = torch.zeros(x.shape[0], dtype=f.dtype, device=f.device)
        for j in range(x.shape[1]) if f.requires_grad else []:
            (col,) = torch.autograd.grad(
                f[:, j].sum(), xg, create_graph=create_graph, retain_graph=True, allow_unused=True
            )
            if col is not None:
                total = total + col[:, j]
    return total, f


def stein_terms(
    critic: Critic,
    x: Tensor,
    scores: Tensor,
    *,
    trace: str = "hutchinson",
    n_probes: int = 1,
    probes: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Per-example Stein terms s_q(x)ᵀf(x) + tr ∇f(x) (Eq. 6; Eq. 11 with Hutchinson).

    Arguments:
        critic: a callable (n, d) -> (n, d); an :class:`MLPCritic` uses its fused fast path.
        x: data, (n, d).
        scores: s_q(x) = ∇ log q(x), (n, d).
        trace: ``"hutchinson"`` or ``"exact"``.
        n_probes: Gaussian probes per example for Hutchinson.
        probes: explicit probes, (n_probes*n, d) as stacked blocks of n rows.
        generator: random generator for the probes.

    Returns:
        (terms (n,), f(x) (n, d)).

    Example:
        >>> x = torch.randn(1000, 2, generator=torch.Generator().manual_seed(0))
        >>> terms, _ = stein_terms(lambda z: torch.ones_like(z), x, -x, trace="exact")
        >>> abs(float(terms.mean())) < 0.2   # Stein identity for p = q = N(0, I)
        True
    """
    if x.shape != scores.shape[-x.dim() :]:
        raise ValueError(f"scores must have the shape of x {tuple(x.shape)}, got {tuple(scores.shape)}")
    if isinstance(critic, MLPCritic):
        return critic.stein_terms(
            x, scores, trace=trace, n_probes=n_probes, probes=probes, generator=generator
        )
    if trace == "hutchinson":
        tr, f = hutchinson_trace(critic, x, n_probes=n_probes, probes=probes, generator=generator)
    elif trace == "exact":
        tr, f = exact_trace(critic, x)
    else:
        raise ValueError(f"trace must be 'hutchinson' or 'exact', got {trace!r}")
    return (scores * f).sum(-1) + tr, f


def optimal_critic(score_q: Callable[[Tensor], Tensor], score_p: Callable[[Tensor], Tensor], lam: float):
    """The optimal L2-regularised critic f*(x) = (s_q(x) − s_p(x)) / (2λ) (Eq. 9).

    Example:
        >>> f = optimal_critic(lambda x: -x, lambda x: -(x - 1), lam=0.5)
        >>> f(torch.zeros(1, 2)).tolist()
        [[-1.0, -1.0]]
    """
    if lam <= 0:
        raise ValueError(f"lam must be > 0, got {lam!r}")
    return lambda x: (score_q(x) - score_p(x)) / (2 * lam)


def fisher_divergence(score_q: Tensor, score_p: Tensor) -> Tensor:
    """Fisher divergence E_p‖s_q − s_p‖² from scores evaluated at samples of p.

    Example:
        >>> float(fisher_divergence(torch.ones(3, 2), torch.zeros(3, 2)))
        2.0
    """
    return (score_q - score_p).pow(2).sum(-1).mean()


def optimal_lsd(score_q: Tensor, score_p: Tensor, lam: float) -> Tensor:
    """LSD of the optimal critic, E_p‖s_q − s_p‖²/(2λ), from scores at samples of p.

    (The penalised objective at that critic is half of this.)

    Example:
        >>> float(optimal_lsd(torch.ones(3, 2), torch.zeros(3, 2), lam=0.5))
        2.0
    """
    if lam <= 0:
        raise ValueError(f"lam must be > 0, got {lam!r}")
    return fisher_divergence(score_q, score_p) / (2 * lam)

"""The Stein operator: per-example terms s_q(x)ᵀf(x) + tr ∇f(x), traces, optimal critic.

Any critic that maps (n, d) to (n, d) works through the autograd functions here. A critic
that computes its Stein terms itself (the :class:`FusedSteinCritic` protocol: a
``stein_terms`` method, as :class:`~steinkit.critics.MLPCritic` has) is asked to do so by
:func:`stein_terms`. :func:`critic_objective` is the penalised objective a critic maximizes.

Example:
    >>> import torch
    >>> x = torch.randn(4, 3)
    >>> terms, f = stein_terms(lambda z: -z, x, -x, trace="exact")  # f(x) = -x, tr ∇f = -3
    >>> torch.allclose(terms, (x * x).sum(1) - 3)
    True
"""

from __future__ import annotations

from typing import Any, Callable, Protocol, runtime_checkable

import torch
from torch import Tensor

from .validation import one_of, positive_float, positive_int

__all__ = [
    "FusedSteinCritic",
    "stein_terms",
    "critic_objective",
    "power_ratio",
    "hutchinson_trace",
    "exact_trace",
    "optimal_critic",
    "optimal_lsd",
    "fisher_divergence",
    "scaled_lsd",
]

Critic = Callable[[Tensor], Tensor]
_EPS = 1e-6  # added to the std in the power objective mean/std


@runtime_checkable
class FusedSteinCritic(Protocol):
    """A critic that computes its own per-example Stein terms (e.g. a fused forward-mode pass).

    :func:`stein_terms` hands such a critic the whole computation; any other callable goes
    through autograd.
    """

    def stein_terms(  # the signature of MLPCritic.stein_terms
        self, x: Tensor, scores: Tensor, *, trace: str = ..., n_probes: int = ...,
        probes: Tensor | None = ..., generator: Any = ...,
    ) -> tuple[Tensor, Tensor]:
        """Per-example terms s(x)ᵀf(x) + tr ∇f(x) and the critic values f(x)."""
        ...


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
    if probes is None:
        positive_int(n_probes, "n_probes")
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
        critic: a callable (n, d) -> (n, d); a :class:`FusedSteinCritic` computes the terms itself.
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
    if isinstance(critic, FusedSteinCritic):
        return critic.stein_terms(
            x, scores, trace=trace, n_probes=n_probes, probes=probes, generator=generator
        )
    if trace == "hutchinson":
        tr, f = hutchinson_trace(critic, x, n_probes=n_probes, probes=probes, generator=generator)
    elif trace == "exact":
        tr, f = exact_trace(critic, x)
    else:
        one_of(trace, "trace", ("hutchinson", "exact"))
    return (scores * f).sum(-1) + tr, f


def critic_objective(terms: Tensor, f: Tensor, lam: float, objective: str = "lsd") -> Tensor:
    """The penalised critic objective to maximize, per ensemble member.

    ``"lsd"``: mean(terms) − λ·E‖f‖² (Eq. 8 with Eq. 11); ``"power"``: mean/(std + 1e-6) −
    λ·E‖f‖² (Eq. 12). Means run over the example axis, so terms (K, n) and f (K, n, d)
    give one value per member (K,); terms (n,) give a scalar.

    Arguments:
        terms: per-example Stein terms, (n,) or (K, n).
        f: critic values at the same examples, (n, d) or (K, n, d).
        lam: penalty weight λ > 0.
        objective: ``"lsd"`` or ``"power"``.

    Example:
        >>> terms, f = torch.tensor([1.0, 3.0]), torch.ones(2, 2)
        >>> float(critic_objective(terms, f, lam=0.5))   # 2 - 0.5 * 2
        1.0
    """
    one_of(objective, "objective", ("lsd", "power"))
    penalty = lam * f.pow(2).sum(-1).mean(-1)
    if objective == "power":
        return power_ratio(terms) - penalty
    return terms.mean(-1) - penalty


def power_ratio(terms: Tensor) -> Tensor:
    """The test-power proxy mean/(std + 1e-6) of Stein terms over the last axis (Eq. 12).

    Example:
        >>> round(float(power_ratio(torch.tensor([1.0, 3.0]))), 4)
        1.4142
    """
    return terms.mean(-1) / (terms.std(-1) + _EPS)


def optimal_critic(score_q: Callable[[Tensor], Tensor], score_p: Callable[[Tensor], Tensor], lam: float):
    """The optimal L2-regularised critic f*(x) = (s_q(x) − s_p(x)) / (2λ) (Eq. 9).

    Example:
        >>> f = optimal_critic(lambda x: -x, lambda x: -(x - 1), lam=0.5)
        >>> f(torch.zeros(1, 2)).tolist()
        [[-1.0, -1.0]]
    """
    positive_float(lam, "lam")
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
    positive_float(lam, "lam")
    return fisher_divergence(score_q, score_p) / (2 * lam)


def scaled_lsd(terms: Tensor, sq_norms: Tensor, lam: float) -> tuple[Tensor, Tensor]:
    """The LSD of a critic's direction at its best scale, and its standard error, from held-out points.

    For a critic f with m = E_p[T_q f] and v = E_p‖f‖², the penalised objective of c·f is
    c·m − λc²v, largest at c = m/(2λv), where the LSD of c·f is m²/(2λv). By Cauchy–Schwarz
    m² = E_p[(s_q − s_p)ᵀf]² ≤ E_p‖s_q − s_p‖²·v, so this never exceeds the optimal critic's
    LSD E_p‖s_q − s_p‖²/(2λ) (Eq. 9), with equality when f ∝ s_q − s_p, whatever f's scale.
    The estimate is (m̂² − σ̂²/n)/(2λv̂) over the last axis (σ̂²/n removes the bias of m̂²);
    its standard error is the delta method's plus the second-order term √2·σ̂²/n/(2λv̂), which
    dominates when m is near zero.

    Arguments:
        terms: Stein terms T_q f at held-out points, (n,) or (K, n).
        sq_norms: ‖f‖² at the same points.
        lam: the penalty weight λ > 0.

    Returns:
        (value, stderr), scalars or (K,).

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> x = torch.randn(20000, 2, generator=g, dtype=torch.float64)   # data N(0, I), model N(0, 2I)
        >>> terms, f = stein_terms(lambda z: 3 * z, x, -x / 2, trace="exact")   # any multiple of f* = x/2
        >>> value, se = scaled_lsd(terms, f.pow(2).sum(-1), lam=0.5)
        >>> abs(float(value) - 0.5) < 3 * float(se)                       # E‖s_q − s_p‖²/(2λ) = d/4
        True
    """
    positive_float(lam, "lam")
    terms, sq_norms = terms.detach().double(), sq_norms.detach().double()
    n = terms.shape[-1]
    m, v = terms.mean(-1, keepdim=True), sq_norms.mean(-1, keepdim=True)
    var_mean = terms.var(-1, keepdim=True) / n
    value = (m * m - var_mean) / (2 * lam * v)
    influence = (m / (lam * v)) * (terms - m) - (m * m / (2 * lam * v * v)) * (sq_norms - v)
    second = 2 * (var_mean / (2 * lam * v)) ** 2
    stderr = (influence.var(-1, keepdim=True) / n + second).sqrt()
    return value.squeeze(-1), stderr.squeeze(-1)

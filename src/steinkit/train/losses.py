r"""Training objectives for unnormalized models, one function per method, all to be *minimized*.

* ``lsd`` (Algorithm 3): the critic maximizes LSDE − λ E‖f‖² (:func:`lsd_critic_loss`); the model
  minimizes E[s_θ(x)ᵀ f(x)] with the critic held fixed (:func:`lsd_model_loss`) — the LSD with
  the trace term dropped, since tr ∇f does not depend on θ (same gradient, no double backward
  through the critic).
* ``ml``: −E log q_θ(x), only for normalized models.
* ``ssm`` (Eq. 16): ½‖s_θ(x)‖² + εᵀ∇ₓ(εᵀ s_θ(x)), ε ~ N(0, I) (sliced score matching).
* ``nce``: logistic regression of data against noise samples with a learned log-normalizer c,
  log q̃ = log q_θ + c, and G(u) = log q̃(u) − log p_n(u).
* ``cnce``: conditional NCE with symmetric noise y = x + ε n, G = log q_θ(x) − log q_θ(y),
  loss log(1 + e^{−G}).

Each function takes every random quantity (probes, noise samples) as an argument, so a caller
decides how randomness is drawn (the trainer draws it for the global batch, which keeps a
distributed run identical to a single-process one).

Example:
    >>> import torch
    >>> from steinkit.models import Gaussian
    >>> q = Gaussian(torch.zeros(2), torch.eye(2))
    >>> x = torch.randn(64, 2, generator=torch.Generator().manual_seed(0))
    >>> ml_loss(q, x).item() > 0
    True
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..stein import critic_objective, stein_terms

__all__ = [
    "ml_loss",
    "ssm_terms",
    "ssm_loss",
    "nce_loss",
    "cnce_loss",
    "lsd_critic_loss",
    "lsd_model_loss",
]


def ml_loss(model: nn.Module, x: Tensor) -> Tensor:
    """Negative mean log-likelihood −E log q_θ(x) of a normalized model.

    Example:
        >>> from steinkit.models import Gaussian
        >>> round(ml_loss(Gaussian(torch.zeros(1), torch.eye(1)), torch.zeros(3, 1)).item(), 4)
        0.9189
    """
    return -model.log_prob(x).mean()


def ssm_terms(model: nn.Module, x: Tensor, probes: Tensor) -> tuple[Tensor, Tensor]:
    """Per-example terms of sliced score matching: (½‖s(x)‖², εᵀ∇ₓ(εᵀ s(x))), each (n,).

    The second term is the Hutchinson estimate of tr ∇ₓ s = tr of the Hessian of log q; it is
    computed with ``create_graph=True`` so both terms can be backpropagated to θ. A score that
    is piecewise constant in x (e.g. the Laplace ICA model) has a zero second term.

    Example:
        >>> from steinkit.models import Gaussian
        >>> q = Gaussian(torch.zeros(2), torch.eye(2))
        >>> sq, hess = ssm_terms(q, torch.zeros(1, 2), torch.ones(1, 2))
        >>> sq.tolist(), hess.tolist()                  # s = −x, ∇ₓs = −I, εᵀ(−I)ε = −2
        ([0.0], [-2.0])
    """
    if probes.shape != x.shape:
        raise ValueError(f"probes must have the shape of x {tuple(x.shape)}, got {tuple(probes.shape)}")
    with torch.enable_grad():
        xr = x.detach().requires_grad_(True)
        s = model.score(xr)
        if not s.requires_grad:
            raise ValueError(
                "model.score(x) must be differentiable (in x and the parameters) for method='ssm'"
            )
        (g,) = torch.autograd.grad((s * probes).sum(), xr, create_graph=True, allow_unused=True)
    hess = torch.zeros_like(s[:, 0]) if g is None else (g * probes).sum(-1)
    return 0.5 * s.pow(2).sum(-1), hess


def ssm_loss(model: nn.Module, x: Tensor, probes: Tensor) -> Tensor:
    """Sliced score matching loss, mean of ½‖s(x)‖² + εᵀ∇ₓ(εᵀ s(x)) (Eq. 16).

    Example:
        >>> from steinkit.models import Gaussian
        >>> ssm_loss(Gaussian(torch.zeros(2), torch.eye(2)), torch.zeros(1, 2), torch.ones(1, 2)).item()
        -2.0
    """
    sq, hess = ssm_terms(model, x, probes)
    return (sq + hess).mean()


def nce_loss(
    model: nn.Module,
    x: Tensor,
    noise_x: Tensor,
    noise_log_prob: Callable[[Tensor], Tensor],
    log_c: Tensor,
) -> Tensor:
    """Noise-contrastive estimation loss with one noise sample per data point.

    With G(u) = log q_θ(u) + c − log p_n(u): −E_x log σ(G(x)) − E_y log σ(−G(y)), y ~ p_n.

    Example:
        >>> from steinkit.models import Gaussian
        >>> q = Gaussian(torch.zeros(1), torch.eye(1))
        >>> x = torch.zeros(4, 1)
        >>> round(nce_loss(q, x, x, q.log_prob, torch.tensor(0.0)).item(), 4)   # 2 log 2
        1.3863
    """
    gx = model.log_prob(x) + log_c - noise_log_prob(x)
    gy = model.log_prob(noise_x) + log_c - noise_log_prob(noise_x)
    return F.softplus(-gx).mean() + F.softplus(gy).mean()


def cnce_loss(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """Conditional NCE loss with symmetric noise: E log(1 + exp(−G)), G = log q(x) − log q(y).

    ``y`` are the noisy copies x + ε n of the data (Ceylan & Gutmann, 2018, one per point).

    Example:
        >>> from steinkit.models import Gaussian
        >>> q = Gaussian(torch.zeros(1), torch.eye(1))
        >>> round(cnce_loss(q, torch.zeros(2, 1), torch.zeros(2, 1)).item(), 4)   # log 2
        0.6931
    """
    g = model.log_prob(x) - model.log_prob(y)
    return F.softplus(-g).mean()


def lsd_critic_loss(
    critic: Callable[[Tensor], Tensor],
    x: Tensor,
    scores: Tensor,
    lam: float,
    *,
    probes: Tensor | None = None,
    trace: str = "hutchinson",
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Critic loss −(LSDE(f, x, q) − λ E‖f(x)‖²) and the (detached) LSD estimate.

    The objective is :func:`steinkit.stein.critic_objective` (``"lsd"``), negated to be minimized.

    ``scores`` are the model's scores at x; they are detached, so only the critic is trained.
    ``probes`` (n_probes·n, d, stacked blocks of n rows) fix the Hutchinson probes.

    Example:
        >>> from steinkit.critics import MLPCritic
        >>> critic = MLPCritic(2, hidden=8, generator=torch.Generator().manual_seed(0))
        >>> x = torch.randn(16, 2)
        >>> loss, lsd = lsd_critic_loss(critic, x, -x, lam=0.5)
        >>> loss.shape, lsd.requires_grad
        (torch.Size([]), False)
    """
    terms, f = stein_terms(critic, x, scores.detach(), trace=trace, probes=probes, generator=generator)
    return -critic_objective(terms, f, lam), terms.mean().detach()


def lsd_model_loss(scores: Tensor, f: Tensor) -> Tensor:
    """Model loss of Algorithm 3: E[s_θ(x)ᵀ f(x)] with the critic values ``f`` held fixed.

    Its θ-gradient equals that of the LSD, whose trace term does not depend on θ.

    Example:
        >>> float(lsd_model_loss(torch.ones(2, 3), torch.ones(2, 3)))
        3.0
    """
    return (scores * f.detach()).sum(-1).mean()

"""Each loss as a small ``nn.Module`` whose ``forward`` returns (loss, metrics).

Wrapping a loss in a module's ``forward`` is what lets the trainer hand it to PyTorch
``DistributedDataParallel`` unchanged: the module owns exactly the parameters its loss trains
(the model, plus NCE's log-normalizer, or the critic), and every random quantity is drawn by
:meth:`LossModule.draw` for the *global* batch and passed in, row-aligned with the data. The
methods that step these modules are in :mod:`steinkit.train.objectives`.

Example:
    >>> import torch
    >>> from steinkit.models import Gaussian
    >>> loss = SSMLoss(Gaussian(torch.zeros(2), torch.eye(2)))
    >>> x = torch.randn(8, 2)
    >>> value, metrics = loss(x, loss.draw(8, None, x))
    >>> sorted(metrics)
    ['hess_term', 'sq_norm']
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..models import Gaussian
from .losses import cnce_loss, lsd_critic_loss, lsd_model_loss, ml_loss, nce_loss, ssm_terms

__all__ = [
    "LossModule",
    "MLLoss",
    "SSMLoss",
    "NCELoss",
    "CNCELoss",
    "LSDModelLoss",
    "CriticLoss",
    "fit_noise",
]

Metrics = dict[str, Tensor]


def _randn(shape: tuple[int, ...], generator: torch.Generator | None, like: Tensor) -> Tensor:
    return torch.randn(shape, generator=generator, dtype=like.dtype, device=like.device)


class LossModule(nn.Module):
    """Base: ``draw(n, generator, like)`` gives the random inputs of n rows (or ``None``);
    ``forward(x, aux)`` returns the scalar loss and a dict of detached scalar metrics."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def draw(self, n: int, generator: torch.Generator | None, like: Tensor) -> Tensor | None:
        return None

    def forward(self, x: Tensor, aux: Any) -> tuple[Tensor, Metrics]:  # pragma: no cover
        raise NotImplementedError


class MLLoss(LossModule):
    """Exact maximum likelihood (normalized models only)."""

    def forward(self, x: Tensor, aux: Any = None) -> tuple[Tensor, Metrics]:
        return ml_loss(self.model, x), {}


class SSMLoss(LossModule):
    """Sliced score matching with one Gaussian probe per example (Eq. 16)."""

    def draw(self, n: int, generator: torch.Generator | None, like: Tensor) -> Tensor:
        return _randn((n, like.shape[-1]), generator, like)

    def forward(self, x: Tensor, aux: Tensor) -> tuple[Tensor, Metrics]:
        sq, hess = ssm_terms(self.model, x, aux)
        return (sq + hess).mean(), {"sq_norm": sq.mean().detach(), "hess_term": hess.mean().detach()}


def fit_noise(x: Tensor, *, jitter: float = 1e-6) -> Gaussian:
    """NCE's noise distribution: a full-covariance Gaussian fitted to the data (frozen).

    ``jitter`` × mean variance is added to the diagonal so the covariance is always invertible.

    Example:
        >>> fit_noise(torch.randn(100, 3)).dim
        3
    """
    x = x.detach()
    mean = x.mean(0)
    xc = x - mean
    cov = xc.T @ xc / max(1, x.shape[0] - 1)
    cov = 0.5 * (cov + cov.T)
    cov = cov + jitter * float(cov.diagonal().mean().clamp_min(1e-12)) * torch.eye(
        x.shape[1], dtype=x.dtype, device=x.device
    )
    if not bool(torch.isfinite(cov).all()):
        raise ValueError(
            f"data are too large for NCE's noise Gaussian: their covariance overflows {x.dtype} (largest |x| is "
            f"{float(x.abs().max()):.3g}); rescale (standardize) the data or use float64"
        )
    noise = Gaussian(mean, cov)
    noise.requires_grad_(False)
    return noise


class NCELoss(LossModule):
    """Noise-contrastive estimation against a Gaussian fitted to the training data, with a
    learned log-normalizer ``log_c`` (log q̃ = log_prob + log_c)."""

    def __init__(self, model: nn.Module, noise: Gaussian) -> None:
        super().__init__(model)
        self.noise = noise
        self.log_c = nn.Parameter(torch.zeros((), dtype=noise.mean.dtype, device=noise.mean.device))

    def draw(self, n: int, generator: torch.Generator | None, like: Tensor) -> Tensor:
        return self.noise.sample(n, generator=generator).to(like.dtype)

    def forward(self, x: Tensor, aux: Tensor) -> tuple[Tensor, Metrics]:
        loss = nce_loss(self.model, x, aux, self.noise.log_prob, self.log_c)
        return loss, {"log_c": self.log_c.detach().clone()}


class CNCELoss(LossModule):
    """Conditional NCE with symmetric Gaussian noise of scale ``eps``: y = x + eps·n."""

    def __init__(self, model: nn.Module, eps: float) -> None:
        super().__init__(model)
        self.eps = float(eps)

    def draw(self, n: int, generator: torch.Generator | None, like: Tensor) -> Tensor:
        return _randn((n, like.shape[-1]), generator, like)

    def forward(self, x: Tensor, aux: Tensor) -> tuple[Tensor, Metrics]:
        return cnce_loss(self.model, x, x + self.eps * aux), {}


class LSDModelLoss(LossModule):
    """The model's side of Algorithm 3: E[s_θ(x)ᵀ f(x)] with critic values ``aux = f(x)`` fixed."""

    def forward(self, x: Tensor, aux: Tensor) -> tuple[Tensor, Metrics]:
        scores = self.model.score(x)
        if not scores.requires_grad:
            raise ValueError(
                "model.score(x) must be differentiable in the model's parameters for method='lsd' "
                "(it returned a tensor without a graph)"
            )
        return lsd_model_loss(scores, aux), {}


class CriticLoss(nn.Module):
    """The critic's side of Algorithm 3: −(LSDE − λ E‖f‖²) at fixed model scores.

    ``draw`` gives (n, n_probes, d) Gaussian probes (``None`` for the exact trace); ``forward``
    takes (x, scores, probes) and returns (loss, {"lsd": LSD estimate}).
    """

    def __init__(self, critic: nn.Module, lam: float, trace: str = "hutchinson", n_probes: int = 1) -> None:
        super().__init__()
        self.critic = critic
        self.lam, self.trace, self.n_probes = float(lam), trace, int(n_probes)

    def draw(self, n: int, generator: torch.Generator | None, like: Tensor) -> Tensor | None:
        if self.trace == "exact":
            return None
        return _randn((n, self.n_probes, like.shape[-1]), generator, like)

    def forward(self, x: Tensor, scores: Tensor, probes: Tensor | None) -> tuple[Tensor, Metrics]:
        if probes is not None:  # (b, P, d) -> P stacked blocks of b rows
            probes = probes.transpose(0, 1).reshape(-1, x.shape[-1])
        loss, lsd = lsd_critic_loss(
            self.critic, x, scores, self.lam, probes=probes, trace=self.trace
        )
        return loss, {"lsd": lsd}

"""Discrepancy estimation and model comparison with learned Stein critics (Algorithm 1).

Example:
    >>> import torch, steinkit as sk
    >>> x = torch.randn(500, 2, generator=torch.Generator().manual_seed(0))
    >>> model = sk.models.Gaussian(torch.ones(2), torch.eye(2))
    >>> est = sk.stein_discrepancy(model, x, n_iters=200, hidden=32)
    >>> est.value > 0
    True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import torch

from .fit import fit_heldout_critics
from .scores import as_scores
from .settings import ESTIMATE, CriticSettings, settings_from
from .splits import split_data
from .validation import as_data, as_device, seed_from, seed_value, wrong_type

__all__ = [
    "DiscrepancyEstimate",
    "ComparisonRow",
    "stein_discrepancy",
    "compare",
    "split_data",
]


@dataclass(frozen=True)
class DiscrepancyEstimate:
    """A learned Stein discrepancy estimate on held-out data.

    Attributes:
        value: mean Stein term of the selected critic on the test split (exact trace).
        stderr: standard error σ/√n_test of that mean.
        n_test: size of the test split.
        lam: the L2 weight λ the critic was fitted with.
        best_iteration: training iteration of the selected critic.
        history: train/val statistics at every validation (for plots).
    """

    value: float
    stderr: float
    n_test: int
    lam: float
    best_iteration: int
    history: tuple[dict, ...] = field(repr=False)

    def __str__(self) -> str:
        return f"LSD = {self.value:.4g} ± {self.stderr:.2g} (n_test={self.n_test}, λ={self.lam})"


@dataclass(frozen=True)
class ComparisonRow:
    """One model's line in :func:`compare`'s ranking."""

    name: str
    value: float
    stderr: float
    estimate: DiscrepancyEstimate = field(repr=False)


def _estimates(
    models: Sequence[Any], x: Any, settings: CriticSettings, seed: int, progress: bool, device: Any
) -> list[DiscrepancyEstimate]:
    """Fit one critic per model (as one ensemble) on a shared split; estimate on the test part."""
    seed = seed_value(seed)
    device = as_device(device, x)
    x = as_data(x, "x").to(device)
    scores = as_scores(models, device)
    for sc in scores:
        sc.check_dim(x)
    fits = fit_heldout_critics([(sc, x, seed) for sc in scores], settings, progress=progress, device=device)
    out = []
    for fit in fits:
        terms = fit.test_terms.double()  # float32 squares of large terms overflow
        n_test = terms.shape[0]
        out.append(
            DiscrepancyEstimate(
                value=float(terms.mean()),
                stderr=float(terms.std() / n_test**0.5),
                n_test=n_test,
                lam=settings.lam,
                best_iteration=fit.best_iteration,
                history=fit.history,
            )
        )
    return out


def stein_discrepancy(
    model: Any,
    x: Any,
    settings: CriticSettings | None = None,
    *,
    seed: int = 0,
    generator: torch.Generator | None = None,
    progress: bool = False,
    device: torch.device | str | None = None,
    **overrides: Any,
) -> DiscrepancyEstimate:
    """Estimate the learned Stein discrepancy between the data's distribution and ``model``.

    The data are split into train/validation/test parts; an MLP critic maximizes
    LSD − λ·E‖f‖² (Hutchinson trace) on the training part, the validation part selects the
    critic by mean − std (Appendix A), and the test part gives the estimate with an error bar.

    Arguments:
        model: anything :func:`steinkit.as_score` accepts.
        x: samples from the data distribution, (n, d).
        settings: a :class:`~steinkit.settings.CriticSettings`; default
            :data:`~steinkit.settings.ESTIMATE` (λ = .5, split .8/.1/.1, 2×300 Swish,
            1000 Adam steps at 1e-3, full batch, validation every 100 steps).
        seed: seed of the split, the critic's initialisation, the probes and the batches.
        generator: a ``torch.Generator`` to draw that seed from instead (the call advances it).
        progress: show a progress bar.
        device: where to compute, e.g. ``"cuda"`` (default: where ``x`` lives, else the CPU).
            The data move there, a model that is an ``nn.Module`` is copied there (yours stays
            where it is), and the critic and its random draws are made there. On the CPU the
            answer is the same whichever way the device is given.
        **overrides: :class:`~steinkit.settings.CriticSettings` fields to change
            (``n_iters=200``, ``hidden=32``, ...); unknown names raise a TypeError.

    Returns:
        A :class:`DiscrepancyEstimate`.

    Example:
        >>> import torch, steinkit as sk
        >>> x = torch.randn(300, 2, generator=torch.Generator().manual_seed(0))
        >>> quick = sk.ESTIMATE.replace(n_iters=100, hidden=16)
        >>> est = sk.stein_discrepancy(sk.models.Gaussian(torch.ones(2), torch.eye(2)), x, quick)
        >>> est.value > 0, est.n_test
        (True, 30)
    """
    cfg = settings_from(settings, ESTIMATE, overrides, extra=", or seed, generator, progress, device")
    return _estimates([model], x, cfg, seed_from(seed, generator), progress, device)[0]


def compare(
    models: Mapping[str, Any],
    x: Any,
    settings: CriticSettings | None = None,
    *,
    seed: int = 0,
    generator: torch.Generator | None = None,
    progress: bool = False,
    device: torch.device | str | None = None,
    **overrides: Any,
) -> list[ComparisonRow]:
    """Rank models by learned Stein discrepancy on the same data split, best (smallest) first.

    Every model gets a critic of its own, fitted exactly as :func:`stein_discrepancy` would with
    the same settings (the critics are trained together as one batched ensemble). Arguments
    are those of :func:`stein_discrepancy`, with ``models`` a mapping of name -> model.

    Example:
        >>> import torch, steinkit as sk
        >>> x = torch.randn(400, 2, generator=torch.Generator().manual_seed(1))
        >>> rows = sk.compare({"right": sk.models.Gaussian(torch.zeros(2), torch.eye(2)),
        ...                    "shifted": sk.models.Gaussian(torch.ones(2), torch.eye(2))},
        ...                   x, n_iters=200, hidden=32)
        >>> [r.name for r in rows]
        ['right', 'shifted']
    """
    if not isinstance(models, Mapping):
        raise wrong_type("models", "a mapping of name -> model", models)
    if not models:
        raise ValueError("models must be a non-empty mapping of name -> model, got an empty one")
    cfg = settings_from(settings, ESTIMATE, overrides, extra=", or seed, generator, progress, device")
    names = list(models)
    estimates = _estimates([models[n] for n in names], x, cfg, seed_from(seed, generator), progress, device)
    rows = [ComparisonRow(n, e.value, e.stderr, e) for n, e in zip(names, estimates)]
    return sorted(rows, key=lambda r: r.value)

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
from torch import Tensor

from .fit import fit_heldout_critics
from .scores import as_score, check_data

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


def split_data(
    x: Tensor, split: Sequence[float] = (0.8, 0.1, 0.1), *, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """Shuffle x and cut it into train/validation/test parts with the given fractions.

    Example:
        >>> tr, va, te = split_data(torch.randn(1000, 3))
        >>> (len(tr), len(va), len(te))
        (800, 100, 100)
    """
    if len(split) != 3 or any(f <= 0 for f in split) or sum(split) > 1 + 1e-9:
        raise ValueError(f"split must be three positive fractions summing to at most 1, got {split!r}")
    n = x.shape[0]
    n_train = int(round(split[0] * n))
    n_val = int(round(split[1] * n))
    n_test = n - n_train - n_val if abs(sum(split) - 1) < 1e-9 else int(round(split[2] * n))
    if min(n_train, n_val, n_test) < 2:
        raise ValueError(
            f"x has too few samples (n={n}) for split {tuple(split)}: each of train/val/test "
            f"needs at least 2, got {n_train}/{n_val}/{n_test}"
        )
    perm = torch.randperm(n, generator=generator)
    return (
        x[perm[:n_train]],
        x[perm[n_train : n_train + n_val]],
        x[perm[n_train + n_val : n_train + n_val + n_test]],
    )


def _estimates(
    models: Sequence[Any], x: Any, *, lam: float, seed: int, **options: Any
) -> list[DiscrepancyEstimate]:
    """Fit one critic per model (as one ensemble) on a shared split; estimate on the test part."""
    if lam <= 0:
        raise ValueError(f"lam must be > 0, got {lam!r}")
    x = check_data(x, "x")
    scores = [as_score(m) for m in models]
    for sc in scores:
        sc.check_dim(x)
    fits = fit_heldout_critics([(sc, x, seed) for sc in scores], lam=lam, **options)
    out = []
    for fit in fits:
        n_test = fit.test_terms.shape[0]
        out.append(
            DiscrepancyEstimate(
                value=float(fit.test_terms.mean()),
                stderr=float(fit.test_terms.std() / n_test**0.5),
                n_test=n_test,
                lam=lam,
                best_iteration=fit.best_iteration,
                history=fit.history,
            )
        )
    return out


_DEFAULTS: dict[str, Any] = dict(
    lam=0.5,
    split=(0.8, 0.1, 0.1),
    hidden=300,
    n_layers=2,
    dropout=0.0,
    weight_decay=0.0,
    n_iters=1000,
    lr=1e-3,
    batch_size=None,
    val_every=100,
    objective="lsd",
    selection="mean-std",
    trace="hutchinson",
    n_probes=1,
    seed=0,
    progress=False,
)


def stein_discrepancy(model: Any, x: Any, **options: Any) -> DiscrepancyEstimate:
    """Estimate the learned Stein discrepancy between the data's distribution and ``model``.

    The data are split into train/validation/test parts; an MLP critic maximizes
    LSD − λ·E‖f‖² (Hutchinson trace) on the training part, the validation part selects the
    critic by mean − std (Appendix A), and the test part gives the estimate with an error bar.

    Arguments:
        model: anything :func:`steinkit.as_score` accepts.
        x: samples from the data distribution, (n, d).
        **options: ``lam`` (0.5), ``split`` ((.8, .1, .1)), ``hidden`` (300), ``n_layers`` (2),
            ``dropout`` (0), ``weight_decay`` (0), ``n_iters`` (1000), ``lr`` (1e-3),
            ``batch_size`` (None: full batch), ``val_every`` (100), ``objective`` ("lsd"),
            ``selection`` ("mean-std"), ``trace`` ("hutchinson"), ``n_probes`` (1),
            ``seed`` (0), ``progress`` (False).

    Returns:
        A :class:`DiscrepancyEstimate`.
    """
    return _estimates([model], x, **_options(options))[0]


def compare(models: Mapping[str, Any], x: Any, **options: Any) -> list[ComparisonRow]:
    """Rank models by learned Stein discrepancy on the same data split, best (smallest) first.

    Every model gets a critic of its own, fitted exactly as :func:`stein_discrepancy` would with
    the same options (the critics are trained together as one batched ensemble).

    Example:
        >>> import torch, steinkit as sk
        >>> x = torch.randn(400, 2, generator=torch.Generator().manual_seed(1))
        >>> rows = sk.compare({"right": sk.models.Gaussian(torch.zeros(2), torch.eye(2)),
        ...                    "shifted": sk.models.Gaussian(torch.ones(2), torch.eye(2))},
        ...                   x, n_iters=200, hidden=32)
        >>> [r.name for r in rows]
        ['right', 'shifted']
    """
    if not isinstance(models, Mapping) or not models:
        raise TypeError("models must be a non-empty mapping of name -> model")
    names = list(models)
    estimates = _estimates([models[n] for n in names], x, **_options(options))
    rows = [ComparisonRow(n, e.value, e.stderr, e) for n, e in zip(names, estimates)]
    return sorted(rows, key=lambda r: r.value)


def _options(options: Mapping[str, Any]) -> dict[str, Any]:
    unknown = set(options) - set(_DEFAULTS)
    if unknown:
        raise TypeError(f"unknown option(s) {sorted(unknown)}; valid: {sorted(_DEFAULTS)}")
    return {**_DEFAULTS, **options}

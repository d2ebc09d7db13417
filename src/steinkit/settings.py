"""Settings of a learned Stein critic: architecture, optimiser, penalty, split, selection, trace.

:class:`CriticSettings` is a frozen dataclass checked when it is made. Two named values hold
the paper's two uses as published: :data:`PAPER_ESTIMATE` (Algorithm 1, discrepancy estimates:
objective ``"lsd"``, selection by mean − std, no dropout; the dataclass's defaults) and :data:`TEST`
(Algorithm 2, the goodness-of-fit test: objective and selection by the power mean/std, dropout .5,
weight decay 5e-4). :data:`ESTIMATE` is the library's default estimate; :data:`LEARNED_TEST` (the
default LSD test) and :data:`RELATIVE` (the learned relative test) derive from the paper's.
Derive others with :meth:`CriticSettings.replace`.

Example:
    >>> quick = ESTIMATE.replace(n_iters=200, hidden=32)
    >>> quick.n_iters, quick.objective, TEST.objective
    (200, 'lsd', 'power')
    >>> ESTIMATE.replace(iters=5)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    TypeError: unknown CriticSettings field(s) ['iters']; valid: ['batch_size', 'coordinate_features', ...]
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

from .splits import check_split
from .validation import flag, fraction, nonneg_float, one_of, positive_float, positive_int, wrong_type

__all__ = ["CriticSettings", "ESTIMATE", "PAPER_ESTIMATE", "TEST", "LEARNED_TEST", "RELATIVE", "OBJECTIVES",
           "SELECTIONS", "TRACES", "VALUES", "field_names", "settings_from", "sized_for", "auto_hidden"]

OBJECTIVES = ("lsd", "power")
VALUES = ("mean", "scaled", "bound")
SELECTIONS = ("mean-std", "power", "mean", "penalised", "last")
TRACES = ("hutchinson", "exact")


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass(frozen=True)
class CriticSettings:
    """How a critic is built, fitted and selected (defaults: :data:`ESTIMATE`).

    Every field carries a help text in ``dataclasses.fields(CriticSettings)[i].metadata["help"]``.
    Values are checked on construction; ``split`` is stored as a tuple of floats.

    Example:
        >>> CriticSettings(lam=-1.0)
        Traceback (most recent call last):
        ...
        ValueError: lam must be a finite number > 0, got -1.0
    """

    hidden: int | None = field(
        default=300, metadata=_help("units per hidden layer of the MLP critic; None: sized from n and d (sized_for)")
    )
    n_layers: int = field(default=2, metadata=_help("hidden layers of the MLP critic"))
    dropout: float = field(default=0.0, metadata=_help("dropout rate on hidden units while fitting, in [0, 1)"))
    weight_decay: float = field(default=0.0, metadata=_help("Adam weight decay of the critic (>= 0)"))
    lam: float = field(default=0.5, metadata=_help("weight λ > 0 of the L2 penalty λ·E‖f‖² (Eq. 8)"))
    n_iters: int = field(default=1000, metadata=_help("Adam steps of the critic"))
    lr: float = field(default=1e-3, metadata=_help("Adam learning rate of the critic"))
    batch_size: int | None = field(
        default=None, metadata=_help("mini-batch size per step; None, or at least the training split: all of it")
    )
    val_every: int = field(default=100, metadata=_help("validate (and maybe keep the critic) every this many steps"))
    objective: str = field(
        default="lsd", metadata=_help("what the critic maximizes: 'lsd' (mean, Eq. 11) or 'power' (mean/std, Eq. 12)")
    )
    selection: str = field(
        default="mean-std",
        metadata=_help("validation statistic that picks the critic: 'mean-std', 'power', 'mean', 'penalised' "
                       "(mean − λ·E‖f‖²) or 'last'"),
    )
    trace: str = field(default="hutchinson", metadata=_help("trace estimator while fitting: 'hutchinson' or 'exact'"))
    n_probes: int = field(default=1, metadata=_help("Hutchinson probes per example"))
    split: tuple[float, float, float] = field(
        default=(0.8, 0.1, 0.1), metadata=_help("train/validation/test fractions of the data")
    )
    folds: int = field(
        default=1,
        metadata=_help("estimates only: 1 splits the data once by split; K > 1 cross-fits: each of K folds is "
                       "tested by a critic fitted on the other folds (validated on split[1]/(split[0]+split[1]) "
                       "of them), so every point is tested once"),
    )
    patience: int | None = field(
        default=None,
        metadata=_help("stop after this many validations without a better selection statistic; None: run n_iters"),
    )
    standardize: bool = field(
        default=False,
        metadata=_help("standardise the critic's inputs by the training split's mean and std (the critic stays "
                       "a function of x: f(x) = std ⊙ g((x − mean)/std))"),
    )
    refit: bool = field(
        default=False,
        metadata=_help("give the critic a linear skip connection and, after fitting, re-solve its last layer, skip "
                       "and bias in closed form (ridge chosen on the validation split)"),
    )
    coordinate_features: bool = field(
        default=False,
        metadata=_help("with refit (ignored without): add per-coordinate features (a per-coordinate scale, soft steps, an even "
                       "term, radial shrinkage; steinkit.coordinate_features) to the closed-form last layer, "
                       "with their own ridge"),
    )
    value: str = field(
        default="mean",
        metadata=_help("what an estimate reports: 'mean' (the critic's mean Stein term, Algorithm 1), 'scaled' "
                       "(the critic at its penalty-optimal scale, never above the optimal critic's LSD) or 'bound' "
                       "(the largest of 'scaled' and the LSDs of the best linear and per-coordinate critics by "
                       "U-statistics, steinkit.feature_bounds: lower bounds of the optimal critic's LSD)"),
    )

    def __post_init__(self) -> None:
        checked = {
            "hidden": None if self.hidden is None else positive_int(self.hidden, "hidden"),
            "n_layers": positive_int(self.n_layers, "n_layers"),
            "dropout": fraction(self.dropout, "dropout"),
            "weight_decay": nonneg_float(self.weight_decay, "weight_decay"),
            "lam": positive_float(self.lam, "lam"),
            "n_iters": positive_int(self.n_iters, "n_iters"),
            "lr": positive_float(self.lr, "lr"),
            "batch_size": None if self.batch_size is None else positive_int(self.batch_size, "batch_size"),
            "val_every": positive_int(self.val_every, "val_every"),
            "objective": one_of(self.objective, "objective", OBJECTIVES),
            "selection": one_of(self.selection, "selection", SELECTIONS),
            "trace": one_of(self.trace, "trace", TRACES),
            "n_probes": positive_int(self.n_probes, "n_probes"),
            "split": check_split(self.split),
            "folds": positive_int(self.folds, "folds"),
            "patience": None if self.patience is None else positive_int(self.patience, "patience"),
            "standardize": flag(self.standardize, "standardize"),
            "refit": flag(self.refit, "refit"),
            "coordinate_features": flag(self.coordinate_features, "coordinate_features"),
            "value": one_of(self.value, "value", VALUES),
        }
        for name, value in checked.items():
            object.__setattr__(self, name, value)

    def replace(self, **changes: Any) -> CriticSettings:
        """A copy with some fields changed; unknown names raise a TypeError listing the valid ones.

        Example:
            >>> TEST.replace(n_iters=50).n_iters
            50
        """
        unknown = set(changes) - set(field_names())
        if unknown:
            raise TypeError(f"unknown CriticSettings field(s) {sorted(unknown)}; valid: {sorted(field_names())}")
        return dataclasses.replace(self, **changes)

    def as_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (e.g. for a results file or a cache key).

        Example:
            >>> ESTIMATE.as_dict()["split"]
            (0.8, 0.1, 0.1)
        """
        return dataclasses.asdict(self)


def field_names() -> tuple[str, ...]:
    """Names of the :class:`CriticSettings` fields, in declaration order."""
    return tuple(f.name for f in dataclasses.fields(CriticSettings))


def settings_from(
    settings: CriticSettings | None, default: CriticSettings, overrides: Mapping[str, Any], *, extra: str = ""
) -> CriticSettings:
    """``settings`` (or ``default``) with keyword ``overrides`` applied.

    Unknown names raise a TypeError listing the valid ones (``extra`` names the call's other
    keywords in the message).

    Example:
        >>> settings_from(None, TEST, {"n_iters": 10}).n_iters
        10
    """
    base = default if settings is None else settings
    if not isinstance(base, CriticSettings):
        raise wrong_type("settings", "a CriticSettings", base)
    unknown = set(overrides) - set(field_names())
    if unknown:
        raise TypeError(
            f"unknown option(s) {sorted(unknown)}; valid: {sorted(field_names())}{extra}"
        )
    return base.replace(**overrides) if overrides else base


def auto_hidden(n_train: int, d: int) -> int:
    """The hidden width of a critic sized for ``n_train`` training points in d dimensions:
    32 + 4d units, a multiple of 8, at most 256.

    Example:
        >>> auto_hidden(800, 2), auto_hidden(800, 50), auto_hidden(800, 784)
        (40, 232, 256)
    """
    return min(256, 8 * -(-(32 + 4 * d) // 8))


def sized_for(settings: CriticSettings, n_train: int, d: int) -> CriticSettings:
    """``settings`` with what it leaves to the data chosen for ``n_train`` training points in d
    dimensions: ``hidden=None`` becomes :func:`auto_hidden`, and a ``batch_size`` of at least
    ``n_train`` becomes the whole training split (None).

    Example:
        >>> sized_for(ESTIMATE, 160, 2).hidden, sized_for(ESTIMATE, 160, 2).batch_size
        (40, None)
    """
    changes: dict[str, Any] = {}
    if settings.hidden is None:
        changes["hidden"] = auto_hidden(n_train, d)
    if settings.batch_size is not None and settings.batch_size >= n_train:
        changes["batch_size"] = None
    return settings.replace(**changes) if changes else settings


PAPER_ESTIMATE = CriticSettings()
"""Algorithm 1 literally: a 2×300 Swish critic, 1000 full-batch Adam steps at 1e-3, the critic
with the largest validation mean − std of its Stein terms (Appendix A), its mean Stein term reported."""

ESTIMATE = CriticSettings(
    hidden=None, n_iters=2000, lr=2e-3, weight_decay=1e-2, batch_size=1024, val_every=10, patience=10,
    selection="penalised", standardize=True, refit=True, coordinate_features=True, value="bound", folds=5,
)
"""The default estimate (:func:`steinkit.stein_discrepancy`, :func:`steinkit.compare`): cross-fitted
over 5 folds (one 80/10/10 split above :data:`steinkit.evaluate.CROSSFIT_MAX_N` points); per fold a
critic of :func:`auto_hidden` width on standardised inputs, Adam (weight decay 1e-2, which slows the
fit of noise enough for a strong low-dimensional misfit to be learnt in high d) on batches of up to
1024 points, the critic with the largest validation penalised objective (every 10 steps, stopping
after 10 without a better one, at most 2000 steps), its last layer, a linear skip and per-coordinate
features (:mod:`steinkit.coordinate_features`) solved in closed form; it reports the largest of three
lower bounds of the target: the critic's value at the penalty-optimal scale (:func:`steinkit.stein.scaled_lsd`)
and the LSDs of the best linear and per-coordinate critics (:mod:`steinkit.feature_bounds`)."""

TEST = CriticSettings(objective="power", selection="power", dropout=0.5, weight_decay=5e-4)
"""Algorithm 2 (the LSD goodness-of-fit test): power objective and selection, dropout .5,
weight decay 5e-4."""

LEARNED_TEST = TEST.replace(hidden=64, n_iters=300, val_every=50, dropout=0.0, split=(0.45, 0.05, 0.5),
                            batch_size=4096)
"""The critic of the learned test's own protocols (:mod:`steinkit.gof.lsd`: ``"combined"``, the
default, ``"sequential"``, ``"aggregated"``, and the width of ``"features"``): 2×64 Swish, 300
Adam steps on batches of at most 4096 points (the whole training part below that, so tests up to
n ≈ 5000 train full batch as before; above it a step costs the same whatever n), power objective,
no dropout, weight decay 5e-4. ``"sequential"`` spreads the steps over
its folds; ``"aggregated"`` trains on 45% (5% validate, for the history) and tests the other half
at every 50th step."""

RELATIVE = PAPER_ESTIMATE.replace(hidden=64, n_iters=300, val_every=25, dropout=0.5, weight_decay=5e-4,
                            selection="penalised", split=(0.45, 0.05, 0.5))
"""The learned relative test (:func:`steinkit.relative_test`): one 2×64 critic per model, fitted 300
steps for the LSD objective with dropout .5 and weight decay 5e-4 on 45% of the data (5% select the
critic with the largest penalised objective), both tested on the other half."""

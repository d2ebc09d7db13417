"""The learned Stein discrepancy goodness-of-fit test under five protocols.

Critics are fitted on part of the data and score the rest with Stein terms of mean zero under
H0 (Stein's identity); the protocols differ in how the data are cut and the statistics combined:

* ``"combined"`` (default; settings :data:`~steinkit.settings.LEARNED_TEST`): the sequential and
  the features statistics on the same shuffled data; the test rejects for the larger, with the
  p-value of that maximum under their correlation, estimated point by point.
* ``"sequential"``: :data:`SEQUENTIAL_FOLDS` folds; one critic, warm started, trains n_iters/3
  steps on the folds before fold k and scores fold k; z = Σ √(k−1)·t_k / √(Σ (k−1)), p = 1 − Φ(z).
* ``"features"``: the same over :data:`FEATURE_FOLDS` folds without gradient steps: fold k is
  scored by the last layer fitted in closed form (:mod:`steinkit.last_layer`) on the folds
  before it, over random features of :data:`WITNESS_LAYERS` hidden layer.
* ``"aggregated"``: one critic trained on 45% (5% to validate), its terms at every stopping
  point on the other half; the largest t_m = √n · mean/std, corrected for the looks.
* ``"paper"`` (settings :data:`~steinkit.settings.TEST`): Algorithm 2 as published: train 80%,
  select on 10% by power, t = √n_test · mean/std on the last 10%, p = 1 − Φ(t).

Many tests train as one critic ensemble (:func:`lsd_tests`); each outcome equals the lone test's.
Why each protocol holds its level is said where its outcome is computed; which is stronger where,
in docs/design-notes.md.

Example:
    >>> import torch
    >>> from steinkit.scores import as_score
    >>> x = torch.randn(200, 2, generator=torch.Generator().manual_seed(0)) + 0.5
    >>> out = lsd_tests([(as_score(lambda z: -z), x, 0)], hidden=16, n_iters=90)[0]
    >>> out.pvalue < 0.05, out.details["protocol"], sorted(out.details["statistics"])
    (True, 'combined', ['features', 'trained'])
    >>> feat = lsd_tests([(as_score(lambda z: -z), x, 0)], protocol="features", hidden=16)[0]
    >>> seq = lsd_tests([(as_score(lambda z: -z), x, 0)], protocol="sequential", hidden=16, n_iters=90)[0]
    >>> len(feat.details["fold_statistics"]), len(seq.details["fold_statistics"]), seq.pvalue < 0.05
    (7, 3, True)
    >>> agg = lsd_tests([(as_score(lambda z: -z), x, 0)], protocol="aggregated", hidden=16, n_iters=100,
    ...                 val_every=25)[0]
    >>> agg.pvalue < 0.05, len(agg.details["snapshot_statistics"])
    (True, 4)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch
from torch import Tensor

from ..heldout import HeldOutFit, fit_heldout_critics
from ..prequential import fit_sequential_critics, sequential_feature_terms
from ..scores import Score
from ..settings import LEARNED_TEST, TEST, CriticSettings, settings_from
from ..validation import flag, one_of, wrong_type
from ..witness import FittedCritic
from .aggregate import max_normal_pvalue, max_t_pvalue
from .outcome import TestOutcome, normal_sf
from .options import SettingsDefault, with_settings_fields

__all__ = ["DEFAULT_PROTOCOL", "PROTOCOLS", "SEQUENTIAL_FOLDS", "FEATURE_FOLDS", "WITNESS_LAYERS", "LSDOptions",
           "lsd_tests", "normal_sf"]

PROTOCOLS = ("combined", "sequential", "features", "aggregated", "paper")
DEFAULT_PROTOCOL = "combined"
SEQUENTIAL_FOLDS = 4
"""Folds of the sequential protocol: three stages of n_iters/3 critic steps each."""
FEATURE_FOLDS = 8
"""Folds of the features protocol (no training, so more folds cost little)."""
WITNESS_LAYERS = 1
"""Hidden layers of the closed-form witness's random features (one measured stronger than two on
the Figure-5 RBMs: docs/findings.md); the features protocol's ``n_layers`` overrides it."""
FEATURE_SETTINGS = ("hidden", "n_layers")
"""The critic settings the features protocol uses (the features' width and depth)."""



_BY_PROTOCOL = SettingsDefault("the protocol's")
"""The default of a critic setting in :class:`LSDOptions`: the protocol's settings decide it."""


@dataclass(frozen=True)
class _LSDCall:
    """The LSD test's options other than the critic settings (checked when made)."""

    protocol: str = field(default=DEFAULT_PROTOCOL, metadata={"help": f"one of {PROTOCOLS} (:mod:`steinkit.gof.lsd`)"})
    settings: CriticSettings | None = field(
        default=None, metadata={"help": "a CriticSettings to start from; default LEARNED_TEST, TEST for "
                                        "protocol='paper', and one hidden layer for 'features'"})
    return_critic: bool = field(
        default=False, metadata={"help": "keep the selected critic on the result (protocols 'aggregated', 'paper')"})
    progress: bool = field(default=False, metadata={"help": "show a progress bar"})

    def __post_init__(self) -> None:
        one_of(self.protocol, "protocol", PROTOCOLS)
        flag(self.return_critic, "return_critic")
        if self.settings is not None and not isinstance(self.settings, CriticSettings):
            raise wrong_type("settings", "a CriticSettings", self.settings)


LSDOptions = with_settings_fields("LSDOptions", _LSDCall, CriticSettings, _BY_PROTOCOL, __name__)
LSDOptions.__doc__ = """The options of the LSD test (:func:`lsd_tests`): protocol, settings, return_critic, progress,
and every :class:`~steinkit.settings.CriticSettings` field, whose default is the protocol's settings'."""

def _paper_outcome(fit: HeldOutFit, score: Score, lam: float) -> TestOutcome:
    terms = fit.test_terms.double()
    mean, std = float(terms.mean()), float(terms.std())
    t = _statistic(mean, std, terms.shape[0])
    details = {"protocol": "paper", "test_mean": mean, "test_std": std, "n_test": terms.shape[0],
               "best_iteration": fit.best_iteration, "history": fit.history}
    critic = None if fit.critic is None else FittedCritic(fit.critic, score, lam, fit.best_iteration)
    return TestOutcome(statistic=t, pvalue=normal_sf(t), details=details, critic=critic)


def _aggregated_outcome(fit: HeldOutFit, seed: int, score: Score, lam: float) -> TestOutcome:
    """The largest studentised mean over the stopping points, with its p-value corrected for the
    looks by their estimated correlation (:func:`~steinkit.gof.aggregate.max_t_pvalue`). Valid
    because the critics depend on the training part only: given it they are fixed functions,
    their terms on the independent test half are i.i.d. with mean zero under H0, and the vector
    of t_m is asymptotically N(0, R)."""
    assert fit.snapshot_terms is not None
    for row in fit.snapshot_terms.double():  # a constant row is an error unless its mean is positive
        _statistic(float(row.mean()), float(row.std()), row.shape[0])
    generator = torch.Generator().manual_seed(seed + 3)
    t_max, p, t = max_t_pvalue(fit.snapshot_terms, generator=generator)
    iterations = [row["iteration"] for row in fit.history]
    best = int(t.argmax())
    details = {"protocol": "aggregated", "n_test": fit.snapshot_terms.shape[1],
               "snapshot_iterations": iterations, "snapshot_statistics": t.tolist(),
               "best_iteration": iterations[best], "history": fit.history}
    critic = None if fit.snapshot_critics is None else \
        FittedCritic(fit.snapshot_critics[best], score, lam, iterations[best])
    return TestOutcome(statistic=t_max, pvalue=p, details=details, critic=critic)


def _combined_outcome(trained: Tensor, witness: Tensor, n: int, seed: int) -> TestOutcome:
    """The larger of the trained critic's and the closed-form witness's weighted fold statistics,
    with the p-value of that maximum under their correlation, estimated point by point on the n
    shuffled points (:func:`~steinkit.gof.aggregate.max_normal_pvalue`). Each statistic is a sum
    over the scored points, z = Σ_i u_i (h_i − h̄_fold), whose weights depend on earlier folds
    only; under H0 the pair is asymptotically normal with correlation Σ_i u_i v_i (h_i − h̄)(g_i − ḡ)
    (a martingale CLT: the folds' increments are uncorrelated given the past); the eighths of
    the features statistic nest in the quarters of the trained one."""
    t_trained, t_witness = _fold_statistics(trained), _fold_statistics(witness)
    z = torch.stack([_weighted(t_trained), _weighted(t_witness)])
    r = float(_contributions(trained, n) @ _contributions(witness, n))
    corr = torch.tensor([[1.0, r], [r, 1.0]], dtype=torch.float64)
    z_max, p = max_normal_pvalue(z, corr, generator=torch.Generator().manual_seed(seed + 3))
    # the points in either statistic: from the witness's second fold to the later of the two ends
    scored = max(trained.numel() + trained.shape[1], witness.numel() + witness.shape[1]) - witness.shape[1]
    details = {"protocol": "combined", "folds": {"trained": trained.shape[0] + 1, "features": witness.shape[0] + 1},
               "n_test": scored, "correlation": r, "statistics": {"trained": float(z[0]), "features": float(z[1])},
               "fold_statistics": {"trained": t_trained.tolist(), "features": t_witness.tolist()}}
    return TestOutcome(statistic=z_max, pvalue=p, details=details)


def _contributions(terms: Tensor, n: int) -> Tensor:
    """Unit vector of each point's share of z = Σ_k w_k t_k, w_k ∝ √k (fold k + 1's centred term
    over √m · its std), laid out on n points: zero on the first fold and the remainder. The inner
    product of two such vectors estimates the two statistics' correlation under H0."""
    h = terms.detach().to("cpu", torch.float64)
    folds, m = h.shape
    w = torch.arange(1, folds + 1, dtype=torch.float64).sqrt()
    std = h.std(1, keepdim=True)
    share = torch.where(std > 0, w[:, None] * (h - h.mean(1, keepdim=True)) / std.clamp(min=1e-300), 0.0)
    out = torch.zeros(n, dtype=torch.float64)
    out[m:(folds + 1) * m] = share.reshape(-1)
    norm = out.norm()
    return out / norm if norm > 0 else out


def _fold_statistics(terms: Tensor) -> Tensor:
    """t_k = √m · mean/std of each fold's terms, (folds, m) -> (folds,) (float64)."""
    return torch.tensor([_statistic(float(r.mean()), float(r.std()), r.shape[0]) for r in terms.double()],
                        dtype=torch.float64)


def _weighted(t: Tensor) -> Tensor:
    """z = Σ √(k−1)·t_k / √(Σ (k−1)) over the last axis (fold k = 2, 3, ...)."""
    weights = torch.arange(1, t.shape[-1] + 1, dtype=torch.float64).sqrt()
    return (weights * t).sum(-1) / weights.norm()


def _sequential_outcome(terms: Tensor, protocol: str) -> TestOutcome:
    """z = Σ √(k−1)·t_k / √(Σ (k−1)) over folds k = 2, 3, ..., p = 1 − Φ(z). Given the folds
    before it, each fold's t_k is asymptotically N(0, 1) whatever those folds were (its critic or
    witness depends on them only), so the t_k are asymptotically independent and z is N(0, 1)
    under H0; later folds, scored by better critics, weigh more."""
    t = _fold_statistics(terms)
    z = float(_weighted(t))
    details = {"protocol": protocol, "folds": terms.shape[0] + 1, "n_test": terms.numel(),
               "fold_statistics": t.tolist()}
    return TestOutcome(statistic=z, pvalue=normal_sf(z), details=details)


def lsd_tests(
    problems: Sequence[tuple[Score, Tensor, int]],
    settings: CriticSettings | None = None,
    *,
    protocol: str = DEFAULT_PROTOCOL,
    progress: bool = False,
    return_critic: bool = False,
    **overrides: Any,
) -> list[TestOutcome]:
    """Run one LSD test per (score, data, seed) problem, all critics trained as one ensemble.

    Arguments:
        problems: triples of a checked score function, data (n, d) and a seed; data sets
            must share their shape.
        settings: a :class:`~steinkit.settings.CriticSettings`; default
            :data:`~steinkit.settings.LEARNED_TEST` for ``"combined"``, ``"sequential"`` and
            ``"aggregated"`` (2×64 Swish, 300 steps; "aggregated": a stopping point every 50, split
            .45/.05/.5; the combined protocol's witness takes its width, with :data:`WITNESS_LAYERS`
            layer), the same with :data:`WITNESS_LAYERS` layer for ``"features"``, and
            :data:`~steinkit.settings.TEST` for ``"paper"`` (2×300, 1000 steps, split .8/.1/.1).
        protocol: ``"combined"`` (default: the sequential and the features statistics below on
            the same data, the larger with a level correction), ``"features"`` (each of 8 folds scored by
            the closed-form last layer of the folds before it on random network features),
            ``"sequential"`` (each of 4 folds scored by the critic trained on the folds before
            it), ``"aggregated"`` (train on half, test the other half at every stopping point,
            level-corrected maximum) or ``"paper"`` (Algorithm 2).
        progress: show a progress bar.
        return_critic: keep each test's selected critic on its outcome (``critic``): for
            "aggregated" the critic at the stopping point with the largest statistic, for
            "paper" the one selected on the validation split.
        **overrides: :class:`~steinkit.settings.CriticSettings` fields to change.

    Returns:
        One :class:`~steinkit.gof.outcome.TestOutcome` per problem with the statistic, the
        p-value and details (the protocol and n_test; per fold statistics for "sequential";
        best_iteration, history and per stopping point statistics for "aggregated"; test mean and
        std, best_iteration and history for "paper").
    """
    protocol = one_of(protocol, "protocol", PROTOCOLS)
    unused = sorted(set(overrides) - set(FEATURE_SETTINGS)) if protocol == "features" else []
    if unused:
        raise TypeError(f"{', '.join(unused)} {'does' if len(unused) == 1 else 'do'} not apply to protocol='features', "
                        f"which trains no critic (it uses {' and '.join(FEATURE_SETTINGS)}); "
                        "protocol='sequential' trains one")
    default = {"paper": TEST, "features": LEARNED_TEST.replace(n_layers=WITNESS_LAYERS)}.get(protocol, LEARNED_TEST)
    cfg = settings_from(settings, default, overrides, extra=", or protocol, progress, return_critic")
    if protocol == "combined":
        if return_critic:
            raise ValueError("return_critic needs protocol='aggregated' or 'paper' (the combined protocol's critics "
                             "change from fold to fold)")
        trained = fit_sequential_critics(problems, cfg, SEQUENTIAL_FOLDS, progress=progress)
        witness = sequential_feature_terms(problems, cfg.replace(n_layers=WITNESS_LAYERS), FEATURE_FOLDS)
        n = problems[0][1].shape[0]
        return [_combined_outcome(t, w, n, seed) for t, w, (_, _, seed) in zip(trained, witness, problems)]
    if protocol in ("sequential", "features"):
        if return_critic:
            raise ValueError(f"return_critic needs protocol='aggregated' or 'paper' (the {protocol} protocol's "
                             "critic changes from fold to fold)")
        if protocol == "features":
            fold_terms = sequential_feature_terms(problems, cfg, FEATURE_FOLDS)
        else:
            fold_terms = fit_sequential_critics(problems, cfg, SEQUENTIAL_FOLDS, progress=progress)
        return [_sequential_outcome(terms, protocol) for terms in fold_terms]
    aggregated = protocol == "aggregated"
    fits = fit_heldout_critics(problems, cfg, progress=progress, snapshots=aggregated, keep_critics=return_critic)
    if aggregated:
        return [_aggregated_outcome(fit, seed, score, cfg.lam) for fit, (score, _, seed) in zip(fits, problems)]
    return [_paper_outcome(fit, score, cfg.lam) for fit, (score, _, _) in zip(fits, problems)]


def _statistic(mean: float, std: float, n_test: int) -> float:
    """t = √n · mean/std. Equal terms (std 0) with a positive mean give t = +∞ (reject: under H0
    they have mean 0); with mean ≤ 0 the ratio is undefined, which is an error, not a verdict.

    Example:
        >>> _statistic(0.5, 0.0, 100)
        inf
        >>> _statistic(0.0, 0.0, 100)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        FloatingPointError: all 100 Stein terms on the test split equal 0 (zero variance), so t = mean/std is ...
    """
    if std > 0:
        return math.sqrt(n_test) * mean / std
    if mean > 0:
        return math.inf
    raise FloatingPointError(
        f"all {n_test} Stein terms on the test split equal {mean:.3g} (zero variance), so t = mean/std is "
        "undefined: the test data have no spread (constant or repeated rows) or the critic is constant there; check x"
    )

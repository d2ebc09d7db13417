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

import warnings
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Sequence

import torch
from torch import Tensor

from .heldout import HeldOutFit, fit_crossfit_critics, fit_heldout_critics
from .feature_bounds import feature_bounds, reported
from .gof.outcome import normal_sf
from .relative import exact_terms, holm, paired_test, penalised_terms
from .scores import as_scores, score_rows
from .settings import ESTIMATE, CriticSettings, settings_from
from .stein import scaled_lsd
from .splits import split_data
from .validation import as_data, as_device, seed_from, seed_value, wrong_type
from .witness import FittedCritic

__all__ = [
    "DiscrepancyEstimate",
    "ComparisonRow",
    "Comparison",
    "PairwiseRow",
    "stein_discrepancy",
    "compare",
    "split_data",
]


@dataclass(frozen=True)
class DiscrepancyEstimate:
    """A learned Stein discrepancy estimate on held-out data.

    Attributes:
        value: the estimate of E_p‖s_q − s_p‖²/(2λ), the LSD of the λ-penalised optimal critic
            (Eq. 9), from the test split: with ``value="scaled"`` the fitted critic's LSD at
            its penalty-optimal scale (:func:`steinkit.stein.scaled_lsd`), which is never above
            that target in expectation; with ``value="bound"`` (the default) the largest of that,
            ``linear`` and ``coordinate``, or ``pooled`` or ``interaction`` where it is clearly
            larger (:func:`steinkit.feature_bounds.reported`); with
            ``value="mean"`` (Algorithm 1) the critic's mean Stein term, as fitted.
        stderr: its standard error.
        n_test: size of the test split.
        lam: the L2 weight λ the critic was fitted with.
        best_iteration: training iteration of the selected critic.
        history: train/val statistics at every validation (for plots).
        critic: with ``return_critic=True``, the selected critic (for :func:`steinkit.witness`).
        mean: the critic's mean Stein term on the test split, as fitted (``value="mean"``'s value).
        objective: the critic's penalised objective mean(T − λ‖f‖²) on the test split; the
            optimal critic's is half the target, and a critic's is at most that in expectation.
        train_value: ``value`` computed on the critics' training points instead. Far above
            ``value``, the critic fitted its training points rather than the distribution.
        overfit: whether ``value`` is below half of ``train_value`` and below it by more than 3
            standard errors: the critic learned little that generalises, and the value is a loose
            lower bound (with ``kind="mean"``, a critic that ran away).
        hidden: the critic's hidden width.
        kind: ``"scaled"``, ``"bound"`` or ``"mean"``: the setting that made ``value``.
        fold_values: with cross-fitting (``folds`` > 1), each fold's critic's value (``scaled``
            or ``mean``); the critic's value is their mean.
        scaled: the critic's value at its best scale (the folds' mean) and its standard error.
        linear, coordinate, pooled, interaction: with ``value="bound"``, the LSD of the best
            critic of each class of :mod:`steinkit.feature_bounds` by a U-statistic (linear maps,
            per-coordinate features, the same with one coefficient vector for every coordinate,
            pairwise cubics) and its standard error; nan where the data are too few for it.
        source: ``"critic"``, ``"linear"``, ``"coordinate"``, ``"pooled"`` or ``"interaction"``:
            which of them ``value`` is (:func:`steinkit.feature_bounds.reported`: the largest of
            the first three, or one of the last two where its value less
            :data:`~steinkit.feature_bounds.GATED_MARGIN` standard errors is larger).
    """

    value: float
    stderr: float
    n_test: int
    lam: float
    best_iteration: int
    history: tuple[dict, ...] = field(repr=False)
    critic: FittedCritic | None = field(default=None, repr=False, compare=False)
    mean: float = float("nan")
    objective: float = float("nan")
    train_value: float = float("nan")
    overfit: bool = False
    hidden: int = 0
    kind: str = "scaled"
    fold_values: tuple[float, ...] = ()
    scaled: tuple[float, float] = (float("nan"), float("nan"))
    linear: tuple[float, float] = (float("nan"), float("nan"))
    coordinate: tuple[float, float] = (float("nan"), float("nan"))
    source: str = "critic"
    interaction: tuple[float, float] = (float("nan"), float("nan"))
    pooled: tuple[float, float] = (float("nan"), float("nan"))

    def __str__(self) -> str:
        note = " (limited by the data: a loose lower bound)" if self.overfit else ""
        source = "" if self.kind != "bound" or self.source == "critic" else f", the {self.source} critics' bound"
        return f"LSD = {self.value:.4g} ± {self.stderr:.2g} (n_test={self.n_test}, λ={self.lam}{source}){note}"


@dataclass(frozen=True)
class ComparisonRow:
    """One model's line in :func:`compare`'s ranking.

    Attributes:
        name: the model's name.
        value, stderr: its learned LSD estimate (:class:`DiscrepancyEstimate`'s).
        estimate: the whole estimate.
        excess: when every model's score is differentiable by autograd, LSD*(model) − LSD*(best)
            estimated without a critic over every point (the exact difference of the optimal
            critics' LSDs, :func:`steinkit.relative_test`'s ``"optimal"`` method); the ranking
            follows it. None otherwise (the ranking follows ``value``).
        excess_stderr: its paired standard error (None with ``excess``).
    """

    name: str
    value: float
    stderr: float
    estimate: DiscrepancyEstimate = field(repr=False)
    excess: float | None = None
    excess_stderr: float | None = None


@dataclass(frozen=True)
class PairwiseRow:
    """One pair of :func:`compare`'s pairwise table; ``better`` is the model the pair's test favours.

    Attributes:
        better, worse: the models' names, by the sign of the pair's estimated difference.
        difference: the estimate of LSD(better) − LSD(worse) (≤ 0); by :class:`Comparison`'s
            ``method``: ``"optimal"``, the exact difference of the optimal critics' LSDs over every
            point, ``"lsd"``, the mean over the shared test points of the penalised terms'
            difference, h = 2(T − λ‖f‖²) (:mod:`steinkit.relative`).
        stderr: its paired standard error.
        pvalue: two-sided p-value of H0: no difference.
        adjusted: ``pvalue`` adjusted for all the pairs by Holm's method.
        agrees: whether the ranking also puts ``better`` above ``worse``.
    """

    better: str
    worse: str
    difference: float
    stderr: float
    pvalue: float
    adjusted: float
    agrees: bool = True


@dataclass(frozen=True)
class Comparison:
    """:func:`compare`'s ranking with its pairwise table (``pairwise=True``); iterating, indexing
    and ``len`` go to the ranking's rows.

    Attributes:
        rows: the ranking, best first (by ``excess`` when every row has it, else by ``value``).
        pairwise: one :class:`PairwiseRow` per pair of models, in ranking order.
        method: how the pairs were tested, as :func:`steinkit.relative_test`: ``"optimal"`` when
            every model's score is differentiable by autograd, else ``"lsd"`` (the ranking's
            critics).
        correction: the multiple-comparison adjustment of ``PairwiseRow.adjusted`` ("holm").
    """

    rows: tuple[ComparisonRow, ...]
    pairwise: tuple[PairwiseRow, ...]
    method: str = "lsd"
    correction: str = "holm"

    def __iter__(self) -> Iterator[ComparisonRow]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> ComparisonRow:
        return self.rows[i]

    def __str__(self) -> str:
        exact = self.rows[0].excess is not None
        lines = ["Ranking, best first" + (" by the exact excess over the best model" if exact else " by learned LSD")
                 + ". LSD: learned estimate of E‖s_q − s_p‖²/(2λ) ± stderr (a lower bound: the critic at its best "
                 "scale)" + ("; excess: LSD*(model) − LSD*(best) without a critic, over every point ± stderr." if exact
                             else ".")]
        for k, r in enumerate(self.rows):
            extra = f", excess = {r.excess:.4g} ± {r.excess_stderr:.2g}" if r.excess is not None else ""
            lines.append(f"{k + 1}. {r.name}: LSD = {r.value:.4g} ± {r.stderr:.2g}{extra}")
        if self.pairwise:
            what = ("exact difference of optimal-critic LSDs" if self.method == "optimal"
                    else "difference of the critics' penalised terms on shared test points")
            lines.append(f"Pairs: better vs worse, difference = LSD(better) − LSD(worse) ({what}), two-sided p, "
                         f"{self.correction}-adjusted p.")
        for p in self.pairwise:
            flag = "" if p.agrees else "  [the ranking orders this pair the other way]"
            lines.append(f"{p.better} vs {p.worse}: difference {p.difference:.4g} ± {p.stderr:.2g}, p = {p.pvalue:.3g}, "
                         f"{self.correction}-adjusted p = {p.adjusted:.3g}{flag}")
        return "\n".join(lines)


def _pairwise(rows: Sequence[ComparisonRow], terms: Mapping[str, Tensor]) -> tuple[PairwiseRow, ...]:
    """Paired two-sided tests of every pair of ranked rows on their per-point terms, Holm-adjusted;
    each pair is named better-first by the sign of its difference."""
    pairs = [(a, b) for i, a in enumerate(rows) for b in rows[i + 1:]]
    tests = [paired_test(terms[a.name] - terms[b.name]) for a, b in pairs]
    pvalues = [min(1.0, 2 * normal_sf(abs(t))) for _, _, t in tests]
    out = []
    for (a, b), (mean, stderr, _), p, adj in zip(pairs, tests, pvalues, holm(pvalues)):
        better, worse = (a, b) if mean <= 0 else (b, a)
        out.append(PairwiseRow(better.name, worse.name, -abs(mean), stderr, p, adj, agrees=better is a))
    return tuple(out)


def _ranked(names: Sequence[str], estimates: Sequence[DiscrepancyEstimate],
            exact: Sequence[Tensor] | None) -> list[ComparisonRow]:
    """The rows, best first: by the exact terms' means when given (with each model's excess over
    the best and its paired standard error), else by learned value."""
    if exact is None:
        rows = [ComparisonRow(n, e.value, e.stderr, e) for n, e in zip(names, estimates)]
        return sorted(rows, key=lambda r: r.value)
    by_name = dict(zip(names, exact))
    best = min(names, key=lambda n: float(by_name[n].mean()))
    rows = []
    for name, est in zip(names, estimates):
        excess, stderr, _ = paired_test(by_name[name] - by_name[best]) if name != best else (0.0, 0.0, 0.0)
        rows.append(ComparisonRow(name, est.value, est.stderr, est, excess, stderr))
    return sorted(rows, key=lambda r: (r.excess, r.value))


CROSSFIT_MAX_N = 20_000
"""Estimates cross-fit (``settings.folds > 1``) up to this many points and split once above it,
where the test split already holds thousands of points."""


def _estimates(
    models: Sequence[Any], x: Any, settings: CriticSettings, seed: int, progress: bool, device: Any,
    return_critic: bool = False,
) -> tuple[list[DiscrepancyEstimate], list[Tensor]]:
    """Fit one critic per model (as one ensemble) on a shared split; estimate on the test part.
    Also returns each model's penalised terms on the test part (for paired tests)."""
    seed = seed_value(seed)
    device = as_device(device, x)
    x = as_data(x, "x").to(device)
    scores = as_scores(models, device)
    for sc in scores:
        sc.check_dim(x)
    problems = [(sc, x, seed) for sc in scores]
    if settings.folds > 1 and x.shape[0] <= CROSSFIT_MAX_N:
        fits = fit_crossfit_critics(problems, settings, settings.folds, progress=progress, device=device,
                                    keep_critics=return_critic)
    else:
        fits = [[fit] for fit in fit_heldout_critics(problems, settings, progress=progress, device=device,
                                                      keep_critics=return_critic)]
    out = [_estimate(folds, sc, settings, x, seed) for folds, sc in zip(fits, scores)]
    overfit = [e for e in out if e.overfit]
    if overfit:
        warnings.warn(
            f"the estimate is limited by the data: the critic's value is {overfit[0].train_value:.4g} on its "
            f"training points and {overfit[0].value:.4g} held out, so it learned little that generalises and the "
            "value is a loose lower bound of the discrepancy; more data (or a smaller critic, hidden=...) tightens "
            "it", RuntimeWarning, stacklevel=3)
    return out, [torch.cat([penalised_terms(fit, settings.lam) for fit in folds]) for folds in fits]


def _estimate(folds: Sequence[HeldOutFit], score: Any, settings: CriticSettings, x: Tensor | None = None,
              seed: int = 0) -> DiscrepancyEstimate:
    """The estimate of one model from its critics' test terms, one critic per fold: the mean of
    the folds' values, with the standard error of a mean of independent folds (float64: squares
    of large terms overflow float32); with ``value="bound"``, the largest of that and the
    linear and per-coordinate U-statistics of :mod:`steinkit.feature_bounds` on the data x (when
    given), or the pooled or interaction one where it clears them (:func:`~steinkit.feature_bounds.reported`)."""
    lam = settings.lam
    values, variances = [], []
    for fit in folds:
        terms, sq_norms = fit.test_terms.double(), fit.test_sq_norms.double()
        if settings.value in ("scaled", "bound"):
            fold_value, fold_se = scaled_lsd(terms, sq_norms, lam)
        else:
            fold_value, fold_se = terms.mean(), terms.std() / terms.shape[0] ** 0.5
        values.append(float(fold_value))
        variances.append(float(fold_se) ** 2)
    terms = torch.cat([fit.test_terms.double() for fit in folds])
    penalised = terms - lam * torch.cat([fit.test_sq_norms.double() for fit in folds])
    n_test = terms.shape[0]
    objective = float(penalised.mean())
    value, stderr = sum(values) / len(values), sum(variances) ** 0.5 / len(values)
    scaled, nan = (value, stderr), (float("nan"), float("nan"))
    bounds = {"critic": scaled}
    if settings.value == "bound" and x is not None:
        found = feature_bounds(x, lambda z: score_rows(score, z), lam, seed=seed)
        bounds.update({name: bound or nan for name, bound in found.items()})
    source = reported(bounds)
    value, stderr = bounds[source]
    train_value = sum(fit.train_mean if settings.value == "mean" else fit.train_scaled for fit in folds) / len(folds)
    overfit = train_value - value > 3 * stderr and value < train_value / 2
    first = folds[0]
    critic = None if first.critic is None else FittedCritic(first.critic, score, lam, first.best_iteration)
    return DiscrepancyEstimate(value, stderr, n_test, lam, first.best_iteration, first.history, critic,
                               float(terms.mean()), objective, train_value, bool(overfit), first.hidden, settings.value,
                               tuple(values) if len(values) > 1 else (), scaled, bounds.get("linear", nan),
                               bounds.get("coordinate", nan), source, bounds.get("interaction", nan),
                               bounds.get("pooled", nan))


def stein_discrepancy(
    model: Any,
    x: Any,
    settings: CriticSettings | None = None,
    *,
    seed: int = 0,
    generator: torch.Generator | None = None,
    return_critic: bool = False,
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
        return_critic: keep the selected critic on the result (``critic``, for :func:`steinkit.witness`).
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
        >>> est.value > 0, est.n_test, len(est.fold_values)     # cross-fitted: every point tested once
        (True, 300, 5)
    """
    cfg = settings_from(settings, ESTIMATE, overrides,
                        extra=", or seed, generator, return_critic, progress, device")
    return _estimates([model], x, cfg, seed_from(seed, generator), progress, device, _flag(return_critic))[0][0]


def _flag(value: Any, name: str = "return_critic") -> bool:
    if not isinstance(value, bool):
        raise wrong_type(name, "a bool", value)
    return value


def compare(
    models: Mapping[str, Any],
    x: Any,
    settings: CriticSettings | None = None,
    *,
    seed: int = 0,
    generator: torch.Generator | None = None,
    pairwise: bool = False,
    return_critic: bool = False,
    progress: bool = False,
    device: torch.device | str | None = None,
    **overrides: Any,
) -> list[ComparisonRow] | Comparison:
    """Rank models by how well they fit the data, best first, each with its learned Stein discrepancy.

    Every model gets a critic of its own, fitted exactly as :func:`stein_discrepancy` would with
    the same settings (the critics are trained together as one batched ensemble), on the same
    split. When every score is differentiable by autograd, the ranking follows the exact
    difference of the models' optimal-critic LSDs over every point (``ComparisonRow.excess``,
    no critic needed: the learned values are lower bounds whose shortfall differs from model to
    model); otherwise it follows the learned values. Arguments are those of
    :func:`stein_discrepancy`, with ``models`` a mapping of name -> model, and:

    Arguments:
        pairwise: also test every pair, two-sided, Holm-adjusted over the pairs, as
            :func:`steinkit.relative_test` does by default: the exact difference of the optimal
            critics' LSDs over every point when all scores are differentiable by autograd, else
            the paired penalised terms of the ranking's critics on their shared test points; and
            return a :class:`Comparison`, which iterates over the ranking's rows and holds the
            table in ``pairwise``.
        return_critic: keep each model's critic on its row's ``estimate``.

    Example:
        >>> import torch, steinkit as sk
        >>> x = torch.randn(400, 2, generator=torch.Generator().manual_seed(1))
        >>> rows = sk.compare({"right": sk.models.Gaussian(torch.zeros(2), torch.eye(2)),
        ...                    "shifted": sk.models.Gaussian(torch.ones(2), torch.eye(2))},
        ...                   x, n_iters=200, hidden=32)
        >>> [r.name for r in rows]
        ['right', 'shifted']
        >>> table = sk.compare({"right": sk.models.Gaussian(torch.zeros(2), torch.eye(2)),
        ...                     "shifted": sk.models.Gaussian(torch.ones(2), torch.eye(2))},
        ...                    x, n_iters=200, hidden=32, pairwise=True).pairwise
        >>> (table[0].better, table[0].worse), table[0].adjusted < 0.05
        (('right', 'shifted'), True)
    """
    if not isinstance(models, Mapping):
        raise wrong_type("models", "a mapping of name -> model", models)
    if not models:
        raise ValueError("models must be a non-empty mapping of name -> model, got an empty one")
    cfg = settings_from(settings, ESTIMATE, overrides,
                        extra=", or seed, generator, pairwise, return_critic, progress, device")
    pairwise, return_critic = _flag(pairwise, "pairwise"), _flag(return_critic)
    names = list(models)
    estimates, bounds = _estimates([models[n] for n in names], x, cfg, seed_from(seed, generator), progress, device,
                                   return_critic)
    exact = exact_terms([models[n] for n in names], x, cfg.lam, device)
    rows = _ranked(names, estimates, exact)
    if not pairwise:
        return rows
    terms = bounds if exact is None else exact
    return Comparison(tuple(rows), _pairwise(rows, dict(zip(names, terms))), "lsd" if exact is None else "optimal")

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
from typing import Any, Iterator, Mapping, Sequence

import torch
from torch import Tensor

from .fit import fit_heldout_critics
from .gof.outcome import normal_sf
from .relative import exact_terms, holm, paired_test, penalised_terms
from .scores import as_scores
from .settings import ESTIMATE, CriticSettings, settings_from
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
        value: mean Stein term of the selected critic on the test split (exact trace).
        stderr: standard error σ/√n_test of that mean.
        n_test: size of the test split.
        lam: the L2 weight λ the critic was fitted with.
        best_iteration: training iteration of the selected critic.
        history: train/val statistics at every validation (for plots).
        critic: with ``return_critic=True``, the selected critic (for :func:`steinkit.witness`).
    """

    value: float
    stderr: float
    n_test: int
    lam: float
    best_iteration: int
    history: tuple[dict, ...] = field(repr=False)
    critic: FittedCritic | None = field(default=None, repr=False, compare=False)

    def __str__(self) -> str:
        return f"LSD = {self.value:.4g} ± {self.stderr:.2g} (n_test={self.n_test}, λ={self.lam})"


@dataclass(frozen=True)
class ComparisonRow:
    """One model's line in :func:`compare`'s ranking."""

    name: str
    value: float
    stderr: float
    estimate: DiscrepancyEstimate = field(repr=False)


@dataclass(frozen=True)
class PairwiseRow:
    """One pair of :func:`compare`'s pairwise table: ``better`` is ranked above ``worse``.

    Attributes:
        better, worse: the models' names.
        difference: the estimate of LSD(better) − LSD(worse), negative when the pair agrees with
            the ranking; by :class:`Comparison`'s ``method``: ``"optimal"``, the exact difference
            of the optimal critics' LSDs over every point, ``"lsd"``, the mean over the shared
            test points of the penalised terms' difference, h = 2(T − λ‖f‖²)
            (:mod:`steinkit.relative`).
        stderr: its paired standard error.
        pvalue: two-sided p-value of H0: no difference.
        adjusted: ``pvalue`` adjusted for all the pairs by Holm's method.
    """

    better: str
    worse: str
    difference: float
    stderr: float
    pvalue: float
    adjusted: float


@dataclass(frozen=True)
class Comparison:
    """:func:`compare`'s ranking with its pairwise table (``pairwise=True``); iterating, indexing
    and ``len`` go to the ranking's rows.

    Attributes:
        rows: the ranking, best (smallest LSD) first.
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
        lines = [f"{k + 1}. {r.name}: LSD = {r.value:.4g} ± {r.stderr:.2g}" for k, r in enumerate(self.rows)]
        lines += [f"{p.better} vs {p.worse}: difference {p.difference:.4g} ± {p.stderr:.2g}, p = {p.pvalue:.3g}, "
                  f"{self.correction}-adjusted p = {p.adjusted:.3g} ({self.method})" for p in self.pairwise]
        return "\n".join(lines)


def _pairwise(rows: Sequence[ComparisonRow], bounds: Mapping[str, Tensor]) -> tuple[PairwiseRow, ...]:
    """Paired two-sided tests of every pair of ranked rows on their per-point terms, Holm-adjusted."""
    pairs = [(a, b) for i, a in enumerate(rows) for b in rows[i + 1:]]
    tests = [paired_test(bounds[a.name] - bounds[b.name]) for a, b in pairs]
    pvalues = [min(1.0, 2 * normal_sf(abs(t))) for _, _, t in tests]
    return tuple(PairwiseRow(a.name, b.name, mean, stderr, p, adj)
                 for (a, b), (mean, stderr, _), p, adj in zip(pairs, tests, pvalues, holm(pvalues)))


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
    fits = fit_heldout_critics([(sc, x, seed) for sc in scores], settings, progress=progress, device=device,
                               keep_critics=return_critic)
    out = []
    for fit, sc in zip(fits, scores):
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
                critic=None if fit.critic is None else FittedCritic(fit.critic, sc, settings.lam, fit.best_iteration),
            )
        )
    return out, [penalised_terms(fit, settings.lam) for fit in fits]


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
        >>> est.value > 0, est.n_test
        (True, 30)
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
    """Rank models by learned Stein discrepancy on the same data split, best (smallest) first.

    Every model gets a critic of its own, fitted exactly as :func:`stein_discrepancy` would with
    the same settings (the critics are trained together as one batched ensemble). Arguments
    are those of :func:`stein_discrepancy`, with ``models`` a mapping of name -> model, and:

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
    rows = sorted((ComparisonRow(n, e.value, e.stderr, e) for n, e in zip(names, estimates)), key=lambda r: r.value)
    if not pairwise:
        return rows
    exact = exact_terms([models[n] for n in names], x, cfg.lam, device)
    terms = bounds if exact is None else exact
    return Comparison(tuple(rows), _pairwise(rows, dict(zip(names, terms))), "lsd" if exact is None else "optimal")

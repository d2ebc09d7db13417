"""How long a learned test or estimate will take here, predicted before it starts.

The prediction follows the call's own structure and times its pieces on this machine: a critic
step at each batch size the fit will use (with the ensemble it will train: one member per model
and, for a cross-fitted estimate, per fold), the exact-trace Stein terms per row, the
closed-form pieces, and the model's score per row; then it counts them as the call will.

* :func:`estimate_seconds` (:func:`steinkit.stein_discrepancy`, :func:`steinkit.compare`):
  ``folds`` critics per model up to :data:`steinkit.evaluate.CROSSFIT_MAX_N` points, trained as one
  ensemble; early stopping (``patience``) makes the number of steps data dependent, so it is
  predicted from the training rows and d (:data:`BEST_RATE`, measured: docs/bigdata.md); validations on at
  most :data:`~steinkit.fit.VALIDATION_ROWS` rows each; the closed-form refit's ridge search; the
  test terms; the feature-class bounds of :mod:`steinkit.feature_bounds`.
* :func:`lsd_test_seconds` (the LSD test, by protocol): the prequential stages of the trained critic
  (4 folds, a third of the steps each, on the folds so far), the random-feature witness (8 folds),
  or the held-out protocols' single fit with their validations.
* :func:`witness_test_seconds` (the default test): the LSD test's trained and random-feature
  members, plus the linear, per-coordinate (and pooled) and kernel witnesses of the shuffled points.

Everything is timed on copies (its own critic, optimiser and generators), nothing is drawn from
torch's global generator, so the call that follows is unchanged.

Example:
    >>> import torch
    >>> from steinkit.scores import as_score
    >>> from steinkit.settings import TEST
    >>> x = torch.randn(300, 3, generator=torch.Generator().manual_seed(0))
    >>> fit_seconds([(as_score(lambda z: -z), x, 0)], TEST.replace(n_iters=100)) > 0
    True
    >>> lsd_test_seconds([(as_score(lambda z: -z), x, 0)]) > 0
    True
"""

from __future__ import annotations

import math
import time
from typing import Callable, Sequence

import torch
from torch import Tensor

from .critics import MLPCritic
from .coordinate_class import varying
from .feature_bounds import SCREEN, SCREEN_ROWS, feature_bounds
from .interaction_class import InteractionClass
from .fit import VALIDATION_ROWS, chunked_terms, critic_step
from .heldout import Problem, check_problems, critic_ensemble
from .last_layer import _CV_FOLDS, _RIDGE_EXPONENTS, _Moments, _factor, _finish, witness_sums
from .settings import ESTIMATE, LEARNED_TEST, TEST, CriticSettings, sized_for
from .splits import split_sizes

__all__ = ["fit_seconds", "estimate_seconds", "lsd_test_seconds", "witness_test_seconds", "expected_steps",
           "BEST_RATE", "PROGRESS_SECONDS"]

PROGRESS_SECONDS = 10.0
"""The command line shows a progress bar when a fit is predicted to take at least this long."""

BEST_RATE = 3.0
"""With early stopping (``patience``), a fit is expected to take about BEST_RATE·√n_train/d
validations (at least 1) beyond ``patience``: an ensemble stops once every member has stalled for
``patience`` validations (or at ``n_iters``), and more training rows let a critic improve for
longer, more dimensions stop it sooner. Fitted on 48 default estimates of four tuning families of
the estimate panel at d = 2-50, n = 500-8000 (``benchmarks/time_estimate.py --steps``; the
exponents ½ and −1 are the least-squares fit's .52 and −1.01, rounded). Single runs scatter about
it by a factor of 2 (docs/bigdata.md)."""

_TIMED_ROWS = 2048  # rows on which the per-row costs are timed


def _seconds(fn: Callable[[], object], repeats: int) -> float:
    """Mean seconds of ``fn`` over ``repeats`` calls after one warm-up call."""
    fn()
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


class _Timer:
    """Per-unit costs of fitting critics of one shape on this machine, measured on demand."""

    def __init__(self, problems: Sequence[Problem], cfg: CriticSettings, members: int, steps: int) -> None:
        score, x, seed = problems[0]
        self.x, self.d, self.cfg, self.members, self.steps = x, x.shape[1], cfg, members, steps
        rows = min(x.shape[0], _TIMED_ROWS)
        self.xr = x[:rows]
        with torch.no_grad():
            self.sr = score(self.xr)
        self.score_per_row = _seconds(lambda: score(self.xr), 1) / rows * len(problems)
        self.n_problems = len(problems)
        self.seeds = [seed + k for k in range(members)]
        self._steps: dict[int, float] = {}

    def critic(self, cfg: CriticSettings | None = None) -> MLPCritic:
        critic, _ = critic_ensemble(self.seeds, self.d, cfg or self.cfg, self.xr)
        if (cfg or self.cfg).standardize:
            critic.set_standardization(self.xr.mean(0), self.xr.std(0).clamp(min=1e-12))
        return critic

    def step(self, rows: int) -> float:
        """Seconds of one critic step on ``rows`` training rows (a batch of at most batch_size)."""
        batch = rows if self.cfg.batch_size is None else min(rows, self.cfg.batch_size)
        if batch not in self._steps:
            xb = _rows(self.xr, batch)
            sb = _rows(self.sr, batch)
            critic = self.critic()
            generators = [torch.Generator().manual_seed(s + 2) for s in self.seeds]
            optimizer = torch.optim.Adam(critic.parameters(), lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)
            critic.train()
            self._steps[batch] = _seconds(
                lambda: critic_step(critic, optimizer, xb, sb, self.cfg, generators, True), self.steps)
        seconds = self._steps[batch]
        if batch < rows:  # drawing a batch: a permutation of the rows per member
            seconds += self.members * rows * 2e-8
        return seconds

    def terms_per_row(self, cfg: CriticSettings | None = None) -> float:
        """Seconds per row of the exact-trace terms of the whole ensemble (no gradients)."""
        critic = self.critic(cfg).eval()
        return _seconds(lambda: chunked_terms(critic, self.xr, self.sr), 1) / self.xr.shape[0]

    def bounds(self, n: int) -> float:
        """Seconds of the feature-class bounds of every model on n rows (:mod:`steinkit.feature_bounds`)
        with their passes over the models' scores (one, and the interaction class's on the rows it
        does not screen): the passes grow with n, the interaction screen with its capped rows."""
        rows = self.xr.shape[0]
        seconds = _seconds(lambda: feature_bounds(self.xr, self.sr, self.cfg.lam), 1)
        screened = min(round(SCREEN * rows), SCREEN_ROWS)
        screen = 0.0
        if screened >= 8 and int(varying(self.xr).sum()) >= 2:
            screen = _seconds(lambda: InteractionClass.screen(self.xr[:screened], self.sr[:screened]), 1)
        per_row = max(seconds - screen, 0.0) / rows
        screen_n = screen * min(SCREEN * n, SCREEN_ROWS) / max(screened, 1)
        return (per_row * n + screen_n) * self.n_problems + (2 - SCREEN) * self.score_per_row * n

    def witness_per_row(self, cfg: CriticSettings) -> float:
        """Seconds per row of the random-feature witness: its sums and its exact-trace terms."""
        critic = self.critic(cfg).eval()
        sums = _seconds(lambda: witness_sums(critic, self.xr, self.sr), 1)
        return sums / self.xr.shape[0] + self.terms_per_row(cfg)

    def refit(self, n_train: int, n_val: int) -> float:
        """Seconds of the closed-form last layer of the whole ensemble (:func:`~steinkit.last_layer.
        refit_last_layer`): the moments over the training rows and, per ridge tried, a solve and
        the float64 terms on the validation rows (a grid of two ridges, then the coordinate
        features' ridge)."""
        lone = self.critic().member(0).double()
        if self.cfg.coordinate_features:
            lone.add_coordinate_features()
        x64, s64 = self.xr.double(), self.sr.double()
        rows = x64.shape[0]
        per_row = _seconds(lambda: lone.stein_terms(x64, s64, trace="exact"), 1) / rows
        moments = _Moments.sums(lone, x64, s64).mix(None, 1.0 / rows)
        moments_per_row = _seconds(lambda: _Moments.sums(lone, x64, s64), 1) / rows
        ridge = torch.ones(moments.c.shape[0], dtype=torch.float64)
        factor = _seconds(lambda: _factor(moments, 0.5, ridge, 1e-8, False), 1)
        validate = per_row * min(n_val, VALIDATION_ROWS)
        total = len(_RIDGE_EXPONENTS) ** 2 * (factor + validate)
        if self.cfg.coordinate_features:  # the cross-validated choice of the features' ridge, then the fit
            with_features = _seconds(lambda: _factor(moments, 0.5, ridge, 1e-8), 1)
            products = _factor(moments, 0.5, ridge, 1e-8)
            finish = _seconds(lambda: _finish(moments, 0.5, *products, 0, 1e-8), 1)
            total += (_CV_FOLDS + 1) * with_features + (_CV_FOLDS * (len(_RIDGE_EXPONENTS) + 1) + 1) * finish
        return self.members * (moments_per_row * n_train + total)


def _rows(t: Tensor, rows: int) -> Tensor:
    """``rows`` rows of t, repeating it when it has fewer."""
    if rows <= t.shape[0]:
        return t[:rows]
    return t.repeat(-(-rows // t.shape[0]), 1)[:rows]


def _members(problems: Sequence[Problem]) -> int:
    check_problems(problems)
    return len(problems)


def expected_steps(settings: CriticSettings, n_train: int, d: int) -> int:
    """The steps a fit with these settings on ``n_train`` training rows in d dimensions is expected
    to take: ``n_iters``, or with early stopping ``val_every`` × (``patience`` + ⌈max(1,
    :data:`BEST_RATE`·√n_train/d)⌉) when that is fewer.

    Example:
        >>> expected_steps(ESTIMATE, 720, 20), expected_steps(ESTIMATE, 5760, 2)
        (150, 1240)
        >>> expected_steps(ESTIMATE.replace(patience=None), 720, 20)
        2000
    """
    if settings.patience is None or settings.selection == "last":
        return settings.n_iters
    best = math.ceil(max(1.0, BEST_RATE * math.sqrt(n_train) / d))
    return min(settings.n_iters, settings.val_every * (settings.patience + best))


def estimate_seconds(problems: Sequence[Problem], settings: CriticSettings | None = None, *,
                     steps: int = 3) -> float:
    """About how many seconds :func:`steinkit.stein_discrepancy` (one problem) or
    :func:`steinkit.compare` (one problem per model, the same data) takes here with ``settings``
    (default :data:`~steinkit.settings.ESTIMATE`).

    Example:
        >>> from steinkit.scores import as_score
        >>> x = torch.randn(400, 2, generator=torch.Generator().manual_seed(0))
        >>> one = estimate_seconds([(as_score(lambda z: -z), x, 0)], ESTIMATE.replace(n_iters=40))
        >>> one > 0
        True
    """
    from .evaluate import CROSSFIT_MAX_N

    cfg = ESTIMATE if settings is None else settings
    models = _members(problems)
    n = problems[0][1].shape[0]
    folds = cfg.folds if cfg.folds > 1 and n <= CROSSFIT_MAX_N else 1
    if folds > 1:
        n_test = n // folds
        n_val = max(2, round((n - n_test) * cfg.split[1] / (cfg.split[0] + cfg.split[1])))
        n_train = n - n_test - n_val
    else:
        n_train, n_val, n_test = split_sizes(n, cfg.split)
    cfg = sized_for(cfg, n_train, problems[0][1].shape[1])
    timer = _Timer(problems, cfg, models * folds, steps)
    iters = expected_steps(cfg, n_train, problems[0][1].shape[1])
    validations = math.ceil(iters / cfg.val_every)
    per_row = timer.terms_per_row()
    total = timer.score_per_row * n + iters * timer.step(n_train)
    total += validations * per_row * (min(n_val, VALIDATION_ROWS) + min(n_train, VALIDATION_ROWS))
    if cfg.refit:
        total += timer.refit(n_train, n_val)
    total += per_row * (n_test + min(n_train, VALIDATION_ROWS))  # the test terms and the training value
    if cfg.value == "bound":
        total += timer.bounds(n)
    return total


def lsd_test_seconds(problems: Sequence[Problem], settings: CriticSettings | None = None, protocol: str = "combined",
                 *, steps: int = 3) -> float:
    """About how many seconds the LSD test (:func:`steinkit.gof.lsd.lsd_tests`) takes here with
    ``protocol`` and ``settings`` (default: the protocol's, as the test takes them).

    Example:
        >>> from steinkit.scores import as_score
        >>> x = torch.randn(400, 2, generator=torch.Generator().manual_seed(0))
        >>> lsd_test_seconds([(as_score(lambda z: -z), x, 0)], LEARNED_TEST.replace(n_iters=30)) > 0
        True
    """
    from .gof.lsd import FEATURE_FOLDS, SEQUENTIAL_FOLDS, WITNESS_LAYERS

    default = TEST if protocol == "paper" else LEARNED_TEST
    cfg = default if settings is None else settings
    members = _members(problems)
    n, d = problems[0][1].shape
    total = 0.0
    if protocol in ("combined", "sequential", "features"):
        cfg = sized_for(cfg, n - n // SEQUENTIAL_FOLDS, d)
        timer = _Timer(problems, cfg, members, steps)
        total += timer.score_per_row * n
        if protocol != "features":
            size, stage = n // SEQUENTIAL_FOLDS, max(1, cfg.n_iters // (SEQUENTIAL_FOLDS - 1))
            per_row = timer.terms_per_row()
            for k in range(1, SEQUENTIAL_FOLDS):
                total += stage * timer.step(k * size) + per_row * (min(k * size, VALIDATION_ROWS) + 2 + size)
        if protocol != "sequential":
            m = n // FEATURE_FOLDS
            total += timer.witness_per_row(cfg.replace(n_layers=WITNESS_LAYERS)) * m * (FEATURE_FOLDS - 1)
        return total
    n_train, n_val, n_test = split_sizes(n, cfg.split)
    cfg = sized_for(cfg, n_train, d)
    timer = _Timer(problems, cfg, members, steps)
    per_row = timer.terms_per_row()
    validations = math.ceil(cfg.n_iters / cfg.val_every)
    total += timer.score_per_row * n + cfg.n_iters * timer.step(n_train)
    total += validations * per_row * (min(n_val, VALIDATION_ROWS) + min(n_train, VALIDATION_ROWS))
    if protocol == "aggregated":
        total += validations * per_row * n_test  # every stopping point's terms on the test half
    return total + per_row * (n_test + min(n_train, VALIDATION_ROWS))


def witness_test_seconds(problems: Sequence[Problem], settings: CriticSettings | None = None, *,
                         members: Sequence[str] | None = None, kernel: object = None, kernel_basis: int | None = None,
                         kernel_points: int | None = None, steps: int = 3) -> float:
    """About how many seconds the witness-family test (:func:`steinkit.gof.witnesses.witness_tests`,
    the default test) takes here with these options (None: the test's defaults): its trained and
    features members as the LSD test's protocols, the scores at the shuffled points, the linear
    and per-coordinate witnesses per row, and the kernel witness per (earlier point, tested point)
    pair.

    Example:
        >>> from steinkit.scores import as_score
        >>> x = torch.randn(400, 2, generator=torch.Generator().manual_seed(0))
        >>> witness_test_seconds([(as_score(lambda z: -z), x, 0)], LEARNED_TEST.replace(n_iters=30)) > 0
        True
    """
    from .gof import witnesses as W
    from .gof.lsd import FEATURE_FOLDS
    from .kernels import as_kernel

    chosen = W.DEFAULT_MEMBERS if members is None else tuple(members)
    basis = W.KERNEL_BASIS if kernel_basis is None else kernel_basis
    tested = W.KERNEL_POINTS if kernel_points is None else kernel_points
    _members(problems)  # checks them
    n = problems[0][1].shape[0]
    learned = [m for m in ("trained", "features") if m in chosen]
    protocol = "combined" if len(learned) == 2 else "sequential" if learned == ["trained"] else "features"
    total = lsd_test_seconds(problems, settings, protocol, steps=steps) if learned else 0.0
    if {"linear", "coordinate", "pooled", "kernel"} & set(chosen):
        score, x, _ = problems[0]
        rows = min(n, _TIMED_ROWS)
        xr = x[:rows].double()
        with torch.no_grad():
            sr = score(xr).double()
            total += _seconds(lambda: score(x[:rows]), 1) / rows * n * len(problems)
            if "linear" in chosen:
                total += _seconds(lambda: W._linear_terms(xr, sr, FEATURE_FOLDS), 1) / rows * n * len(problems)
            which = [m for m in ("coordinate", "pooled") if m in chosen]
            if which:
                total += _seconds(lambda: W._coordinate_terms(xr, sr, FEATURE_FOLDS, which=which),
                                  1) / rows * n * len(problems)
            if "kernel" in chosen:
                half = rows // 2  # one earlier fold against one tested fold: half² pairs
                per_pair = _seconds(lambda: W._kernel_terms(xr, sr, 2, as_kernel(kernel or W.DEFAULT_KERNEL), basis),
                                    1) / (min(half, basis) * half)
                m = min(n, tested) // FEATURE_FOLDS
                pairs = sum(min(k * m, basis) * m for k in range(1, FEATURE_FOLDS))
                total += per_pair * pairs * len(problems)
    return total


def fit_seconds(
    problems: Sequence[Problem], settings: CriticSettings | None = None, *, steps: int = 3
) -> float:
    """About how many seconds one held-out fit (:func:`~steinkit.heldout.fit_heldout_critics`,
    ``n_iters`` steps, one critic per problem) takes here: the held-out protocols' cost without
    their protocol-specific extras. :func:`estimate_seconds` and :func:`lsd_test_seconds` predict
    whole calls.

    Example:
        >>> from steinkit.scores import as_score
        >>> from steinkit.settings import TEST
        >>> x = torch.randn(300, 3, generator=torch.Generator().manual_seed(0))
        >>> fit_seconds([(as_score(lambda z: -z), x, 0)], TEST.replace(n_iters=100)) > 0
        True
    """
    return lsd_test_seconds(problems, ESTIMATE if settings is None else settings, "paper", steps=steps)

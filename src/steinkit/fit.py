"""Fitting a critic: maximize an LSD objective with Adam, validate, keep the best critic.

Objectives (all with the L2 penalty λ·E‖f‖² of Eq. 8 subtracted):
  * ``"lsd"``   — mean of the Stein terms (Eq. 11 with Hutchinson; Algorithm 1);
  * ``"power"`` — mean/std of the Stein terms (Eq. 12; Algorithm 2).
Selection statistics on the validation split: ``"mean-std"`` (variance-aware, Appendix A),
``"power"`` (mean/std), ``"mean"``, ``"penalised"`` (mean − λ·E‖f‖², the objective itself: the
critic nearest the optimal one in L2), or ``"last"`` (no selection).

An ensemble critic (``MLPCritic(n_critics=K)``) is fitted as K independent problems at once:
x and scores may carry a leading K axis, losses are summed, and selection is per member. With
one generator per member, each member follows exactly the path it would follow alone.

Numerical failure is an error, never a result: when the objective or the Stein terms' mean or
std turns NaN/inf while fitting (checked at every validation, so without a sync per step), or
on the held-out splits, :class:`FloatingPointError` names the cause and the settings to change
(:func:`numerical_failure`).

Example:
    >>> import torch
    >>> from steinkit.critics import MLPCritic
    >>> g = torch.Generator().manual_seed(0)
    >>> x = torch.randn(200, 2, generator=g) + 1.0     # data from N(1, I)
    >>> s = -x                                          # model N(0, I)
    >>> from steinkit.settings import ESTIMATE
    >>> fit = fit_critic(MLPCritic(2, hidden=32, generator=g), x[:150], s[:150], x[150:], s[150:],
    ...                  ESTIMATE.replace(n_iters=200, val_every=50), generator=g)
    >>> fit.best_iteration > 0
    True
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
from torch import Tensor
from tqdm.auto import tqdm

from .critics import Generators, MLPCritic
from .last_layer import witness_sums, with_last_layer
from .scores import Score
from .settings import ESTIMATE, OBJECTIVES, SELECTIONS, CriticSettings, settings_from
from .splits import split_data
from .stein import critic_objective, power_ratio, stein_terms
from .validation import as_device, generator_on

__all__ = [
    "CriticFit", "HeldOutFit", "fit_critic", "fit_heldout_critics", "fit_sequential_critics",
    "sequential_feature_terms", "fit_seconds", "numerical_failure", "OBJECTIVES", "SELECTIONS",
]


@dataclass(frozen=True)
class CriticFit:
    """Result of :func:`fit_critic`.

    Attributes:
        critic: the critic with the selected parameters loaded (in eval mode).
        history: one dict per validation: iteration and train/val mean, std and statistic
            (floats, or lists with one entry per ensemble member).
        best_iteration: the iteration whose critic was kept (a list for an ensemble).
        best_statistic: its validation statistic (a list for an ensemble).
    """

    critic: MLPCritic
    history: tuple[dict, ...]
    best_iteration: int | list[int]
    best_statistic: float | list[float]


def _statistic(terms: Tensor, selection: str, sq_norms: Tensor, lam: float) -> Tensor:
    mean, std = terms.mean(-1), terms.std(-1)
    if selection == "mean-std":
        return mean - std
    if selection == "power":
        return power_ratio(terms)
    if selection == "penalised":
        return mean - lam * sq_norms.mean(-1)
    return mean


def _tolist(t: Tensor) -> float | list[float]:
    return t.tolist() if t.dim() else float(t)


def _finite_stats(terms: Tensor) -> Tensor:
    """Whether the mean and std of Stein terms (over the last axis) are finite, as a bool tensor."""
    return torch.isfinite(terms.mean(-1)).all() & torch.isfinite(terms.std(-1)).all()


def numerical_failure(where: str, settings: CriticSettings, x: Tensor, s: Tensor) -> FloatingPointError:
    """The error for Stein statistics that stopped being finite ``where``: it says why that
    happens and what to change (``lr``, ``lam``, or the data's scale when the data or scores
    are large enough to overflow in their dtype).

    Example:
        >>> from steinkit.settings import ESTIMATE
        >>> x = torch.ones(3, 2) * 1e20
        >>> print(numerical_failure("on the test split", ESTIMATE, x, -x))  # doctest: +NORMALIZE_WHITESPACE
        the critic's Stein statistics are not finite on the test split: the critic diverged, or the data or the
        model's scores are too large: lower lr (now 0.001) or raise lam (now 0.5); the largest |x| is 1e+20 and
        the largest |score| is 1e+20, too large for torch.float32: rescale (standardize) the data or use float64
    """
    text = (
        f"the critic's Stein statistics are not finite {where}: the critic diverged, or the data or the model's "
        f"scores are too large: lower lr (now {settings.lr:g}) or raise lam (now {settings.lam:g})"
    )
    big_x, big_s = float(x.detach().abs().max()), float(s.detach().abs().max())
    if max(big_x, big_s) > 1e6:
        text += (
            f"; the largest |x| is {big_x:.3g} and the largest |score| is {big_s:.3g}, too large for {x.dtype}: "
            "rescale (standardize) the data or use float64"
        )
    return FloatingPointError(text)


class _Selection:
    """Validation bookkeeping of one fit: history rows and the best parameters per member."""

    def __init__(self, params: Sequence[Tensor], selection: str, lam: float) -> None:
        self.params, self.selection, self.lam = list(params), selection, lam
        self.best_state = [p.detach().clone() for p in self.params]
        self.best_stat: Tensor | None = None
        self.best_iter: Tensor | None = None
        self.history: list[dict] = []

    def record(self, iteration: int, train_terms: Tensor, val_terms: Tensor, val_sq_norms: Tensor) -> None:
        """Add a history row and keep the parameters of members whose statistic improved
        (``val_sq_norms``: ‖f‖² at the validation points, for the "penalised" statistic)."""
        stat = _statistic(val_terms, self.selection, val_sq_norms, self.lam)
        self.history.append(
            {
                "iteration": iteration,
                "train_mean": _tolist(train_terms.mean(-1)),
                "train_std": _tolist(train_terms.std(-1)),
                "val_mean": _tolist(val_terms.mean(-1)),
                "val_std": _tolist(val_terms.std(-1)),
                "val_statistic": _tolist(stat),
            }
        )
        stat = torch.nan_to_num(stat, nan=-torch.inf)
        if self.best_stat is None or self.selection == "last":
            improved = torch.ones_like(stat, dtype=torch.bool)
        else:
            improved = stat > self.best_stat
        if bool(improved.any()):
            _copy_where(self.best_state, self.params, improved)
            self.best_stat = stat.clone() if self.best_stat is None else torch.where(improved, stat, self.best_stat)
            iters = torch.full_like(stat, iteration, dtype=torch.long)
            self.best_iter = iters if self.best_iter is None else torch.where(improved, iters, self.best_iter)

    def restore(self) -> None:
        """Load the kept parameters into the critic."""
        with torch.no_grad():
            for p, b in zip(self.params, self.best_state):
                p.copy_(b)


def fit_critic(
    critic: MLPCritic,
    x_train: Tensor,
    s_train: Tensor,
    x_val: Tensor,
    s_val: Tensor,
    settings: CriticSettings | None = None,
    *,
    generator: Generators = None,
    progress: bool = False,
    callback: Callable[[int, MLPCritic], None] | None = None,
    desc: str = "fitting critic",
    betas: tuple[float, float] = (0.9, 0.999),
    val_trace: str = "exact",
    device: torch.device | str | None = None,
    **overrides: Any,
) -> CriticFit:
    """Train ``critic`` to maximize the penalised objective on the training split, selecting on val.

    The critic's architecture is given; of ``settings`` this uses lam, objective, selection,
    n_iters, lr, weight_decay, batch_size, val_every, trace and n_probes.

    Arguments:
        critic: an :class:`MLPCritic` (or an ensemble of them).
        x_train, s_train: training data and the model's scores there ((n, d) or (K, n, d)).
        x_val, s_val: validation data and scores.
        settings: a :class:`~steinkit.settings.CriticSettings` (default
            :data:`~steinkit.settings.ESTIMATE`).
        generator: random generator (or one per ensemble member) for probes, dropout, batches;
            on ``device``.
        progress: show a progress bar (titled ``desc``).
        callback: called as ``callback(iteration, critic)`` after each validation (the
            critic in eval mode, under ``torch.no_grad``), e.g. to record extra metrics.
        betas: Adam's betas.
        val_trace: trace used on the validation split (``"exact"`` by default).
        device: where to fit (default: where ``x_train`` lives); the data move there and the
            critic is moved there in place.
        **overrides: fields of ``settings`` to change (``n_iters=200``); unknown names raise.

    Returns:
        A :class:`CriticFit`.
    """
    cfg = settings_from(settings, ESTIMATE, overrides, extra=", or desc, betas, val_trace, device")
    device = as_device(device, x_train)
    for g in generator if isinstance(generator, (list, tuple)) else [generator]:
        generator_on(g, device)
    x_train, s_train, x_val, s_val = (t.to(device) for t in (x_train, s_train, x_val, s_val))
    critic.to(device)
    n_train = x_train.shape[-2]
    if cfg.batch_size is not None and cfg.batch_size > n_train:
        raise ValueError(f"batch_size must lie in [1, {n_train}], got {cfg.batch_size!r}")
    full_batch = cfg.batch_size is None or cfg.batch_size == n_train
    params = list(critic.parameters())
    optimizer = torch.optim.Adam(params, lr=cfg.lr, betas=betas, weight_decay=cfg.weight_decay)
    selection = _Selection(params, cfg.selection, cfg.lam)
    finite = torch.ones((), dtype=torch.bool, device=x_train.device)  # every training statistic so far

    def validate(iteration: int) -> None:
        critic.eval()
        with torch.no_grad():
            val_terms, val_f = stein_terms(critic, x_val, s_val, trace=val_trace)
            train_terms, _ = stein_terms(critic, x_train, s_train, trace=val_trace)
            if not bool(finite & _finite_stats(val_terms) & _finite_stats(train_terms)):
                raise numerical_failure(f"while fitting (by iteration {iteration} of {cfg.n_iters})", cfg,
                                        x_train, s_train)
            selection.record(iteration, train_terms, val_terms, val_f.pow(2).sum(-1))
            if callback is not None:
                callback(iteration, critic)
        critic.train()

    critic.train()
    for it in tqdm(range(1, cfg.n_iters + 1), disable=not progress, desc=desc, leave=False):
        finite &= _step(critic, optimizer, x_train, s_train, cfg, generator, full_batch)
        if it % cfg.val_every == 0 or it == cfg.n_iters:
            validate(it)
    selection.restore()
    critic.eval()
    assert selection.best_stat is not None and selection.best_iter is not None
    return CriticFit(critic, tuple(selection.history), _tolist(selection.best_iter), _tolist(selection.best_stat))


def _step(
    critic: MLPCritic, optimizer: torch.optim.Optimizer, x_train: Tensor, s_train: Tensor, cfg: CriticSettings,
    generator: Generators, full_batch: bool,
) -> Tensor:
    """One Adam step of the critic on a batch; returns whether its statistics were finite
    (a bool tensor, so that the caller syncs only when it checks)."""
    if full_batch:
        xb, sb = x_train, s_train
    else:
        idx = _batch_indices(x_train.shape[-2], cfg.batch_size, generator, x_train.device)
        xb, sb = _take(x_train, idx), _take(s_train, idx)
    terms, f = stein_terms(critic, xb, sb, trace=cfg.trace, n_probes=cfg.n_probes, generator=generator)
    loss = -critic_objective(terms, f, cfg.lam, cfg.objective).sum()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return torch.isfinite(loss.detach()) & _finite_stats(terms.detach())


def _copy_where(dst: Sequence[Tensor], src: Sequence[Tensor], mask: Tensor) -> None:
    """dst[k] = src[k] for ensemble members where mask (K,) is true (or all if scalar)."""
    with torch.no_grad():
        for d, s in zip(dst, src):
            if mask.dim() == 0:
                d.copy_(s)
            else:
                m = mask.reshape(-1, *([1] * (s.dim() - 1)))
                d.copy_(torch.where(m, s, d))


def _batch_indices(n: int, batch_size: int, generator: Generators, device: torch.device) -> Tensor:
    """Mini-batch indices without replacement (one row per ensemble member if needed)."""
    if isinstance(generator, (list, tuple)):
        return torch.stack([torch.randperm(n, generator=g, device=device)[:batch_size] for g in generator])
    return torch.randperm(n, generator=generator, device=device)[:batch_size]


def _take(t: Tensor, idx: Tensor) -> Tensor:
    """Rows idx of t; per-member rows when idx is (K, b)."""
    if idx.dim() == 1:
        return t.index_select(-2, idx)
    if t.dim() == 2:
        return t[idx]
    return torch.gather(t, 1, idx.unsqueeze(-1).expand(-1, -1, t.shape[-1]))


@dataclass(frozen=True)
class HeldOutFit:
    """One problem's outcome from :func:`fit_heldout_critics`.

    Attributes:
        test_terms: Stein terms of the selected critic on the test split (exact trace), (n_test,).
        best_iteration: iteration of the selected critic.
        history: train/val statistics at every validation.
        test_sq_norms: ‖f(x)‖² of the selected critic on the test split, (n_test,) (the
            per-point L2 penalty, before λ).
        snapshot_terms: with ``snapshots=True``, the test-split terms of the critic as it was at
            every validation, (n_validations, n_test); else None.
        critic: with ``keep_critics=True``, the selected critic (a lone :class:`MLPCritic`).
        snapshot_critics: with ``keep_critics=True`` and ``snapshots=True``, the critic as it
            was at every validation.
    """

    test_terms: Tensor
    best_iteration: int
    history: tuple[dict, ...]
    test_sq_norms: Tensor
    snapshot_terms: Tensor | None = None
    critic: MLPCritic | None = None
    snapshot_critics: tuple[MLPCritic, ...] | None = None


def _split_problems(problems: Sequence[tuple[Score, Tensor, int]], split: Sequence[float]):
    """Train/val/test data and scores of every problem, stacked along a leading member axis
    (data shared by all problems with the same seed are split once and not stacked)."""

    def cut(x: Tensor, seed: int) -> tuple[Tensor, Tensor, Tensor]:
        return split_data(x, split, generator=torch.Generator().manual_seed(seed))

    shared = all(x is problems[0][1] and seed == problems[0][2] for _, x, seed in problems)
    if shared:
        x_parts = list(cut(problems[0][1], problems[0][2]))
        with torch.no_grad():
            s_parts = [torch.stack([score(p) for score, _, _ in problems]) for p in x_parts]
        return x_parts, s_parts
    per_problem = [cut(x, seed) for _, x, seed in problems]
    x_parts = [torch.stack([pp[i] for pp in per_problem]) for i in range(3)]
    with torch.no_grad():
        s_parts = [
            torch.stack([score(pp[i]) for (score, _, _), pp in zip(problems, per_problem)]) for i in range(3)
        ]
    return x_parts, s_parts


def _check_problems(problems: Sequence[tuple[Score, Tensor, int]]) -> None:
    if not problems:
        raise ValueError("problems must not be empty")
    shapes = {tuple(x.shape) for _, x, _ in problems}
    if len(shapes) != 1:
        raise ValueError(f"all data sets must have one shape to be fitted together, got {sorted(shapes)}")


def _ensemble(
    problems: Sequence[tuple[Score, Tensor, int]], cfg: CriticSettings, device: torch.device | None = None
) -> tuple[MLPCritic, list[torch.Generator]]:
    """The problems' critic ensemble (member k initialised from seed + 1) and generators (seed + 2),
    on ``device`` (default: where the first problem's data live)."""
    device = problems[0][1].device if device is None else device
    seeds = [seed for _, _, seed in problems]
    x0 = problems[0][1]
    critic = MLPCritic(
        x0.shape[1], cfg.hidden, cfg.n_layers, cfg.dropout,
        n_critics=len(problems), seeds=[s + 1 for s in seeds], dtype=x0.dtype, device=device,
    )
    return critic, [torch.Generator(device=device).manual_seed(s + 2) for s in seeds]


def fit_heldout_critics(
    problems: Sequence[tuple[Score, Tensor, int]],
    settings: CriticSettings | None = None,
    *,
    progress: bool = False,
    device: torch.device | str | None = None,
    snapshots: bool = False,
    keep_critics: bool = False,
) -> list[HeldOutFit]:
    """Split, fit and test one critic per (score, data, seed) problem, all as one ensemble.

    Problem k splits its data with ``seed``, initialises its critic from ``seed + 1`` and draws
    probes, dropout masks and batches from ``seed + 2``, so its outcome does not depend on the
    other problems it is batched with. Data sets must share their shape; problems that share
    the same data tensor and seed share one copy of the split. The split is drawn on the CPU
    (the same rows on every device); the critics, their generators and every later draw live
    on ``device``.

    Arguments:
        problems: (checked score function, data (n, d), seed) triples.
        settings: a :class:`~steinkit.settings.CriticSettings` (default ``ESTIMATE``).
        progress: show a progress bar.
        device: where to fit (default: where the first problem's data live); the data move there.
        snapshots: also give the test-split terms of the critic at every validation.
        keep_critics: also give each problem's selected critic (and, with ``snapshots``, its
            critic at every validation) as lone critics.

    Example:
        >>> from steinkit.scores import as_score
        >>> from steinkit.settings import CriticSettings
        >>> x = torch.randn(100, 2, generator=torch.Generator().manual_seed(0))
        >>> cfg = CriticSettings(split=(.6, .2, .2), hidden=8, n_iters=20, val_every=10)
        >>> out = fit_heldout_critics([(as_score(lambda z: -z), x, 0)], cfg)
        >>> out[0].test_terms.shape
        torch.Size([20])
    """
    cfg = ESTIMATE if settings is None else settings
    _check_problems(problems)
    device = as_device(device, problems[0][1])
    moved = {id(x): x.to(device) for _, x, _ in problems}  # one copy of data shared by problems
    problems = [(score, moved[id(x)], seed) for score, x, seed in problems]
    x_parts, s_parts = _split_problems(problems, cfg.split)
    critic, generators = _ensemble(problems, cfg, device)
    kept: list[Tensor] = []
    kept_critics: list[MLPCritic] = []

    def keep(iteration: int, current: MLPCritic) -> None:
        kept.append(stein_terms(current, x_parts[2], s_parts[2], trace="exact")[0])
        if keep_critics:
            kept_critics.append(copy.deepcopy(current))

    fit = fit_critic(critic, x_parts[0], s_parts[0], x_parts[1], s_parts[1], cfg, generator=generators,
                     progress=progress, callback=keep if snapshots else None)
    with torch.no_grad():
        terms, f = stein_terms(fit.critic, x_parts[2], s_parts[2], trace="exact")
        sq_norms = f.pow(2).sum(-1)
    snapshot_terms = torch.stack(kept, 1) if snapshots else None  # (K, n_validations, n_test)
    if not bool(_finite_stats(terms.double()).all()) or (
        snapshot_terms is not None and not bool(torch.isfinite(snapshot_terms).all())
    ):
        raise numerical_failure("on the test split", cfg, x_parts[2], s_parts[2])
    out = []
    for k in range(len(problems)):
        history = tuple(
            {key: (v[k] if isinstance(v, list) else v) for key, v in row.items()} for row in fit.history
        )
        snap = None if snapshot_terms is None else snapshot_terms[k]
        lone = fit.critic.member(k) if keep_critics else None
        snap_critics = tuple(c.member(k) for c in kept_critics) if keep_critics and snapshots else None
        out.append(HeldOutFit(terms[k], int(fit.best_iteration[k]), history, sq_norms[k],  # type: ignore[index]
                              snap, lone, snap_critics))
    return out


_MIN_FOLD = 5  # points per fold of a sequential fit, for a studentised mean to mean anything


def fit_sequential_critics(
    problems: Sequence[tuple[Score, Tensor, int]],
    settings: CriticSettings,
    folds: int,
    *,
    progress: bool = False,
    device: torch.device | str | None = None,
) -> list[Tensor]:
    """Prequential fits: fold k+1 of each problem is scored by its critic trained on folds 1..k.

    Each problem's data are shuffled with ``seed`` and cut into ``folds`` equal folds (the
    remainder is left out). One critic per problem (one ensemble, initialised and driven as in
    :func:`fit_heldout_critics`) trains ``n_iters // (folds − 1)`` steps on folds 1..k, warm
    started from stage k − 1, without selection; its exact-trace Stein terms on fold k + 1 are
    kept, so the terms of fold k + 1 depend on folds 1..k only.

    Returns:
        One (folds − 1, fold size) tensor of Stein terms per problem.

    Example:
        >>> from steinkit.scores import as_score
        >>> from steinkit.settings import LEARNED_TEST
        >>> x = torch.randn(120, 2, generator=torch.Generator().manual_seed(0))
        >>> out = fit_sequential_critics([(as_score(lambda z: -z), x, 0)], LEARNED_TEST.replace(n_iters=30), 4)
        >>> out[0].shape
        torch.Size([3, 30])
    """
    n = _check_folds(problems, folds)
    device = as_device(device, problems[0][1])
    x_all, s_all = _shuffled(problems, device)
    stage = settings.replace(n_iters=max(1, settings.n_iters // (folds - 1)), selection="last")
    stage = stage.replace(val_every=stage.n_iters)
    critic, generators = _ensemble(problems, settings, device)
    size, kept = n // folds, []
    for k in range(1, folds):
        x_past, s_past = x_all[:, : k * size], s_all[:, : k * size]
        fit_critic(critic, x_past, s_past, x_past[:, :2], s_past[:, :2], stage, generator=generators,
                   progress=progress, desc=f"fold {k + 1} of {folds}")
        with torch.no_grad():
            terms, _ = stein_terms(critic, x_all[:, k * size:(k + 1) * size], s_all[:, k * size:(k + 1) * size],
                                   trace="exact")
        if not bool(_finite_stats(terms.double())):
            raise numerical_failure(f"on fold {k + 1} of {folds}", settings, x_all, s_all)
        kept.append(terms)
    return list(torch.stack(kept, 1).unbind(0))


def _check_folds(problems: Sequence[tuple[Score, Tensor, int]], folds: int) -> int:
    """Check the problems and the number of folds; return n."""
    _check_problems(problems)
    n = problems[0][1].shape[0]
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise ValueError(f"folds must be an int >= 2, got {folds!r}")
    if n < _MIN_FOLD * folds:
        raise ValueError(f"x has too few samples for {folds} folds of at least {_MIN_FOLD}: n = {n}, "
                         f"need at least {_MIN_FOLD * folds}")
    return n


def _shuffled(problems: Sequence[tuple[Score, Tensor, int]], device: torch.device) -> tuple[Tensor, Tensor]:
    """(K, n, d) data, each problem's shuffled by its seed, and the model scores there."""
    xs, ss = [], []
    for score, x, seed in problems:
        order = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(seed)).to(device)
        xs.append(x.to(device)[order])
        with torch.no_grad():
            ss.append(score(xs[-1]))
    return torch.stack(xs), torch.stack(ss)


def sequential_feature_terms(
    problems: Sequence[tuple[Score, Tensor, int]],
    settings: CriticSettings,
    folds: int,
    *,
    device: torch.device | str | None = None,
) -> list[Tensor]:
    """Prequential closed-form witnesses: fold k+1 of each problem is scored by the critic whose
    last layer is fitted in closed form on folds 1..k (:func:`steinkit.last_layer.feature_witness`)
    over the features of the critic :func:`fit_sequential_critics` would start from (its
    random initialisation, ``settings``' width and depth). No gradient step is taken.

    Returns:
        One (folds − 1, fold size) tensor of exact-trace Stein terms per problem, as
        :func:`fit_sequential_critics` (the same shuffle and folds).

    Example:
        >>> from steinkit.scores import as_score
        >>> from steinkit.settings import LEARNED_TEST
        >>> x = torch.randn(120, 2, generator=torch.Generator().manual_seed(0))
        >>> sequential_feature_terms([(as_score(lambda z: -z), x, 0)], LEARNED_TEST, 4)[0].shape
        torch.Size([3, 30])
    """
    m = _check_folds(problems, folds) // folds
    device = as_device(device, problems[0][1])
    x_all, s_all = _shuffled(problems, device)
    features = _ensemble(problems, settings, device)[0]
    weight, bias, kept = 0.0, 0.0, []
    for k in range(1, folds):  # running sums: each point's Jacobian is taken once
        more = witness_sums(features, x_all[:, (k - 1) * m:k * m], s_all[:, (k - 1) * m:k * m])
        weight, bias = weight + more[0], bias + more[1]
        witness = with_last_layer(features, weight / (k * m), bias / (k * m))
        with torch.no_grad():
            terms, _ = stein_terms(witness, x_all[:, k * m:(k + 1) * m], s_all[:, k * m:(k + 1) * m], trace="exact")
        if not bool(_finite_stats(terms.double())):
            raise FloatingPointError(
                f"the closed-form witness's Stein statistics are not finite on fold {k + 1}: the data or the model's "
                f"scores are not finite or too large: the largest |x| is {float(x_all.abs().max()):.3g} and the "
                f"largest |score| is {float(s_all.abs().max()):.3g}; check the model, or rescale (standardize) the "
                "data")
        kept.append(terms)
    return list(torch.stack(kept, 1).unbind(0))


def fit_seconds(
    problems: Sequence[tuple[Score, Tensor, int]], settings: CriticSettings | None = None, *, steps: int = 3
) -> float:
    """About how many seconds :func:`fit_heldout_critics` takes on these problems, from a quick
    timing on this machine: one warm-up and ``steps`` timed critic steps (scaled to
    ``n_iters``), and one exact-trace validation on at most 64 rows (scaled linearly to the
    validation's train + val rows, once per validation). It works on its own copies of the
    critic and generators and draws nothing from torch's global generator, so the fit that
    follows is unchanged.

    Example:
        >>> from steinkit.scores import as_score
        >>> from steinkit.settings import TEST
        >>> x = torch.randn(300, 3, generator=torch.Generator().manual_seed(0))
        >>> fit_seconds([(as_score(lambda z: -z), x, 0)], TEST.replace(n_iters=100)) > 0
        True
    """
    cfg = ESTIMATE if settings is None else settings
    _check_problems(problems)
    x_parts, s_parts = _split_problems(problems, cfg.split)
    critic, generators = _ensemble(problems, cfg)
    n_train = x_parts[0].shape[-2]
    full_batch = cfg.batch_size is None or cfg.batch_size >= n_train
    optimizer = torch.optim.Adam(critic.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    critic.train()
    _step(critic, optimizer, x_parts[0], s_parts[0], cfg, generators, full_batch)  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        _step(critic, optimizer, x_parts[0], s_parts[0], cfg, generators, full_batch)
    per_step = (time.perf_counter() - start) / steps
    rows = min(64, n_train)
    critic.eval()
    start = time.perf_counter()
    with torch.no_grad():
        stein_terms(critic, x_parts[0][..., :rows, :], s_parts[0][..., :rows, :], trace="exact")
    per_validation = (time.perf_counter() - start) * (n_train + x_parts[1].shape[-2]) / rows
    validations = -(-cfg.n_iters // cfg.val_every)
    return cfg.n_iters * per_step + validations * per_validation

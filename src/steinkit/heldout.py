"""Held-out critics: fit one critic per problem on part of its data and score it on the rest.

A problem is a (score function, data (n, d), seed) triple. :func:`fit_heldout_critics` splits
each problem's data once into train/validation/test parts (Algorithms 1 and 2);
:func:`fit_crossfit_critics` cuts it into folds and fits one critic per fold, each tested on its
own fold, so every point is tested once. All critics of a call train together as one ensemble
(:class:`~steinkit.critics.MLPCritic` with ``n_critics``); member k initialises from its seed + 1
and draws probes, dropout masks and batches from seed + 2, so its outcome does not depend on the
members it is batched with.

Example:
    >>> import torch
    >>> from steinkit.scores import as_score
    >>> from steinkit.settings import CriticSettings
    >>> x = torch.randn(100, 2, generator=torch.Generator().manual_seed(0))
    >>> cfg = CriticSettings(split=(.6, .2, .2), hidden=8, n_iters=20, val_every=10)
    >>> fit_heldout_critics([(as_score(lambda z: -z), x, 0)], cfg)[0].test_terms.shape
    torch.Size([20])
    >>> [f.test_terms.shape[0] for f in fit_crossfit_critics([(as_score(lambda z: -z), x, 0)], cfg, 4)[0]]
    [25, 25, 25, 25]
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor

from .critics import MLPCritic
from .fit import VALIDATION_ROWS, chunked_terms, finite_stats, fit_critic, numerical_failure
from .last_layer import refit_last_layer
from .scores import Score, score_rows
from .settings import ESTIMATE, CriticSettings, sized_for
from .splits import split_data, split_sizes
from .stein import scaled_lsd
from .validation import as_device, integer

__all__ = ["HeldOutFit", "Problem", "fit_heldout_critics", "fit_crossfit_critics", "critic_ensemble",
           "check_problems", "split_problems"]

Problem = tuple[Score, Tensor, int]
"""(checked score function, data (n, d), seed)."""


@dataclass(frozen=True)
class HeldOutFit:
    """One critic's outcome from :func:`fit_heldout_critics` or :func:`fit_crossfit_critics`.

    Attributes:
        test_terms: Stein terms of the selected critic on its test points (exact trace), (n_test,).
        best_iteration: iteration of the selected critic.
        history: train/val statistics at every validation.
        test_sq_norms: ‖f(x)‖² of the selected critic on the test points, (n_test,) (the
            per-point L2 penalty, before λ).
        snapshot_terms: with ``snapshots=True``, the test-split terms of the critic as it was at
            every validation, (n_validations, n_test); else None.
        critic: with ``keep_critics=True``, the selected critic (a lone :class:`MLPCritic`).
        snapshot_critics: with ``keep_critics=True`` and ``snapshots=True``, the critic as it
            was at every validation.
        train_mean, train_scaled: the selected critic's mean Stein term and its value at the
            best scale (:func:`~steinkit.stein.scaled_lsd`) on its training points (exact trace), to
            compare with the same on its test points.
        hidden: the critic's hidden width (``settings.hidden``, or the one sized for the data).
    """

    test_terms: Tensor
    best_iteration: int
    history: tuple[dict, ...]
    test_sq_norms: Tensor
    snapshot_terms: Tensor | None = None
    critic: MLPCritic | None = None
    snapshot_critics: tuple[MLPCritic, ...] | None = None
    train_mean: float = float("nan")
    train_scaled: float = float("nan")
    hidden: int = 0


def check_problems(problems: Sequence[Problem]) -> None:
    """Problems must be given and share one data shape (they are fitted as one ensemble)."""
    if not problems:
        raise ValueError("problems must not be empty")
    shapes = {tuple(x.shape) for _, x, _ in problems}
    if len(shapes) != 1:
        raise ValueError(f"all data sets must have one shape to be fitted together, got {sorted(shapes)}")


def split_problems(problems: Sequence[Problem], split: Sequence[float]) -> tuple[list[Tensor], list[Tensor]]:
    """Train/val/test data and scores of every problem, stacked along a leading member axis
    (data shared by all problems with the same seed are split once and not stacked)."""

    def cut(x: Tensor, seed: int) -> tuple[Tensor, Tensor, Tensor]:
        return split_data(x, split, generator=torch.Generator().manual_seed(seed))

    shared = all(x is problems[0][1] and seed == problems[0][2] for _, x, seed in problems)
    if shared:
        x_parts = list(cut(problems[0][1], problems[0][2]))
        s_parts = [torch.stack([score_rows(score, p) for score, _, _ in problems]) for p in x_parts]
        return x_parts, s_parts
    per_problem = [cut(x, seed) for _, x, seed in problems]
    x_parts = [torch.stack([pp[i] for pp in per_problem]) for i in range(3)]
    s_parts = [torch.stack([score_rows(score, pp[i]) for (score, _, _), pp in zip(problems, per_problem)])
               for i in range(3)]
    return x_parts, s_parts


def critic_ensemble(
    seeds: Sequence[int], d: int, cfg: CriticSettings, like: Tensor, device: torch.device | None = None
) -> tuple[MLPCritic, list[torch.Generator]]:
    """One critic per seed as an ensemble (member k initialised from seed + 1, with a skip
    connection when ``cfg.refit``) and one generator per member (seed + 2), in ``like``'s dtype,
    on ``device`` (default: ``like``'s)."""
    device = like.device if device is None else device
    critic = MLPCritic(
        d, cfg.hidden, cfg.n_layers, cfg.dropout,  # type: ignore[arg-type]
        n_critics=len(seeds), seeds=[s + 1 for s in seeds], dtype=like.dtype, device=device, skip=cfg.refit,
    )
    return critic, [torch.Generator(device=device).manual_seed(s + 2) for s in seeds]


def _moments(x: Tensor) -> tuple[Tensor, Tensor]:
    """Per-coordinate mean and std of training data (n, d), or per member (K, 1, d) of (K, n, d);
    a constant coordinate gets std 1."""
    loc, scale = x.mean(-2, keepdim=x.dim() == 3), x.std(-2, keepdim=x.dim() == 3)
    return loc, torch.where(scale > 0, scale, torch.ones_like(scale))


def _fit_parts(
    x_parts: list[Tensor], s_parts: list[Tensor], seeds: Sequence[int], cfg: CriticSettings, device: torch.device,
    progress: bool, snapshots: bool = False, keep_critics: bool = False,
) -> list[HeldOutFit]:
    """Fit one critic per member on (train, val) parts, optionally refit its last layer, and
    score it on the test part; parts are shared (n, d) or per member (K, n, d)."""
    cfg = sized_for(cfg, x_parts[0].shape[-2], x_parts[0].shape[-1])
    critic, generators = critic_ensemble(seeds, x_parts[0].shape[-1], cfg, x_parts[0], device)
    if cfg.standardize:
        critic.set_standardization(*_moments(x_parts[0]))
    kept: list[Tensor] = []
    kept_critics: list[MLPCritic] = []

    def keep(iteration: int, current: MLPCritic) -> None:
        kept.append(chunked_terms(current, x_parts[2], s_parts[2])[0])  # the test part, a chunk at a time
        if keep_critics:
            kept_critics.append(copy.deepcopy(current))

    fit = fit_critic(critic, x_parts[0], s_parts[0], x_parts[1], s_parts[1], cfg, generator=generators,
                     progress=progress, callback=keep if snapshots else None)
    if cfg.refit:  # on every training row, the ridge chosen on at most VALIDATION_ROWS validation rows
        if cfg.coordinate_features:
            fit.critic.add_coordinate_features()
        refit_last_layer(fit.critic, x_parts[0], s_parts[0], x_parts[1][..., :VALIDATION_ROWS, :],
                         s_parts[1][..., :VALIDATION_ROWS, :], cfg.lam)
    terms, sq_norms = chunked_terms(fit.critic, x_parts[2], s_parts[2])
    train_terms, train_sq = chunked_terms(fit.critic, x_parts[0][..., :VALIDATION_ROWS, :],
                                          s_parts[0][..., :VALIDATION_ROWS, :])
    train_mean = train_terms.double().mean(-1)
    train_scaled = scaled_lsd(train_terms, train_sq, cfg.lam)[0]
    snapshot_terms = torch.stack(kept, 1) if snapshots else None  # (K, n_validations, n_test)
    if not bool(finite_stats(terms.double()).all()) or (
        snapshot_terms is not None and not bool(torch.isfinite(snapshot_terms).all())
    ):
        raise numerical_failure("on the test split", cfg, x_parts[2], s_parts[2])
    out = []
    for k in range(len(seeds)):
        history = tuple(
            {key: (v[k] if isinstance(v, list) else v) for key, v in row.items()} for row in fit.history
        )
        snap = None if snapshot_terms is None else snapshot_terms[k]
        lone = fit.critic.member(k) if keep_critics else None
        snap_critics = tuple(c.member(k) for c in kept_critics) if keep_critics and snapshots else None
        out.append(HeldOutFit(terms[k], int(fit.best_iteration[k]), history, sq_norms[k],  # type: ignore[index]
                              snap, lone, snap_critics, float(train_mean[k]), float(train_scaled[k]),
                              int(cfg.hidden)))  # type: ignore[arg-type]
    return out


def fit_heldout_critics(
    problems: Sequence[Problem],
    settings: CriticSettings | None = None,
    *,
    progress: bool = False,
    device: torch.device | str | None = None,
    snapshots: bool = False,
    keep_critics: bool = False,
) -> list[HeldOutFit]:
    """Split, fit and test one critic per (score, data, seed) problem, all as one ensemble.

    Problem k splits its data with ``seed`` into ``settings.split``'s train/validation/test
    parts. Data sets must share their shape; problems that share the same data tensor and seed
    share one copy of the split. The split is drawn on the CPU (the same rows on every device);
    the critics, their generators and every later draw live on ``device``.

    Arguments:
        problems: (checked score function, data (n, d), seed) triples.
        settings: a :class:`~steinkit.settings.CriticSettings` (default ``ESTIMATE``).
        progress: show a progress bar.
        device: where to fit (default: where the first problem's data live); the data move there.
        snapshots: also give the test-split terms of the critic at every validation.
        keep_critics: also give each problem's selected critic (and, with ``snapshots``, its
            critic at every validation) as lone critics.

    Returns:
        One :class:`HeldOutFit` per problem.
    """
    cfg = ESTIMATE if settings is None else settings
    check_problems(problems)
    device = as_device(device, problems[0][1])
    moved = {id(x): x.to(device) for _, x, _ in problems}  # one copy of data shared by problems
    problems = [(score, moved[id(x)], seed) for score, x, seed in problems]
    x_parts, s_parts = split_problems(problems, cfg.split)
    return _fit_parts(x_parts, s_parts, [seed for _, _, seed in problems], cfg, device, progress, snapshots,
                      keep_critics)


def fit_crossfit_critics(
    problems: Sequence[Problem],
    settings: CriticSettings | None = None,
    folds: int = 5,
    *,
    progress: bool = False,
    device: torch.device | str | None = None,
    keep_critics: bool = False,
) -> list[list[HeldOutFit]]:
    """Cross-fitted critics: every point of every problem is tested by a critic fitted without it.

    Problem (score, x, seed) shuffles its n rows with ``seed`` and cuts them into ``folds`` folds
    of ⌊n/folds⌋ rows (the remainder is never tested, and always trains). Fold j's critic trains on
    the other rows, of which the share split[1]/(split[0] + split[1]) of ``settings.split``
    validates, and is tested on fold j. Member (problem k, fold j) has seed seed_k + 1000·j.

    Returns:
        Per problem, one :class:`HeldOutFit` per fold.
    """
    cfg = ESTIMATE if settings is None else settings
    check_problems(problems)
    folds = integer(folds, "folds", minimum=2)
    device = as_device(device, problems[0][1])
    n = problems[0][1].shape[0]
    split_sizes(n, cfg.split)  # at least as many points as one split needs
    size = n // folds
    n_val = max(2, round((n - size) * cfg.split[1] / (cfg.split[0] + cfg.split[1])))
    if n - size - n_val < 2 or size < 2:
        raise ValueError(f"x has too few samples (n={n}) for {folds} folds with a validation part: need each "
                         "fold, training part and validation part to hold at least 2 points")
    xs, ss, seeds = [[], [], []], [[], [], []], []
    for score, x, seed in problems:
        x = x.to(device)
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).to(device)
        for j in range(folds):
            test = order[j * size:(j + 1) * size]
            rest = torch.cat([order[:j * size], order[(j + 1) * size:]])
            for part, idx in zip(range(3), (rest[n_val:], rest[:n_val], test)):
                xs[part].append(x[idx])
                ss[part].append(score_rows(score, xs[part][-1]))
            seeds.append(seed + 1000 * j)
    fits = _fit_parts([torch.stack(p) for p in xs], [torch.stack(p) for p in ss], seeds, cfg, device, progress,
                      keep_critics=keep_critics)
    return [fits[k * folds:(k + 1) * folds] for k in range(len(problems))]

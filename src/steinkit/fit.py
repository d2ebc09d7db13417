"""Fitting a critic: maximize an LSD objective with Adam, validate, keep the best critic.

Objectives (all with the L2 penalty λ·E‖f‖² of Eq. 8 subtracted):
  * ``"lsd"``   — mean of the Stein terms (Eq. 11 with Hutchinson; Algorithm 1);
  * ``"power"`` — mean/std of the Stein terms (Eq. 12; Algorithm 2).
Selection statistics on the validation split: ``"mean-std"`` (variance-aware, Appendix A),
``"power"`` (mean/std), ``"mean"``, or ``"last"`` (no selection).

An ensemble critic (``MLPCritic(n_critics=K)``) is fitted as K independent problems at once:
x and scores may carry a leading K axis, losses are summed, and selection is per member. With
one generator per member, each member follows exactly the path it would follow alone.

Example:
    >>> import torch
    >>> from steinkit.critics import MLPCritic
    >>> g = torch.Generator().manual_seed(0)
    >>> x = torch.randn(200, 2, generator=g) + 1.0     # data from N(1, I)
    >>> s = -x                                          # model N(0, I)
    >>> fit = fit_critic(MLPCritic(2, hidden=32, generator=g), x[:150], s[:150], x[150:], s[150:],
    ...                  n_iters=200, val_every=50, generator=g)
    >>> fit.best_iteration > 0
    True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
from torch import Tensor
from tqdm.auto import tqdm

from .critics import Generators, MLPCritic
from .scores import Score
from .stein import stein_terms

__all__ = ["CriticFit", "HeldOutFit", "fit_critic", "fit_heldout_critics", "OBJECTIVES", "SELECTIONS"]

OBJECTIVES = ("lsd", "power")
SELECTIONS = ("mean-std", "power", "mean", "last")
_EPS = 1e-6


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


def _objective(terms: Tensor, f: Tensor, objective: str, lam: float) -> Tensor:
    """Value to maximize, per ensemble member: (K,) or scalar."""
    penalty = lam * f.pow(2).sum(-1).mean(-1)
    mean = terms.mean(-1)
    if objective == "power":
        return mean / (terms.std(-1) + _EPS) - penalty
    return mean - penalty


def _statistic(terms: Tensor, selection: str) -> Tensor:
    mean, std = terms.mean(-1), terms.std(-1)
    if selection == "mean-std":
        return mean - std
    if selection == "power":
        return mean / (std + _EPS)
    return mean


def _tolist(t: Tensor) -> float | list[float]:
    return t.tolist() if t.dim() else float(t)


def fit_critic(
    critic: MLPCritic,
    x_train: Tensor,
    s_train: Tensor,
    x_val: Tensor,
    s_val: Tensor,
    *,
    lam: float = 0.5,
    objective: str = "lsd",
    selection: str = "mean-std",
    n_iters: int = 1000,
    lr: float = 1e-3,
    betas: tuple[float, float] = (0.9, 0.999),
    weight_decay: float = 0.0,
    batch_size: int | None = None,
    val_every: int = 100,
    trace: str = "hutchinson",
    n_probes: int = 1,
    val_trace: str = "exact",
    generator: Generators = None,
    progress: bool = False,
    desc: str = "fitting critic",
    callback: Callable[[int, MLPCritic], None] | None = None,
) -> CriticFit:
    """Train ``critic`` to maximize an LSD objective on the training split, selecting on val.

    Arguments:
        critic: an :class:`MLPCritic` (or an ensemble of them).
        x_train, s_train: training data and the model's scores there ((n, d) or (K, n, d)).
        x_val, s_val: validation data and scores.
        lam: L2 penalty weight λ > 0.
        objective: ``"lsd"`` or ``"power"``.
        selection: ``"mean-std"``, ``"power"``, ``"mean"`` or ``"last"``.
        n_iters: Adam steps.
        lr, betas, weight_decay: Adam settings (weight decay as in ``torch.optim.Adam``).
        batch_size: mini-batch size; ``None`` uses the whole training split each step.
        val_every: validate every this many steps (and after the last step).
        trace: trace estimator while training (``"hutchinson"`` or ``"exact"``).
        n_probes: Hutchinson probes per example.
        val_trace: trace used on the validation split.
        generator: random generator (or one per ensemble member) for probes, dropout, batches.
        progress: show a progress bar.
        callback: called as ``callback(iteration, critic)`` after each validation (the
            critic in eval mode, under ``torch.no_grad``), e.g. to record extra metrics.

    Returns:
        A :class:`CriticFit`.
    """
    if lam <= 0:
        raise ValueError(f"lam must be > 0, got {lam!r}")
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    if selection not in SELECTIONS:
        raise ValueError(f"selection must be one of {SELECTIONS}, got {selection!r}")
    if not isinstance(n_iters, int) or n_iters < 1:
        raise ValueError(f"n_iters must be a positive integer, got {n_iters!r}")
    if not isinstance(val_every, int) or val_every < 1:
        raise ValueError(f"val_every must be a positive integer, got {val_every!r}")
    n_train = x_train.shape[-2]
    if batch_size is not None and not 1 <= batch_size <= n_train:
        raise ValueError(f"batch_size must lie in [1, {n_train}], got {batch_size!r}")
    full_batch = batch_size is None or batch_size == n_train

    params = list(critic.parameters())
    optimizer = torch.optim.Adam(params, lr=lr, betas=betas, weight_decay=weight_decay)
    best_state = [p.detach().clone() for p in params]
    best_stat: Tensor | None = None
    best_iter: Tensor | None = None
    history: list[dict] = []

    def evaluate(iteration: int) -> None:
        nonlocal best_stat, best_iter
        critic.eval()
        with torch.no_grad():
            val_terms, _ = stein_terms(critic, x_val, s_val, trace=val_trace)
            train_terms, _ = stein_terms(critic, x_train, s_train, trace=val_trace)
        stat = _statistic(val_terms, selection)
        history.append(
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
        improved = (
            torch.ones_like(stat, dtype=torch.bool)
            if best_stat is None or selection == "last"
            else stat > best_stat
        )
        if bool(improved.any()):
            _copy_where(best_state, params, improved)
            best_stat = stat.clone() if best_stat is None else torch.where(improved, stat, best_stat)
            iters = torch.full_like(stat, iteration, dtype=torch.long)
            best_iter = iters if best_iter is None else torch.where(improved, iters, best_iter)
        if callback is not None:
            with torch.no_grad():
                callback(iteration, critic)
        critic.train()

    critic.train()
    for it in tqdm(range(1, n_iters + 1), disable=not progress, desc=desc, leave=False):
        if full_batch:
            xb, sb = x_train, s_train
        else:
            idx = _batch_indices(n_train, batch_size, generator)
            xb, sb = _take(x_train, idx), _take(s_train, idx)
        terms, f = stein_terms(critic, xb, sb, trace=trace, n_probes=n_probes, generator=generator)
        loss = -_objective(terms, f, objective, lam).sum()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if it % val_every == 0 or it == n_iters:
            evaluate(it)

    with torch.no_grad():
        for p, b in zip(params, best_state):
            p.copy_(b)
    critic.eval()
    assert best_stat is not None and best_iter is not None
    return CriticFit(critic, tuple(history), _tolist(best_iter), _tolist(best_stat))


def _copy_where(dst: Sequence[Tensor], src: Sequence[Tensor], mask: Tensor) -> None:
    """dst[k] = src[k] for ensemble members where mask (K,) is true (or all if scalar)."""
    with torch.no_grad():
        for d, s in zip(dst, src):
            if mask.dim() == 0:
                d.copy_(s)
            else:
                m = mask.reshape(-1, *([1] * (s.dim() - 1)))
                d.copy_(torch.where(m, s, d))


def _batch_indices(n: int, batch_size: int, generator: Generators) -> Tensor:
    """Mini-batch indices without replacement (one row per ensemble member if needed)."""
    if isinstance(generator, (list, tuple)):
        return torch.stack([torch.randperm(n, generator=g)[:batch_size] for g in generator])
    return torch.randperm(n, generator=generator)[:batch_size]


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
    """

    test_terms: Tensor
    best_iteration: int
    history: tuple[dict, ...]


def _split(x: Tensor, split: Sequence[float], seed: int) -> tuple[Tensor, Tensor, Tensor]:
    from .evaluate import split_data  # local: evaluate builds on this module

    return split_data(x, split, generator=torch.Generator().manual_seed(seed))


def fit_heldout_critics(
    problems: Sequence[tuple[Score, Tensor, int]],
    *,
    split: Sequence[float],
    hidden: int,
    n_layers: int,
    dropout: float,
    progress: bool = False,
    **fit_options: Any,
) -> list[HeldOutFit]:
    """Split, fit and test one critic per (score, data, seed) problem, all as one ensemble.

    Problem k splits its data with ``seed``, initialises its critic from ``seed + 1`` and draws
    probes, dropout masks and batches from ``seed + 2``, so its outcome does not depend on the
    other problems it is batched with. Data sets must share their shape; problems that share
    the same data tensor and seed share one copy of the split.

    Example:
        >>> from steinkit.scores import as_score
        >>> x = torch.randn(100, 2, generator=torch.Generator().manual_seed(0))
        >>> out = fit_heldout_critics([(as_score(lambda z: -z), x, 0)], split=(.6, .2, .2),
        ...                           hidden=8, n_layers=2, dropout=0.0, n_iters=20, val_every=10)
        >>> out[0].test_terms.shape
        torch.Size([20])
    """
    if not problems:
        raise ValueError("problems must not be empty")
    shapes = {tuple(x.shape) for _, x, _ in problems}
    if len(shapes) != 1:
        raise ValueError(f"all data sets must have one shape to be fitted together, got {sorted(shapes)}")
    shared = all(x is problems[0][1] and seed == problems[0][2] for _, x, seed in problems)
    if shared:
        parts = _split(problems[0][1], split, problems[0][2])
        x_parts = list(parts)
        with torch.no_grad():
            s_parts = [torch.stack([score(p) for score, _, _ in problems]) for p in parts]
    else:
        per_problem = [_split(x, split, seed) for _, x, seed in problems]
        x_parts = [torch.stack([pp[i] for pp in per_problem]) for i in range(3)]
        with torch.no_grad():
            s_parts = [
                torch.stack([score(pp[i]) for (score, _, _), pp in zip(problems, per_problem)])
                for i in range(3)
            ]
    seeds = [seed for _, _, seed in problems]
    x0 = problems[0][1]
    critic = MLPCritic(
        x0.shape[1],
        hidden,
        n_layers,
        dropout,
        n_critics=len(problems),
        seeds=[s + 1 for s in seeds],
        dtype=x0.dtype,
    )
    fit = fit_critic(
        critic,
        x_parts[0],
        s_parts[0],
        x_parts[1],
        s_parts[1],
        generator=[torch.Generator().manual_seed(s + 2) for s in seeds],
        progress=progress,
        **fit_options,
    )
    with torch.no_grad():
        terms, _ = stein_terms(fit.critic, x_parts[2], s_parts[2], trace="exact")
    out = []
    for k in range(len(problems)):
        history = tuple(
            {key: (v[k] if isinstance(v, list) else v) for key, v in row.items()} for row in fit.history
        )
        out.append(HeldOutFit(terms[k], int(fit.best_iteration[k]), history))  # type: ignore[index]
    return out

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
    >>> from steinkit.settings import PAPER_ESTIMATE
    >>> fit = fit_critic(MLPCritic(2, hidden=32, generator=g), x[:150], s[:150], x[150:], s[150:],
    ...                  PAPER_ESTIMATE.replace(n_iters=200, val_every=50), generator=g)
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
from .settings import OBJECTIVES, PAPER_ESTIMATE, SELECTIONS, CriticSettings, settings_from
from .stein import critic_objective, power_ratio, stein_terms
from .validation import as_device, generator_on

__all__ = ["CriticFit", "fit_critic", "critic_step", "finite_stats", "numerical_failure", "chunked_terms",
           "VALIDATION_ROWS", "OBJECTIVES", "SELECTIONS"]

VALIDATION_ROWS = 16384
"""At most this many rows of the validation and of the training data score each validation (the
first ones: splits are shuffled), so a validation's cost does not grow with n."""


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


def finite_stats(terms: Tensor) -> Tensor:
    """Whether the mean and std of Stein terms (over the last axis) are finite, as a bool tensor."""
    return torch.isfinite(terms.mean(-1)).all() & torch.isfinite(terms.std(-1)).all()


def numerical_failure(where: str, settings: CriticSettings, x: Tensor, s: Tensor) -> FloatingPointError:
    """The error for Stein statistics that stopped being finite ``where``: it says why that
    happens and what to change (``lr``, ``lam``, or the data's scale when the data or scores
    are large enough to overflow in their dtype).

    Example:
        >>> from steinkit.settings import PAPER_ESTIMATE
        >>> x = torch.ones(3, 2) * 1e20
        >>> print(numerical_failure("on the test split", PAPER_ESTIMATE, x, -x))  # doctest: +NORMALIZE_WHITESPACE
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

    def stalled(self, iteration: int, patience: int | None, val_every: int) -> bool:
        """Whether every member's statistic has not improved for ``patience`` validations."""
        if patience is None or self.best_iter is None or self.selection == "last":
            return False
        return bool((iteration - self.best_iter >= patience * val_every).all())

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
    n_iters, lr, weight_decay, batch_size, val_every, patience, trace and n_probes.

    Arguments:
        critic: an :class:`MLPCritic` (or an ensemble of them).
        x_train, s_train: training data and the model's scores there ((n, d) or (K, n, d)).
        x_val, s_val: validation data and scores.
        settings: a :class:`~steinkit.settings.CriticSettings` (default
            :data:`~steinkit.settings.PAPER_ESTIMATE`, Algorithm 1's loop).
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
    cfg = settings_from(settings, PAPER_ESTIMATE, overrides, extra=", or desc, betas, val_trace, device")
    device = as_device(device, x_train)
    for g in generator if isinstance(generator, (list, tuple)) else [generator]:
        generator_on(g, device)
    x_train, s_train, x_val, s_val = (t.to(device) for t in (x_train, s_train, x_val, s_val))
    critic.to(device)
    full_batch = cfg.batch_size is None or cfg.batch_size >= x_train.shape[-2]
    params = list(critic.parameters())
    optimizer = torch.optim.Adam(params, lr=cfg.lr, betas=betas, weight_decay=cfg.weight_decay)
    selection = _Selection(params, cfg.selection, cfg.lam)
    finite = torch.ones((), dtype=torch.bool, device=x_train.device)  # every training statistic so far

    rows = slice(0, VALIDATION_ROWS)

    def validate(iteration: int) -> None:
        critic.eval()
        with torch.no_grad():
            val_terms, val_f = stein_terms(critic, x_val[..., rows, :], s_val[..., rows, :], trace=val_trace)
            train_terms, _ = stein_terms(critic, x_train[..., rows, :], s_train[..., rows, :], trace=val_trace)
            if not bool(finite & finite_stats(val_terms) & finite_stats(train_terms)):
                raise numerical_failure(f"while fitting (by iteration {iteration} of {cfg.n_iters})", cfg,
                                        x_train, s_train)
            selection.record(iteration, train_terms, val_terms, val_f.pow(2).sum(-1))
            if callback is not None:
                callback(iteration, critic)
        critic.train()

    critic.train()
    for it in tqdm(range(1, cfg.n_iters + 1), disable=not progress, desc=desc, leave=False):
        finite &= critic_step(critic, optimizer, x_train, s_train, cfg, generator, full_batch)
        if it % cfg.val_every == 0 or it == cfg.n_iters:
            validate(it)
            if selection.stalled(it, cfg.patience, cfg.val_every):
                break
    selection.restore()
    critic.eval()
    assert selection.best_stat is not None and selection.best_iter is not None
    return CriticFit(critic, tuple(selection.history), _tolist(selection.best_iter), _tolist(selection.best_stat))


def critic_step(
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
    return torch.isfinite(loss.detach()) & finite_stats(terms.detach())


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


def chunked_terms(critic: MLPCritic, x: Tensor, s: Tensor, *, rows: int = 32768) -> tuple[Tensor, Tensor]:
    """Exact-trace Stein terms and ‖f‖² of a critic at (x, s) computed ``rows`` rows at a time
    (over the second-to-last axis), without gradients: memory bounded whatever n.

    Example:
        >>> critic = MLPCritic(2, hidden=8, generator=torch.Generator().manual_seed(0))
        >>> x = torch.randn(10, 2)
        >>> terms, sq = chunked_terms(critic, x, -x, rows=3)
        >>> torch.allclose(terms, stein_terms(critic, x, -x, trace="exact")[0].detach()), sq.shape
        (True, torch.Size([10]))
    """
    parts = []
    with torch.no_grad():
        for start in range(0, x.shape[-2], rows):
            terms, f = stein_terms(critic, x[..., start:start + rows, :], s[..., start:start + rows, :],
                                   trace="exact")
            parts.append((terms, f.pow(2).sum(-1)))
    return torch.cat([t for t, _ in parts], -1), torch.cat([q for _, q in parts], -1)

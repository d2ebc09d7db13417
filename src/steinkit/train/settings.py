"""The trainer's settings as one frozen, validated dataclass.

:func:`steinkit.train.train` builds a :class:`TrainSettings` from its keywords, so a bad value
fails here, before any model or data is touched, with an error that names the argument.

Example:
    >>> s = TrainSettings(steps=1000, lr=1e-2)
    >>> s.log_interval, s.eval_interval, s.checkpoint_interval, s.critic_rate
    (2, 2, 100, 0.01)
    >>> s.replace(batch_order="epochs").batch_order
    'epochs'
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

from ..validation import fraction, one_of, positive_float, positive_int

__all__ = ["TrainSettings", "FROM_SETTINGS", "LR_DECAYS", "BATCH_ORDERS", "TRACES"]

LR_DECAYS: tuple[str, ...] = ("constant", "cosine")
BATCH_ORDERS: tuple[str, ...] = ("replacement", "epochs")
TRACES: tuple[str, ...] = ("hutchinson", "exact")
_ON_NAN: tuple[str, ...] = ("raise", "stop")


class _FromSettings:
    """The default of a :func:`~steinkit.train.train` keyword that is a :class:`TrainSettings`
    field: the value of its ``settings=`` (or the field's default), so that only the keywords
    a call names override ``settings``."""

    def __repr__(self) -> str:
        return "<from settings>"


FROM_SETTINGS: Any = _FromSettings()


def _betas(value: Any) -> tuple[float, float]:
    if not (isinstance(value, (tuple, list)) and len(value) == 2):
        raise ValueError(f"betas must be a pair of numbers in [0, 1), got {value!r}")
    return fraction(value[0], "betas[0]"), fraction(value[1], "betas[1]")


def _optional(check: Callable[[Any, str], Any], value: Any, name: str) -> Any:
    return None if value is None else check(value, name)


@dataclass(frozen=True)
class TrainSettings:
    """Everything :func:`~steinkit.train.train` needs besides the model, the data and the I/O.

    Attributes:
        steps: total model updates T (a resumed run continues up to ``steps``).
        batch_size: global mini-batch size (divisible by the world size under DDP).
        lr, betas: Adam settings of the model (and of the critic, unless ``critic_lr``).
        lr_decay: ``"constant"`` or ``"cosine"`` (lr · ½(1 + cos(π (t−1)/T)) at step t).
        batch_order: ``"replacement"`` (a fresh batch drawn with replacement from the
            generator for every update) or ``"epochs"`` (shuffled passes over the data, the
            last incomplete batch dropped, batch_size capped at n; see
            :class:`~steinkit.train.batches.EpochBatches`).
        critic_steps, critic_lr, lam, trace, n_probes: the LSD critic's updates per model
            update, learning rate (default ``lr``), L2 weight λ, trace estimator and
            Hutchinson probes per example.
        eps: the noise scale ε of CNCE.
        checkpoint_every: steps between checkpoints (one is also written at the end); default
            a tenth of the run, ``min(1000, max(1, steps // 10))``, so that a killed run loses at
            most a tenth of its steps (and at most 1000).
        log_every: steps between history records (default ``max(1, steps // 500)``).
        eval_every: steps between ``eval_fn`` calls (default ``log_every``).
        on_nan: ``"raise"`` or ``"stop"`` when training diverges: a loss or gradient is not
            finite, or a loss passes the bound ``max_loss_ratio`` sets.
        max_loss_ratio: divergence to huge values. A step of a part (the model, or the LSD
            critic) whose ``|loss|`` exceeds ``max_loss_ratio * max(1, |first loss|)`` counts as
            diverged, exactly like a NaN, where the first loss is that part's loss at its first
            step. The losses of unnormalized models have no fixed scale, so the bound is
            relative to where the run started; the 1 keeps a near-zero start (an LSD critic
            starts near f = 0) from making it tight. ``None``: no bound.

    Example:
        >>> TrainSettings(steps=0)
        Traceback (most recent call last):
        ...
        ValueError: steps must be >= 1, got 0
    """

    steps: int
    batch_size: int = 100
    lr: float = 1e-3
    betas: tuple[float, float] = (0.5, 0.9)
    lr_decay: str = "constant"
    batch_order: str = "replacement"
    critic_steps: int = 5
    critic_lr: float | None = None
    lam: float = 0.5
    trace: str = "hutchinson"
    n_probes: int = 1
    eps: float = 0.1
    checkpoint_every: int | None = None
    log_every: int | None = None
    eval_every: int | None = None
    on_nan: str = "raise"
    max_loss_ratio: float | None = 1e8

    def __post_init__(self) -> None:
        checked = {
            "steps": positive_int(self.steps, "steps"),
            "batch_size": positive_int(self.batch_size, "batch_size"),
            "lr": positive_float(self.lr, "lr"),
            "critic_lr": _optional(positive_float, self.critic_lr, "critic_lr"),
            "lr_decay": one_of(self.lr_decay, "lr_decay", LR_DECAYS),
            "batch_order": one_of(self.batch_order, "batch_order", BATCH_ORDERS),
            "betas": _betas(self.betas),
            "critic_steps": positive_int(self.critic_steps, "critic_steps"),
            "lam": positive_float(self.lam, "lam"),
            "eps": positive_float(self.eps, "eps"),
            "n_probes": positive_int(self.n_probes, "n_probes"),
            "trace": one_of(self.trace, "trace", TRACES),
            "checkpoint_every": _optional(positive_int, self.checkpoint_every, "checkpoint_every"),
            "log_every": _optional(positive_int, self.log_every, "log_every"),
            "eval_every": _optional(positive_int, self.eval_every, "eval_every"),
            "on_nan": one_of(self.on_nan, "on_nan", _ON_NAN),
            "max_loss_ratio": _optional(positive_float, self.max_loss_ratio, "max_loss_ratio"),
        }
        for name, value in checked.items():
            object.__setattr__(self, name, value)

    @property
    def log_interval(self) -> int:
        """Steps between history records."""
        return max(1, self.steps // 500) if self.log_every is None else self.log_every

    @property
    def eval_interval(self) -> int:
        """Steps between evaluations."""
        return self.log_interval if self.eval_every is None else self.eval_every

    @property
    def checkpoint_interval(self) -> int:
        """Steps between checkpoints, ``checkpoint_every`` or else ``min(1000, max(1, steps // 10))``."""
        return min(1000, max(1, self.steps // 10)) if self.checkpoint_every is None else self.checkpoint_every

    @property
    def critic_rate(self) -> float:
        """The critic's learning rate."""
        return self.lr if self.critic_lr is None else self.critic_lr

    def replace(self, **changes: Any) -> TrainSettings:
        """A copy with ``changes`` applied (and validated); unknown names raise ``TypeError``."""
        return dataclasses.replace(self, **changes)

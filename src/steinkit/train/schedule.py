"""What happens at step t of T: the model's learning rate, history records, checkpoints.

All three are functions of the settings and the step alone, so a resumed run follows the same
schedule as an uninterrupted one.

Example:
    >>> from steinkit.train.settings import TrainSettings
    >>> s = TrainSettings(steps=4, lr=1.0, lr_decay="cosine", log_every=2, eval_every=4, checkpoint_every=3)
    >>> [round(learning_rate(s, t), 3) for t in range(1, 5)]
    [1.0, 0.854, 0.5, 0.146]
    >>> [(t, records(s, t)) for t in range(1, 5)]
    [(1, None), (2, 'log'), (3, None), (4, 'eval')]
    >>> [t for t in range(1, 5) if checkpoints(s, t)]
    [3, 4]
"""

from __future__ import annotations

import math

from .settings import TrainSettings

__all__ = ["learning_rate", "records", "checkpoints"]


def learning_rate(settings: TrainSettings, step: int) -> float:
    """The model's rate at ``step``: ``lr``, or lr · ½(1 + cos(π (step−1)/T)) for ``"cosine"``."""
    if settings.lr_decay == "cosine":
        return settings.lr * 0.5 * (1.0 + math.cos(math.pi * (step - 1) / settings.steps))
    return settings.lr


def records(settings: TrainSettings, step: int) -> str | None:
    """Which history row ``step`` writes: ``"eval"`` (metrics and ``eval_fn``: every
    ``eval_every`` steps and a last step on the logging schedule), ``"log"`` (metrics only),
    ``"final"`` (a last step off both schedules: metrics and ``eval_fn``, a row that a resumed
    run drops again) or ``None``."""
    logs, last = step % settings.log_interval == 0, step == settings.steps
    if step % settings.eval_interval == 0 or (logs and last):
        return "eval"
    if logs:
        return "log"
    return "final" if last else None


def checkpoints(settings: TrainSettings, step: int) -> bool:
    """Whether a checkpoint is written after ``step`` (every ``checkpoint_interval`` and the last)."""
    return step % settings.checkpoint_interval == 0 or step == settings.steps

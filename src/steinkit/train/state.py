"""The explicit training state, and the metric history it accumulates.

A :class:`TrainState` holds everything a training run changes: the model and critic, one
:class:`~steinkit.train.distributed.Stepper` (optimiser) per part, the generator and batch
sampler, the step, the history and the metric sums since the last history record. Objectives
step parts through :meth:`TrainState.take`; the trainer records rows with
:meth:`TrainState.record`; :mod:`steinkit.train.checkpoint` saves and restores the whole state.

Example:
    >>> import torch
    >>> from steinkit.models import Gaussian
    >>> from steinkit.train.objectives import ML
    >>> from steinkit.train.settings import TrainSettings
    >>> x = torch.randn(50, 2, generator=torch.Generator().manual_seed(0))
    >>> state = new_state(Gaussian(torch.zeros(2), torch.eye(2)), x, ML(), TrainSettings(steps=3),
    ...                   generator=torch.Generator().manual_seed(0), seed=0)
    >>> ML().update(state)
    >>> state.record(1, evaluate=False, eval_fn=None)
    >>> sorted(state.history[-1])
    ['loss', 'seconds', 'step']
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import torch
from torch import Tensor, nn

from .batches import EpochBatches, ReplacementBatches, make_batches
from .distributed import Stepper, World
from .objectives import Objective
from .settings import TrainSettings

__all__ = ["TrainState", "new_state", "EvalFn"]

EvalFn = Callable[[nn.Module], "float | Mapping[str, float]"]


def _empty_pending() -> dict[str, dict[str, Any]]:
    """Running sums of the metrics since the last history record, per part."""
    return {"model": {"count": 0, "sums": {}}, "critic": {"count": 0, "sums": {}}}


@dataclass
class TrainState:
    """Everything a training run changes; see the module docstring.

    ``tail_row`` says whether ``history[-1]`` was written only because a run ended at that step
    (a resumed run drops it, so that its history equals an uninterrupted one). ``seed`` is the
    seed the caller gave (``None`` for a drawn seed or a given generator), kept in checkpoints so
    that a resumed run given another seed can say so (the checkpoint's random state continues).
    """

    model: nn.Module
    data: Tensor
    settings: TrainSettings
    steppers: dict[str, Stepper]
    generator: torch.Generator
    batches: ReplacementBatches | EpochBatches
    world: World = field(default_factory=World)
    critic: nn.Module | None = None
    step: int = 0
    seconds: float = 0.0
    history: list[dict] = field(default_factory=list)
    pending: dict[str, dict[str, Any]] = field(default_factory=_empty_pending)
    tail_row: bool = False
    seed: int | None = None
    started: float = field(default_factory=time.perf_counter)

    def elapsed(self) -> float:
        """Training seconds, summed over resumed segments."""
        return self.seconds + time.perf_counter() - self.started

    def local(self, t: Tensor | None) -> Tensor | None:
        """This process's rows of a tensor drawn for the global batch."""
        return None if t is None else t[self.batches.rows]

    def take(self, part: str, *inputs: Any) -> None:
        """One guarded optimiser step of ``part``; its metrics join the running sums
        (a part other than the model records its loss as ``<part>_loss``)."""
        out = self.steppers[part].step(*inputs)
        if part != "model":
            out[f"{part}_loss"] = out.pop("loss")
        acc = self.pending.setdefault(part, {"count": 0, "sums": {}})
        acc["count"] += 1
        for k, v in out.items():
            acc["sums"][k] = acc["sums"].get(k, 0.0) + v

    def record(self, step: int, *, evaluate: bool, eval_fn: EvalFn | None, final: bool = False) -> None:
        """Append a history row: the mean metrics since the last row, and ``eval_fn(model)``.

        A ``final`` row (written only because the run ends here) keeps the running sums.
        """
        row: dict[str, Any] = {"step": step, "seconds": self.elapsed() if step else 0.0}
        for acc in self.pending.values():
            if acc["count"]:
                row.update({k: v / acc["count"] for k, v in acc["sums"].items()})
        if not final:
            self.pending = _empty_pending()
        if evaluate and eval_fn is not None:
            out = eval_fn(self.model)
            if isinstance(out, Mapping):
                row.update({str(k): float(v) for k, v in out.items()})
            else:
                row["eval"] = float(out)
        if len(row) > 2:
            self.history.append(row)
            self.tail_row = final


def new_state(
    model: nn.Module,
    data: Tensor,
    objective: Objective,
    settings: TrainSettings,
    *,
    generator: torch.Generator,
    seed: int | None,
    world: World = World(),
) -> TrainState:
    """A fresh state at step 0: the objective's parts, an Adam per part, the batch sampler.

    ``seed`` seeds an ``"epochs"`` batch order (drawn from ``generator`` when ``None``).
    """
    parts = objective.build(model, data, settings, generator)
    rates = {"model": settings.lr}
    steppers = {
        name: Stepper(name, module, lr=rates.get(name, settings.critic_rate), betas=settings.betas, world=world,
                      max_loss_ratio=settings.max_loss_ratio)
        for name, module in parts.items()
    }
    batch_size = settings.batch_size
    if settings.batch_order == "epochs":
        batch_size = min(batch_size, data.shape[0])
    rows = world.rows(batch_size)
    batches = make_batches(settings.batch_order, data, batch_size, generator=generator, seed=seed, rows=rows)
    critic = getattr(parts.get("critic"), "critic", None)
    return TrainState(model, data, settings, steppers, generator, batches, world, critic)

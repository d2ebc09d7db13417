"""Data-parallel training: who this process is, and one optimiser step that DDP can wrap.

Under ``torchrun`` (``torch.distributed`` initialised, world size > 1) every process holds the
full data and the same generator, draws the same *global* batch and random inputs, and takes
its own contiguous share of the rows (:attr:`World.rows`). Each loss module is wrapped in
``DistributedDataParallel``, which averages the gradients, so an update equals the
single-process update on the global batch. Without DDP the same code runs with one process.

Example:
    >>> import torch
    >>> from torch import nn
    >>> class Square(nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.w = nn.Parameter(torch.ones(1))
    ...     def forward(self, x):
    ...         return (self.w * x).pow(2).mean(), {}
    >>> world = World.detect(None)
    >>> world.size, world.rows(4)
    (1, slice(0, 4, None))
    >>> stepper = Stepper("model", Square(), lr=0.1, betas=(0.9, 0.999), world=world)
    >>> stepper.step(torch.ones(3))
    {'loss': 1.0}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

__all__ = ["World", "Stepper", "Diverged"]


@dataclass(frozen=True)
class World:
    """This process's place in a data-parallel run: ``enabled``, ``rank`` and world ``size``."""

    enabled: bool = False
    rank: int = 0
    size: int = 1

    @classmethod
    def detect(cls, distributed: bool | None) -> World:
        """DDP if ``distributed`` (``None``: if ``torch.distributed`` runs with > 1 process)."""
        import torch.distributed as dist

        ready = dist.is_available() and dist.is_initialized()
        if distributed is None:
            distributed = ready and dist.get_world_size() > 1
        if distributed and not ready:
            raise ValueError(
                "distributed=True needs torch.distributed to be initialised "
                "(run under torchrun and call torch.distributed.init_process_group first)"
            )
        if not distributed:
            return cls()
        return cls(True, dist.get_rank(), dist.get_world_size())

    def rows(self, batch_size: int) -> slice:
        """This process's contiguous share of a global batch of ``batch_size`` rows."""
        if batch_size % self.size:
            raise ValueError(f"batch_size ({batch_size}) must be divisible by the world size ({self.size})")
        local = batch_size // self.size
        return slice(self.rank * local, (self.rank + 1) * local)

    def mean(self, values: torch.Tensor) -> torch.Tensor:
        """The average of ``values`` over all processes (``values`` itself without DDP)."""
        if not self.enabled:
            return values
        import torch.distributed as dist

        dist.all_reduce(values)
        return values / self.size


class Diverged(Exception):
    """The part ``part`` diverged at this step, which was not applied; ``reason`` says how
    (its loss or gradient was not finite, or its loss passed the bound); ``first``: at the
    part's first step, before any update of it (so its learning rate is not the cause)."""

    def __init__(self, part: str, reason: str, *, first: bool = False) -> None:
        super().__init__(f"{part}: {reason}")
        self.part, self.reason, self.first = part, reason, first


class Stepper:
    """Adam on one loss module (``forward`` returns (loss, metrics)), wrapped in DDP when needed.

    :meth:`step` runs forward and backward, averages the loss, metrics and a gradient checksum
    over processes, and applies the update only if all are finite and the loss is within the
    divergence bound (else raises :class:`Diverged`).

    The bound: ``|loss| <= max_loss_ratio * scale``, where ``scale = max(1, |first loss|)`` is
    set by the part's first step (and saved in checkpoints); ``max_loss_ratio=None`` disables it.
    """

    def __init__(
        self,
        name: str,
        module: nn.Module,
        *,
        lr: float,
        betas: tuple[float, float],
        world: World,
        max_loss_ratio: float | None = None,
    ) -> None:
        self.name, self.module, self.world = name, module, world
        self.max_loss_ratio = max_loss_ratio
        self.scale: float | None = None
        self.params = [p for p in module.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(self.params, lr=lr, betas=betas)
        self.wrapped: nn.Module = module
        if world.enabled:
            from torch.nn.parallel import DistributedDataParallel

            # find_unused_parameters: a score never depends on, e.g., an energy's output bias.
            self.wrapped = DistributedDataParallel(module, find_unused_parameters=True)

    def set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def step(self, *inputs: Any) -> dict[str, float]:
        """One guarded Adam step; returns the global loss and metrics as floats."""
        loss, metrics = self.wrapped(*inputs)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        names = ["loss", *metrics]
        values = torch.stack([loss.detach(), *(m.detach().to(loss.dtype) for m in metrics.values())])
        grads = [p.grad for p in self.params if p.grad is not None]
        grad_sum = torch.stack([g.sum() for g in grads]).sum() if grads else loss.new_zeros(())
        values = self.world.mean(torch.cat([values, grad_sum.reshape(1)]))
        if not bool(torch.isfinite(values).all()):
            self.optimizer.zero_grad(set_to_none=True)
            raise Diverged(self.name, "loss or its gradient became NaN/inf", first=self.scale is None)
        self._check_bound(float(values[0]))
        self.optimizer.step()
        return dict(zip(names, values[:-1].tolist()))

    def _check_bound(self, loss: float) -> None:
        """Set the scale on the first step; raise :class:`Diverged` when ``|loss|`` passes the bound."""
        if self.scale is None:
            self.scale = max(1.0, abs(loss))
        elif self.max_loss_ratio is not None and abs(loss) > self.max_loss_ratio * self.scale:
            self.optimizer.zero_grad(set_to_none=True)
            raise Diverged(
                self.name,
                f"loss reached {loss:.3g}, beyond max_loss_ratio={self.max_loss_ratio:g} times its first scale "
                f"max(1, |first loss|) = {self.scale:.3g}",
            )

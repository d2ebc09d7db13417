"""Mini-batch orders: fresh batches drawn with replacement, or shuffled epochs.

Both samplers draw the indices of the *global* batch and hand back this process's contiguous
share of its rows (``rows = slice(lo, hi)``; the whole batch without DDP), so every process of
a distributed run sees the same global batch. Their state travels in the training checkpoint.

Example:
    >>> import torch
    >>> x = torch.arange(10.0).reshape(5, 2)
    >>> ep = EpochBatches(x, 2, seed=0)
    >>> [tuple(ep.next().shape) for _ in range(3)]     # 2 batches per epoch, the 5th row dropped
    [(2, 2), (2, 2), (2, 2)]
    >>> rb = ReplacementBatches(x, 3, generator=torch.Generator().manual_seed(0))
    >>> bool(torch.equal(rb.peek(), rb.next()))        # peek looks ahead without drawing
    True
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

__all__ = ["ReplacementBatches", "EpochBatches", "make_batches"]


class ReplacementBatches:
    """Every batch is ``batch_size`` indices drawn uniformly with replacement from ``generator``.

    Its only state is the generator's, which the trainer checkpoints itself.
    """

    order = "replacement"

    def __init__(self, data: Tensor, batch_size: int, *, generator: torch.Generator, rows: slice = slice(None)) -> None:
        self.data, self.batch_size, self.generator, self.rows = data, batch_size, generator, rows

    def next(self) -> Tensor:
        """This process's rows of the next global batch."""
        return self.data[self._indices()[self.rows]]

    def peek(self) -> Tensor:
        """The whole next global batch, without drawing it (the generator is left as it was)."""
        saved = self.generator.get_state()
        try:
            return self.data[self._indices()]
        finally:
            self.generator.set_state(saved)

    def _indices(self) -> Tensor:
        return torch.randint(0, self.data.shape[0], (self.batch_size,), generator=self.generator, device=self.data.device)

    def state_dict(self) -> dict[str, Any]:
        return {"order": self.order}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


class EpochBatches:
    """Shuffled passes over the data: batch k is slice ``k mod (n // b)`` of epoch ``k // (n // b)``.

    The order of epoch e is ``randperm(n)`` from a generator seeded with
    ``(seed · 1000003 + e) mod 2⁶³``, so the batch of every draw is a function of ``seed`` and
    the number of batches drawn before it (kept as ``drawn``); a resumed run sees the same
    batches as an uninterrupted one. ``batch_size`` is capped at n; the last incomplete batch of
    each epoch is dropped.
    """

    order = "epochs"

    def __init__(self, data: Tensor, batch_size: int, *, seed: int, rows: slice = slice(None)) -> None:
        self.data, self.seed, self.rows = data, int(seed), rows
        self.batch_size = min(batch_size, data.shape[0])
        self.per_epoch = data.shape[0] // self.batch_size
        self.drawn = 0
        self._epoch, self._perm = -1, torch.empty(0, dtype=torch.long)

    def next(self) -> Tensor:
        """This process's rows of the next global batch."""
        idx = self._indices()
        self.drawn += 1
        return self.data[idx[self.rows]]

    def peek(self) -> Tensor:
        """The whole next global batch, without drawing it."""
        return self.data[self._indices()]

    def _indices(self) -> Tensor:
        epoch, k = divmod(self.drawn, self.per_epoch)
        if epoch != self._epoch:
            shuffle = torch.Generator().manual_seed((self.seed * 1_000_003 + epoch) % 2**63)
            self._epoch, self._perm = epoch, torch.randperm(self.data.shape[0], generator=shuffle).to(self.data.device)
        return self._perm[k * self.batch_size : (k + 1) * self.batch_size]

    def state_dict(self) -> dict[str, Any]:
        return {"order": self.order, "seed": self.seed, "drawn": self.drawn}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.seed, self.drawn = int(state["seed"]), int(state["drawn"])
        self._epoch = -1


def make_batches(
    order: str, data: Tensor, batch_size: int, *, generator: torch.Generator, seed: int | None, rows: slice
) -> ReplacementBatches | EpochBatches:
    """The sampler for ``order``; an epoch order without ``seed`` draws its seed from ``generator``.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> make_batches("epochs", torch.zeros(8, 1), 4, generator=g, seed=3, rows=slice(None)).seed
        3
    """
    if order == "replacement":
        return ReplacementBatches(data, batch_size, generator=generator, rows=rows)
    if seed is None:
        seed = int(torch.randint(0, 2**31, (1,), generator=generator, device=generator.device))
    return EpochBatches(data, batch_size, seed=seed, rows=rows)

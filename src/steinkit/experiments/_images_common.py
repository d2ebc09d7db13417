"""Building blocks of the image reproductions: the image-data settings, data spaces, segmented
training, sampling helpers.

:class:`ImageData` holds the settings ``images`` and ``flow-eval`` share: which images, where
their files are, and the logit transform's squeeze ``alpha``.

A *space* maps 8-bit pixels to the space a model lives in and back:

* ``"logit"`` (Appendix B.6.2): dequantize ``x = (k + u) / 256``, squeeze
  ``s = alpha + (1 - 2 alpha) x`` and take ``logit(s)``; back with the sigmoid. The paper uses no
  squeeze; ``alpha = 1e-6`` only keeps the logit finite (|y| <= 13.8) and changes nothing visible.
* ``"standardized"``: dequantize, then subtract the per-pixel mean and divide by the per-pixel
  standard deviation of the training set; back by undoing both and clipping to [0, 1].

Training runs in *segments* (by default one epoch each). Every segment draws fresh
dequantization noise (seeded by the segment index, so a resumed run sees the same data) and
continues the trainer from the trial's checkpoint, which the trainer restores exactly.

Example:
    >>> pixels = torch.randint(0, 256, (10, 4), dtype=torch.uint8)
    >>> y = make_space("logit", pixels).encode(pixels, generator=torch.Generator().manual_seed(0))
    >>> y.shape, y.dtype
    (torch.Size([10, 4]), torch.float32)
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Sequence

import torch
from torch import Tensor, nn

from ..data import dequantize, inverse_logit, logit
from ..train import TrainResult, load_checkpoint, save_checkpoint, train
from .settings import ReproductionSettings, setting

__all__ = ["ImageData", "SPACES", "Space", "make_space", "train_in_segments", "snapshot_path", "summarize_history"]

SPACES: tuple[str, ...] = ("logit", "standardized")


@dataclasses.dataclass(frozen=True)
class ImageData(ReproductionSettings):
    """Settings of a reproduction on images: the data set, the folder of its IDX files and the
    squeeze ``alpha`` of the logit transform (Appendix B.6.2), which must lie in [0, 0.5)."""

    dataset: Literal["fashion-mnist", "mnist", "digits"] = setting("fashion-mnist", "training/test images")
    data_root: str = setting("", "folder with the IDX files (needed for mnist; empty: the dataset's standard place)")
    alpha: float = setting(0.0, "logit squeeze alpha (the paper uses 0)", minimum=0.0)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.alpha >= 0.5:
            raise ValueError(f"alpha must lie in [0, 0.5), got {self.alpha!r}")


@dataclass(frozen=True)
class Space:
    """A map between 8-bit pixels and a model space (see the module docstring).

    Attributes:
        name: ``"logit"`` or ``"standardized"``.
        alpha: the logit squeeze (``"logit"`` only).
        mean, std: per-pixel statistics of the dequantized training pixels (``"standardized"``).
    """

    name: str
    alpha: float = 1e-6
    mean: Tensor | None = None
    std: Tensor | None = None

    def encode(self, pixels: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        """Dequantize uint8 ``pixels`` (n, d) with fresh noise (from ``generator``, on the pixels'
        device) and map them into the space (float32)."""
        return self.from_unit(dequantize(pixels, generator=generator))

    def from_unit(self, x01: Tensor) -> Tensor:
        """Map values in (0, 1) into the space."""
        if self.name == "logit":
            return logit(x01, self.alpha)
        assert self.mean is not None and self.std is not None
        return (x01 - self.mean.to(x01)) / self.std.to(x01)

    def decode(self, y: Tensor) -> Tensor:
        """Map points of the space back to pixel intensities in [0, 1] (for display)."""
        y = y.detach().float().cpu()
        if self.name == "logit":
            x01 = inverse_logit(y, self.alpha)
        else:
            assert self.mean is not None and self.std is not None
            x01 = y * self.std + self.mean
        return torch.nan_to_num(x01, nan=0.5).clamp(0.0, 1.0)

    def uniform(self, n: int, d: int, *, generator: torch.Generator | None = None) -> Tensor:
        """``n`` points drawn uniformly over the data space: pixels U(0, 1) mapped into the space."""
        u = torch.rand(n, d, generator=generator).clamp(1e-7, 1 - 1e-7)
        return self.from_unit(u)

    def describe(self) -> str:
        if self.name == "logit":
            return f"dequantize (k+U(0,1))/256, then logit(alpha + (1-2 alpha) x) with alpha={self.alpha:g}"
        return "dequantize (k+U(0,1))/256, then per-pixel standardization with training-set mean and std"


def make_space(name: str, pixels: Tensor, *, alpha: float = 1e-6, min_std: float = 1e-3) -> Space:
    """Build the space ``name`` (one of :data:`SPACES`) for the training ``pixels`` (uint8, (n, d)).

    For ``"standardized"`` the per-pixel mean and std of the dequantized pixels are computed
    exactly from the integer values (dequantization adds 1/12 of a level squared to the variance).
    """
    if name not in SPACES:
        raise ValueError(f"space must be one of {SPACES}, got {name!r}")
    if name == "logit":
        return Space("logit", alpha=float(alpha))
    k = pixels.double()
    mean = (k.mean(0) + 0.5) / 256.0
    std = torch.sqrt(k.var(0, unbiased=False) + 1.0 / 12.0) / 256.0
    return Space("standardized", mean=mean.float(), std=std.clamp_min(min_std).float())


def train_in_segments(
    model: nn.Module,
    pixels: Tensor,
    space: Space,
    *,
    steps: int,
    segment: int,
    checkpoint: Path,
    seed: int,
    device: torch.device,
    progress: bool = True,
    keep_steps: Sequence[int] = (),
    **train_kwargs: Any,
) -> tuple[TrainResult, int, float]:
    """Train ``model`` for ``steps`` model updates, redrawing the dequantization noise every ``segment`` steps.

    Each segment continues the trainer from ``checkpoint`` (which is also how an interrupted run
    resumes: segments already done are skipped). ``pixels`` (uint8) may already live on ``device``
    so that the dequantization runs there. Segment ``k`` dequantizes with seed
    ``seed * 100003 + k``, so the data seen at every step is the same whether or not a run was
    interrupted. Returns the last segment's :class:`TrainResult` (its ``steps``, ``history`` and
    ``seconds`` cover the whole run; its ``resumed_from`` is only that segment's start), the step
    the checkpoint held when this call began (0 for a fresh run), and the seconds spent
    preparing data. At the end of each segment that reaches a step of ``keep_steps``, the model's
    weights are also kept as :func:`snapshot_path` (for measuring it along training).
    """
    result: TrainResult | None = None
    done = 0
    if checkpoint.exists():
        done = int(load_checkpoint(checkpoint).get("step", 0))
    prep = 0.0
    n_segments = math.ceil(steps / segment)
    for k in range(n_segments):
        target = min(steps, (k + 1) * segment)
        if target <= done and k < n_segments - 1:
            continue  # finished before an interruption; the checkpoint holds its result
        t0 = time.perf_counter()
        g = torch.Generator(device=pixels.device).manual_seed(seed * 100003 + k)
        data = space.encode(pixels, generator=g).to(device)
        prep += time.perf_counter() - t0
        result = train(
            model,
            data,
            steps=target,
            checkpoint=checkpoint,
            resume=True,
            seed=seed,
            progress=progress,
            **train_kwargs,
        )
        del data
        if result.diverged_at is not None:
            break
        if any(k * segment < step <= target for step in keep_steps):
            save_checkpoint({"step": target, "model": model.state_dict()}, snapshot_path(checkpoint.parent, target))
    assert result is not None
    return result, done, prep


def snapshot_path(folder: Path, step: int) -> Path:
    """Where :func:`train_in_segments` keeps the model's weights after ``step`` updates.

    Example:
        >>> snapshot_path(Path("trial"), 600).name
        'model-step0000600.pt'
    """
    return folder / f"model-step{step:07d}.pt"


def summarize_history(history: tuple[dict, ...] | list[dict], keys: tuple[str, ...] = ("loss", "lsd", "critic_loss"),
                      last: int = 5) -> dict[str, float]:
    """Mean of each metric over the last ``last`` history records that have it (``nan`` if none)."""
    out: dict[str, float] = {}
    for key in keys:
        values = [float(row[key]) for row in history if key in row][-last:]
        out[key] = sum(values) / len(values) if values else float("nan")
    return out

"""Save a batch of grey-scale images as one PNG grid (matplotlib only, no display needed)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch

from .._optional import paper_module
from ..validation import wrong_type

__all__ = ["make_image_grid", "save_image_grid"]


def make_image_grid(
    images: torch.Tensor | np.ndarray,
    *,
    shape: tuple[int, int] = (28, 28),
    nrow: int | None = None,
    padding: int = 2,
    pad_value: float = 1.0,
) -> np.ndarray:
    """Tile images into one 2-D float array.

    Arguments:
        images: ``(n, h*w)`` or ``(n, h, w)`` values in ``[0, 1]``.
        shape: ``(h, w)`` of one image when ``images`` is flat.
        nrow: images per row; defaults to ``ceil(sqrt(n))``.
        padding: pixels of border between and around images.
        pad_value: grey level of the border.

    Returns:
        A float64 array of shape ``(rows*(h+p)+p, nrow*(w+p)+p)``.

    Example:
        >>> make_image_grid(np.zeros((3, 4)), shape=(2, 2), nrow=2, padding=1).shape
        (7, 7)
    """
    if isinstance(images, torch.Tensor):
        images = images.detach().cpu().numpy()
    if not isinstance(images, np.ndarray):
        raise wrong_type("images", "a torch.Tensor or numpy array", images)
    if (
        not isinstance(shape, tuple)
        or len(shape) != 2
        or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in shape)
    ):
        raise ValueError(f"shape must be a pair of positive ints (h, w), got {shape!r}")
    h, w = shape
    if images.ndim == 2:
        if images.shape[1] != h * w:
            raise ValueError(
                f"images must have shape (n, {h * w}) for shape={shape}, got {images.shape}"
            )
        images = images.reshape(-1, h, w)
    elif images.ndim == 3:
        if images.shape[1:] != (h, w):
            raise ValueError(f"images must have shape (n, {h}, {w}), got {images.shape}")
    else:
        raise ValueError(f"images must have shape (n, h*w) or (n, h, w), got {images.shape}")
    n = images.shape[0]
    if n < 1:
        raise ValueError("images must contain at least one image")
    images = images.astype(np.float64)
    if not np.all(np.isfinite(images)) or images.min() < 0.0 or images.max() > 1.0:
        raise ValueError("images must be finite with values in [0, 1]")
    if nrow is None:
        nrow = math.ceil(math.sqrt(n))
    if isinstance(nrow, bool) or not isinstance(nrow, int) or nrow < 1:
        raise ValueError(f"nrow must be a positive int or None, got {nrow!r}")
    if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
        raise ValueError(f"padding must be a non-negative int, got {padding!r}")
    ncol = min(nrow, n)
    rows = math.ceil(n / ncol)
    p = padding
    grid = np.full((rows * (h + p) + p, ncol * (w + p) + p), float(pad_value))
    for i in range(n):
        r, c = divmod(i, ncol)
        top, left = p + r * (h + p), p + c * (w + p)
        grid[top : top + h, left : left + w] = images[i]
    return grid


def save_image_grid(
    images: torch.Tensor | np.ndarray,
    path: str | os.PathLike[str],
    *,
    shape: tuple[int, int] = (28, 28),
    nrow: int | None = None,
) -> Path:
    """Write images in ``[0, 1]`` as a grey-scale PNG grid and return its path.

    Uses :func:`matplotlib.image.imsave`, which needs no display or GUI backend. Parent
    directories are created.

    Arguments:
        images: ``(n, h*w)`` or ``(n, h, w)`` values in ``[0, 1]`` (e.g. ``sigmoid`` of
            logit-space samples).
        path: output file, normally ending in ``.png``.
        shape: ``(h, w)`` of one image.
        nrow: images per row; defaults to ``ceil(sqrt(n))``.

    Example:
        >>> import tempfile
        >>> out = save_image_grid(torch.rand(16, 784), Path(tempfile.mkdtemp()) / "grid.png")
        >>> out.suffix
        '.png'
    """
    imsave = paper_module("matplotlib.image", "save_image_grid").imsave

    grid = make_image_grid(images, shape=shape, nrow=nrow)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    imsave(out, grid, cmap="gray", vmin=0.0, vmax=1.0)
    return out

"""Pictures of fitted critics: where, and in which direction, a model departs from the data.

* :func:`plot_field` (2-D data): the critic's field f over the data's range, arrows on a grid
  over a map of its magnitude ‖f‖, with the data on top; one panel per model.
* :func:`plot_images` (images as flat vectors): for the k points with the largest Stein terms
  (the worst fitted), their mean image and the critic's mean there as an image, red where the
  model's score exceeds the data's (f > 0) and blue where it falls short; one row per model.

Example:
    >>> import tempfile, torch, steinkit as sk
    >>> x = torch.randn(300, 2, generator=torch.Generator().manual_seed(0))
    >>> est = sk.stein_discrepancy(sk.models.Gaussian(torch.ones(2), torch.eye(2)), x, n_iters=50,
    ...                            hidden=16, return_critic=True)
    >>> plot_field({"shifted": est.critic}, x, tempfile.mkdtemp() + "/field.png").suffix
    '.png'
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Mapping

import torch

from ._optional import paper_module
from .validation import as_data, positive_int
from .witness import FittedCritic, Witness

__all__ = ["plot_field", "plot_images", "image_shape"]


def _named(items: Any, kind: type, what: str) -> dict[str, Any]:
    named = {"": items} if isinstance(items, kind) else dict(items) if isinstance(items, Mapping) else None
    if not named or not all(isinstance(v, kind) for v in named.values()):
        raise TypeError(f"{what} must be a {kind.__name__} or a non-empty mapping of name -> {kind.__name__}, "
                        f"got type {type(items).__name__}")
    return named


def plot_field(critics: FittedCritic | Mapping[str, FittedCritic], x: Any, path: str | os.PathLike,
               *, grid: int = 20) -> Path:
    """Save the critics' fields over 2-D data x: arrows of f on a ``grid`` × ``grid`` lattice over a
    map of ‖f‖, data as dots. Returns the path.

    Arguments:
        critics: a :class:`~steinkit.witness.FittedCritic` or a mapping name -> critic (a panel each).
        x: the data, (n, 2).
        path: the image file to write (its suffix picks the format).
        grid: arrows per side.
    """
    Figure = paper_module("matplotlib.figure", "drawing a witness").Figure

    named = _named(critics, FittedCritic, "critics")
    data = as_data(x, "x", dim=2, min_rows=2).detach().cpu().double()
    grid = positive_int(grid, "grid")
    lo, hi = data.min(0).values, data.max(0).values
    pad = 0.1 * (hi - lo).clamp(min=1e-3)
    axes_1d = [torch.linspace(float(lo[i] - pad[i]), float(hi[i] + pad[i]), grid, dtype=torch.float64) for i in (0, 1)]
    gx, gy = torch.meshgrid(*axes_1d, indexing="xy")
    points = torch.stack([gx.flatten(), gy.flatten()], 1)
    fig = Figure(figsize=(4.4 * len(named), 4.0), layout="constrained")
    for ax, (name, fitted) in zip(fig.subplots(1, len(named), squeeze=False)[0], named.items()):
        f = fitted(points).detach().cpu().double()
        magnitude = f.norm(dim=1).reshape(grid, grid)
        image = ax.pcolormesh(gx.numpy(), gy.numpy(), magnitude.numpy(), shading="auto", cmap="viridis")
        ax.quiver(gx.numpy(), gy.numpy(), f[:, 0].reshape(grid, grid).numpy(), f[:, 1].reshape(grid, grid).numpy(),
                  color="white", width=0.004)
        ax.scatter(data[:, 0].numpy(), data[:, 1].numpy(), s=3, color="black", alpha=0.4)
        ax.set(title=f"{name}: critic f (arrows), ‖f‖ (colour)" if name else "critic f (arrows), ‖f‖ (colour)",
               xlabel="x₁", ylabel="x₂")
        fig.colorbar(image, ax=ax, label="‖f‖")
    path = Path(path)
    fig.savefig(path, dpi=110)
    return path


def image_shape(dim: int) -> tuple[int, int]:
    """The (side, side) shape of square images with ``dim`` pixels.

    Example:
        >>> image_shape(784)
        (28, 28)
    """
    side = math.isqrt(dim)
    if side * side != dim:
        raise ValueError(f"x's dimension {dim} is not a square number of pixels: give shape=(height, width)")
    return side, side


def plot_images(witnesses: Witness | Mapping[str, Witness], path: str | os.PathLike, *, k: int = 16,
                shape: tuple[int, int] | None = None) -> Path:
    """Save, per witness, the mean of its k worst-fitted points and the critic's mean over them
    as images (flat vectors reshaped to ``shape``, default square). Returns the path.

    Arguments:
        witnesses: a :class:`~steinkit.witness.Witness` (from :func:`steinkit.witness` on
            held-out points) or a mapping name -> witness (a row each).
        path: the image file to write.
        k: how many of the points with the largest Stein terms to average.
        shape: (height, width) of one image; default: square.
    """
    Figure = paper_module("matplotlib.figure", "drawing a witness").Figure

    named = _named(witnesses, Witness, "witnesses")
    fig = Figure(figsize=(6.0, 3.0 * len(named)), layout="constrained")
    axes = fig.subplots(len(named), 2, squeeze=False)
    for row, (name, w) in zip(axes, named.items()):
        h, wd = shape if shape is not None else image_shape(w.x.shape[1])
        if h * wd != w.x.shape[1]:
            raise ValueError(f"shape {shape} has {h * wd} pixels but the points have {w.x.shape[1]}")
        worst = w.worst(k)
        mean_x = w.x[worst].mean(0).detach().cpu().reshape(h, wd).numpy()
        mean_f = w.field[worst].mean(0).detach().cpu().reshape(h, wd).numpy()
        row[0].imshow(mean_x, cmap="gray")
        limit = float(abs(mean_f).max()) or 1.0
        image = row[1].imshow(mean_f, cmap="RdBu_r", vmin=-limit, vmax=limit)
        label = f"{name}\n" if name else ""   # the model's name on a line of its own: long names fit
        row[0].set_title(f"{label}mean of the {len(worst)} worst-fitted points", fontsize=9)
        row[1].set_title(f"{label}mean critic there", fontsize=9)
        for ax in row:
            ax.set_axis_off()
        fig.colorbar(image, ax=row[1], shrink=0.8)
    path = Path(path)
    fig.savefig(path, dpi=110)
    return path


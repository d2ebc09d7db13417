"""Classic two-dimensional toy densities used to illustrate EBMs and flows.

Each generator draws i.i.d. points from a fixed mixture-like distribution in the plane,
scaled so that almost all of its mass lies in ``[-4, 4]^2``. The sets follow the usual
definitions of the flow / EBM literature (two moons, eight Gaussians, pinwheel, swiss roll,
two circles, checkerboard, two spirals, four rings); they are written here in plain torch
so that the only source of randomness is the ``generator`` argument.
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import torch
from torch import Tensor

from ..validation import as_generator, positive_int

__all__ = ["TOY_DATASETS", "sample_toy"]

TOY_DATASETS: tuple[str, ...] = (
    "moons",
    "8gaussians",
    "pinwheel",
    "swissroll",
    "circles",
    "checkerboard",
    "2spirals",
    "rings",
)

_Sampler = Callable[[int, Optional[torch.Generator], torch.device], Tensor]


def _rand(n: int, g: torch.Generator | None, dev: torch.device) -> Tensor:
    return torch.rand(n, generator=g, device=dev, dtype=torch.float64)


def _randn(shape: tuple[int, ...], g: torch.Generator | None, dev: torch.device) -> Tensor:
    return torch.randn(shape, generator=g, device=dev, dtype=torch.float64)


def _choice(n: int, k: int, g: torch.Generator | None, dev: torch.device) -> Tensor:
    """Component labels drawn uniformly from ``{0, ..., k-1}``."""
    return torch.randint(0, k, (n,), generator=g, device=dev)


def _moons(n: int, g: torch.Generator | None, dev: torch.device) -> Tensor:
    # Upper moon: (cos t, sin t); lower moon: (1 - cos t, 0.5 - sin t), t ~ U(0, pi).
    t = math.pi * _rand(n, g, dev)
    lower = _choice(n, 2, g, dev).to(torch.float64)
    x = torch.cos(t) * (1 - 2 * lower) + lower
    y = torch.sin(t) * (1 - 2 * lower) + 0.5 * lower
    pts = torch.stack([x, y], dim=1) + 0.1 * _randn((n, 2), g, dev)
    return 2.0 * pts + torch.tensor([-1.0, -0.2], dtype=torch.float64, device=dev)


def _eight_gaussians(n: int, g: torch.Generator | None, dev: torch.device) -> Tensor:
    # Eight isotropic Gaussians (std 0.5) centred on a circle of radius 4, then scaled by 1/sqrt(2).
    angle = _choice(n, 8, g, dev).to(torch.float64) * (math.pi / 4)
    centres = 4.0 * torch.stack([torch.cos(angle), torch.sin(angle)], dim=1)
    return (centres + 0.5 * _randn((n, 2), g, dev)) / math.sqrt(2.0)


def _pinwheel(n: int, g: torch.Generator | None, dev: torch.device) -> Tensor:
    # Five arms; along an arm the radius is N(1, 0.3^2), across it N(0, 0.1^2), and the
    # arm twists by 0.25 * exp(radius) radians.
    arm = _choice(n, 5, g, dev).to(torch.float64)
    radial = 1.0 + 0.3 * _randn((n,), g, dev)
    tangential = 0.1 * _randn((n,), g, dev)
    angle = arm * (2 * math.pi / 5) + 0.25 * torch.exp(radial)
    c, s = torch.cos(angle), torch.sin(angle)
    x = c * radial - s * tangential
    y = s * radial + c * tangential
    return 2.0 * torch.stack([x, y], dim=1)


def _swissroll(n: int, g: torch.Generator | None, dev: torch.device) -> Tensor:
    # Archimedean spiral (t cos t, t sin t), t ~ U(1.5 pi, 4.5 pi), unit Gaussian noise, / 5.
    t = 1.5 * math.pi * (1.0 + 2.0 * _rand(n, g, dev))
    pts = torch.stack([t * torch.cos(t), t * torch.sin(t)], dim=1) + _randn((n, 2), g, dev)
    return pts / 5.0


def _circles(n: int, g: torch.Generator | None, dev: torch.device) -> Tensor:
    # Two concentric circles of radius 1 and 0.5 with N(0, 0.08^2) noise, scaled by 3.
    t = 2 * math.pi * _rand(n, g, dev)
    radius = 1.0 - 0.5 * _choice(n, 2, g, dev).to(torch.float64)
    pts = radius[:, None] * torch.stack([torch.cos(t), torch.sin(t)], dim=1)
    return 3.0 * (pts + 0.08 * _randn((n, 2), g, dev))


def _checkerboard(n: int, g: torch.Generator | None, dev: torch.device) -> Tensor:
    # Uniform on the 8 "black" squares of a 4x4 board of side-2 squares covering [-4, 4]^2:
    # a point lies in column i and row j (both in {-2, ..., 1}) only when i + j is even.
    col = _choice(n, 4, g, dev) - 2
    row = 2 * _choice(n, 2, g, dev) - 2 + torch.remainder(col, 2)
    x = col.to(torch.float64) + _rand(n, g, dev)
    y = row.to(torch.float64) + _rand(n, g, dev)
    return 2.0 * torch.stack([x, y], dim=1)


def _two_spirals(n: int, g: torch.Generator | None, dev: torch.device) -> Tensor:
    # Two interleaved spirals (point reflections of each other) with angle t = 3 pi sqrt(U).
    t = 3 * math.pi * torch.sqrt(_rand(n, g, dev))
    x = -t * torch.cos(t) + 0.5 * _rand(n, g, dev)
    y = t * torch.sin(t) + 0.5 * _rand(n, g, dev)
    sign = 1.0 - 2.0 * _choice(n, 2, g, dev).to(torch.float64)
    pts = sign[:, None] * torch.stack([x, y], dim=1) / 3.0
    return pts + 0.1 * _randn((n, 2), g, dev)


def _rings(n: int, g: torch.Generator | None, dev: torch.device) -> Tensor:
    # Four concentric rings of radius 0.75, 1.5, 2.25, 3 (equal weight), N(0, 0.08^2) noise.
    t = 2 * math.pi * _rand(n, g, dev)
    radius = 0.75 * (1 + _choice(n, 4, g, dev).to(torch.float64))
    pts = radius[:, None] * torch.stack([torch.cos(t), torch.sin(t)], dim=1)
    return pts + 0.08 * _randn((n, 2), g, dev)


_SAMPLERS: dict[str, _Sampler] = {
    "moons": _moons,
    "8gaussians": _eight_gaussians,
    "pinwheel": _pinwheel,
    "swissroll": _swissroll,
    "circles": _circles,
    "checkerboard": _checkerboard,
    "2spirals": _two_spirals,
    "rings": _rings,
}


def sample_toy(
    name: str,
    n: int,
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Draw ``n`` i.i.d. points from a named 2-D toy distribution.

    Points are computed in float64 on the generator's device (CPU when ``generator`` is
    ``None``) and then cast to ``dtype``, so float32 and float64 draws with the same seed agree
    up to rounding.

    Arguments:
        name: one of :data:`TOY_DATASETS`.
        n: number of points, at least 1.
        generator: the source of randomness; the same seed gives the same points.
        dtype: floating dtype of the result.

    Returns:
        A tensor of shape ``(n, 2)``.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> x = sample_toy("8gaussians", 500, generator=g)
        >>> x.shape, x.dtype
        (torch.Size([500, 2]), torch.float32)
    """
    if not isinstance(name, str) or name not in _SAMPLERS:
        raise ValueError(f"name must be one of {', '.join(TOY_DATASETS)}; got {name!r}")
    n = positive_int(n, "n")
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating torch.dtype, got {dtype!r}")
    as_generator(generator=generator)
    device = generator.device if generator is not None else torch.device("cpu")
    return _SAMPLERS[name](n, generator, device).to(dtype)

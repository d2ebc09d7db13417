"""Bandwidths of a kernel: a positive number, a rule ("median") or a collection for aggregation.

A kernel's ``bandwidth`` is resolved against the data a test sees: ``"median"`` is the median
distance between rows (:func:`median_bandwidth`), and a :class:`Bandwidths` collection is a
tuple of scales times a base (a number, or the median). KSDAgg's default collection is
``Bandwidths.powers_of_two(-20, 0)``: 2^ℓ·λ_med for ℓ = −20, ..., 0.

Example:
    >>> import torch
    >>> x = torch.tensor([[0.0], [1.0], [3.0]])
    >>> median_bandwidth(x)
    2.0
    >>> Bandwidths.powers_of_two(-1, 0).values(x)
    (1.0, 2.0)
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch import Tensor

from ..validation import as_data, as_generator, integer, positive_float, wrong_type

__all__ = ["RULES", "Bandwidths", "median_bandwidth", "check_bandwidth"]

RULES = ("median",)


def _sq_dists(x: Tensor, y: Tensor) -> Tensor:
    """Pairwise squared distances via Gram matrices, clamped at 0."""
    d2 = (x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2.0 * (x @ y.T)
    return d2.clamp_min_(0.0)


def median_bandwidth(x: Tensor, *, max_points: int = 2000, generator: torch.Generator | None = None) -> float:
    """Median heuristic: the median Euclidean distance over distinct pairs of rows of ``x``.

    Above ``max_points`` rows a random subset of ``max_points`` rows is used; the subset
    is drawn from ``generator``, or from a fixed seed (0) when ``generator`` is None, so
    the heuristic is deterministic. If the median is 0 (many tied points) the median of
    the positive distances is used; if all points coincide the bandwidth is 1.0.

    Arguments:
        x: data, shape (n, d), n >= 2.
        max_points: subsample size above which rows are subsampled.
        generator: torch.Generator for the subsample.

    Returns:
        The bandwidth h (float), e.g. for ``k = exp(-||x-y||^2 / (2 h^2))``.

    Example:
        >>> import torch
        >>> median_bandwidth(torch.tensor([[0.0], [1.0], [3.0]]))
        2.0
    """
    x64 = as_data(x, "x", tensors_only=True, dtype=torch.float64, min_rows=2, what="the median heuristic").detach()
    max_points = integer(max_points, "max_points", minimum=2)
    as_generator(generator=generator)
    n = x64.shape[0]
    if n > max_points:
        gen = generator if generator is not None else torch.Generator().manual_seed(0)
        idx = torch.randperm(n, generator=gen, device=gen.device)[:max_points]
        x64 = x64[idx.to(x64.device)]
        n = max_points
    x64 = x64 - x64.mean(0)
    iu = torch.triu_indices(n, n, offset=1, device=x64.device)
    dist = _sq_dists(x64, x64)[iu[0], iu[1]].sqrt()
    med = float(dist.median())
    if med <= 0.0:
        pos = dist[dist > 0]
        med = float(pos.median()) if pos.numel() > 0 else 1.0
    return med


def _base(value: Any, name: str) -> float | str:
    if isinstance(value, str):
        if value not in RULES:
            raise ValueError(f"{name} must be a positive number or one of {RULES}, got {value!r}")
        return value
    return positive_float(value, name)


@dataclass(frozen=True)
class Bandwidths:
    """A collection of bandwidths ``base * scale`` for the scales given; ``base`` is a positive
    number or ``"median"`` (the median distance between rows of the data the test sees).

    Arguments:
        scales: positive numbers (at least one).
        base: what the scales multiply; ``Bandwidths([0.5, 1.0, 2.0], base=1.0)`` are three
            fixed bandwidths.

    Example:
        >>> Bandwidths([0.5, 2.0], base=3.0).values()
        (1.5, 6.0)
        >>> Bandwidths.powers_of_two(-20, 0)
        Bandwidths.powers_of_two(-20, 0)
        >>> len(Bandwidths.powers_of_two(-20, 0))
        21
    """

    scales: tuple[float, ...]
    base: float | str = "median"

    def __post_init__(self) -> None:
        if isinstance(self.scales, (str, bytes)) or not isinstance(self.scales, Sequence):
            raise wrong_type("scales", "a sequence of positive numbers", self.scales)
        scales = tuple(positive_float(v, "scales") for v in self.scales)
        if not scales:
            raise ValueError("scales must hold at least one bandwidth, got none")
        object.__setattr__(self, "scales", scales)
        object.__setattr__(self, "base", _base(self.base, "base"))

    @classmethod
    def powers_of_two(cls, lo: int, hi: int, base: float | str = "median") -> Bandwidths:
        """The collection ``base * 2^ℓ`` for ℓ = lo, ..., hi.

        Example:
            >>> Bandwidths.powers_of_two(-2, 0, base=4.0).values()
            (1.0, 2.0, 4.0)
        """
        lo = integer(lo, "lo", minimum=-1074)
        hi = integer(hi, "hi", minimum=lo)
        return cls(tuple(2.0**ell for ell in range(lo, hi + 1)), base)

    def __len__(self) -> int:
        return len(self.scales)

    def values(self, x: Tensor | None = None) -> tuple[float, ...]:
        """The bandwidths for data ``x`` (needed when the base is a rule).

        Example:
            >>> import torch
            >>> Bandwidths([1.0, 2.0]).values(torch.tensor([[0.0], [2.0]]))
            (2.0, 4.0)
        """
        if isinstance(self.base, str):
            if x is None:
                raise ValueError(f"x is needed to resolve the base {self.base!r} of {self!r}")
            base = median_bandwidth(x)
        else:
            base = self.base
        return tuple(base * scale for scale in self.scales)

    def __repr__(self) -> str:
        exps = [math.log2(s) for s in self.scales]
        if all(e == int(e) for e in exps) and [int(e) for e in exps] == list(range(int(exps[0]), int(exps[-1]) + 1)):
            base = "" if self.base == "median" else f", base={self.base!r}"
            return f"Bandwidths.powers_of_two({int(exps[0])}, {int(exps[-1])}{base})"
        return f"Bandwidths({self.scales!r}, base={self.base!r})"


def check_bandwidth(value: Any, name: str = "bandwidth") -> float | str | Bandwidths | Tensor:
    """A kernel's bandwidth: a positive number, a rule of :data:`RULES`, a :class:`Bandwidths`
    collection, a sequence of positive numbers (fixed bandwidths) or a positive 0-d tensor (kept
    as is, so that a test can optimise it by autograd).

    Example:
        >>> check_bandwidth([0.5, 3.0])
        Bandwidths((0.5, 3.0), base=1.0)
        >>> check_bandwidth(0)
        Traceback (most recent call last):
        ...
        ValueError: bandwidth must be a finite number > 0, got 0
    """
    if isinstance(value, Bandwidths):
        return value
    if isinstance(value, str):
        return _base(value, name)
    if isinstance(value, Tensor) and value.dim() == 0 and value.is_floating_point():
        if not bool(value.detach() > 0) or not bool(torch.isfinite(value.detach())):
            raise ValueError(f"{name} must be a finite number > 0, got {float(value)!r}")
        return value
    if isinstance(value, Sequence) and not isinstance(value, bytes):
        return Bandwidths(tuple(value), base=1.0)
    if isinstance(value, numbers.Real) or isinstance(value, Tensor):
        return positive_float(value, name)
    raise wrong_type(name, "a positive number, 'median', a Bandwidths collection or a list of numbers", value)

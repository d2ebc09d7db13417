"""Shuffled train/validation/test splits of a data set (the first step of Algorithms 1 and 2).

Example:
    >>> import torch
    >>> tr, va, te = split_data(torch.randn(1000, 3))
    >>> (len(tr), len(va), len(te))
    (800, 100, 100)
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import Tensor

__all__ = ["split_data", "check_split", "split_sizes"]


def check_split(split: Any, name: str = "split") -> tuple[float, float, float]:
    """Three positive fractions summing to at most 1, as a tuple of floats.

    Example:
        >>> check_split([0.6, 0.2, 0.2])
        (0.6, 0.2, 0.2)
    """
    ok = isinstance(split, (tuple, list)) and len(split) == 3
    ok = ok and all(isinstance(f, (int, float)) and not isinstance(f, bool) and f > 0 for f in split)
    if not ok or sum(split) > 1 + 1e-9:
        raise ValueError(f"{name} must be three positive fractions summing to at most 1, got {split!r}")
    return (float(split[0]), float(split[1]), float(split[2]))


def split_sizes(n: int, split: Sequence[float]) -> tuple[int, int, int]:
    """Sizes of the train/validation/test parts of n points (each at least 2).

    When the fractions sum to 1 the test part takes what is left after rounding.

    Example:
        >>> split_sizes(1000, (0.8, 0.1, 0.1))
        (800, 100, 100)
    """
    split = check_split(split)
    n_train = int(round(split[0] * n))
    n_val = int(round(split[1] * n))
    n_test = n - n_train - n_val if abs(sum(split) - 1) < 1e-9 else int(round(split[2] * n))
    if min(n_train, n_val, n_test) < 2:
        raise ValueError(
            f"x has too few samples (n={n}) for split {tuple(split)}: each of train/val/test "
            f"needs at least 2, got {n_train}/{n_val}/{n_test}"
        )
    return n_train, n_val, n_test


def split_data(
    x: Tensor, split: Sequence[float] = (0.8, 0.1, 0.1), *, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """Shuffle the rows of x and cut them into train/validation/test parts with the given fractions.

    Arguments:
        x: data, (n, ...).
        split: three positive fractions summing to at most 1.
        generator: random generator of the shuffle (the rows are cut on x's device).

    Returns:
        (train, validation, test) rows of x.

    Example:
        >>> tr, va, te = split_data(torch.arange(10.0)[:, None], (0.6, 0.2, 0.2),
        ...                         generator=torch.Generator().manual_seed(0))
        >>> sorted(torch.cat([tr, va, te]).flatten().tolist()) == list(range(10))
        True
    """
    n = x.shape[0]
    n_train, n_val, n_test = split_sizes(n, split)
    on = generator.device if generator is not None else "cpu"
    perm = torch.randperm(n, generator=generator, device=on).to(x.device)
    return (
        x[perm[:n_train]],
        x[perm[n_train : n_train + n_val]],
        x[perm[n_train + n_val : n_train + n_val + n_test]],
    )

"""Checks of scalar arguments: ints, reals, fractions, probabilities, choices, flags, seeds and
generators; and :func:`wrong_type`, the error every check raises for an argument of the wrong
type. Booleans are never accepted as numbers.

Example:
    >>> positive_float("0.5", "lam")
    Traceback (most recent call last):
    ...
    TypeError: lam must be a real number, got type str ('0.5')
"""

from __future__ import annotations

import math
import numbers
import operator
from typing import Any, Sequence

import torch
from torch import Tensor

__all__ = ["wrong_type", "integer", "positive_int", "nonneg_int", "real", "positive_float", "nonneg_float", "fraction",
           "probability", "one_of", "flag", "seed_value", "seed_from", "as_generator"]


def wrong_type(name: str, expected: str, value: Any) -> TypeError:
    """The error for an argument of the wrong type: it names the argument, what it must be,
    and the type (and value) it got. Raise it: ``raise wrong_type("n_iters", "an int", 2.5)``.

    Example:
        >>> print(wrong_type("lam", "a real number", "0.5"))
        lam must be a real number, got type str ('0.5')
    """
    shown = repr(value)
    shown = shown if len(shown) <= 40 else shown[:37] + "..."
    return TypeError(f"{name} must be {expected}, got type {type(value).__name__} ({shown})")



def integer(value: Any, name: str, *, minimum: int) -> int:
    """An int (not a bool) ``>= minimum``; numpy and torch integers are accepted.

    Example:
        >>> integer(2, "grid_size", minimum=2)
        2
    """
    if isinstance(value, bool):
        raise wrong_type(name, "an int", value)
    try:
        value = operator.index(value)
    except TypeError:
        raise wrong_type(name, "an int", value) from None
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def positive_int(value: Any, name: str) -> int:
    """An int >= 1.

    Example:
        >>> positive_int(3, "n_iters")
        3
    """
    return integer(value, name, minimum=1)


def nonneg_int(value: Any, name: str) -> int:
    """An int >= 0.

    Example:
        >>> nonneg_int(0, "burn_in")
        0
    """
    return integer(value, name, minimum=0)


def _real_or_nan(value: Any, name: str, expected: str = "a real number") -> float:
    if isinstance(value, Tensor):
        if value.numel() != 1 or value.is_complex():
            raise ValueError(f"{name} must be a real scalar, got a tensor of shape {tuple(value.shape)}")
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise wrong_type(name, expected, value)
    return float(value)


def real(value: Any, name: str) -> float:
    """A finite real number (not a bool; a one-element tensor is fine) as a float.

    Example:
        >>> real(1, "step_size")
        1.0
    """
    value = _real_or_nan(value, name)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


def _within(value: Any, name: str, low: float, high: float, *, open_low: bool,
            expected: str = "a real number") -> float:
    """``value`` as a finite float above ``low`` (or at it, unless ``open_low``) and below ``high``
    (infinite: no upper bound); ``expected`` names what a value of the wrong type should have been."""
    v = _real_or_nan(value, name, expected)
    if not (math.isfinite(v) and (v > low if open_low else v >= low) and v < high):
        if math.isinf(high):
            rule = f"be a finite number {'>' if open_low else '>='} {low:g}"
        else:
            rule = f"lie in {'(' if open_low else '['}{low:g}, {high:g})"
        raise ValueError(f"{name} must {rule}, got {value!r}")
    return v


def positive_float(value: Any, name: str) -> float:
    """A finite number > 0 as a float.

    Example:
        >>> positive_float(0.5, "lam")
        0.5
    """
    return _within(value, name, 0.0, math.inf, open_low=True)


def nonneg_float(value: Any, name: str) -> float:
    """A finite number >= 0 as a float.

    Example:
        >>> nonneg_float(0, "weight_decay")
        0.0
    """
    return _within(value, name, 0.0, math.inf, open_low=False)


def fraction(value: Any, name: str) -> float:
    """A number in [0, 1) (e.g. a dropout rate) as a float.

    Example:
        >>> fraction(0.5, "dropout")
        0.5
    """
    return _within(value, name, 0.0, 1.0, open_low=False)


def probability(value: Any, name: str) -> float:
    """A number strictly between 0 and 1 (a level, a split fraction) as a float.

    Example:
        >>> probability(1.0, "alpha")
        Traceback (most recent call last):
        ...
        ValueError: alpha must lie in (0, 1), got 1.0
    """
    return _within(value, name, 0.0, 1.0, open_low=True, expected="a float in (0, 1)")


def one_of(value: Any, name: str, choices: Sequence[Any]) -> Any:
    """``value`` if it is one of ``choices``, else a ValueError listing them.

    Example:
        >>> one_of("exact", "trace", ("hutchinson", "exact"))
        'exact'
    """
    if isinstance(value, (list, dict, set)) or value not in tuple(choices):
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")
    return value


def flag(value: Any, name: str) -> bool:
    """``value`` if it is a bool, else :func:`wrong_type`'s TypeError.

    Example:
        >>> flag(1, "refit")
        Traceback (most recent call last):
        ...
        TypeError: refit must be a bool, got type int (1)
    """
    if not isinstance(value, bool):
        raise wrong_type(name, "a bool", value)
    return value


def seed_value(value: Any, name: str = "seed") -> int:
    """A seed: an int (not a bool).

    Example:
        >>> seed_value(1.5)
        Traceback (most recent call last):
        ...
        TypeError: seed must be an int, got type float (1.5)
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise wrong_type(name, "an int", value)
    return int(value)


def seed_from(seed: Any, generator: Any) -> int:
    """The seed of a call that takes ``seed=`` and ``generator=``: the seed, or, when a
    generator is given, one int drawn from it (so the call advances the generator).

    Example:
        >>> seed_from(3, None), seed_from(3, torch.Generator().manual_seed(0)) == seed_from(0, torch.Generator().manual_seed(0))
        (3, True)
    """
    if generator is None:
        return seed_value(seed)
    if not isinstance(generator, torch.Generator):
        raise wrong_type("generator", "a torch.Generator or None", generator)
    return int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device))


def as_generator(seed: Any = None, generator: Any = None) -> torch.Generator | None:
    """The random generator of a call that takes ``seed=`` or ``generator=`` (not both).

    A given generator is returned as is; an int seed gives a fresh CPU generator seeded
    with it; neither gives None (torch's global generator).

    Example:
        >>> as_generator(seed=3).initial_seed()
        3
    """
    if generator is not None:
        if seed is not None:
            raise ValueError("give either generator or seed, not both")
        if not isinstance(generator, torch.Generator):
            raise wrong_type("generator", "a torch.Generator or None", generator)
        return generator
    if seed is None:
        return None
    return torch.Generator().manual_seed(seed_value(seed))

"""The one place where steinkit checks its inputs: bad input fails early with a ``ValueError``
or ``TypeError`` that names the argument and says what was expected.

Data (``as_data``): one rule per kind of entry point, chosen by its keywords.

* Public data entry points (:func:`steinkit.stein_discrepancy`, :func:`steinkit.compare`,
  :func:`steinkit.gof_test`, :func:`steinkit.split_data`): ``as_data(x)``. Tensors or arrays
  of shape (n, d); floating tensors keep their dtype, integer data become the default float
  dtype (float32); NaN/inf are rejected.
* Kernel Stein tests (:mod:`steinkit.gof.kernels`, ``ksd``, ``lksd``, ``fssd``):
  ``as_data(x, tensors_only=True, dtype=torch.float64)``. Tensors only, of any real dtype;
  the computation runs on a float64 copy; NaN/inf are rejected.
* Model methods (``log_prob``, ``score``, ...): ``as_data(x, dim=model.dim,
  tensors_only=True, like=parameter, finite=False)``. Tensors only, cast to the model's
  parameter dtype and device; not checked for NaN (hot path; a model maps NaN to NaN).
* Samplers (:func:`steinkit.samplers.sgld`): ``as_data(x0, tensors_only=True,
  floating=True)``. Floating tensors only (no silent cast of the chain's state), dtype kept.
* Image preprocessing: :func:`float_tensor` (floating tensors of any shape, dtype kept).

Devices: :func:`as_device` (a ``device=`` argument: checked to exist here; None means where
the data live, else the CPU), :func:`parse_device` (the name only) and :func:`generator_on` (a
given generator must be on that device).

Numbers: :func:`positive_int`, :func:`nonneg_int`, :func:`positive_float`,
:func:`nonneg_float`, :func:`fraction` ([0, 1)), :func:`probability` ((0, 1)),
:func:`one_of`, :func:`as_generator`. Booleans are never accepted as numbers.

An argument of the wrong type raises :func:`wrong_type`'s ``TypeError``, which says "type":
``lam must be a real number, got type str ('0.5')``.

Example:
    >>> import torch
    >>> as_data([[0, 1], [2, 3]]).dtype
    torch.float32
    >>> positive_int(0, "n_iters")
    Traceback (most recent call last):
    ...
    ValueError: n_iters must be >= 1, got 0
"""

from __future__ import annotations

import math
import numbers
import operator
from typing import Any, Sequence

import torch
from torch import Tensor

__all__ = [
    "wrong_type",
    "as_data",
    "model_points",
    "float_tensor",
    "float_dtype",
    "as_param",
    "integer",
    "positive_int",
    "nonneg_int",
    "real",
    "positive_float",
    "nonneg_float",
    "fraction",
    "probability",
    "one_of",
    "flag",
    "seed_value",
    "as_generator",
    "seed_from",
    "as_device",
    "parse_device",
    "generator_on",
]


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


# --------------------------------------------------------------------------- data
def _as_tensor(x: Any, name: str, tensors_only: bool) -> Tensor:
    if isinstance(x, Tensor):
        return x
    if tensors_only:
        raise wrong_type(name, "a torch.Tensor of shape (n, d)", x)
    try:
        return torch.as_tensor(x)
    except Exception as exc:  # noqa: BLE001 - report what was given
        raise wrong_type(name, "a tensor or array of shape (n, d)", x) from exc


def _check_dtype(x: Tensor, name: str, floating: bool) -> None:
    if x.is_complex() or x.dtype == torch.bool:
        raise TypeError(f"{name} must be a real-valued tensor, got element type (dtype) {x.dtype}")
    if floating and not x.is_floating_point():
        raise TypeError(f"{name} must be a floating tensor, got element type (dtype) {x.dtype}")


def _check_shape(x: Tensor, name: str, dim: int | None, min_rows: int, what: str | None) -> None:
    width = "d" if dim is None else str(dim)
    if x.dim() != 2:
        raise ValueError(f"{name} must be a 2-D tensor (n, {width}), got shape {tuple(x.shape)}")
    if dim is not None and x.shape[1] != dim:
        raise ValueError(
            f"{name} must be a 2-D tensor (n, {dim}) matching the dimension {dim}, got shape {tuple(x.shape)}"
        )
    if x.shape[1] < 1:
        raise ValueError(f"{name} must have at least one column, got shape {tuple(x.shape)}")
    if x.shape[0] < min_rows:
        context = f" for {what}" if what else ""
        rows = "row" if min_rows == 1 else "rows"
        raise ValueError(f"{name} must have at least {min_rows} {rows}{context}, got n={x.shape[0]}")


def as_data(
    x: Any,
    name: str = "x",
    *,
    min_rows: int = 1,
    dim: int | None = None,
    dtype: torch.dtype | None = None,
    like: Tensor | None = None,
    tensors_only: bool = False,
    floating: bool = False,
    finite: bool = True,
    what: str | None = None,
) -> Tensor:
    """Check data of shape (n, d) and return it as a tensor (see the module docstring for the rules).

    Arguments:
        x: the data.
        name: the argument's name for error messages.
        min_rows: the least number of rows n.
        dim: the required number of columns d, if any.
        dtype: convert to this dtype; None keeps floating dtypes and turns integers into the
            default float dtype.
        like: convert to this tensor's dtype and device (a model's parameter).
        tensors_only: reject anything but a ``torch.Tensor`` (no array conversion).
        floating: reject non-floating tensors instead of converting them.
        finite: reject NaN and inf.
        what: what the data are for, added to the "too few rows" message.

    Example:
        >>> as_data(torch.zeros(3), "x0")
        Traceback (most recent call last):
        ...
        ValueError: x0 must be a 2-D tensor (n, d), got shape (3,)
    """
    x = _as_tensor(x, name, tensors_only)
    _check_dtype(x, name, floating)
    _check_shape(x, name, dim, min_rows, what)
    if like is not None:
        if x.dtype != like.dtype or x.device != like.device:
            x = x.to(dtype=like.dtype, device=like.device)
    elif dtype is not None:
        x = x.to(dtype)
    elif not x.is_floating_point():
        x = x.to(torch.get_default_dtype())
    if finite and not _all_finite(x):
        raise ValueError(f"{name} contains NaN or infinite values (it must be finite)")
    return x


_FINITE_ROWS = 65536


def _all_finite(x: Tensor) -> bool:
    """Whether every entry is finite, checked ``_FINITE_ROWS`` rows at a time (no (n, d) mask)."""
    return all(bool(torch.isfinite(x[start:start + _FINITE_ROWS]).all())
               for start in range(0, x.shape[0], _FINITE_ROWS))


def model_points(x: Any, dim: int, like: Tensor, name: str = "x") -> Tensor:
    """Points handed to a model's method: the model rule of this module (see its docstring).

    Example:
        >>> model_points(torch.zeros(2, 3, dtype=torch.float64), 3, torch.zeros(1)).dtype
        torch.float32
    """
    return as_data(x, name, dim=dim, like=like, tensors_only=True, finite=False)


def float_tensor(x: Any, name: str, *, min_dim: int = 0) -> Tensor:
    """A floating ``torch.Tensor`` with at least ``min_dim`` dimensions (dtype kept).

    Example:
        >>> float_tensor(torch.zeros(2), "y", min_dim=2)
        Traceback (most recent call last):
        ...
        ValueError: y must have shape (n, d) or (n, ...), got shape (2,)
    """
    if not isinstance(x, Tensor):
        raise wrong_type(name, "a torch.Tensor", x)
    if not x.dtype.is_floating_point:
        raise TypeError(f"{name} must be a floating tensor, got element type (dtype) {x.dtype}")
    if x.dim() < min_dim:
        raise ValueError(f"{name} must have shape (n, d) or (n, ...), got shape {tuple(x.shape)}")
    return x


def float_dtype(*values: Any) -> torch.dtype:
    """The floating dtype shared by ``values`` (the default dtype if none is floating).

    Example:
        >>> float_dtype(torch.zeros(1, dtype=torch.float64), [1.0])
        torch.float64
    """
    dtypes = [v.dtype for v in values if isinstance(v, Tensor) and v.is_floating_point()]
    if not dtypes:
        return torch.get_default_dtype()
    dtype = dtypes[0]
    for other in dtypes[1:]:
        dtype = torch.promote_types(dtype, other)
    return dtype


def as_param(value: Any, name: str, dtype: torch.dtype, ndim: int) -> Tensor:
    """A model parameter: a finite real tensor with ``ndim`` dimensions, copied into ``dtype``.

    Example:
        >>> as_param([[1, 0], [0, 1]], "cov", torch.float64, ndim=2).dtype
        torch.float64
    """
    try:
        t = torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError) as err:
        raise wrong_type(name, "a tensor or array-like of numbers", value) from err
    if t.is_complex() or t.dtype == torch.bool:
        raise TypeError(f"{name} must be a real tensor, got element type (dtype) {t.dtype}")
    if t.ndim != ndim:
        raise ValueError(f"{name} must be a {ndim}-D tensor, got shape {tuple(t.shape)}")
    t = t.detach().to(dtype=dtype).clone()
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} must contain only finite values")
    return t


# --------------------------------------------------------------------------- numbers
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


def _real_or_nan(value: Any, name: str) -> float:
    if isinstance(value, Tensor):
        if value.numel() != 1 or value.is_complex():
            raise ValueError(f"{name} must be a real scalar, got a tensor of shape {tuple(value.shape)}")
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise wrong_type(name, "a real number", value)
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


def _at_least(value: Any, name: str, low: float, strict: bool) -> float:
    v = _real_or_nan(value, name)
    if not (math.isfinite(v) and (v > low if strict else v >= low)):
        raise ValueError(f"{name} must be a finite number {'>' if strict else '>='} {low:g}, got {value!r}")
    return v


def positive_float(value: Any, name: str) -> float:
    """A finite number > 0 as a float.

    Example:
        >>> positive_float(0.5, "lam")
        0.5
    """
    return _at_least(value, name, 0.0, strict=True)


def nonneg_float(value: Any, name: str) -> float:
    """A finite number >= 0 as a float.

    Example:
        >>> nonneg_float(0, "weight_decay")
        0.0
    """
    return _at_least(value, name, 0.0, strict=False)


def fraction(value: Any, name: str) -> float:
    """A number in [0, 1) (e.g. a dropout rate) as a float.

    Example:
        >>> fraction(0.5, "dropout")
        0.5
    """
    v = real(value, name)
    if not 0.0 <= v < 1.0:
        raise ValueError(f"{name} must lie in [0, 1), got {value!r}")
    return v


def probability(value: Any, name: str) -> float:
    """A number strictly between 0 and 1 (a level, a split fraction) as a float.

    Example:
        >>> probability(1.0, "alpha")
        Traceback (most recent call last):
        ...
        ValueError: alpha must lie in (0, 1), strictly between 0 and 1, got 1.0
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise wrong_type(name, "a float in (0, 1)", value)
    v = float(value)
    if not 0.0 < v < 1.0:
        raise ValueError(f"{name} must lie in (0, 1), strictly between 0 and 1, got {value!r}")
    return v


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


# --------------------------------------------------------------------------- devices
def as_device(device: Any, data: Any = None, name: str = "device") -> torch.device:
    """The device of a call that takes ``device=``: the one named, checked to exist on this
    machine, or, when ``device`` is None, the device ``data`` lives on (the CPU unless ``data``
    is a tensor). ``"cuda"`` becomes the current CUDA device with its index.

    Example:
        >>> as_device("cpu"), as_device(None, torch.zeros(1)), as_device(None, [[0.0]])
        (device(type='cpu'), device(type='cpu'), device(type='cpu'))
        >>> as_device("gpu")
        Traceback (most recent call last):
        ...
        ValueError: device must name a torch device such as 'cpu', 'cuda' or 'cuda:1', got 'gpu'
    """
    if device is None:
        return data.device if isinstance(data, Tensor) else torch.device("cpu")
    dev = parse_device(device, name)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"{name}={str(device)!r} was requested but CUDA is not available here "
                "(torch.cuda.is_available() is False); use device='cpu'"
            )
        index = torch.cuda.current_device() if dev.index is None else dev.index
        if index >= torch.cuda.device_count():
            raise ValueError(f"{name}={str(device)!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
        return torch.device("cuda", index)
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"{name}={str(device)!r} was requested but MPS is not available here; use device='cpu'")
    if dev.type not in ("cpu", "mps"):
        try:
            torch.empty(0, device=dev)
        except (RuntimeError, ValueError) as err:
            raise ValueError(f"{name}={str(device)!r} cannot hold tensors here: {err}") from None
    return dev


def parse_device(device: Any, name: str = "device") -> torch.device:
    """A device name (or ``torch.device``) parsed, without checking this machine has it (for a
    device a cluster's workers will use).

    Example:
        >>> parse_device("cuda:1")
        device(type='cuda', index=1)
    """
    if not isinstance(device, (str, torch.device)):
        raise TypeError(f"{name} must be a str such as 'cuda' or a torch.device, got {type(device).__name__}")
    try:
        return torch.device(device)
    except (RuntimeError, ValueError):
        raise ValueError(
            f"{name} must name a torch device such as 'cpu', 'cuda' or 'cuda:1', got {device!r}"
        ) from None


def generator_on(generator: Any, device: torch.device, name: str = "generator") -> None:
    """Raise unless ``generator`` (a ``torch.Generator`` or None) draws on ``device``.

    Example:
        >>> generator_on(torch.Generator(), torch.device("cpu"))
        >>> generator_on(torch.Generator(), torch.device("meta"))
        Traceback (most recent call last):
        ...
        ValueError: generator is on cpu but device is meta: create it there, torch.Generator(device='meta')
    """
    if generator is None:
        return
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"{name} must be a torch.Generator or None, got {type(generator).__name__}")
    gdev = generator.device
    if gdev.type != device.type or (gdev.index is not None and device.index is not None and gdev.index != device.index):
        raise ValueError(
            f"{name} is on {gdev} but device is {device}: create it there, torch.Generator(device={str(device)!r})"
        )

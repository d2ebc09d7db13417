"""Checks of data and parameters: tensors of shape (n, d) by the rules of :mod:`steinkit.validation`,
model parameters, dtypes.

Example:
    >>> as_data([[0, 1], [2, 3]]).dtype
    torch.float32
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .scalars import wrong_type

__all__ = ["as_data", "model_points", "float_tensor", "float_dtype", "as_param"]


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

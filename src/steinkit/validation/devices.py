"""Checks of ``device=`` arguments and of a generator's device.

Example:
    >>> as_device(None, torch.zeros(1))
    device(type='cpu')
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

__all__ = ["as_device", "parse_device", "generator_on"]


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

"""Atomic training checkpoints: ``torch.save`` to a temporary file, then ``os.replace``.

A reader therefore sees either the previous complete checkpoint or the new complete one, never
a half-written file, even if the process is killed mid-write.

Example:
    >>> import tempfile, os, torch
    >>> path = os.path.join(tempfile.mkdtemp(), "run.pt")
    >>> save_checkpoint({"step": 3, "w": torch.ones(2)}, path)
    >>> load_checkpoint(path)["step"]
    3
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

__all__ = ["save_checkpoint", "load_checkpoint"]

PathLike = str | os.PathLike


def save_checkpoint(state: dict[str, Any], path: PathLike) -> None:
    """Write ``state`` to ``path`` atomically (temporary file in the same folder + ``os.replace``).

    Example:
        >>> import tempfile, os
        >>> save_checkpoint({"step": 1}, os.path.join(tempfile.mkdtemp(), "a", "ck.pt"))
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(state, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def load_checkpoint(path: PathLike) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` (tensors and plain containers only).

    Example:
        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "ck.pt")
        >>> save_checkpoint({"history": [{"step": 1, "loss": 0.5}]}, p)
        >>> load_checkpoint(p)["history"][0]["loss"]
        0.5
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise ValueError(f"checkpoint {str(path)!r} does not hold a dict, got {type(state).__name__}")
    return state

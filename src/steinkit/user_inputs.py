"""Loading what a command-line user points to: a model object in a Python file, and samples.

Every failure is a :class:`UserInputError` whose message names the option (``--model`` or
``--data``), the file and what to do, so the command can print one line instead of a
traceback.

Example:
    >>> import tempfile, numpy as np
    >>> path = tempfile.mkdtemp() + "/x.csv"
    >>> with open(path, "w") as fh:
    ...     _ = fh.write("a,b\\n1,2\\n3,4\\n")
    >>> load_samples(path).tolist()       # a header row is skipped
    [[1.0, 2.0], [3.0, 4.0]]
"""

from __future__ import annotations

import ctypes
import importlib
import importlib.util
import mmap
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = ["UserInputError", "load_object", "load_samples", "load_tensor", "float32_tensor"]

_SUFFIXES = (".npy", ".npz", ".csv", ".txt")


class UserInputError(ValueError):
    """A file or option given by the user cannot be used; the message says why and what to do."""


def _import_file(file: Path) -> Any:
    name = f"_steinkit_user_{file.stem}"  # registered, so dataclasses and pickling can find the module
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise UserInputError(f"--model: {file} is not an importable Python file")
    module = importlib.util.module_from_spec(spec)
    folder = str(file.parent.resolve())
    sys.path.insert(0, folder)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as err:  # the user's own code failed: say where, keep it to one line
        sys.modules.pop(name, None)
        raise UserInputError(f"--model: running {file} failed: {type(err).__name__}: {err}") from err
    finally:
        if folder in sys.path:
            sys.path.remove(folder)
    return module


def load_object(spec: str) -> Any:
    """Load ``path/to/file.py:name`` (or ``package.module:name``) and return the object.

    A class is instantiated with no arguments.
    """
    if ":" not in spec:
        raise UserInputError(f"--model must look like path/to/file.py:name, got {spec!r}")
    path, name = spec.rsplit(":", 1)
    if path.endswith(".py"):
        file = Path(path)
        if not file.is_file():
            raise UserInputError(f"--model file {file} does not exist")
        module = _import_file(file)
    else:
        try:
            module = importlib.import_module(path)
        except ImportError as err:
            raise UserInputError(f"--model: cannot import module {path!r} ({err}); give a path/to/file.py:name") from err
    if not hasattr(module, name):
        raise UserInputError(f"--model: {path} has no attribute {name!r}")
    obj = getattr(module, name)
    if isinstance(obj, type):
        try:
            obj = obj()
        except Exception as err:
            raise UserInputError(f"--model: {name}() in {path} failed: {type(err).__name__}: {err}") from err
    return obj


def _text_table(file: Path) -> np.ndarray:
    delimiter = "," if file.suffix == ".csv" else None
    try:
        return np.loadtxt(file, delimiter=delimiter, ndmin=2)
    except ValueError as first:
        try:  # one header row of column names
            return np.loadtxt(file, delimiter=delimiter, ndmin=2, skiprows=1)
        except ValueError:
            raise UserInputError(f"--data file {file} is not a table of numbers ({first})") from first


def _archive_array(file: Path, key: str | None, option: str) -> np.ndarray:
    with np.load(file, allow_pickle=False) as archive:
        names = list(archive.files)
        if key is None and len(names) != 1:
            raise UserInputError(f"{option} file {file} holds {len(names)} arrays {names}: pick one as {file}:NAME")
        key = names[0] if key is None else key
        if key not in names:
            raise UserInputError(f"{option} file {file} has no array {key!r}; it holds {names}")
        return archive[key]


def _file_and_key(path: str) -> tuple[Path, str | None]:
    """The file of ``path`` and the array that ``file.npz:key`` picks in it (None: none picked)."""
    key = None
    if ".npz:" in path:
        path, key = path.split(".npz:", 1)
        path += ".npz"
    return Path(path), key


def _read_array(file: Path, key: str | None, option: str, *, mmap_mode: str | None = None) -> np.ndarray:
    """The array in a .npy, .npz, .csv or .txt file, a 1-D one as a column; a file that cannot be
    read is a :class:`UserInputError` naming ``option``."""
    try:
        if file.suffix == ".npy":
            data = np.load(file, mmap_mode=mmap_mode, allow_pickle=False)
        elif file.suffix == ".npz":
            data = _archive_array(file, key, option)
        else:
            data = _text_table(file)
    except (OSError, EOFError, ValueError) as err:
        if isinstance(err, UserInputError):
            raise
        raise UserInputError(f"{option} file {file} cannot be read as {file.suffix}: {err}") from err
    return data[:, None] if data.ndim == 1 else data


def load_samples(path: str) -> np.ndarray:
    """Load samples (n, d) from .npy, .npz (``file.npz:key`` picks an array), .csv or .txt.

    A 1-D array is read as n samples of one dimension. A .npy file is memory-mapped
    copy-on-write (``np.load(mmap_mode="c")``): nothing is read until used, and nothing written
    to the array reaches the file.
    """
    file, key = _file_and_key(path)
    if not file.is_file():
        raise UserInputError(f"--data file {file} does not exist")
    if file.suffix not in _SUFFIXES:
        raise UserInputError(f"--data file {file} must end in one of {_SUFFIXES}")
    data = _read_array(file, key, "--data", mmap_mode="c")  # a .npy is read from the file when used
    if data.ndim != 2 or data.shape[0] == 0:
        raise UserInputError(f"--data file {file} must hold an (n, d) array with n >= 1, got shape {data.shape}")
    if not np.issubdtype(data.dtype, np.number):
        raise UserInputError(f"--data file {file} must hold numbers, got dtype {data.dtype}")
    return data


_CONVERT_ROWS = 65536  # rows per chunk of float32_tensor's conversion


def load_tensor(path: str) -> "torch.Tensor":
    """:func:`load_samples` as a float32 tensor (:func:`float32_tensor`): a float32 .npy file is
    used in place, memory-mapped; any other is converted a chunk of rows at a time."""
    return float32_tensor(load_samples(path))


def float32_tensor(data: np.ndarray, rows: int = _CONVERT_ROWS) -> "torch.Tensor":
    """``data`` (n, d) as a float32 tensor without a full copy in another dtype: a C-contiguous
    float32 array is shared (a memory-mapped file stays mapped; rows are read when used), anything
    else fills a new float32 tensor ``rows`` rows at a time, and a memory-mapped source's pages
    are handed back to the system after each chunk, so the peak is the float32 data plus a chunk.

    Example:
        >>> float32_tensor(np.arange(6.0).reshape(3, 2), rows=2).tolist()
        [[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]
    """
    import torch

    if data.dtype == np.float32 and data.flags.c_contiguous and data.flags.writeable:
        return torch.from_numpy(data)
    out = torch.empty(data.shape, dtype=torch.float32)
    view = out.numpy()
    for start in range(0, data.shape[0], rows):
        view[start:start + rows] = data[start:start + rows]
        _drop_pages(data, start, min(start + rows, data.shape[0]))
    return out


def _drop_pages(data: np.ndarray, start: int, stop: int) -> None:
    """Tell the system that rows start..stop of a memory-mapped array are no longer needed (they
    are re-read from the file if used again); nothing for other arrays or where it cannot."""
    mm = getattr(data, "_mmap", None)
    advise = getattr(mmap, "MADV_DONTNEED", None)
    if mm is None or advise is None or data.strides[0] <= 0:
        return
    try:
        holder = ctypes.c_char.from_buffer(mm)
        base = ctypes.addressof(holder)
        del holder
        first = data.ctypes.data - base + start * data.strides[0]
        last = data.ctypes.data - base + stop * data.strides[0]
        first -= first % mmap.PAGESIZE
        if 0 <= first < last <= len(mm):
            mm.madvise(advise, first, last - first)
    except (TypeError, ValueError, BufferError, OSError):
        return

"""Read IDX files (the MNIST file format) and load small image data sets from disk.

Nothing here downloads anything: data come from files the user already has, from the
Debian package ``dataset-fashion-mnist``, or from scikit-learn's bundled ``digits``.

IDX layout: two zero bytes, one type byte, one byte giving the number of dimensions ``k``,
then ``k`` big-endian unsigned 32-bit sizes, then the data in C order, big-endian.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import numpy as np

__all__ = ["IMAGE_DATASETS", "FASHION_MNIST_ROOT", "read_idx", "load_image_dataset"]

IMAGE_DATASETS: tuple[str, ...] = ("fashion-mnist", "mnist", "digits")
FASHION_MNIST_ROOT = Path("/usr/share/datasets/fashion-mnist")

_IDX_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"

# Per split, the file-name stems tried in order (each also with ".gz"). The official names
# use "-idx3-ubyte"; some unpacked copies of MNIST use ".idx3-ubyte".
_PREFIXES = {"train": ("train",), "test": ("t10k", "test")}
_SEPARATORS = ("-", ".")


def _read_bytes(path: Path) -> bytes:
    raw = path.read_bytes()
    if raw[:2] != _GZIP_MAGIC:
        return raw
    try:
        return gzip.decompress(raw)
    except (EOFError, OSError, zlib.error) as exc:
        raise ValueError(f"{path}: corrupt or truncated gzip data ({exc})") from exc


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read one IDX file, raw or gzip-compressed, into a numpy array.

    Compression is detected from the gzip magic bytes ``1f 8b``, not from the file name.
    Multi-byte types are returned in native byte order.

    Arguments:
        path: the file to read.

    Returns:
        An array whose shape is given by the file header and whose dtype is one of
        uint8, int8, int16, int32, float32, float64.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is malformed or truncated; the message names the file.

    Example:
        >>> labels = read_idx("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz")  # doctest: +SKIP
        >>> labels.shape, labels.dtype  # doctest: +SKIP
        ((10000,), dtype('uint8'))
    """
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4:
        raise ValueError(f"{path}: not an IDX file: expected a 4-byte header, got {len(data)} bytes")
    if data[0] != 0 or data[1] != 0:
        raise ValueError(
            f"{path}: bad IDX magic number 0x{data[:4].hex()}: the first two bytes must be zero"
        )
    code, ndim = data[2], data[3]
    if code not in _IDX_TYPES:
        known = ", ".join(f"0x{c:02X}" for c in _IDX_TYPES)
        raise ValueError(f"{path}: unknown IDX data type code 0x{code:02X} (expected one of {known})")
    if ndim == 0:
        raise ValueError(f"{path}: IDX header declares 0 dimensions")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(
            f"{path}: truncated IDX header: expected {header} bytes for {ndim} dimensions, "
            f"got {len(data)}"
        )
    shape = tuple(int(s) for s in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = _IDX_TYPES[code]
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    got = len(data) - header
    if got < expected:
        raise ValueError(
            f"{path}: truncated IDX data: shape {shape} of {dtype.name} needs {expected} bytes, "
            f"got {got}"
        )
    if got > expected:
        raise ValueError(
            f"{path}: malformed IDX file: shape {shape} of {dtype.name} needs {expected} bytes, "
            f"got {got} (trailing data)"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="), copy=True)


def _find(root: Path, prefixes: tuple[str, ...], kind: str, idx: str) -> Path | None:
    for prefix in prefixes:
        for sep in _SEPARATORS:
            for suffix in (".gz", ""):
                candidate = root / f"{prefix}-{kind}{sep}{idx}-ubyte{suffix}"
                if candidate.is_file():
                    return candidate
    return None


def _how_to_get(name: str) -> str:
    files = (
        "train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
        "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz (gzipped or not)"
    )
    if name == "fashion-mnist":
        return (
            "install the Debian package with `sudo apt-get update && sudo apt-get install -y "
            f"dataset-fashion-mnist` (it puts the files in {FASHION_MNIST_ROOT}), "
            f"or pass root=DIR containing {files}"
        )
    return f"pass root=DIR containing {files}"


def _load_idx_pair(name: str, root: Path, split: str) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    prefixes = _PREFIXES[split]
    images_path = _find(root, prefixes, "images", "idx3")
    labels_path = _find(root, prefixes, "labels", "idx1")
    if images_path is None or labels_path is None:
        missing = "images" if images_path is None else "labels"
        looked = f"{prefixes[0]}-{missing}-idx{3 if missing == 'images' else 1}-ubyte[.gz]"
        raise FileNotFoundError(
            f"{name} {split} {missing} not found in {root} (looked for {looked}); "
            + _how_to_get(name)
        )
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.ndim != 3:
        raise ValueError(f"{images_path}: expected a 3-D (n, h, w) image array, got shape {images.shape}")
    if images.dtype != np.uint8:
        raise ValueError(f"{images_path}: expected unsigned-byte pixels, got {images.dtype}")
    if labels.ndim != 1:
        raise ValueError(f"{labels_path}: expected a 1-D label array, got shape {labels.shape}")
    if labels.shape[0] != images.shape[0]:
        raise ValueError(
            f"{labels_path}: {labels.shape[0]} labels for {images.shape[0]} images in {images_path}"
        )
    n, h, w = images.shape
    return images.reshape(n, h * w), labels.astype(np.int64), (h, w)


def _load_digits(split: str) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ModuleNotFoundError(
            "the 'digits' data set comes with scikit-learn; install it with `pip install scikit-learn`"
        ) from exc
    bunch = load_digits()
    images = np.rint(bunch.data * (255.0 / 16.0)).astype(np.uint8)
    labels = bunch.target.astype(np.int64)
    n_train = int(round(0.8 * len(labels)))
    part = slice(None, n_train) if split == "train" else slice(n_train, None)
    return images[part], labels[part], (8, 8)


def load_image_dataset(
    name: str,
    *,
    root: str | os.PathLike[str] | None = None,
    split: str = "train",
) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """Load an image data set as flat uint8 pixels with integer labels.

    Data sets:
        ``"fashion-mnist"``: 60000 train / 10000 test images of 28x28; ``root`` defaults to
        ``/usr/share/datasets/fashion-mnist`` (Debian package ``dataset-fashion-mnist``).
        ``"mnist"``: 28x28; ``root`` must be given, a directory holding
        ``train-images-idx3-ubyte[.gz]``, ``train-labels-idx1-ubyte[.gz]``,
        ``t10k-images-idx3-ubyte[.gz]`` and ``t10k-labels-idx1-ubyte[.gz]`` (``test-`` instead
        of ``t10k-`` and ``.idx3-ubyte`` instead of ``-idx3-ubyte`` are also accepted).
        ``"digits"``: scikit-learn's 1797 8x8 digits, values 0..16 rescaled to 0..255; the
        split is deterministic: the first 80% (1438 images) train, the last 20% (359) test.

    Arguments:
        name: one of :data:`IMAGE_DATASETS`.
        root: directory holding the IDX files (not used for ``"digits"``).
        split: ``"train"`` or ``"test"``.

    Returns:
        ``(images, labels, shape)``: uint8 array ``(n, h*w)``, int64 array ``(n,)``, ``(h, w)``.

    Raises:
        FileNotFoundError: the files are not there; the message says how to get them.

    Example:
        >>> x, y, (h, w) = load_image_dataset("digits", split="test")
        >>> x.shape, x.dtype, y.dtype, (h, w)
        ((359, 64), dtype('uint8'), dtype('int64'), (8, 8))
    """
    if not isinstance(name, str) or name.lower() not in IMAGE_DATASETS:
        raise ValueError(f"name must be one of {', '.join(IMAGE_DATASETS)}; got {name!r}")
    name = name.lower()
    if split not in _PREFIXES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if name == "digits":
        if root is not None:
            raise ValueError("root is not used for 'digits' (it ships with scikit-learn); pass root=None")
        return _load_digits(split)
    if root is None:
        if name == "mnist":
            raise FileNotFoundError("MNIST has no default location: " + _how_to_get(name))
        root_path = FASHION_MNIST_ROOT
    else:
        root_path = Path(root)
    if not root_path.is_dir():
        raise FileNotFoundError(f"{name}: directory {root_path} does not exist; " + _how_to_get(name))
    return _load_idx_pair(name, root_path, split)

"""Tests for steinkit.data: IDX reading, image data sets, toy sets, preprocessing, image grids."""

from __future__ import annotations

import gzip
import math
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from steinkit.data import idx as idx_module
from steinkit.data.idx import FASHION_MNIST_ROOT, load_image_dataset, read_idx
from steinkit.data.images import make_image_grid, save_image_grid
from steinkit.data.preprocess import (
    bits_per_dim,
    dequantize,
    inverse_logit,
    inverse_logit_transform,
    logit,
    logit_transform,
)
from steinkit.data.toy import TOY_DATASETS, sample_toy

# --------------------------------------------------------------------------- IDX helpers

_CODES = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C, np.float32: 0x0D, np.float64: 0x0E}


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode an array as IDX (written independently of the reader under test)."""
    code = _CODES[array.dtype.type]
    header = bytes([0, 0, code, array.ndim]) + b"".join(struct.pack(">I", s) for s in array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_idx(path: Path, array: np.ndarray, *, compress: bool) -> Path:
    data = idx_bytes(array)
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def _example(dtype: type, shape: tuple[int, ...]) -> np.ndarray:
    rng = np.random.default_rng(0)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


# --------------------------------------------------------------------------- read_idx


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gz"])
@pytest.mark.parametrize("shape", [(7,), (5, 3, 4)], ids=["1d", "3d"])
@pytest.mark.parametrize("dtype", list(_CODES), ids=lambda t: t.__name__)
def test_read_idx_round_trip(tmp_path: Path, dtype: type, shape: tuple[int, ...], compress: bool) -> None:
    array = _example(dtype, shape)
    path = write_idx(tmp_path / ("a.idx.gz" if compress else "a.idx"), array, compress=compress)
    out = read_idx(path)
    assert out.shape == shape
    assert out.dtype == np.dtype(dtype)  # native byte order
    assert out.dtype.isnative
    np.testing.assert_array_equal(out, array)


def test_read_idx_detects_gzip_by_magic_not_name(tmp_path: Path) -> None:
    array = _example(np.uint8, (3, 2, 2))
    gz_without_suffix = write_idx(tmp_path / "images-idx3-ubyte", array, compress=True)
    raw_with_suffix = write_idx(tmp_path / "images-idx3-ubyte.gz", array, compress=False)
    np.testing.assert_array_equal(read_idx(gz_without_suffix), array)
    np.testing.assert_array_equal(read_idx(raw_with_suffix), array)
    assert read_idx(str(raw_with_suffix)).shape == (3, 2, 2)  # str paths work too


def test_read_idx_empty_dimension(tmp_path: Path) -> None:
    out = read_idx(write_idx(tmp_path / "e", np.zeros((0, 4, 4), np.uint8), compress=False))
    assert out.shape == (0, 4, 4)


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gz"])
def test_read_idx_truncated_data(tmp_path: Path, compress: bool) -> None:
    data = idx_bytes(_example(np.int16, (4, 5)))  # 40 bytes of data after a 12-byte header
    cut = data[:-7]
    path = tmp_path / "short.idx"
    path.write_bytes(gzip.compress(cut) if compress else cut)
    with pytest.raises(ValueError, match=r"short\.idx.*truncated.*40 bytes, got 33"):
        read_idx(path)


def test_read_idx_truncated_header(tmp_path: Path) -> None:
    path = tmp_path / "hdr.idx"
    path.write_bytes(bytes([0, 0, 0x08, 3]) + struct.pack(">I", 10))
    with pytest.raises(ValueError, match=r"hdr\.idx.*header.*expected 16 bytes.*got 8"):
        read_idx(path)
    path.write_bytes(b"\x00\x00")
    with pytest.raises(ValueError, match=r"hdr\.idx.*4-byte header"):
        read_idx(path)


def test_read_idx_truncated_gzip_stream(tmp_path: Path) -> None:
    packed = gzip.compress(idx_bytes(_example(np.uint8, (50, 8, 8))))
    path = tmp_path / "cut.gz"
    path.write_bytes(packed[: len(packed) // 2])
    with pytest.raises(ValueError, match=r"cut\.gz.*gzip"):
        read_idx(path)


def test_read_idx_bad_magic(tmp_path: Path) -> None:
    path = tmp_path / "bad.idx"
    path.write_bytes(b"\x01\x02\x08\x01" + struct.pack(">I", 1) + b"\x00")
    with pytest.raises(ValueError, match=r"bad\.idx.*magic number 0x01020801"):
        read_idx(path)


def test_read_idx_unknown_type_code(tmp_path: Path) -> None:
    path = tmp_path / "type.idx"
    path.write_bytes(b"\x00\x00\x0a\x01" + struct.pack(">I", 1) + b"\x00")
    with pytest.raises(ValueError, match=r"type\.idx.*unknown IDX data type code 0x0A"):
        read_idx(path)


def test_read_idx_zero_dimensions(tmp_path: Path) -> None:
    path = tmp_path / "zero.idx"
    path.write_bytes(b"\x00\x00\x08\x00")
    with pytest.raises(ValueError, match=r"zero\.idx.*0 dimensions"):
        read_idx(path)


def test_read_idx_trailing_bytes(tmp_path: Path) -> None:
    path = tmp_path / "long.idx"
    path.write_bytes(idx_bytes(_example(np.uint8, (3,))) + b"\x00\x00")
    with pytest.raises(ValueError, match=r"long\.idx.*needs 3 bytes, got 5"):
        read_idx(path)


def test_read_idx_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "nope.idx")


# --------------------------------------------------------------------------- load_image_dataset


def _write_split(root: Path, prefix: str, n: int, *, compress: bool, sep: str = "-", seed: int = 0):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    gz = ".gz" if compress else ""
    write_idx(root / f"{prefix}-images{sep}idx3-ubyte{gz}", images, compress=compress)
    write_idx(root / f"{prefix}-labels{sep}idx1-ubyte{gz}", labels, compress=compress)
    return images, labels


def _check_split(out, images: np.ndarray, labels: np.ndarray) -> None:
    x, y, shape = out
    assert shape == (28, 28)
    assert x.shape == (len(labels), 784) and x.dtype == np.uint8
    assert y.shape == (len(labels),) and y.dtype == np.int64
    np.testing.assert_array_equal(x, images.reshape(len(labels), -1))
    np.testing.assert_array_equal(y, labels)


def test_load_mnist_from_root_gz_train_raw_t10k(tmp_path: Path) -> None:
    train = _write_split(tmp_path, "train", 12, compress=True, seed=1)
    test = _write_split(tmp_path, "t10k", 5, compress=False, seed=2)
    _check_split(load_image_dataset("mnist", root=tmp_path), *train)
    _check_split(load_image_dataset("mnist", root=str(tmp_path), split="test"), *test)


@pytest.mark.parametrize("prefix,sep", [("t10k", "."), ("test", "-")])
def test_load_mnist_alternative_names(tmp_path: Path, prefix: str, sep: str) -> None:
    test = _write_split(tmp_path, prefix, 4, compress=False, sep=sep)
    _check_split(load_image_dataset("MNIST", root=tmp_path, split="test"), *test)


def test_load_fashion_mnist_with_root(tmp_path: Path) -> None:
    train = _write_split(tmp_path, "train", 6, compress=True)
    _check_split(load_image_dataset("fashion-mnist", root=tmp_path), *train)


def test_load_mnist_without_root_says_how(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"pass root=DIR containing train-images-idx3-ubyte\.gz"):
        load_image_dataset("mnist")


def test_load_mnist_missing_labels(tmp_path: Path) -> None:
    _write_split(tmp_path, "train", 3, compress=True)
    (tmp_path / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match=r"labels not found in .*train-labels-idx1-ubyte\[\.gz\]"):
        load_image_dataset("mnist", root=tmp_path)
    with pytest.raises(FileNotFoundError, match=r"test images not found.*t10k-images"):
        load_image_dataset("mnist", root=tmp_path, split="test")


def test_load_missing_root_directory(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"does not exist.*pass root=DIR"):
        load_image_dataset("mnist", root=tmp_path / "absent")


def test_fashion_mnist_missing_says_apt_get(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(idx_module, "FASHION_MNIST_ROOT", tmp_path / "not-installed")
    with pytest.raises(FileNotFoundError, match=r"apt-get install -y dataset-fashion-mnist"):
        load_image_dataset("fashion-mnist")


def test_load_rejects_inconsistent_files(tmp_path: Path) -> None:
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((4, 2, 2), np.uint8), compress=False)
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(3, np.uint8), compress=False)
    with pytest.raises(ValueError, match=r"3 labels for 4 images"):
        load_image_dataset("mnist", root=tmp_path)
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((3, 4), np.uint8), compress=False)
    with pytest.raises(ValueError, match=r"3-D \(n, h, w\)"):
        load_image_dataset("mnist", root=tmp_path)
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((3, 2, 2), np.float32), compress=False)
    with pytest.raises(ValueError, match=r"unsigned-byte"):
        load_image_dataset("mnist", root=tmp_path)


def test_load_image_dataset_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"name must be one of fashion-mnist, mnist, digits"):
        load_image_dataset("cifar10")
    with pytest.raises(ValueError, match=r"split must be 'train' or 'test'"):
        load_image_dataset("mnist", root=tmp_path, split="val")
    with pytest.raises(ValueError, match=r"root is not used for 'digits'"):
        load_image_dataset("digits", root=tmp_path)


def test_digits_loads() -> None:
    pytest.importorskip("sklearn", reason="the digits data set ships with scikit-learn")
    x_tr, y_tr, shape = load_image_dataset("digits")
    x_te, y_te, shape_te = load_image_dataset("digits", split="test")
    assert shape == shape_te == (8, 8)
    assert x_tr.shape == (1438, 64) and x_te.shape == (359, 64)
    assert x_tr.dtype == np.uint8 and y_tr.dtype == np.int64
    assert x_tr.max() == 255 and x_tr.min() == 0
    assert set(np.unique(y_tr)) == set(range(10)) == set(np.unique(y_te))
    from sklearn.datasets import load_digits

    raw = load_digits().data
    np.testing.assert_array_equal(np.concatenate([x_tr, x_te]), np.rint(raw * 255 / 16).astype(np.uint8))
    x_again, _, _ = load_image_dataset("digits")
    np.testing.assert_array_equal(x_tr, x_again)


@pytest.mark.skipif(
    not (FASHION_MNIST_ROOT / "train-images-idx3-ubyte.gz").exists(),
    reason="Debian package dataset-fashion-mnist not installed (apt-get install -y dataset-fashion-mnist)",
)
def test_fashion_mnist_installed() -> None:
    x, y, shape = load_image_dataset("fashion-mnist")
    assert x.shape == (60000, 784) and y.shape == (60000,) and shape == (28, 28)
    x, y, _ = load_image_dataset("fashion-mnist", split="test")
    assert x.shape == (10000, 784) and x.dtype == np.uint8
    assert set(np.unique(y)) == set(range(10))


# --------------------------------------------------------------------------- toy sets


@pytest.mark.parametrize("name", TOY_DATASETS)
def test_toy_shape_finite_bounded(name: str) -> None:
    x = sample_toy(name, 3001, generator=torch.Generator().manual_seed(0))
    assert x.shape == (3001, 2) and x.dtype == torch.float32
    assert torch.isfinite(x).all()
    # "roughly [-4, 4]": the widest set (pinwheel) has Gaussian tails reaching ~4.5
    assert x.abs().max() < 6.0
    assert (x.abs() <= 4.0).all(dim=1).float().mean() > 0.99
    assert x.std(dim=0).min() > 0.5  # not collapsed


@pytest.mark.parametrize("name", TOY_DATASETS)
def test_toy_determinism_and_dtype(name: str) -> None:
    a = sample_toy(name, 257, generator=torch.Generator().manual_seed(7))
    b = sample_toy(name, 257, generator=torch.Generator().manual_seed(7))
    c = sample_toy(name, 257, generator=torch.Generator().manual_seed(8))
    d = sample_toy(name, 257, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert d.dtype == torch.float64
    torch.testing.assert_close(d.float(), a)
    assert sample_toy(name, 1).shape == (1, 2)


def test_toy_structure() -> None:
    g = torch.Generator().manual_seed(3)
    n = 4000
    # checkerboard: uniform on [-4, 4]^2 squares whose (column + row) index is even
    x = sample_toy("checkerboard", n, generator=g, dtype=torch.float64)
    assert ((x >= -4) & (x <= 4)).all()
    parity = torch.remainder(torch.floor(x[:, 0] / 2) + torch.floor(x[:, 1] / 2), 2)
    assert (parity == 0).all()
    # rings: radii 0.75, 1.5, 2.25, 3 with isotropic noise of std 0.08, so the radial error is
    # ~N(0, 0.08^2): 99.7% lie within 3 sd of a ring; 0.99 leaves ~9 standard errors of slack.
    r = sample_toy("rings", n, generator=g, dtype=torch.float64).norm(dim=1)
    gap = (r[:, None] - torch.tensor([0.75, 1.5, 2.25, 3.0], dtype=torch.float64)).abs().min(dim=1).values
    assert (gap < 3 * 0.08).double().mean() > 0.99
    # circles: radii 1.5 and 3 with noise std 3 * 0.08 = 0.24
    r = sample_toy("circles", n, generator=g, dtype=torch.float64).norm(dim=1)
    gap = torch.minimum((r - 1.5).abs(), (r - 3).abs())
    assert (gap < 3 * 0.24).double().mean() > 0.99
    assert ((r - 1.5).abs() < 3 * 0.24).double().mean() == pytest.approx(0.5, abs=4 * math.sqrt(0.25 / n))
    # 8gaussians: each point near one of 8 centres on the circle of radius 4 / sqrt(2)
    x = sample_toy("8gaussians", n, generator=g, dtype=torch.float64)
    angles = torch.arange(8, dtype=torch.float64) * math.pi / 4
    centres = (4 / math.sqrt(2)) * torch.stack([angles.cos(), angles.sin()], dim=1)
    dist = torch.cdist(x, centres).min(dim=1).values
    assert dist.max() < 6 * 0.5 / math.sqrt(2)
    counts = torch.bincount(torch.cdist(x, centres).argmin(dim=1), minlength=8).double()
    # balanced mixture: each count ~ Binomial(n, 1/8), sd = sqrt(n * 1/8 * 7/8)
    assert (counts - n / 8).abs().max() < 4 * math.sqrt(n * 7 / 64)


def test_toy_bad_arguments() -> None:
    with pytest.raises(ValueError, match=r"name must be one of moons, 8gaussians, .*rings; got 'spiral'"):
        sample_toy("spiral", 10)
    with pytest.raises(ValueError, match=r"n must be >= 1"):
        sample_toy("moons", 0)
    with pytest.raises(TypeError, match=r"n must be an int"):
        sample_toy("moons", 10.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"dtype must be a floating"):
        sample_toy("moons", 10, dtype=torch.int64)
    with pytest.raises(TypeError, match=r"generator must be a torch.Generator"):
        sample_toy("moons", 10, generator=0)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- preprocessing


def test_dequantize_range_and_cells() -> None:
    pixels = torch.tensor([0, 1, 127, 254, 255], dtype=torch.uint8).repeat(2000, 1)
    for dtype in (torch.float32, torch.float64):
        x = dequantize(pixels, generator=torch.Generator().manual_seed(0), dtype=dtype)
        assert x.dtype == dtype and x.shape == pixels.shape
        assert ((x > 0) & (x < 1)).all()
        # each value stays in its own bin [k/256, (k+1)/256)
        assert torch.equal(torch.floor(x.double() * 256).long(), pixels.long())


def test_dequantize_noise_is_uniform() -> None:
    n = 20000
    x = dequantize(np.full((n, 1), 100, np.uint8), generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    u = x * 256 - 100
    # U(0,1): mean 1/2, variance 1/12; 4 standard errors
    assert abs(u.mean().item() - 0.5) < 4 * math.sqrt(1 / 12 / n)
    assert abs(u.var().item() - 1 / 12) < 4 * math.sqrt(1 / 180 / n)  # Var of (u - 1/2)^2 is 1/180


def test_dequantize_determinism_and_errors() -> None:
    p = torch.randint(0, 256, (5, 7), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    a = dequantize(p, generator=torch.Generator().manual_seed(4))
    b = dequantize(p, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b)
    for bad in (torch.tensor([256]), torch.tensor([-1]), torch.tensor([1.5])):
        with pytest.raises(ValueError, match=r"pixels must be integers in 0..255"):
            dequantize(bad)
    with pytest.raises(TypeError, match=r"pixels must be"):
        dequantize([1, 2])  # type: ignore[arg-type]


@pytest.mark.parametrize("alpha", [0.0, 0.05])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_logit_round_trip(alpha: float, dtype: torch.dtype) -> None:
    x = torch.rand(64, 10, generator=torch.Generator().manual_seed(0), dtype=dtype) * 0.98 + 0.01
    y = logit(x, alpha)
    torch.testing.assert_close(inverse_logit(y, alpha), x)
    y2, log_det = logit_transform(x, alpha)
    torch.testing.assert_close(y2, y)
    x2, inv_log_det = inverse_logit_transform(y2, alpha)
    torch.testing.assert_close(x2, x)
    torch.testing.assert_close(inv_log_det, -log_det)
    assert log_det.shape == (64,)


@pytest.mark.parametrize("alpha", [0.0, 0.05])
def test_logit_log_det_matches_autograd(alpha: float) -> None:
    x = torch.rand(4, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 0.98 + 0.01
    _, log_det = logit_transform(x, alpha)
    y = logit_transform(x, alpha)[0]
    x_back, inv_log_det = inverse_logit_transform(y, alpha)
    for i in range(x.shape[0]):
        jac = torch.autograd.functional.jacobian(lambda v: logit_transform(v[None], alpha)[0][0], x[i])
        sign, expected = torch.linalg.slogdet(jac)
        assert sign > 0
        torch.testing.assert_close(log_det[i], expected)
        jac_inv = torch.autograd.functional.jacobian(lambda v: inverse_logit_transform(v[None], alpha)[0][0], y[i])
        torch.testing.assert_close(inv_log_det[i], torch.linalg.slogdet(jac_inv)[1])


def test_logit_finite_at_bounds() -> None:
    for dtype in (torch.float32, torch.float64):
        x = torch.tensor([[0.0, 1.0, 0.5]], dtype=dtype)
        y, log_det = logit_transform(x)
        assert torch.isfinite(y).all() and torch.isfinite(log_det).all()
        assert y[0, 0] < -15 and y[0, 1] > 15
        assert torch.isfinite(logit(x)).all()
        back = inverse_logit(y)
        assert ((back >= 0) & (back <= 1)).all()


def test_dequantized_pixels_through_logit() -> None:
    pixels = torch.tensor([[0, 255, 3]], dtype=torch.uint8).repeat(1000, 1)
    x = dequantize(pixels, generator=torch.Generator().manual_seed(2))
    y, log_det = logit_transform(x)
    assert torch.isfinite(y).all() and torch.isfinite(log_det).all()
    assert torch.equal(torch.floor(inverse_logit(y).double() * 256).clamp(max=255).long(), pixels.long())


def test_bits_per_dim_exact_cases() -> None:
    # If y ~ Logistic(0, 1) then sigmoid(y) ~ U(0, 1): the dequantized uniform density costs
    # exactly 8 bits per pixel, whatever the point.
    D = 784
    y = torch.randn(5, D, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 3
    log_p_y = (torch.nn.functional.logsigmoid(y) + torch.nn.functional.logsigmoid(-y)).sum(dim=1)
    x, _ = inverse_logit_transform(y)
    _, log_det = logit_transform(x)
    torch.testing.assert_close(bits_per_dim(log_p_y, log_det, D), torch.full((5,), 8.0, dtype=torch.float64))
    # a density twice the uniform one on the cube costs 1/D bits less per dimension
    bpd = bits_per_dim(torch.tensor([math.log(2.0)]), torch.zeros(1), 10)
    torch.testing.assert_close(bpd, torch.tensor([8.0 - 0.1]))


def test_preprocess_bad_arguments() -> None:
    x = torch.full((2, 3), 0.5)
    with pytest.raises(ValueError, match=r"alpha must be in \[0, 0.5\)"):
        logit(x, 0.5)
    with pytest.raises(ValueError, match=r"x01 must lie in \[0, 1\]"):
        logit_transform(x + 1)
    with pytest.raises(ValueError, match=r"x01 must lie in \[0, 1\]"):
        logit_transform(torch.full((2, 3), float("nan")))
    with pytest.raises(ValueError, match=r"x01 must have shape \(n, d\)"):
        logit_transform(torch.full((3,), 0.5))
    with pytest.raises(TypeError, match=r"x must be a floating tensor"):
        logit(torch.ones(2, 2, dtype=torch.int64))
    with pytest.raises(TypeError, match=r"y must be a torch.Tensor"):
        inverse_logit(np.zeros(3))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"D must be >= 1"):
        bits_per_dim(torch.zeros(1), torch.zeros(1), 0)
    with pytest.raises(TypeError, match=r"D must be an int"):
        bits_per_dim(torch.zeros(1), torch.zeros(1), 784.0)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- image grids


def test_make_image_grid_layout() -> None:
    images = np.stack([np.full(6, v) for v in (0.0, 0.25, 0.5, 0.75, 1.0)])  # five 2x3 images
    grid = make_image_grid(images, shape=(2, 3), nrow=3, padding=1, pad_value=0.5)
    assert grid.shape == (2 * 3 + 1, 3 * 4 + 1)
    assert np.all(grid[1:3, 1:4] == 0.0)  # first image, top left
    assert np.all(grid[4:6, 1:4] == 0.75)  # fourth image: row 1, column 0
    assert np.all(grid[4:6, 5:8] == 1.0)  # fifth image: row 1, column 1
    assert np.all(grid[4:6, 9:12] == 0.5)  # empty slot is padding
    assert make_image_grid(images.reshape(5, 2, 3), shape=(2, 3)).shape == make_image_grid(images, shape=(2, 3)).shape


def test_save_image_grid_writes_png(tmp_path: Path) -> None:
    from matplotlib.image import imread

    images = torch.rand(10, 784, generator=torch.Generator().manual_seed(0))
    out = save_image_grid(images, tmp_path / "sub" / "grid.png", nrow=5)
    assert out.exists() and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    png = imread(out)
    assert png.shape[:2] == (2 * 30 + 2, 5 * 30 + 2)


def test_image_grid_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"values in \[0, 1\]"):
        save_image_grid(np.full((2, 784), 255.0), tmp_path / "x.png")
    with pytest.raises(ValueError, match=r"images must have shape \(n, 64\)"):
        make_image_grid(np.zeros((2, 63)), shape=(8, 8))
    with pytest.raises(ValueError, match=r"shape must be a pair"):
        make_image_grid(np.zeros((2, 64)), shape=(8,))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"nrow must be a positive int"):
        make_image_grid(np.zeros((2, 784)), nrow=0)
    with pytest.raises(ValueError, match=r"at least one image"):
        make_image_grid(np.zeros((0, 784)))

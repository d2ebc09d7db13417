r"""Image pre-processing of the paper (Appendix B.6.2): dequantize, then model in logit space.

Pixels ``k`` in ``{0, ..., 255}`` become ``x = (k + u) / 256`` with ``u ~ U(0, 1)`` (a point in
``(0, 1)^D``), then ``y = logit(alpha + (1 - 2 alpha) x)`` in ``R^D``. Models are trained and
sampled in ``y``; samples are mapped back with the sigmoid for display.

Change of variables. If a model has log-density ``log p_Y(y)`` in logit space and
``log_det = log |det dy/dx|`` (returned by :func:`logit_transform`), then

* density on the unit cube: ``log p_X(x) = log p_Y(y) + log_det``;
* density on the 0..256 pixel scale ``z = 256 x``: ``log p_Z(z) = log p_X(x) - D log 256``;
* bits per dimension: ``bpd = -log p_Z(z) / (D log 2)``.

Averaged over data and dequantization noise, ``bpd`` upper-bounds the discrete model's
negative log-likelihood of the 8-bit images in bits per pixel; it is the number usually
reported for MNIST-like data.

Exact 0 and 1 would map to infinities, so values are clamped into ``[eps, 1 - eps]`` with
``eps`` the machine epsilon of the tensor's dtype before taking the logit.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..validation import float_tensor, positive_int, real, wrong_type

__all__ = [
    "dequantize",
    "logit",
    "inverse_logit",
    "logit_transform",
    "inverse_logit_transform",
    "bits_per_dim",
]


def _eps(dtype: torch.dtype) -> float:
    return float(torch.finfo(dtype).eps)


def _check_alpha(t: Tensor, name: str, alpha: float, min_dim: int = 0) -> float:
    """Check the tensor ``t`` (floating, at least ``min_dim`` dimensions) and return the squeeze
    ``alpha`` in [0, 0.5)."""
    float_tensor(t, name, min_dim=min_dim)
    a = real(alpha, "alpha")
    if not 0.0 <= a < 0.5:
        raise ValueError(f"alpha must be in [0, 0.5), got {alpha}")
    return a


def _check_unit(x: Tensor, name: str) -> None:
    if not bool(((x >= 0) & (x <= 1)).all()):
        raise ValueError(f"{name} must lie in [0, 1] (and be free of NaN)")


def dequantize(
    pixels: Tensor | np.ndarray,
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Uniformly dequantize integer pixels: ``(pixel + U(0, 1)) / 256``.

    The result lies strictly inside ``(0, 1)`` (it is clamped into ``[eps, 1 - eps]`` for the
    output dtype, which only touches a sliver of measure ~1e-7).

    Arguments:
        pixels: integer values in ``0..255`` (a uint8 array or tensor, any shape).
        generator: the source of the uniform noise.
        dtype: floating dtype of the result.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> x = dequantize(torch.tensor([[0, 128, 255]], dtype=torch.uint8), generator=g)
        >>> bool(((x > 0) & (x < 1)).all())
        True
    """
    if isinstance(pixels, np.ndarray):
        pixels = torch.from_numpy(np.ascontiguousarray(pixels))
    if not isinstance(pixels, Tensor):
        raise wrong_type("pixels", "a torch.Tensor or numpy array", pixels)
    if pixels.dtype == torch.bool or pixels.is_complex():
        raise TypeError(f"pixels must hold integers 0..255, got element type (dtype) {pixels.dtype}")
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating torch.dtype, got {dtype!r}")
    k = pixels.to(torch.float64)
    if not bool(((k >= 0) & (k <= 255) & (k == torch.round(k))).all()):
        raise ValueError("pixels must be integers in 0..255")
    u = torch.rand(k.shape, generator=generator, dtype=torch.float64, device=k.device)
    eps = _eps(dtype)
    return ((k + u) / 256.0).clamp(eps, 1.0 - eps).to(dtype)


def logit(x: Tensor, alpha: float = 0.0) -> Tensor:
    """Elementwise ``logit(alpha + (1 - 2 alpha) x)``, clamped to stay finite at 0 and 1.

    Example:
        >>> logit(torch.tensor([0.5]))
        tensor([0.])
    """
    a = _check_alpha(x, "x", alpha)
    eps = _eps(x.dtype)
    s = (a + (1.0 - 2.0 * a) * x).clamp(eps, 1.0 - eps)
    return torch.log(s) - torch.log1p(-s)


def inverse_logit(y: Tensor, alpha: float = 0.0) -> Tensor:
    """Inverse of :func:`logit`: ``(sigmoid(y) - alpha) / (1 - 2 alpha)``.

    Example:
        >>> inverse_logit(torch.tensor([0.0]))
        tensor([0.5000])
    """
    a = _check_alpha(y, "y", alpha)
    return (torch.sigmoid(y) - a) / (1.0 - 2.0 * a)


def logit_transform(x01: Tensor, alpha: float = 0.0) -> tuple[Tensor, Tensor]:
    """Map ``x01`` in ``[0, 1]^D`` to logit space and return the per-example log-Jacobian.

    ``y = logit(s)`` with ``s = alpha + (1 - 2 alpha) x`` elementwise, and
    ``log_det = sum_i [log(1 - 2 alpha) - log s_i - log(1 - s_i)] = log |det dy/dx|``,
    summed over all but the first (batch) dimension. At clamped entries (``x`` within
    machine epsilon of 0 or 1) the log-derivative is evaluated at the clamped point.

    Arguments:
        x01: tensor ``(n, d)`` (or ``(n, ...)``) with entries in ``[0, 1]``.
        alpha: squeeze towards 1/2 before the logit (RealNVP-style); the paper uses 0.

    Returns:
        ``(y, log_det)`` with ``y`` like ``x01`` and ``log_det`` of shape ``(n,)``.

    Example:
        >>> y, log_det = logit_transform(torch.full((2, 3), 0.5))
        >>> log_det  # dy/dx = 4 at x = 1/2, three dimensions
        tensor([4.1589, 4.1589])
    """
    a = _check_alpha(x01, "x01", alpha, min_dim=2)
    _check_unit(x01, "x01")
    eps = _eps(x01.dtype)
    s = (a + (1.0 - 2.0 * a) * x01).clamp(eps, 1.0 - eps)
    log_s, log_1ms = torch.log(s), torch.log1p(-s)
    y = log_s - log_1ms
    per_dim = math.log1p(-2.0 * a) - log_s - log_1ms
    return y, per_dim.flatten(1).sum(dim=1)


def inverse_logit_transform(y: Tensor, alpha: float = 0.0) -> tuple[Tensor, Tensor]:
    """Inverse of :func:`logit_transform`: ``x = (sigmoid(y) - alpha) / (1 - 2 alpha)``.

    Returns ``(x01, log_det)`` with ``log_det = log |det dx/dy|`` per example, the negative of
    the forward log-Jacobian, computed stably as
    ``sum_i [log sigmoid(y_i) + log sigmoid(-y_i) - log(1 - 2 alpha)]``.

    Example:
        >>> x, log_det = inverse_logit_transform(torch.zeros(2, 3))
        >>> x
        tensor([[0.5000, 0.5000, 0.5000],
                [0.5000, 0.5000, 0.5000]])
    """
    a = _check_alpha(y, "y", alpha, min_dim=2)
    x = (torch.sigmoid(y) - a) / (1.0 - 2.0 * a)
    per_dim = F.logsigmoid(y) + F.logsigmoid(-y) - math.log1p(-2.0 * a)
    return x, per_dim.flatten(1).sum(dim=1)


def bits_per_dim(log_prob_logit_space: Tensor, log_det: Tensor, D: int) -> Tensor:
    """Bits per dimension on the 0..255 pixel scale from a log-density in logit space.

    ``log p_pixel = log_prob_logit_space + log_det - D log 256`` and
    ``bpd = -log p_pixel / (D log 2)``, where ``log_det`` is the forward log-Jacobian from
    :func:`logit_transform` of the dequantized data ``x = (pixel + u) / 256``. Averaging the
    result over examples gives the usual dequantized bits/dim (an upper bound on the
    discrete negative log-likelihood in bits per pixel).

    Arguments:
        log_prob_logit_space: ``log p_Y(y)`` per example, shape ``(n,)``.
        log_det: ``log |det dy/dx|`` per example, shape ``(n,)`` (broadcastable).
        D: number of dimensions (pixels) per example.

    Returns:
        Bits per dimension per example, shape ``(n,)``.

    Example:
        >>> # the uniform density on [0, 1]^D costs exactly 8 bits per pixel
        >>> bits_per_dim(torch.zeros(1), torch.zeros(1), 784)
        tensor([8.])
    """
    float_tensor(log_prob_logit_space, "log_prob_logit_space")
    float_tensor(log_det, "log_det")
    D = positive_int(D, "D")
    log_p_pixel = log_prob_logit_space + log_det - D * math.log(256.0)
    return -log_p_pixel / (D * math.log(2.0))

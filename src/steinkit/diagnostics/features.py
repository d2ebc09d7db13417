r"""Three Stein features with mean zero under the target, built from a reference part of the draws.

For a vector field f and the target's score s = ∇ log p, the Langevin Stein operator
A f = sᵀf + ∇·f has E_p[A f] = 0 (integration by parts, p f → 0 at infinity). From the reference
draws (the first half of a chain) steinkit fixes three fields and evaluates A f at new draws y:

* **location**, f = ū (the reference's mean score, a constant field): A f(y) = ūᵀ s(y). Under a
  law q whose mean score E_q s ≠ 0 (a chain that has not reached the bulk of p) its mean is
  ūᵀ E_q s ≈ ‖E_q s‖² > 0: one-sided.
* **scale**, f(y) = r w with r = y − c (c the reference's mean), w = (1 + ‖r‖²/h²)^(−1/2):
  A f = w (sᵀr + d) − (‖r‖²/h²) w³. Without the weight it is sᵀr + d, whose mean under
  N(μ, Σ) targets is d − tr(Σ⁻¹ Cov_q) (draws too spread out or too tight); the weight bounds
  it where s grows at most linearly and tames heavy tails elsewhere. Two-sided.
* **kernel**, f = the kernel Stein witness of the reference, A f(y) = Σ_a ω_a u_p(a, y) with
  u_p the Langevin Stein kernel (IMQ, β = −1/2, by default) and ω the reference's weights. The
  mean of this feature over draws of q independent of the reference is the squared kernel Stein
  discrepancy KSD²(q, p) ≥ 0 (the cross U-statistic), which the IMQ kernel makes a measure of
  weak convergence (Gorham & Mackey 2017): one-sided, and the discrepancy reported.

Example:
    >>> import torch
    >>> from steinkit.kernels import IMQ
    >>> g = torch.Generator().manual_seed(0)
    >>> a, y = torch.randn(500, 2, generator=g, dtype=torch.float64), torch.randn(20000, 2, generator=g, dtype=torch.float64)
    >>> ref = reference(a, -a, None, IMQ(1.0), 1.0)
    >>> f = stein_features(ref, y, -y)           # y drawn from the target N(0, I): means near 0
    >>> bool((f.mean(0).abs() < 4 * f.std(0) / 20000 ** 0.5).all())
    True
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

__all__ = ["MEMBERS", "WITNESS_POINTS", "Reference", "reference", "stein_features", "thin_points"]

MEMBERS = ("location", "scale", "kernel")
#: which members are tested two-sided
TWO_SIDED = (False, True, False)
#: the kernel witness is a sum over at most this many reference draws, evenly spaced
WITNESS_POINTS = 256
_BLOCK_ENTRIES = 1 << 17  # entries of one (points, block) Stein matrix: its temporaries stay in cache (4x faster)


class Reference(NamedTuple):
    """What the reference draws fix: ``center`` c (d,), ``direction`` ū (d,), the kernel witness's
    ``points``, their ``scores`` and normalised ``weights`` ω, the ``kernel`` (one bandwidth) and
    the scale feature's ``h``."""

    center: Tensor
    direction: Tensor
    points: Tensor
    scores: Tensor
    weights: Tensor
    kernel: Any
    h: float


def thin_points(n: int, most: int = WITNESS_POINTS) -> Tensor:
    """At most ``most`` evenly spaced indices of 0..n−1 (all of them when n <= most).

    Example:
        >>> thin_points(10, 4).tolist()
        [0, 3, 6, 9]
    """
    return torch.as_tensor(np.unique(np.linspace(0, n - 1, min(n, most)).round().astype(np.int64)))


def reference(x: Tensor, s: Tensor, w: Tensor | None, kernel: Any, h: float) -> Reference:
    """The :class:`Reference` of draws ``x`` (n, d) with float64 scores ``s`` and weights ``w``
    (n,) or None; ``kernel`` has a fixed bandwidth, ``h`` is the scale feature's length.

    Example:
        >>> import torch
        >>> from steinkit.kernels import IMQ
        >>> x = torch.zeros(700, 3, dtype=torch.float64)
        >>> reference(x, -x, None, IMQ(1.0), 1.0).points.shape
        torch.Size([256, 3])
    """
    x = x.to(torch.float64)
    weights = torch.ones(x.shape[0], dtype=torch.float64, device=x.device) if w is None else w.to(torch.float64)
    share = weights / weights.sum()
    idx = thin_points(x.shape[0]).to(x.device)
    pw = weights[idx]
    return Reference(share @ x, share @ s, x[idx], s[idx], pw / pw.sum(), kernel, float(h))


def stein_features(ref: Reference, y: Tensor, sy: Tensor) -> Tensor:
    """(n, 3) location, scale and kernel features of :mod:`this module <.features>` at draws
    ``y`` (n, d) with float64 scores ``sy``.

    Example:
        >>> import torch
        >>> from steinkit.kernels import IMQ
        >>> x = torch.randn(50, 2, dtype=torch.float64)
        >>> stein_features(reference(x, -x, None, IMQ(1.0), 1.0), x, -x).shape
        torch.Size([50, 3])
    """
    y = y.to(torch.float64)
    d = y.shape[1]
    location = sy @ ref.direction
    r = y - ref.center
    q = (r * r).sum(1) / (ref.h * ref.h)
    w = (1.0 + q).rsqrt()
    scale = w * ((sy * r).sum(1) + d) - q * w.pow(3)
    kernel = torch.empty(y.shape[0], dtype=torch.float64, device=y.device)
    block = max(16, _BLOCK_ENTRIES // ref.points.shape[0]) if y.device.type == "cpu" else y.shape[0]
    for a in range(0, y.shape[0], block):
        u = ref.kernel.stein_matrix(ref.points, ref.scores, y[a:a + block], sy[a:a + block])
        kernel[a:a + block] = ref.weights @ u
    return torch.stack([location, scale, kernel], 1)

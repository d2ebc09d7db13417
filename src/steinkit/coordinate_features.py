"""Fixed per-coordinate features a critic's closed-form last layer may add to its network.

Output j of a critic with these features gets Σ_m α_jm u_m(z)_j, where each u_m maps the critic's
standardised input z (n, d) to (n, d) and acts on coordinate j through z_j and the mean square
r = ‖z‖²/d only. They are the shapes a small network learns slowly from few points in high
dimension: a per-coordinate rescaling (z_j), steps and soft steps (tanh(k·z_j), k = 1, 3, 10: the
optimal critic of Laplace data against a Gaussian), an even term (log cosh z_j: skew) and radial
shrinkage (z_j/(c + r): the score of a Student-t or any spherical model). Each costs one parameter
per coordinate, so d·M in all, against d² for a linear map.

The Stein term of output j needs only ∂u_m(z)_j/∂z_j, so the features' trace is exact and cheap.

Example:
    >>> import torch
    >>> z = torch.randn(5, 3, generator=torch.Generator().manual_seed(0))
    >>> u, du = coordinate_features(z)
    >>> u.shape, du.shape, len(FEATURE_NAMES)
    (torch.Size([5, 3, 7]), torch.Size([5, 3, 7]), 7)
"""

from __future__ import annotations

from typing import Iterator

import torch
from torch import Tensor

__all__ = ["coordinate_features", "feature_pairs", "FEATURE_NAMES", "N_FEATURES"]

_RADIAL = (0.1, 1.0)  # the offsets c of z_j/(c + r)
FEATURE_NAMES = ("z", "tanh(z)", "tanh(3z)", "tanh(10z)", "log cosh(z)") + tuple(f"z/({c:g} + r)" for c in _RADIAL)
N_FEATURES = len(FEATURE_NAMES)


def coordinate_features(z: Tensor) -> tuple[Tensor, Tensor]:
    """The features u (…, n, d, M) at z (…, n, d) and their diagonal derivatives ∂u_m(z)_j/∂z_j."""
    pairs = list(feature_pairs(z))
    return torch.stack([u for u, _ in pairs], -1), torch.stack([du for _, du in pairs], -1)


def feature_pairs(z: Tensor) -> Iterator[tuple[Tensor, Tensor]]:
    """Feature by feature, u_m(z) and ∂u_m(z)_j/∂z_j, each shaped like z (one at a time: a critic
    evaluates them without holding all M)."""
    yield z, torch.ones_like(z)
    for k in (1.0, 3.0, 10.0):
        t = torch.tanh(k * z)
        yield t, k * (1 - t * t)
    yield _log_cosh(z), torch.tanh(z)
    d = z.shape[-1]
    r = z.pow(2).mean(-1, keepdim=True)
    for c in _RADIAL:
        inv = 1.0 / (c + r)
        yield z * inv, inv - (2.0 / d) * z * z * inv * inv


def _log_cosh(z: Tensor) -> Tensor:
    """log cosh z without overflow: |z| + log1p(e^{−2|z|}) − log 2."""
    a = z.abs()
    return a + torch.log1p(torch.exp(-2 * a)) - 0.6931471805599453

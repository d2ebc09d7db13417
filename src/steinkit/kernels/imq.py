"""The inverse multiquadric (IMQ) kernel k(x, y) = (c² + ‖x − y‖²_Γ / h²)^β, β < 0.

With β ∈ (−1, 0) its Stein discrepancy controls weak convergence (Gorham & Mackey 2017);
KSDAgg and the sequential witness test use β = −1/2, c = 1.

Example:
    >>> import torch
    >>> x = torch.zeros(1, 2, dtype=torch.float64)
    >>> float(IMQ(1.0).stein_matrix(x, x, x, x))   # −2β d / h² at r = 0 with zero scores
    2.0
"""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass

from torch import Tensor

from ..validation import positive_float, real
from .base import Radial

__all__ = ["IMQ"]


@dataclass(frozen=True, eq=False, repr=False)
class IMQ(Radial):
    """k(x, y) = (c² + ‖x − y‖²_Γ / h²)^β.

    Arguments:
        bandwidth, preconditioner: as :class:`~steinkit.kernels.Radial`.
        beta: β < 0 (keyword only).
        c: c > 0 (keyword only).

    Example:
        >>> IMQ(beta=-0.3)
        IMQ(bandwidth='median', beta=-0.3, c=1.0)
    """

    _: KW_ONLY
    beta: float = -0.5
    c: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        beta = real(self.beta, "beta")
        if beta >= 0:
            raise ValueError(f"beta must be < 0 (the IMQ kernel (c² + z)^β), got {self.beta!r}")
        object.__setattr__(self, "beta", beta)
        object.__setattr__(self, "c", positive_float(self.c, "c"))

    def profile(self, z: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """φ = (c² + z)^β, φ' = βφ / (c² + z), φ'' = (β − 1)φ' / (c² + z)."""
        base = z + self.c * self.c
        phi = base.pow(self.beta)
        d1 = phi.div(base).mul_(self.beta)
        return phi, d1, d1.div(base).mul_(self.beta - 1.0)

"""The Gaussian (RBF) kernel k(x, y) = exp(−‖x − y‖²_Γ / (2h²)).

Its Stein kernel (Liu, Lee & Jordan 2016), without a preconditioner and with r = x − y:
u_q(x, y) = k [s(x)ᵀs(y) + (s(x) − s(y))ᵀr / h² + d / h² − ‖r‖² / h⁴].

Example:
    >>> import torch
    >>> x = torch.zeros(1, 3, dtype=torch.float64)
    >>> float(Gaussian(2.0).stein_matrix(x, x, x, x))   # d / h² at r = 0 with zero scores
    0.75
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from .base import Radial

__all__ = ["Gaussian"]


@dataclass(frozen=True, eq=False, repr=False)
class Gaussian(Radial):
    """k(x, y) = exp(−‖x − y‖²_Γ / (2h²)); arguments as :class:`~steinkit.kernels.Radial`.

    Example:
        >>> Gaussian()
        Gaussian(bandwidth='median')
    """

    def profile(self, z: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """φ = exp(−z/2), φ' = −φ/2, φ'' = φ/4."""
        phi = z.mul(-0.5).exp_()
        return phi, phi.mul(-0.5), phi.mul(0.25)

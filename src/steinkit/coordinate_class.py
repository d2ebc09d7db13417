"""The per-coordinate class of critics on fixed features: its features and Stein coefficients per row.

Output j of a critic of the class is f_j = θ_jᵀψ_j(x) with ψ_j = [v(z)_j, 1] (K = M + 1 values):
z = (x − loc)/scale coordinate by coordinate, and v_m the coordinate features u_m of
:mod:`steinkit.coordinate_features` less their least-squares fit a_jm + b_jm·z_j on the rows the
class was fitted to (v_0 = u_0 = z). The fit leaves the class as it is (z and the constant are in
it); it makes each feature carry what it adds to a rescaling of z_j, so that a ridge relative to a
feature's mean square does not shrink a small but signal-carrying difference (z_j/(c + ‖z‖²/d)
against z_j when ‖z‖²/d is about 1, a too-heavy-tailed model's misfit).

The Stein terms are linear in θ: T_q f = Σ_j θ_jᵀτ_j with τ_j = s_j ψ_j + ∂_jψ_j (s the model's
score), which :meth:`CoordinateClass.terms` gives per row and :meth:`CoordinateClass.sums` sums.
Used by the estimate's bound (:func:`steinkit.feature_bounds.coordinate_lsd`) and by the witness
test's ``"coordinate"`` member (:mod:`steinkit.gof.witnesses`).

Example:
    >>> import torch
    >>> x = torch.randn(500, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    >>> cls = CoordinateClass.fit(x)
    >>> tau, psi = cls.terms(x, -x)
    >>> tuple(tau.shape), bool(psi[..., 1:-1].mean(0).abs().max() < 1e-9)   # features less their fit: mean 0
    ((500, 3, 8), True)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .coordinate_features import N_FEATURES, coordinate_features
from .validation import flag

__all__ = ["CoordinateClass", "varying"]

_BLOCK = 2**22
"""About this many feature values are held at once when the class is fitted."""


def varying(x: Tensor) -> Tensor:
    """The coordinates of x (n, d) that take more than one value (a bool mask on the CPU): a
    constant one has no spread for a feature to use (and the data no density there)."""
    return (x.detach().amax(0) > x.detach().amin(0)).cpu()


@dataclass(frozen=True)
class CoordinateClass:
    """The class's fixed features, fitted to some rows: ``loc``, ``scale``, ``keep`` (d,), the
    features' fit on [1, z_j], ``shift`` and ``slope`` (d, M), and ``used`` (d, M): False where a
    feature is a function of z_j on the rows (a coordinate with two values), so that less its fit
    it is 0 and is left out; float64 on the CPU."""

    loc: Tensor
    scale: Tensor
    keep: Tensor
    shift: Tensor
    slope: Tensor
    used: Tensor

    @classmethod
    def fit(cls, x: Tensor, residual: bool = True) -> CoordinateClass:
        """Standardise by the rows' mean and std (coordinates that do not vary are left out: their
        τ is 0) and fit each feature on [1, z_j] by least squares, reading about 2²² feature values
        at a time; ``residual=False`` leaves the features as they are (shift = slope = 0)."""
        keep = varying(x)
        loc, scale = x.detach().mean(0).double().cpu(), x.detach().std(0).double().cpu()
        scale = torch.where(keep & (scale > 0), scale, torch.ones_like(scale))
        d = x.shape[1]
        total = torch.zeros(d, N_FEATURES, dtype=torch.float64)
        cross, power = torch.zeros_like(total), torch.zeros_like(total)
        first, square = torch.zeros(d, 1, dtype=torch.float64), torch.zeros(d, 1, dtype=torch.float64)
        step = max(1, _BLOCK // (d * N_FEATURES))
        for lo in range(0, x.shape[0], step):
            z = (x[lo:lo + step].detach().double().cpu() - loc) / scale
            u, _ = coordinate_features(z)
            total += u.sum(0)
            power += u.pow(2).sum(0)
            cross += (u * z.unsqueeze(-1)).sum(0)
            first += z.sum(0).unsqueeze(-1)
            square += z.pow(2).sum(0).unsqueeze(-1)
        mean_z = first / x.shape[0]  # 0 up to rounding
        shift = total / x.shape[0]
        slope = (cross / x.shape[0] - shift * mean_z) / (square / x.shape[0] - mean_z**2).clamp_min(1e-300)
        shift = shift - slope * mean_z
        shift[:, 0], slope[:, 0] = 0.0, 0.0
        spread = power / x.shape[0] - (total / x.shape[0]) ** 2
        left = (power - shift * total - slope * cross) / x.shape[0]  # the fit's mean square error
        used = left > 1e-9 * spread
        used[:, 0] = True
        if not flag(residual, "residual"):
            shift, slope, used = torch.zeros_like(shift), torch.zeros_like(slope), torch.ones_like(used)
        return cls(loc, scale, keep, shift, slope, used)

    def terms(self, x: Tensor, s: Tensor) -> tuple[Tensor, Tensor]:
        """Per row, τ (n, d, K) and ψ (n, d, K) at rows x (n, d) with the model's scores s there
        (float64 on the CPU); τ_j = 0 on the coordinates left out."""
        z = (x.double().cpu() - self.loc) / self.scale
        u, du = coordinate_features(z)  # (n, d, M)
        u, du = (u - self.shift - self.slope * z.unsqueeze(-1)) * self.used, (du - self.slope) * self.used
        ones = torch.ones(*u.shape[:-1], 1, dtype=u.dtype)
        psi = torch.cat([u, ones], -1)
        tau = s.double().cpu().unsqueeze(-1) * psi + torch.cat([du, 0 * ones], -1) / self.scale.reshape(-1, 1)
        tau[:, ~self.keep] = 0.0
        return tau, psi

    def sums(self, x: Tensor, s: Tensor) -> tuple[Tensor, Tensor]:
        """Σ_i τ_ij (d, K) and Σ_i ψ_ijψ_ijᵀ (d, K, K) over rows x with scores s."""
        tau, psi = self.terms(x, s)
        return tau.sum(0), torch.einsum("njk,njl->jkl", psi, psi)

    def witness(self, tau: Tensor, c: Tensor, ridge: float) -> Tensor:
        """The coefficients θ_j = (C_j + ridge·diag C_j)⁻¹b_j (d, K) from mean Stein coefficients b
        (d, K) and second moments C (d, K, K), as :meth:`sums` gives them over a number of rows:
        0 on the coordinates and features left out."""
        c = c + torch.diag_embed(ridge * torch.diagonal(c, dim1=-2, dim2=-1))
        out = self._pad(c, torch.diagonal(c, dim1=-2, dim2=-1) <= 0)
        return torch.linalg.solve(out, tau.unsqueeze(-1)).squeeze(-1)

    def pooled_witness(self, tau: Tensor, c: Tensor, ridge: float) -> Tensor:
        """One θ (K,) for every coordinate from the same sums: (Σ_j C_j + ridge·diag)⁻¹Σ_j b_j,
        0 on a feature no coordinate uses (the coordinates left out do not count)."""
        c, tau = c[self.keep].sum(0), tau[self.keep].sum(0)
        c = c + torch.diag(ridge * torch.diagonal(c))
        empty = torch.diagonal(c) <= 0
        return torch.linalg.solve(c + torch.diag(empty.double()), tau)

    def _pad(self, c: Tensor, empty: Tensor) -> Tensor:
        """C with 1 on the diagonal of each left-out coordinate, unused or empty feature, so that
        their (zero) coefficients solve."""
        left_out = torch.cat([~self.used, torch.zeros(self.used.shape[0], 1, dtype=torch.bool)], 1)
        left_out = left_out | empty | ~self.keep.unsqueeze(-1)
        c = torch.where(left_out.unsqueeze(-1) | left_out.unsqueeze(-2), torch.zeros_like(c), c)
        return c + torch.diag_embed(left_out.double())

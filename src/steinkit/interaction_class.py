"""Critics of pairwise cubic interactions, with each output's partner coordinates screened on other rows.

Output j of a critic of the class is a cubic polynomial in z_j and a few partner coordinates z_k
(z = (x − loc)/scale coordinate by coordinate): f_j = θ_jᵀψ_j with ψ_j the monomials
z_j^a·z_k^b of degree a + b ≤ 3 (the constant and z_j, z_j², z_j³; for each partner k the six
with b ≥ 1), K = 4 + 6·P for P partners. A misfit that bends one coordinate by another (a banana,
a funnel) has a score difference of this kind in a few pairs of coordinates, which neither a
linear map nor per-coordinate features hold, and which a network fitted on n points finds slowly
among d coordinates.

The partners are chosen on screening rows that the bound never scores
(:meth:`InteractionClass.screen`): for every pair (j, k), the Hotelling statistic
n·b̄ᵀS⁻¹b̄ of the six monomials' Stein terms τ = s_j ψ + ∂_jψ (b̄ their mean, S their covariance),
and output j keeps the P largest. Given those rows the features are fixed, so the U-statistic of
:mod:`steinkit.feature_bounds` on the other rows is a lower bound of the LSD like the other
classes'.

Example:
    >>> import torch
    >>> from steinkit.problems.distributions import Banana
    >>> x = Banana(6, 1.0).sample(2000, generator=torch.Generator().manual_seed(0))
    >>> s = -x / torch.tensor([1.0, 3.0, 1, 1, 1, 1], dtype=torch.float64)   # the moment-matched Gaussian's score
    >>> cls = InteractionClass.screen(x, s)
    >>> cls.partners[:2, 0].tolist()                                        # the bent pair finds itself
    [1, 0]
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .coordinate_class import varying
from .validation import positive_int

__all__ = ["InteractionClass", "PARTNERS", "MONOMIALS"]

PARTNERS = 2
"""Partner coordinates per output (fewer when the data have fewer other coordinates that vary)."""
MONOMIALS = ((0, 1), (1, 1), (2, 1), (0, 2), (1, 2), (0, 3))
"""The exponents (a, b) of z_j^a·z_k^b that a partner k adds to output j."""


def _partner_block(zj: Tensor, zk: Tensor) -> tuple[Tensor, Tensor]:
    """The six monomials of :data:`MONOMIALS` and their ∂/∂z_j, (..., 6) each, at z_j and z_k
    (broadcast against each other)."""
    zj, zk = torch.broadcast_tensors(zj, zk)
    u = torch.stack([zj**a * zk**b for a, b in MONOMIALS], -1)
    du = torch.stack([(a * zj ** (a - 1) if a else 0 * zj) * zk**b for a, b in MONOMIALS], -1)
    return u, du


def _own_block(zj: Tensor) -> tuple[Tensor, Tensor]:
    """[1, z_j, z_j², z_j³] and their derivatives, (..., 4) each."""
    one = torch.ones_like(zj)
    return torch.stack([one, zj, zj**2, zj**3], -1), torch.stack([0 * one, one, 2 * zj, 3 * zj**2], -1)


def _quadratic_form(cov: Tensor, b: Tensor) -> Tensor:
    """bᵀC⁺b per batch entry of symmetric C (..., K, K) and b (..., K), over C's eigenvalues above
    1e-10 of its largest (a block whose terms are collinear on the rows counts its span once)."""
    values, vectors = torch.linalg.eigh(cov)
    keep = values > 1e-10 * values.amax(-1, keepdim=True).clamp_min(1e-300)
    proj = (vectors.transpose(-1, -2) @ b.unsqueeze(-1)).squeeze(-1)
    return torch.where(keep, proj**2 / torch.where(keep, values, torch.ones_like(values)), 0.0).sum(-1)


def _hotelling(z: Tensor, s: Tensor, scale: Tensor, chunk_bytes: int = 2**26) -> Tensor:
    """For every pair (j, k) of columns of z (n, d), n·b̄ᵀS⁺b̄ of the six monomials' Stein terms
    τ_a = s_j·z_j^{a₁}z_k^{a₂} + a₁z_j^{a₁−1}z_k^{a₂}/scale_j (b̄ their mean, S their covariance),
    (d, d). Each τ_a is h_{a₁}(z_j, s_j)·z_k^{a₂}, so every mean and cross moment over the rows is a
    matrix product of a column function of j with a power of z_k: d² pairs in a few GEMMs, output
    rows j a chunk at a time (about ``chunk_bytes`` of moments held)."""
    n, d = z.shape
    h = [s, s * z + 1 / scale, s * z**2 + 2 * z / scale]  # h_{a₁}, a₁ = 0, 1, 2
    powers = {q: z**q for q in range(1, 7)}
    k = len(MONOMIALS)
    out = torch.empty(d, d, dtype=z.dtype)
    step = max(1, chunk_bytes // (8 * d * k * k))
    for lo in range(0, d, step):
        rows = slice(lo, min(d, lo + step))
        mean = torch.stack([h[a1][:, rows].T @ powers[a2] for a1, a2 in MONOMIALS], -1) / n  # (c, d, 6)
        second = torch.empty(*mean.shape, k, dtype=z.dtype)
        for a, (a1, a2) in enumerate(MONOMIALS):
            for b, (b1, b2) in enumerate(MONOMIALS[a:], a):
                second[..., a, b] = (h[a1][:, rows] * h[b1][:, rows]).T @ powers[a2 + b2] / n
                second[..., b, a] = second[..., a, b]
        cov = (second - mean.unsqueeze(-1) * mean.unsqueeze(-2)) * (n / max(n - 1, 1))
        out[rows] = n * _quadratic_form(cov, mean)
    return out


@dataclass(frozen=True)
class InteractionClass:
    """The class's fixed features: ``loc`` and ``scale`` (d,), ``outputs`` (the coordinates that
    vary, the outputs of the class) and ``partners`` (len(outputs), P), each output's partner
    coordinates; float64 and int64 on the CPU."""

    loc: Tensor
    scale: Tensor
    outputs: Tensor
    partners: Tensor

    @classmethod
    def screen(cls, x: Tensor, s: Tensor, partners: int = PARTNERS, loc: Tensor | None = None,
               scale: Tensor | None = None) -> InteractionClass:
        """Each output's ``partners`` coordinates with the largest Hotelling statistic of the six
        monomials' Stein terms on the rows x (n, d) with the model's scores s there; ``loc`` and
        ``scale`` standardise (default: the rows' mean and std). Needs two coordinates that vary."""
        positive_int(partners, "partners")
        x, s = x.detach().double().cpu(), s.detach().double().cpu()
        keep = varying(x)
        outputs = torch.nonzero(keep).flatten()
        if outputs.numel() < 2:
            raise ValueError("an interaction class needs at least two coordinates that vary")
        loc = x.mean(0) if loc is None else loc.double().cpu()
        scale = x.std(0) if scale is None else scale.double().cpu()
        scale = torch.where(keep & (scale > 0), scale, torch.ones_like(scale))
        z = ((x - loc) / scale)[:, outputs]
        n, p = x.shape[0], min(partners, outputs.numel() - 1)
        t2 = _hotelling(z, s[:, outputs], scale[outputs])
        t2.fill_diagonal_(-torch.inf)
        found = outputs[torch.topk(t2, p, dim=1).indices]
        return cls(loc, scale, outputs, found)

    @property
    def size(self) -> int:
        """Features per output, K = 4 + 6·P."""
        return 4 + len(MONOMIALS) * self.partners.shape[1]

    def terms(self, x: Tensor, s: Tensor) -> tuple[Tensor, Tensor]:
        """Per row, τ (n, len(outputs), K) and ψ (n, len(outputs), K) at rows x (n, d) with the
        model's scores s there (float64 on the CPU)."""
        z = (x.detach().double().cpu() - self.loc) / self.scale
        zj = z[:, self.outputs]  # (n, d')
        own, down = _own_block(zj)
        u, du = _partner_block(zj.unsqueeze(-1), z[:, self.partners])  # (n, d', P, 6)
        psi = torch.cat([own, u.flatten(-2)], -1)
        dpsi = torch.cat([down, du.flatten(-2)], -1)
        tau = s.detach().double().cpu()[:, self.outputs, None] * psi + dpsi / self.scale[self.outputs, None]
        return tau, psi

    def sums(self, x: Tensor, s: Tensor) -> tuple[Tensor, Tensor]:
        """Σ_i τ_ij (d', K) and Σ_i ψ_ijψ_ijᵀ (d', K, K) over rows x with scores s."""
        tau, psi = self.terms(x, s)
        return tau.sum(0), torch.einsum("njk,njl->jkl", psi, psi)

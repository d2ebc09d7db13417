"""A level-corrected p-value for the largest of several studentised statistics on one sample.

M critics, fixed before the test sample is seen (fitted on other data), give per-point Stein
terms h_m(x_i) on the test sample, i = 1..n. Under H0 every h_m has mean zero, so by the
multivariate central limit theorem the vector of t_m = √n · mean_i h_m / std_i h_m tends to
N(0, R), R the correlation of (h_1, ..., h_M) under the data distribution. The test rejects for
large max_m t_m; its p-value P(max_m Z_m ≥ max_m t_m), Z ~ N(0, R̂), with R̂ the sample
correlation of the terms, is computed from Gaussian draws. This corrects for testing M
statistics at once exactly as much as their correlation requires: M copies of one critic cost
nothing, M unrelated critics cost as much as Bonferroni's correction at most.

Example:
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> terms = torch.randn(3, 500, generator=g, dtype=torch.float64)   # three null critics
    >>> t_max, p, t = max_t_pvalue(terms, generator=g)
    >>> 0.0 < p <= 1.0, t.shape
    (True, torch.Size([3]))
    >>> p_shift = max_t_pvalue(terms + 0.3, generator=g)[1]              # a real departure
    >>> p_shift < 1e-3
    True
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..validation import positive_int

__all__ = ["max_normal_pvalue", "max_t_pvalue", "studentised", "term_correlation"]


def studentised(terms: Tensor) -> Tensor:
    """t = √n · mean / std over the last axis; a row with zero spread gets t = +∞ if its mean is
    positive (under H0 the mean is zero) and 0 otherwise.

    Example:
        >>> studentised(torch.tensor([[1.0, 3.0], [2.0, 2.0], [0.0, 0.0]], dtype=torch.float64)).tolist()
        [2.0, inf, 0.0]
    """
    n = terms.shape[-1]
    std, mean = terms.std(-1), terms.mean(-1)
    t = math.sqrt(n) * mean / torch.where(std > 0, std, torch.ones_like(std))
    flat = torch.where(mean > 0, torch.full_like(t, math.inf), torch.zeros_like(t))
    return torch.where(std > 0, t, flat)


def max_t_pvalue(
    terms: Tensor, *, generator: torch.Generator | None = None, n_draws: int = 20000
) -> tuple[float, float, Tensor]:
    """The largest studentised statistic of M sets of terms and its level-corrected p-value.

    Arguments:
        terms: (M, n) Stein terms of M critics at the same n test points.
        generator: random generator of the Gaussian draws (on the CPU).
        n_draws: Gaussian draws; the p-value is (1 + #{max Z ≥ t_max}) / (1 + n_draws), which
            is never below 1/(1 + n_draws) and errs by at most √(p(1 − p)/n_draws).

    Returns:
        (t_max, p-value, the M statistics t).
    """
    n_draws = positive_int(n_draws, "n_draws")
    if terms.dim() != 2 or terms.shape[1] < 2:
        raise ValueError(f"terms must be (M, n) with n >= 2, got shape {tuple(terms.shape)}")
    h = terms.detach().to("cpu", torch.float64)
    t = studentised(h)
    if h.shape[0] == 1:
        t_max = float(t.max())
        return t_max, 0.5 * math.erfc(t_max / math.sqrt(2.0)), t
    t_max, p = max_normal_pvalue(t, term_correlation(h), generator=generator, n_draws=n_draws)
    return t_max, p, t


def term_correlation(terms: Tensor) -> Tensor:
    """The (M, M) sample correlation of M rows of terms (float64, CPU); a constant row counts as
    uncorrelated with the others.

    Example:
        >>> h = torch.tensor([[1.0, 2.0, 3.0], [2.0, 4.0, 6.0], [5.0, 5.0, 5.0]], dtype=torch.float64)
        >>> term_correlation(h).round(decimals=6).tolist()
        [[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    """
    h = terms.detach().to("cpu", torch.float64)
    centred = h - h.mean(1, keepdim=True)
    norms = centred.norm(dim=1, keepdim=True)
    unit = torch.where(norms > 0, centred / torch.where(norms > 0, norms, torch.ones_like(norms)), 0.0)
    return unit @ unit.T + torch.diag((norms.squeeze(1) == 0).to(h.dtype))


def max_normal_pvalue(
    z: Tensor, corr: Tensor, *, weights: Tensor | None = None, generator: torch.Generator | None = None,
    n_draws: int = 20000
) -> tuple[float, float]:
    """(max z, P(max Z ≥ max z)) for Z ~ N(0, corr), from ``n_draws`` Gaussian draws (on the
    generator's device); the p-value is (1 + #exceedances) / (1 + n_draws).

    With ``weights`` ν (positive, one per statistic; their scale does not matter) the test
    rejects for small min_i Φ̄(z_i)/ν_i instead, so that statistic i gets a share of the level in
    proportion to ν_i (equal ν is the maximum); it returns the z of the statistic that attains
    the minimum and P(min_i Φ̄(Z_i)/ν_i ≤ the observed one).

    Example:
        >>> z_max, p = max_normal_pvalue(torch.tensor([1.0, 1.0]), torch.ones(2, 2), n_draws=100000,
        ...                              generator=torch.Generator().manual_seed(0))
        >>> round(p, 2)                                  # one statistic twice: 1 − Φ(1)
        0.16
    """
    n_draws = positive_int(n_draws, "n_draws")
    z = z.detach().to("cpu", torch.float64)
    corr = corr.detach().to("cpu", torch.float64)
    if corr.shape != (z.shape[0], z.shape[0]):
        m = z.shape[0]
        raise ValueError(f"corr must be ({m}, {m}) for {m} statistics, got {tuple(corr.shape)}")
    if weights is not None:
        weights = weights.detach().to("cpu", torch.float64)
        if weights.shape != z.shape or not bool((weights > 0).all()) or not bool(torch.isfinite(weights).all()):
            raise ValueError(f"weights must be {z.shape[0]} positive finite numbers, got {weights.tolist()}")
    evals, evecs = torch.linalg.eigh(corr)
    root = evecs * evals.clamp(min=0.0).sqrt()
    device = "cpu" if generator is None else generator.device
    draws = torch.randn(n_draws, z.shape[0], generator=generator, dtype=torch.float64, device=device).cpu() @ root.T
    if weights is None:
        z_max = float(z.max())
        return z_max, (1 + int((draws.max(1).values >= z_max).sum())) / (1 + n_draws)
    scaled = torch.special.ndtr(-z) / weights
    observed = float(scaled.min())
    exceed = int(((torch.special.ndtr(-draws) / weights).min(1).values <= observed).sum())
    return float(z[scaled.argmin()]), (1 + exceed) / (1 + n_draws)

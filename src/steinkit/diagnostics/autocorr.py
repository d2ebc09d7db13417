r"""Autocorrelated draws: integrated autocorrelation times and batch means.

For a stationary series h_1, ..., h_n with variance σ² and autocorrelations ρ_k, the mean has
n·Var(h̄) → σ²_∞ = σ² τ, the *long-run variance*, with the integrated autocorrelation time
τ = 1 + 2 Σ_{k≥1} ρ_k (n/τ is the effective sample size). For an AR(1) series
h_t = ρ h_{t−1} + ε_t, ρ_k = ρ^k and τ = (1 + ρ)/(1 − ρ).

* :func:`integrated_time` estimates τ with Geyer's (1992) initial monotone sequence: the sums
  Γ_k = ρ̂_{2k} + ρ̂_{2k+1} of a reversible chain are positive and decreasing, so they are summed
  while positive, each replaced by the smallest before it: τ̂ = −1 + 2 Σ_k Γ̃_k.
* :func:`batch_means` cuts the series into b batches of m draws. For m ≫ τ the batch means
  Y_1..Y_b are nearly independent N(μ, σ²_∞/m), so

      t = √b (Ȳ − μ) / s_Y  ~  t with b − 1 degrees of freedom

  (Student's t, exactly so for independent normal batch means): a test of μ = 0 that stays
  valid however few batches there are, and m s_Y² estimates σ²_∞. The batch size is a multiple
  of τ̂ (:func:`batch_size`): its relative bias is about −τ/m for a series of AR(1) type.

Example:
    >>> import torch
    >>> from scipy.signal import lfilter
    >>> e = torch.randn(400_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    >>> h = torch.as_tensor(lfilter([1.0], [1.0, -0.8], e.numpy()))     # AR(1), ρ = 0.8: τ = 9
    >>> round(integrated_time(h))
    9
    >>> b, m = batch_size(h.numel(), 9.0)
    >>> bm = batch_means(h[:, None], b)      # long-run variance σ²(1 + ρ)/(1 − ρ) = 25 (σ² = 1/(1 − ρ²))
    >>> 20 < float(bm.stderr[0] ** 2 * h.numel()) < 30
    True
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

__all__ = ["integrated_time", "integrated_times", "batch_size", "batch_means", "BatchMeans", "debiased"]

#: batches are at least this many integrated autocorrelation times long
BATCH_TIMES = 5.0
#: at most this many batches: more add little to a t test (t₂₉ vs the normal) and shorten them
MAX_BATCHES = 30


def integrated_times(series: Tensor) -> Tensor:
    """Geyer's initial monotone sequence estimate of τ for each row of ``series`` (r, n), at least 1.

    Autocovariances come from one FFT per row (O(n log n)); a constant row has τ = 1.

    Example:
        >>> import torch
        >>> x = torch.arange(6.0).repeat_interleave(50)[None]    # 6 levels held 50 steps each
        >>> bool(integrated_times(x)[0] > 30)
        True
    """
    h = series.detach().to("cpu", torch.float64)
    if h.dim() == 1:
        h = h[None]
    r, n = h.shape
    if n < 4:
        return torch.ones(r, dtype=torch.float64)
    h = h - h.mean(1, keepdim=True)
    f = torch.fft.rfft(h, 2 * n)
    acov = torch.fft.irfft(f * f.conj(), 2 * n)[:, :n] / n
    var = acov[:, :1]
    rho = torch.where(var > 0, acov / var.clamp(min=1e-300), torch.zeros_like(acov))
    pairs = n // 2
    gamma = rho[:, 0:2 * pairs:2] + rho[:, 1:2 * pairs:2]
    positive = torch.cumprod((gamma > 0).to(torch.int8), 1).bool()  # the initial positive sequence
    gamma = torch.where(positive, gamma, torch.full_like(gamma, math.inf))
    gamma = torch.cummin(gamma, 1).values  # monotone
    gamma = torch.where(positive, gamma, torch.zeros_like(gamma))
    tau = 2.0 * gamma.sum(1) - 1.0
    return torch.where(var[:, 0] > 0, tau.clamp(min=1.0), torch.ones_like(tau))


def integrated_time(series: Tensor) -> float:
    """Geyer's initial monotone sequence estimate of the integrated autocorrelation time
    τ = 1 + 2 Σ_k ρ_k of a 1-D series (at least 1).

    Example:
        >>> import torch
        >>> integrated_time(torch.tensor([1.0, -1.0] * 500))    # anticorrelated: as low as it gets
        1.0
    """
    return float(integrated_times(series.reshape(1, -1))[0])


def batch_size(n: int, tau: float, *, times: float = BATCH_TIMES, max_batches: int = MAX_BATCHES) -> tuple[int, int]:
    """(batches b, batch size m) for n draws with integrated time τ: m ≥ ``times``·τ and
    b ≤ ``max_batches``, b ≥ 2 (then m = n // 2 may be shorter than ``times``·τ: too few
    effective draws for a sharp test, but the t reference with one degree of freedom stays valid
    as long as the two halves' means are nearly independent).

    Example:
        >>> batch_size(1000, 1.0), batch_size(1000, 20.0), batch_size(100, 40.0)
        ((29, 34), (10, 100), (2, 50))
    """
    m = max(math.ceil(times * tau), math.ceil(n / max_batches))
    b = max(n // m, 2)
    return b, n // b


class BatchMeans(NamedTuple):
    """Batch means of K series: ``mean`` (K,) over all draws, ``stderr`` (K,) of that mean,
    ``batches`` b, the (smallest) batch ``size`` and the degrees of freedom ``df`` of the t
    reference (b − 1, fewer with uneven weights)."""

    mean: Tensor
    stderr: Tensor
    batches: int
    size: int
    df: float


def batch_means(values: Tensor, batches: int, weights: Tensor | None = None) -> BatchMeans:
    """Mean and standard error by batch means of the columns of ``values`` (n, K).

    The rows are cut into ``batches`` consecutive batches whose sizes differ by at most one (the
    first n mod b get one more draw). The mean h̄ is over all rows (weighted by ``weights`` (n,)
    ≥ 0 if given: the self-normalised estimate), and its variance is b/(b − 1) Σ_k Z_k² with
    Z_k = Σ_{i ∈ batch k} w_i (h_i − h̄) / Σ w (w = 1 without weights: for equal batches exactly
    s_Y²/b, s_Y² the sample variance of the batch means). The degrees of freedom are b − 1, with
    weights min(b, ESS) − 1 where ESS = (Σw)²/Σw².

    Example:
        >>> import torch
        >>> v = torch.tensor([[1.0], [3.0], [2.0], [4.0]], dtype=torch.float64)
        >>> bm = batch_means(v, 2)        # batch means 2 and 3
        >>> float(bm.mean[0]), round(float(bm.stderr[0]), 4), bm.df
        (2.5, 0.5, 1.0)
    """
    h = values.to(torch.float64)
    n = h.shape[0]
    if not 2 <= batches <= n:
        raise ValueError(f"batches must lie in [2, {n}] for {n} values, got {batches}")
    w = torch.ones(n, dtype=torch.float64, device=h.device) if weights is None else weights.to(torch.float64)
    total = w.sum()
    mean = (w[:, None] * h).sum(0) / total
    dev = w[:, None] * (h - mean) / total
    z = torch.stack([part.sum(0) for part in torch.tensor_split(dev, batches)])
    var = batches / (batches - 1) * (z * z).sum(0)
    df = float(batches - 1)
    if weights is not None:
        df = float(max(1.0, min(batches, float(total * total / (w * w).sum())) - 1.0))
    return BatchMeans(mean, var.sqrt(), batches, n // batches, df)


def debiased(bm: BatchMeans, tau: float) -> BatchMeans:
    """``bm`` with its standard errors inflated by √(m/(m − τ)): batch means of m draws
    underestimate the long-run variance by about τ/m for a series of AR(1) type, which a test
    reading the t tails feels; with batches shorter than 2τ (too few effective draws), by √2.

    Example:
        >>> bm = BatchMeans(torch.zeros(1), torch.ones(1), batches=10, size=50, df=9.0)
        >>> round(float(debiased(bm, 10.0).stderr[0]) ** 2, 4)     # 50/(50 − 10)
        1.25
    """
    m = bm.size
    inflate = math.sqrt(m / (m - tau)) if m > 2 * tau else math.sqrt(2.0)
    return bm._replace(stderr=bm.stderr * inflate)

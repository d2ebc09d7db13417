"""KSDAgg and KSDAggInc: kernel Stein tests aggregated over a collection of bandwidths.

KSDAgg (Schrab, Guedj and Gretton, 2022) runs one quadratic-time KSD test per bandwidth λ of
a collection Λ (by default 2^ℓ·λ_med for ℓ = −20, ..., 0, with λ_med the median distance
between data points and the IMQ base kernel k(x, y) = (1 + ‖x − y‖²/λ²)^(−1/2): the kernel
:data:`DEFAULT_KERNEL`; any Stein kernel of :mod:`steinkit.kernels` with a collection of
bandwidths may replace it) and rejects
when any of them rejects at a corrected level u·w_λ (uniform weights w_λ = 1/|Λ|). The
correction u is calibrated with a wild bootstrap so that the aggregated test has level α.
KSDAggInc (Schrab, Kim, Guedj and Gretton, 2022) replaces each quadratic U-statistic by an
incomplete one over the pairs (i, i + r), r = 1..R, which costs O(nR) instead of O(n²).

The wild bootstrap draws Rademacher weights ε once and applies them to every bandwidth, so
the joint null law of the |Λ| statistics is kept. The complete statistics are summed block by
block (:mod:`steinkit.gof.quadratic`, memory O(block² + n·B)); the incomplete ones band by band,
drawing ε's rows as they are needed (on a CPU generator the same numbers as one (n, B) draw), so
their memory does not grow with n. Before either starts, the test predicts its time and memory
and refuses above its limits (:mod:`steinkit.gof.cost`). ``n_bootstrap`` draws (B1) give each
bandwidth's p-value p_λ = (1 + #{draws ≥ statistic}) / (B1 + 1); ``n_correction`` further
draws (B2) give the null law of T = min_λ p_λ / w_λ. The papers find the largest u whose
bootstrap rejection rate is at most α by bisection; that u is the α-quantile of T's
bootstrap law, so we report instead the p-value (1 + #{T_b ≤ T}) / (B2 + 1), which rejects
exactly when T falls below that quantile and needs no bisection.

The level is at most α, and the test is conservative in low dimension with the default
collection: far below the typical distance, the Stein kernel of the data is negative for
almost every pair, so those bandwidths never give the data a small p-value but do give the
bootstrap draws one, and the correction overcorrects (docs/findings.md).

Example:
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> x = torch.randn(200, 3, generator=g)
    >>> ksdagg_test(x, -x, generator=g).pvalue > 0.05          # the model N(0, I) fits
    True
    >>> ksdagg_test(x + 0.5, -(x + 0.5) + 0.0, generator=g).pvalue < 0.05   # shifted data
    True
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import torch
from torch import Tensor

from ..kernels import IMQ, Bandwidths, as_kernel
from ..kernels.base import stein_blocks
from ..validation import as_data
from .cost import DEFAULT_MAX_SECONDS, LINEAR_ADVICE, check_limits, guard, stein_rates, symmetric_pairs
from .kernels import _float64_matrix, _generator_device, _shown
from .outcome import TestOutcome
from .quadratic import BLOCK_BYTES, block_bytes, block_rows, symmetric_sums

__all__ = ["DEFAULT_KERNEL", "ksdagg_test"]

DEFAULT_KERNEL = IMQ(bandwidth=Bandwidths.powers_of_two(-20, 0))


def _collection(kernel: Any, bandwidths: Sequence[float] | None, exponents: tuple[int, int] | None) -> Any:
    """The test's kernel: a kernel object as given, or a named one with the collection of
    ``bandwidths`` (fixed values) or ``exponents`` (2^ℓ·λ_med; (-20, 0) by default)."""
    named = isinstance(kernel, (str, Mapping))
    if not named:
        if bandwidths is not None or exponents is not None:
            raise ValueError(
                "bandwidths and exponents apply to a kernel given by name; give a kernel object its collection as "
                "its bandwidth, e.g. kernel=IMQ(bandwidth=Bandwidths.powers_of_two(-20, 0))")
        return as_kernel(kernel)
    if isinstance(kernel, Mapping) and "bandwidth" in kernel:
        if bandwidths is not None or exponents is not None:
            raise ValueError("give the bandwidths once: in the kernel's 'bandwidth' or as bandwidths/exponents")
        return as_kernel(kernel)
    if bandwidths is not None:
        try:
            values = tuple(float(b) for b in bandwidths)
        except (TypeError, ValueError):
            values = ()
        if not values or not all(math.isfinite(b) and b > 0 for b in values):
            raise ValueError(f"bandwidths must be positive finite numbers, got {bandwidths!r}")
        collection = Bandwidths(values, base=1.0)
    else:
        lo, hi = (-20, 0) if exponents is None else exponents
        if not (isinstance(lo, int) and isinstance(hi, int)) or lo > hi:
            raise ValueError(f"exponents must be two ints (lo, hi) with lo <= hi, got {exponents!r}")
        collection = Bandwidths.powers_of_two(lo, hi)
    return as_kernel(kernel, bandwidth=collection)


def _rademacher(n: int, draws: int, generator: torch.Generator | None, device: torch.device) -> Tensor:
    eps = torch.randint(0, 2, (n, draws), generator=generator, device=_generator_device(generator),
                        dtype=torch.float64)
    return eps.to(device).mul_(2.0).sub_(1.0)


class _RademacherRows:
    """Rows a..b of the (n, B) Rademacher matrix ε, asked for in increasing order. From a CPU
    generator they are drawn as needed (the same numbers as one (n, B) draw) and rows before
    the last request are dropped; from another generator ε is drawn at once on the first request
    (the same numbers as before)."""

    def __init__(self, n: int, draws: int, generator: torch.Generator | None, device: torch.device) -> None:
        self.n, self.generator, self.device, self.draws = n, generator, device, draws
        self.streaming = _generator_device(generator).type == "cpu"
        self.start = 0
        self.buffer = torch.empty(0, draws, dtype=torch.float64, device=device)

    def rows(self, a: int, b: int) -> Tensor:
        if not self.streaming and self.buffer.shape[0] < self.n:
            self.buffer = _rademacher(self.n, self.draws, self.generator, self.device)
        if self.streaming:
            end = self.start + self.buffer.shape[0]
            if b > end:
                fresh = _rademacher(b - end, self.draws, self.generator, self.device)
                self.buffer = torch.cat([self.buffer[a - self.start:], fresh])
                self.start = a
        return self.buffer[a - self.start:b - self.start]


def _complete_statistics(x: Tensor, s: Tensor, kernels: Sequence[Any], eps: Tensor) -> Tensor:
    """(|Λ|, 1 + B) U-statistics: the data's, then one per column of ε (quadratic time, block by block)."""
    n = x.shape[0]
    totals, forms, _ = symmetric_sums(kernels, x - x.mean(0), s, weights=eps, diagonal=False)
    # i ≠ j: the diagonal (2βd/λ² + ‖s‖²) would swamp small λ's sums
    return torch.cat([totals[:, None], forms], 1) / (n * (n - 1))


def _band_rows(n_kernels: int, draws: int) -> int:
    """Rows per band block of the incomplete statistic: 32 (a (K·32, 32 + R) by (32 + R, B) product
    wastes little on the band's empty corners and runs at full speed), fewer if the (K, b, B)
    product would not fit half the block budget."""
    return max(8, min(32, BLOCK_BYTES // (16 * n_kernels * max(draws, 1))))


def _incomplete_statistics(
    x: Tensor, s: Tensor, kernels: Sequence[Any], eps: Tensor | _RademacherRows, n_diagonals: int,
    block: int | None = None,
) -> Tensor:
    """(|Λ|, 1 + B) incomplete U-statistics over the pairs (i, i + r), r = 1..R.

    Rows i come in blocks of b; block I meets the window of columns j = i + 1 .. i + R as one
    dense (b, b + R) Stein block per kernel with the band 1 <= j − i <= R kept, so the bootstrap
    is one product of the K stacked bands by ε's window rows. Memory O(K b (b + R + B))."""
    n = x.shape[0]
    rows = (lambda a, b: eps[a:b]) if isinstance(eps, Tensor) else eps.rows
    draws = eps.shape[1] if isinstance(eps, Tensor) else eps.draws
    R, K = min(n_diagonals, n - 1), len(kernels)
    b = _band_rows(K, draws) if block is None else block
    x = x - x.mean(0)
    out = torch.zeros(K, 1 + draws, dtype=torch.float64, device=x.device)
    for a0 in range(0, n - 1, b):
        a1 = min(a0 + b, n - 1)
        c0, c1 = a0 + 1, min(a1 + R, n)
        window = rows(a0, c1)
        offset = torch.arange(c0, c1, device=x.device)[None, :] - torch.arange(a0, a1, device=x.device)[:, None]
        outside = (offset < 1) | (offset > R)
        band = torch.empty(K, a1 - a0, c1 - c0, dtype=torch.float64, device=x.device)
        for k, u in enumerate(stein_blocks(kernels, x[a0:a1], s[a0:a1], x[c0:c1], s[c0:c1])):
            band[k] = u.masked_fill_(outside, 0.0)
        out[:, 0] += band.sum((1, 2))
        prod = (band.view(K * (a1 - a0), c1 - c0) @ window[c0 - a0:]).view(K, a1 - a0, draws)
        out[:, 1:] += prod.mul_(window[:a1 - a0]).sum(1)
    n_pairs = sum(n - r for r in range(1, R + 1))
    return out / n_pairs


def _aggregated_pvalue(stats: Tensor, n_bootstrap: int) -> tuple[float, Tensor]:
    """KSDAgg's level-corrected p-value from (|Λ|, 1 + B1 + B2) statistics (uniform weights)."""
    original, first, second = stats[:, :1], stats[:, 1 : 1 + n_bootstrap], stats[:, 1 + n_bootstrap :]
    ordered = first.sort(dim=1).values

    def pvalues(values: Tensor) -> Tensor:  # (1 + #{first ≥ value}) / (B1 + 1), per bandwidth
        below = torch.searchsorted(ordered, values.contiguous(), right=False)
        return (1.0 + n_bootstrap - below) / (n_bootstrap + 1.0)

    n_lambda = stats.shape[0]
    p_data = pvalues(original)[:, 0]
    t_data = float(p_data.min()) * n_lambda  # min_λ p_λ / w_λ with w_λ = 1/|Λ|
    t_null = pvalues(second).min(dim=0).values * n_lambda
    pvalue = (1.0 + float((t_null <= t_data).sum())) / (1.0 + second.shape[1])
    return pvalue, p_data


def _guard(kernels: Sequence[Any], x64: Tensor, s64: Tensor, n_draws: int, incomplete: int | None,
           max_seconds: Any, max_memory_gb: Any, streaming: bool) -> None:
    """Refuse a KSDAgg(-Inc) test whose predicted time or memory is over the limits (:mod:`.cost`)."""
    max_seconds, max_memory_gb = check_limits(max_seconds, max_memory_gb)
    (n, d), K = x64.shape, len(kernels)
    if incomplete is None:
        block = block_rows(n, n_draws)

        def seconds(r: Any) -> float:
            return symmetric_pairs(n, block) * (r.pair + K * (r.kernel + 2.0 * n_draws * r.flop))

        nbytes = 8.0 * (n * n_draws + 6 * n * d) + block_bytes(block, n_draws)
        method, what, advice = "ksdagg", f"is quadratic in n: n = {n}", LINEAR_ADVICE
    else:
        R = min(incomplete, n - 1)
        b = _band_rows(K, n_draws)

        def seconds(r: Any) -> float:
            pairs = n * (b + R)
            return pairs * (r.pair + K * r.kernel) + 2.0 * K * pairs * n_draws * r.flop

        window = (b + R) * n_draws if streaming else n * n_draws
        nbytes = 8.0 * (window + 6 * n * d + K * b * (b + R) + 2 * K * b * n_draws)
        method = "ksdagg-inc"
        what = (f"is linear in n but costs n·R·B per bandwidth: n = {n}, R = {R} sub-diagonals, B = {n_draws} "
                f"draws and {K} bandwidths")
        advice = ("lower incomplete, n_bootstrap or n_correction, use method='lksd' or the learned test "
                  "(method='lsd')")
    guard(method, what, seconds=seconds, nbytes=nbytes, rates=stein_rates(kernels[0], x64, s64, n_draws),
          device=x64.device, max_seconds=max_seconds, max_memory_gb=max_memory_gb, advice=advice)


def _checked(x: Any, s: Any) -> tuple[Tensor, Tensor]:
    """KSDAgg's data and scores, float64 on the data's device (the caller refuses non-finite
    scores after its other checks)."""
    x64 = _float64_matrix(x, "x", min_rows=2, what="KSDAgg")
    s64 = as_data(s, "s", tensors_only=True, dtype=torch.float64, finite=False).detach()
    if s64.shape != x64.shape:
        raise ValueError(f"x and s must both have shape (n, d) with n >= 2, got {tuple(x.shape)} and {tuple(s.shape)}")
    return x64, s64.to(x64.device)


def _check_counts(n_bootstrap: Any, n_correction: Any, incomplete: Any) -> None:
    for name, value in (("n_bootstrap", n_bootstrap), ("n_correction", n_correction)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if incomplete is not None and (isinstance(incomplete, bool) or not isinstance(incomplete, int) or incomplete < 1):
        raise ValueError(
            f"incomplete must be None or a positive int (the number R of sub-diagonals), got {incomplete!r}")


def ksdagg_test(
    x: Tensor,
    s: Tensor,
    *,
    bandwidths: Sequence[float] | None = None,
    exponents: tuple[int, int] | None = None,
    kernel: Any = "imq",
    n_bootstrap: int = 2000,
    n_correction: int = 2000,
    incomplete: int | None = None,
    generator: torch.Generator | None = None,
    max_seconds: float | None = DEFAULT_MAX_SECONDS,
    max_memory_gb: float | str | None = "auto",
) -> TestOutcome:
    """KSDAgg (``incomplete=None``) or KSDAggInc (``incomplete=R``) goodness-of-fit test.

    Arguments:
        x: data, (n, d), n >= 2.
        s: the model's scores at x, (n, d).
        bandwidths: with a kernel name: the collection Λ as fixed values; None uses
            2^ℓ·λ_med for ℓ in ``exponents``.
        exponents: with a kernel name: (lo, hi) of that collection, (-20, 0) by default.
        kernel: a name (``"imq"``, β = −1/2, the papers' choice; ``"gaussian"``), or a Stein
            kernel object (:mod:`steinkit.kernels`) whose bandwidth is the collection, e.g.
            :data:`DEFAULT_KERNEL` ``= IMQ(bandwidth=Bandwidths.powers_of_two(-20, 0))``.
        n_bootstrap: wild-bootstrap draws B1 for each bandwidth's p-value. The aggregated
            p-value cannot fall below about ``|Λ|/(B1 + 1)`` times the chance that one of the
            bandwidths' null draws tops all B1 others; 2000 (the authors' package default)
            resolves p-values near 0.01, 500 (the papers' experiments) only near 0.03.
        n_correction: wild-bootstrap draws B2 for the level correction.
        incomplete: None for the complete U-statistic; R >= 1 for the incomplete one over the
            pairs (i, i + r), r = 1..R (KSDAggInc; the paper uses R = 200).
        generator: torch.Generator for the bootstrap weights.
        max_seconds: refuse when the predicted time is above this (None: no limit).
        max_memory_gb: refuse when the predicted memory is above this many GB ("auto": half of
            the memory available; None: no limit).

    Returns:
        An outcome with ``statistic`` = ``min_λ p_λ·|Λ|`` (smaller is stronger evidence), the
        level-corrected p-value, and details: kernel, bandwidths, per-bandwidth statistics and
        p-values, the number of pairs used.
    """
    x64, s64 = _checked(x, s)
    n = x64.shape[0]
    kernel = _collection(kernel, bandwidths, exponents)
    _check_counts(n_bootstrap, n_correction, incomplete)
    if not bool(torch.isfinite(s64).all()):
        raise FloatingPointError("KSDAgg statistics are not finite: check the model's scores for inf/NaN")
    kernels = kernel.resolve(x64)
    draws = n_bootstrap + n_correction
    eps = _RademacherRows(n, draws, generator, x64.device) if incomplete is not None else None
    _guard(kernels, x64, s64, draws, incomplete, max_seconds, max_memory_gb,
           streaming=eps is not None and eps.streaming)
    if incomplete is None:
        stats = _complete_statistics(x64, s64, kernels, _rademacher(n, draws, generator, x64.device))
        n_pairs = n * (n - 1) // 2
    else:
        stats = _incomplete_statistics(x64, s64, kernels, eps, incomplete)
        n_pairs = sum(n - r for r in range(1, min(incomplete, n - 1) + 1))
    if not bool(torch.isfinite(stats).all()):
        raise FloatingPointError("KSDAgg statistics are not finite: check the model's scores for inf/NaN")
    pvalue, per_bandwidth = _aggregated_pvalue(stats, n_bootstrap)
    details = {
        "kernel": repr(kernel),
        "bandwidths": [_shown(k.bandwidth) for k in kernels],
        "statistics": stats[:, 0].tolist(),
        "bandwidth_pvalues": per_bandwidth.tolist(),
        "n_bootstrap": n_bootstrap,
        "n_correction": n_correction,
        "n_pairs": n_pairs,
    }
    statistic = float(per_bandwidth.min()) * len(kernels)
    return TestOutcome(statistic=statistic, pvalue=pvalue, details=details)

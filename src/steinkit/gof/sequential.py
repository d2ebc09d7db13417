"""The sequential Stein witness test: every fold tested by the critic learned from the folds before it.

The data are shuffled and cut into K folds. Fold k (k = 2..K) is tested by the closed-form
critic of the folds before it: the kernel Stein witness f(y) = mean_j [s(x_j) k(x_j, y) +
∇_x k(x_j, y)], the L2-optimal critic in the kernel's RKHS (the RKHS analogue of Eq. 9), whose
Stein terms at y are mean_j u(x_j, y) with u the Stein kernel. For each bandwidth λ of a small
collection 2^ℓ·λ_med (λ_med from fold 1, IMQ kernel: :data:`DEFAULT_KERNEL`; any Stein kernel
of :mod:`steinkit.kernels` may replace it) the fold gives t_k = √m · mean/std of its
terms, and the folds combine as z = Σ_k w_k t_k / √(Σ_k w_k²) with fixed weights w_k = √(k − 1).

Why the null holds: given folds 1..k−1 the witness is a fixed function, so under H0 its terms on
the independent fold k are i.i.d. with mean zero (Stein's identity) and the vector of t_k over
bandwidths tends to N(0, R_k) whatever the earlier folds were. The folds' vectors are therefore
asymptotically independent, and z tends to N(0, Σ w_k² R_k / Σ w_k²). The test rejects for a
large max_λ z_λ, with the p-value of that maximum under the estimated covariance (R_k from fold
k's terms; :func:`~steinkit.gof.aggregate.max_normal_pvalue`).

Why the weights: a witness built from (k − 1)·m points has noise of order 1/√((k − 1)m), so
t_k grows like √(k − 1) under an alternative; these weights make z use the pairs (earlier,
later) almost as efficiently as the complete U-statistic (a factor √((K − 1)/K) of it), where a
half split, K = 2, reaches 1/√2 of that. Each test is O(n²·|Λ|/2), with no bootstrap; the
terms are summed block by block (memory O(block²)), and a test whose predicted time or memory
is over its limits is refused before it starts (:mod:`steinkit.gof.cost`).

Example:
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> x = torch.randn(400, 3, generator=g)
    >>> sequential_witness_test(x, -x, generator=g).pvalue > 0.05          # N(0, I) fits
    True
    >>> sequential_witness_test(x + 0.3, -(x + 0.3), generator=g).pvalue < 0.05   # shifted data
    True
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import torch
from torch import Tensor

from ..kernels import IMQ, Bandwidths, as_kernel
from ..validation import as_data, positive_int
from .aggregate import max_normal_pvalue, studentised, term_correlation
from .cost import DEFAULT_MAX_SECONDS, LINEAR_ADVICE, check_limits, guard, stein_rates
from .kernels import _float64_matrix, _generator_device, _shown
from .outcome import TestOutcome
from .quadratic import block_bytes, block_rows, column_sums

__all__ = ["DEFAULT_KERNEL", "sequential_witness_test", "witness_terms"]

DEFAULT_KERNEL = IMQ(bandwidth=Bandwidths.powers_of_two(-5, 0))


def witness_terms(a: Tensor, sa: Tensor, b: Tensor, sb: Tensor, bandwidths: Sequence[float],
                  kernel: Any = "imq") -> Tensor:
    """(|Λ|, n_b) Stein terms at the rows of b of the kernel Stein witness of (a, sa), one row per
    bandwidth: mean over a of u(a_j, b_i) (float64, summed block by block).

    Arguments:
        a, sa: the witness's points and scores, (n_a, d).
        b, sb: the points and scores to score, (n_b, d).
        bandwidths: the bandwidths λ.
        kernel: a kernel name or a Stein kernel (given each bandwidth in turn).

    Example:
        >>> a, b = torch.zeros(1, 2, dtype=torch.float64), torch.ones(1, 2, dtype=torch.float64)
        >>> witness_terms(a, -a, b, -b, [1.0], "gaussian").shape
        torch.Size([1, 1])
    """
    base = as_kernel(kernel)
    kernels = [base.with_bandwidth(lam) for lam in bandwidths]
    return _terms(kernels, a, sa, b, sb)


def _terms(kernels: Sequence[Any], a: Tensor, sa: Tensor, b: Tensor, sb: Tensor) -> Tensor:
    shift = a.mean(0)
    return column_sums(kernels, a - shift, sa, b - shift, sb) / a.shape[0]


def _kernel(kernel: Any, exponents: tuple[int, int] | None) -> Any:
    """A kernel object as given, or a named one with the collection 2^ℓ·λ_med, ℓ in ``exponents``."""
    if not isinstance(kernel, (str, Mapping)):
        if exponents is not None:
            raise ValueError("exponents apply to a kernel given by name; give a kernel object its collection as "
                             "its bandwidth, e.g. kernel=IMQ(bandwidth=Bandwidths.powers_of_two(-5, 0))")
        return as_kernel(kernel)
    lo, hi = (-5, 0) if exponents is None else exponents
    if not (isinstance(lo, int) and isinstance(hi, int)) or lo > hi:
        raise ValueError(f"exponents must be two ints (lo, hi) with lo <= hi, got {exponents!r}")
    if isinstance(kernel, Mapping) and "bandwidth" in kernel:
        if exponents is not None:
            raise ValueError("give the bandwidths once: in the kernel's 'bandwidth' or as exponents")
        return as_kernel(kernel)
    return as_kernel(kernel, bandwidth=Bandwidths.powers_of_two(lo, hi))


def sequential_witness_test(
    x: Tensor,
    s: Tensor,
    *,
    folds: int = 8,
    exponents: tuple[int, int] | None = None,
    kernel: Any = "imq",
    n_draws: int = 20000,
    generator: torch.Generator | None = None,
    max_seconds: float | None = DEFAULT_MAX_SECONDS,
    max_memory_gb: float | str | None = "auto",
) -> TestOutcome:
    """Test H0: the scores s are the model's at data x drawn from it, fold by fold (see module).

    Arguments:
        x: data, (n, d), with at least 2 points per fold.
        s: the model's scores at x, (n, d).
        folds: K >= 2; fold k is tested by the witness of folds 1..k−1 (8: about 93% of the
            complete U-statistic's efficiency; more folds, fewer points per fold's CLT).
        exponents: with a kernel name: (lo, hi), the bandwidths 2^ℓ·λ_med, ℓ = lo..hi, λ_med the
            median distance within fold 1; (-5, 0) by default.
        kernel: a name (``"imq"``: (1 + ‖r‖²/λ²)^(−1/2); ``"gaussian"``), or a Stein kernel
            object (:mod:`steinkit.kernels`) whose bandwidth (a rule or collection) is resolved on
            fold 1, e.g. :data:`DEFAULT_KERNEL` ``= IMQ(bandwidth=Bandwidths.powers_of_two(-5, 0))``.
        n_draws: Gaussian draws for the p-value of the maximum over bandwidths.
        generator: torch.Generator for the shuffle into folds and the Gaussian draws.
        max_seconds: refuse when the predicted time is above this (None: no limit).
        max_memory_gb: refuse when the predicted memory is above this many GB ("auto": half of
            the memory available; None: no limit).

    Returns:
        An outcome with statistic max_λ z_λ, its p-value, and details (kernel, bandwidths, z per
        bandwidth, folds, fold size).
    """
    x64 = _float64_matrix(x, "x", min_rows=2, what="the sequential witness test")
    s64 = as_data(s, "s", tensors_only=True, dtype=torch.float64).detach()
    if s64.shape != x64.shape:
        raise ValueError(f"x and s must both have shape (n, d), got {tuple(x.shape)} and {tuple(s.shape)}")
    s64 = s64.to(x64.device)
    folds = positive_int(folds, "folds")
    kernel = _kernel(kernel, exponents)
    n = x64.shape[0]
    if folds < 2 or n < 2 * folds:
        raise ValueError(f"folds must be >= 2 with at least 2 points each (n = {n}), got {folds!r}")
    max_seconds, max_memory_gb = check_limits(max_seconds, max_memory_gb)
    order = torch.randperm(n, generator=generator, device=_generator_device(generator)).to(x64.device)
    parts = torch.tensor_split(order, folds)
    kernels = kernel.resolve(x64[parts[0]])
    pairs = sum(sum(len(p) for p in parts[:k]) * len(parts[k]) for k in range(1, folds))
    block = block_rows(n)
    guard("ksd-seq", f"is quadratic in n: n = {n}", seconds=lambda r: pairs * (r.pair + len(kernels) * r.kernel),
          nbytes=8.0 * 6 * n * x64.shape[1] + block_bytes(block), rates=stein_rates(kernel, x64, s64, 1),
          device=x64.device, max_seconds=max_seconds, max_memory_gb=max_memory_gb, advice=LINEAR_ADVICE)
    total = torch.zeros(len(kernels), dtype=torch.float64)
    covariance = torch.zeros(len(kernels), len(kernels), dtype=torch.float64)
    weight_sq = 0.0
    for k in range(1, folds):
        past, fold = torch.cat(parts[:k]), parts[k]
        terms = _terms(kernels, x64[past], s64[past], x64[fold], s64[fold]).cpu()
        if not bool(torch.isfinite(terms).all()):
            raise FloatingPointError("the witness's Stein terms are not finite: check the model's scores for inf/NaN")
        if bool((terms.std(1) == 0).any()):
            raise FloatingPointError(
                f"the witness's Stein terms on fold {k + 1} have no spread: the data have repeated rows; check x")
        weight = math.sqrt(k)
        total += weight * studentised(terms)
        covariance += k * term_correlation(terms)
        weight_sq += k
    z = total / math.sqrt(weight_sq)
    z_max, pvalue = max_normal_pvalue(z, covariance / weight_sq, generator=generator, n_draws=n_draws)
    details = {"kernel": repr(kernel), "bandwidths": [_shown(k.bandwidth) for k in kernels],
               "statistics": z.tolist(), "folds": folds, "fold_size": n // folds}
    return TestOutcome(statistic=z_max, pvalue=pvalue, details=details)

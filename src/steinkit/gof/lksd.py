"""Linear-time kernel Stein discrepancy (LKSD) test and estimate.

Liu, Lee & Jordan (2016), linear-time variant: the rows of x are paired as
``(x_1, x_2), (x_3, x_4), ...`` (an odd last row is dropped), and
``h_i = u_q(x_{2i-1}, x_{2i})`` are m = floor(n/2) i.i.d. unbiased estimates of KSD^2.
Statistic ``t = sqrt(m) * mean(h) / std(h)`` (std with ddof=1), asymptotically N(0, 1)
under H0; one-sided p-value ``1 - Phi(t)``. All arithmetic is float64. Equal terms (std 0)
give t = +inf when positive; otherwise t is undefined and the test raises ``FloatingPointError``
(a bandwidth far from the data's scale, or data without spread).

Example:
    >>> import torch
    >>> x = torch.randn(400, 2, generator=torch.Generator().manual_seed(0))
    >>> 0.0 <= lksd_test(x, -x).pvalue <= 1.0
    True
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from ..kernels import Gaussian, as_kernel
from ..validation import as_generator
from .kernels import _data_and_scores, _estimate_inputs, _resolve_kernel, _search_inputs, search_bandwidth
from .outcome import TestOutcome, normal_sf

__all__ = ["lksd_test", "lksd_estimate", "learn_lksd_bandwidth"]

_MIN_N = 4  # two pairs: the smallest sample with a standard deviation of h


def _pair_terms(kernel: Any, x64: Tensor, s64: Tensor) -> Tensor:
    """h_i = u_q(x_{2i-1}, x_{2i}) for the m = floor(n/2) pairs."""
    m = x64.shape[0] // 2
    return kernel.stein_pairs(x64[0:2 * m:2], s64[0:2 * m:2], x64[1:2 * m:2], s64[1:2 * m:2])


def learn_lksd_bandwidth(
    x: Tensor,
    s: Tensor,
    *,
    kernel: Any = None,
    objective: str = "value",
    init: float | None = None,
    steps: int = 30,
    span: float = 32.0,
    grid_size: int = 25,
    reg: float = 1e-8,
) -> float:
    """Bandwidth maximizing the linear KSD estimate (``"value"``) or ``mean(h)/sqrt(var(h) + reg)`` (``"power"``).

    Same search and arguments as :func:`steinkit.gof.ksd.learn_ksd_bandwidth`
    (:func:`~steinkit.gof.kernels.search_bandwidth`, over ``kernel.with_bandwidth(h)``; the
    Gaussian kernel by default), on the linear pairs of x (n >= 4).

    Returns:
        The learned bandwidth (float).

    Example:
        >>> import torch
        >>> x = torch.randn(200, 2, generator=torch.Generator().manual_seed(0)) + 1.0
        >>> learn_lksd_bandwidth(x, -x, objective="power") > 0
        True
    """
    x64, s64, objective, kernel, h0, reg = _search_inputs(
        x, s, objective, init, reg, kernel, min_n=_MIN_N, what="learning a linear KSD bandwidth"
    )

    def score(h: float) -> float:
        vals = _pair_terms(kernel.with_bandwidth(h), x64, s64)
        if objective == "value":
            return float(vals.mean())
        return float(vals.mean() / torch.sqrt(vals.var(unbiased=True) + reg))

    best, _ = search_bandwidth(score, h0, span=span, grid_size=grid_size, steps=steps)
    return best


def lksd_estimate(x: Tensor, s: Tensor, *, kernel: Any = None, bandwidth: float | None = None) -> tuple[float, float]:
    """Linear-time KSD^2 estimate ``mean(h)`` with standard error ``std(h) / sqrt(m)``.

    Arguments and return as :func:`steinkit.gof.ksd.ksd_estimate`, with n >= 4 rows of x.

    Example:
        >>> import torch
        >>> x = torch.randn(2000, 2, generator=torch.Generator().manual_seed(0))
        >>> v, se = lksd_estimate(x, -(x - 1.0), bandwidth=1.0)
        >>> v > 3 * se
        True
    """
    k, x64, s64 = _estimate_inputs(x, s, kernel, bandwidth, min_n=_MIN_N, what="the linear KSD estimate")
    vals = _pair_terms(k, x64, s64)
    return float(vals.mean()), float(vals.std(unbiased=True) / math.sqrt(vals.numel()))


def lksd_test(
    x: Tensor,
    s: Tensor,
    *,
    kernel: Any = None,
    bandwidth: float | str | None = None,
    generator: torch.Generator | None = None,
    train_fraction: float = 0.2,
) -> TestOutcome:
    """Linear-time KSD goodness-of-fit test (one-sided, normal approximation).

    Arguments:
        x: data, shape (n, d), n >= 4 (an odd last row is unused).
        s: scores grad_x log q at x, shape (n, d).
        kernel: a Stein kernel with one bandwidth (:mod:`steinkit.kernels`) or its name; None:
            the Gaussian kernel with the median heuristic, ``steinkit.kernels.Gaussian()``.
        bandwidth: None for the kernel's own; a positive float; "median" for the median
            heuristic on x; or "learn": a seeded split keeps ``train_fraction`` of x to maximize
            the power criterion (:func:`learn_lksd_bandwidth`, ``objective="power"``, from the
            kernel's own bandwidth) and the test runs on the rest.
        generator: torch.Generator for the split when ``bandwidth="learn"`` (otherwise unused:
            the test itself is deterministic).
        train_fraction: fraction of x used to learn the bandwidth when ``bandwidth="learn"``.

    Returns:
        TestOutcome with ``statistic = sqrt(m) mean(h) / std(h)``, ``pvalue = 1 - Phi(t)``
        and details ``kernel``, ``bandwidth``, ``bandwidth_rule``, ``n_test`` (and ``n_train``),
        ``n_pairs``, ``mean``, ``std``.

    Example:
        >>> import torch
        >>> x = torch.randn(1000, 2, generator=torch.Generator().manual_seed(0)) + 0.5
        >>> lksd_test(x, -x).pvalue < 0.05
        True
    """
    x64, s64 = _data_and_scores(x, s, min_n=_MIN_N, what="the linear KSD test (two pairs at least)")
    as_generator(generator=generator)
    kernel = as_kernel(Gaussian() if kernel is None else kernel)
    k, x64, s64, details = _resolve_kernel(
        kernel, bandwidth, x64, s64,
        learn=lambda xt, st, kern: learn_lksd_bandwidth(xt, st, kernel=kern, objective="power"),
        train_fraction=train_fraction, generator=generator, min_test=_MIN_N, what="the linear KSD test",
    )
    vals = _pair_terms(k, x64, s64)
    m = vals.numel()
    mean, std = float(vals.mean()), float(vals.std(unbiased=True))
    if std > 0.0:
        t = math.sqrt(m) * mean / std
    elif mean > 0.0:  # all h_i equal and positive: under H0 their mean is 0
        t = math.inf
    else:
        raise FloatingPointError(
            f"all {m} linear KSD terms equal {mean:.3g} (zero variance), so t = mean/std is undefined: the "
            f"bandwidth ({details['bandwidth']}) is far from the scale of the data, or the data have no spread; "
            "give another bandwidth or check x"
        )
    pvalue = normal_sf(t)
    details.update(n_pairs=m, mean=mean, std=std)
    return TestOutcome(statistic=t, pvalue=min(max(pvalue, 0.0), 1.0), details=details)

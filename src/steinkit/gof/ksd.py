"""Quadratic-time kernel Stein discrepancy (KSD) test and estimate.

Liu, Lee & Jordan (2016), "A kernelized Stein discrepancy for goodness-of-fit tests",
with the Rademacher wild bootstrap of the V-statistic (Chwialkowski et al. 2016).
Inputs are the data ``x`` (n, d) and the model's scores ``s = grad_x log q(x)`` at
the data (n, d); all arithmetic is float64.

Test statistic: ``n * V`` with ``V = mean_{i,j} u_q(x_i, x_j)`` (V-statistic, diagonal
included). Bootstrap draw b: ``(1/n) sum_{i,j} w_i w_j u_q(x_i, x_j)`` with Rademacher
weights ``w``; all B draws are computed together, block by block over the upper block triangle
of the symmetric Stein matrix (:func:`~steinkit.gof.quadratic.symmetric_sums`), so the (n, n)
matrix is never formed. p-value: ``(1 + #{boot >= stat}) / (1 + B)``, the Monte-Carlo p-value
that is valid at every B (it is never 0 and lies in (0, 1]). The kernel is any Stein kernel of
:mod:`steinkit.kernels` (``kernel=``; Gaussian with the median heuristic by default).

Example:
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> x = torch.randn(200, 2, generator=g)
    >>> out = ksd_test(x, -x, generator=g)          # data from the model N(0, I)
    >>> 0.0 < out.pvalue <= 1.0
    True
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from ..kernels import Gaussian, as_kernel
from ..validation import as_generator, integer, probability
from .cost import DEFAULT_MAX_SECONDS, LINEAR_ADVICE, check_limits, guard, stein_rates, symmetric_pairs
from .kernels import (_data_and_scores, _estimate_inputs, _generator_device, _resolve_kernel, _search_inputs,
                      search_bandwidth)
from .outcome import TestOutcome
from .quadratic import block_bytes, block_rows, symmetric_sums

__all__ = ["ksd_test", "ksd_estimate", "learn_ksd_bandwidth"]

_SEARCH = dict(span=32.0, grid_size=25, steps=30)  # the bandwidth search of bandwidth="learn"


def _u_stat_and_row_means(kernel: Any, x64: Tensor, s64: Tensor) -> tuple[Tensor, Tensor]:
    """The U-statistic (off-diagonal mean of the Stein matrix) and its off-diagonal row means."""
    n = x64.shape[0]
    totals, _, rows = symmetric_sums([kernel], x64, s64, diagonal=False, rows=True)
    return totals[0] / (n * (n - 1)), rows[0] / (n - 1)


def _ksd_objective(kernel: Any, x64: Tensor, s64: Tensor, objective: str, reg: float) -> float:
    value, rows = _u_stat_and_row_means(kernel, x64, s64)
    if objective == "value":
        return float(value)
    var = 4.0 * rows.var(unbiased=True)
    return float(value / torch.sqrt(var + reg))


def learn_ksd_bandwidth(
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
    """Bandwidth maximizing the KSD U-statistic (``"value"``) or its ratio to its spread (``"power"``).

    ``"value"`` maximizes the unbiased KSD estimate (the paper's Figure 6: report the largest
    discrepancy the kernel family finds, learned on a training split). ``"power"`` maximizes
    ``value / sqrt(4 var(row means) + reg)``, the signal-to-noise ratio that drives test power.
    The search is :func:`~steinkit.gof.kernels.search_bandwidth` (log-grid around ``init``, then
    golden-section refine) over ``kernel.with_bandwidth(h)``; each of its ~60 evaluations sums
    the (n, n) Stein matrix block by block.

    Arguments:
        x: training data, shape (n, d), n >= 3.
        s: scores at x, shape (n, d).
        kernel: a Stein kernel (:mod:`steinkit.kernels`) or its name; None: the Gaussian kernel.
        objective: "value" or "power".
        init: centre of the search; None uses the kernel's bandwidth on x (the median heuristic
            by default).
        steps: golden-section refinement iterations.
        span: search factor either side of ``init``.
        grid_size: log-grid points.
        reg: variance regularizer of the "power" objective.

    Returns:
        The learned bandwidth (float).

    Example:
        >>> import torch
        >>> x = torch.randn(100, 2, generator=torch.Generator().manual_seed(0)) + 1.0
        >>> learn_ksd_bandwidth(x, -x) > 0
        True
    """
    x64, s64, objective, kernel, h0, reg = _search_inputs(
        x, s, objective, init, reg, kernel, min_n=3, what="learning a KSD bandwidth"
    )
    x64 = x64 - x64.mean(0)
    h, _ = search_bandwidth(
        lambda h: _ksd_objective(kernel.with_bandwidth(h), x64, s64, objective, float(reg)),
        h0, span=span, grid_size=grid_size, steps=steps,
    )
    return h


def ksd_estimate(x: Tensor, s: Tensor, *, kernel: Any = None, bandwidth: float | None = None) -> tuple[float, float]:
    """Unbiased KSD^2 estimate (U-statistic) with a standard error.

    ``value = (1 / (n (n-1))) sum_{i != j} u_q(x_i, x_j)`` and ``stderr = 2 std(g) / sqrt(n)``
    with ``g_i = mean_{j != i} u_q(x_i, x_j)`` (first-order Hoeffding term; it shrinks towards 0
    under H0, where the U-statistic is degenerate). Computed block by block (O(n) memory).

    Arguments:
        x: data, shape (n, d), n >= 2.
        s: scores at x, shape (n, d).
        kernel: a Stein kernel with one bandwidth, or its name; None: the Gaussian kernel.
        bandwidth: kernel bandwidth; None uses the kernel's (the median heuristic by default).

    Returns:
        (value, stderr) as floats.

    Example:
        >>> import torch
        >>> x = torch.randn(300, 2, generator=torch.Generator().manual_seed(0))
        >>> v_fit, _ = ksd_estimate(x, -x, bandwidth=1.0)
        >>> v_off, _ = ksd_estimate(x, -(x - 1.0), bandwidth=1.0)
        >>> v_off > v_fit
        True
    """
    k, x64, s64 = _estimate_inputs(x, s, kernel, bandwidth, min_n=2, what="the KSD estimate")
    value, rows = _u_stat_and_row_means(k, x64 - x64.mean(0), s64)
    stderr = 2.0 * rows.std(unbiased=True) / math.sqrt(x64.shape[0])
    return float(value), float(stderr)


def _guard(kernel: Any, x64: Tensor, s64: Tensor, bandwidth: Any, train_fraction: Any, n_bootstrap: int,
           max_seconds: Any, max_memory_gb: Any) -> None:
    """Refuse a KSD test whose predicted time or memory is over the limits (see :mod:`.cost`)."""
    max_seconds, max_memory_gb = check_limits(max_seconds, max_memory_gb)
    n, d = x64.shape
    learning = isinstance(bandwidth, str) and bandwidth == "learn"
    n_train = int(round(probability(train_fraction, "train_fraction") * n)) if learning else 0
    n_test = n - n_train
    block = block_rows(n_test, n_bootstrap)
    evaluations = _SEARCH["grid_size"] + 2 + _SEARCH["steps"]

    def seconds(r: Any) -> float:
        test = symmetric_pairs(n_test, block) * (r.pair + r.kernel + 2.0 * n_bootstrap * r.flop)
        search = evaluations * symmetric_pairs(n_train, block_rows(n_train)) * (r.pair + r.kernel)
        return test + search

    nbytes = 8.0 * (n_bootstrap * n_test + 6 * n * d + 2 * n) + block_bytes(block, n_bootstrap)
    guard("ksd", f"is quadratic in n: n = {n}", seconds=seconds, nbytes=nbytes,
          rates=stein_rates(kernel, x64, s64, n_bootstrap), device=x64.device,
          max_seconds=max_seconds, max_memory_gb=max_memory_gb, advice=LINEAR_ADVICE)


def ksd_test(
    x: Tensor,
    s: Tensor,
    *,
    kernel: Any = None,
    bandwidth: float | str | None = None,
    n_bootstrap: int = 1000,
    generator: torch.Generator | None = None,
    train_fraction: float = 0.2,
    max_seconds: float | None = DEFAULT_MAX_SECONDS,
    max_memory_gb: float | str | None = "auto",
) -> TestOutcome:
    """Quadratic-time KSD goodness-of-fit test with a Rademacher wild bootstrap.

    H0: the rows of x were drawn from q (whose scores at x are ``s``). The Stein matrix is
    summed block by block (memory O(block² + n B)); before it starts, the test predicts its time
    and memory and refuses above ``max_seconds`` or ``max_memory_gb`` (:mod:`steinkit.gof.cost`).

    Arguments:
        x: data, shape (n, d), n >= 2.
        s: scores grad_x log q at x, shape (n, d).
        kernel: a Stein kernel with one bandwidth (:mod:`steinkit.kernels`) or its name; None:
            the Gaussian kernel with the median heuristic, ``steinkit.kernels.Gaussian()``.
        bandwidth: None for the kernel's own; a positive float; "median" for the median heuristic
            on x; or "learn": a seeded split keeps ``train_fraction`` of x to pick the bandwidth
            maximizing the KSD power criterion (:func:`learn_ksd_bandwidth` with
            ``objective="power"``, from the kernel's own bandwidth) and the test runs on the rest
            (the paper's adaptive kernel baseline uses 200 of 1000 points for this).
        n_bootstrap: number B of bootstrap draws (>= 1).
        generator: torch.Generator for the bootstrap weights (and the split).
        train_fraction: fraction of x used to learn the bandwidth when ``bandwidth="learn"``.
        max_seconds: refuse when the predicted time is above this (None: no limit).
        max_memory_gb: refuse when the predicted memory is above this many GB ("auto": half of
            the memory available; None: no limit).

    Returns:
        TestOutcome with ``statistic = n V``, ``pvalue = (1 + #{boot >= stat}) / (1 + B)`` and
        details ``kernel``, ``bandwidth``, ``bandwidth_rule``, ``n_test`` (and ``n_train``),
        ``v_statistic``, ``n_bootstrap``, ``bootstrap_statistics`` (CPU float64 tensor of the B draws).

    Example:
        >>> import torch
        >>> g = torch.Generator().manual_seed(1)
        >>> x = torch.randn(200, 2, generator=g) + 0.5   # model is N(0, I): scores -x
        >>> ksd_test(x, -x, generator=g).pvalue < 0.05
        True
    """
    x64, s64 = _data_and_scores(x, s, min_n=2, what="the KSD test")
    n_bootstrap = integer(n_bootstrap, "n_bootstrap", minimum=1)
    as_generator(generator=generator)
    kernel = as_kernel(Gaussian() if kernel is None else kernel)
    _guard(kernel, x64, s64, bandwidth, train_fraction, n_bootstrap, max_seconds, max_memory_gb)
    k, x64, s64, details = _resolve_kernel(
        kernel, bandwidth, x64, s64,
        learn=lambda xt, st, kern: learn_ksd_bandwidth(xt, st, kernel=kern, objective="power", **_SEARCH),
        train_fraction=train_fraction, generator=generator, min_test=2, what="the KSD test",
    )
    n = x64.shape[0]
    W = torch.empty(n_bootstrap, n, dtype=torch.float64, device=x64.device)
    chunk = max(1, min(n_bootstrap, (1 << 25) // n))  # the draws of earlier versions, chunk by chunk
    for start in range(0, n_bootstrap, chunk):
        b = min(chunk, n_bootstrap - start)
        W[start:start + b] = torch.randint(0, 2, (b, n), generator=generator, device=_generator_device(generator),
                                           dtype=torch.float64).to(x64.device).mul_(2.0).sub_(1.0)
    totals, forms, _ = symmetric_sums([k], x64 - x64.mean(0), s64, weights=W.T)
    del W
    stat = totals[0] / n
    boot = forms[0] / n
    pvalue = (1.0 + float((boot >= stat).sum())) / (1.0 + n_bootstrap)
    details.update(
        v_statistic=float(stat) / n,
        n_bootstrap=n_bootstrap,
        bootstrap_statistics=boot.cpu(),
    )
    return TestOutcome(statistic=float(stat), pvalue=pvalue, details=details)

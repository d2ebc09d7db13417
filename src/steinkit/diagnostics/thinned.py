"""The thinned alternative of :func:`~steinkit.diagnostics.sample_quality` (``method="thinned"``).

Keep every ⌈2τ̂⌉-th draw (τ̂ the largest integrated autocorrelation time of the coordinates and
scores of the whole chain) and run the quadratic KSD test with a wild bootstrap
(:func:`~steinkit.gof.ksd.ksd_test`) on the kept draws as if they were independent.

Example:
    >>> import torch
    >>> from steinkit.kernels import IMQ
    >>> x = torch.randn(800, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    >>> res, kept, _ = thinned_chain(x, -x, IMQ(bandwidth=1.0), 0.05, 0, torch.Generator().manual_seed(0), 200)
    >>> res.reject, kept.shape[0] <= 800
    (False, True)
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from .autocorr import integrated_times
from .halves import FEW_EFFECTIVE
from .results import ChainQuality

__all__ = ["thinned_chain"]


def thinned_chain(x: Tensor, s: Tensor, kernel: Any, alpha: float, chain: int | None, generator: Any,
                 n_bootstrap: int, step: int | None = None, tau: float | None = None) -> tuple[ChainQuality, Tensor, Tensor]:
    from ..gof.ksd import ksd_estimate, ksd_test

    if step is None:
        tau = float(integrated_times(torch.cat([x.to(torch.float64), s], 1).T).max())
        step = math.ceil(2.0 * tau)
    xt, st = x[::step].to(torch.float64), s[::step]
    n = x.shape[0]
    if xt.shape[0] < 4:
        res = ChainQuality(statistic=math.nan, pvalue=1.0, reject=False, alpha=alpha, chain=chain, n=n,
                           discrepancy=math.nan, stderr=math.nan, iat=float(tau), ess=n / tau,
                           warning=f"only {xt.shape[0]} draws left after thinning by {step}: no test",
                           details={"step": step, "kept": int(xt.shape[0])})
        return res, xt, st
    out = ksd_test(xt, st, kernel=kernel, n_bootstrap=n_bootstrap, generator=generator)
    value, se = ksd_estimate(xt, st, kernel=kernel)
    warning = "" if n / tau >= FEW_EFFECTIVE else \
        f"few effective draws (n/τ̂ ≈ {n / tau:.0f}): a rough verdict, with little power; run the chain longer"
    res = ChainQuality(statistic=out.statistic, pvalue=out.pvalue, reject=out.pvalue < alpha, alpha=alpha,
                       chain=chain, n=n, discrepancy=value, stderr=se, iat=float(tau), ess=n / tau, warning=warning,
                       details={"step": step, "kept": int(xt.shape[0])})
    return res, xt, st

"""The learned Stein discrepancy goodness-of-fit test (Algorithm 2).

A critic is trained on the training split to maximize the test power mean/std of the Stein
terms (Eq. 12) minus the L2 penalty, using the Hutchinson trace; every ``val_every``
iterations the power on the validation split (exact trace) selects the critic. On the test
split, t = √n_test · mean/std of the exact-trace Stein terms, asymptotically N(0, 1) under
H0: p = q, and the one-sided p-value is 1 − Φ(t).

Many independent tests (repetitions, or several models on the same data) are trained as one
batched critic ensemble by :func:`lsd_tests`; each outcome equals the lone test's.

Example:
    >>> import torch
    >>> from steinkit.scores import as_score
    >>> x = torch.randn(200, 2, generator=torch.Generator().manual_seed(0)) + 1.0
    >>> out = lsd_tests([(as_score(lambda z: -z), x, 0)], hidden=16, n_iters=100)[0]
    >>> out.pvalue < 0.05
    True
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import torch
from torch import Tensor

from ..fit import fit_heldout_critics
from ..scores import Score
from .kernels import KernelTestOutcome

__all__ = ["LSD_DEFAULTS", "lsd_tests", "normal_sf"]

LSD_DEFAULTS: dict[str, Any] = dict(
    split=(0.8, 0.1, 0.1),
    hidden=300,
    n_layers=2,
    dropout=0.5,
    weight_decay=5e-4,
    lam=0.5,
    n_iters=1000,
    lr=1e-3,
    batch_size=None,
    val_every=100,
    trace="hutchinson",
    n_probes=1,
    progress=False,
)


def normal_sf(t: float) -> float:
    """Upper tail 1 − Φ(t) of the standard normal, accurate far in the tail.

    Example:
        >>> round(normal_sf(1.6448536269514722), 6)
        0.05
    """
    return 0.5 * math.erfc(t / math.sqrt(2.0))


def lsd_tests(problems: Sequence[tuple[Score, Tensor, int]], **options: Any) -> list[KernelTestOutcome]:
    """Run one LSD test per (score, data, seed) problem, all critics trained as one ensemble.

    Arguments:
        problems: triples of a checked score function, data (n, d) and a seed; data sets
            must share their shape.
        **options: overrides of :data:`LSD_DEFAULTS` (split, hidden, n_layers, dropout,
            weight_decay, lam, n_iters, lr, batch_size, val_every, trace, n_probes, progress).

    Returns:
        One outcome per problem with the statistic t, the p-value 1 − Φ(t) and details
        (test mean and std, n_test, best_iteration, history).
    """
    unknown = set(options) - set(LSD_DEFAULTS)
    if unknown:
        raise TypeError(f"unknown LSD test option(s) {sorted(unknown)}; valid: {sorted(LSD_DEFAULTS)}")
    opts = {**LSD_DEFAULTS, **options}
    fits = fit_heldout_critics(problems, objective="power", selection="power", **opts)
    out = []
    for fit in fits:
        terms = fit.test_terms.double()
        n_test = terms.shape[0]
        mean, std = float(terms.mean()), float(terms.std())
        t = math.sqrt(n_test) * mean / std if std > 0 else (math.inf if mean > 0 else 0.0)
        details = {
            "test_mean": mean,
            "test_std": std,
            "n_test": n_test,
            "best_iteration": fit.best_iteration,
            "history": fit.history,
        }
        out.append(KernelTestOutcome(statistic=t, pvalue=normal_sf(t), details=details))
    return out

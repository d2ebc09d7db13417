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

from torch import Tensor

from ..fit import fit_heldout_critics
from ..scores import Score
from ..settings import TEST, CriticSettings, settings_from
from .outcome import TestOutcome, normal_sf

__all__ = ["lsd_tests", "normal_sf"]


def lsd_tests(
    problems: Sequence[tuple[Score, Tensor, int]],
    settings: CriticSettings | None = None,
    *,
    progress: bool = False,
    **overrides: Any,
) -> list[TestOutcome]:
    """Run one LSD test per (score, data, seed) problem, all critics trained as one ensemble.

    Arguments:
        problems: triples of a checked score function, data (n, d) and a seed; data sets
            must share their shape.
        settings: a :class:`~steinkit.settings.CriticSettings`; default
            :data:`~steinkit.settings.TEST` (power objective and selection, dropout .5,
            weight decay 5e-4, split .8/.1/.1, 2×300 Swish, 1000 steps).
        progress: show a progress bar.
        **overrides: :class:`~steinkit.settings.CriticSettings` fields to change.

    Returns:
        One :class:`~steinkit.gof.outcome.TestOutcome` per problem with the statistic t, the
        p-value 1 − Φ(t) and details (test mean and std, n_test, best_iteration, history).
    """
    cfg = settings_from(settings, TEST, overrides, extra=", or progress")
    fits = fit_heldout_critics(problems, cfg, progress=progress)
    out = []
    for fit in fits:
        terms = fit.test_terms.double()
        n_test = terms.shape[0]
        mean, std = float(terms.mean()), float(terms.std())
        t = _statistic(mean, std, n_test)
        details = {
            "test_mean": mean,
            "test_std": std,
            "n_test": n_test,
            "best_iteration": fit.best_iteration,
            "history": fit.history,
        }
        out.append(TestOutcome(statistic=t, pvalue=normal_sf(t), details=details))
    return out


def _statistic(mean: float, std: float, n_test: int) -> float:
    """t = √n · mean/std. Equal terms (std 0) with a positive mean give t = +∞ (reject: under H0
    they have mean 0); with mean ≤ 0 the ratio is undefined, which is an error, not a verdict.

    Example:
        >>> _statistic(0.5, 0.0, 100)
        inf
        >>> _statistic(0.0, 0.0, 100)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        FloatingPointError: all 100 Stein terms on the test split equal 0 (zero variance), so t = mean/std is ...
    """
    if std > 0:
        return math.sqrt(n_test) * mean / std
    if mean > 0:
        return math.inf
    raise FloatingPointError(
        f"all {n_test} Stein terms on the test split equal {mean:.3g} (zero variance), so t = mean/std is "
        "undefined: the test data have no spread (constant or repeated rows) or the critic is constant there; check x"
    )

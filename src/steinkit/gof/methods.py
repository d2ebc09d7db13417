"""The built-in goodness-of-fit methods, registered in :mod:`steinkit.gof.registry`: one line each.

A new method is one module with its test function and one line here (or in your own code):
``register(GofMethod(name, description, run, statistic=...))``.

Example:
    >>> from steinkit.gof.registry import METHODS
    >>> tuple(METHODS)[:4]
    ('lsd', 'ksd', 'lksd', 'fssd')
"""

from __future__ import annotations

import functools

from .fssd import fssd_test
from .ksd import ksd_test
from .ksdagg import ksdagg_test
from .lksd import lksd_test
from .lsd import LSDOptions, lsd_tests
from .registry import GofMethod, register, registered
from .sequential import sequential_witness_test
from .witnesses import WitnessOptions, witness_tests

__all__ = ["BUILTIN"]

_LARGER = "larger is stronger evidence against H0"

register(GofMethod("lsd", "learned Stein discrepancy test: critics learned from earlier folds test later ones "
                          "(protocol=; 'paper': Algorithm 2)", lsd_tests, LSDOptions, batched=True,
                   statistic=f"a standardised mean of held-out Stein terms (z or t, by protocol); {_LARGER}"))
register(GofMethod("ksd", "quadratic-time kernel Stein discrepancy with a wild bootstrap (Liu et al. 2016)", ksd_test,
                   statistic=f"n times the KSD V-statistic; {_LARGER}"))
register(GofMethod("lksd", "linear-time kernel Stein discrepancy (Liu et al. 2016)", lksd_test,
                   statistic=f"t = sqrt(m) mean/std of the m paired Stein kernel terms; {_LARGER}"))
register(GofMethod("fssd", "finite-set Stein discrepancy with optimised test locations (Jitkrittum et al. 2017)",
                   fssd_test, statistic=f"n times the FSSD^2 estimate on the test split; {_LARGER}"))
register(GofMethod("ksdagg", "KSD aggregated over 21 bandwidths (Schrab et al. 2022)", ksdagg_test,
                   statistic="the smallest per-bandwidth p-value times the number of bandwidths; SMALLER is "
                             "stronger evidence against H0"))
register(GofMethod("ksdagg-inc", "KSDAgg with incomplete U-statistics over R = 200 sub-diagonals (linear in n)",
                   functools.partial(ksdagg_test, incomplete=200),
                   statistic="the smallest per-bandwidth p-value times the number of bandwidths; SMALLER is "
                             "stronger evidence against H0"))
register(GofMethod("ksd-seq", "sequential kernel Stein witness test: each of 8 folds tested by the witness of the "
                              "folds before it, over 6 bandwidths", sequential_witness_test,
                   statistic=f"the largest over bandwidths of the weighted fold z statistics; {_LARGER}"))
register(GofMethod("witnesses", "trained critic, random-feature critic, linear, per-coordinate, pooled per-coordinate "
                                "and kernel Stein witnesses scored on the same folds, one level-corrected weighted "
                                "maximum", witness_tests, WitnessOptions,
                   batched=True, statistic=f"the standardised fold statistic (z) of the member with the smallest p-value over its share of the level; {_LARGER}"))

BUILTIN: tuple[str, ...] = tuple(registered())
"""The methods registered above, in order."""

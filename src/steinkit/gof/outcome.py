"""The result type every goodness-of-fit test function returns (LSD, KSD, linear KSD,
FSSD, KSDAgg, KSD-Seq).

The user-facing :class:`~steinkit.gof.api.GofResult` of :func:`steinkit.gof_test` is built
from it (adding the method, the level and the verdict).

Example:
    >>> statistic, pvalue = TestOutcome(statistic=3.2, pvalue=0.01, details={"bandwidth": 1.0})
    >>> statistic, pvalue
    (3.2, 0.01)
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterator

__all__ = ["TestOutcome", "normal_sf"]


@dataclass(frozen=True)
class TestOutcome:
    """Statistic, p-value and test-specific details of one goodness-of-fit test.

    Attributes:
        statistic: the test statistic (float).
        pvalue: the p-value, in [0, 1].
        details: test-specific extras (bandwidth, sample sizes, training history, ...).
        critic: a learned test's selected critic when it was asked for (a
            :class:`~steinkit.witness.FittedCritic`), else None.
    """

    __test__ = False  # not a pytest test class

    statistic: float
    pvalue: float
    details: dict[str, Any] = field(default_factory=dict)
    critic: Any = None

    def __iter__(self) -> Iterator[float]:
        """Unpacks as ``(statistic, pvalue)``, as :class:`~steinkit.results.TestResult` does."""
        return iter((self.statistic, self.pvalue))


def normal_sf(t: float) -> float:
    """Upper tail 1 − Φ(t) of the standard normal (the one-sided p-value of a z statistic),
    accurate far in the tail.

    Example:
        >>> round(normal_sf(1.6448536269514722), 6)
        0.05
    """
    return 0.5 * math.erfc(t / math.sqrt(2.0))

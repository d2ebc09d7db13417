"""The base every test-like result shares: ``statistic``, ``pvalue``, ``reject``, ``alpha``.

A result of a hypothesis test (:class:`~steinkit.gof.GofResult`,
:class:`~steinkit.relative.RelativeResult`) is a frozen dataclass deriving from
:class:`TestResult`: it unpacks as ``(statistic, pvalue)`` like scipy's test results, turns into
a JSON-friendly dict, and prints one line that says what its statistic is and which way is
evidence against H0 (for KSDAgg, a corrected minimum p-value, *smaller* is stronger).

Example:
    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True)
    ... class Coin(TestResult):
    ...     statistic: float
    ...     pvalue: float
    ...     reject: bool
    ...     alpha: float
    ...     statistic_meaning = "heads in 10 tosses; larger is evidence of a bias"
    >>> res = Coin(9.0, 0.011, True, 0.05)
    >>> stat, p = res
    >>> print(res)
    Coin: statistic = 9 (heads in 10 tosses; larger is evidence of a bias), p-value = 0.011 -> reject H0 at alpha = 0.05
    >>> res.to_dict()
    {'statistic': 9.0, 'pvalue': 0.011, 'reject': True, 'alpha': 0.05}
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Iterator, Mapping

from torch import Tensor

__all__ = ["TestResult", "jsonable_details"]

_MAX_STORED = 1000  # a tensor in details with more elements is left out of to_dict


def jsonable_details(details: Mapping[str, Any]) -> dict[str, Any]:
    """``details`` with tensors as lists; tensors of more than 1000 elements are left out.

    Example:
        >>> import torch
        >>> jsonable_details({"h": torch.tensor([1.0, 2.0]), "draws": torch.zeros(5000), "n": 3})
        {'h': [1.0, 2.0], 'n': 3}
    """
    out = {}
    for key, value in details.items():
        if isinstance(value, Tensor):
            if value.numel() > _MAX_STORED:
                continue
            value = value.tolist()
        out[key] = value
    return out


class TestResult:
    """Base of the results of hypothesis tests; subclasses are frozen dataclasses with at least
    the fields ``statistic``, ``pvalue``, ``reject`` and ``alpha`` (in any order, so each keeps
    its own positional order).

    Attributes:
        statistic: the test statistic.
        pvalue: its p-value in [0, 1].
        reject: whether H0 is rejected at level ``alpha`` (``pvalue < alpha``).
        alpha: the level.
        statistic_meaning: one line saying what the statistic is and which way is evidence
            against H0 (a class attribute or a field).

    A subclass changes the printed line through :meth:`_title`, :meth:`_summary`,
    :meth:`_verdict` and :meth:`_tail`, and keeps fields out of :meth:`to_dict` by naming them
    in ``_UNSTORED`` (fitted critics, say).
    """

    __test__ = False  # not a pytest test class

    statistic: float
    pvalue: float
    reject: bool
    alpha: float
    statistic_meaning: ClassVar[str] = ""
    _UNSTORED: ClassVar[tuple[str, ...]] = ()

    def __iter__(self) -> Iterator[float]:
        """Unpacks as ``(statistic, pvalue)``, like scipy's test results."""
        return iter((self.statistic, self.pvalue))

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict of the fields, in their order (tensors in ``details`` become lists,
        long ones are dropped; fields named in ``_UNSTORED`` are left out)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            if f.name in self._UNSTORED:
                continue
            value = getattr(self, f.name)
            out[f.name] = jsonable_details(value) if f.name == "details" else value
        return out

    def _title(self) -> str:
        return type(self).__name__

    def _summary(self) -> str:
        meaning = f" ({self.statistic_meaning})" if self.statistic_meaning else ""
        return f"statistic = {self.statistic:.4g}{meaning}"

    def _verdict(self) -> str:
        return "reject H0" if self.reject else "do not reject H0"

    def _tail(self) -> str:
        return ""

    def __str__(self) -> str:
        return (f"{self._title()}: {self._summary()}, p-value = {self.pvalue:.4g} -> {self._verdict()} "
                f"at alpha = {self.alpha:g}{self._tail()}")

"""The results of :func:`~steinkit.diagnostics.sample_quality`: one chain's verdict and the pooled one.

Example:
    >>> import torch, steinkit as sk
    >>> x = torch.randn(2, 400, 2, generator=torch.Generator().manual_seed(0))
    >>> res = sk.sample_quality(x, lambda z: -0.5 * (z ** 2).sum(1))
    >>> statistic, pvalue = res                                      # as every test result
    >>> type(res.chains[0]).__name__, pvalue == res.pvalue
    ('ChainQuality', True)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

from ..results import TestResult

__all__ = ["ChainQuality", "SampleQuality"]


@dataclass(frozen=True)
class ChainQuality(TestResult):
    """The verdict on one chain (``chain`` its index) or on all chains pooled (``chain`` None).

    Attributes:
        statistic: the largest member z-score (batch-means t statistics mapped to normal quantiles)
            for ``"batch-means"``; n·V (the KSD V-statistic of the kept draws) for ``"thinned"``.
        pvalue, reject, alpha: the test of H0 "these draws have the target's distribution",
            valid for autocorrelated draws.
        n: draws in the chain (all chains, pooled).
        discrepancy: estimate of KSD²(q, p), IMQ kernel, with ``stderr`` its standard error.
        iat: the integrated autocorrelation time τ̂ that set the batches (or the thinning).
        ess: effective draws, n / τ̂.
        members: per member (location, scale, kernel) and direction ("1→2": features of the
            first half tested on the second; "2→1"), its mean, stderr, t, df and p-value.
        disagreement_pvalue: adjusted p-value that this chain's means match the other chains'
            (None for the pooled result or a single chain); ``disagrees`` when below alpha.
        warning: a note when the verdict is rough (few effective draws) or empty.
        history: with ``history=True``: ``n``, ``discrepancy``, ``stderr`` and ``pvalue`` on the
            first n draws, for growing n.
        details: method-specific numbers (batches and their size, or the thinning step).
    """

    statistic: float
    pvalue: float
    reject: bool
    alpha: float
    chain: int | None
    n: int
    discrepancy: float
    stderr: float
    iat: float
    ess: float
    members: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)
    disagreement_pvalue: float | None = None
    disagrees: bool = False
    warning: str = ""
    history: dict[str, list[float]] | None = None
    details: dict[str, Any] = dataclasses.field(default_factory=dict)
    statistic_meaning: ClassVar[str] = "largest Stein-feature z-score; larger is evidence against the target"

    def _title(self) -> str:
        return "pooled chains" if self.chain is None else f"chain {self.chain}"

    def _summary(self) -> str:
        return (f"KSD² = {self.discrepancy:.3g} ± {self.stderr:.2g}, n = {self.n}, τ̂ = {self.iat:.1f} "
                f"(ESS {self.ess:.0f})")

    def _tail(self) -> str:
        out = ""
        if self.disagreement_pvalue is not None:
            out += (f"; disagrees with the other chains (p = {self.disagreement_pvalue:.3g})" if self.disagrees
                    else f"; agrees with the other chains (p = {self.disagreement_pvalue:.3g})")
        return out + (f" [{self.warning}]" if self.warning else "")


@dataclass(frozen=True)
class SampleQuality(TestResult):
    """Per-chain and pooled sample-quality verdicts (:func:`sample_quality`).

    ``statistic``, ``pvalue``, ``reject``, ``discrepancy`` and ``stderr`` are the pooled
    result's (``pooled``); ``chains`` holds one :class:`ChainQuality` per chain; ``disagreeing``
    the indices of the chains whose means differ from the others' (``agreement_pvalue`` the
    p-value of the comparison of all chains, None for one chain). Unpacks as ``(statistic, pvalue)``.
    """

    statistic: float
    pvalue: float
    reject: bool
    alpha: float
    discrepancy: float
    stderr: float
    method: str
    chains: tuple[ChainQuality, ...]
    pooled: ChainQuality
    disagreeing: tuple[int, ...]
    agreement_pvalue: float | None
    kernel: str
    columns: tuple[str, ...] | None = None
    statistic_meaning: ClassVar[str] = ChainQuality.statistic_meaning

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict; chains and the pooled result as dicts."""
        out = super().to_dict()
        out["chains"] = [c.to_dict() for c in self.chains]
        out["pooled"] = self.pooled.to_dict()
        out["disagreeing"] = list(self.disagreeing)
        out["columns"] = None if self.columns is None else list(self.columns)
        return out

    def table(self) -> str:
        """One line per chain and one for the pool: draws, τ̂, ESS, KSD² ± stderr, p-value,
        verdict and agreement with the other chains."""
        rows = [("chain", "n", "IAT", "ESS", "KSD² ± stderr", "p-value", "verdict", "vs others")]
        for c in (*self.chains, self.pooled):
            agree = "-" if c.disagreement_pvalue is None else \
                f"{'DISAGREES' if c.disagrees else 'agrees'} (p={c.disagreement_pvalue:.2g})"
            rows.append(("pooled" if c.chain is None else str(c.chain), str(c.n), f"{c.iat:.1f}", f"{c.ess:.0f}",
                         f"{c.discrepancy:.3g} ± {c.stderr:.2g}", f"{c.pvalue:.3g}",
                         ("REJECT" if c.reject else "ok") + (" *" if c.warning else ""), agree))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in rows]
        notes = sorted({c.warning for c in (*self.chains, self.pooled) if c.warning})
        return "\n".join(lines + [f"* {note}" for note in notes])

    def __str__(self) -> str:
        head = (f"SampleQuality ({self.method}, {len(self.chains)} chain{'s' * (len(self.chains) > 1)}, "
                f"alpha = {self.alpha:g}): pooled p-value = {self.pvalue:.3g} -> "
                f"{'reject' if self.reject else 'do not reject'} 'the draws follow the target'")
        if self.agreement_pvalue is not None:
            head += (f"; chains {list(self.disagreeing)} disagree with the rest" if self.disagreeing
                     else "; the chains agree") + f" (p = {self.agreement_pvalue:.3g})"
        return head + "\n" + self.table()

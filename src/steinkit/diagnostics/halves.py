r"""The batch-means test of chains: Stein features fixed on one half, tested on the other.

One half of a chain fixes the three Stein features of :mod:`~steinkit.diagnostics.features`
(E_p h = 0 under the target whatever that half is); the other half's feature means are
studentised by batch means (:mod:`~steinkit.diagnostics.autocorr`, batches of m ≥ 5τ̂ draws, the
variance inflated by m/(m − τ̂), its first-order bias) and referred to Student's t; both
directions, Bonferroni over the six member tests.

*Pooled*: the features come from all first halves together; the chains' second-half means are
combined in proportion to their lengths (or weights), their variances added, with Welch's
degrees of freedom. *Which chains disagree*: per chain, each coordinate's and each pooled
feature's second-half mean is compared with the other chains' average (two-sided Welch t tests
with batch-means variances inflated by m/(m − τ̂), the first-order bias of batches of m draws),
Bonferroni over the d + 3 means and the chains; the chain that differs most is set aside while
its adjusted p-value is below α and the rest compared again, so one odd chain does not make the
others look odd. With two chains both or neither disagree.

*Weights* (VI, SMC): the first half's means and witness are weighted, the second half's means
are self-normalised, and the batch-means variance is that of a self-normalised estimate,
b/(b − 1) Σ_k Z_k² with Z_k = Σ_{i∈k} w_i(h_i − h̄_w)/Σw, on min(b, ESS) − 1 degrees of freedom.

Example:
    >>> import torch
    >>> from steinkit.kernels import IMQ
    >>> x = torch.randn(2000, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    >>> res = chain_result(chain_sides(x, -x, None, IMQ(bandwidth=1.0), 1.0), 2000, 0.05, 0)
    >>> res.reject, res.chain
    (False, 0)
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple, Sequence

import numpy as np
import torch
from scipy import stats
from torch import Tensor

from .autocorr import BatchMeans, batch_means, batch_size, debiased, integrated_times
from .features import MEMBERS, TWO_SIDED, Reference, reference, stein_features
from .results import ChainQuality

__all__ = ["FEW_EFFECTIVE", "halves", "part_of", "Side", "side", "chain_sides", "chain_result", "welch",
           "pooled_reference", "disagreement", "history"]

FEW_EFFECTIVE = 50
"""Fewer effective draws (n / τ̂) than this: the verdict says it is rough."""
_HISTORY_POINTS = 8


def _pvalue(t: float, df: float, two_sided: bool) -> float:
    if math.isnan(t):
        return 1.0
    return float(2.0 * stats.t.sf(abs(t), df)) if two_sided else float(stats.t.sf(t, df))


def _tstat(mean: float, se: float) -> float:
    if se > 0:
        return mean / se
    return math.copysign(math.inf, mean) if mean != 0 else math.nan


class Side(NamedTuple):
    """One direction's member means (3,), standard errors (3,), degrees of freedom (a number or
    (3,)), τ̂ and batches."""

    mean: Tensor
    se: Tensor
    df: Any
    tau: float
    batches: int
    size: int


_DIRECTIONS = ("1→2", "2→1")  # features fixed on the first half, tested on the second; and back


def _analyse(f: Tensor, y: Tensor, w: Tensor | None) -> tuple[BatchMeans, float]:
    """Batch means of the features ``f`` (n, K) of the tested draws ``y``, and τ̂: the largest
    integrated time of the features and of the coordinates there."""
    tau = max(float(integrated_times(f.T).max()), float(integrated_times(y.T).max()))
    b, _ = batch_size(f.shape[0], tau)
    return debiased(batch_means(f, b, w), tau), tau


def side(ref: Reference, y: Tensor, sy: Tensor, w: Tensor | None) -> tuple[Side, Tensor]:
    f = stein_features(ref, y, sy)
    bm, tau = _analyse(f, y, w)
    return Side(bm.mean, bm.stderr, bm.df, tau, bm.batches, bm.size), f


def halves(x: Tensor) -> tuple[slice, slice]:
    half = x.shape[0] // 2
    return slice(0, half), slice(half, x.shape[0])


def part_of(w: Tensor | None, part: slice) -> Tensor | None:
    return None if w is None else w[part]


def _warning(n: int, tau: float, sides: Sequence[Side]) -> str:
    if all(bool((side.se == 0).all()) for side in sides):
        return "the draws do not move"
    if n / tau < FEW_EFFECTIVE:
        return (f"few effective draws (n/τ̂ ≈ {n / tau:.0f}): a rough verdict, with little power; "
                "run the chain longer or run more chains")
    return ""


def chain_sides(x: Tensor, s: Tensor, w: Tensor | None, kernel: Any, h: float) -> list[Side]:
    """Both directions of one chain: features of each half tested on the other."""
    first, second = halves(x)
    out = []
    for a, b in ((first, second), (second, first)):
        ref = reference(x[a], s[a], part_of(w, a), kernel, h)
        out.append(side(ref, x[b], s[b], part_of(w, b))[0])
    return out


def chain_result(sides: Sequence[Side], n: int, alpha: float, chain: int | None, history: Any = None) -> ChainQuality:
    members, ps = {}, []
    for label, side in zip(_DIRECTIONS, sides):
        for k, name in enumerate(MEMBERS):
            mean, se = float(side.mean[k]), float(side.se[k])
            df = float(side.df[k]) if isinstance(side.df, Tensor) else float(side.df)
            t = _tstat(mean, se)
            p = _pvalue(t, df, TWO_SIDED[k])
            members[f"{name} {label}"] = {"mean": mean, "stderr": se, "t": t, "df": df, "pvalue": p}
            ps.append(p)
    pmin = min(ps)
    p = min(1.0, len(ps) * pmin)
    tau = max(side.tau for side in sides)
    return ChainQuality(
        statistic=float(stats.norm.isf(max(pmin, 1e-300))), pvalue=p, reject=p < alpha, alpha=alpha, chain=chain,
        n=n, discrepancy=sum(float(side.mean[2]) for side in sides) / len(sides),
        stderr=sum(float(side.se[2]) for side in sides) / len(sides), iat=tau, ess=n / tau, members=members,
        warning=_warning(n, tau, sides), history=history,
        details={"batches": [side.batches for side in sides], "batch_size": [side.size for side in sides]},
    )


def welch(means: Sequence[Tensor], ses: Sequence[Tensor], dfs: Sequence[Any],
           shares: Sequence[float]) -> tuple[Tensor, Tensor, Tensor]:
    """Σ π_c mean_c, its standard error and Welch–Satterthwaite degrees of freedom (per column;
    ``dfs`` are numbers or per-column tensors)."""
    mean = sum(p * m for p, m in zip(shares, means))
    parts = [(p * se) ** 2 for p, se in zip(shares, ses)]
    var = sum(parts)
    dfs = [torch.as_tensor(df, dtype=torch.float64).expand_as(var) for df in dfs]
    denom = sum(v * v / df for v, df in zip(parts, dfs))
    fallback = torch.stack(dfs).min(0).values
    df = torch.where(denom > 0, var * var / torch.where(denom > 0, denom, torch.ones_like(denom)), fallback)
    return mean, var.sqrt(), df


def pooled_reference(chains: Sequence[Tensor], scores: Sequence[Tensor], weights: Sequence[Tensor] | None,
                      kernel: Any, h: float, part: int = 0) -> Reference:
    """The reference of the first (``part`` 0) or second (1) halves of all chains together."""
    parts = [halves(x)[part] for x in chains]
    x = torch.cat([c[a] for c, a in zip(chains, parts)])
    s = torch.cat([c[a] for c, a in zip(scores, parts)])
    w = None if weights is None else torch.cat([c[a] for c, a in zip(weights, parts)])
    return reference(x, s, w, kernel, h)


def disagreement(seconds: Sequence[Tensor], features: Sequence[Tensor], weights: Sequence[Tensor] | None,
                  taus: Sequence[float], alpha: float) -> list[float]:
    """Adjusted p-values that each chain's second-half means (coordinates and pooled features)
    match the mean of the other chains' (two-sided Welch t tests, Bonferroni over the d + 3
    means), chains taken out one at a time: while the chain that differs most has
    (chains left) · p < alpha it is set aside and the rest compared again; so one odd chain
    does not make the others look odd, and if all agree the first comparison keeps the level."""
    C = len(seconds)
    summaries = []
    for c in range(C):
        g = torch.cat([seconds[c].to(torch.float64), features[c]], 1)
        b, _ = batch_size(g.shape[0], taus[c])
        summaries.append(debiased(batch_means(g, b, None if weights is None else weights[c]), taus[c]))

    def raw(c: int, active: list[int]) -> float:
        others = [o for o in active if o != c]
        rest, rest_se, rest_df = welch([summaries[o].mean for o in others], [summaries[o].stderr for o in others],
                                        [summaries[o].df for o in others], [1.0 / len(others)] * len(others))
        diff, se, df = welch([summaries[c].mean, rest], [summaries[c].stderr, rest_se],
                              [summaries[c].df, rest_df], [1.0, -1.0])
        ps = [_pvalue(_tstat(float(m), float(e)), float(f), True) for m, e, f in zip(diff, se, df)]
        return min(1.0, len(ps) * min(ps))

    active, adjusted, floor = list(range(C)), [1.0] * C, 0.0
    while len(active) >= 2:
        ps = {c: min(1.0, len(active) * raw(c, active)) for c in active}
        worst = min(active, key=lambda c: ps[c])
        floor = max(floor, ps[worst])
        if floor >= alpha or len(active) == 2:
            for c in active:  # agreeing chains, or the last two, which differ: either may be the odd one
                adjusted[c] = max(floor, ps[c])
            break
        adjusted[worst] = floor
        active.remove(worst)
    return adjusted


def _lengths(n: int) -> list[int]:
    lo = min(n, max(4 * 20, n // 32))
    return sorted({int(round(v)) for v in np.geomspace(lo, n, _HISTORY_POINTS)})


def history(x: Tensor, s: Tensor, w: Tensor | None, kernel: Any, h: float, alpha: float) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"n": [], "discrepancy": [], "stderr": [], "pvalue": []}
    for m in _lengths(x.shape[0]):
        res = chain_result(chain_sides(x[:m], s[:m], part_of(w, slice(0, m)), kernel, h), m, alpha, None)
        out["n"].append(m)
        out["discrepancy"].append(res.discrepancy)
        out["stderr"].append(res.stderr)
        out["pvalue"].append(res.pvalue)
    return out

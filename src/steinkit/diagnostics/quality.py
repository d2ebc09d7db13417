r"""Is my sampler right? Stein diagnostics for MCMC and importance-weighted draws.

:func:`sample_quality` asks, for each chain and for all chains pooled, whether the draws have
the target p as their distribution, using only the score s = ∇ log p. Tests that assume
independent draws reject correct but autocorrelated MCMC output (a KSD test on raw MALA output
of a 20-d Gaussian gives p = 5·10⁻⁵); this one is valid for autocorrelated draws.

**The test** (``method="batch-means"``, the default). A chain x_1..x_n is cut in halves. One
half fixes three Stein features h = (h_loc, h_scale, h_kernel) of
:mod:`~steinkit.diagnostics.features`, each with E_p h(y) = 0 for every y ~ p whatever that half
is. Under H0 (the chain is stationary with law p and mixes, so the halves are nearly
independent) the other half's feature means are then centred, and by the Markov chain central
limit theorem √n h̄ → N(0, Σ_∞) with Σ_∞ the long-run covariance. Each member's mean is
studentised by **batch means** (:mod:`~steinkit.diagnostics.autocorr`): b batches of m ≥ 5τ̂
draws, τ̂ the largest integrated autocorrelation time (Geyer's initial monotone sequence) of the
features and of the coordinates over the tested half, and t = √b Ȳ/s_Y is referred to Student's
t with b − 1 degrees of freedom, which accounts for estimating Σ_∞ from few batches. Location
and kernel members are one-sided (their means are ≥ 0 away from H0), scale two-sided. This is
done both ways, features of the first half tested on the second and back (a burn-in left in the
first half is caught too), and the chain's p-value is Bonferroni's over the six, min(1, 6 min_k
p_k). The **discrepancy** is the kernel members' mean, the cross U-statistic estimate of
KSD²(q, p) (IMQ kernel, the same bandwidth for every chain, so chains compare), with its
batch-means standard error (the two directions averaged).

*Pooled*: the features come from all first halves together; the chains' second-half means are
combined in proportion to their lengths (or weights), their variances added, with Welch's
degrees of freedom. *Which chains disagree*: per chain, the mean of each coordinate and each
pooled feature over its second half is compared with the average of the other chains' means
(a Welch t test with batch-means variances, two-sided; the variances are inflated by
m/(m − τ̂), the first-order bias of batches of m draws, as these tests reach far into the t
tails), Bonferroni over the d + 3 means and over the chains. The chain that differs most is set aside while its adjusted p-value is below α
and the rest are compared again, so one odd chain does not make the others look odd; if all
chains agree, the first comparison holds the level α. With two chains both or neither disagree.

*Weights* (VI, SMC; draws that are independent or a chain): the first half's means and witness
are weighted, the second half's means are self-normalised weighted means, and the batch-means
variance is that of a self-normalised estimate, b/(b − 1) Σ_k Z_k² with
Z_k = Σ_{i∈k} w_i(h_i − h̄_w)/Σw, on min(b, ESS) − 1 degrees of freedom.

``method="thinned"`` is the alternative measured against it (``benchmarks/sample_quality.py``):
keep every ⌈2τ̂⌉-th draw (τ̂ over coordinates and scores of the whole chain) and run the
quadratic KSD test with a wild bootstrap (:func:`~steinkit.gof.ksd.ksd_test`) on the kept
draws as if independent. It holds its level but is far weaker (it drops most draws and
has only the kernel witness).

Example:
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> draws = torch.randn(4, 1000, 2, generator=g)                # 4 chains from N(0, I)
    >>> draws[3] += 1.0                                              # one of them off by 1
    >>> res = sample_quality(draws, lambda x: -0.5 * (x ** 2).sum(1))   # a log-density
    >>> res.reject, [c.reject for c in res.chains], res.disagreeing
    (True, [False, False, False, True], (3,))
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple, Sequence

import numpy as np
import torch
from scipy import stats
from torch import Tensor

from ..kernels import IMQ, as_kernel, median_bandwidth
from ..results import TestResult
from ..validation import as_device, as_generator, integer, one_of, probability
from .autocorr import BatchMeans, batch_means, batch_size, integrated_times
from .features import MEMBERS, TWO_SIDED, Reference, reference, stein_features, thin_points
from .inputs import as_chains, chain_scores, chain_weights

__all__ = ["METHODS", "ChainQuality", "SampleQuality", "sample_quality"]

METHODS = ("batch-means", "thinned")
_FEW_EFFECTIVE = 50  # fewer effective draws (n / τ̂) than this: say the verdict is rough
_HISTORY_POINTS = 8
_MEDIAN_POINTS = 1000


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


# --------------------------------------------------------------------------- pieces
def _pvalue(t: float, df: float, two_sided: bool) -> float:
    if math.isnan(t):
        return 1.0
    return float(2.0 * stats.t.sf(abs(t), df)) if two_sided else float(stats.t.sf(t, df))


def _tstat(mean: float, se: float) -> float:
    if se > 0:
        return mean / se
    return math.copysign(math.inf, mean) if mean != 0 else math.nan


class _Side(NamedTuple):
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
    return batch_means(f, b, w), tau


def _side(ref: Reference, y: Tensor, sy: Tensor, w: Tensor | None) -> tuple[_Side, Tensor]:
    f = stein_features(ref, y, sy)
    bm, tau = _analyse(f, y, w)
    return _Side(bm.mean, bm.stderr, bm.df, tau, bm.batches, bm.size), f


def _halves(x: Tensor) -> tuple[slice, slice]:
    half = x.shape[0] // 2
    return slice(0, half), slice(half, x.shape[0])


def _part(w: Tensor | None, part: slice) -> Tensor | None:
    return None if w is None else w[part]


def _warning(n: int, tau: float, sides: Sequence[_Side]) -> str:
    if all(bool((side.se == 0).all()) for side in sides):
        return "the draws do not move"
    if n / tau < _FEW_EFFECTIVE:
        return (f"few effective draws (n/τ̂ ≈ {n / tau:.0f}): a rough verdict, with little power; "
                "run the chain longer or run more chains")
    return ""


def _chain_sides(x: Tensor, s: Tensor, w: Tensor | None, kernel: Any, h: float) -> list[_Side]:
    """Both directions of one chain: features of each half tested on the other."""
    first, second = _halves(x)
    out = []
    for a, b in ((first, second), (second, first)):
        ref = reference(x[a], s[a], _part(w, a), kernel, h)
        out.append(_side(ref, x[b], s[b], _part(w, b))[0])
    return out


def _result(sides: Sequence[_Side], n: int, alpha: float, chain: int | None, history: Any = None) -> ChainQuality:
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


def _welch(means: Sequence[Tensor], ses: Sequence[Tensor], dfs: Sequence[Any],
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


def _pooled_reference(chains: Sequence[Tensor], scores: Sequence[Tensor], weights: Sequence[Tensor] | None,
                      kernel: Any, h: float, part: int = 0) -> Reference:
    """The reference of the first (``part`` 0) or second (1) halves of all chains together."""
    parts = [_halves(x)[part] for x in chains]
    x = torch.cat([c[a] for c, a in zip(chains, parts)])
    s = torch.cat([c[a] for c, a in zip(scores, parts)])
    w = None if weights is None else torch.cat([c[a] for c, a in zip(weights, parts)])
    return reference(x, s, w, kernel, h)


def _disagreement(seconds: Sequence[Tensor], features: Sequence[Tensor], weights: Sequence[Tensor] | None,
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
        b, m = batch_size(g.shape[0], taus[c])
        bm = batch_means(g, b, None if weights is None else weights[c])
        # batch means of size m underestimate a long-run variance by about τ/m (AR(1)-type series);
        # these tests look far into the t tails (Bonferroni over (d + 3) · chains), so undo it
        inflate = math.sqrt(m / (m - taus[c])) if m > 2 * taus[c] else math.sqrt(2.0)
        summaries.append(bm._replace(stderr=bm.stderr * inflate))

    def raw(c: int, active: list[int]) -> float:
        others = [o for o in active if o != c]
        rest, rest_se, rest_df = _welch([summaries[o].mean for o in others], [summaries[o].stderr for o in others],
                                        [summaries[o].df for o in others], [1.0 / len(others)] * len(others))
        diff, se, df = _welch([summaries[c].mean, rest], [summaries[c].stderr, rest_se],
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


def _history(x: Tensor, s: Tensor, w: Tensor | None, kernel: Any, h: float, alpha: float) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"n": [], "discrepancy": [], "stderr": [], "pvalue": []}
    for m in _lengths(x.shape[0]):
        res = _result(_chain_sides(x[:m], s[:m], _part(w, slice(0, m)), kernel, h), m, alpha, None)
        out["n"].append(m)
        out["discrepancy"].append(res.discrepancy)
        out["stderr"].append(res.stderr)
        out["pvalue"].append(res.pvalue)
    return out


def _kernel_and_length(kernel: Any, chains: Sequence[Tensor]) -> tuple[Any, float]:
    """The kernel with its bandwidth fixed on the first halves of all chains (at most 1000
    evenly spaced draws), and the median distance between those draws (the scale feature's h)."""
    parts = [x[_halves(x)[0]] for x in chains]
    pooled = torch.cat(parts).to(torch.float64)
    pts = pooled[thin_points(pooled.shape[0], _MEDIAN_POINTS).to(pooled.device)]
    h = median_bandwidth(pts)
    k = as_kernel(IMQ() if kernel is None else kernel)
    resolved = k.resolve(pts)
    if len(resolved) != 1:
        raise ValueError(f"kernel must have one bandwidth for sample_quality, got {len(resolved)} ({k!r})")
    return resolved[0], h


# --------------------------------------------------------------------------- thinned
def _thinned_one(x: Tensor, s: Tensor, kernel: Any, alpha: float, chain: int | None, generator: Any,
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
    warning = "" if n / tau >= _FEW_EFFECTIVE else \
        f"few effective draws (n/τ̂ ≈ {n / tau:.0f}): a rough verdict, with little power; run the chain longer"
    res = ChainQuality(statistic=out.statistic, pvalue=out.pvalue, reject=out.pvalue < alpha, alpha=alpha,
                       chain=chain, n=n, discrepancy=value, stderr=se, iat=float(tau), ess=n / tau, warning=warning,
                       details={"step": step, "kept": int(xt.shape[0])})
    return res, xt, st


# --------------------------------------------------------------------------- public
def sample_quality(
    draws: Any,
    target: Any = None,
    *,
    scores: Any = None,
    weights: Any = None,
    alpha: float = 0.05,
    method: str = "batch-means",
    kernel: Any = None,
    history: bool = False,
    n_bootstrap: int = 1000,
    seed: int | None = 0,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> SampleQuality:
    """Do these MCMC (or weighted) draws follow the target? Per-chain and pooled Stein tests
    valid for autocorrelated draws, discrepancies with error bars, and the chains that disagree.

    See the module docstring for the method; it needs only the score ∇ log p, never the
    normalising constant.

    Arguments:
        draws: (chains, n, d) or (n, d) (one chain) tensor or array, a list of (n_c, d) chains
            (lengths may differ), or an ArviZ posterior (InferenceData or DataTree). Each chain
            needs at least 20 draws; keep the burn-in out (or see it flagged).
        target: the target p: anything :func:`steinkit.as_score` takes (a distribution, an object
            with ``.score`` or ``.log_prob``, an energy module, a score function), or a plain
            log-density function x (n, d) -> (n,). None when ``scores`` is given.
        scores: ∇ log p at the draws, in the shape of ``draws``, instead of ``target``.
        weights: importance weights, one per draw ((chains, n), (n,) or a list), any positive
            scale (self-normalised); ``method="batch-means"`` only.
        alpha: the level of every verdict.
        method: ``"batch-means"`` (default) or ``"thinned"`` (see the module docstring).
        kernel: the Stein kernel of the kernel feature and the discrepancy (a
            :mod:`steinkit.kernels` object or name, one bandwidth); default IMQ, β = −1/2, with
            the median distance of the first halves' draws as bandwidth.
        history: also compute each chain's discrepancy on its first n draws for growing n
            (``ChainQuality.history``, what ``steinkit diagnose --plot`` draws).
        n_bootstrap: wild-bootstrap draws of ``method="thinned"``.
        seed, generator: randomness of ``method="thinned"``'s bootstrap (the default method
            draws no random numbers).
        device: where to compute (None: where the draws are).

    Returns:
        :class:`SampleQuality`: the pooled verdict (``statistic``, ``pvalue``, ``reject``,
        ``discrepancy``, ``stderr``), ``chains`` (a :class:`ChainQuality` each), ``disagreeing``.

    Example:
        >>> import torch, steinkit as sk
        >>> g = torch.Generator().manual_seed(1)
        >>> x = torch.randn(2, 600, 3, generator=g) * 1.3                # too spread out for N(0, I)
        >>> res = sk.sample_quality(x, torch.distributions.Normal(torch.zeros(3), torch.ones(3)))
        >>> res.reject, res.discrepancy > 0
        (True, True)
    """
    alpha = probability(alpha, "alpha")
    method = one_of(method, "method", METHODS)
    n_bootstrap = integer(n_bootstrap, "n_bootstrap", minimum=1)
    if not isinstance(history, bool):
        raise TypeError(f"history must be a bool, got type {type(history).__name__}")
    gen = as_generator(seed=seed if generator is None else None, generator=generator)
    first = draws[0] if isinstance(draws, (list, tuple)) and draws and isinstance(draws[0], Tensor) else draws
    dev = as_device(device, first)
    chains, columns = as_chains(draws, dev)
    score_list = chain_scores(chains, target, scores)
    weight_list = chain_weights(weights, chains)
    if weight_list is not None and method != "batch-means":
        raise ValueError(f"weights are supported by method='batch-means' only, not method={method!r}")
    chains = [x.to(torch.float64) for x in chains]
    kern, h = _kernel_and_length(kernel, chains)
    C = len(chains)
    ws = (lambda c: None) if weight_list is None else (lambda c: weight_list[c])  # noqa: E731

    if method == "thinned":
        results, kept_x, kept_s = [], [], []
        for c in range(C):
            res, xt, st = _thinned_one(chains[c], score_list[c], kern, alpha, c if C > 1 else 0, gen, n_bootstrap)
            results.append(res)
            kept_x.append(xt)
            kept_s.append(st)
        if C == 1:
            pooled = dataclasses.replace(results[0], chain=None)
        else:
            xs, ss = torch.cat(kept_x), torch.cat(kept_s)
            tau = max(r.iat for r in results)
            pooled, _, _ = _thinned_one(xs, ss, kern, alpha, None, gen, n_bootstrap, step=1, tau=1.0)
            total = sum(x.shape[0] for x in chains)
            pooled = dataclasses.replace(pooled, n=total, iat=tau, ess=sum(r.ess for r in results),
                                         details={"kept": int(xs.shape[0])})
    else:
        results = []
        for c in range(C):
            hist = _history(chains[c], score_list[c], ws(c), kern, h, alpha) if history else None
            results.append(_result(_chain_sides(chains[c], score_list[c], ws(c), kern, h), chains[c].shape[0],
                                   alpha, c, hist))
        sides, feats, taus = [], [], []
        for part in (0, 1):  # features from all first halves tested on the second halves, and back
            ref = _pooled_reference(chains, score_list, weight_list, kern, h, part)
            chain_sides, shares = [], []
            for c in range(C):
                tested = _halves(chains[c])[1 - part]
                side, f = _side(ref, chains[c][tested], score_list[c][tested], _part(ws(c), tested))
                chain_sides.append(side)
                w = _part(ws(c), tested)
                shares.append(float(f.shape[0]) if w is None else float(w.sum()))
                if part == 0:
                    feats.append(f)
                    taus.append(side.tau)
            total = sum(shares)
            mean, se, df = _welch([cs.mean for cs in chain_sides], [cs.se for cs in chain_sides],
                                  [cs.df for cs in chain_sides], [v / total for v in shares])
            n_tested = sum(_halves(x)[1 - part].stop - _halves(x)[1 - part].start for x in chains)
            tau = n_tested / sum((hv.stop - hv.start) / cs.tau for hv, cs in
                                 zip((_halves(x)[1 - part] for x in chains), chain_sides))
            sides.append(_Side(mean, se, df, tau, sum(cs.batches for cs in chain_sides), 0))
        n_all = sum(x.shape[0] for x in chains)
        pooled = _result(sides, n_all, alpha, None)
        pooled = dataclasses.replace(pooled, details={"batches": [side.batches for side in sides],
                                                      "df": [[float(v) for v in side.df] for side in sides]})

    agreement, disagreeing = None, ()
    if C > 1:
        if method == "thinned":
            ref = _pooled_reference(chains, score_list, None, kern, h)
            taus = [r.iat for r in results]
            feats = [stein_features(ref, x[_halves(x)[1]], s[_halves(x)[1]]) for x, s in zip(chains, score_list)]
        seconds = [x[_halves(x)[1]] for x in chains]
        wsec = None if weight_list is None else [w[_halves(w)[1]] for w in weight_list]
        adjusted = _disagreement(seconds, feats, wsec, taus, alpha)
        results = [dataclasses.replace(r, disagreement_pvalue=p, disagrees=p < alpha) for r, p in zip(results, adjusted)]
        agreement = min(adjusted)  # the first comparison, of all chains
        disagreeing = tuple(c for c, p in enumerate(adjusted) if p < alpha)
    return SampleQuality(
        statistic=pooled.statistic, pvalue=pooled.pvalue, reject=pooled.reject, alpha=alpha,
        discrepancy=pooled.discrepancy, stderr=pooled.stderr, method=method, chains=tuple(results), pooled=pooled,
        disagreeing=disagreeing, agreement_pvalue=agreement, kernel=repr(kern),
        columns=None if columns is None else tuple(columns),
    )

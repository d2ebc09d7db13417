r"""Is my sampler right? Stein diagnostics for MCMC and importance-weighted draws.

:func:`sample_quality` asks, for each chain and for all chains pooled, whether the draws have
the target p as their distribution, using only the score s = ∇ log p. Tests that assume
independent draws reject correct but autocorrelated MCMC output (a KSD test on raw MALA output
of a 20-d Gaussian gives p = 5·10⁻⁵); this one is valid for autocorrelated draws.

``method="batch-means"`` (the default, :mod:`~steinkit.diagnostics.halves`): one half of a chain
fixes three Stein features (location, a weighted scale field, the IMQ kernel witness), each with
mean zero under p; under H0 the other half's feature means are centred, and by the Markov chain
central limit theorem each is studentised by batch means (batches of m ≥ 5τ̂ draws, variance
debiased by m/(m − τ̂), τ̂ Geyer's integrated autocorrelation time) and referred to Student's t. Location and kernel members are
one-sided, scale two-sided; both directions (a burn-in left in the first half is caught too);
Bonferroni over the six. The **discrepancy** is the kernel members' mean, the cross U-statistic
estimate of KSD²(q, p) (one bandwidth for every chain, so chains compare), with its batch-means
standard error. ``method="thinned"`` (:mod:`~steinkit.diagnostics.thinned`) keeps every
⌈2τ̂⌉-th draw and runs the KSD test on them: valid, but far weaker.

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
from typing import Any, Sequence

import torch
from torch import Tensor

from ..kernels import IMQ, as_kernel, median_bandwidth
from ..validation import as_device, as_generator, integer, one_of, probability
from .features import stein_features, thin_points
from .halves import (Side, chain_result, chain_sides, disagreement, halves, history, part_of, pooled_reference,
                     side, welch)
from .inputs import as_chains, chain_scores, chain_weights
from .results import ChainQuality, SampleQuality
from .thinned import thinned_chain

__all__ = ["METHODS", "ChainQuality", "SampleQuality", "sample_quality"]

METHODS = ("batch-means", "thinned")
_MEDIAN_POINTS = 1000


def _kernel_and_length(kernel: Any, chains: Sequence[Tensor]) -> tuple[Any, float]:
    """The kernel with its bandwidth fixed on the first halves of all chains (at most 1000
    evenly spaced draws), and the median distance between those draws (the scale feature's h)."""
    parts = [x[halves(x)[0]] for x in chains]
    pooled = torch.cat(parts).to(torch.float64)
    pts = pooled[thin_points(pooled.shape[0], _MEDIAN_POINTS).to(pooled.device)]
    h = median_bandwidth(pts)
    k = as_kernel(IMQ() if kernel is None else kernel)
    resolved = k.resolve(pts)
    if len(resolved) != 1:
        raise ValueError(f"kernel must have one bandwidth for sample_quality, got {len(resolved)} ({k!r})")
    return resolved[0], h


def _thinned(chains: Sequence[Tensor], scores: Sequence[Tensor], kern: Any, alpha: float, gen: Any,
             n_bootstrap: int) -> tuple[list[ChainQuality], ChainQuality]:
    """Per-chain and pooled results of ``method="thinned"``."""
    C = len(chains)
    results, kept_x, kept_s = [], [], []
    for c in range(C):
        res, xt, st = thinned_chain(chains[c], scores[c], kern, alpha, c if C > 1 else 0, gen, n_bootstrap)
        results.append(res)
        kept_x.append(xt)
        kept_s.append(st)
    if C == 1:
        return results, dataclasses.replace(results[0], chain=None)
    xs, ss = torch.cat(kept_x), torch.cat(kept_s)
    pooled, _, _ = thinned_chain(xs, ss, kern, alpha, None, gen, n_bootstrap, step=1, tau=1.0)
    pooled = dataclasses.replace(pooled, n=sum(x.shape[0] for x in chains), iat=max(r.iat for r in results),
                                 ess=sum(r.ess for r in results), details={"kept": int(xs.shape[0])})
    return results, pooled


def _batch_means(chains: Sequence[Tensor], scores: Sequence[Tensor], weights: Sequence[Tensor] | None, kern: Any,
                 h: float, alpha: float, with_history: bool
                 ) -> tuple[list[ChainQuality], ChainQuality, list[Tensor], list[float]]:
    """Per-chain and pooled results of ``method="batch-means"``, with each chain's second-half
    features (under the pooled first halves' reference) and τ̂ there, for the agreement test."""
    ws = (lambda c: None) if weights is None else (lambda c: weights[c])  # noqa: E731
    results = []
    for c, (x, s) in enumerate(zip(chains, scores)):
        hist = history(x, s, ws(c), kern, h, alpha) if with_history else None
        results.append(chain_result(chain_sides(x, s, ws(c), kern, h), x.shape[0], alpha, c, hist))
    sides, feats, taus = [], [], []
    for part in (0, 1):  # features from all first halves tested on the second halves, and back
        ref = pooled_reference(chains, scores, weights, kern, h, part)
        chain_sides_, shares, lengths = [], [], []
        for c, (x, s) in enumerate(zip(chains, scores)):
            tested = halves(x)[1 - part]
            one, f = side(ref, x[tested], s[tested], part_of(ws(c), tested))
            chain_sides_.append(one)
            w = part_of(ws(c), tested)
            shares.append(float(f.shape[0]) if w is None else float(w.sum()))
            lengths.append(tested.stop - tested.start)
            if part == 0:
                feats.append(f)
                taus.append(one.tau)
        total = sum(shares)
        mean, se, df = welch([cs.mean for cs in chain_sides_], [cs.se for cs in chain_sides_],
                             [cs.df for cs in chain_sides_], [v / total for v in shares])
        tau = sum(lengths) / sum(m / cs.tau for m, cs in zip(lengths, chain_sides_))
        sides.append(Side(mean, se, df, tau, sum(cs.batches for cs in chain_sides_), 0))
    pooled = chain_result(sides, sum(x.shape[0] for x in chains), alpha, None)
    pooled = dataclasses.replace(pooled, details={"batches": [one.batches for one in sides],
                                                  "df": [[float(v) for v in one.df] for one in sides]})
    return results, pooled, feats, taus


def _agreement(chains: Sequence[Tensor], feats: Sequence[Tensor], weights: Sequence[Tensor] | None,
               taus: Sequence[float], alpha: float, results: list[ChainQuality]
               ) -> tuple[list[ChainQuality], float | None, tuple[int, ...]]:
    """The chains' results with their disagreement p-values, the first comparison's p-value
    (all chains), and the chains that disagree (none to compare with one chain)."""
    if len(chains) < 2:
        return results, None, ()
    seconds = [x[halves(x)[1]] for x in chains]
    wsec = None if weights is None else [w[halves(w)[1]] for w in weights]
    adjusted = disagreement(seconds, feats, wsec, taus, alpha)
    results = [dataclasses.replace(r, disagreement_pvalue=p, disagrees=p < alpha) for r, p in zip(results, adjusted)]
    return results, min(adjusted), tuple(c for c, p in enumerate(adjusted) if p < alpha)


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

    See the module docstring for the method; it needs only the score ∇ log p.

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
        history: also each chain's discrepancy on its first n draws, n growing (``--plot``'s curves).
        n_bootstrap, seed, generator: the wild bootstrap of ``method="thinned"`` (the default draws none).
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
    chains, columns = as_chains(draws, as_device(device, first))
    score_list = chain_scores(chains, target, scores)
    weight_list = chain_weights(weights, chains)
    if weight_list is not None and method != "batch-means":
        raise ValueError(f"weights are supported by method='batch-means' only, not method={method!r}")
    chains = [x.to(torch.float64) for x in chains]
    kern, h = _kernel_and_length(kernel, chains)
    if method == "thinned":
        results, pooled = _thinned(chains, score_list, kern, alpha, gen, n_bootstrap)
        taus = [r.iat for r in results]
        ref = pooled_reference(chains, score_list, None, kern, h)  # the agreement test's features
        feats = [stein_features(ref, x[halves(x)[1]], s[halves(x)[1]]) for x, s in zip(chains, score_list)]
    else:
        results, pooled, feats, taus = _batch_means(chains, score_list, weight_list, kern, h, alpha, history)
    results, agreement, disagreeing = _agreement(chains, feats, weight_list, taus, alpha, results)
    return SampleQuality(
        statistic=pooled.statistic, pvalue=pooled.pvalue, reject=pooled.reject, alpha=alpha,
        discrepancy=pooled.discrepancy, stderr=pooled.stderr, method=method, chains=tuple(results), pooled=pooled,
        disagreeing=disagreeing, agreement_pvalue=agreement, kernel=repr(kern),
        columns=None if columns is None else tuple(columns),
    )

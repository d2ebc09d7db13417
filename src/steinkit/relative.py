"""Relative test: does model A fit the data better than model B? A paired test with a p-value.

Both models are scored on the same points, so their per-point terms are paired and the
difference has a far smaller spread than either estimate. ``method="auto"`` (the default) picks
``"optimal"`` when every model's score is differentiable by autograd and no critic is asked for
(``return_critic``, ``settings`` or critic settings other than ``lam``), else ``"lsd"``; the exact
method holds its level where the learned one may not (docs/design-notes.md).

``method="optimal"`` (no critic): the difference of the optimal critics' LSDs,
LSD*(A) − LSD*(B) = E_p[‖s_A‖² − ‖s_B‖² + 2 tr ∇s_A − 2 tr ∇s_B]/(2λ) (Hyvärinen's identity: the
unknown E_p‖s_p‖² cancels), estimated from every point with exact traces (d backward passes).
It tests H0: LSD*(A) ≥ LSD*(B), i.e. that A's Fisher divergence from the data is at least B's.

``method="lsd"`` (learned critics; settings :data:`~steinkit.settings.RELATIVE`): one critic per
model, both as one ensemble with the same split, initialisation and probes, fitted on 45% of the
data (5% to select); on the other half each model m gets the penalised terms
h_m(x) = 2(T_m(x) − λ‖f_m(x)‖²), a lower bound of LSD*(m) (:func:`penalised_terms`). It tests,
given the critics, H0: E_p h_A ≥ E_p h_B with t = √n · mean(h_B − h_A)/std(h_B − h_A) on the test
points and p = 1 − Φ(t); the critics depend on the training part only, so the test points'
differences are i.i.d. given them and the level is exact as n grows. When both critics fit
equally well (the same 2λ‖f − f*‖²), H0 is LSD*(A) ≥ LSD*(B).

Example:
    >>> import torch, steinkit as sk
    >>> g = torch.Generator().manual_seed(0)
    >>> x = torch.randn(1000, 3, generator=g)
    >>> near = sk.models.Gaussian(torch.full((3,), 0.1), torch.eye(3))
    >>> far = sk.models.Gaussian(torch.full((3,), 0.5), torch.eye(3))
    >>> res = relative_test(near, far, x)
    >>> res.method, res.reject, res.difference < 0
    ('optimal', True, True)
    >>> learned = relative_test(near, far, x, n_iters=100, hidden=16)  # critic settings: the learned test
    >>> learned.method, learned.reject
    ('lsd', True)
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar, Mapping, Sequence

import torch
from torch import Tensor

from .heldout import HeldOutFit, fit_heldout_critics
from .gof.outcome import normal_sf
from .results import TestResult
from .scores import Score, as_scores
from .settings import RELATIVE, CriticSettings, settings_from
from .stein import exact_trace
from .validation import as_data, as_device, flag, one_of, probability, seed_from, wrong_type
from .witness import FittedCritic

__all__ = ["METHODS", "RelativeResult", "relative_test", "relative_tests", "paired_test", "penalised_terms", "holm",
           "exact_terms"]

METHODS = ("auto", "lsd", "optimal")


@dataclass(frozen=True)
class RelativeResult(TestResult):
    """Outcome of :func:`relative_test` of H0: model A fits no better than model B; unpacks as
    ``(statistic, pvalue)``.

    Attributes:
        method: the method that ran, ``"lsd"`` or ``"optimal"``.
        difference: the estimate of LSD(A) − LSD(B) (negative when A fits better), on the scale
            of :func:`~steinkit.stein_discrepancy`'s value.
        stderr: its standard error (from the paired per-point differences).
        statistic: t = −difference/stderr (large when A fits better).
        pvalue: 1 − Φ(t).
        reject: whether H0 is rejected at ``alpha`` (A fits better).
        alpha: the level.
        n_test: the number of paired points in the statistic.
        value_a, value_b: each model's mean penalised term (``"lsd"``: a lower bound of its LSD);
            None for ``"optimal"``, which gives only the difference.
        seconds: wall time.
        critic_a, critic_b: the fitted critics (``"lsd"`` with ``return_critic=True``), for
            :func:`~steinkit.witness`.
        details: the method's extras (λ, best iterations, the hypothesis in words).
    """

    method: str
    difference: float
    stderr: float
    statistic: float
    pvalue: float
    reject: bool
    alpha: float
    n_test: int
    value_a: float | None
    value_b: float | None
    seconds: float = field(compare=False)
    critic_a: FittedCritic | None = field(default=None, repr=False, compare=False)
    critic_b: FittedCritic | None = field(default=None, repr=False, compare=False)
    details: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    statistic_meaning: ClassVar[str] = "t = −difference/stderr; larger is stronger evidence that A fits better"
    _UNSTORED: ClassVar[tuple[str, ...]] = ("critic_a", "critic_b")

    def _title(self) -> str:
        return f"relative test ({self.method})"

    def _summary(self) -> str:
        return f"LSD(A) − LSD(B) = {self.difference:.4g} ± {self.stderr:.2g}, {super()._summary()}"

    def _verdict(self) -> str:
        return "A fits better (reject H0)" if self.reject else "no evidence that A fits better"

    def _tail(self) -> str:
        return f" (n_test={self.n_test})"


def paired_test(differences: Tensor) -> tuple[float, float, float]:
    """(mean, standard error, t = mean/stderr) of per-point differences. Equal differences give
    t = ±∞ by the sign of their mean, or 0 when they are all zero (two identical models).

    Example:
        >>> paired_test(torch.tensor([1.0, 3.0], dtype=torch.float64))
        (2.0, 1.0, 2.0)
        >>> paired_test(torch.zeros(4))[2]
        0.0
    """
    d = differences.detach().to("cpu", torch.float64)
    if d.dim() != 1 or d.shape[0] < 2:
        raise ValueError(f"differences must be (n,) with n >= 2, got shape {tuple(d.shape)}")
    mean, stderr = float(d.mean()), float(d.std()) / math.sqrt(d.shape[0])
    if stderr > 0:
        return mean, stderr, mean / stderr
    return mean, stderr, math.copysign(math.inf, mean) if mean != 0 else 0.0


def penalised_terms(fit: HeldOutFit, lam: float) -> Tensor:
    """h(x) = 2(T(x) − λ‖f(x)‖²) of a held-out fit on its test points, in float64, with
    T(x) = s(x)ᵀf(x) + tr ∇f(x). For any critic f, E_p h = LSD* − 2λ·E_p‖f − f*‖², where
    LSD* = E_p‖s − s_p‖²/(2λ) is the optimal critic's LSD and f* = (s − s_p)/(2λ): a per-point
    lower bound, tight at the optimal critic, whose error is quadratic in the critic's (the plain
    terms' error is linear).

    Example:
        >>> fit = HeldOutFit(torch.tensor([1.0, 2.0]), 10, (), torch.tensor([1.0, 0.0]))
        >>> penalised_terms(fit, 0.5).tolist()
        [1.0, 4.0]
    """
    return 2 * (fit.test_terms.double() - lam * fit.test_sq_norms.double())


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment of p-values (family-wise error at most α under any dependence).

    Example:
        >>> holm([0.01, 0.04, 0.03])
        [0.03, 0.06, 0.06]
    """
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted, running = [0.0] * m, 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


_TRACE_ROWS = 4096  # rows per autograd graph of _score_terms: memory bounded whatever n


def _score_terms(score: Score, x: Tensor) -> Tensor:
    """‖s(x)‖² + 2 tr ∇s(x) per point (exact trace: d backward passes), in float64, a chunk of rows
    at a time."""
    parts = []
    for start in range(0, x.shape[0], _TRACE_ROWS):
        with torch.enable_grad():
            xg = x[start:start + _TRACE_ROWS].detach().requires_grad_(True)
            s = score(xg)
            if not s.requires_grad:
                raise ValueError(f"method='optimal' needs every model's score to be differentiable by torch autograd; "
                                 f"{score.source} returned values without a graph: use method='lsd'")
            trace, _ = exact_trace(lambda _: s, xg, create_graph=False)
        parts.append(s.detach().double().pow(2).sum(1) + 2 * trace.detach().double())
    return torch.cat(parts)


def _optimal_terms(scores: Sequence[Score], x: Tensor, lam: float) -> list[Tensor]:
    """Per model, (‖s‖² + 2 tr ∇s)/(2λ) at every point: differences of two models' rows are the
    per-point estimates of LSD*(A) − LSD*(B)."""
    terms = [_score_terms(sc, x) / (2 * lam) for sc in scores]
    if not all(bool(torch.isfinite(t).all()) for t in terms):
        raise FloatingPointError("the models' score terms ‖s‖² + 2 tr ∇s are not finite on x: check the models")
    return terms


def _differentiable(scores: Sequence[Score], x: Tensor) -> bool:
    """Whether every score returns values with an autograd graph on a few rows of ``x``."""
    with torch.enable_grad():
        return all(bool(sc(x[:2].detach().requires_grad_(True)).requires_grad) for sc in scores)


def exact_terms(models: Sequence[Any], x: Any, lam: float, device: Any = None) -> list[Tensor] | None:
    """Each model's per-point terms (‖s‖² + 2 tr ∇s)/(2λ) on every row of ``x`` when every score is
    differentiable by autograd (pairwise differences estimate LSD*(a) − LSD*(b)), else None.

    Example:
        >>> import torch, steinkit as sk
        >>> x = torch.zeros(4, 2)
        >>> exact_terms([sk.models.Gaussian(torch.zeros(2), torch.eye(2))], x, 0.5)[0].tolist()  # 0 + 2·(−2)
        [-4.0, -4.0, -4.0, -4.0]
        >>> exact_terms([lambda z: -z.detach()], x, 0.5) is None
        True
    """
    data = as_data(x, "x", min_rows=2).to(as_device(device, x))
    scores = as_scores(list(models), data.device)
    if not _differentiable(scores, data):
        return None
    return _optimal_terms(scores, data, lam)


def _learned_terms(scores: Sequence[Score], x: Tensor, cfg: CriticSettings, seed: int, progress: bool,
                   device: torch.device, return_critic: bool) -> tuple[list[Tensor], list[HeldOutFit]]:
    fits = fit_heldout_critics([(sc, x, seed) for sc in scores], cfg, progress=progress, device=device,
                               keep_critics=return_critic)
    h = [penalised_terms(f, cfg.lam) for f in fits]
    if not all(bool(torch.isfinite(t).all()) for t in h):
        raise FloatingPointError("the critics' penalised terms are not finite on the test split: lower lr or raise lam")
    return h, fits


def _check_pairs(pairs: Any, n_models: int) -> list[tuple[int, int]]:
    ok = isinstance(pairs, (list, tuple)) and len(pairs) > 0
    out = []
    for pair in pairs if ok else ():
        good = isinstance(pair, (list, tuple)) and len(pair) == 2 and all(
            isinstance(i, int) and not isinstance(i, bool) and 0 <= i < n_models for i in pair)
        if not good:
            ok = False
            break
        out.append((pair[0], pair[1]))
    if not ok:
        raise ValueError(f"pairs must be a non-empty list of (a, b) model indices in [0, {n_models}), got {pairs!r}")
    return out


def relative_tests(
    models: Sequence[Any],
    x: Any,
    pairs: Sequence[tuple[int, int]],
    alpha: float = 0.05,
    seed: int = 0,
    settings: CriticSettings | None = None,
    *,
    method: str = "auto",
    generator: torch.Generator | None = None,
    return_critic: bool = False,
    progress: bool = False,
    device: torch.device | str | None = None,
    **overrides: Any,
) -> list[RelativeResult]:
    """Several relative tests on one data set, each model's critic fitted once (one ensemble).

    ``pairs[k] = (a, b)`` tests H0: ``models[a]`` fits no better than ``models[b]``. Every
    model's critic starts from the same seed, so each result equals
    ``relative_test(models[a], models[b], x, alpha, seed, ...)``. The ``seconds`` of each
    result is the call's wall time divided by the number of pairs. The other arguments are
    those of :func:`relative_test`.

    Example:
        >>> import torch, steinkit as sk
        >>> x = torch.randn(500, 2, generator=torch.Generator().manual_seed(0))
        >>> models = [sk.models.Gaussian(torch.full((2,), m), torch.eye(2)) for m in (0.0, 0.3, 1.0)]
        >>> [r.reject for r in relative_tests(models, x, [(0, 2), (1, 2), (2, 0)], method="optimal")]
        [True, True, False]
    """
    start = time.perf_counter()
    method = one_of(method, "method", METHODS)
    alpha = probability(alpha, "alpha")
    cfg = settings_from(settings, RELATIVE, overrides,
                        extra=", or method, seed, generator, return_critic, progress, device")
    flag(return_critic, "return_critic")
    if return_critic and method == "optimal":
        raise TypeError(f"return_critic applies to method='lsd' only, not {method!r} (it fits no critic)")
    if not isinstance(models, (list, tuple)):
        raise wrong_type("models", "a list of models", models)
    pairs = _check_pairs(pairs, len(models))
    seed = seed_from(seed, generator)
    device = as_device(device, x)
    data = as_data(x, "x", min_rows=2).to(device)
    scores = as_scores(list(models), device)
    for sc in scores:
        sc.check_dim(data)
    if method == "auto":
        wants_critic = return_critic or settings is not None or bool(set(overrides) - {"lam"})
        method = "optimal" if not wants_critic and _differentiable(scores, data) else "lsd"
    fits: list[HeldOutFit] = []
    if method == "optimal":
        terms = _optimal_terms(scores, data, cfg.lam)
    else:
        terms, fits = _learned_terms(scores, data, cfg, seed, progress, device, return_critic)
    critics = [FittedCritic(f.critic, sc, cfg.lam, f.best_iteration) if f.critic is not None else None
               for f, sc in zip(fits, scores)] or [None] * len(scores)
    seconds = (time.perf_counter() - start) / len(pairs)
    return [_result(method, terms, fits, critics, a, b, alpha, cfg.lam, seconds) for a, b in pairs]


def _result(method: str, terms: list[Tensor], fits: list[HeldOutFit], critics: list[FittedCritic | None], a: int,
            b: int, alpha: float, lam: float, seconds: float) -> RelativeResult:
    mean, stderr, t = paired_test(terms[a] - terms[b])
    p = normal_sf(-t)
    if method == "optimal":
        values: tuple[float | None, float | None] = (None, None)
        details = {"lam": lam, "hypothesis": "LSD*(A) >= LSD*(B): the optimal critics' LSDs (Fisher divergences)"}
    else:
        values = (float(terms[a].mean()), float(terms[b].mean()))
        details = {"lam": lam, "best_iterations": [fits[a].best_iteration, fits[b].best_iteration],
                   "hypothesis": "E h_A >= E h_B for the fitted critics, h = 2(T - lam |f|^2) a lower bound of LSD"}
    return RelativeResult(method=method, difference=mean, stderr=stderr, statistic=-t, pvalue=p, reject=p < alpha,
                          alpha=alpha, n_test=int(terms[a].shape[0]), value_a=values[0], value_b=values[1],
                          seconds=seconds, critic_a=critics[a], critic_b=critics[b],
                          details=MappingProxyType(details))


def relative_test(
    model_a: Any,
    model_b: Any,
    x: Any,
    alpha: float = 0.05,
    seed: int = 0,
    settings: CriticSettings | None = None,
    *,
    method: str = "auto",
    generator: torch.Generator | None = None,
    return_critic: bool = False,
    progress: bool = False,
    device: torch.device | str | None = None,
    **overrides: Any,
) -> RelativeResult:
    """Test H0: model A fits the data x no better than model B, against "A fits better".

    Arguments:
        model_a, model_b: anything :func:`steinkit.as_score` accepts.
        x: samples from the data distribution, (n, d); both models are scored on the same points.
        alpha: test level in (0, 1).
        seed: seed of the split, the critics' initialisation and the probes (shared by both).
        settings: ``"lsd"``: a :class:`~steinkit.settings.CriticSettings`; default
            :data:`~steinkit.settings.RELATIVE` (2×64 Swish, 300 steps, λ = .5, objective
            "lsd", split .45/.05/.5). ``"optimal"`` uses only its ``lam``.
        method: ``"auto"`` (default: ``"optimal"`` when both scores are differentiable by
            autograd and no critic is asked for, by ``return_critic``, ``settings`` or critic
            settings other than ``lam``; else ``"lsd"``), ``"lsd"`` (learned critics,
            a held-out half) or ``"optimal"`` (no critic, all points, differentiable scores); see
            the module docstring for what each tests and why ``"optimal"`` is preferred.
        generator: a ``torch.Generator`` to draw the seed from instead.
        return_critic: keep both critics on the result (``critic_a``, ``critic_b``); needs the
            learned critics (``"lsd"``, which ``"auto"`` then runs).
        progress: show a progress bar.
        device: where to compute (default: where ``x`` lives, else the CPU).
        **overrides: :class:`~steinkit.settings.CriticSettings` fields to change.

    Returns:
        A :class:`RelativeResult`.
    """
    return relative_tests([model_a, model_b], x, [(0, 1)], alpha, seed, settings, method=method, generator=generator,
                          return_critic=return_critic, progress=progress, device=device, **overrides)[0]

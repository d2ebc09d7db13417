"""``gof_test``: one entry point for the LSD test and the kernel Stein baselines.

Example:
    >>> import torch, steinkit as sk
    >>> x = torch.randn(300, 2, generator=torch.Generator().manual_seed(0))
    >>> res = sk.gof_test(sk.models.Gaussian(torch.zeros(2), torch.eye(2)), x, method="ksd", seed=0)
    >>> res.reject
    False
"""

from __future__ import annotations

import functools
import inspect
import math
import time
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Mapping, Sequence

import torch
from torch import Tensor

from ..scores import as_scores
from ..settings import CriticSettings, field_names
from ..validation import as_data, as_device, flag, one_of, probability, seed_from, seed_value, wrong_type
from .fssd import fssd_test
from .ksd import ksd_test
from .ksdagg import ksdagg_test
from .lksd import lksd_test
from .lsd import DEFAULT_PROTOCOL, PROTOCOLS, lsd_tests
from .outcome import TestOutcome
from .sequential import sequential_witness_test

__all__ = ["GofResult", "gof_test", "gof_tests", "METHODS"]

METHODS = ("lsd", "ksd", "lksd", "fssd", "ksdagg", "ksdagg-inc", "ksd-seq")


@dataclass(frozen=True)
class GofResult:
    """Outcome of a goodness-of-fit test of H0: the data came from the model; unpacks as
    ``(statistic, pvalue)``.

    Attributes:
        method: one of :data:`METHODS`.
        statistic: the test statistic.
        pvalue: its p-value in [0, 1].
        reject: whether H0 is rejected at level ``alpha`` (``pvalue < alpha``).
        alpha: the level.
        seconds: wall time of the test.
        details: method-specific values (bandwidths, splits, training history, ...).
        critic: LSD with ``return_critic=True``: the selected critic (for :func:`steinkit.witness`).
    """

    method: str
    statistic: float
    pvalue: float
    reject: bool
    alpha: float
    seconds: float
    details: Mapping[str, Any] = field(repr=False, compare=False)
    critic: Any = field(default=None, repr=False, compare=False)

    def __str__(self) -> str:
        verdict = "reject H0" if self.reject else "do not reject H0"
        return (
            f"{self.method.upper()} test: statistic = {self.statistic:.4g}, p-value = {self.pvalue:.4g} "
            f"-> {verdict} at alpha = {self.alpha:g} ({self.seconds:.2f} s)"
        )

    def __iter__(self):
        """Unpacks as ``(statistic, pvalue)``, like scipy's test results.

        Example:
            >>> import torch, steinkit as sk
            >>> x = torch.randn(100, 2, generator=torch.Generator().manual_seed(0))
            >>> stat, p = sk.gof_test(sk.models.Gaussian(torch.zeros(2), torch.eye(2)), x, "lksd")
            >>> 0.0 <= p <= 1.0
            True
        """
        return iter((self.statistic, self.pvalue))

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (tensors become lists; long arrays are dropped from details)."""
        details = {}
        for key, value in self.details.items():
            if isinstance(value, Tensor):
                if value.numel() > 1000:
                    continue
                value = value.tolist()
            details[key] = value
        return {
            "method": self.method,
            "statistic": self.statistic,
            "pvalue": self.pvalue,
            "reject": self.reject,
            "alpha": self.alpha,
            "seconds": self.seconds,
            "details": details,
        }


_KERNEL_TESTS: dict[str, Callable[..., TestOutcome]] = {
    "ksd": ksd_test,
    "lksd": lksd_test,
    "fssd": fssd_test,
    "ksdagg": ksdagg_test,
    "ksdagg-inc": functools.partial(ksdagg_test, incomplete=200),  # R = 200 sub-diagonals, as the paper
    "ksd-seq": sequential_witness_test,
}


def kernel_options(method: str) -> tuple[str, ...]:
    """The options a kernel method takes (its test function's keywords but the generator).

    Example:
        >>> kernel_options("lksd")
        ('kernel', 'bandwidth', 'train_fraction')
    """
    params = inspect.signature(_KERNEL_TESTS[method]).parameters
    return tuple(name for name, p in params.items() if p.kind is p.KEYWORD_ONLY and name != "generator")


def _check_call(method: str, alpha: Any, settings: Any, protocol: Any, options: Mapping[str, Any],
                return_critic: Any = False) -> None:
    one_of(method, "method", METHODS)
    probability(alpha, "alpha")
    flag(return_critic, "return_critic")
    if return_critic and method != "lsd":
        raise TypeError(f"return_critic applies to method='lsd' only, not {method!r} (a kernel test fits no critic)")
    if protocol is not None:
        if method != "lsd":
            raise TypeError(f"protocol applies to method='lsd' only, not {method!r}")
        one_of(protocol, "protocol", PROTOCOLS)
    if method == "lsd":
        valid = field_names()
        if settings is not None and not isinstance(settings, CriticSettings):
            raise wrong_type("settings", "a CriticSettings", settings)
    else:
        valid = kernel_options(method)
        if settings is not None:
            raise TypeError(f"settings (a CriticSettings) applies to method='lsd' only, not {method!r}")
    unknown = set(options) - set(valid)
    if unknown:
        raise TypeError(f"unknown option(s) {sorted(unknown)} for method {method!r}; valid: {sorted(valid)}")


def _result(method: str, outcome: TestOutcome, alpha: float, seconds: float) -> GofResult:
    p = float(outcome.pvalue)
    if not (0.0 <= p <= 1.0) or math.isnan(p):
        raise RuntimeError(f"{method} test produced an invalid p-value {p!r}")
    return GofResult(
        method=method,
        statistic=float(outcome.statistic),
        pvalue=p,
        reject=p < alpha,
        alpha=float(alpha),
        seconds=seconds,
        details=MappingProxyType(dict(outcome.details)),
        critic=outcome.critic,
    )


def gof_test(
    model: Any,
    x: Any,
    method: str = "lsd",
    alpha: float = 0.05,
    seed: int = 0,
    settings: CriticSettings | None = None,
    *,
    protocol: str | None = None,
    generator: torch.Generator | None = None,
    return_critic: bool = False,
    progress: bool = False,
    device: torch.device | str | None = None,
    **options: Any,
) -> GofResult:
    """Test H0: x was drawn from ``model`` (any object :func:`steinkit.as_score` accepts).

    Arguments:
        model: the unnormalized model; only its score is used.
        x: samples, (n, d).
        method: ``"lsd"`` (learned Stein discrepancy; see ``protocol``), ``"ksd"`` (quadratic
            kernel Stein discrepancy with wild bootstrap), ``"lksd"`` (linear-time KSD),
            ``"fssd"`` (finite-set Stein discrepancy with optimized test locations),
            ``"ksdagg"`` (KSD aggregated over 21 bandwidths, Schrab et al. 2022) or
            ``"ksdagg-inc"`` (its incomplete-U-statistic version, R = 200 sub-diagonals) or
            ``"ksd-seq"`` (the sequential witness test: each of 8 folds tested by the kernel Stein
            witness of the folds before it, over 6 bandwidths; no bootstrap;
            :mod:`steinkit.gof.sequential`).
        alpha: test level in (0, 1).
        seed: seed for every random choice (splits, initialisation, probes, bootstrap).
        generator: a ``torch.Generator`` to draw that seed from instead (the call advances it).
        protocol: LSD only (:mod:`steinkit.gof.lsd`): ``"combined"`` (default: the larger,
            level-corrected, of the ``"sequential"`` and ``"features"`` statistics),
            ``"sequential"`` (4 folds, each scored by a 2×64 critic trained on the folds before
            it, 300 steps in all), ``"features"`` (8 folds, each scored by the closed-form last
            layer of the folds before it over one layer of random features; no training),
            ``"aggregated"`` (trained on half the data, tested on the other half at six
            stopping points with a level-corrected maximum) or ``"paper"`` (Algorithm 2: train
            80%, select on 10%, test on 10%).
        settings: LSD only: a :class:`~steinkit.settings.CriticSettings`; default
            :data:`~steinkit.settings.LEARNED_TEST`, or :data:`~steinkit.settings.TEST` with
            ``protocol="paper"`` (split (.8, .1, .1), 2×300 Swish, dropout .5, weight decay
            5e-4, λ = .5, 1000 steps, power objective and selection).
        return_critic: LSD with ``protocol="aggregated"`` or ``"paper"`` only: keep the selected
            critic on the result (``critic``, for :func:`steinkit.witness`; "aggregated": the
            critic at the stopping point with the largest statistic).
        progress: LSD only: show a progress bar.
        device: where to test, e.g. ``"cuda"`` (default: where ``x`` lives, else the CPU). The
            data move there, a model that is an ``nn.Module`` is copied there (yours stays where
            it is), and critics, generators and bootstrap draws are made there. On the CPU the
            answer is the same whichever way the device is given.
        **options: LSD: :class:`~steinkit.settings.CriticSettings` fields to change
            (``n_iters=200``, ...). Every kernel test: kernel (a Stein kernel of
            :mod:`steinkit.kernels`, or a name such as "imq"; by default the Gaussian kernel with
            the median heuristic for KSD, LKSD and FSSD, and IMQ over a collection of bandwidths
            for KSDAgg(-Inc) and KSD-Seq); the quadratic ones and KSDAgg-Inc also max_seconds (600)
            and max_memory_gb ("auto": half of the free memory): above these predicted costs the
            test refuses in one line before it starts (None: no limit). KSD: bandwidth (the
            kernel's; a float, "median" or "learn"), n_bootstrap (1000), train_fraction. LKSD:
            bandwidth, train_fraction. FSSD: n_locations (5), train_fraction (0.2), opt_steps,
            learning_rate, reg, n_simulate (3000), locations, bandwidth. KSDAgg(-Inc): bandwidths,
            exponents ((-20, 0)), n_bootstrap (2000), n_correction (2000), incomplete (None; 200 for
            ksdagg-inc). KSD-Seq: folds (8), exponents ((-5, 0)), n_draws (20000). Unknown names
            raise a TypeError.

    Returns:
        A :class:`GofResult`.

    Example:
        >>> import torch, steinkit as sk
        >>> x = torch.randn(300, 2, generator=torch.Generator().manual_seed(0)) + 1.0
        >>> model = sk.models.Gaussian(torch.zeros(2), torch.eye(2))
        >>> sk.gof_test(model, x, "lsd", settings=sk.TEST.replace(n_iters=100, hidden=16)).reject
        True
    """
    seed = seed_from(seed, generator)
    return gof_tests(
        [model], [x], method=method, alpha=alpha, seeds=[seed], settings=settings, protocol=protocol,
        return_critic=return_critic, progress=progress, device=device,
        **options,
    )[0]


def gof_tests(
    models: Sequence[Any],
    xs: Sequence[Any],
    method: str = "lsd",
    alpha: float = 0.05,
    seeds: Sequence[int] | None = None,
    settings: CriticSettings | None = None,
    *,
    protocol: str | None = None,
    return_critic: bool = False,
    progress: bool = False,
    device: torch.device | str | None = None,
    **options: Any,
) -> list[GofResult]:
    """Run many independent tests; LSD tests are trained together as one critic ensemble.

    ``models[k]`` is tested on ``xs[k]`` with ``seeds[k]`` (default 0, 1, ...); each result
    equals ``gof_test(models[k], xs[k], method, alpha, seeds[k], ...)``. The ``seconds`` of each
    batched LSD result is the batch's wall time divided by the number of tests. The other
    arguments are those of :func:`gof_test` (``device`` defaults to where ``xs[0]`` lives).

    Example:
        >>> import torch, steinkit as sk
        >>> g = torch.Generator().manual_seed(0)
        >>> xs = [torch.randn(100, 2, generator=g) for _ in range(3)]
        >>> model = sk.models.Gaussian(torch.zeros(2), torch.eye(2))
        >>> res = sk.gof_tests([model] * 3, xs, method="lksd")
        >>> len(res)
        3
    """
    if len(models) != len(xs):
        raise ValueError(f"models and xs must have the same length, got {len(models)} and {len(xs)}")
    seeds = list(range(len(models))) if seeds is None else [seed_value(s) for s in seeds]
    if len(seeds) != len(models):
        raise ValueError(f"seeds must give one seed per test, got {len(seeds)} for {len(models)} tests")
    _check_call(method, alpha, settings, protocol, options, return_critic)
    device = as_device(device, xs[0] if len(xs) else None)
    data = [as_data(x, "x").to(device) for x in xs]
    scores = as_scores(models, device)
    for sc, x in zip(scores, data):
        sc.check_dim(x)
    if method == "lsd":
        start = time.perf_counter()
        outcomes = lsd_tests(list(zip(scores, data, seeds)), settings, protocol=protocol or DEFAULT_PROTOCOL,
                             progress=progress, return_critic=return_critic, **options)
        seconds = (time.perf_counter() - start) / len(outcomes)
        return [_result(method, o, alpha, seconds) for o in outcomes]
    results = []
    for sc, x, seed in zip(scores, data, seeds):
        start = time.perf_counter()
        with torch.no_grad():
            s = sc(x)
        generator = torch.Generator(device=device).manual_seed(seed)
        outcome = _KERNEL_TESTS[method](x, s, generator=generator, **options)
        results.append(_result(method, outcome, alpha, time.perf_counter() - start))
    return results

"""``gof_test``: one entry point for every registered goodness-of-fit method.

The methods (the LSD test and the kernel Stein baselines, and any registered later) live in
the registry, :mod:`steinkit.gof.registry`: :data:`METHODS` lists their names,
:func:`~steinkit.gof.registry.get_method` gives each one's options and description, and
``steinkit test --help`` prints them.

Example:
    >>> import torch, steinkit as sk
    >>> x = torch.randn(300, 2, generator=torch.Generator().manual_seed(0))
    >>> res = sk.gof_test(sk.models.Gaussian(torch.zeros(2), torch.eye(2)), x, method="ksd", seed=0)
    >>> res.reject
    False
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, ClassVar, Mapping, Sequence

import torch

from ..results import TestResult
from ..scores import as_scores, score_rows
from ..settings import CriticSettings
from ..validation import as_data, as_device, flag, probability, seed_from, seed_value
from .methods import BUILTIN  # noqa: F401  (importing it registers the built-in methods)
from .outcome import TestOutcome
from .registry import DEFAULT_METHOD, METHODS, GofMethod, get_method, registered

__all__ = ["GofResult", "gof_test", "gof_tests", "METHODS", "DEFAULT_METHOD"]


@dataclass(frozen=True)
class GofResult(TestResult):
    """Outcome of a goodness-of-fit test of H0: the data came from the model; unpacks as
    ``(statistic, pvalue)``.

    Attributes:
        method: the registered method's name (one of :data:`METHODS`).
        statistic: the test statistic (``statistic_meaning`` says what it is).
        pvalue: its p-value in [0, 1].
        reject: whether H0 is rejected at level ``alpha`` (``pvalue < alpha``).
        alpha: the level.
        seconds: wall time of the test.
        details: method-specific values (bandwidths, splits, training history, ...).
        critic: LSD with ``return_critic=True``: the selected critic (for :func:`steinkit.witness`).
        statistic_meaning: what the statistic is and which way is evidence against H0 (the
            method's ``statistic`` in the registry).

    Example:
        >>> import torch, steinkit as sk
        >>> x = torch.randn(100, 2, generator=torch.Generator().manual_seed(0))
        >>> stat, p = sk.gof_test(sk.models.Gaussian(torch.zeros(2), torch.eye(2)), x, "lksd")
        >>> 0.0 <= p <= 1.0
        True
    """

    method: str
    statistic: float
    pvalue: float
    reject: bool
    alpha: float
    seconds: float
    details: Mapping[str, Any] = field(repr=False, compare=False)
    critic: Any = field(default=None, repr=False, compare=False)
    statistic_meaning: str = field(default="", repr=False, compare=False)  # type: ignore[misc]

    _UNSTORED: ClassVar[tuple[str, ...]] = ("critic", "statistic_meaning")

    def _title(self) -> str:
        return f"{self.method.upper()} test"

    def _tail(self) -> str:
        return f" ({self.seconds:.2f} s)"


_CALL_DEFAULTS: dict[str, Any] = {"settings": None, "protocol": None, "return_critic": False, "progress": False}
"""gof_test's own keywords that are some methods' options, with the values that mean "not given"."""


def _given_options(method: GofMethod, options: Mapping[str, Any], **call: Any) -> dict[str, Any]:
    """The options to pass to ``method``: ``options`` plus those of ``call`` (gof_test's own
    keywords) that differ from their defaults; checked against the method's options."""
    flag(call["return_critic"], "return_critic")
    given = dict(options)
    for name, value in call.items():
        if value is _CALL_DEFAULTS[name]:
            continue
        if name in method.option_names():
            given[name] = value
        elif name != "progress":  # a method without a progress bar ignores it
            owners = [m.name for m in registered().values() if name in m.option_names()]
            where = "method=" + "/".join(repr(m) for m in owners) + " only" if owners else "no registered method"
            raise TypeError(f"{name} applies to {where}, not {method.name!r}")
    method.check_options(given)
    return given


def _result(method: GofMethod, outcome: TestOutcome, alpha: float, seconds: float) -> GofResult:
    p = float(outcome.pvalue)
    if not (0.0 <= p <= 1.0) or math.isnan(p):
        raise RuntimeError(f"{method.name} test produced an invalid p-value {p!r}")
    return GofResult(
        method=method.name,
        statistic=float(outcome.statistic),
        pvalue=p,
        reject=p < alpha,
        alpha=float(alpha),
        seconds=seconds,
        details=MappingProxyType(dict(outcome.details)),
        critic=outcome.critic,
        statistic_meaning=method.statistic,
    )


def gof_test(
    model: Any,
    x: Any,
    method: str | None = None,
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
        method: a registered method, one of :data:`METHODS` (:mod:`steinkit.gof.registry`;
            ``steinkit test --help`` lists each with its options); None: the registry's
            :data:`~steinkit.gof.registry.DEFAULT_METHOD`, or ``"lsd"`` when ``protocol`` or
            ``return_critic`` is given. Use the default; if you expect curved dependence
            and nothing else, ``protocol="sequential"`` is a little stronger; docs: *Choosing a test*.
        alpha: test level in (0, 1).
        seed: seed for every random choice (splits, initialisation, probes, bootstrap).
        generator: a ``torch.Generator`` to draw that seed from instead (the call advances it).
        protocol: LSD only: how the critic is learned and tested (:mod:`steinkit.gof.lsd`:
            ``"combined"`` by default, ``"sequential"``, ``"features"``, ``"aggregated"`` or
            ``"paper"``, Algorithm 2).
        settings: LSD only: a :class:`~steinkit.settings.CriticSettings` to start from; default
            :data:`~steinkit.settings.LEARNED_TEST`, or :data:`~steinkit.settings.TEST` with
            ``protocol="paper"``.
        return_critic: LSD with ``protocol="aggregated"`` or ``"paper"`` only: keep the selected
            critic on the result (``critic``, for :func:`steinkit.witness`).
        progress: show a progress bar (methods that have one).
        device: where to test, e.g. ``"cuda"`` (default: where ``x`` lives, else the CPU): the
            data move there, an ``nn.Module`` model is copied there (yours stays), and critics
            and random draws are made there. On the CPU every device spelling gives one answer.
        **options: the method's options, the fields of ``get_method(method).options``: for LSD
            the :class:`~steinkit.settings.CriticSettings` fields to change (``n_iters=200``, ...);
            for a kernel test its test function's keywords (``kernel``, ``bandwidth``,
            ``n_bootstrap``, ``max_seconds``, ...). Unknown names raise a TypeError listing them.

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
    method: str | None = None,
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
    """Run many independent tests; a batched method (LSD) runs them together, as one critic ensemble.

    ``models[k]`` is tested on ``xs[k]`` with ``seeds[k]`` (default 0, 1, ...); each result
    equals ``gof_test(models[k], xs[k], method, alpha, seeds[k], ...)``. The ``seconds`` of each
    result of a batched method is the batch's wall time divided by the number of tests. The other
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
    if method is None and (protocol is not None or return_critic is True):
        method = "lsd"  # the options of the learned test name it
    spec = get_method(method)
    probability(alpha, "alpha")
    given = _given_options(spec, options, settings=settings, protocol=protocol, return_critic=return_critic,
                           progress=progress)
    device = as_device(device, xs[0] if len(xs) else None)
    data = [as_data(x, "x").to(device) for x in xs]
    scores = as_scores(models, device)
    for sc, x in zip(scores, data):
        sc.check_dim(x)
    if spec.batched:
        start = time.perf_counter()
        outcomes = spec.run(list(zip(scores, data, seeds)), **given)
        if len(outcomes) != len(data):
            raise RuntimeError(f"method {spec.name!r} returned {len(outcomes)} outcomes for {len(data)} problems")
        seconds = (time.perf_counter() - start) / max(len(outcomes), 1)
        return [_result(spec, o, alpha, seconds) for o in outcomes]
    results = []
    for sc, x, seed in zip(scores, data, seeds):
        start = time.perf_counter()
        s = score_rows(sc, x)
        generator = torch.Generator(device=device).manual_seed(seed)
        outcome = spec.run(x, s, generator=generator, **given)
        results.append(_result(spec, outcome, alpha, time.perf_counter() - start))
    return results

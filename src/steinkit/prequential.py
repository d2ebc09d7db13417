"""Prequential fits for the learned tests: fold k + 1 is scored by a critic fitted on folds 1..k.

:func:`fit_sequential_critics` trains one critic, warm started fold by fold;
:func:`sequential_feature_terms` fits only the last layer, in closed form, over fixed random
features (:mod:`steinkit.last_layer`). Either way the terms of fold k + 1 depend on folds 1..k only,
so under H0 they are mean-zero given the past (:mod:`steinkit.gof.lsd`).

Example:
    >>> import torch
    >>> from steinkit.scores import as_score
    >>> from steinkit.settings import LEARNED_TEST
    >>> x = torch.randn(120, 2, generator=torch.Generator().manual_seed(0))
    >>> fit_sequential_critics([(as_score(lambda z: -z), x, 0)], LEARNED_TEST.replace(n_iters=30), 4)[0].shape
    torch.Size([3, 30])
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from .fit import chunked_terms, finite_stats, fit_critic, numerical_failure
from .heldout import Problem, check_problems, critic_ensemble
from .last_layer import witness_sums, with_last_layer
from .scores import score_rows
from .settings import CriticSettings, sized_for
from .validation import as_device

__all__ = ["fit_sequential_critics", "sequential_feature_terms"]


_MIN_FOLD = 5  # points per fold of a sequential fit, for a studentised mean to mean anything


def fit_sequential_critics(
    problems: Sequence[Problem],
    settings: CriticSettings,
    folds: int,
    *,
    progress: bool = False,
    device: torch.device | str | None = None,
) -> list[Tensor]:
    """Prequential fits: fold k+1 of each problem is scored by its critic trained on folds 1..k.

    Each problem's data are shuffled with ``seed`` and cut into ``folds`` equal folds (the
    remainder is left out). One critic per problem (one ensemble, initialised and driven as in
    :func:`fit_heldout_critics`) trains ``n_iters // (folds − 1)`` steps on folds 1..k, warm
    started from stage k − 1, without selection; its exact-trace Stein terms on fold k + 1 are
    kept, so the terms of fold k + 1 depend on folds 1..k only.

    Returns:
        One (folds − 1, fold size) tensor of Stein terms per problem.

    Example:
        >>> from steinkit.scores import as_score
        >>> from steinkit.settings import LEARNED_TEST
        >>> x = torch.randn(120, 2, generator=torch.Generator().manual_seed(0))
        >>> out = fit_sequential_critics([(as_score(lambda z: -z), x, 0)], LEARNED_TEST.replace(n_iters=30), 4)
        >>> out[0].shape
        torch.Size([3, 30])
    """
    n = _check_folds(problems, folds)
    device = as_device(device, problems[0][1])
    x_all, s_all = _shuffled(problems, device)
    settings = sized_for(settings, n - n // folds, problems[0][1].shape[1])
    stage = settings.replace(n_iters=max(1, settings.n_iters // (folds - 1)), selection="last")
    stage = stage.replace(val_every=stage.n_iters)
    critic, generators = critic_ensemble([s for _, _, s in problems], x_all.shape[-1], settings, x_all, device)
    size, kept = n // folds, []
    for k in range(1, folds):
        x_past, s_past = x_all[:, : k * size], s_all[:, : k * size]
        fit_critic(critic, x_past, s_past, x_past[:, :2], s_past[:, :2], stage, generator=generators,
                   progress=progress, desc=f"fold {k + 1} of {folds}")
        terms, _ = chunked_terms(critic, x_all[:, k * size:(k + 1) * size], s_all[:, k * size:(k + 1) * size])
        if not bool(finite_stats(terms.double())):
            raise numerical_failure(f"on fold {k + 1} of {folds}", settings, x_all, s_all)
        kept.append(terms)
    return list(torch.stack(kept, 1).unbind(0))


def _check_folds(problems: Sequence[Problem], folds: int) -> int:
    """Check the problems and the number of folds; return n."""
    check_problems(problems)
    n = problems[0][1].shape[0]
    if isinstance(folds, bool) or not isinstance(folds, int) or folds < 2:
        raise ValueError(f"folds must be an int >= 2, got {folds!r}")
    if n < _MIN_FOLD * folds:
        raise ValueError(f"x has too few samples for {folds} folds of at least {_MIN_FOLD}: n = {n}, "
                         f"need at least {_MIN_FOLD * folds}")
    return n


def _shuffled(problems: Sequence[Problem], device: torch.device) -> tuple[Tensor, Tensor]:
    """(K, n, d) data, each problem's shuffled by its seed, and the model scores there: written
    into one buffer each (no stacked second copy), the scores :data:`~steinkit.scores.SCORE_ROWS`
    rows at a time."""
    x_all: Tensor | None = None
    s_all: Tensor | None = None
    for k, (score, x, seed) in enumerate(problems):
        n, d = x.shape
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).to(device)
        x = x.to(device)
        if x_all is None:
            x_all = torch.empty((len(problems), n, d), dtype=x.dtype, device=device)
        torch.index_select(x, 0, order, out=x_all[k])
        s = score_rows(score, x_all[k])
        if s_all is None:
            s_all = torch.empty((len(problems), n, d), dtype=s.dtype, device=device)
        s_all[k] = s
    assert x_all is not None and s_all is not None
    return x_all, s_all


def sequential_feature_terms(
    problems: Sequence[Problem],
    settings: CriticSettings,
    folds: int,
    *,
    device: torch.device | str | None = None,
) -> list[Tensor]:
    """Prequential closed-form witnesses: fold k+1 of each problem is scored by the critic whose
    last layer is fitted in closed form on folds 1..k (:func:`steinkit.last_layer.feature_witness`)
    over the features of the critic :func:`fit_sequential_critics` would start from (its
    random initialisation, ``settings``' width and depth). No gradient step is taken.

    Returns:
        One (folds − 1, fold size) tensor of exact-trace Stein terms per problem, as
        :func:`fit_sequential_critics` (the same shuffle and folds).

    Example:
        >>> from steinkit.scores import as_score
        >>> from steinkit.settings import LEARNED_TEST
        >>> x = torch.randn(120, 2, generator=torch.Generator().manual_seed(0))
        >>> sequential_feature_terms([(as_score(lambda z: -z), x, 0)], LEARNED_TEST, 4)[0].shape
        torch.Size([3, 30])
    """
    n = _check_folds(problems, folds)
    m = n // folds
    settings = sized_for(settings, n - m, problems[0][1].shape[1])
    device = as_device(device, problems[0][1])
    x_all, s_all = _shuffled(problems, device)
    features = critic_ensemble([s for _, _, s in problems], x_all.shape[-1], settings, x_all, device)[0]
    weight, bias, kept = 0.0, 0.0, []
    for k in range(1, folds):  # running sums: each point's Jacobian is taken once
        more = witness_sums(features, x_all[:, (k - 1) * m:k * m], s_all[:, (k - 1) * m:k * m])
        weight, bias = weight + more[0], bias + more[1]
        witness = with_last_layer(features, weight / (k * m), bias / (k * m))
        terms, _ = chunked_terms(witness, x_all[:, k * m:(k + 1) * m], s_all[:, k * m:(k + 1) * m])
        if not bool(finite_stats(terms.double())):
            raise FloatingPointError(
                f"the closed-form witness's Stein statistics are not finite on fold {k + 1}: the data or the model's "
                f"scores are not finite or too large: the largest |x| is {float(x_all.abs().max()):.3g} and the "
                f"largest |score| is {float(s_all.abs().max()):.3g}; check the model, or rescale (standardize) the "
                "data")
        kept.append(terms)
    return list(torch.stack(kept, 1).unbind(0))

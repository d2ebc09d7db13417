"""Several witness families on the same folds, and one level-corrected maximum over them.

Each problem's data are shuffled by its seed and cut into folds; every member of the family
scores fold k + 1 with a witness built from folds 1..k only:

* ``"trained"``: the critic of :func:`~steinkit.prequential.fit_sequential_critics` (4 folds, an
  MLP trained on the folds before each one, warm started);
* ``"features"``: the closed-form last layer over one layer of random features
  (:func:`~steinkit.prequential.sequential_feature_terms`, 8 folds);
* ``"linear"``: the closed-form witness of the linear features ψ(x) = [(x − μ)/σ, 1] (μ, σ from
  fold 1), f = W ψ with W = mean_past[s ψᵀ + J_ψᵀ] (8 folds): the Stein witness of mean and
  covariance;
* ``"coordinate"``: the closed-form witness of the per-coordinate class of
  :class:`~steinkit.coordinate_class.CoordinateClass` (fitted to fold 1: per-coordinate rescalings,
  steps, an even term and radial shrinkage), θ_j = (C_j + ridge·diag C_j)⁻¹b_j from the past
  folds' mean Stein coefficients b_j and second moments C_j (8 folds): heavy or light tails, skew;
* ``"pooled"``: the same class with one θ for every coordinate, (Σ_j C_j + ridge·diag)⁻¹Σ_j b_j:
  8 coefficients, so it finds a misfit that all coordinates share (a scale error) from fewer points;
* ``"kernel"``: the kernel Stein witness mean_past u(x_j, ·) of :mod:`steinkit.gof.sequential`
  over IMQ bandwidths 2^ℓ·λ_med, ℓ = −5..0 (λ_med from fold 1), one statistic per bandwidth (8 folds
  of the first :data:`KERNEL_POINTS` shuffled points, each witness of at most :data:`KERNEL_BASIS`
  earlier points, so its cost stops growing with n).

A member's statistic is z = Σ_k w_k t_k/‖w‖ over its folds (t_k the studentised mean of fold k's
terms, w_k = √(k − 1)): given the past, each fold's terms have mean zero under H0, so z tends to
N(0, 1), and the members' z tend jointly to N(0, R). R is estimated point by point: each z is a
sum over the shuffled points of shares w_k(h_i − h̄_k)/(√m σ_k); the inner product of two members'
share vectors estimates their correlation (the eighths nest in the quarters, so trained and 8-fold
members share points). Each member has a share of the level (:data:`DEFAULT_WEIGHTS`, split
equally among its statistics): the test rejects for small min_i Φ̄(z_i)/ν_i, with its p-value
under R̂ (:func:`~steinkit.gof.aggregate.max_normal_pvalue`); its statistic is that member's z.

Example:
    >>> import torch
    >>> from steinkit.scores import as_score
    >>> x = torch.randn(400, 3, generator=torch.Generator().manual_seed(0)) * 1.3
    >>> out = witness_tests([(as_score(lambda z: -z), x, 0)], n_iters=60, hidden=16)[0]
    >>> out.pvalue < 0.05, len(out.details["statistics"])     # trained, features, linear, coordinate, pooled, 6 kernels
    (True, 11)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping, Sequence

import torch
from torch import Tensor

from ..coordinate_class import CoordinateClass
from ..coordinate_features import N_FEATURES
from ..feature_bounds import COORDINATE_RIDGE
from ..heldout import Problem
from ..kernels import IMQ, Bandwidths, as_kernel
from ..prequential import fit_sequential_critics, sequential_feature_terms
from ..settings import LEARNED_TEST, CriticSettings, settings_from
from ..validation import flag, one_of, positive_float, positive_int, wrong_type
from .aggregate import max_normal_pvalue
from .options import SettingsDefault, with_settings_fields
from .lsd import FEATURE_FOLDS, SEQUENTIAL_FOLDS, WITNESS_LAYERS, _contributions, _fold_statistics, _weighted
from .outcome import TestOutcome
from .sequential import _terms as kernel_witness_terms

__all__ = ["MEMBERS", "DEFAULT_MEMBERS", "DEFAULT_WEIGHTS", "DEFAULT_KERNEL", "KERNEL_BASIS", "KERNEL_POINTS",
           "WitnessOptions", "member_terms", "statistic_weights", "witness_tests"]

MEMBERS = ("trained", "features", "linear", "coordinate", "pooled", "kernel")
DEFAULT_MEMBERS = MEMBERS
DEFAULT_WEIGHTS: Mapping[str, float] = MappingProxyType(
    {"trained": 6.0, "features": 1.0, "linear": 1.0, "coordinate": 1.0, "pooled": 1.0, "kernel": 2.0})
"""Each member's share of the level, relative to the others chosen (a member's statistics split
its share equally): half to the trained critic, the most flexible class, a sixth to the kernel
witness's bandwidths, a twelfth to each closed-form class."""
DEFAULT_KERNEL = IMQ(bandwidth=Bandwidths.powers_of_two(-5, 0))
"""The kernel member's kernel: IMQ at 2^ℓ·λ_med, ℓ = −5..0, as KSD-Seq."""
KERNEL_BASIS = 1024
"""The kernel member's witness uses at most this many of the earlier folds' points."""
KERNEL_POINTS = 65536
"""The kernel member tests the first this many shuffled points (its folds are theirs)."""


@dataclass(frozen=True)
class _WitnessCall:
    """The witness test's options other than the critic settings (checked when made)."""

    members: tuple[str, ...] = field(default=DEFAULT_MEMBERS, metadata={"help": f"the witness families, of {MEMBERS}"})
    weights: Mapping[str, float] | None = field(default=None, metadata={
        "help": "each member's share of the level, relative to the others chosen (default DEFAULT_WEIGHTS)"})
    kernel: Any = field(default=DEFAULT_KERNEL, metadata={
        "help": "the kernel member's Stein kernel (steinkit.kernels; default IMQ at 2^-5..2^0 times the median "
                "distance)"})
    kernel_basis: int = field(default=KERNEL_BASIS, metadata={
        "help": "the kernel witness uses at most this many of the earlier folds' points (its cost: n times this)"})
    kernel_points: int = field(default=KERNEL_POINTS, metadata={
        "help": "the kernel member tests at most this many of the (shuffled) points, so its cost stops growing"})
    settings: CriticSettings | None = field(
        default=None, metadata={"help": "the trained and features members' CriticSettings; default LEARNED_TEST"})
    progress: bool = field(default=False, metadata={"help": "show a progress bar while the trained member fits"})

    def __post_init__(self) -> None:
        if isinstance(self.members, str) or not all(isinstance(m, str) for m in self.members):
            raise wrong_type("members", f"a sequence of names from {MEMBERS}", self.members)
        for m in self.members:
            one_of(m, "members", MEMBERS)
        _member_weights(self.weights, self.members)
        flag(self.progress, "progress")
        positive_int(self.kernel_basis, "kernel_basis")
        positive_int(self.kernel_points, "kernel_points")
        if self.settings is not None and not isinstance(self.settings, CriticSettings):
            raise wrong_type("settings", "a CriticSettings", self.settings)


WitnessOptions = with_settings_fields("WitnessOptions", _WitnessCall, CriticSettings,
                                      SettingsDefault("LEARNED_TEST's"), __name__)
WitnessOptions.__doc__ = """The options of the witness-family test (:func:`witness_tests`): members, weights, kernel,
kernel_basis, kernel_points, settings, progress, and every :class:`~steinkit.settings.CriticSettings` field (default: LEARNED_TEST's)."""


def _member_weights(weights: Mapping[str, float] | None, members: Sequence[str]) -> dict[str, float]:
    """The chosen members' weights (``weights`` or :data:`DEFAULT_WEIGHTS`), checked: each a positive number."""
    chosen = DEFAULT_WEIGHTS if weights is None else weights
    if not isinstance(chosen, Mapping):
        raise wrong_type("weights", f"a mapping from member names of {MEMBERS} to positive numbers", weights)
    for name in chosen:
        one_of(name, "weights", MEMBERS)
    missing = [m for m in members if m not in chosen]
    if missing:
        raise ValueError(f"weights must give every chosen member a weight; missing {missing}")
    return {m: positive_float(chosen[m], f"weights[{m!r}]") for m in members}


def statistic_weights(names: Sequence[str], weights: Mapping[str, float]) -> Tensor:
    """Each statistic's weight: its member's weight split equally among that member's statistics
    (a statistic "kernel 0.25" belongs to the member "kernel").

    Example:
        >>> statistic_weights(["trained", "kernel 0.5", "kernel 1"], {"trained": 2.0, "kernel": 1.0}).tolist()
        [2.0, 0.5, 0.5]
    """
    family = [name.split(" ")[0] for name in names]
    return torch.tensor([weights[f] / family.count(f) for f in family], dtype=torch.float64)


def _shuffled(problem: Problem) -> tuple[Tensor, Tensor]:
    """The problem's data shuffled by its seed (the order every member's folds follow) and the
    scores there, in float64."""
    score, x, seed = problem
    order = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(seed)).to(x.device)
    xs = x[order]
    with torch.no_grad():
        return xs.double(), score(xs).double()


def _linear_terms(x: Tensor, s: Tensor, folds: int) -> Tensor:
    """(folds − 1, m) terms of the linear witness of the folds before each fold."""
    m = x.shape[0] // folds
    mu, sigma = x[:m].mean(0), x[:m].std(0).clamp(min=1e-12)
    psi = torch.cat([(x - mu) / sigma, torch.ones(x.shape[0], 1, dtype=x.dtype, device=x.device)], 1)
    jac = torch.cat([torch.diag(1 / sigma), torch.zeros(1, x.shape[1], dtype=x.dtype, device=x.device)], 0).T
    sums, out = torch.zeros_like(jac), []
    for k in range(1, folds):
        past = slice((k - 1) * m, k * m)
        sums = sums + s[past].T @ psi[past] + m * jac
        W = sums / (k * m)
        fold = slice(k * m, (k + 1) * m)
        out.append((s[fold] * (psi[fold] @ W.T)).sum(1) + (W * jac).sum())
    return torch.stack(out)


def _coordinate_terms(x: Tensor, s: Tensor, folds: int, ridge: float = COORDINATE_RIDGE,
                      which: Sequence[str] = ("coordinate",)) -> dict[str, Tensor]:
    """(folds − 1, m) terms of the per-coordinate class's witnesses of the folds before each fold
    (the class fitted to fold 1), read about 2²² feature values at a time, for each of ``which``:
    ``"coordinate"``, θ_j = (C_j + ridge·diag C_j)⁻¹b_j from the past mean τ_j and ψ_jψ_jᵀ, and
    ``"pooled"``, one θ for all coordinates from their sums (:meth:`CoordinateClass.pooled_witness`)."""
    m = x.shape[0] // folds
    cls = CoordinateClass.fit(x[:m])
    solvers = {"coordinate": cls.witness, "pooled": lambda b, c, r: cls.pooled_witness(b, c, r).expand_as(b)}
    step = max(1, 2**22 // (x.shape[1] * (N_FEATURES + 1)))
    tau_sum, c_sum, out = 0.0, 0.0, {name: [] for name in which}
    for k in range(1, folds):
        for lo in range((k - 1) * m, k * m, step):
            tau, c = cls.sums(x[lo:min(lo + step, k * m)], s[lo:min(lo + step, k * m)])
            tau_sum, c_sum = tau_sum + tau, c_sum + c
        thetas = torch.stack([solvers[name](tau_sum / (k * m), c_sum / (k * m), ridge) for name in which])
        fold = [torch.einsum("ndk,wdk->wn", cls.terms(x[lo:min(lo + step, (k + 1) * m)],
                                                      s[lo:min(lo + step, (k + 1) * m)])[0], thetas)
                for lo in range(k * m, (k + 1) * m, step)]
        for name, terms in zip(which, torch.cat(fold, 1)):
            out[name].append(terms)
    return {name: torch.stack(rows) for name, rows in out.items()}


def _kernel_terms(x: Tensor, s: Tensor, folds: int, kernel: Any, basis: int) -> dict[str, Tensor]:
    """Per bandwidth, (folds − 1, m) terms of the kernel witness of the folds before each fold
    (of their first ``basis`` points: the data are shuffled, so any fixed subset of the past is
    a valid witness, and the cost is linear in n)."""
    m = x.shape[0] // folds
    kernels = kernel.resolve(x[:m])
    rows = [kernel_witness_terms(kernels, x[:min(k * m, basis)], s[:min(k * m, basis)], x[k * m:(k + 1) * m],
                                 s[k * m:(k + 1) * m]).cpu()
            for k in range(1, folds)]
    terms = torch.stack(rows, 1)  # (bandwidths, folds − 1, m)
    return {f"kernel {float(k.bandwidth):.4g}": t for k, t in zip(kernels, terms)}


def _outcome(members: dict[str, Tensor], n: int, seed: int, weights: Mapping[str, float]) -> TestOutcome:
    names = list(members)
    fold_t = {name: _fold_statistics(terms) for name, terms in members.items()}
    z = torch.stack([_weighted(fold_t[name]) for name in names])
    shares = torch.stack([_contributions(members[name], n) for name in names])
    corr = shares @ shares.T
    nu = statistic_weights(names, weights)
    z_top, p = max_normal_pvalue(z, corr, weights=nu, generator=torch.Generator().manual_seed(seed + 3))
    strongest = names[int((torch.special.ndtr(-z) / nu).argmin())]
    details = {"protocol": "witnesses", "members": names, "statistics": dict(zip(names, z.tolist())),
               "strongest": strongest, "correlation": corr.tolist(), "weights": dict(zip(names, nu.tolist())),
               "folds": {name: terms.shape[0] + 1 for name, terms in members.items()}}
    return TestOutcome(statistic=z_top, pvalue=p, details=details)


def member_terms(problems: Sequence[Problem], cfg: CriticSettings, members: Sequence[str], kernel: Any,
                 kernel_basis: int, kernel_points: int, progress: bool = False) -> list[dict[str, Tensor]]:
    """Per problem, each chosen member's (folds − 1, m) Stein terms (the kernel's one entry per
    bandwidth), as :func:`witness_tests` combines them; arguments as there (``members`` checked names,
    ``cfg`` the critic settings, ``kernel`` a Stein kernel object).

    Example:
        >>> from steinkit.scores import as_score
        >>> x = torch.randn(400, 2, generator=torch.Generator().manual_seed(0))
        >>> out = member_terms([(as_score(lambda z: -z), x, 0)], LEARNED_TEST, ["linear"], DEFAULT_KERNEL, 1024, 65536)
        >>> out[0]["linear"].shape
        torch.Size([7, 50])
    """
    per_problem: list[dict[str, Tensor]] = [{} for _ in problems]
    if "trained" in members:
        for out, terms in zip(per_problem, fit_sequential_critics(problems, cfg, SEQUENTIAL_FOLDS, progress=progress)):
            out["trained"] = terms
    if "features" in members:
        feats = sequential_feature_terms(problems, cfg.replace(n_layers=WITNESS_LAYERS), FEATURE_FOLDS)
        for out, terms in zip(per_problem, feats):
            out["features"] = terms
    for out, problem in zip(per_problem, problems):
        if {"linear", "coordinate", "pooled", "kernel"} & set(members):
            x, s = _shuffled(problem)
            if "linear" in members:
                out["linear"] = _linear_terms(x, s, FEATURE_FOLDS)
            which = [m for m in ("coordinate", "pooled") if m in members]
            if which:
                out.update(_coordinate_terms(x, s, FEATURE_FOLDS, which=which))
            if "kernel" in members:
                cap = positive_int(kernel_points, "kernel_points")  # a prefix keeps the share vectors aligned
                out.update(_kernel_terms(x[:cap], s[:cap], FEATURE_FOLDS, kernel,
                                         positive_int(kernel_basis, "kernel_basis")))
        for name, terms in out.items():
            if not bool(torch.isfinite(terms).all()):
                raise FloatingPointError(f"the {name} witness's Stein terms are not finite: check the model's scores "
                                         "for inf/NaN, or rescale the data")
    return per_problem


def witness_tests(
    problems: Sequence[Problem],
    settings: CriticSettings | None = None,
    *,
    members: Sequence[str] = DEFAULT_MEMBERS,
    weights: Mapping[str, float] | None = None,
    kernel: Any = DEFAULT_KERNEL,
    kernel_basis: int = KERNEL_BASIS,
    kernel_points: int = KERNEL_POINTS,
    progress: bool = False,
    **overrides: Any,
) -> list[TestOutcome]:
    """One witness-family test per (score, data, seed) problem (see the module).

    Arguments:
        problems: triples of a checked score function, data (n, d) and a seed; one data shape.
        settings: the trained and features members' critic settings (default
            :data:`~steinkit.settings.LEARNED_TEST`; the features member takes its width with
            one hidden layer).
        members: which witness families to aggregate, a subset of :data:`MEMBERS`.
        weights: each member's share of the level, relative to the others chosen (default
            :data:`DEFAULT_WEIGHTS`); a member's statistics (the kernel's bandwidths) split its share.
        kernel: the kernel member's Stein kernel (a collection of bandwidths for several statistics).
        kernel_basis: the kernel member's witness of the earlier folds uses at most this many of
            their points (the first; the data are shuffled), so its cost grows as n·kernel_basis.
        kernel_points: the kernel member tests the first this many shuffled points only (its
            eight folds are theirs), so its cost is bounded whatever n; the other members use all.
        progress: show a progress bar while the trained member fits.
        **overrides: :class:`~steinkit.settings.CriticSettings` fields to change.

    Returns:
        One outcome per problem: the z of the member with the smallest weighted p-value, the
        level-corrected p-value, and details (each member's statistic and weight, the strongest
        member, their estimated correlation).
    """
    members = [one_of(m, "members", MEMBERS) for m in members]
    if not members:
        raise ValueError(f"members must name at least one of {MEMBERS}")
    nu = _member_weights(weights, members)
    cfg = settings_from(settings, LEARNED_TEST, overrides, extra=", or members, kernel, progress")
    kernel = as_kernel(kernel)
    n = problems[0][1].shape[0]
    per_problem = member_terms(problems, cfg, members, kernel, kernel_basis, kernel_points, progress)
    return [_outcome(out, n, seed, nu) for out, (_, _, seed) in zip(per_problem, problems)]

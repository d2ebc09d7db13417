"""Lower bounds of the LSD from fixed feature classes, estimated by U-statistics without a fit's noise.

For critics whose output j is linear in fixed features, f_j = θ_jᵀψ_j(x), the Stein terms are
linear in θ: T_q f = Σ_j θ_jᵀτ_j with τ_j = s_j ψ_j + ∂_jψ_j (s the model's score). The λ-penalised
best critic of the class is θ_j = C_j⁻¹b_j/(2λ), b_j = E_p[τ_j], C_j = E_p[ψ_jψ_jᵀ], and its LSD is

    L = Σ_j b_jᵀC_j⁻¹b_j/(2λ) ≤ E_p‖s_q − s_p‖²/(2λ),

with equality when s_q − s_p lies in the class. A critic fitted on n points plugs a noisy b̂ into θ,
and its value falls short of L by a factor that grows with the class's size over n. Here b enters
twice through independent held-out means instead: the rows are cut into 5 folds; fold k's C_j come
from the other folds (N rows), and the mean of Σ_j b̂_gjᵀM_j b̂_hj over pairs g ≠ h of
:data:`GROUPS` groups of fold k's rows, with M_j = Ĉ_j⁻¹(N − K − 1)/N for K features, is unbiased
for L when the features are Gaussian (the factor makes E[M_j] = C_j⁻¹: the mean of an inverse
Wishart matrix) and close to it otherwise. The folds' values are averaged; the standard error is
the jackknife's over each fold's groups. A class with K > N/2 − 1 gives no value (None).

Four classes (all from :func:`feature_bounds`, the first three from one pass over the rows):

- linear critics f(x) = Wx + c (ψ = [x, 1] shared by every output, K = d + 1): exact for every
  Gaussian model against Gaussian data (:func:`linear_lsd`);
- per-coordinate critics f_j = Σ_m α_jm u_m(z)_j + c_j on the coordinate features of
  :mod:`steinkit.coordinate_features` (K = 8 per output, :class:`~steinkit.coordinate_class.CoordinateClass`
  fitted to all rows; a ridge, :data:`COORDINATE_RIDGE`): scales, steps, skew and radial shrinkage, e.g. heavy
  tails, coordinate by coordinate (:func:`coordinate_lsd`);
- pooled critics, the same features with one α for every coordinate (8 coefficients in all, each
  estimated from n·d values, so no ridge and a jackknifed C⁻¹): a misfit that the coordinates
  share, found with far less noise in high dimension (:func:`pooled_lsd`);
- pairwise cubic critics on screened partners (:func:`interaction_lsd`): curved dependence.

:func:`reported` picks the one the default estimate reports.

Example:
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> x = torch.randn(5000, 10, generator=g, dtype=torch.float64)  # data N(0, I), model N(0, 2I)
    >>> value, se = linear_lsd(x, -x / 2, lam=0.5)                    # truth: d/4 = 2.5, f* = x/2 linear
    >>> abs(value - 2.5) < 3 * se
    True
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from .coordinate_class import CoordinateClass, varying
from .interaction_class import InteractionClass
from .validation import positive_float

__all__ = ["linear_lsd", "coordinate_lsd", "pooled_lsd", "interaction_lsd", "feature_bounds", "reported", "GROUPS",
           "FOLDS", "COORDINATE_RIDGE", "SCREEN", "SCREEN_ROWS", "GATED", "GATED_MARGIN"]

FOLDS = 5
GROUPS = 20
"""Groups each fold's rows are cut into (fewer when there are fewer than 2 rows a group)."""
COORDINATE_RIDGE = 0.1
"""The per-coordinate class's ridge, relative to each feature's mean square. The inverse of the
features' second moments turns the Stein terms' noise along directions of little spread into a
noisy bound; a ridge only lowers the class's value, so the bound stays a lower bound. The ridge
acts on each feature less its fit on [1, z_j]: on what it adds to a rescaling, so it does not
shrink the small, signal-carrying difference between z_j/(c + ‖z‖²/d) and z_j in high dimension
(a too-heavy-tailed model's misfit). Chosen on the estimate panel's tuning half (docs/estimate.md)."""

SCREEN = 0.2
"""The share of the rows on which the interaction class screens its partners (never scored by it)."""
SCREEN_ROWS = 2000
"""At most this many rows screen the partners (the screen's cost grows as d²·rows)."""
GATED = ("interaction", "pooled")
"""The bounds whose classes are estimated without a ridge, so with more noise: the estimate
reports one of them only where it clears the others by :data:`GATED_MARGIN` (:func:`reported`)."""
GATED_MARGIN = 2.0
"""A gated bound is reported only where its value less this many standard errors is above the
largest of the other bounds; a maximum over bounds would otherwise pick their noise (set a priori
for the interaction bound, not tuned, and kept for the pooled one; docs/estimate.md)."""

Scores = Tensor | Callable[[Tensor], Tensor]
Sums = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]


def _linear_sums(keep: Tensor) -> Sums:
    """The linear class's sums over the rows: Σ_i τ_i (d, K), τ = s [x_keep, 1]ᵀ + [I_keep, 0], and
    Σ_i ψ_iψ_iᵀ (K, K), ψ = [x_keep, 1], on the coordinates ``keep`` (a bool mask: those that vary)."""
    def sums(x: Tensor, s: Tensor) -> tuple[Tensor, Tensor]:
        n = x.shape[0]
        psi = torch.cat([x[:, keep], torch.ones(n, 1, dtype=x.dtype)], 1)
        tau = s.T @ psi
        tau[:, :-1] += n * torch.eye(x.shape[1], dtype=x.dtype)[:, keep]
        return tau, psi.T @ psi
    return sums


def _ridged(c: Tensor, ridge: float | Tensor) -> Tensor:
    """C plus ``ridge`` (a number, or one per feature) times its diagonal, and a trace of 1e-12."""
    diag = torch.diagonal(c, dim1=-2, dim2=-1)
    return c + torch.diag_embed(ridge * diag + 1e-12 * diag.mean(-1, keepdim=True))


def _jackknifed_inverse(c_rest: Tensor, n_rest: int, blocks: list[tuple[Tensor, int]], ridge: float | Tensor) -> Tensor:
    """The jackknife's estimate of C⁻¹ from the other folds' Σψψᵀ (``blocks``: each fold's sum and
    rows; c_rest, n_rest their totals): B·Ĉ⁻¹ − (B − 1)·mean_b Ĉ₋ᵦ⁻¹ over B blocks, Ĉ₋ᵦ without
    block b. Its bias is O(1/N²) whatever the features' law, where the inverse-Wishart factor
    corrects the O(1/N) bias for Gaussian features only. Each inverse is a pseudo-inverse over
    eigenvalues above 1e-9 of the largest, so features that the rows make collinear (the square of
    a two-valued coordinate) count once instead of blowing up."""
    def inverse(c: Tensor, rows: int) -> Tensor:
        return torch.linalg.pinv(_ridged(c / rows, ridge), rtol=1e-9, hermitian=True)
    b = len(blocks)
    out = b * inverse(c_rest, n_rest)
    for c_b, n_b in blocks:
        out = out - (b - 1) / b * inverse(c_rest - c_b, n_rest - n_b)
    return out


def _fold(tau: Tensor, rows: Tensor, c_rest: Tensor, n_rest: int, lam: float, ridge: float | Tensor = 0.0,
          blocks: list[tuple[Tensor, int]] | None = None) -> tuple[float, float] | None:
    """One fold's (value, stderr) from its groups' sums of τ (G, d, K) with their row counts (G,),
    and the other folds' Σψψᵀ ((K, K) shared, or (d, K, K) per output) over their n_rest rows;
    ``ridge`` (a number, or one per feature) times C's diagonal is added to C. C⁻¹ carries the
    inverse-Wishart factor, or with ``blocks`` (the other folds one by one) is jackknifed."""
    K = c_rest.shape[-1]
    if n_rest < 2 * K + 2:
        return None
    means = tau / rows.reshape(-1, 1, 1)
    g = means.shape[0]
    if blocks is not None:
        inv = _jackknifed_inverse(c_rest, n_rest, blocks, ridge)
        solved = means @ inv if inv.dim() == 2 else torch.einsum("gdk,dkl->gdl", means, inv)
        factor = 1.0
    else:
        chol = torch.linalg.cholesky(_ridged(c_rest / n_rest, ridge))
        if chol.dim() == 2:
            solved = torch.cholesky_solve(means.reshape(-1, K).T, chol).T.reshape(means.shape)  # b̂_g C⁻¹
        else:
            solved = torch.cholesky_solve(means.permute(1, 2, 0), chol).permute(2, 0, 1)
        factor = (n_rest - K - 1) / n_rest
    pair = torch.einsum("gdk,hdk->gh", solved, means) * factor / (2 * lam)
    pair = (pair + pair.T) / 2
    off = pair.sum() - torch.diagonal(pair).sum()
    value = float(off / (g * (g - 1)))
    if g < 3:
        return value, float("inf")
    row = pair.sum(1) - torch.diagonal(pair)
    loo = (off - 2 * row) / ((g - 1) * (g - 2))
    return value, float(((g - 1) / g * (loo - loo.mean()).pow(2).sum()).sqrt())


Class = tuple[Sums, float | Tensor, bool]
"""A class's per-row sums, its ridge, and whether its C⁻¹ is jackknifed (:func:`_fold`)."""


Parts = tuple[dict[str, list[tuple[Tensor, Tensor]]], list[Tensor], list[int]]
"""Per class, each fold's (group τ sums (G, d, K), the fold's Σψψᵀ); each fold's group sizes; each
fold's rows (:func:`_gather`)."""


def _gather(x: Tensor, s: Scores, sums: dict[str, Sums], folds: int, groups: int, seed: int,
            rows: Tensor | None = None) -> Parts:
    """One pass over the rows (only those indexed by ``rows``, if given; x is not copied), cut at
    random with ``seed`` into folds and each fold into groups: every class's sums per group, each
    group's scores computed once for all classes."""
    n = x.shape[0] if rows is None else rows.numel()
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).to(x.device)
    if rows is not None:
        order = rows.to(x.device)[order]
    bounds = [round(k * n / folds) for k in range(folds + 1)]
    per_fold: dict[str, list] = {name: [] for name in sums}
    sizes = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        m = b - a
        g = max(2, min(groups, m // 2))
        cuts = [a + round(i * m / g) for i in range(g + 1)]
        found: dict[str, list] = {name: [] for name in sums}
        for lo, hi in zip(cuts[:-1], cuts[1:]):
            idx = order[lo:hi]
            xs = x[idx].detach()
            ss = (s[idx] if isinstance(s, Tensor) else s(xs)).detach()
            xs, ss = xs.double().cpu(), ss.double().cpu()
            for name, class_sums in sums.items():
                found[name].append(class_sums(xs, ss))
        for name, pairs in found.items():
            per_fold[name].append((torch.stack([tau for tau, _ in pairs]), sum(c for _, c in pairs)))
        sizes.append(torch.tensor([hi - lo for lo, hi in zip(cuts[:-1], cuts[1:])], dtype=torch.float64))
    return per_fold, sizes, [b - a for a, b in zip(bounds[:-1], bounds[1:])]


def _value(parts: list[tuple[Tensor, Tensor]], sizes: list[Tensor], counts: list[int], lam: float,
           ridge: float | Tensor, jackknife: bool) -> tuple[float, float] | None:
    """The cross-fitted U-statistic (module docstring) of one class from its folds' sums: the
    mean of the folds' values and its standard error; None when no fold has rows enough."""
    n, total = sum(counts), sum(c for _, c in parts)
    results = []
    for k, ((tau, c), rows) in enumerate(zip(parts, sizes)):
        blocks = [(c_f, counts[f]) for f, (_, c_f) in enumerate(parts) if f != k] if jackknife else None
        if (r := _fold(tau, rows, total - c, n - counts[k], lam, ridge, blocks)) is not None:
            results.append(r)
    if not results:
        return None
    return sum(v for v, _ in results) / len(results), sum(e * e for _, e in results) ** 0.5 / len(results)


def _class_lsds(x: Tensor, s: Scores, lam: float, classes: dict[str, Class], folds: int, groups: int,
                seed: int, rows: Tensor | None = None) -> dict[str, tuple[float, float] | None]:
    """The cross-fitted U-statistic of each class (its per-row sums, its ridge and its inverse)
    from one pass over the rows (:func:`_gather`)."""
    positive_float(lam, "lam")
    parts, sizes, counts = _gather(x, s, {name: c[0] for name, c in classes.items()}, folds, groups, seed, rows)
    return {name: _value(parts[name], sizes, counts, lam, ridge, jackknife)
            for name, (_, ridge, jackknife) in classes.items()}


def _pooled(parts: list[tuple[Tensor, Tensor]], keep: Tensor) -> list[tuple[Tensor, Tensor]]:
    """The pooled class's folds' sums from the per-coordinate class's: one θ for every coordinate,
    so its τ and Σψψᵀ are those summed over the coordinates that vary."""
    return [(tau[:, keep].sum(1, keepdim=True), c[keep].sum(0)) for tau, c in parts]


def reported(bounds: dict[str, tuple[float, float]]) -> str:
    """Which of the (value, stderr) ``bounds`` an estimate reports: the largest value among those
    not in :data:`GATED`, unless a gated one's value less :data:`GATED_MARGIN` standard errors is
    above it (then the gated one clearing it by most); NaN values never count.

    Example:
        >>> reported({"critic": (1.0, 0.1), "linear": (1.2, 0.1), "pooled": (1.5, 0.2)})
        'linear'
        >>> reported({"critic": (1.0, 0.1), "linear": (1.2, 0.1), "pooled": (2.0, 0.2)})
        'pooled'
    """
    known = {k: v for k, v in bounds.items() if v[0] == v[0]}
    if not any(k not in GATED for k in known):
        raise ValueError(f"bounds must hold a value outside the gated {GATED}, got {bounds!r}")
    source = max((k for k in known if k not in GATED), key=lambda k: known[k][0])
    clear = {k: known[k][0] - GATED_MARGIN * known[k][1] for k in GATED if k in known}
    clear = {k: v for k, v in clear.items() if v > known[source][0]}
    return max(clear, key=lambda k: clear[k]) if clear else source


def _linear_class(x: Tensor) -> Class:
    return _linear_sums(varying(x)), 0.0, False


def _coordinate_class(x: Tensor, ridge: float, residual: bool = True) -> Class:
    return CoordinateClass.fit(x, residual=residual).sums, ridge, False


def linear_lsd(x: Tensor, s: Scores, lam: float, folds: int = FOLDS, groups: int = GROUPS,
               seed: int = 0) -> tuple[float, float] | None:
    """The U-statistic estimate of the best linear critic's LSD (module docstring) and its
    standard error, from data x (n, d) and the model's scores s at x (or a function giving the
    scores of a block of rows); None when the data are too few for the d² coefficients of a
    linear map (each fold's complement below 2(d + 1) + 2 rows). Rows are assigned to folds at
    random with ``seed``; they are read a group at a time (float64), so memory stays bounded.
    Coordinates that do not vary are left out of the features."""
    return _class_lsds(x, s, lam, {"linear": _linear_class(x)}, folds, groups, seed)["linear"]


def feature_bounds(x: Tensor, s: Scores, lam: float, seed: int = 0) -> dict[str, tuple[float, float] | None]:
    """:func:`linear_lsd`, :func:`coordinate_lsd` and :func:`pooled_lsd` (keys ``"linear"``,
    ``"coordinate"``, ``"pooled"``) from one pass over the rows, with the same folds and groups as
    each alone, so the same values (a score function is called once per group for all three; the
    pooled class's sums are the per-coordinate class's summed over coordinates), and
    :func:`interaction_lsd` (key ``"interaction"``) from a second pass.

    Example:
        >>> x = torch.randn(1000, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        >>> both = feature_bounds(x, -x / 2, 0.5)
        >>> both["linear"] == linear_lsd(x, -x / 2, 0.5), both["pooled"] == pooled_lsd(x, -x / 2, 0.5)
        (True, True)
    """
    positive_float(lam, "lam")
    coordinate = CoordinateClass.fit(x)
    sums = {"linear": _linear_sums(varying(x)), "coordinate": coordinate.sums}
    parts, sizes, counts = _gather(x, s, sums, FOLDS, GROUPS, seed)
    return {"linear": _value(parts["linear"], sizes, counts, lam, 0.0, False),
            "coordinate": _value(parts["coordinate"], sizes, counts, lam, COORDINATE_RIDGE, False),
            "pooled": _value(_pooled(parts["coordinate"], coordinate.keep), sizes, counts, lam, 0.0, True),
            "interaction": interaction_lsd(x, s, lam, seed=seed)}


def coordinate_lsd(x: Tensor, s: Scores, lam: float, folds: int = FOLDS, groups: int = GROUPS,
                   seed: int = 0, ridge: float = COORDINATE_RIDGE, residual: bool = True) -> tuple[float, float] | None:
    """:func:`linear_lsd` for the per-coordinate class of :mod:`steinkit.coordinate_features`, with
    ``ridge`` times each feature's mean square added to C's diagonal (:data:`COORDINATE_RIDGE`);
    ``residual=False`` takes the features as they are instead of less their fit on [1, z_j] (the
    same class; the ridge then shrinks what they share with z_j too).

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> z, w = torch.randn(4000, 5, generator=g), torch.randn(4000, 5, 5, generator=g)
        >>> x = (z / (w.pow(2).mean(-1) ** 0.5)).double()        # t₅ coordinates, against N(0, I)
        >>> truth = (-x + 6 * x / (5 + x * x)).pow(2).sum(1).mean()   # E‖s_q − s_p‖²/(2λ), λ = .5
        >>> value, se = coordinate_lsd(x, -x, lam=0.5)                # close: s_p is within the features' reach
        >>> abs(value - float(truth)) < 3 * se
        True
    """
    classes = {"coordinate": _coordinate_class(x, ridge, residual)}
    return _class_lsds(x, s, lam, classes, folds, groups, seed)["coordinate"]


def pooled_lsd(x: Tensor, s: Scores, lam: float, folds: int = FOLDS, groups: int = GROUPS,
               seed: int = 0) -> tuple[float, float] | None:
    """:func:`linear_lsd` for the pooled class: the per-coordinate features of
    :func:`coordinate_lsd` with one coefficient vector for every coordinate, f_j = Σ_m α_m v_m(z)_j + c
    (K = 8 in all, whatever d). Its τ and C are sums over the coordinates, so they are estimated
    from n·d values; no ridge, and C⁻¹ is jackknifed (its features are not Gaussian). A subclass of
    the per-coordinate class, so a lower bound of it, with much less noise when the coordinates
    share a misfit (a scale or tail shape) in high dimension.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> x = torch.randn(2000, 50, generator=g, dtype=torch.float64)   # N(0, I) data, model N(0, 2I)
        >>> value, se = pooled_lsd(x, -x / 2, lam=0.5)                    # truth d/4 = 12.5: f* = x/2 is pooled
        >>> abs(value - 12.5) < 3 * se, se < 0.5
        (True, True)
    """
    positive_float(lam, "lam")
    coordinate = CoordinateClass.fit(x)
    parts, sizes, counts = _gather(x, s, {"coordinate": coordinate.sums}, folds, groups, seed)
    return _value(_pooled(parts["coordinate"], coordinate.keep), sizes, counts, lam, 0.0, True)


def interaction_lsd(x: Tensor, s: Scores, lam: float, folds: int = FOLDS, groups: int = GROUPS,
                    seed: int = 0, ridge: float = 0.0, jackknife: bool = True) -> tuple[float, float] | None:
    """:func:`linear_lsd` for the pairwise cubic class of
    :class:`~steinkit.interaction_class.InteractionClass`: its partners are screened on a random
    :data:`SCREEN` of the rows (with ``seed``; at most :data:`SCREEN_ROWS`), and the U-statistic
    runs on the others, so the screen's luck does not lift the bound; None with fewer than two
    coordinates that vary or too few rows. ``loc`` and ``scale`` come from all rows. Its
    C⁻¹ is jackknifed (``jackknife=False``: the inverse-Wishart factor, biased up for these
    non-Gaussian features); ``ridge`` times each feature's mean square but the constant's and
    z_j's is added to C (0 by default: a ridge shrinks a curved misfit away; docs/estimate.md).

    Example:
        >>> from steinkit.problems.distributions import Banana
        >>> x = Banana(10, 1.0).sample(3000, generator=torch.Generator().manual_seed(1))
        >>> var = torch.ones(10, dtype=torch.float64); var[1] = 3.0       # the moment-matched Gaussian
        >>> value, se = interaction_lsd(x, -x / var, 0.5)                # truth 4.67: the class holds f*
        >>> abs(value - 4.67) < 3 * se, linear_lsd(x, -x / var, 0.5)[0] < 0.5
        (True, True)
    """
    positive_float(lam, "lam")
    if int(varying(x).sum()) < 2:
        return None
    n = x.shape[0]
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed + 1))
    cut = min(round(SCREEN * n), SCREEN_ROWS)
    if cut < 8:
        return None
    screen = order[:cut].to(x.device)
    xs = x[screen].detach()
    ss = s[screen] if isinstance(s, Tensor) else s(xs)
    cls = InteractionClass.screen(xs, ss, loc=x.detach().mean(0).double(), scale=x.detach().std(0).double())
    ridges = torch.full((cls.size,), float(ridge), dtype=torch.float64)
    ridges[:2] = 0.0   # the constant and z_j: the linear part stays unshrunk
    classes: dict[str, Class] = {"interaction": (cls.sums, ridges, jackknife)}
    return _class_lsds(x, s, lam, classes, folds, groups, seed, rows=order[cut:])["interaction"]

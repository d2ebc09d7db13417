"""Stein thinning: pick m of n MCMC draws that greedily minimise a kernel Stein discrepancy.

Riabiz, Chen, Cockayne, Swietach, Niederer, Mackey & Oates (2022), "Optimal thinning of MCMC
output", JRSS-B 84(4). Step t of :func:`thin` selects

    i_t = argmin_i  k0(x_i, x_i) / 2 + sum_{a < t} k0(x_{i_a}, x_i)

(a draw may be selected more than once, the first index wins a tie), which greedily minimises
the kernel Stein discrepancy of the selection, ``KSD(t) = sqrt(sum_{a,b <= t} k0(x_{i_a},
x_{i_b})) / t`` (:func:`ksd_path`). k0 is the Langevin Stein kernel of the preconditioned
inverse multiquadric kernel ``k(x, y) = (1 + (x - y)ᵀ Γ⁻¹ (x - y))^(-1/2)``. With ``L = Γ⁻¹``,
``u = x - y``, ``q = 1 + uᵀ L u`` and ``s = ∇ log p``:

    k0(x, y) = s(x)ᵀs(y) q^(-1/2) + (tr L + (s(x) - s(y))ᵀ L u) q^(-3/2) - 3 uᵀ L² u q^(-5/2).

The preconditioners Γ and the standardisation of the draws are those of the reference package
``stein-thinning`` 0.2.0 (``stein_thinning.thinning.thin(sample, gradient, m,
standardize=True, preconditioner=...)``), so equal inputs and settings give equal indices,
barring distinct draws whose objective values tie to within rounding error. The loop keeps one
objective value per distinct draw (a rejected MCMC proposal repeats a draw; the copies share
one value, so a tie goes to the first copy, as in the reference) and adds one kernel row per
step, computed in float64 over blocks of draws: memory O(n d), time O(m n d); no (n, n)
matrix is formed.

Example:
    >>> import torch
    >>> x = torch.randn(500, 2, generator=torch.Generator().manual_seed(0))
    >>> idx = thin(x, lambda x: -x, 20)          # draws from N(0, I), whose score is -x
    >>> idx.shape, idx.dtype
    (torch.Size([20]), torch.int64)
    >>> path = ksd_path(x, lambda x: -x, idx)
    >>> bool(path[-1] < path[0])
    True
"""

from __future__ import annotations

import math
import numbers
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from .scores import as_score
from .validation import as_data, as_device, as_param, flag, positive_float, positive_int, wrong_type

__all__ = ["thin", "ksd_path"]

_PRECONDITIONERS = ("id", "med", "sclmed", "smpcov")
_MEDIAN_POINTS = 1000  # the reference's subsample size for the median heuristic
_BLOCK_ELEMENTS = 1 << 17  # default block on the CPU: about this many float64 entries of (d, draws)


class _Kernel(NamedTuple):
    """Draws and scores in the coordinates where L = Γ⁻¹ is diagonal (``lam``: a float when
    L = lam I, else the (d,) diagonal), and ``trace`` = tr L."""

    x: Tensor
    s: Tensor
    lam: float | Tensor
    trace: float


def _k0(x: Tensor, s: Tensor, y: Tensor, r: Tensor, lam: float | Tensor, trace: float, dim: int = -1) -> Tensor:
    """k0((x, s), (y, r)) with coordinates along ``dim`` (``lam`` broadcast along it), all
    other dimensions broadcast."""
    u = x - y
    if isinstance(lam, float):
        uu = (u * u).sum(dim)
        quad, quad2, cross = lam * uu, (lam * lam) * uu, lam * ((s - r) * u).sum(dim)
    else:
        lu = u * lam
        quad, quad2, cross = (u * lu).sum(dim), (lu * lu).sum(dim), ((s - r) * lu).sum(dim)
    q = 1.0 + quad
    return q.rsqrt() * ((s * r).sum(dim) + (trace + cross - 3.0 * quad2 / q) / q)


# --------------------------------------------------------------------------- inputs
def _flat(a: Any) -> Any:
    """(chains, n, d) -> (chains * n, d), chain after chain; anything else as given."""
    if isinstance(a, (Tensor, np.ndarray)) and a.ndim == 3:
        return a.reshape(-1, a.shape[-1])
    return a


def _draws(draws: Any, device: Any) -> tuple[Tensor, torch.device]:
    x = as_data(_flat(draws), "draws")
    dev = as_device(device, draws)
    return x.to(dev), dev


def _gradients(x: Tensor, target: Any, gradients: Any, rows: Tensor | None, block: int) -> Tensor:
    """Float64 scores at ``x`` (at ``x[rows]`` when ``rows`` is given), from exactly one of
    ``target`` and ``gradients``."""
    if (target is None) == (gradients is None):
        raise ValueError(
            "give exactly one of target (a model steinkit.as_score accepts) and gradients "
            "(∇ log p at the draws, shape (n, d)), "
            + ("got both" if target is not None else "got neither")
        )
    if gradients is not None:
        g = as_data(_flat(gradients), "gradients", dtype=torch.float64)
        if g.shape != x.shape:
            raise ValueError(
                f"gradients must have the shape of draws {tuple(x.shape)} (∇ log p at each draw), "
                f"got {tuple(g.shape)}"
            )
        g = g.to(x.device)
        return g if rows is None else g[rows]
    score = as_score(target, device=x.device)
    score.check_dim(x, "draws")
    pts = x if rows is None else x[rows]
    with torch.no_grad():
        parts = [score(pts[a:a + block]).detach() for a in range(0, pts.shape[0], block)]
    return torch.cat(parts).to(torch.float64)


def _block(block_size: Any, n: int, d: int, device: torch.device) -> int:
    if block_size is None:
        return n if device.type != "cpu" else max(1024, _BLOCK_ELEMENTS // d)
    return positive_int(block_size, "block_size")


def _indices(indices: Any, n: int) -> Tensor:
    try:
        idx = torch.as_tensor(indices)
    except (TypeError, ValueError, RuntimeError) as err:
        raise wrong_type("indices", "a 1-D tensor or array of ints", indices) from err
    if idx.ndim != 1 or idx.numel() == 0:
        raise ValueError(f"indices must be a non-empty 1-D tensor, got shape {tuple(idx.shape)}")
    if idx.is_floating_point() or idx.is_complex() or idx.dtype == torch.bool:
        raise TypeError(f"indices must hold integers, got element type (dtype) {idx.dtype}")
    if int(idx.min()) < 0 or int(idx.max()) >= n:
        raise ValueError(f"indices must lie in [0, {n}) (rows of draws), got values in "
                         f"[{int(idx.min())}, {int(idx.max())}]")
    return idx.to(torch.long)


# --------------------------------------------------------------------------- preconditioner
def _median_sq(x: Tensor, scale: Tensor | None = None) -> float:
    """Squared median distance over pairs of at most 1000 evenly spaced draws (the reference's
    ``np.linspace(0, n - 1, 1000, dtype=int)`` subsample; the mean of the two middle values
    when the number of pairs is even), the draws divided by ``scale`` if given."""
    n = x.shape[0]
    if n > _MEDIAN_POINTS:
        sub = torch.as_tensor(np.linspace(0, n - 1, _MEDIAN_POINTS, dtype=int), device=x.device)
        x = x[sub]
    dist = torch.pdist(x if scale is None else x / scale)
    k = dist.numel()
    if k == 0:
        raise ValueError("draws must have at least 2 rows for a median-heuristic preconditioner ('med', 'sclmed')")
    low = dist.median()  # the lower middle value
    if k % 2:
        med = float(low)
    else:  # the upper middle value: low again if more than k / 2 values are <= low
        high = low if int((dist <= low).sum()) > k // 2 else dist[dist > low].min()
        med = (float(low) + float(high)) / 2
    if not med > 0:
        raise ValueError(
            "draws: the median distance between draws is 0 (too few distinct draws) for the "
            "'med'/'sclmed' preconditioner; use preconditioner='id', a number or a matrix"
        )
    return med * med


def _symmetric_pd(gamma: Tensor, name: str) -> tuple[Tensor, Tensor]:
    """Eigen-decomposition (eigenvalues, eigenvectors) of a symmetric positive definite Γ."""
    if not torch.allclose(gamma, gamma.T, rtol=1e-10, atol=0.0):
        raise ValueError(f"{name} must be a symmetric matrix")
    mu, vec = torch.linalg.eigh(gamma)
    if not bool(mu[0] > gamma.shape[0] * torch.finfo(gamma.dtype).eps * mu[-1].abs()):
        raise ValueError(f"{name} must be positive definite (its smallest eigenvalue is {float(mu[0]):.3g})")
    return mu, vec


class _Geometry(NamedTuple):
    """What the draws fix: the standardising ``scale`` (or None), L = Γ⁻¹ as ``lam`` (a float
    when L = lam I, else its (d,) eigenvalues with eigenvectors ``vec``) and ``trace`` = tr L."""

    scale: Tensor | None
    lam: float | Tensor
    vec: Tensor | None
    trace: float


def _geometry(x: Tensor, preconditioner: Any, standardize: Any) -> _Geometry:
    """The standardisation and Γ of the reference package, from all the draws ``x`` (float64)."""
    flag(standardize, "standardize")
    n, d = x.shape
    scale = None
    if standardize:
        scale = (x - x.mean(0)).abs_().mean(0)
        if not bool((scale > 0).all()):
            raise ValueError(
                "draws has a constant column (mean absolute deviation 0) that standardize=True "
                "cannot rescale; drop the column or pass standardize=False"
            )
    if isinstance(preconditioner, str):
        name = preconditioner
        if name not in _PRECONDITIONERS:
            raise ValueError(f"preconditioner must be one of {_PRECONDITIONERS}, a number ℓ > 0 (Γ = ℓ I) "
                             f"or a (d, d) positive definite matrix, got {preconditioner!r}")
        if name == "id":
            return _Geometry(scale, 1.0, None, float(d))
        if name in ("med", "sclmed"):
            lam = 1.0 / _median_sq(x, scale)
            if name == "sclmed":
                lam = lam * math.log(min(_MEDIAN_POINTS, n))
            return _Geometry(scale, lam, None, sum([lam] * d))
        if n <= d:
            raise ValueError(f"preconditioner='smpcov' needs more draws than dimensions, got n={n}, d={d}")
        gamma = torch.cov((x if scale is None else x / scale).T).reshape(d, d)
        where = "preconditioner='smpcov': the sample covariance of the draws"
    elif isinstance(preconditioner, numbers.Real) and not isinstance(preconditioner, bool):
        lam = 1.0 / positive_float(preconditioner, "preconditioner")
        return _Geometry(scale, lam, None, sum([lam] * d))
    else:
        gamma = as_param(preconditioner, "preconditioner", torch.float64, ndim=2).to(x.device)
        if gamma.shape != (d, d):
            raise ValueError(f"preconditioner must be a ({d}, {d}) matrix for draws of dimension {d}, "
                             f"got shape {tuple(gamma.shape)}")
        where = "preconditioner"
    if bool((gamma - torch.diag(gamma.diagonal())).eq(0).all()):  # diagonal: no rotation
        if not bool((gamma.diagonal() > 0).all()):
            raise ValueError(f"{where} must be positive definite")
        lam = 1.0 / gamma.diagonal()
        return _Geometry(scale, lam, None, float(lam.sum()))
    mu, vec = _symmetric_pd(gamma, where)
    lam = 1.0 / mu
    return _Geometry(scale, lam, vec, float(lam.sum()))


def _kernel(geo: _Geometry, x: Tensor, s: Tensor) -> _Kernel:
    """Draws and scores (float64) in the coordinates of the kernel ``geo``."""
    if geo.scale is not None:
        x, s = x / geo.scale, s * geo.scale
    if geo.vec is not None:
        x, s = x @ geo.vec, s @ geo.vec
    return _Kernel(x, s, geo.lam, geo.trace)


def _first_copies(x: Tensor, s: Tensor) -> Tensor:
    """Ascending indices of the first copy of each distinct row of (x, s).

    Equal rows are found by sorting a key made with element-wise operations only (equal rows
    get equal keys whatever their position) and comparing the rows whose keys are equal;
    should two different rows share a key, an exact ``torch.unique`` decides.
    """
    n, d = x.shape
    weights = (torch.rand(2 * d, generator=torch.Generator().manual_seed(0), dtype=torch.float64) + 0.5).tolist()
    columns = [x[:, j] for j in range(d)] + [s[:, j] for j in range(d)]
    key = columns[0] * weights[0]
    for column, weight in zip(columns[1:], weights[1:]):
        key = key + column * weight
    key, order = torch.sort(key, stable=True)
    same = key[1:] == key[:-1]
    a, b = order[1:][same], order[:-1][same]
    if bool(torch.isfinite(key).all()) and bool((x[a] == x[b]).all()) and bool((s[a] == s[b]).all()):
        # a run of equal keys holds equal rows; the stable sort puts the first copy first
        start = torch.cat([torch.ones(1, dtype=torch.bool, device=x.device), ~same])
        return order[start].sort().values
    _, inverse = torch.unique(torch.cat([x, s], 1), dim=0, return_inverse=True)
    first = torch.full((n,), n, dtype=torch.long, device=x.device)
    first = first.scatter_reduce_(0, inverse, torch.arange(n, device=x.device), "amin")
    return first[first < n].sort().values


# --------------------------------------------------------------------------- public
def thin(
    draws: Any,
    target: Any,
    m: int,
    *,
    gradients: Any = None,
    preconditioner: Any = "med",
    standardize: bool = True,
    block_size: int | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """Stein thinning (Riabiz et al. 2022): indices of m draws chosen greedily to minimise the
    kernel Stein discrepancy of the selection (see the module docstring for the kernel).

    Arguments:
        draws: MCMC draws, shape (n, d), or (chains, n, d), taken chain after chain, so index
            ``c * n + j`` is draw j of chain c.
        target: the target p, anything :func:`steinkit.as_score` accepts; None when
            ``gradients`` is given.
        m: the number of indices to return (a draw can be selected more than once).
        gradients: ∇ log p at the draws, the shape of ``draws``, instead of ``target``.
        preconditioner: Γ of the kernel: "id" (I), "med" (med² I, with med the median distance
            between pairs of at most 1000 evenly spaced draws), "sclmed" (med² I / log(min(n,
            1000))), "smpcov" (the sample covariance of the draws), a number ℓ > 0 (ℓ I) or a
            symmetric positive definite (d, d) matrix.
        standardize: first divide each coordinate of the draws by its mean absolute deviation
            (and multiply the gradients by it), as the reference package does by default;
            Γ then applies to the standardised draws.
        block_size: draws per block of a kernel row (None: a cache-sized block on the CPU, all
            draws on a GPU).
        device: where to compute (None: where ``draws`` live).

    Returns:
        int64 tensor of shape (m,) on ``device``: rows of the (flattened) draws, in selection order.

    Example:
        >>> import torch
        >>> x = torch.randn(300, 3, generator=torch.Generator().manual_seed(0))
        >>> idx = thin(x, torch.distributions.MultivariateNormal(torch.zeros(3), torch.eye(3)), 10)
        >>> bool(torch.equal(idx, thin(x, None, 10, gradients=-x)))
        True
    """
    x, dev = _draws(draws, device)
    m = positive_int(m, "m")
    n, d = x.shape
    block = _block(block_size, n, d, dev)
    s = _gradients(x, target, gradients, None, block)
    x64 = x.to(torch.float64)
    geometry = _geometry(x64, preconditioner, standardize)
    # repeated draws share one objective value, so a tie goes to the first copy exactly as in
    # np.argmin (sums over blocks may round differently at different positions)
    first = _first_copies(x64, s)
    if first.numel() < n:
        x64, s = x64[first], s[first]
    xs, ss, lam, tr = _kernel(geometry, x64, s)
    del x, x64, s
    n = xs.shape[0]
    objective = 0.5 * (tr + (ss * ss).sum(-1))  # k0(x_i, x_i) / 2
    # one kernel row per step, over blocks of columns of the (d, n) layout (sums run along d)
    xt, st = xs.T.contiguous(), ss.T.contiguous()
    del xs, ss
    lam = lam if isinstance(lam, float) else lam[:, None]
    chosen = torch.empty(m, dtype=torch.long, device=dev)
    for t in range(m):
        k = objective.argmin()  # the first index among equal values
        chosen[t] = k
        if t + 1 < m:
            y, r = xt.index_select(1, k.view(1)), st.index_select(1, k.view(1))  # no device sync
            for a in range(0, n, block):
                objective[a:a + block] += _k0(xt[:, a:a + block], st[:, a:a + block], y, r, lam, tr, dim=0)
    if not bool(torch.isfinite(objective).all()):
        raise ValueError("draws: the Stein kernel overflowed (draws or gradients too large); "
                         "rescale them or pass standardize=True")
    return first[chosen]


def ksd_path(
    draws: Any,
    target: Any,
    indices: Any,
    *,
    gradients: Any = None,
    preconditioner: Any = "med",
    standardize: bool = True,
    block_size: int | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """KSD of the first t indexed draws, for t = 1..len(indices): the quantity :func:`thin`
    greedily minimises, ``KSD(t) = sqrt(sum_{a,b <= t} k0(x_{i_a}, x_{i_b})) / t``.

    The kernel is that of :func:`thin` with the same arguments (the standardisation and the
    preconditioner come from all the draws); scores are needed at the indexed draws only.
    Time O(len(indices)² d).

    Arguments:
        draws, target, gradients, preconditioner, standardize, block_size, device: as in :func:`thin`.
        indices: rows of the (flattened) draws, e.g. the output of :func:`thin` or
            ``torch.arange(0, n, step)`` for plain thinning.

    Returns:
        float64 tensor of shape (len(indices),) on ``device``.

    Example:
        >>> import torch
        >>> x = torch.randn(200, 2, generator=torch.Generator().manual_seed(0))
        >>> stein = ksd_path(x, None, thin(x, None, 20, gradients=-x), gradients=-x)
        >>> plain = ksd_path(x, None, torch.arange(0, 200, 10), gradients=-x)   # every 10th draw
        >>> stein.shape, bool(stein[-1] < plain[-1])
        (torch.Size([20]), True)
    """
    x, dev = _draws(draws, device)
    n, d = x.shape
    idx = _indices(indices, n).to(dev)
    block = _block(block_size, n, d, dev)
    s = _gradients(x, target, gradients, idx, block)
    x64 = x.to(torch.float64)
    xs, ss, lam, tr = _kernel(_geometry(x64, preconditioner, standardize), x64[idx], s)
    k = idx.numel()
    # increments[t] = k0(t, t) + 2 sum_{a < t} k0(a, t), over tiles of about _BLOCK_ELEMENTS
    increments = torch.zeros(k, dtype=torch.float64, device=dev)
    rows = max(1, min(k, math.isqrt(max(1, _BLOCK_ELEMENTS // d))))
    for b in range(0, k, rows):
        cols = slice(b, min(b + rows, k))
        for a in range(0, cols.stop, rows):
            tile = _k0(xs[a:a + rows, None], ss[a:a + rows, None], xs[None, cols], ss[None, cols], lam, tr)
            ia = torch.arange(a, a + tile.shape[0], device=dev)[:, None]
            ib = torch.arange(cols.start, cols.stop, device=dev)[None, :]
            weight = (ia < ib).to(tile.dtype) * 2.0 + (ia == ib).to(tile.dtype)
            increments[cols] += (tile * weight).sum(0)
    total = increments.cumsum(0)
    return total.clamp_min(0.0).sqrt() / torch.arange(1, k + 1, dtype=torch.float64, device=dev)

"""Gaussian RBF kernel, median heuristic and the Stein kernel u_q.

Everything here is a pure function of tensors: the data ``x`` of shape ``(n, d)``
and the model's scores ``s = grad_x log q(x)`` at the data, also ``(n, d)``.
The kernel is

    k(x, y) = exp(-||x - y||^2 / (2 h^2)),

and with ``r = x - y`` the Stein kernel (Liu, Lee & Jordan 2016) is

    u_q(x, y) = s(x)^T s(y) k + s(x)^T grad_y k + grad_x k^T s(y) + tr(grad_x grad_y k)
              = k * [ s(x)^T s(y) + (s(x) - s(y))^T r / h^2 + d / h^2 - ||r||^2 / h^4 ].

The matrix form is two matrix products of (n, 2d + 2) factors followed by one exp
and one multiply (no ``(n, n, d)`` tensors), all in float64; x is centred first
(u_q is translation invariant in x) to limit cancellation. Results are float64.
The pair form keeps the bandwidth-free pieces ``||r||^2``, ``s(x)^T s(y)`` and
``(s(x) - s(y))^T r`` so a bandwidth search only redoes element-wise work.

Example:
    >>> import torch
    >>> x = torch.randn(100, 3, generator=torch.Generator().manual_seed(0))
    >>> h = median_bandwidth(x)
    >>> stein_kernel_matrix(x, -x, h).shape
    torch.Size([100, 100])
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import Tensor

from ..validation import as_data, as_generator, integer, nonneg_float, one_of, positive_float, probability

__all__ = [
    "rbf_kernel",
    "median_bandwidth",
    "stein_kernel_matrix",
    "stein_kernel_pairs",
    "search_bandwidth",
]


# ---------------------------------------------------------------------------
# input checks (shared by ksd, lksd and fssd; the rules live in steinkit.validation)
# ---------------------------------------------------------------------------


def _float64_matrix(a: Any, name: str, *, min_rows: int = 1, what: str | None = None) -> Tensor:
    """A detached float64 copy of a real (n, d) tensor without NaN/inf."""
    return as_data(a, name, tensors_only=True, dtype=torch.float64, min_rows=min_rows, what=what).detach()


def _data_and_scores(x: Any, s: Any, *, min_n: int = 2, what: str = "this test") -> tuple[Tensor, Tensor]:
    """Validate ``x`` and ``s`` and return float64 copies (detached, on x's device)."""
    x64 = _float64_matrix(x, "x", min_rows=min_n, what=what)
    s64 = _float64_matrix(s, "s")
    if s64.shape != x64.shape:
        raise ValueError(
            f"s must have the same shape as x (the scores at the data), got s {tuple(s64.shape)} "
            f"and x {tuple(x64.shape)}"
        )
    if s64.device != x64.device:
        raise ValueError(f"s must be on the same device as x, got s on {s64.device} and x on {x64.device}")
    return x64, s64


def _generator_device(generator: torch.Generator | None) -> torch.device:
    return torch.device("cpu") if generator is None else generator.device


def _split_indices(n: int, train_fraction: float, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
    """Random disjoint (train, test) index sets; at least 2 points on each side."""
    n_train = int(round(train_fraction * n))
    if n_train < 2 or n - n_train < 2:
        raise ValueError(
            f"x has too few rows (n={n}) for train_fraction={train_fraction}: the split needs at least "
            f"2 training and 2 test points (got {n_train} and {n - n_train})"
        )
    perm = torch.randperm(n, generator=generator, device=_generator_device(generator))
    return perm[:n_train].cpu(), perm[n_train:].cpu()


def _search_inputs(
    x: Any, s: Any, objective: Any, init: Any, reg: Any, *, min_n: int, what: str
) -> tuple[Tensor, Tensor, str, float, float]:
    """Checked inputs of a bandwidth search: x64, s64, objective, the start h0 (median
    heuristic when ``init`` is None) and the variance regularizer."""
    x64, s64 = _data_and_scores(x, s, min_n=min_n, what=what)
    objective = one_of(objective, "objective", ("value", "power"))
    h0 = median_bandwidth(x64) if init is None else positive_float(init, "init")
    return x64, s64, objective, h0, nonneg_float(reg, "reg")


# ---------------------------------------------------------------------------
# kernels
# ---------------------------------------------------------------------------


def _sq_dists(x: Tensor, y: Tensor) -> Tensor:
    """Pairwise squared distances via Gram matrices, clamped at 0."""
    d2 = (x * x).sum(1)[:, None] + (y * y).sum(1)[None, :] - 2.0 * (x @ y.T)
    return d2.clamp_min_(0.0)


def rbf_kernel(x: Tensor, y: Tensor, bandwidth: float) -> Tensor:
    """Gaussian RBF Gram matrix ``k(x_i, y_j) = exp(-||x_i - y_j||^2 / (2 h^2))``.

    Arguments:
        x: points, shape (n, d).
        y: points, shape (m, d).
        bandwidth: h > 0.

    Returns:
        (n, m) tensor in the promoted dtype of x and y.

    Example:
        >>> import torch
        >>> rbf_kernel(torch.zeros(2, 3), torch.ones(1, 3), 1.0).squeeze()
        tensor([0.2231, 0.2231])
    """
    x64, y64 = _float64_matrix(x, "x"), _float64_matrix(y, "y")
    if x64.shape[1] != y64.shape[1]:
        raise ValueError(f"y must have the same number of columns as x, got {y64.shape[1]} and {x64.shape[1]}")
    h = positive_float(bandwidth, "bandwidth")
    out_dtype = torch.promote_types(torch.promote_types(x.dtype, y.dtype), torch.float32)
    centre = x64.mean(0)
    k = torch.exp(-_sq_dists(x64 - centre, y64.to(x64.device) - centre) / (2.0 * h * h))
    return k.to(out_dtype)


def median_bandwidth(x: Tensor, *, max_points: int = 2000, generator: torch.Generator | None = None) -> float:
    """Median heuristic: the median Euclidean distance over distinct pairs of rows of ``x``.

    Above ``max_points`` rows a random subset of ``max_points`` rows is used; the subset
    is drawn from ``generator``, or from a fixed seed (0) when ``generator`` is None, so
    the heuristic is deterministic. If the median is 0 (many tied points) the median of
    the positive distances is used; if all points coincide the bandwidth is 1.0.

    Arguments:
        x: data, shape (n, d), n >= 2.
        max_points: subsample size above which rows are subsampled.
        generator: torch.Generator for the subsample.

    Returns:
        The bandwidth h (float) for ``k = exp(-||x-y||^2 / (2 h^2))``.

    Example:
        >>> import torch
        >>> median_bandwidth(torch.tensor([[0.0], [1.0], [3.0]]))
        2.0
    """
    x64 = _float64_matrix(x, "x", min_rows=2, what="the median heuristic")
    max_points = integer(max_points, "max_points", minimum=2)
    as_generator(generator=generator)
    n = x64.shape[0]
    if n > max_points:
        gen = generator if generator is not None else torch.Generator().manual_seed(0)
        idx = torch.randperm(n, generator=gen, device=_generator_device(gen))[:max_points]
        x64 = x64[idx.to(x64.device)]
        n = max_points
    x64 = x64 - x64.mean(0)
    iu = torch.triu_indices(n, n, offset=1, device=x64.device)
    dist = _sq_dists(x64, x64)[iu[0], iu[1]].sqrt()
    med = float(dist.median())
    if med <= 0.0:
        pos = dist[dist > 0]
        med = float(pos.median()) if pos.numel() > 0 else 1.0
    return med


@dataclass(frozen=True)
class _SteinPieces:
    """Bandwidth-free ingredients of u_q (matrix or per-pair form)."""

    sq_dist: Tensor  # ||x - y||^2
    score_dot: Tensor  # s(x)^T s(y)
    cross: Tensor  # (s(x) - s(y))^T (x - y)
    dim: int

    def evaluate(self, bandwidth: float | Tensor) -> Tensor:
        """u_q for bandwidth h (float or differentiable scalar tensor)."""
        inv = 1.0 / (bandwidth * bandwidth)
        k = torch.exp(-0.5 * inv * self.sq_dist)
        return k * (self.score_dot + inv * self.cross + self.dim * inv - (inv * inv) * self.sq_dist)


def _stein_matrix(x64: Tensor, s64: Tensor, bandwidth: float) -> Tensor:
    """u_q(x_i, x_j) for all pairs with two matrix products and two element-wise passes.

    With inv = 1/h^2, q_i = ||x_i||^2, a_i = s_i.x_i and G = x x^T:
      bracket_ij = s_i.s_j + inv (s_i - s_j).(x_i - x_j) + d inv - inv^2 ||x_i - x_j||^2
                 = [s_i, x_i].[s_j - inv x_j, 2 inv^2 x_j - inv s_j] + r_i + r_j,
                   r_i = inv a_i - inv^2 q_i + d inv / 2,
      log k_ij   = inv x_i.x_j - c_i - c_j,  c_i = inv q_i / 2,
    and the rank-one terms ride along as two extra columns of each factor.
    """
    x64 = x64 - x64.mean(0)  # u_q is translation invariant in x; centring helps accuracy
    n, d = x64.shape
    inv = 1.0 / (bandwidth * bandwidth)
    q = (x64 * x64).sum(1, keepdim=True)
    a = (s64 * x64).sum(1, keepdim=True)
    one = torch.ones_like(q)
    c = 0.5 * inv * q
    r = inv * a - (inv * inv) * q + 0.5 * d * inv
    log_k = torch.cat([x64, -c, one], 1) @ torch.cat([inv * x64, one, -c], 1).T
    u = torch.cat([s64, x64, r, one], 1) @ torch.cat([s64 - inv * x64, (2.0 * inv * inv) * x64 - inv * s64, one, r], 1).T
    return u.mul_(log_k.clamp_max_(0.0).exp_())


def _stein_pair_pieces(x64: Tensor, s64: Tensor, y64: Tensor, t64: Tensor) -> _SteinPieces:
    r = x64 - y64
    return _SteinPieces((r * r).sum(1), (s64 * t64).sum(1), ((s64 - t64) * r).sum(1), x64.shape[1])


def stein_kernel_matrix(x: Tensor, s: Tensor, bandwidth: float) -> Tensor:
    """The Stein kernel matrix ``U[i, j] = u_q(x_i, x_j)`` for the Gaussian RBF kernel.

    Built from Gram matrices only (memory O(n^2 + n d)), computed in float64.

    Arguments:
        x: data, shape (n, d).
        s: scores grad_x log q at the data, shape (n, d).
        bandwidth: kernel bandwidth h > 0.

    Returns:
        Symmetric (n, n) float64 tensor on x's device.

    Example:
        >>> import torch
        >>> x = torch.randn(5, 2, generator=torch.Generator().manual_seed(0))
        >>> U = stein_kernel_matrix(x, -x, 1.0)
        >>> bool(torch.allclose(U, U.T))
        True
    """
    x64, s64 = _data_and_scores(x, s, min_n=1, what="the Stein kernel")
    h = positive_float(bandwidth, "bandwidth")
    return _stein_matrix(x64, s64, h)


def stein_kernel_pairs(x: Tensor, s: Tensor, y: Tensor, s_y: Tensor, bandwidth: float) -> Tensor:
    """The Stein kernel on given pairs only: ``out[i] = u_q(x_i, y_i)``.

    Arguments:
        x: first points of the pairs, shape (m, d).
        s: scores at ``x``, shape (m, d).
        y: second points of the pairs, shape (m, d).
        s_y: scores at ``y``, shape (m, d).
        bandwidth: kernel bandwidth h > 0.

    Returns:
        (m,) float64 tensor.

    Example:
        >>> import torch
        >>> x = torch.randn(6, 2, generator=torch.Generator().manual_seed(0))
        >>> U = stein_kernel_matrix(x, -x, 1.0)
        >>> h = stein_kernel_pairs(x[0::2], -x[0::2], x[1::2], -x[1::2], 1.0)
        >>> bool(torch.allclose(h, U[[0, 2, 4], [1, 3, 5]]))
        True
    """
    x64, s64 = _data_and_scores(x, s, min_n=1, what="the Stein kernel")
    y64 = _float64_matrix(y, "y")
    t64 = _float64_matrix(s_y, "s_y")
    if y64.shape != x64.shape:
        raise ValueError(f"y must have the same shape as x, got y {tuple(y64.shape)} and x {tuple(x64.shape)}")
    if t64.shape != y64.shape:
        raise ValueError(f"s_y must have the same shape as y, got s_y {tuple(t64.shape)} and y {tuple(y64.shape)}")
    h = positive_float(bandwidth, "bandwidth")
    return _stein_pair_pieces(x64, s64, y64.to(x64.device), t64.to(x64.device)).evaluate(h)


# ---------------------------------------------------------------------------
# one-dimensional bandwidth search (shared by KSD and linear KSD)
# ---------------------------------------------------------------------------

_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0


def search_bandwidth(
    objective: Callable[[float], float],
    init: float,
    *,
    span: float = 32.0,
    grid_size: int = 25,
    steps: int = 30,
) -> tuple[float, float]:
    """Maximize ``objective(h)`` over the bandwidth h: log-grid, then golden-section refine.

    The grid has ``grid_size`` log-spaced points in ``[init / span, init * span]``; the
    best grid point's bracket (its two neighbours) is then refined in log h with
    ``steps`` golden-section iterations. Non-finite objective values count as -inf.
    The search is deterministic and needs no learning rate.

    Arguments:
        objective: maps a bandwidth (float) to a float to maximize.
        init: centre of the search (e.g. the median heuristic).
        span: the grid covers a factor ``span`` either side of ``init``.
        grid_size: number of grid points (>= 2).
        steps: golden-section iterations (>= 0).

    Returns:
        (best bandwidth, best objective value).

    Example:
        >>> h, v = search_bandwidth(lambda h: -(math.log(h) - 1.0) ** 2, 1.0)
        >>> abs(h - math.e) < 1e-4
        True
    """
    init = positive_float(init, "init")
    if isinstance(span, bool) or not isinstance(span, (int, float)) or not (math.isfinite(span) and span > 1.0):
        raise ValueError(f"span must be a finite number > 1, got {span!r}")
    grid_size = integer(grid_size, "grid_size", minimum=2)
    steps = integer(steps, "steps", minimum=0)

    def f(log_h: float) -> float:
        v = float(objective(math.exp(log_h)))
        return v if math.isfinite(v) else -math.inf

    lo, hi = math.log(init) - math.log(span), math.log(init) + math.log(span)
    grid = [lo + (hi - lo) * i / (grid_size - 1) for i in range(grid_size)]
    values = [f(g) for g in grid]
    k = max(range(grid_size), key=lambda i: values[i])
    best_log_h, best_val = grid[k], values[k]
    a, b = grid[max(k - 1, 0)], grid[min(k + 1, grid_size - 1)]
    c, e = b - _GOLDEN * (b - a), a + _GOLDEN * (b - a)
    fc, fe = f(c), f(e)
    for _ in range(steps):
        if fc >= fe:
            b, e, fe = e, c, fc
            c = b - _GOLDEN * (b - a)
            fc = f(c)
        else:
            a, c, fc = c, e, fe
            e = a + _GOLDEN * (b - a)
            fe = f(e)
    for g, v in ((c, fc), (e, fe)):
        if v > best_val:
            best_log_h, best_val = g, v
    return math.exp(best_log_h), best_val


# ---------------------------------------------------------------------------
# bandwidth argument of the tests: float | None | "median" | "learn"
# ---------------------------------------------------------------------------


def _resolve_bandwidth(
    bandwidth: Any,
    x64: Tensor,
    s64: Tensor,
    *,
    learn: Callable[[Tensor, Tensor], float],
    train_fraction: float,
    generator: torch.Generator | None,
    min_test: int,
) -> tuple[float, Tensor, Tensor, dict[str, Any]]:
    """Turn a test's ``bandwidth`` argument into (h, x_test, s_test, details).

    None or "median": median heuristic on all of x, test on all of x.
    "learn": seeded split; ``learn(x_train, s_train)`` picks h; test on the rest.
    A positive number: used as is.
    """
    n = x64.shape[0]
    if isinstance(bandwidth, str):
        if bandwidth == "median":
            bandwidth = None
        elif bandwidth == "learn":
            tf = probability(train_fraction, "train_fraction")
            train, test = _split_indices(n, tf, generator)
            if test.numel() < min_test:
                raise ValueError(
                    f"x has too few rows (n={n}) for train_fraction={train_fraction}: the test split has "
                    f"{test.numel()} points, at least {min_test} are needed"
                )
            train, test = train.to(x64.device), test.to(x64.device)
            h = learn(x64[train], s64[train])
            details = {"bandwidth": h, "bandwidth_rule": "learn", "n_train": int(train.numel()),
                       "n_test": int(test.numel())}
            return h, x64[test], s64[test], details
        else:
            raise ValueError(f"bandwidth must be a positive float, None, 'median' or 'learn', got {bandwidth!r}")
    if bandwidth is None:
        h = median_bandwidth(x64)
        return h, x64, s64, {"bandwidth": h, "bandwidth_rule": "median", "n_test": n}
    h = positive_float(bandwidth, "bandwidth")
    return h, x64, s64, {"bandwidth": h, "bandwidth_rule": "fixed", "n_test": n}

"""What the kernel tests share: input checks, the bandwidth search, a test's kernel and bandwidth.

The kernels themselves are objects of :mod:`steinkit.kernels`; this module turns a test's
``kernel=`` and ``bandwidth=`` arguments into one kernel with a fixed bandwidth
(:func:`_resolve_kernel`: the kernel's own rule, a given number, the median heuristic, or a
bandwidth learned on a training split by :func:`search_bandwidth`). ``rbf_kernel``,
``stein_kernel_matrix`` and ``stein_kernel_pairs`` are the Gaussian kernel as functions.

Example:
    >>> import torch
    >>> x = torch.randn(100, 3, generator=torch.Generator().manual_seed(0))
    >>> h = median_bandwidth(x)
    >>> stein_kernel_matrix(x, -x, h).shape
    torch.Size([100, 100])
"""

from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch import Tensor

from ..kernels import Gaussian, as_kernel, median_bandwidth
from ..validation import as_data, integer, nonneg_float, one_of, positive_float, probability

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
    x: Any, s: Any, objective: Any, init: Any, reg: Any, kernel: Any, *, min_n: int, what: str
) -> tuple[Tensor, Tensor, str, Any, float, float]:
    """Checked inputs of a bandwidth search: x64, s64, objective, the kernel, the start h0 (the
    kernel's own bandwidth on x, the median heuristic by default, when ``init`` is None) and the
    variance regularizer."""
    x64, s64 = _data_and_scores(x, s, min_n=min_n, what=what)
    objective = one_of(objective, "objective", ("value", "power"))
    kernel = as_kernel(Gaussian() if kernel is None else kernel)
    h0 = _start(kernel, x64) if init is None else positive_float(init, "init")
    return x64, s64, objective, kernel, h0, nonneg_float(reg, "reg")


def _one(kernel: Any, x64: Tensor, what: str) -> Any:
    """The one kernel ``kernel`` resolves to on x (a collection is an error)."""
    kernels = kernel.resolve(x64)
    if len(kernels) != 1:
        raise ValueError(
            f"kernel must have one bandwidth for {what}, got a collection of {len(kernels)} ({kernel!r}); "
            "aggregate over a collection with method='ksdagg' or 'ksd-seq'"
        )
    return kernels[0]


def _start(kernel: Any, x64: Tensor) -> float:
    """The kernel's bandwidth on x as a float: where a bandwidth search or optimisation starts."""
    h = _one(kernel, x64, "a bandwidth search").bandwidth
    try:
        return positive_float(h, "the kernel's bandwidth")
    except (TypeError, ValueError):
        raise ValueError(f"kernel {kernel!r} has no single bandwidth to start a search from; give init= "
                         "(or bandwidth= of the test)") from None


# ---------------------------------------------------------------------------
# the Gaussian kernel as functions (the kernel itself is steinkit.kernels.Gaussian)
# ---------------------------------------------------------------------------


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
    h = positive_float(bandwidth, "bandwidth")
    out_dtype = torch.promote_types(torch.promote_types(x.dtype, y.dtype), torch.float32)
    return Gaussian(h).value(x64, y64).to(out_dtype)


def stein_kernel_matrix(x: Tensor, s: Tensor, bandwidth: float) -> Tensor:
    """The Stein kernel matrix ``U[i, j] = u_q(x_i, x_j)`` for the Gaussian RBF kernel.

    Built from Gram matrices only (memory O(n^2 + n d)), computed in float64; a test sums
    it block by block instead (:mod:`steinkit.gof.quadratic`).

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
    return Gaussian(positive_float(bandwidth, "bandwidth")).stein_matrix(x64, s64, x64, s64)


def stein_kernel_pairs(x: Tensor, s: Tensor, y: Tensor, s_y: Tensor, bandwidth: float) -> Tensor:
    """The Gaussian Stein kernel on given pairs only: ``out[i] = u_q(x_i, y_i)``.

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
    return Gaussian(positive_float(bandwidth, "bandwidth")).stein_pairs(x64, s64, y64, t64)


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


def _resolve_kernel(
    kernel: Any,
    bandwidth: Any,
    x64: Tensor,
    s64: Tensor,
    *,
    learn: Callable[[Tensor, Tensor, Any], float],
    train_fraction: float,
    generator: torch.Generator | None,
    min_test: int,
    what: str,
) -> tuple[Any, Tensor, Tensor, dict[str, Any]]:
    """Turn a test's ``kernel`` (checked) and ``bandwidth`` arguments into (kernel with a fixed
    bandwidth, x_test, s_test, details).

    None: the kernel's own bandwidth (the default kernel's is the median heuristic).
    "median": median heuristic on all of x. A positive number: used as is.
    "learn": seeded split; ``learn(x_train, s_train, kernel)`` picks h; test on the rest.
    """
    n = x64.shape[0]
    details: dict[str, Any] = {"kernel": repr(kernel)}
    if isinstance(bandwidth, str):
        if bandwidth == "median":
            kernel, rule = kernel.with_bandwidth("median"), "median"
        elif bandwidth == "learn":
            tf = probability(train_fraction, "train_fraction")
            train, test = _split_indices(n, tf, generator)
            if test.numel() < min_test:
                raise ValueError(
                    f"x has too few rows (n={n}) for train_fraction={train_fraction}: the test split has "
                    f"{test.numel()} points, at least {min_test} are needed"
                )
            train, test = train.to(x64.device), test.to(x64.device)
            h = learn(x64[train], s64[train], kernel)
            details.update(bandwidth=h, bandwidth_rule="learn", n_train=int(train.numel()), n_test=int(test.numel()))
            return kernel.with_bandwidth(h), x64[test], s64[test], details
        else:
            raise ValueError(f"bandwidth must be a positive float, None, 'median' or 'learn', got {bandwidth!r}")
    elif bandwidth is None:
        rule = "median" if isinstance(kernel.bandwidth, str) and kernel.bandwidth == "median" else "fixed"
    else:
        kernel, rule = kernel.with_bandwidth(positive_float(bandwidth, "bandwidth")), "fixed"
    k = _one(kernel, x64, what)
    details.update(bandwidth=_shown(k.bandwidth), bandwidth_rule=rule, n_test=n)
    return k, x64, s64, details


def _estimate_inputs(x: Any, s: Any, kernel: Any, bandwidth: Any, *, min_n: int, what: str) -> tuple[Any, Tensor, Tensor]:
    """Checked inputs of a KSD estimate: (the kernel, Gaussian when None, with its one bandwidth
    from ``bandwidth`` as in :func:`_resolve_kernel` without "learn"; x64; s64)."""
    x64, s64 = _data_and_scores(x, s, min_n=min_n, what=what)
    kernel = as_kernel(Gaussian() if kernel is None else kernel)
    k, x64, s64, _ = _resolve_kernel(kernel, bandwidth, x64, s64, learn=None, train_fraction=0.0, generator=None,
                                     min_test=min_n, what=what)
    return k, x64, s64


def _shown(bandwidth: Any) -> Any:
    """A bandwidth as a plain value for a test's details (a float, or a tuple for a sum)."""
    if isinstance(bandwidth, (tuple, list)):
        return tuple(_shown(b) for b in bandwidth)
    try:
        return float(bandwidth)
    except (TypeError, ValueError):
        return repr(bandwidth)

"""Plain NumPy KSD test, the way a user would write it, and a side-by-side timing.

``numpy_ksd_test`` builds the (n, n, d) tensor of pairwise differences, evaluates the
Stein kernel term by term, and loops over the Rademacher bootstrap draws one at a time.
``bench_ksd`` times it against :func:`steinkit.gof.ksd.ksd_test` in the same process
(alternating, best of ``repeats`` runs each, same data, same bandwidth) and checks both statistics agree.

Where the time goes (n=1000, d=50, B=1000, float64): steinkit spends ~2/3 in the bootstrap
matrix product (B n^2 / 2 multiply-adds) and the rest building U from two Gram-type products;
the NumPy version spends most of its time on the (n, n, d) temporaries and, when its BLAS is
multi-threaded on a busy machine, on the 1000 separate matrix-vector products. The ratio is
therefore sensitive to load and threading: compare runs with ``OMP_NUM_THREADS=1`` too.

Run from the repository root:

    PYTHONPATH=src python benchmarks/ksd_numpy_reference.py

Example:
    >>> out = bench_ksd(n=200, d=5, n_bootstrap=100, repeats=1)
    >>> sorted(out)[:3]
    ['d', 'ksd_speedup', 'n']
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable

import numpy as np
import torch

from steinkit.gof.kernels import median_bandwidth
from steinkit.gof.ksd import ksd_test

__all__ = ["numpy_ksd_test", "bench_ksd"]


def numpy_ksd_test(x: np.ndarray, s: np.ndarray, bandwidth: float, n_bootstrap: int, seed: int) -> tuple[float, float]:
    """KSD statistic n*V and Rademacher wild-bootstrap p-value (1 + #{boot >= stat}) / (1 + B).

    Example:
        >>> rng = np.random.default_rng(0)
        >>> x = rng.standard_normal((50, 2))
        >>> stat, p = numpy_ksd_test(x, -x, 1.0, 100, seed=0)
        >>> 0 < p <= 1
        True
    """
    n, d = x.shape
    h2 = bandwidth**2
    diff = x[:, None, :] - x[None, :, :]  # (n, n, d): x_i - x_j
    sq = np.sum(diff**2, axis=-1)
    k = np.exp(-sq / (2 * h2))
    grad_y_k = diff / h2 * k[:, :, None]  # grad wrt the second argument
    grad_x_k = -grad_y_k
    term1 = (s @ s.T) * k
    term2 = np.einsum("id,ijd->ij", s, grad_y_k)
    term3 = np.einsum("ijd,jd->ij", grad_x_k, s)
    term4 = (d / h2 - sq / h2**2) * k
    U = term1 + term2 + term3 + term4
    stat = U.sum() / n
    rng = np.random.default_rng(seed)
    boot = np.empty(n_bootstrap)
    for b in range(n_bootstrap):
        w = rng.choice([-1.0, 1.0], size=n)
        boot[b] = w @ U @ w / n
    pvalue = (1 + np.sum(boot >= stat)) / (1 + n_bootstrap)
    return float(stat), float(pvalue)


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def bench_ksd(n: int = 1000, d: int = 50, n_bootstrap: int = 1000, repeats: int = 3, seed: int = 0) -> dict:
    """Time steinkit's ``ksd_test`` against ``numpy_ksd_test`` on the same data.

    The two run alternately ``repeats`` times and each side keeps its best time.

    Data: x ~ N(0.1, I_d), model N(0, I_d) so s = -x (float64). Both use the median-heuristic
    bandwidth computed once beforehand. Raises AssertionError if the statistics differ by more
    than 1e-6 relative.

    Returns:
        {"ksd_speedup", "steinkit_s", "numpy_s", "statistic", "rel_diff", "pvalue_steinkit",
         "pvalue_numpy", "n", "d", "n_bootstrap", "torch_threads"}
    """
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)) + 0.1
    s = -x
    xt, st = torch.from_numpy(x), torch.from_numpy(s)
    h = median_bandwidth(xt)

    def run_steinkit():
        return ksd_test(xt, st, bandwidth=h, n_bootstrap=n_bootstrap, generator=torch.Generator().manual_seed(seed))

    ksd_test(xt[:50], st[:50], bandwidth=h, n_bootstrap=10)  # warm-up
    # interleaved repeats, so a burst of load from elsewhere hits both sides alike
    t_sk = t_np = float("inf")
    for _ in range(repeats):
        dt, res = _timed(run_steinkit)
        t_sk = min(t_sk, dt)
        dt, (stat_np, p_np) = _timed(lambda: numpy_ksd_test(x, s, h, n_bootstrap, seed))
        t_np = min(t_np, dt)
    rel = abs(res.statistic - stat_np) / max(abs(stat_np), 1e-300)
    assert rel < 1e-6, f"statistics disagree: steinkit {res.statistic} vs numpy {stat_np} (rel {rel:.2e})"
    return {
        "ksd_speedup": t_np / t_sk,
        "steinkit_s": t_sk,
        "numpy_s": t_np,
        "statistic": res.statistic,
        "rel_diff": rel,
        "pvalue_steinkit": res.pvalue,
        "pvalue_numpy": p_np,
        "n": n,
        "d": d,
        "n_bootstrap": n_bootstrap,
        "torch_threads": torch.get_num_threads(),
        "omp_num_threads_env": os.environ.get("OMP_NUM_THREADS"),
    }


if __name__ == "__main__":
    for key, value in bench_ksd().items():
        print(f"{key:>16}: {value}")

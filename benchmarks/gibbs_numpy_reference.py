"""Blocked Gibbs sampling for the Gaussian-Bernoulli RBM: steinkit against a plain NumPy loop.

The reference :func:`numpy_gibbs` is written the way a user typically writes it: NumPy float64
arrays, fresh arrays every step, and per-step draws from ``np.random`` (a seeded legacy
``RandomState``, the generator behind ``np.random.randn`` / ``np.random.rand``).
:func:`bench_gibbs` times it against :meth:`steinkit.models.GaussianBernoulliRBM.sample` on the
same RBM in one run. For context it also times the same loop with NumPy's newer
``default_rng`` (PCG64) and steinkit in float64.

Run: ``PYTHONPATH=src python benchmarks/gibbs_numpy_reference.py [--n 1000 --dx 50 --dh 40 --steps 2000]``

Example:
    >>> import numpy as np
    >>> B = np.ones((3, 2)); b = np.zeros(3); c = np.zeros(2)
    >>> numpy_gibbs(B, b, c, n=4, steps=10, seed=0).shape
    (4, 3)
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import numpy as np
import torch

from steinkit.models.rbm import GaussianBernoulliRBM

__all__ = ["numpy_gibbs", "bench_gibbs"]


def numpy_gibbs(B: np.ndarray, b: np.ndarray, c: np.ndarray, n: int, steps: int, seed: int, *, legacy: bool = True) -> np.ndarray:
    """Run ``n`` Gibbs chains of the RBM (B, b, c) for ``steps`` sweeps from N(0, I); return x, (n, dx).

    ``P(h_j = +1 | x) = sigmoid(2 (B^T x / 2 + c)_j)`` and ``x | h ~ N(b + B h / 2, I)``.
    ``legacy=True`` draws with ``np.random.RandomState(seed)`` (``np.random.rand``-style calls),
    ``legacy=False`` with ``np.random.default_rng(seed)``.
    """
    B, b, c = np.asarray(B, float), np.asarray(b, float), np.asarray(c, float)
    dx, dh = B.shape
    if legacy:
        rs = np.random.RandomState(seed)
        rand, randn = rs.rand, rs.randn
    else:
        rng = np.random.default_rng(seed)
        rand = lambda *shape: rng.random(shape)  # noqa: E731
        randn = lambda *shape: rng.standard_normal(shape)  # noqa: E731
    x = randn(n, dx)
    for _ in range(steps):
        a = x @ B / 2 + c
        p = 1.0 / (1.0 + np.exp(-2.0 * a))
        h = np.where(rand(n, dh) < p, 1.0, -1.0)
        x = b + h @ B.T / 2 + randn(n, dx)
    return x


def _best_of(repeats: int, fn: Any) -> float:
    """Smallest wall-clock time of ``repeats`` calls of ``fn`` (robust to a busy machine)."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def bench_gibbs(n: int = 1000, dx: int = 50, dh: int = 40, steps: int = 2000, *, seed: int = 0, repeats: int = 1) -> dict[str, Any]:
    """Time ``steps`` Gibbs sweeps of ``n`` chains on one random (dx, dh) RBM (paper B.1 recipe).

    Returns ``{"gibbs_speedup": numpy_s / steinkit_s, "steinkit_s": ..., "numpy_s": ...}`` plus
    context: the NumPy ``default_rng`` time and its ratio, steinkit in float64, and the thread count.
    steinkit runs in float32 (its default), the NumPy reference in float64 (NumPy's default).
    """
    rbm = GaussianBernoulliRBM.random(dx, dh, generator=torch.Generator().manual_seed(seed))
    B, b, c = (p.detach().double().numpy() for p in (rbm.B, rbm.b, rbm.c))
    rbm64 = GaussianBernoulliRBM(rbm.B.detach().double(), rbm.b.detach().double(), rbm.c.detach().double())

    # Warm up both paths (thread pools, allocator) on a short run.
    rbm.sample(n, burn_in=10, generator=torch.Generator().manual_seed(seed))
    numpy_gibbs(B, b, c, n, 10, seed)

    def run_steinkit(model: GaussianBernoulliRBM) -> None:
        model.sample(n, burn_in=steps, generator=torch.Generator().manual_seed(seed + 1))

    steinkit_s = _best_of(repeats, lambda: run_steinkit(rbm))
    numpy_s = _best_of(repeats, lambda: numpy_gibbs(B, b, c, n, steps, seed + 1))
    numpy_pcg64_s = _best_of(repeats, lambda: numpy_gibbs(B, b, c, n, steps, seed + 1, legacy=False))
    steinkit_f64_s = _best_of(repeats, lambda: run_steinkit(rbm64))
    return {
        "gibbs_speedup": numpy_s / steinkit_s,
        "steinkit_s": steinkit_s,
        "numpy_s": numpy_s,
        "numpy_pcg64_s": numpy_pcg64_s,
        "gibbs_speedup_vs_pcg64": numpy_pcg64_s / steinkit_s,
        "steinkit_float64_s": steinkit_f64_s,
        "n": n,
        "dx": dx,
        "dh": dh,
        "steps": steps,
        "torch_threads": torch.get_num_threads(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--dx", type=int, default=50)
    parser.add_argument("--dh", type=int, default=40)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    result = bench_gibbs(args.n, args.dx, args.dh, args.steps, repeats=args.repeats)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

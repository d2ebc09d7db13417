"""Speed of the goodness-of-fit machinery: three ratios, each measured side by side in one run.

* ``ksd_speedup``: steinkit's KSD test against a plain NumPy KSD test (n = 1000, d = 50,
  1000 wild-bootstrap draws; :func:`ksd_numpy_reference.bench_ksd`). Goal >= 50x.
* ``gibbs_speedup``: the RBM's batched Gibbs sampler against a NumPy loop (n = 1000 chains,
  dx = 50, dh = 40, 2000 sweeps; :func:`gibbs_numpy_reference.bench_gibbs`). Goal >= 10x.
* ``ensemble_speedup``: K = 20 LSD tests (rbm-power problems, dx = 50, σ = 0.02) trained as one
  critic ensemble by :func:`steinkit.gof_tests` against 20 sequential :func:`steinkit.gof_test`
  calls with the same seeds; the p-values must agree within 1e-4. To keep the run short the
  critics train for ``n_iters = 100`` steps instead of the test's 1000 (the cost per step is
  what is compared; both sides do the same steps). Goal >= 1.5x on CPU.

Each side's time is printed; the last line is one JSON object with the three ratios and the
details. ``--quick`` uses smaller sizes (not the goals' sizes).

Run from the repository root:

    PYTHONPATH=src python benchmarks/gof_speed.py [--quick] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling NumPy references

from gibbs_numpy_reference import bench_gibbs  # noqa: E402
from ksd_numpy_reference import bench_ksd  # noqa: E402

from steinkit.problems import derive_seed, rbm_problem  # noqa: E402
from steinkit.gof import gof_test, gof_tests  # noqa: E402

__all__ = ["bench_ensemble", "main"]


def bench_ensemble(
    k: int = 20,
    dx: int = 50,
    dh: int = 40,
    n: int = 1000,
    n_iters: int = 100,
    sigma: float = 0.02,
    burn_in: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """Time ``k`` LSD tests as one ensemble against ``k`` sequential tests (same data, same seeds).

    Raises AssertionError if any p-value differs by more than 1e-4.

    Example:
        >>> out = bench_ensemble(k=2, dx=4, dh=2, n=100, n_iters=10, burn_in=10)
        >>> out["max_pvalue_diff"] <= 1e-4
        True
    """
    models, xs, seeds = [], [], []
    for rep in range(k):
        _, q, x = rbm_problem(dx, dh, rep, sigma, n=n, burn_in=burn_in, seed=seed)
        models.append(q)
        xs.append(x)
        seeds.append(derive_seed(seed, dx, dh, rep, sigma, "test"))
    opts = dict(n_iters=n_iters)
    gof_tests(models[:2], [x[:100] for x in xs[:2]], method="lsd", seeds=seeds[:2], n_iters=2, hidden=8)  # warm-up

    t0 = time.perf_counter()
    sequential = [gof_test(m, x, method="lsd", seed=s, **opts) for m, x, s in zip(models, xs, seeds)]
    sequential_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    together = gof_tests(models, xs, method="lsd", seeds=seeds, **opts)
    ensemble_s = time.perf_counter() - t0

    diff = max(abs(a.pvalue - b.pvalue) for a, b in zip(sequential, together))
    assert diff <= 1e-4, f"ensemble and sequential p-values differ by {diff:.2e}"
    return {
        "ensemble_speedup": sequential_s / ensemble_s,
        "sequential_s": sequential_s,
        "ensemble_s": ensemble_s,
        "max_pvalue_diff": diff,
        "rejections": sum(r.reject for r in together),
        "k": k,
        "dx": dx,
        "dh": dh,
        "n": n,
        "n_iters": n_iters,
        "torch_threads": torch.get_num_threads(),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes (not the goals' sizes)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--k", type=int, default=None, help="LSD tests in the ensemble (default 20; quick 6)")
    parser.add_argument("--n-iters", type=int, default=None, help="critic steps per LSD test (default 100; quick 50)")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    quick = args.quick
    results: dict[str, Any] = {}

    ksd = bench_ksd(n=400 if quick else 1000, d=50, n_bootstrap=300 if quick else 1000, repeats=1 if quick else 3)
    print(f"KSD test  n={ksd['n']} d={ksd['d']} B={ksd['n_bootstrap']}: steinkit {ksd['steinkit_s']:.3f} s, "
          f"NumPy {ksd['numpy_s']:.3f} s -> {ksd['ksd_speedup']:.1f}x", flush=True)
    gibbs = bench_gibbs(n=1000, dx=50, dh=40, steps=300 if quick else 2000)
    print(f"Gibbs     n={gibbs['n']} dx={gibbs['dx']} dh={gibbs['dh']} steps={gibbs['steps']}: steinkit "
          f"{gibbs['steinkit_s']:.3f} s, NumPy {gibbs['numpy_s']:.3f} s -> {gibbs['gibbs_speedup']:.1f}x", flush=True)
    k = args.k or (6 if quick else 20)
    n_iters = args.n_iters or (50 if quick else 100)
    ens = bench_ensemble(k=k, n_iters=n_iters, burn_in=500 if quick else 2000)
    print(f"LSD tests K={ens['k']} n_iters={ens['n_iters']}: sequential {ens['sequential_s']:.2f} s, ensemble "
          f"{ens['ensemble_s']:.2f} s -> {ens['ensemble_speedup']:.2f}x (max |dp| {ens['max_pvalue_diff']:.1e})",
          flush=True)
    results = {
        "ksd_speedup": ksd["ksd_speedup"],
        "gibbs_speedup": gibbs["gibbs_speedup"],
        "ensemble_speedup": ens["ensemble_speedup"],
        "quick": quick,
        "torch_threads": torch.get_num_threads(),
        "ksd": {k_: v for k_, v in ksd.items() if k_ != "ksd_speedup"},
        "gibbs": {k_: v for k_, v in gibbs.items() if k_ != "gibbs_speedup"},
        "ensemble": {k_: v for k_, v in ens.items() if k_ != "ensemble_speedup"},
    }
    print(json.dumps(results))
    return results


if __name__ == "__main__":
    main()

"""Speed of Stein thinning: :func:`steinkit.thin` against the reference package's
``stein_thinning.thinning.thin`` (stein-thinning 0.2.0), side by side in one run.

The draws are MCMC output: 100 random-walk Metropolis chains on a correlated Gaussian in
d = 10 (rejected proposals repeat draws), pooled chain after chain, at n = 10^4 and 10^5;
both sides get the same draws and gradients and select m = 100 points with the same
preconditioner ("med") and the package's default standardisation. For each size the script
prints each side's seconds, the ratio, whether the indices agree, and each side's peak
resident memory above the baseline (sampled every 5 ms); the reference runs under a time limit
(``--limit``) and is reported as timed out beyond it. The last line is one JSON object.

Both sides use the same number of threads (``--threads``, default 1): torch's, and the BLAS
pools NumPy uses (through threadpoolctl).

Run from the repository root:

    PYTHONPATH=src python benchmarks/thinning_speed.py [--threads N] [--limit SECONDS] [--sizes 10000 100000]
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import numpy as np
import torch
from threadpoolctl import threadpool_limits

import steinkit as sk

__all__ = ["mcmc_draws", "main"]


def mcmc_draws(n: int, d: int = 10, chains: int = 100, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n random-walk Metropolis draws (``chains`` chains of n / chains steps, pooled chain after
    chain) of N(mu, Sigma) with a random Sigma, and the gradients of its log density at them.

    Example:
        >>> x, g = mcmc_draws(200, d=3, chains=4)
        >>> x.shape, g.shape, len(np.unique(x, axis=0)) < 200     # rejections repeat draws
        ((200, 3), (200, 3), True)
    """
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(d, d))
    prec = np.linalg.inv(a @ a.T / d + 0.2 * np.eye(d))
    mu = rng.normal(size=d)
    steps = n // chains
    logp = lambda z: -0.5 * np.einsum("ci,ij,cj->c", z - mu, prec, z - mu)  # noqa: E731
    z = mu + rng.normal(size=(chains, d))
    lz = logp(z)
    out = np.empty((chains, steps, d))
    scale = 1.2 / np.sqrt(d)
    for t in range(steps):
        prop = z + scale * rng.normal(size=(chains, d))
        lp = logp(prop)
        accept = np.log(rng.uniform(size=chains)) < lp - lz
        z[accept], lz[accept] = prop[accept], lp[accept]
        out[:, t] = z
    x = out.reshape(chains * steps, d)
    return x, -(x - mu) @ prec


@contextmanager
def peak_rss() -> Iterator[dict[str, float]]:
    """Peak resident memory (MB) above the value at entry, sampled every 5 ms; in ``["mb"]``."""
    page = 4096 / 2**20

    def rss() -> float:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * page

    out = {"mb": 0.0}
    base, stop = rss(), threading.Event()

    def sample() -> None:
        while not stop.is_set():
            out["mb"] = max(out["mb"], rss() - base)
            time.sleep(0.005)

    worker = threading.Thread(target=sample, daemon=True)
    worker.start()
    try:
        yield out
    finally:
        stop.set()
        worker.join()
        out["mb"] = max(out["mb"], rss() - base)


def _timed(fn: Callable[[], Any], limit: float | None = None) -> tuple[Any, float, float]:
    """(result, seconds, peak MB) of fn(); result None if it ran past ``limit`` seconds."""

    def alarm(signum: int, frame: Any) -> None:
        raise TimeoutError

    old = signal.signal(signal.SIGALRM, alarm) if limit else None
    with peak_rss() as mem:
        start = time.perf_counter()
        try:
            if limit:
                signal.setitimer(signal.ITIMER_REAL, limit)
            result = fn()
        except TimeoutError:
            result = None
        finally:
            if limit:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, old)
        seconds = time.perf_counter() - start
    return result, seconds, mem["mb"]


def bench(n: int, d: int = 10, m: int = 100, limit: float = 600.0, preconditioner: str = "med") -> dict[str, Any]:
    """Time both implementations on the same n MCMC draws; check the indices agree."""
    from stein_thinning.thinning import thin as reference_thin

    x, g = mcmc_draws(n, d)
    xt, gt = torch.from_numpy(x), torch.from_numpy(g)
    ours, ours_s, ours_mb = _timed(lambda: sk.thin(xt, None, m, gradients=gt, preconditioner=preconditioner))
    ref, ref_s, ref_mb = _timed(lambda: reference_thin(x, g, m, preconditioner=preconditioner), limit)
    row = {
        "n": n, "d": d, "m": m, "preconditioner": preconditioner,
        "distinct_draws": int(len(np.unique(x, axis=0))),
        "steinkit_s": ours_s, "steinkit_peak_mb": ours_mb,
        "reference_s": ref_s, "reference_peak_mb": ref_mb, "reference_timed_out": ref is None,
        "speedup": None if ref is None else ref_s / ours_s,
        "indices_equal": None if ref is None else ours.tolist() == ref.astype(np.int64).tolist(),
    }
    return row


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="torch and BLAS threads for both sides (default 1)")
    parser.add_argument("--limit", type=float, default=600.0, help="time limit of the reference per size (s)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000], help="numbers of draws n")
    parser.add_argument("--m", type=int, default=100, help="points to select")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    sk.thin(torch.randn(300, 10, dtype=torch.float64), lambda z: -z, 5)  # warm-up
    rows = []
    with threadpool_limits(args.threads):
        for n in args.sizes:
            row = bench(n, m=args.m, limit=args.limit)
            rows.append(row)
            ref = (f"timed out after {row['reference_s']:.0f} s" if row["reference_timed_out"] else
                   f"{row['reference_s']:.2f} s (+{row['reference_peak_mb']:.0f} MB)")
            ratio = "" if row["speedup"] is None else f" -> {row['speedup']:.1f}x, indices equal: {row['indices_equal']}"
            print(f"n={n} d={row['d']} m={row['m']} ({row['distinct_draws']} distinct): steinkit "
                  f"{row['steinkit_s']:.2f} s (+{row['steinkit_peak_mb']:.0f} MB), stein-thinning {ref}{ratio}",
                  flush=True)
    results = {"threads": args.threads, "torch": torch.__version__, "rows": rows}
    print(json.dumps(results))
    return results


if __name__ == "__main__":
    main()

"""Rejection rates on the Figure-5 RBM benchmark from cached data, resumable (issue 12).

The same problems as ``steinkit reproduce rbm-power`` (default dx = 50, dh = 40, n = 1000; repetition r's
data and perturbation direction as ``rbm_problem``), but the Gibbs samples come from the cache of
``benchmarks/rbm_data.py``, so every method and σ reuses them instead of sampling again. ``--n N``
tests the first N of each repetition's cached samples (independent Gibbs chains, so an N-sample;
the sample-size sweep). Each finished (method, σ, n) is appended as a JSON line to OUT and skipped
when the command is rerun; each finished batch of ``--batch`` tests is kept in OUT.batches, so an
interrupted (method, σ, n) resumes from its last finished batch. A second process started with
``--from-end`` on the same OUT works through the batches from the last repetition backwards; both reread
OUT.batches before each batch, so they share a (method, σ, n) and meet in the middle.

Usage: python benchmarks/rbm_sweep.py OUT REPS METHOD[:PROTOCOL]... [--sigmas 0,0.01,...] [--dims 50:40]
       [--n N] [--cache DIR] [--batch 50] [--from-end]
       e.g. ``rbm_sweep.py runs/sweep.jsonl 200 ksdagg ksdagg-inc lsd lsd:paper --cache bench-cache``
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

import steinkit as sk
from rbm_data import SIGMAS, load_problems
from steinkit.problems import derive_seed

KERNEL_OPTIONS = {"ksd": {"n_bootstrap": 1000}, "ksdagg": {"n_bootstrap": 500, "n_correction": 500},
                  "ksdagg-inc": {"n_bootstrap": 500, "n_correction": 500}}  # the papers' B1 = B2 = 500


def rates(method: str, sigma: float, reps: int, cache: str, dx: int = 50, dh: int = 40, batch: int = 50,
          n: int | None = None, batches: Path | None = None, from_end: bool = False) -> dict:
    """Rejection rate at α = .05 (and .01, .10) of ``reps`` tests at σ on the first ``n`` samples
    (default all), with CPU seconds per test. Batches already in ``batches`` (a JSON-lines file, reread
    before each batch) are reused, and each new one is appended to it; ``from_end`` takes the batches
    last repetition first."""
    name, _, protocol = method.partition(":")
    models, xs = load_problems(cache, dx, dh, reps, sigma)
    if n is not None:
        if n > xs.shape[1]:
            raise ValueError(f"n = {n} but the cache holds {xs.shape[1]} samples per repetition")
        xs = xs[:, :n]
    options = {"protocol": protocol} if protocol else dict(KERNEL_OPTIONS.get(name, {}))
    key = {"method": method, "dx": dx, "dh": dh, "sigma": sigma, "n": xs.shape[1]}
    blocks = [range(i, min(i + batch, reps)) for i in range(0, reps, batch)]
    kept: dict = {}
    for block in reversed(blocks) if from_end else blocks:
        kept.update(_kept_batches(batches, key))
        if (block.start, block.stop) not in kept:
            start = time.process_time()
            res = sk.gof_tests([models[r] for r in block], [xs[r] for r in block], method=name,
                               seeds=[derive_seed(0, dx, dh, r, sigma, "test") for r in block], **options)
            kept[block.start, block.stop] = {**key, "first": block.start, "stop": block.stop,
                                             "pvalues": [r.pvalue for r in res], "cpu": time.process_time() - start}
            if batches is not None:
                with batches.open("a") as f:
                    f.write(json.dumps(kept[block.start, block.stop]) + "\n")
    pvalues = [p for block in blocks for p in kept[block.start, block.stop]["pvalues"]]
    cpu = sum(kept[block.start, block.stop]["cpu"] for block in blocks)
    rate = sum(p <= 0.05 for p in pvalues) / reps
    return {"method": method, "dx": dx, "dh": dh, "sigma": sigma, "n": xs.shape[1], "reps": reps, "reject_05": rate,
            "stderr": math.sqrt(rate * (1 - rate) / reps), "reject_01": sum(p <= 0.01 for p in pvalues) / reps,
            "reject_10": sum(p <= 0.10 for p in pvalues) / reps,
            "cpu_seconds_per_test": cpu / reps, "threads": torch.get_num_threads()}


def _kept_batches(batches: Path | None, key: dict) -> dict:
    """Finished batches of ``key``'s tests in the JSON-lines file ``batches``, by (first, stop) repetition.
    Only newline-terminated lines count: a line another process is still writing is read next time."""
    if batches is None or not batches.exists():
        return {}
    lines = batches.read_text().split("\n")[:-1]
    rows = (json.loads(line) for line in lines if line)
    return {(r["first"], r["stop"]): r for r in rows if all(r[k] == v for k, v in key.items())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("reps", type=int)
    ap.add_argument("methods", nargs="+")
    ap.add_argument("--sigmas", default=",".join(map(str, SIGMAS)))
    ap.add_argument("--dims", default="50:40", help="dx:dh of the RBM")
    ap.add_argument("--n", type=int, default=None, help="test the first N cached samples (default: all)")
    ap.add_argument("--cache", default="bench-cache")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=50, help="tests per ensemble, and per kept batch")
    ap.add_argument("--from-end", action="store_true", help="take the batches last repetition first, to share "
                    "a sweep with a process that takes them in order")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    dx, dh = map(int, args.dims.split(":"))
    rows = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
    done = {(r["method"], r.get("dx", 50), r["sigma"], r.get("n", 1000), r["reps"]) for r in rows}
    for method in args.methods:
        for sigma in map(float, args.sigmas.split(",")):
            if (method, dx, sigma, args.n or 1000, args.reps) in done:
                continue
            row = rates(method, sigma, args.reps, args.cache, dx, dh, args.batch, args.n,
                        out.with_name(out.name + ".batches"), args.from_end)
            with out.open("a") as f:
                f.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()

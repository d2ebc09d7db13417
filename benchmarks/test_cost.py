"""Cost and power of the default learned Stein test against Algorithm 2, side by side (issue 12).

On the Figure-5 RBM problems (dx = 50, dh = 40, n = 1000) the same repetitions are tested at
σ = .02 by ``gof_tests(method="lsd", protocol="paper")`` (Algorithm 2: 2×300 critic, 1000
steps, test on 10%) and by the default protocol (:data:`steinkit.gof.lsd.DEFAULT_PROTOCOL`),
and at σ = 0 by the default; ``--also P ...`` adds other protocols beside them (power and CPU
seconds at σ = .02, size at σ = 0).
Each protocol's tests train as one ensemble in this process, one after the other; CPU seconds
(``time.process_time``) are divided by the number of tests. Run it alone: other work on the
same cores inflates CPU time unevenly.

Usage: python benchmarks/test_cost.py [REPS=40] [--cache DIR] [--also features sequential]
       (prints a JSON line last)
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch

import steinkit as sk
from rbm_data import load_problems, sample_chunk
from steinkit.gof.lsd import DEFAULT_PROTOCOL


def run(reps: int, sigma: float, protocol: str, cache: str) -> tuple[float, float]:
    """(rejection rate at .05, CPU seconds per test) of ``reps`` tests at σ."""
    models, xs = load_problems(cache, 50, 40, reps, sigma)
    start = time.process_time()
    res = sk.gof_tests(models, list(xs), method="lsd", protocol=protocol, seeds=[7000 + r for r in range(reps)])
    seconds = (time.process_time() - start) / reps
    return sum(r.reject for r in res) / reps, seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("reps", nargs="?", type=int, default=40)
    ap.add_argument("--cache", default="bench-cache")
    ap.add_argument("--also", nargs="*", default=[], help="other protocols to measure beside the default")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: CPU time is not inflated by spinning)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if not list(Path(args.cache).glob("rbm50_0_*.pt")):
        Path(args.cache).mkdir(parents=True, exist_ok=True)
        torch.save(sample_chunk(50, 40, 0, args.reps), Path(args.cache) / f"rbm50_0_{args.reps}.pt")
    power_default, cpu_default = run(args.reps, 0.02, DEFAULT_PROTOCOL, args.cache)
    size_default, _ = run(args.reps, 0.0, DEFAULT_PROTOCOL, args.cache)
    also = {}
    for protocol in args.also:
        power, cpu = run(args.reps, 0.02, protocol, args.cache)
        also[protocol] = {"power": power, "size": run(args.reps, 0.0, protocol, args.cache)[0], "cpu_seconds": cpu}
    power_paper, cpu_paper = run(args.reps, 0.02, "paper", args.cache)
    se = lambda p: math.sqrt(max(p * (1 - p), 1e-12) / args.reps)  # noqa: E731
    print(f"σ = .02, {args.reps} repetitions: paper {power_paper:.3f} ± {se(power_paper):.3f} at {cpu_paper:.2f} "
          f"CPU s/test; default {power_default:.3f} ± {se(power_default):.3f} at {cpu_default:.2f} CPU s/test; "
          f"default size at σ = 0: {size_default:.3f}")
    print(json.dumps({"reps": args.reps, "default_protocol": DEFAULT_PROTOCOL, "cost_ratio": cpu_paper / cpu_default,
                      "power_paper": power_paper,
                      "power_default": power_default, "size_default": size_default,
                      "cpu_seconds_paper": cpu_paper, "cpu_seconds_default": cpu_default,
                      "also": {p: {**v, "cost_ratio": cpu_paper / v["cpu_seconds"]} for p, v in also.items()},
                      "threads": torch.get_num_threads()}))


if __name__ == "__main__":
    main()

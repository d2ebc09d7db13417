"""Time and peak memory of one kernel Stein test at a given n (issue 26: tests that never die of memory).

The data are n draws of N(0, 1.02² I_d) tested against the model N(0, I_d) through
``steinkit.gof_test(method=...)``. The script prints one JSON line: the method, n, d, the wall
seconds of the test and its CPU seconds (``time.process_time``: with one thread, about the wall
time on an idle core), its outcome (p-value, or the one-line error it raised) and the peak
resident memory of this process (``resource.getrusage``, so run one test per process).
Options that are not the method's own (``--option name=json``) are passed through.

Usage (from the repository root; one thread, as the design notes' timings):

    PYTHONPATH=src python benchmarks/kernel_scale.py ksd 20000 --d 20
    PYTHONPATH=src python benchmarks/kernel_scale.py ksdagg 5000 --d 20 --option max_seconds=null
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import torch

import steinkit as sk

__all__ = ["main"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("method")
    ap.add_argument("n", type=float)
    ap.add_argument("--d", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--option", action="append", default=[], metavar="NAME=JSON")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    n = int(args.n)
    options = {}
    for text in args.option:
        key, value = text.split("=", 1)
        options[key] = json.loads(value)
    x = 1.02 * torch.randn(n, args.d, generator=torch.Generator().manual_seed(0))
    model = sk.models.Gaussian(torch.zeros(args.d), torch.eye(args.d))
    start, cpu = time.perf_counter(), time.process_time()
    try:
        res = sk.gof_test(model, x, method=args.method, seed=0, **options)
        outcome = {"pvalue": res.pvalue, "statistic": res.statistic}
    except Exception as exc:  # report what a user would see, in one line
        outcome = {"error": f"{type(exc).__name__}: {' '.join(str(exc).split())}"[:400]}
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
    print(json.dumps({"method": args.method, "n": n, "d": args.d, "threads": args.threads,
                      "seconds": round(seconds, 2), "cpu_seconds": round(cpu, 2), "peak_rss_gb": round(peak_gb, 2),
                      **outcome}))


if __name__ == "__main__":
    main()

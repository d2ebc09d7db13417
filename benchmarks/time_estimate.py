"""Predicted against actual seconds of the learned test and estimate (issue 26 item 4: within 30%).

For each case (what: test, the LSD test; witnesses, the default witness-family test; estimate;
and n, d, scale) the data are n draws of N(0, scale² I_d) against the model
N(0, I_d); the script predicts the call's seconds with :mod:`steinkit.fit_time` (as the CLI does
before it starts), runs the call, and prints one JSON line: predicted, actual, their ratio, and
for an estimate the steps its early stopping actually took (``fit_time.expected_steps`` predicts them).
A final line summarises the ratios. One thread; on a shared machine the ratio is what matters
(prediction and run see the same contention, but it changes while they run).

Usage (from the repository root):

    PYTHONPATH=src python benchmarks/time_estimate.py                      # the default cases
    PYTHONPATH=src python benchmarks/time_estimate.py --case estimate,5000,20,1.02
"""

from __future__ import annotations

import argparse
import json
import time

import torch

import steinkit as sk
from steinkit.fit_time import estimate_seconds, lsd_test_seconds, witness_test_seconds
from steinkit.scores import as_score

__all__ = ["main", "DEFAULT_CASES"]

DEFAULT_CASES = (
    ("test", 1000, 20, 1.02), ("test", 20000, 20, 1.02), ("test", 100000, 20, 1.02), ("test", 5000, 50, 1.02),
    ("witnesses", 1000, 20, 1.02), ("witnesses", 20000, 20, 1.02), ("witnesses", 100000, 20, 1.02),
    ("witnesses", 5000, 50, 1.02),
    ("estimate", 1000, 5, 1.02), ("estimate", 5000, 20, 1.02), ("estimate", 5000, 20, 1.2),
    ("estimate", 20000, 20, 1.02), ("estimate", 50000, 20, 1.02),
)


def run_case(what: str, n: int, d: int, scale: float) -> dict:
    x = scale * torch.randn(n, d, generator=torch.Generator().manual_seed(0))
    model = sk.models.Gaussian(torch.zeros(d), torch.eye(d))
    problems = [(as_score(model), x, 0)]
    start = time.perf_counter()
    predicted = {"test": lambda: lsd_test_seconds(problems), "witnesses": lambda: witness_test_seconds(problems),
                 "estimate": lambda: estimate_seconds(problems)}[what]()
    predict_seconds = time.perf_counter() - start
    start = time.perf_counter()
    row = {"what": what, "n": n, "d": d, "scale": scale}
    if what in ("test", "witnesses"):
        res = sk.gof_test(model, x, "lsd" if what == "test" else "witnesses")
        row["pvalue"] = res.pvalue
    else:
        est = sk.stein_discrepancy(model, x)
        row.update(value=est.value, steps=len(est.history) * sk.ESTIMATE.val_every, best=est.best_iteration)
    actual = time.perf_counter() - start
    return {**row, "predicted": round(predicted, 2), "actual": round(actual, 2),
            "ratio": round(predicted / actual, 3), "predict_seconds": round(predict_seconds, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", action="append", default=[], metavar="WHAT,N,D,SCALE")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cases = [(w, int(float(n)), int(d), float(s)) for w, n, d, s in (c.split(",") for c in args.case)] \
        or DEFAULT_CASES
    ratios = []
    for case in cases:
        row = run_case(*case)
        ratios.append(row["ratio"])
        print(json.dumps(row), flush=True)
    print(json.dumps({"summary": "predicted/actual", "ratios": ratios, "min": min(ratios), "max": max(ratios),
                      "within_30_percent": sum(0.7 <= r <= 1.3 for r in ratios), "cases": len(ratios)}))


if __name__ == "__main__":
    main()

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
    PYTHONPATH=src python benchmarks/time_estimate.py --steps      # the early-stopping calibration

``--steps`` runs the default estimate on four tuning families of the estimate panel at d = 2-50,
n = 500-8000 and fits the validations each took beyond ``patience`` (its ensemble's last) against
the training rows and d: the fit behind ``fit_time.BEST_RATE``. It prints one line per run and the fit.
"""

from __future__ import annotations

import argparse
import json
import math
import time

import torch

import steinkit as sk
from steinkit.fit_time import BEST_RATE, estimate_seconds, expected_steps, lsd_test_seconds, witness_test_seconds
from steinkit.problems import FAMILIES
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
        row.update(value=est.value, steps=len(est.history) * sk.ESTIMATE.val_every, best=est.best_iteration,
                   predicted_steps=expected_steps(sk.ESTIMATE, _train_rows(n), d))
    actual = time.perf_counter() - start
    return {**row, "predicted": round(predicted, 2), "actual": round(actual, 2),
            "ratio": round(predicted / actual, 3), "predict_seconds": round(predict_seconds, 2)}


STEP_FAMILIES = (("gaussian-scale", {"factor": 2.0}), ("laplace", {}), ("student-t", {"nu": 5.0}),
                 ("gaussian-mean", {"shift": 1.0}))


def _train_rows(n: int) -> int:
    """The training rows of each fold of the default estimate (``fit_time.estimate_seconds``'s count)."""
    rest = n - n // sk.ESTIMATE.folds
    split = sk.ESTIMATE.split
    return rest - max(2, round(rest * split[1] / (split[0] + split[1])))


def step_rows(dims: tuple[int, ...] = (2, 5, 20, 50), ns: tuple[int, ...] = (500, 2000, 8000)) -> list[dict]:
    """The steps the default estimate takes on each family, d and n (data seed 5, estimate seed 1)."""
    rows = []
    for n in ns:
        for d in dims:
            for family, params in STEP_FAMILIES:
                prob = FAMILIES[family](d, **params)
                est = sk.stein_discrepancy(prob.model, prob.sample(n, seed=5), seed=1)
                steps = len(est.history) * sk.ESTIMATE.val_every
                rows.append({"family": family, "d": d, "n": n, "steps": steps,
                             "predicted": expected_steps(sk.ESTIMATE, _train_rows(n), d)})
                print(json.dumps(rows[-1]), flush=True)
    return rows


def fit_rate(rows: list[dict]) -> dict:
    """Least squares of log V (V: validations beyond patience, at least 1) on log n_train and log d,
    and the rate c of V = c·√n_train/d; the ratios predicted/actual steps with the current BEST_RATE."""
    v = torch.tensor([max(1.0, r["steps"] / sk.ESTIMATE.val_every - sk.ESTIMATE.patience) for r in rows],
                     dtype=torch.float64).log()
    n = torch.tensor([_train_rows(r["n"]) for r in rows], dtype=torch.float64).log()
    d = torch.tensor([r["d"] for r in rows], dtype=torch.float64).log()
    coef = torch.linalg.lstsq(torch.stack([torch.ones_like(v), n, d], 1), v.unsqueeze(1)).solution.squeeze(1)
    ratios = [r["predicted"] / r["steps"] for r in rows]
    return {"log V": {"constant": round(float(coef[0]), 3), "log n_train": round(float(coef[1]), 3),
                      "log d": round(float(coef[2]), 3)},
            "rate with exponents 1/2, -1": round(math.exp(float((v - n / 2 + d).mean())), 3), "BEST_RATE": BEST_RATE,
            "steps predicted/actual, geometric mean": round(math.exp(sum(map(math.log, ratios)) / len(ratios)), 3),
            "within 30%": sum(0.7 <= r <= 1.3 for r in ratios), "within 2x": sum(0.5 <= r <= 2 for r in ratios),
            "runs": len(rows)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", action="append", default=[], metavar="WHAT,N,D,SCALE")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", action="store_true", help="fit the early-stopping rate instead (see the module)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.steps:
        print(json.dumps(fit_rate(step_rows())))
        return
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

"""Is a two-fold cross-fitted LSD test valid if its folds are pooled as independent? (issue 12)

Under H0 (data and model both N(0, I_d)) each fold trains a critic on its half (Algorithm 2's
power objective and selection, on 80/20 of the half) and tests the other half with the exact
trace, giving t_A and t_B, each N(0, 1) given its critic. Pooling them as independent,
z = (t_A + t_B)/√2, is only valid if they are uncorrelated; this measures their correlation
and the rejection rates of z and of t_A alone at α = .05.

Usage: python benchmarks/crossfit_null.py D N REPS [HIDDEN]   (prints a JSON line last)
"""

from __future__ import annotations

import json
import math
import statistics
import sys

import torch

import steinkit as sk
from steinkit.critics import MLPCritic
from steinkit.fit import fit_critic
from steinkit.stein import stein_terms


def fold_statistic(train: torch.Tensor, test: torch.Tensor, settings: sk.CriticSettings, seed: int) -> float:
    """√n·mean/std of the test half's exact Stein terms, critic fitted and selected on the train half."""
    m = int(0.8 * train.shape[0])
    critic = MLPCritic(train.shape[1], settings.hidden, settings.n_layers, settings.dropout,
                       generator=torch.Generator().manual_seed(seed))
    fit = fit_critic(critic, train[:m], -train[:m], train[m:], -train[m:], settings,
                     generator=torch.Generator().manual_seed(seed + 7))
    with torch.no_grad():
        terms, _ = stein_terms(fit.critic, test, -test, trace="exact")
    terms = terms.double()
    return math.sqrt(len(terms)) * float(terms.mean()) / float(terms.std())


def main(d: int, n: int, reps: int, hidden: int = 32) -> dict:
    torch.set_num_threads(1)
    settings = sk.TEST.replace(n_iters=200, hidden=hidden, val_every=50)
    t_a, t_b = [], []
    for rep in range(reps):
        x = torch.randn(n, d, generator=torch.Generator().manual_seed(rep))
        half_a, half_b = x[: n // 2], x[n // 2 :]
        t_a.append(fold_statistic(half_a, half_b, settings, 1000 * rep))
        t_b.append(fold_statistic(half_b, half_a, settings, 1000 * rep + 1))
    pooled = [(a + b) / math.sqrt(2) for a, b in zip(t_a, t_b)]
    z = 1.6448536269514722
    return {"d": d, "n": n, "reps": reps, "hidden": hidden,
            "corr_t_a_t_b": statistics.correlation(t_a, t_b), "var_pooled": statistics.variance(pooled),
            "size_pooled": sum(v > z for v in pooled) / reps, "size_one_fold": sum(v > z for v in t_a) / reps}


if __name__ == "__main__":
    args = [int(a) for a in sys.argv[1:]]
    print(json.dumps(main(*args)))

"""Figure 10 (Appendix A): variance-aware model selection of the critic.

Data from N(0, I_10), model q = N(1, I_10), only 100 training examples: the critic over-fits,
its training LSD passes the true Stein discrepancy E‖s_q − s_p‖²/(2λ) = 10/(2λ), and the
validation spread grows. Selecting by mean − std picks a critic whose LSD on a large fresh
sample is close to the truth; selecting by the mean alone is also reported.

Example:
    steinkit reproduce model-selection --out runs/fig10
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import torch

from ..critics import MLPCritic
from ..fit import fit_critic
from ..stein import stein_terms
from ._common import prepare_out, pyplot, write_json

NAME = "model-selection"
DESCRIPTION = "Figure 10: train/val LSD mean ± std over training and the mean − std selection"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--n-train", type=int, default=100)
    parser.add_argument("--n-val", type=int, default=100)
    parser.add_argument("--iters", type=int, default=3000, help="quick: 1000")
    parser.add_argument("--lam", type=float, default=0.5)
    parser.add_argument("--n-fresh", type=int, default=20000, help="fresh samples for each critic's true LSD")
    parser.add_argument("--seed", type=int, default=0)


def run(
    out: str | Path,
    *,
    quick: bool = False,
    n_train: int = 100,
    n_val: int = 100,
    iters: int | None = None,
    lam: float = 0.5,
    n_fresh: int = 20000,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """Fit the critic, record the curves, write results.json and figure10.png."""
    out = prepare_out(out)
    iters = iters or (1000 if quick else 3000)
    start = time.perf_counter()
    dim = 10
    g = torch.Generator().manual_seed(seed)
    x_train, x_val, x_fresh = (torch.randn(n, dim, generator=g) for n in (n_train, n_val, n_fresh))
    score = lambda x: -(x - 1.0)  # noqa: E731  model N(1, I)
    truth = dim / (2 * lam)
    fresh_lsd: dict[int, float] = {}

    def record(iteration: int, critic: MLPCritic) -> None:
        terms, _ = stein_terms(critic, x_fresh, score(x_fresh), trace="exact")
        fresh_lsd[iteration] = float(terms.mean())

    fit = fit_critic(
        MLPCritic(dim, 300, generator=g),
        x_train,
        score(x_train),
        x_val,
        score(x_val),
        lam=lam,
        n_iters=iters,
        val_every=max(1, iters // 60),
        selection="mean-std",
        generator=g,
        progress=progress,
        desc=NAME,
        callback=record,
    )
    history = [dict(h, fresh_lsd=fresh_lsd[h["iteration"]]) for h in fit.history]
    by_mean = max(history, key=lambda h: h["val_mean"])
    by_mean_std = next(h for h in history if h["iteration"] == fit.best_iteration)
    results = {
        "experiment": NAME,
        "settings": {
            "dim": dim, "n_train": n_train, "n_val": n_val, "n_fresh": n_fresh,
            "iterations": iters, "lam": lam, "seed": seed,
        },
        "true_lsd": truth,
        "selected_by_mean_minus_std": {"iteration": by_mean_std["iteration"], "fresh_lsd": by_mean_std["fresh_lsd"]},
        "selected_by_mean": {"iteration": by_mean["iteration"], "fresh_lsd": by_mean["fresh_lsd"]},
        "final": {"iteration": history[-1]["iteration"], "fresh_lsd": history[-1]["fresh_lsd"]},
        "max_train_mean": max(h["train_mean"] for h in history),
        "history": history,
        "seconds": time.perf_counter() - start,
    }
    write_json(out / "results.json", results)
    _plot(out / "figure10.png", history, truth, fit.best_iteration)
    return results


def _plot(path: Path, history: list[dict[str, Any]], truth: float, best: int) -> None:
    plt = pyplot()
    its = [h["iteration"] for h in history]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
    for ax, split in zip(axes, ["train", "val"]):
        mean = torch.tensor([h[f"{split}_mean"] for h in history])
        std = torch.tensor([h[f"{split}_std"] for h in history])
        ax.plot(its, mean, label="mean")
        ax.fill_between(its, mean - std, mean + std, alpha=0.25, label="± std")
        ax.plot(its, mean - std, ls=":", label="mean − std")
        ax.axhline(truth, color="k", ls="--", label="true LSD")
        ax.axvline(best, color="r", lw=0.8, label="selected (mean − std)")
        ax.set_title(f"{split} data")
        ax.set_yscale("symlog", linthresh=truth)
        ax.set_xlabel("critic iteration")
    axes[0].plot(its, [h["fresh_lsd"] for h in history], color="g", label="LSD on fresh data")
    axes[0].set_ylabel("LSD")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)

"""Figure 10 (Appendix A): variance-aware model selection of the critic.

Data from N(0, I_10), model q = N(1, I_10), only ``n_train`` training examples: the critic
over-fits, its training LSD passes the true Stein discrepancy E‖s_q − s_p‖²/(2λ) = 10/(2λ), and
the validation spread grows. Each validated critic's LSD is also measured on ``n_fresh`` fresh
samples; the report compares the critic selected by mean − std with the one selected by the
mean alone. One trial of the sweep engine.

Example:
    steinkit reproduce model-selection --out runs/fig10 --quick
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import torch

from ..critics import MLPCritic
from ..fit import fit_critic
from ..stein import stein_terms
from .._io import save_figure
from .report import markdown_table, pyplot
from .reproduction import Reproduction
from .runner import sweep
from .settings import ReproductionSettings, RunOptions, setting, trial_device

__all__ = ["REPRODUCTION", "Settings", "FULL", "QUICK", "run", "run_trial"]

_DIM = 10


@dataclasses.dataclass(frozen=True)
class Settings(ReproductionSettings):
    """Settings of the Figure-10 reproduction."""

    n_train: int = setting(100, "training examples", minimum=2)
    n_val: int = setting(100, "validation examples", minimum=2)
    iters: int = setting(3000, "critic steps", minimum=1)
    lam: float = setting(0.5, "L2 weight λ of the critic", minimum=1e-12)
    n_fresh: int = setting(20000, "fresh samples for each critic's true LSD", minimum=2)


FULL = Settings()
QUICK = Settings(iters=1000)


def run_trial(config: dict[str, Any]) -> dict[str, Any]:
    """Fit the critic with mean − std selection; return its history with each critic's fresh LSD."""
    s = Settings(**{k: v for k, v in config.items() if k != "device"})
    device = trial_device(config)
    g = torch.Generator().manual_seed(s.seed)  # data and initial critic: the same on every device
    x_train, x_val, x_fresh = (torch.randn(n, _DIM, generator=g).to(device) for n in (s.n_train, s.n_val, s.n_fresh))
    score = lambda x: -(x - 1.0)  # noqa: E731  model N(1, I)
    fresh_lsd: dict[int, float] = {}

    def record(iteration: int, critic: MLPCritic) -> None:
        terms, _ = stein_terms(critic, x_fresh, score(x_fresh), trace="exact")
        fresh_lsd[iteration] = float(terms.mean())

    critic = MLPCritic(_DIM, 300, generator=g)
    draws = g if device.type == "cpu" else torch.Generator(device=device).manual_seed(s.seed)
    fit = fit_critic(critic, x_train, score(x_train), x_val, score(x_val), lam=s.lam, n_iters=s.iters,
                     val_every=max(1, s.iters // 60), selection="mean-std", generator=draws, callback=record,
                     device=device)
    return {"history": [dict(h, fresh_lsd=fresh_lsd[h["iteration"]]) for h in fit.history],
            "best_iteration": fit.best_iteration}


def run(settings: Settings, out: str | Path, options: RunOptions = RunOptions()) -> dict[str, Any]:
    """Fit the critic (one trial of the sweep engine); write the report and figure10.png."""
    out, start = Path(out), time.perf_counter()
    (result,) = sweep(run_trial, options.with_device([settings.to_dict()]), out, options)
    history, truth = result["history"], _DIM / (2 * settings.lam)
    pick = lambda h: {"iteration": h["iteration"], "fresh_lsd": h["fresh_lsd"]}  # noqa: E731
    chosen = {
        "selected_by_mean_minus_std": pick(next(h for h in history if h["iteration"] == result["best_iteration"])),
        "selected_by_mean": pick(max(history, key=lambda h: h["val_mean"])),
        "final": pick(history[-1]),
    }
    numbers = {"dim": _DIM, "true_lsd": truth, **chosen, "max_train_mean": max(h["train_mean"] for h in history),
               "history": history}
    best, by_mean = chosen["selected_by_mean_minus_std"]["fresh_lsd"], chosen["selected_by_mean"]["fresh_lsd"]
    ok = numbers["max_train_mean"] > truth and abs(best - truth) <= min(0.25 * truth, abs(by_mean - truth))
    verdict = (f"{'replicates' if ok else 'does not replicate'}: the training LSD reaches "
               f"{numbers['max_train_mean']:.4g} (truth {truth:g}); mean − std selects a critic with fresh LSD "
               f"{best:.4g}, selection by the mean one with {by_mean:.4g}")
    table = markdown_table(["critic", "iteration", "LSD on fresh data", "true LSD"],
                           [[k.replace("_", " "), v["iteration"], v["fresh_lsd"], truth] for k, v in chosen.items()])
    return REPRODUCTION.write_report(
        out, settings, seconds=time.perf_counter() - start, verdict=verdict, numbers=numbers,
        tables=[("Selected critics", table)],
        figures=[_plot(out / "figure10.png", history, truth, result["best_iteration"])],
    )


REPRODUCTION = Reproduction(
    name="model-selection",
    description="Figure 10: train/val LSD mean ± std over training and the mean − std selection",
    paper_claim=("Figure 10: with 100 training examples the critic over-fits (its training LSD passes the true "
                 "Stein discrepancy) and the validation variance grows; variance-aware selection picks the best "
                 "critic."),
    verdict_rule=("replicates when the training LSD passes the true value and the critic selected by mean − std "
                  "has a fresh LSD within 25% of the truth and no farther from it than the critic selected by "
                  "the mean"),
    full=FULL,
    quick=QUICK,
    run=run,
)


def _plot(path: Path, history: list[dict[str, Any]], truth: float, best: int) -> Path:
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
    save_figure(fig, path)
    return path

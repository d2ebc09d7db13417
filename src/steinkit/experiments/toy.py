r"""Figure 4: deep EBMs on 2-D toy densities trained with LSD (App. B.4).

For every set of :data:`~steinkit.data.toy.TOY_DATASETS`: an MLP energy (2 hidden layers of 300
Swish units) times a learned diagonal Gaussian base (Eq. 15; it starts at the data's mean and
standard deviation), trained by LSD (Algorithm 3) against a 2x300 Swish critic, 5 critic updates
per model update, Adam lr 1e-3 with betas (.5, .9) for both, λ = 10 (the default of the authors'
toy script; the paper does not state it), mini-batches of 100; ``steps`` counts model updates.
The learned density is normalized on a square grid (the mass outside it is ignored); its
held-out log-likelihood per example is reported beside a full-covariance Gaussian fit's. The
figure shows, per set, a histogram of the data above the learned density and log-density.

Beyond the paper (why: ``docs/archive/toy.md``), the energy's learning rate decays on a cosine
(``--lr-decay constant`` is the paper's), and each set is trained for every first-layer gain
(:class:`~steinkit.models.MLPEnergy`'s ``first_layer_gain``) and every length in ``steps``,
keeping the run with the best validation log-likelihood. Each such run is one trial of the sweep
engine; its log-density on the grid (``log_density.pt``) and training history
(``history.json``) lie in the trial's folder.

Example:
    steinkit reproduce toy --out runs/toy --quick
    steinkit reproduce toy --out runs/toy --datasets rings moons --steps 2000 --first-layer-gains 3
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor

from ..critics import MLPCritic
from ..data.toy import TOY_DATASETS, sample_toy
from ..models import Gaussian, MLPEnergy
from ..train import train
from .report import markdown_table, pyplot, write_json
from .reproduction import Reproduction
from .runner import sweep, trial_folder
from .settings import ReproductionSettings, RunOptions, field_names, setting, trial_device

__all__ = ["REPRODUCTION", "Settings", "FULL", "QUICK", "run", "run_trial", "trial_configs", "grid_log_density"]


@dataclasses.dataclass(frozen=True)
class Sweep(ReproductionSettings):
    """What the trials vary: the set, the training length, the first-layer gain and the seed."""

    datasets: tuple[Literal[TOY_DATASETS], ...] = setting(TOY_DATASETS, "toy sets")
    steps: tuple[int, ...] = setting((2_000, 10_000), "training lengths in model updates", minimum=1)
    first_layer_gains: tuple[float, ...] = setting(
        (1.0, 3.0), "factors on the energy's first-layer initialisation", minimum=1e-12)
    seeds: int = setting(1, "number of seeds: seed, seed + 1, ...", minimum=1)


@dataclasses.dataclass(frozen=True)
class Training:
    """What every trial trains and scores with; a trial's config holds these settings and its own
    set, first-layer gain, length and seed."""

    batch_size: int = setting(100, "mini-batch size", minimum=1)
    critic_steps: int = setting(5, "critic updates per model update", minimum=1)
    lam: float = setting(10.0, "L2 weight λ of the critic", minimum=1e-12)
    lr: float = setting(1e-3, "Adam learning rate of energy and critic", minimum=1e-12)
    lr_decay: Literal["constant", "cosine"] = setting("cosine", "the energy's learning-rate schedule")
    hidden: int = setting(300, "hidden units per layer of energy and critic", minimum=1)
    n_train: int = setting(50_000, "training points", minimum=1)
    n_val: int = setting(10_000, "validation points (pick gain and steps)", minimum=1)
    n_test: int = setting(10_000, "test points", minimum=1)
    box: float = setting(5.0, "half-width of the square that normalizes the density", minimum=1e-12)
    grid: int = setting(300, "grid points per axis of that square", minimum=2)


@dataclasses.dataclass(frozen=True)
class Settings(Training, Sweep):
    """Settings of the Figure-4 reproduction: every set is trained for each (gain, steps) pair. The
    sweep's settings come first, then the trials' (a dataclass takes its bases' fields from the last
    base to the first)."""


FULL = Settings()
#: Only the 2000-step runs (10,000 critic + 2,000 model updates, about the 10,000 alternating
#: iterations of the authors' script); its trials are the full preset's 2000-step trials.
QUICK = Settings(steps=(2_000,))

_TRAINING = field_names(Training)


def trial_configs(s: Settings) -> list[dict[str, Any]]:
    """One config per (seed, set, gain, steps), longest first (for a balanced pool).

    Example:
        >>> len(trial_configs(FULL)), trial_configs(QUICK)[0] in trial_configs(FULL)
        (32, True)
    """
    shared = {k: getattr(s, k) for k in _TRAINING}
    configs = [{**shared, "dataset": name, "first_layer_gain": gain, "steps": steps, "seed": seed}
               for seed in range(s.seed, s.seed + s.seeds) for name in dict.fromkeys(s.datasets)
               for gain, steps in _pairs(s)]
    return sorted(configs, key=lambda c: -c["steps"])


def _pairs(s: Settings) -> list[tuple[float, int]]:
    """The distinct (first-layer gain, steps) pairs every set is trained with."""
    return list(dict.fromkeys((float(g), t) for g in s.first_layer_gains for t in s.steps))


def grid_log_density(model: MLPEnergy, box: float, n: int) -> tuple[Tensor, Tensor, float]:
    """Unnormalized log-density on an n x n grid over [-box, box]^2 and its log-normalizer.

    Returns (grid points (n*n, 2), log q̃ at them (n*n,), log Z) with log Z the Riemann sum
    log Σ q̃ · cell area.

    Example:
        >>> m = MLPEnergy(2, hidden=4)
        >>> pts, lq, log_z = grid_log_density(m, 4.0, 50)
        >>> pts.shape, lq.shape
        (torch.Size([2500, 2]), torch.Size([2500]))
    """
    dtype = model.mu.dtype
    ticks = torch.linspace(-box, box, n, dtype=dtype)
    yy, xx = torch.meshgrid(ticks, ticks, indexing="ij")
    pts = torch.stack([xx.reshape(-1), yy.reshape(-1)], dim=1)
    with torch.no_grad():
        lq = torch.cat([model.log_prob(chunk) for chunk in pts.split(20_000)])
    cell = float(ticks[1] - ticks[0]) ** 2
    log_z = float(torch.logsumexp(lq, 0)) + math.log(cell)
    return pts, lq, log_z


def _gaussian_fit(x: Tensor) -> Gaussian:
    mean = x.mean(0)
    xc = x - mean
    return Gaussian(mean, xc.T @ xc / x.shape[0])


def run_trial(c: dict[str, Any], folder: Path) -> dict[str, Any]:
    """Train one set with one first-layer gain for ``c["steps"]`` model updates; write the learned
    log-density on the grid and the training history into ``folder``."""
    g = torch.Generator().manual_seed(c["seed"])
    x_train, x_test, x_val = (sample_toy(c["dataset"], c[k], generator=g) for k in ("n_train", "n_test", "n_val"))
    torch.manual_seed(c["seed"])  # the energy's nn.Linear initialisation
    ebm = MLPEnergy(2, hidden=c["hidden"], first_layer_gain=c["first_layer_gain"]).init_base(x_train)
    critic = MLPCritic(2, hidden=c["hidden"], generator=torch.Generator().manual_seed(c["seed"] + 1))
    steps, checkpoint = c["steps"], folder / "checkpoint.pt"
    t0 = time.perf_counter()
    res = train(ebm, x_train, method="lsd", steps=steps, batch_size=c["batch_size"], lr=c["lr"], critic=critic,
                critic_steps=c["critic_steps"], lam=c["lam"], lr_decay=c["lr_decay"], checkpoint=checkpoint,
                checkpoint_every=max(100, steps // 10), log_every=max(1, steps // 100), on_nan="stop",
                seed=c["seed"] + 2, progress=False, device=trial_device(c))
    seconds = time.perf_counter() - t0
    ebm.cpu()  # the grid and the held-out sets are small: evaluated and saved on the CPU
    _, lq, log_z = grid_log_density(ebm, c["box"], c["grid"])
    with torch.no_grad():
        loglik = {k: float((ebm.log_prob(x) - log_z).mean()) for k, x in (("val", x_val), ("test", x_test))}
        gauss = float(_gaussian_fit(x_train).log_prob(x_test).mean())
    torch.save({"log_density": (lq - log_z).reshape(c["grid"], c["grid"])}, folder / "log_density.pt")
    write_json(folder / "history.json", [{k: h[k] for k in ("step", "loss", "lsd") if k in h} for h in res.history])
    checkpoint.unlink(missing_ok=True)
    return {
        "dataset": c["dataset"], "seed": c["seed"], "first_layer_gain": c["first_layer_gain"], "steps": steps,
        "val_loglik": loglik["val"], "test_loglik": loglik["test"], "gaussian_test_loglik": gauss,
        "log_z": log_z, "test_fraction_inside_box": float((x_test.abs() <= c["box"]).all(1).float().mean()),
        "steps_done": res.steps, "diverged_at": res.diverged_at, "seconds": seconds,
    }


def _validation_score(run: dict[str, Any]) -> float:
    """A run's validation log-likelihood, -inf when it is missing or not finite (a diverged run)."""
    v = run["val_loglik"]
    return v if v is not None and math.isfinite(v) else -math.inf


def run(settings: Settings, out: str | Path, options: RunOptions = RunOptions()) -> dict[str, Any]:
    """Train every (seed, set, gain, steps) as one trial; per set and seed keep the run with the best
    validation log-likelihood; write the report and ``toy_densities.png``."""
    out, start = Path(out), time.perf_counter()
    configs = options.with_device(trial_configs(settings))
    runs = [{**r, "trial": trial_folder("trials", c).as_posix()}
            for c, r in zip(configs, sweep(run_trial, configs, out, options, artifacts=True))]
    pairs = _pairs(settings)
    groups: dict[tuple, list[dict[str, Any]]] = {}  # (set, seed) -> its runs in the order of pairs
    for r in sorted(runs, key=lambda r: pairs.index((r["first_layer_gain"], r["steps"]))):
        groups.setdefault((r["dataset"], r["seed"]), []).append(r)
    rows = [max(group, key=_validation_score) for group in groups.values()]
    table = markdown_table(
        ["data set", "seed", "LSD EBM", "kept (gain, steps)", "Gaussian fit",
         *(f"gain {g:g}, {t} steps" for g, t in pairs), "train time (s)"],
        [[r["dataset"], r["seed"], r["test_loglik"], f"{r['first_layer_gain']:g}, {r['steps']}",
          r["gaussian_test_loglik"], *(e["test_loglik"] for e in group), round(sum(e["seconds"] for e in group))]
         for r, group in zip(rows, groups.values())],
    )
    intro = (f"LSD density normalized on a {settings.grid}² grid over [−{settings.box:g}, {settings.box:g}]². "
             "Each set keeps the run (first-layer gain, model steps) with the best validation log-likelihood; "
             "the last columns give every run's.\n\n")
    figure = _figure([r for r in rows if r["seed"] == settings.seed], settings.box, out, out / "toy_densities.png")
    return REPRODUCTION.write_report(out, settings, seconds=time.perf_counter() - start, verdict=_verdict(rows),
                                     numbers={"rows": rows, "runs": runs},
                                     tables=[("Held-out log-likelihood per example", intro + table)], figures=[figure])


REPRODUCTION = Reproduction(
    name="toy",
    description="Figure 4: deep EBMs on 2-D toy densities trained with LSD",
    paper_claim=("Figure 4: deep EBMs (an MLP energy times a learned Gaussian) trained with LSD learn the "
                 "densities of 2-D toy data sets."),
    verdict_rule=("replicates when the LSD EBM's held-out log-likelihood beats the Gaussian fit's on every data "
                  "set; partly replicates when on some, does not when on none"),
    full=FULL,
    quick=QUICK,
    run=run,
)


def _verdict(rows: list[dict[str, Any]]) -> str:
    """Does the LSD EBM beat the Gaussian fit on held-out data, set by set?"""
    several = len({r["seed"] for r in rows}) > 1
    margins = {r["dataset"] + (f" (seed {r['seed']})" if several else ""): r["test_loglik"] - r["gaussian_test_loglik"]
               for r in rows}
    worse = [name for name, m in margins.items() if not m > 0]
    word = "replicates" if not worse else "does not replicate" if len(worse) == len(margins) else "partly replicates"
    finite = [m for m in margins.values() if math.isfinite(m)]
    mean = sum(finite) / len(finite) if finite else math.nan
    return (f"{word}: the LSD EBM's held-out log-likelihood beats the Gaussian fit's on {len(margins) - len(worse)} "
            f"of {len(margins)} sets (mean margin {mean:.2f} nats)" + (f"; not on {', '.join(worse)}" if worse else ""))


def _figure(rows: list[dict[str, Any]], box: float, out: Path, path: Path) -> Path:
    """Three rows per set (the run kept for it): data histogram, learned density, learned
    log-density (clipped 8 nats below its maximum, which shows the shape even where the weights
    of separate islands are off)."""
    plt = pyplot()
    extent = [-box, box, -box, box]
    fig, axes = plt.subplots(3, len(rows), figsize=(2.2 * len(rows), 6.8), squeeze=False)
    for j, row in enumerate(rows):
        x = sample_toy(row["dataset"], 20_000, generator=torch.Generator().manual_seed(123))
        axes[0, j].hist2d(x[:, 0].numpy(), x[:, 1].numpy(), bins=120, range=[[-box, box], [-box, box]], cmap="viridis")
        log_dens = torch.load(out / row["trial"] / "log_density.pt")["log_density"]
        axes[1, j].imshow(log_dens.exp().numpy(), origin="lower", extent=extent, cmap="viridis")
        top = float(log_dens.max())
        axes[2, j].imshow(log_dens.clamp(min=top - 8.0).numpy(), origin="lower", extent=extent, cmap="viridis")
        axes[0, j].set_title(f"{row['dataset']}\n(gain {row['first_layer_gain']:g}, {row['steps']} steps)", fontsize=8)
        for ax in axes[:, j]:
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_aspect("equal")
    for ax, label in zip(axes[:, 0], ("data", "LSD EBM density", "log-density")):
        ax.set_ylabel(label)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

"""Section 8.2 and Appendices B.6 / C: deep EBMs and Gaussian-Bernoulli RBMs trained by LSD on images.

Three stages, each writing PNG grids (pixels back in [0, 1]) and its numbers to ``results.json``:

1. **EBM** (B.6). ``q(x) ∝ exp(-E(x)) N(x; mu, sigma^2)``, ``E`` a 2x1000 Swish MLP, the Gaussian
   learned (initialised at the data's mean and std); critic a 2x1000 Swish MLP R^784 -> R^784;
   lambda = 10; 5 critic updates per model update; Adam 1e-4, betas (.5, .9); 100 epochs of
   batches of 100. Data dequantized and logit-transformed (B.6.2), with fresh dequantization
   noise every epoch. Samples: tempered SGLD (Eq. 19) with eps = 1, sigma = .01, 1000 steps from
   uniform pixels mapped through the logit.
2. **Sampler study** (C.2). From one shared initialisation, two SGLD chains with sigma = .01 and
   sigma = .1; grids after 30, 300 and 1000 steps of each (one chain gives all three).
3. **RBM** (C.3). A Gaussian-Bernoulli RBM with 100 hidden units (B ~ N(0, 0.01^2), b = data
   mean, c = 0) trained by LSD (5 critic updates per model update, lambda = 10, Adam 1e-3) on
   the same data space; sampled by 2000 blocked-Gibbs sweeps. Two grids: the chains' last
   visible states x, and their noise-free means E[x | h] = b + B h / 2 after one more h-draw.
   (Standardized pixels, ``--rbm-space standardized``, were tried and are much worse: the RBM's
   fixed unit visible noise is as large as the whole per-pixel data variance there.)

Chains that diverge (non-finite states) are drawn as mid-grey tiles; ``results.json`` records
the finite fraction of each SGLD chain.

``--quick`` is a CPU preset (10-20 minutes on two shared cores): the paper's networks and
hyper-parameters, but 600 EBM updates (one epoch instead of 100) at Adam lr 3e-4, and 1500 RBM
updates with a 2x300 critic. ``results.json`` records every setting that was used, and
``"preset"`` says which one. Training is checkpointed (``ebm_checkpoint.pt``, ``rbm_checkpoint.pt``): rerunning
the same command in the same ``--out`` resumes where it stopped; ``--fresh`` starts over.

Example:
    steinkit reproduce images --dataset fashion-mnist --out runs/images --quick
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from ..critics import MLPCritic
from ..data import IMAGE_DATASETS, load_image_dataset, make_image_grid, save_image_grid
from ..models import GaussianBernoulliRBM, MLPEnergy
from ..samplers import sgld
from ._common import prepare_out, pyplot, write_json
from ._images_common import (
    SPACES,
    Space,
    energy_score_fn,
    make_space,
    rbm_visible_mean,
    summarize_history,
    train_in_segments,
)

__all__ = ["NAME", "DESCRIPTION", "PRESETS", "add_arguments", "run"]

NAME = "images"
DESCRIPTION = (
    "Sec. 8.2 / App. B.6, C: deep EBM and Gaussian-Bernoulli RBM trained by LSD on images; "
    "SGLD and Gibbs sample grids, sampler study (--quick: one-epoch CPU preset, ~10-20 min)"
)

STAGES: tuple[str, ...] = ("ebm", "rbm")

# The paper's settings (B.6, C.3). Batch size, RBM run length and RBM critic are not stated
# in the paper: 100, the EBM's 100 epochs and the EBM's critic are our choices.
_FULL: dict[str, Any] = {
    "epochs": 100.0,
    "batch_size": 100,
    "ebm_hidden": 1000,
    "critic_hidden": 1000,
    "critic_steps": 5,
    "lam": 10.0,
    "lr": 1e-4,
    "rbm_hidden": 100,
    "rbm_epochs": 100.0,
    "rbm_lr": 1e-3,
    "rbm_critic_hidden": 1000,
    "rbm_critic_steps": 5,
    "rbm_space": "logit",
    "rbm_init_std": 0.01,
    "n_train": None,
    "n_test": 2000,
    "n_samples": 100,
    "sgld_steps": 1000,
    "sgld_step_size": 1.0,
    "sgld_noise": 0.01,
    "sgld_noise_alt": 0.1,
    "gibbs_steps": 2000,
    "alpha": 1e-6,
    "segment_epochs": 1.0,
}

# CPU preset (see _QUICK_NOTES). Chosen from measured runs on a shared 2-core machine: a 2x1000
# model and critic cost about 0.8 s per model update (5 critic updates + 1 model update, batch
# 100), the RBM with a 2x300 critic about 0.1-0.25 s; smaller EBMs (2x300, 2x500) gave blurrier,
# more saturated samples for the same wall time, and lr 1e-4 left most chains in near-empty
# images after 400 updates.
_QUICK: dict[str, Any] = {
    **_FULL,
    "epochs": None,
    "ebm_steps": 600,
    "lr": 3e-4,
    "rbm_epochs": None,
    "rbm_steps": 1500,
    "rbm_critic_hidden": 300,
    "n_test": 500,
    "n_samples": 64,
}

PRESETS: dict[str, dict[str, Any]] = {"full": _FULL, "quick": _QUICK}

_QUICK_NOTES = (
    "quick preset (CPU, ~10-20 min on two shared cores): the paper's EBM and critic (2x1000 Swish), "
    "lambda, critic steps, betas, preprocessing and SGLD settings, but only 600 model updates "
    "(1 epoch; the paper trains 100) with Adam lr 3e-4 instead of 1e-4 for the EBM and its critic; "
    "the RBM (100 hidden, lr 1e-3, 5 critic steps) gets 1500 updates with a 2x300 critic; held-out "
    "LSD on 500 test images; 64 samples per grid."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The experiment's own options (``None`` defaults mean "take it from the preset").

    Also sets this command's ``--threads`` default to 1: on a shared 2-core machine (load ~7),
    one torch thread ran a 2x1000 LSD update in 1.5-2.3 s, two threads in 8-14 s.
    """
    parser.set_defaults(threads=1)  # the ``steinkit reproduce`` parser's --threads picks this up
    a = parser.add_argument
    a("--dataset", choices=IMAGE_DATASETS, default="fashion-mnist")
    a("--data-root", default=None, help="folder with the IDX files (default: the dataset's standard place)")
    a("--device", default="cpu", help="torch device for training and sampling, e.g. cuda (default: cpu)")
    a("--seed", type=int, default=0)
    a("--stages", nargs="+", choices=STAGES, default=list(STAGES), help="what to run (default: ebm rbm)")
    a("--fresh", action="store_true", help="ignore existing checkpoints in --out and start over")
    a("--epochs", type=float, default=None, help="EBM training epochs (full: 100)")
    a("--ebm-steps", type=int, default=None, help="EBM model updates (overrides --epochs; quick: 600)")
    a("--batch-size", type=int, default=None, help="mini-batch size (100)")
    a("--ebm-hidden", type=int, default=None, help="energy MLP width (1000)")
    a("--critic-hidden", type=int, default=None, help="EBM critic width (1000)")
    a("--critic-steps", type=int, default=None, help="critic updates per EBM update (5)")
    a("--lam", type=float, default=None, help="critic L2 penalty lambda, EBM and RBM (10)")
    a("--lr", type=float, default=None, help="EBM and its critic's Adam lr (full 1e-4, quick 3e-4)")
    a("--rbm-hidden", type=int, default=None, help="RBM hidden units (100)")
    a("--rbm-epochs", type=float, default=None, help="RBM training epochs (full: 100)")
    a("--rbm-steps", type=int, default=None, help="RBM model updates (overrides --rbm-epochs; quick: 1500)")
    a("--rbm-lr", type=float, default=None, help="RBM and its critic's Adam lr (1e-3)")
    a("--rbm-critic-hidden", type=int, default=None, help="RBM critic width (full 1000, quick 300)")
    a("--rbm-critic-steps", type=int, default=None, help="critic updates per RBM update (5)")
    a("--rbm-space", choices=SPACES, default=None, help="RBM data space (logit)")
    a("--rbm-init-std", type=float, default=None, help="std of the RBM's initial weights B (0.01)")
    a("--n-train", type=int, default=None, help="use the first N training images (default: all)")
    a("--n-test", type=int, default=None, help="test images for the held-out LSD (full 2000, quick 500)")
    a("--n-samples", type=int, default=None, help="images per sample grid (full 100, quick 64)")
    a("--sgld-steps", type=int, default=None, help="SGLD steps (1000)")
    a("--sgld-step-size", type=float, default=None, help="SGLD step size eps (1)")
    a("--sgld-noise", type=float, default=None, help="SGLD noise std sigma (.01)")
    a("--sgld-noise-alt", type=float, default=None, help="second sigma of the sampler study (.1)")
    a("--gibbs-steps", type=int, default=None, help="Gibbs sweeps for the RBM samples (2000)")
    a("--alpha", type=float, default=None, help="logit squeeze alpha (1e-6; the paper uses 0)")
    a("--segment-epochs", type=float, default=None, help="epochs between fresh dequantization noise (1)")


def _resolve(quick: bool, options: dict[str, Any]) -> dict[str, Any]:
    preset = dict(PRESETS["quick" if quick else "full"])
    preset.setdefault("ebm_steps", None)
    preset.setdefault("rbm_steps", None)
    unknown = set(options) - set(preset)
    if unknown:
        raise TypeError(f"unknown option(s) for images: {sorted(unknown)}")
    for key, value in options.items():
        if value is not None:
            preset[key] = value
    return preset


def _steps(n_train: int, batch_size: int, steps: int | None, epochs: float | None, name: str) -> int:
    if steps is not None:
        if steps < 1:
            raise ValueError(f"{name}_steps must be >= 1, got {steps}")
        return int(steps)
    if epochs is None or epochs <= 0:
        flag = "epochs" if name == "ebm" else f"{name}_epochs"
        raise ValueError(f"{flag} must be > 0 (or give {name}_steps), got {epochs!r}")
    return max(1, math.ceil(epochs * n_train / batch_size))


def _check_settings(s: dict[str, Any]) -> None:
    for key in ("batch_size", "ebm_hidden", "critic_hidden", "critic_steps", "rbm_hidden", "rbm_critic_hidden",
                "rbm_critic_steps", "n_test", "n_samples", "sgld_steps", "gibbs_steps"):
        if not isinstance(s[key], int) or s[key] < 1:
            raise ValueError(f"{key} must be a positive int, got {s[key]!r}")
    for key in ("lam", "lr", "rbm_lr", "sgld_step_size", "segment_epochs"):
        if not (isinstance(s[key], (int, float)) and s[key] > 0):
            raise ValueError(f"{key} must be > 0, got {s[key]!r}")
    for key in ("sgld_noise", "sgld_noise_alt", "rbm_init_std"):
        if not (isinstance(s[key], (int, float)) and s[key] >= 0):
            raise ValueError(f"{key} must be >= 0, got {s[key]!r}")
    if not 0 <= s["alpha"] < 0.5:
        raise ValueError(f"alpha must be in [0, 0.5), got {s['alpha']!r}")
    if s["rbm_space"] not in SPACES:
        raise ValueError(f"rbm_space must be one of {SPACES}, got {s['rbm_space']!r}")
    if s["n_train"] is not None and s["n_train"] < 2:
        raise ValueError(f"n_train must be >= 2, got {s['n_train']!r}")


def _config_guard(out: Path, name: str, config: dict[str, Any], fresh: bool) -> Path:
    """The checkpoint path of stage ``name``; refuses to resume a checkpoint of other settings."""
    ckpt = out / f"{name}_checkpoint.pt"
    cfg_path = out / f"{name}_config.json"
    if fresh:
        ckpt.unlink(missing_ok=True)
    if ckpt.exists():
        old = json.loads(cfg_path.read_text()) if cfg_path.exists() else None
        if old != config:
            raise ValueError(
                f"{ckpt} was written with other settings ({cfg_path}); use another --out or pass --fresh"
            )
    cfg_path.write_text(json.dumps(config, indent=2, sort_keys=True))
    return ckpt


def _grid(images01: torch.Tensor, path: Path, shape: tuple[int, int]) -> str:
    n = images01.shape[0]
    save_image_grid(images01, path, shape=shape, nrow=math.ceil(math.sqrt(n)))
    return path.name


def _held_out_lsd(critic: MLPCritic, score_fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                  batch: int = 500) -> dict[str, float]:
    """Mean ± standard error of the learned critic's Stein terms (exact trace) on held-out data."""
    critic.eval()
    terms = []
    for i in range(0, x.shape[0], batch):
        xb = x[i : i + batch]
        s = score_fn(xb).detach()
        with torch.no_grad():
            t, _ = critic.stein_terms(xb, s, trace="exact")
        terms.append(t)
    t = torch.cat(terms).double()
    return {"mean": float(t.mean()), "stderr": float(t.std() / math.sqrt(t.numel())), "n": int(t.numel())}


def _curve_plot(path: Path, curves: dict[str, tuple[dict, ...]]) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, len(curves), figsize=(4.5 * len(curves), 3.4), squeeze=False)
    for ax, (name, history) in zip(axes[0], curves.items()):
        rows = [r for r in history if "lsd" in r]
        ax.plot([r["step"] for r in rows], [r["lsd"] for r in rows], label="LSD (critic batches)")
        ax.set_xlabel("model update")
        ax.set_ylabel("LSD estimate")
        ax.set_title(name)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _study_plot(path: Path, panels: dict[str, np.ndarray], rows: int, cols: int) -> None:
    """The sampler study in one figure: one row per noise scale, one column per step count."""
    plt = pyplot()
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 4.2 * rows), squeeze=False)
    for ax, (title, grid) in zip(axes.flat, panels.items()):
        ax.imshow(grid, cmap="gray", vmin=0, vmax=1)
        ax.set_title(title, fontsize=10)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _run_ebm(out: Path, s: dict[str, Any], pixels: torch.Tensor, test_pixels: torch.Tensor, space: Space,
             shape: tuple[int, int], device: torch.device, fresh: bool, progress: bool) -> dict[str, Any]:
    d = pixels.shape[1]
    n = pixels.shape[0]
    steps = _steps(n, s["batch_size"], s["ebm_steps"], s["epochs"], "ebm")
    segment = max(1, round(s["segment_epochs"] * n / s["batch_size"]))
    config = {k: s[k] for k in ("ebm_hidden", "critic_hidden", "critic_steps", "lam", "lr", "batch_size",
                                "alpha", "seed", "dataset", "n_train")} | {"segment": segment}
    ckpt = _config_guard(out, "ebm", config, fresh)
    g = torch.Generator().manual_seed(s["seed"])
    ebm = MLPEnergy(d, hidden=s["ebm_hidden"])
    critic = MLPCritic(d, hidden=s["critic_hidden"], generator=g)
    t0 = time.perf_counter()
    init = space.encode(pixels, generator=torch.Generator().manual_seed(s["seed"] + 7))
    ebm.init_base(init)  # overwritten by the checkpoint when resuming
    del init
    ebm.to(device)
    critic.to(device)
    result, start, prep = train_in_segments(
        ebm, pixels.to(device), space, steps=steps, segment=segment, checkpoint=ckpt, seed=s["seed"], device=device,
        progress=progress, method="lsd", batch_size=s["batch_size"], lr=s["lr"], betas=(0.5, 0.9),
        critic=critic, critic_steps=s["critic_steps"], lam=s["lam"], log_every=max(1, min(50, steps // 20)),
        checkpoint_every=max(1, min(segment, 1000)), on_nan="stop",
    )
    wall_train = time.perf_counter() - t0
    ebm.eval()
    score = energy_score_fn(ebm)
    x_test = space.encode(test_pixels, generator=torch.Generator().manual_seed(s["seed"] + 11)).to(device)
    held_out = _held_out_lsd(critic, score, x_test)

    # Sampling (B.6.1) and the sampler study (C.2): two chains from one shared initialisation.
    t1 = time.perf_counter()
    gs = torch.Generator().manual_seed(s["seed"] + 23)
    x0 = space.uniform(s["n_samples"], d, generator=gs).to(device)
    gdev = torch.Generator(device=device).manual_seed(s["seed"] + 29)
    marks = sorted({t for t in (30, 300, s["sgld_steps"]) if t <= s["sgld_steps"]})
    chains = {}
    for sigma in (s["sgld_noise"], s["sgld_noise_alt"]):
        chains[sigma] = sgld(score, x0, step_size=s["sgld_step_size"], n_steps=s["sgld_steps"], noise_std=sigma,
                             generator=gdev, snapshot_steps=marks, progress=progress)
    wall_sample = time.perf_counter() - t1

    grids: dict[str, str] = {}
    main = chains[s["sgld_noise"]].samples
    grids["samples"] = _grid(space.decode(main), out / "ebm_samples.png", shape)
    grids["init"] = _grid(space.decode(x0), out / "ebm_sgld_init.png", shape)
    panels: dict[str, np.ndarray] = {}
    for sigma, res in chains.items():
        for t in marks:
            img = space.decode(res.snapshots[t])
            key = f"sigma={sigma:g}, {t} steps"
            grids[key] = _grid(img, out / f"ebm_sgld_sigma{sigma:g}_steps{t}.png", shape)
            panels[key] = make_image_grid(img, shape=shape)
    _study_plot(out / "ebm_sampler_study.png", panels, len(chains), len(marks))
    grids["sampler_study"] = "ebm_sampler_study.png"
    finite = {f"{sigma:g}": float(torch.isfinite(r.samples).all(1).float().mean()) for sigma, r in chains.items()}
    return {
        "model": f"MLPEnergy({d}->{s['ebm_hidden']}->{s['ebm_hidden']}->1, Swish) x learned diagonal Gaussian",
        "critic": f"MLPCritic(2x{s['critic_hidden']} Swish)",
        "steps": result.steps,
        "steps_planned": steps,
        "epochs_done": result.steps * s["batch_size"] / n,
        "segment_steps": segment,
        "resumed_from": start,
        "diverged_at": result.diverged_at,
        "train_seconds_total": result.seconds,
        "train_seconds_this_run": wall_train,
        "data_prep_seconds": prep,
        "seconds_per_model_update": result.seconds / max(1, result.steps),
        "final": summarize_history(result.history),
        "held_out_lsd": held_out,
        "sampling_seconds": wall_sample,
        "sgld": {"step_size": s["sgld_step_size"], "steps": s["sgld_steps"], "noise_std": s["sgld_noise"],
                 "noise_std_alt": s["sgld_noise_alt"], "snapshots": marks, "init": "uniform pixels -> space",
                 "fraction_finite": finite},
        "grids": grids,
        "history": list(result.history),
    }


def _run_rbm(out: Path, s: dict[str, Any], pixels: torch.Tensor, test_pixels: torch.Tensor,
             shape: tuple[int, int], device: torch.device, fresh: bool, progress: bool) -> dict[str, Any]:
    d = pixels.shape[1]
    n = pixels.shape[0]
    space = make_space(s["rbm_space"], pixels, alpha=s["alpha"])
    steps = _steps(n, s["batch_size"], s["rbm_steps"], s["rbm_epochs"], "rbm")
    segment = max(1, round(s["segment_epochs"] * n / s["batch_size"]))
    config = {k: s[k] for k in ("rbm_hidden", "rbm_critic_hidden", "rbm_critic_steps", "lam", "rbm_lr",
                                "batch_size", "alpha", "seed", "dataset", "n_train", "rbm_space", "rbm_init_std")}
    config["segment"] = segment
    ckpt = _config_guard(out, "rbm", config, fresh)
    g = torch.Generator().manual_seed(s["seed"] + 101)
    t0 = time.perf_counter()
    mean = space.encode(pixels, generator=torch.Generator().manual_seed(s["seed"] + 7)).mean(0)
    B = s["rbm_init_std"] * torch.randn(d, s["rbm_hidden"], generator=g)
    rbm = GaussianBernoulliRBM(B, mean, torch.zeros(s["rbm_hidden"])).to(device)
    critic = MLPCritic(d, hidden=s["rbm_critic_hidden"], generator=g).to(device)
    result, start, prep = train_in_segments(
        rbm, pixels.to(device), space, steps=steps, segment=segment, checkpoint=ckpt, seed=s["seed"] + 1, device=device,
        progress=progress, method="lsd", batch_size=s["batch_size"], lr=s["rbm_lr"], betas=(0.5, 0.9),
        critic=critic, critic_steps=s["rbm_critic_steps"], lam=s["lam"], log_every=max(1, min(50, steps // 20)),
        checkpoint_every=max(1, min(segment, 1000)), on_nan="stop",
    )
    wall_train = time.perf_counter() - t0
    x_test = space.encode(test_pixels, generator=torch.Generator().manual_seed(s["seed"] + 11)).to(device)
    held_out = _held_out_lsd(critic, lambda x: rbm.score(x), x_test)

    t1 = time.perf_counter()
    gs = torch.Generator().manual_seed(s["seed"] + 31)
    x0 = space.uniform(s["n_samples"], d, generator=gs).to(device)
    gdev = torch.Generator(device=device).manual_seed(s["seed"] + 37)
    x = rbm.sample(s["n_samples"], burn_in=s["gibbs_steps"], generator=gdev, x0=x0)
    means = rbm_visible_mean(rbm, x, generator=gdev)
    wall_sample = time.perf_counter() - t1
    grids = {
        "samples": _grid(space.decode(x), out / "rbm_samples.png", shape),
        "means": _grid(space.decode(means), out / "rbm_sample_means.png", shape),
    }
    return {
        "model": f"GaussianBernoulliRBM({d} visible, {s['rbm_hidden']} hidden in {{-1,+1}})",
        "critic": f"MLPCritic(2x{s['rbm_critic_hidden']} Swish)",
        "space": space.describe(),
        "init": f"B ~ N(0, {s['rbm_init_std']:g}^2), b = mean of the training data in the space, c = 0",
        "steps": result.steps,
        "steps_planned": steps,
        "epochs_done": result.steps * s["batch_size"] / n,
        "segment_steps": segment,
        "resumed_from": start,
        "diverged_at": result.diverged_at,
        "train_seconds_total": result.seconds,
        "train_seconds_this_run": wall_train,
        "data_prep_seconds": prep,
        "seconds_per_model_update": result.seconds / max(1, result.steps),
        "final": summarize_history(result.history),
        "held_out_lsd": held_out,
        "sampling_seconds": wall_sample,
        "gibbs_steps": s["gibbs_steps"],
        "weight_norm": float(rbm.B.detach().norm()),
        "grids": grids,
        "history": list(result.history),
    }


def run(
    out: str | Path,
    *,
    quick: bool = False,
    dataset: str = "fashion-mnist",
    data_root: str | None = None,
    device: str = "cpu",
    seed: int = 0,
    stages: list[str] | tuple[str, ...] = STAGES,
    fresh: bool = False,
    progress: bool = True,
    **options: Any,
) -> dict[str, Any]:
    """Run the image experiment; write ``results.json`` and the PNG grids into ``out``; return the results.

    ``options`` are the settings of :data:`PRESETS` (``None`` or absent: the preset's value).
    """
    out = prepare_out(out)
    start = time.perf_counter()
    if dataset not in IMAGE_DATASETS:
        raise ValueError(f"dataset must be one of {IMAGE_DATASETS}, got {dataset!r}")
    stages = list(stages)
    bad = [st for st in stages if st not in STAGES]
    if bad or not stages:
        raise ValueError(f"stages must be a non-empty subset of {STAGES}, got {stages!r}")
    s = _resolve(quick, options)
    s.update(dataset=dataset, seed=int(seed))
    _check_settings(s)
    dev = torch.device(device)

    t0 = time.perf_counter()
    train_px, _, shape = load_image_dataset(dataset, root=data_root, split="train")
    test_px, _, _ = load_image_dataset(dataset, root=data_root, split="test")
    if s["n_train"] is not None:
        train_px = train_px[: s["n_train"]]
    s["n_train"] = int(train_px.shape[0])
    pixels = torch.from_numpy(np.ascontiguousarray(train_px))
    test_pixels = torch.from_numpy(np.ascontiguousarray(test_px[: s["n_test"]]))
    load_seconds = time.perf_counter() - t0
    space = make_space("logit", pixels, alpha=s["alpha"])
    data_grid = _grid(pixels[: s["n_samples"]].float() / 255.0, out / "data.png", shape)

    results: dict[str, Any] = {
        "experiment": NAME,
        "preset": "quick" if quick else "full",
        "notes": _QUICK_NOTES if quick else "the paper's settings (B.6, C.3); batch size 100, RBM length "
        "and RBM critic are not given in the paper (our choices: 100, 100 epochs, 2x1000)",
        "dataset": {"name": dataset, "n_train": int(pixels.shape[0]), "n_test": int(test_pixels.shape[0]),
                    "shape": list(shape), "load_seconds": load_seconds},
        "device": str(dev),
        "threads": torch.get_num_threads(),
        "settings": {k: v for k, v in s.items()},
        "ebm_space": space.describe(),
        "data_grid": data_grid,
        "stages": {},
    }
    if "ebm" in stages:
        results["stages"]["ebm"] = _run_ebm(out, s, pixels, test_pixels, space, shape, dev, fresh, progress)
        write_json(out / "results.json", results)
    if "rbm" in stages:
        results["stages"]["rbm"] = _run_rbm(out, s, pixels, test_pixels, shape, dev, fresh, progress)
    curves = {name: tuple(st["history"]) for name, st in results["stages"].items()}
    _curve_plot(out / "training_curves.png", curves)
    results["curves"] = "training_curves.png"
    results["pngs"] = sorted(p.name for p in out.glob("*.png"))
    results["seconds"] = time.perf_counter() - start
    write_json(out / "results.json", results)
    return results

r"""Figure 7: the checkpoints of a normalizing flow scored by bits/dim, LSD and score matching.

A Glow-like flow (:class:`~steinkit.models.flows.GlowFlow`) is trained by maximum likelihood on
dequantized, logit-transformed images (Appendix B.6.2), keeping checkpoints. Each checkpoint is
scored on one fixed dequantization of the test set by **bits/dim** (pixel space, all test images);
**LSD** (Algorithm 1) in logit space, the critic fitted, selected and evaluated on the three parts
of ``split`` (Appendix B.3), with ``critic_standardize`` in coordinates ``u = (y - m) / D`` (m, D:
per-pixel mean and std of the critic's training part; :class:`FlowScore`); and **score matching**
``0.5 ||s||^2 + tr grad s`` on LSD's test part in logit space with a Hutchinson trace
(:func:`score_matching_terms`; in pixel space its expectation is infinite for alpha = 0).

The verdict compares the Spearman correlations of LSD and of score matching with bits/dim. Trials
of the sweep engine: one trains the flow, keeping its checkpoints (with the Adam state, so a killed
run resumes exactly) and a sample grid in its folder; one per checkpoint evaluates it. Earlier
measurements: ``docs/archive/flow-eval.md``.

Example:
    steinkit reproduce flow-eval --out runs/flow-eval --quick
"""

from __future__ import annotations

import dataclasses
import functools
import math
import shutil
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..data import bits_per_dim, dequantize, inverse_logit, load_image_dataset, logit_transform, save_image_grid
from ..evaluate import stein_discrepancy
from ..settings import PAPER_ESTIMATE
from ..splits import split_data
from ..models.flows import GlowFlow
from ..train import save_checkpoint, train
from ..train.losses import ssm_terms
from ..validation import positive_int
from ._images_common import ImageData
from .report import markdown_table, pyplot
from .reproduction import Reproduction
from .runner import sweep, trial_folder
from .settings import RunOptions, field_names, keyed_on, setting, trial_device

__all__ = ["REPRODUCTION", "Settings", "FULL", "QUICK", "run", "train_trial", "evaluate_trial", "FlowScore",
           "score_matching_terms"]


@dataclasses.dataclass(frozen=True)
class FlowTraining(ImageData):
    """What trains the flow (defaults: the paper's Appendix B.3): the images, the flow, its
    optimiser and the steps at which it is kept. The training trial's key holds these settings
    only, so a run that changes an evaluation setting reuses the trained flow."""

    n_stages: int = setting(3, "flow stages", minimum=1)
    n_blocks: int = setting(4, "coupling blocks per stage", minimum=1)
    hidden_channels: int = setting(128, "channels of the coupling networks", minimum=1)
    batch_size: int = setting(64, "flow training batch size", minimum=1)
    lr: float = setting(1e-4, "flow Adam learning rate", minimum=1e-12)
    checkpoint_steps: tuple[int, ...] = setting(tuple(1000 * k for k in range(1, 11)),
                                                "training steps at which to keep a checkpoint", minimum=1)

    def __post_init__(self) -> None:
        super().__post_init__()
        steps = self.checkpoint_steps
        if len(steps) < 2 or list(steps) != sorted(set(steps)):
            raise ValueError(f"checkpoint_steps must be at least two strictly increasing steps, got {steps!r}")


@dataclasses.dataclass(frozen=True)
class Settings(FlowTraining):
    """Settings of the Figure-7 reproduction (defaults: the paper's Appendix B.3): the flow's training
    and how each checkpoint is scored."""

    split: tuple[float, ...] = setting((0.8, 0.1, 0.1), "critic train/validation/test parts of the test set",
                                       minimum=1e-12)
    lam: float = setting(0.5, "critic L2 weight lambda", minimum=1e-12)
    critic_hidden: int = setting(1000, "critic width", minimum=1)
    critic_layers: int = setting(2, "critic hidden layers", minimum=1)
    critic_passes: int = setting(100, "passes over the critic's training part (validated after each)", minimum=1)
    critic_batch_size: int = setting(128, "critic batch size", minimum=1)
    critic_lr: float = setting(1e-3, "critic Adam learning rate", minimum=1e-12)
    critic_standardize: bool = setting(False, "fit the critic in standardized logit coordinates")
    sm_probes: int = setting(16, "Hutchinson probes per image for score matching", minimum=1)
    chunk_size: int = setting(250, "images per flow evaluation batch (memory; sets the probes' draws)", minimum=1)

    def __post_init__(self) -> None:
        super().__post_init__()
        if len(self.split) != 3:
            raise ValueError(f"split must be three positive fractions, got {self.split!r}")


FULL = Settings()
# Checkpoints where bits/dim moves most, a smaller flow and critic budget (why: docs/archive/flow-eval.md).
QUICK = FULL.replace(hidden_channels=32, lr=1e-3, checkpoint_steps=(25, 50, 75, 100, 150, 200, 300, 450, 650, 1000),
                     critic_passes=16, critic_standardize=True, sm_probes=4, chunk_size=500)

_TRAIN_FIELDS = field_names(FlowTraining)


class FlowScore:
    """The score of a flow in its (logit) space, optionally in standardized coordinates.

    Plain: ``score(y) = grad_y log q(y)``. With ``shift`` m and ``scale`` D (per dimension) it is
    the score of ``u = (y - m) / D``, whose density is ``q(m + D u) prod(D)``:
    ``score(u) = D * grad_y log q(m + D u)``. Computed in chunks of ``chunk_size`` rows.

    Example:
        >>> flow = GlowFlow((1, 4, 4), n_stages=2, n_blocks=1, hidden_channels=4)
        >>> FlowScore(flow, chunk_size=3).score(torch.randn(7, 16)).shape
        torch.Size([7, 16])
    """

    def __init__(self, flow: GlowFlow, chunk_size: int = 500, *, shift: Tensor | None = None,
                 scale: Tensor | None = None) -> None:
        positive_int(chunk_size, "chunk_size")
        for name, t in (("shift", shift), ("scale", scale)):
            if t is not None and (not isinstance(t, Tensor) or t.shape != (flow.dim,)):
                got = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
                raise ValueError(f"{name} must be a tensor of shape ({flow.dim},), got {got}")
        if scale is not None and not bool((scale > 0).all()):
            raise ValueError("scale must be positive")
        self.flow, self.chunk_size, self.dim = flow, chunk_size, flow.dim
        self.shift, self.scale = shift, scale

    def score(self, x: Tensor) -> Tensor:
        y = x * self.scale if self.scale is not None else x
        y = y + self.shift if self.shift is not None else y
        with torch.no_grad():
            s = torch.cat([self.flow.score(c) for c in y.split(self.chunk_size)])
        return s * self.scale if self.scale is not None else s


def score_matching_terms(flow: GlowFlow, x: Tensor, *, n_probes: int = 1, chunk_size: int = 500,
                         generator: torch.Generator | None = None) -> Tensor:
    r"""Per-example score-matching terms ``0.5 ||s(x)||^2 + tr grad s(x)`` (Hyvärinen, 2005), shape (n,).

    The trace is Hutchinson's ``eps^T (grad s) eps`` averaged over ``n_probes`` standard-normal
    probes per example (:func:`steinkit.train.losses.ssm_terms`, Eq. 16); ``chunk_size`` bounds
    the examples x probes of one double-backward pass, and each chunk draws its probes from
    ``generator`` as an (n_probes, rows, D) block.

    Example:
        >>> flow = GlowFlow((1, 4, 4), n_stages=2, n_blocks=1, hidden_channels=4)
        >>> score_matching_terms(flow, torch.randn(5, 16), n_probes=2).shape
        torch.Size([5])
    """
    positive_int(n_probes, "n_probes")
    positive_int(chunk_size, "chunk_size")
    out = []
    for xc in x.split(max(1, chunk_size // n_probes)):
        n, d = xc.shape
        eps = torch.randn(n_probes, n, d, generator=generator, dtype=x.dtype).to(x.device)
        sq, hess = ssm_terms(flow, xc.repeat(n_probes, 1), eps.reshape(-1, d))
        out.append((sq[:n] + hess.reshape(n_probes, n).mean(0)).detach())
    return torch.cat(out)


def _settings(config: dict[str, Any]) -> Settings:
    names = {f.name for f in dataclasses.fields(Settings)}
    return Settings(**{k: tuple(v) if isinstance(v, list) else v for k, v in config.items() if k in names})


def _images(s: Settings, split: str, seed: int) -> tuple[Tensor, Tensor, tuple[int, int, int]]:
    """Logit-space images of one split with one fixed dequantization draw, their log-Jacobian, shape."""
    pixels, _, (h, w) = load_image_dataset(s.dataset, root=s.data_root or None, split=split)
    y, log_det = logit_transform(dequantize(pixels, generator=torch.Generator().manual_seed(seed)), s.alpha)
    return y, log_det, (1, h, w)


def _new_flow(s: Settings, shape: tuple[int, int, int]) -> GlowFlow:
    seeded = torch.Generator().manual_seed(s.seed + 2)
    return GlowFlow(shape, s.n_stages, s.n_blocks, s.hidden_channels, generator=seeded)


def _checkpoint(folder: Path, step: int) -> Path:
    return folder / f"step-{step:07d}.pt"


def _load(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)


def _fit_flow(flow: GlowFlow, y: Tensor, folder: Path, *, s: Settings, done: int, todo: list[int],
              progress: bool, device: torch.device) -> None:
    """Train ``flow`` by maximum likelihood (the trainer, shuffled epochs, Adam's default betas)
    from step ``done`` (restoring that checkpoint of ``folder`` with the trainer's state: Adam
    moments and batch order) through the steps ``todo``, saving ``step-XXXXXXX.pt`` at each."""
    work = folder / "training.ckpt"  # the trainer's own checkpoint while it runs
    work.unlink(missing_ok=True)
    if done:
        trainer_state = _load(_checkpoint(folder, done)).get("trainer")
        if trainer_state is None:
            raise ValueError(f"{_checkpoint(folder, done)} holds no trainer state (an older format); "
                             f"delete {folder} to train again")
        save_checkpoint(trainer_state, work)
    for step in todo:
        train(flow, y, method="ml", steps=step, batch_size=s.batch_size, lr=s.lr, betas=(0.9, 0.999),
              batch_order="epochs", checkpoint=work, checkpoint_every=todo[-1], log_every=math.gcd(*todo),
              seed=s.seed + 3, progress=progress, device=device)
        state = {k: v.detach().clone() for k, v in flow.state_dict().items()}
        save_checkpoint({"step": step, "state_dict": state, "trainer": _load(work)}, _checkpoint(folder, step))
    work.unlink()


def train_trial(config: dict[str, Any], folder: Path, progress: bool = False) -> dict[str, Any]:
    """Train the flow, keeping a checkpoint at every checkpoint step in ``folder`` and resuming from
    the last one there; then draw ``samples.png`` from the last checkpoint (Appendix B.6.2)."""
    t0, c0 = time.perf_counter(), time.process_time()
    s = _settings(config)
    steps = list(s.checkpoint_steps)
    done = 0  # the longest prefix of the schedule on disk
    for k in steps:
        if not _checkpoint(folder, k).is_file():
            break
        done = k
    y, _, shape = _images(s, "train", s.seed)
    if done < steps[-1]:
        todo = [k for k in steps if k > done]
        _fit_flow(_new_flow(s, shape), y, folder, s=s, done=done, todo=todo, progress=progress,
                  device=trial_device(config))
    flow = _frozen(s, shape, _checkpoint(folder, steps[-1]))
    y = flow.sample(64, generator=torch.Generator().manual_seed(s.seed + 5))
    save_image_grid(inverse_logit(y, s.alpha).clamp(0.0, 1.0), folder / "samples.png", shape=shape[1:], nrow=8)
    return {"resumed_from": done, "seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0}


def _frozen(s: Settings, shape: tuple[int, int, int], path: Path) -> GlowFlow:
    flow = _new_flow(s, shape)
    flow.load_state_dict(_load(path)["state_dict"])
    flow.eval()
    for p in flow.parameters():
        p.requires_grad_(False)
    return flow


def evaluate_trial(config: dict[str, Any], *, trials: Path, progress: bool = False) -> dict[str, Any]:
    """Score the checkpoint ``config["step"]`` of the training trial of the same settings (its
    folder under ``trials``): bits/dim on the whole test set, LSD and score matching on its parts."""
    c0 = time.process_time()
    s, device = _settings(config), trial_device(config)
    y, log_det, shape = _images(s, "test", s.seed + 1)
    y, log_det = y.to(device), log_det.to(device)
    trained = trial_folder(trials, keyed_on(_train_config(s), config.get("device", "cpu")))
    flow = _frozen(s, shape, _checkpoint(trained, config["step"])).to(device)
    times, t0 = {}, time.perf_counter()
    with torch.no_grad():
        lp = torch.cat([flow.log_prob(c) for c in y.split(s.chunk_size)])
    bpd = bits_per_dim(lp, log_det, y.shape[1])
    times["bits_per_dim"], t0 = time.perf_counter() - t0, time.perf_counter()
    # the split stein_discrepancy makes with this seed (it depends on n and the seed only)
    y_fit, _, y_test = split_data(y, s.split, generator=torch.Generator().manual_seed(s.seed))
    model, x_lsd = FlowScore(flow, s.chunk_size), y
    if s.critic_standardize:
        shift, scale = y_fit.mean(0), y_fit.std(0).clamp_min(1e-6)
        model, x_lsd = FlowScore(flow, s.chunk_size, shift=shift, scale=scale), (y - shift) / scale
    batch = min(s.critic_batch_size, y_fit.shape[0])
    per_pass = math.ceil(y_fit.shape[0] / batch)
    est = stein_discrepancy(model, x_lsd, PAPER_ESTIMATE, lam=s.lam, split=s.split, hidden=s.critic_hidden, n_layers=s.critic_layers,
                            n_iters=s.critic_passes * per_pass, lr=s.critic_lr, batch_size=batch, val_every=per_pass,
                            seed=s.seed, progress=progress, device=device)
    times["lsd"], t0 = time.perf_counter() - t0, time.perf_counter()
    sm = score_matching_terms(flow, y_test, n_probes=s.sm_probes, chunk_size=s.chunk_size,
                              generator=torch.Generator().manual_seed(s.seed + 4))
    times["score_matching"] = time.perf_counter() - t0
    return {
        "step": config["step"], "bits_per_dim": float(bpd.mean()), "bits_per_dim_stderr": _stderr(bpd),
        "lsd": est.value, "lsd_stderr": est.stderr, "lsd_best_iteration": est.best_iteration,
        "score_matching": float(sm.mean()), "score_matching_stderr": _stderr(sm),
        "seconds": times, "cpu_seconds": time.process_time() - c0,
    }


def _stderr(values: Tensor) -> float:
    return float(values.std() / math.sqrt(values.numel()))


def _train_config(s: Settings) -> dict[str, Any]:
    full = s.to_dict()
    return {"trial": "train", **{k: full[k] for k in _TRAIN_FIELDS}}


def run(settings: Settings, out: str | Path, options: RunOptions = RunOptions()) -> dict[str, Any]:
    """Train the flow and score every checkpoint (trials of the sweep engine); write the report,
    ``flow_eval.png`` and ``samples.png``."""
    out, start = Path(out), time.perf_counter()
    (train_cfg,) = options.with_device([_train_config(settings)])
    (trained,) = sweep(functools.partial(train_trial, progress=options.progress), [train_cfg], out, options,
                       artifacts=True)
    shutil.copyfile(trial_folder(out / "trials", train_cfg) / "samples.png", out / "samples.png")
    configs = options.with_device({"trial": "evaluate", **settings.to_dict(), "step": k}
                                  for k in settings.checkpoint_steps)
    rows = sweep(functools.partial(evaluate_trial, trials=out / "trials", progress=options.progress), configs, out,
                 options)
    rows = [{"checkpoint": k, **r} for k, r in enumerate(rows, start=1)]
    spearman = _spearman(rows)
    rho_lsd, rho_sm = spearman["lsd"]["rho"], spearman["score_matching"]["rho"]
    flags = {"lsd_rho_at_least_0.9": rho_lsd >= 0.9, "lsd_rho_above_score_matching": rho_lsd > rho_sm + 1e-9}
    flags["claim_holds"] = all(flags.values())
    verdict = (f"{'replicates' if flags['claim_holds'] else 'does not replicate'}: Spearman correlation with "
               f"bits/dim over {len(rows)} checkpoints is {rho_lsd:.2f} for LSD and {rho_sm:.2f} for score matching")
    cpu = trained["cpu_seconds"] + sum(r["cpu_seconds"] for r in rows)
    seconds = {"train": trained["seconds"], "evaluate": sum(sum(r["seconds"].values()) for r in rows),
               "total": time.perf_counter() - start, "cpu_total": cpu, "threads": options.threads}
    numbers = {"rows": rows, "spearman": spearman, **flags, "resumed_from": trained["resumed_from"],
               "seconds": seconds, "critic_coordinates": "standardized logit space" if settings.critic_standardize
               else "logit space"}
    table = markdown_table(
        ["checkpoint", "step", "bits/dim", "± se", "LSD", "± se", "score matching", "± se"],
        [[r["checkpoint"], r["step"], r["bits_per_dim"], r["bits_per_dim_stderr"], r["lsd"], r["lsd_stderr"],
          r["score_matching"], r["score_matching_stderr"]] for r in rows])
    rho_table = markdown_table(["against bits/dim", "Spearman rho", "p-value"],
                               [[k, v["rho"], v["pvalue"]] for k, v in spearman.items()])
    return REPRODUCTION.write_report(
        out, settings, seconds=seconds["total"], verdict=verdict, numbers=numbers,
        tables=[("Checkpoints", table), ("Rank correlation with bits/dim", rho_table)],
        figures=[_plot(rows, spearman, out / "flow_eval.png", settings), out / "samples.png"],
    )


REPRODUCTION = Reproduction(
    name="flow-eval",
    description="Figure 7: bits/dim, LSD and score matching across a Glow-like flow's checkpoints",
    paper_claim=("Figure 7: across the checkpoints of a Glow-like flow trained on MNIST, LSD goes down "
                 "throughout training, tracking the negative log-likelihood, while score matching is not highly "
                 "correlated with it."),
    verdict_rule=("replicates when LSD's Spearman correlation with bits/dim over the checkpoints is at least 0.9 "
                  "and above score matching's"),
    full=FULL,
    quick=QUICK,
    run=run,
    setup_note=("The paper's data, MNIST, cannot be obtained on this machine; Fashion-MNIST stands in "
                "(`--dataset mnist --data-root DIR` runs the paper's data from its IDX files)."),
)


def _spearman(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    from scipy.stats import spearmanr

    out = {}
    for key in ("lsd", "score_matching"):
        res = spearmanr([r[key] for r in rows], [r["bits_per_dim"] for r in rows])
        rho, p = float(res.statistic), float(res.pvalue)
        out[key] = {"rho": rho if math.isfinite(rho) else 0.0, "pvalue": p if math.isfinite(p) else 1.0}
    return out


def _plot(rows: list[dict[str, Any]], spearman: dict[str, Any], path: Path, s: Settings) -> Path:
    plt = pyplot()
    steps = [r["step"] for r in rows]
    lsd_space = "standardized logit space" if s.critic_standardize else "logit space"
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    panels = [("bits_per_dim", "bits/dim (test set, pixel space)", None),
              ("lsd", f"LSD ({lsd_space})", spearman["lsd"]["rho"]),
              ("score_matching", "score matching (logit space)", spearman["score_matching"]["rho"])]
    for ax, (key, title, rho) in zip(axes, panels):
        ax.errorbar(steps, [r[key] for r in rows], yerr=[r[key + "_stderr"] for r in rows], marker="o", capsize=3, ms=4)
        ax.set_title(title + ("" if rho is None else f"\nSpearman with bits/dim: {rho:.2f}"), fontsize=10)
        ax.set_xlabel("training step")
        if steps[-1] / steps[0] >= 20:
            ax.set_xscale("log")
        ax.grid(alpha=0.3)
    fig.suptitle(f"Flow checkpoints on {s.dataset}: bits/dim vs LSD vs score matching", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

r"""Figure 8: linear ICA trained by ML, LSD, SSM, NCE and CNCE over D (Sec. 8.1, App. B.5).

For each source family, dimension D and seed: a true mixing matrix with standard Gaussian
entries, redrawn until its condition number is below D (:meth:`LinearICA.random`), and training,
validation and test sets drawn from it. Every method starts from the **identity** matrix and runs
over its search grid (App. B.5; also the critic's learning rate as a factor on the model's); the
configuration with the best validation log-likelihood is kept, and its test log-likelihood per
example under the exact ICA density of the learned W is reported, with its gap to ML.

Sources: ``laplace`` (the paper's text), whose score jumps on planes that move with W; the
derivative of ``sign`` is that of tanh(z / ``boundary_width``) (0: autograd's zero derivative,
see :class:`~steinkit.models.LinearICA`); ``logistic``, smooth, as in the authors' code. Beyond
B.5 (``--parametrization mixing --lr-decay constant`` is the paper's literal setting) the
unmixing matrix B = W^{-1} is trained, with a cosine-decayed rate. ``lsd_oracle`` is a
diagnostic: Algorithm 3's model step with the exact optimal critic f* ∝ s_q − s_p. Why these
choices, with measurements: ``docs/archive/ica.md``. Each run (source × D × seed × method ×
configuration) is one trial of the sweep engine, checkpointing into its trial folder.

Example:
    steinkit reproduce ica --out runs/ica --quick
    steinkit reproduce ica --out runs/ica-d50 --dims 50 --seeds 2 --steps 200000 --sources laplace
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import time
from pathlib import Path
from typing import Any, Literal, Sequence

import torch
from torch import Tensor

from ..models import LinearICA
from ..train import METHODS, LSDOracle, train
from .._io import save_figure
from .report import markdown_table, pyplot
from .reproduction import Reproduction
from .runner import sweep, trial_folder
from .settings import ReproductionSettings, RunOptions, setting, trial_device

__all__ = ["REPRODUCTION", "Settings", "FULL", "QUICK", "ALL_METHODS", "run", "run_trial", "trial_configs", "grid",
           "make_problem"]

_LABELS = {"ml": "Max. Likelihood", "lsd": "LSD", "ssm": "Score Matching (SSM)", "nce": "NCE", "cnce": "CNCE",
           "lsd_oracle": "LSD, exact critic (diagnostic)"}
#: Every method of the sweep, in the paper's order: the trainer's five and ``lsd_oracle``.
ALL_METHODS: tuple[str, ...] = tuple(m for m in _LABELS if m in (*METHODS, "lsd_oracle"))


@dataclasses.dataclass(frozen=True)
class Settings(ReproductionSettings):
    """Settings of the Figure-8 reproduction; the tuples ending in ``s`` are search grids."""

    dims: tuple[int, ...] = setting((5, 10, 20, 30, 40, 50), "dimensions D", minimum=1)
    seeds: int = setting(5, "number of seeds: seed, seed + 1, ...", minimum=1)
    steps: int = setting(100_000, "training steps per run (0: 2000·D)", minimum=0)
    methods: tuple[Literal[ALL_METHODS], ...] = setting(ALL_METHODS, "training methods")
    sources: tuple[Literal["laplace", "logistic"], ...] = setting(("laplace", "logistic"), "source families")
    lrs: tuple[float, ...] = setting((1e-3, 1e-4, 1e-5), "model learning rates (every method)", minimum=1e-12)
    lams: tuple[float, ...] = setting((0.1, 1.0, 10.0), "LSD: critic L2 weights λ", minimum=1e-12)
    critic_steps: tuple[int, ...] = setting((1, 5), "LSD: critic updates per model update", minimum=1)
    critic_lr_factors: tuple[float, ...] = setting((1.0, 0.1, 0.03), "LSD: critic rates / model rate", minimum=1e-12)
    cnce_eps: tuple[float, ...] = setting((0.01, 0.1, 1.0, 10.0), "CNCE: noise scales ε", minimum=1e-12)
    batch_size: int = setting(100, "mini-batch size", minimum=1)
    n_train: int = setting(400_000, "training points", minimum=1)
    n_val: int = setting(5_000, "validation points (pick the configuration)", minimum=1)
    n_test: int = setting(10_000, "test points", minimum=1)
    curve_every: int = setting(1_000, "steps between points of the learning curves", minimum=1)
    boundary_width: float = setting(0.5, "Laplace: width of the smoothed step of sign (0: a hard step)", minimum=0)
    parametrization: Literal["mixing", "unmixing"] = setting("unmixing", "train W (Eq. 14) or B = W^-1")
    lr_decay: Literal["constant", "cosine"] = setting("cosine", "the model's rate schedule (not the oracle's)")


FULL = Settings()
#: D in {10, 20}; 2 seeds; 2000·D steps; learning rate 1e-3 only (the smaller rates barely move W
#: in so few steps); LSD with λ = 0.1, one critic step (B.5: "1 critic step works best") and the
#: critic at lr/10; CNCE ε in {1, 10}.
QUICK = Settings(dims=(10, 20), seeds=2, steps=0, lrs=(1e-3,), lams=(0.1,), critic_steps=(1,),
                 critic_lr_factors=(0.1,), cnce_eps=(1.0, 10.0), curve_every=500)




def grid(method: str, s: Settings) -> list[dict[str, Any]]:
    """The search grid of one method: a list of configuration dicts.

    Example:
        >>> len(grid("lsd", FULL)), len(grid("cnce", FULL)), len(grid("ml", FULL))
        (54, 12, 3)
    """
    if method == "lsd":
        return [{"lr": lr, "lam": lam, "critic_steps": cs, "critic_lr_factor": fac}
                for lr, lam, cs, fac in itertools.product(s.lrs, s.lams, s.critic_steps, s.critic_lr_factors)]
    if method == "cnce":
        return [{"lr": lr, "eps": eps} for lr in s.lrs for eps in s.cnce_eps]
    return [{"lr": lr} for lr in s.lrs]


def trial_configs(s: Settings) -> list[dict[str, Any]]:
    """One config per (source, D, seed, method, grid configuration), costliest first.

    Example:
        >>> len(trial_configs(QUICK))
        56
    """
    shared = {k: getattr(s, k) for k in ("batch_size", "n_train", "n_val", "n_test", "curve_every",
                                         "parametrization", "lr_decay")}
    methods = [m for m in ALL_METHODS if m in s.methods]
    configs = [
        {**shared, "source": source, "dim": dim, "seed": seed, "method": method, "config": config,
         "steps": s.steps or 2000 * dim, "boundary_width": s.boundary_width if source == "laplace" else None}
        for source, dim, seed, method in itertools.product(
            dict.fromkeys(s.sources), sorted(set(s.dims)), range(s.seed, s.seed + s.seeds), methods)
        for config in grid(method, s)
    ]
    # LSD (critic steps) and larger D first, for load balancing
    cost = lambda c: c["steps"] * (1 + 3 * c["config"].get("critic_steps", 0)) * (1 + c["dim"] / 50)  # noqa: E731
    return sorted(configs, key=cost, reverse=True)


def make_problem(source: str, dim: int, seed: int, n_train: int, n_val: int, n_test: int):
    """The true model and (train, val, test) data of one (source, D, seed).

    The mixing matrix depends on (D, seed) only, so both source families share it.
    """
    g = torch.Generator().manual_seed(1_000_003 * seed + dim)
    truth = LinearICA.random(dim, generator=g, sources=source)
    gd = torch.Generator().manual_seed(2_000_003 * seed + 7 * dim + (1 if source == "logistic" else 0))
    x = truth.sample(n_train + n_val + n_test, generator=gd)
    return truth, x[:n_train], x[n_train : n_train + n_val], x[n_train + n_val :]


def _mean_loglik(model: LinearICA, x: Tensor) -> float:
    try:
        with torch.no_grad():
            return float(model.log_prob(x).mean())
    except ValueError:  # W became singular
        return float("nan")


def run_trial(c: dict[str, Any], folder: Path) -> dict[str, Any]:
    """Train one configuration of one method (checkpoints in ``folder``); its scores and curve."""
    sizes = (c["n_train"], c["n_val"], c["n_test"])
    truth, x_train, x_val, x_test = make_problem(c["source"], c["dim"], c["seed"], *sizes)
    model = LinearICA(torch.eye(c["dim"]), boundary_width=c["boundary_width"] or None,
                      parametrization=c["parametrization"], sources=c["source"])
    options = dict(c["config"])
    if "critic_lr_factor" in options:
        options["critic_lr"] = options["lr"] * options.pop("critic_lr_factor")

    def eval_fn(m: LinearICA) -> dict[str, float]:
        return {"val": _mean_loglik(m, x_val), "test": _mean_loglik(m, x_test)}

    t0, error, history, diverged_at = time.perf_counter(), None, (), None
    try:
        oracle = c["method"] == "lsd_oracle"  # the exact critic f* = s_q - s_p, at a constant rate
        res = train(model, x_train, method=LSDOracle(truth) if oracle else c["method"], steps=c["steps"],
                    batch_size=c["batch_size"], eval_fn=eval_fn, eval_every=c["curve_every"],
                    log_every=c["curve_every"], checkpoint=folder / "checkpoint.pt",
                    checkpoint_every=max(c["curve_every"], c["steps"] // 10), on_nan="stop",
                    lr_decay="constant" if oracle else c["lr_decay"], seed=10_007 * c["seed"] + c["dim"],
                    progress=False, device=trial_device(c), **options)
        history, diverged_at = res.history, res.diverged_at
    except (ValueError, RuntimeError) as exc:  # e.g. W turned singular
        error = f"{type(exc).__name__}: {exc}"
    (folder / "checkpoint.pt").unlink(missing_ok=True)
    return {
        **{k: c[k] for k in ("source", "dim", "seed", "method", "config", "steps")},
        "val_loglik": _mean_loglik(model, x_val) if error is None else math.nan,
        "test_loglik": _mean_loglik(model, x_test) if error is None else math.nan,
        "true_test_loglik": _mean_loglik(truth, x_test), "diverged_at": diverged_at, "error": error,
        "w_norm": float(model.W.detach().norm()), "true_w_norm": float(truth.W.detach().norm()),
        "seconds": time.perf_counter() - t0,
        "curve": [{k: h[k] for k in ("step", "val", "test", "loss", "hess_term") if k in h} for h in history],
    }


def _mean_sd(values: Sequence[float]) -> tuple[float, float]:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    if not vals:
        return math.nan, math.nan
    m = sum(vals) / len(vals)
    return m, math.sqrt(sum((v - m) ** 2 for v in vals) / (len(vals) - 1)) if len(vals) > 1 else 0.0


def _select(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (source, D, seed, method): the configuration with the best validation log-likelihood."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for r in runs:
        groups.setdefault((r["source"], r["dim"], r["seed"], r["method"]), []).append(r)
    keep = ("source", "method", "dim", "seed", "test_loglik", "val_loglik", "true_test_loglik", "config",
            "diverged_at", "w_norm", "true_w_norm", "trial")
    rows = []
    for _, rs in sorted(groups.items()):
        best = max(rs, key=lambda r: r["val_loglik"] if math.isfinite(r["val_loglik"]) else -math.inf)
        rows.append({**{k: best[k] for k in keep}, "n_configs": len(rs)})
    return rows


def _table(rows: list[dict[str, Any]], methods: Sequence[str], dims: Sequence[int], source: str) -> str:
    """Mean ± sd over seeds of the test log-likelihood, one row per method and a row for the true W."""
    def at(dim: int, method: str | None = None) -> list[dict[str, Any]]:
        return [r for r in rows if (r["source"], r["dim"]) == (source, dim) and method in (None, r["method"])]

    def cell(sel: list[dict[str, Any]]) -> str:
        m, sd = _mean_sd([r["test_loglik"] for r in sel])
        return f"{m:.2f} ± {sd:.2f}" + ("†" if any(r["diverged_at"] for r in sel) else "") if sel else "—"

    truth = [_mean_sd(list({r["seed"]: r["true_test_loglik"] for r in at(d)}.values()))[0] for d in dims]
    body = [[_LABELS[m], *(cell(at(d, m)) for d in dims)] for m in methods]
    body.append(["(true W)", *(f"{t:.2f}" for t in truth)])
    note = "\n† a run stopped on a non-finite loss; its last finite parameters are scored.\n" if any(
        r["diverged_at"] for r in rows if r["source"] == source) else ""
    return markdown_table(["Method", *(f"D={d}" for d in dims)], body) + note


def _gaps(rows: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """Relative gap of each method to ML, (ML − method)/|ML| per seed, averaged over seeds."""
    ml = {(r["source"], r["dim"], r["seed"]): r["test_loglik"] for r in rows if r["method"] == "ml"}
    per_seed: dict[str, dict[str, dict[str, list[float]]]] = {}
    for r in rows:
        ref = ml.get((r["source"], r["dim"], r["seed"]))
        if r["method"] != "ml" and ref is not None and math.isfinite(ref):
            gap = (ref - r["test_loglik"]) / abs(ref)
            per_seed.setdefault(r["source"], {}).setdefault(r["method"], {}).setdefault(str(r["dim"]), []).append(gap)
    return {src: {m: {d: _mean_sd(v)[0] for d, v in by_d.items()} for m, by_d in ms.items()}
            for src, ms in per_seed.items()}


def _verdict(gaps: dict[str, dict[str, dict[str, float]]]) -> str:
    """Does LSD end within 1% of ML's test log-likelihood at every D (as Figure 8 shows it)?"""
    lsd = {src: ms["lsd"] for src, ms in gaps.items() if "lsd" in ms}
    if not lsd:
        return "no verdict: the claim needs both ml and lsd among the methods"
    worst = max((g if math.isfinite(g) else math.inf) for by_d in lsd.values() for g in by_d.values())
    word = "replicates" if worst < 0.01 else "does not replicate"
    if not math.isfinite(worst):
        return f"{word}: LSD has no finite test log-likelihood at some D"
    per_d = "; ".join(f"{src}: " + ", ".join(f"D={d} {100 * g:.2f}%" for d, g in by_d.items())
                      for src, by_d in lsd.items())
    return (f"{word}: at its worst D, LSD's test log-likelihood ends {100 * abs(worst):.2f}% "
            f"{'below' if worst > 0 else 'above'} ML's (gap (ML − LSD)/|ML| per D: {per_d})")


def run(settings: Settings, out: str | Path, options: RunOptions = RunOptions()) -> dict[str, Any]:
    """Run the sweep (one trial per run); write the report, its tables and ``ica_curves.png``."""
    out, start = Path(out), time.perf_counter()
    configs = options.with_device(trial_configs(settings))
    runs = [{**r, "trial": trial_folder("trials", c).as_posix()}
            for c, r in zip(configs, sweep(run_trial, configs, out, options, artifacts=True))]
    rows, dims = _select(runs), sorted(set(settings.dims))
    methods = [m for m in ALL_METHODS if m in settings.methods]
    gaps = _gaps(rows)
    ssm = [{k: r[k] for k in ("source", "dim", "seed", "config", "test_loglik", "w_norm", "true_w_norm", "diverged_at")}
           | {"mean_hess_term": _mean_sd([c["hess_term"] for c in r["curve"] if "hess_term" in c])[0]}
           for r in runs if r["method"] == "ssm"]
    figure = _plot_curves(runs, rows, dims[-1], settings.sources, methods, out / "ica_curves.png")
    tables = [(f"Test log-likelihood per example, {src} sources (mean ± sd over seeds; best config on validation)",
               _table(rows, methods, dims, src)) for src in settings.sources]
    numbers = {"methods": methods, "init": "identity matrix for every method, dimension and seed", "rows": rows,
               "gap_to_ml": gaps, "ssm_runs": ssm, "n_runs": len(runs),
               "run_seconds_total": sum(r["seconds"] for r in runs)}
    return REPRODUCTION.write_report(out, settings, seconds=time.perf_counter() - start, verdict=_verdict(gaps),
                                     numbers=numbers, tables=tables, figures=[figure])


REPRODUCTION = Reproduction(
    name="ica",
    description="Figure 8: linear ICA trained by ML, LSD, SSM, NCE and CNCE over D",
    paper_claim=("Figure 8: as D grows from 5 to 50, LSD closely tracks maximum likelihood's test "
                 "log-likelihood, while the other unnormalized methods (SSM, NCE, CNCE) fall behind or diverge."),
    verdict_rule=("replicates when, at every D and for every source, LSD's mean test log-likelihood is within 1% "
                  "of ML's ((ML − LSD)/|ML| < 0.01)"),
    full=FULL,
    quick=QUICK,
    run=run,
)


def _plot_curves(runs, rows, dim: int, sources: Sequence[str], methods: Sequence[str], path: Path) -> Path:
    """Learning curves (test log-likelihood, mean over seeds of the kept runs) at dimension ``dim``."""
    plt = pyplot()
    by_trial = {r["trial"]: r for r in runs}
    fig, axes = plt.subplots(1, len(sources), figsize=(5.5 * len(sources), 4), squeeze=False)
    for ax, source in zip(axes[0], sources):
        truth = []
        for method in methods:
            sel = [r for r in rows if (r["source"], r["dim"], r["method"]) == (source, dim, method)]
            curves = [[(p["step"], p["test"]) for p in by_trial[r["trial"]]["curve"] if "test" in p] for r in sel]
            curves = [c for c in curves if c]
            if curves:
                at_step = list(zip(*curves))  # per step, a (step, test) pair of each curve, up to the shortest
                mean = [sum(test for _, test in pairs) / len(pairs) for pairs in at_step]
                ax.plot([pairs[0][0] for pairs in at_step], mean, label=_LABELS[method])
                truth.extend(r["true_test_loglik"] for r in sel)
        if truth:
            ax.axhline(sum(truth) / len(truth), color="k", ls="--", lw=0.8, label="true W")
            finite = [v for v in truth if math.isfinite(v)]
            lo = min(finite) if finite else -1.0
            ax.set_ylim(lo * 1.6, lo * 0.9 if lo < 0 else lo * 1.1)
        ax.set_title(f"{source} sources, D = {dim}")
        ax.set_xlabel("iteration")
        ax.set_ylabel("test log-likelihood per example")
        ax.legend(fontsize=8)
    save_figure(fig, path)
    return path

"""Figure 5: power of Stein goodness-of-fit tests against perturbed Gaussian-Bernoulli RBMs.

For each visible/hidden size (dx, dh) and each repetition, a random RBM p is drawn (B uniform on
{-1, +1}, b, c ~ N(0, I); paper B.1) with n = 1000 samples from p (Gibbs, burn-in 2000). The
model under test q is p with N(0, σ²) noise added to B, σ in {0, .01, .02, .04, .06}; each test
asks whether the samples came from q at level α = 0.05. σ = 0 measures the size.

Methods (one trial = one method on one (dx, dh, σ) and a block of ``batch`` repetitions):
  * ``lsd``: the LSD test (Algorithm 2) with the library defaults, which follow B.1: split
    800/100/100, 2x300 Swish critic, dropout 0.5, weight decay 5e-4, λ = .5, 1000 full-batch
    Adam steps, validation every 100. The ``batch`` tests of a trial train as one ensemble.
  * ``ksd``: quadratic-time KSD with a 1000-draw wild bootstrap; ``lksd``: linear-time KSD.
    Both use the median-heuristic bandwidth on all n points by default (the kernel does not
    depend on the model, so no samples need to be held out); ``--kernel-bandwidth learn`` keeps
    200 points to maximize the power criterion and tests on the other 800 (B.1's adaptive
    kernel protocol).
  * ``fssd``: FSSD with 5 optimized locations, chosen on 200 points, tested on 800 (B.1).

Every random choice comes from the repetition's seed: the RBM, its samples and the
perturbation direction (common to all σ of a repetition, scaled by σ) depend on (seed, dx,
dh, rep), the tests' own randomness on (seed, dx, dh, rep, σ); all methods see the same data
(each trial records a checksum of it). Trials run through :func:`~steinkit.experiments.runner.run_trials`
and live in ``out/trials.sqlite``: a rerun skips finished trials.

Measured (pieces run with ``--dims/--sigmas/--methods/--reps/--seed``, pooled): size at dx = 50,
σ = 0: LSD 0.061 ± 0.015 (247 reps), KSD 0.035, LKSD 0.040, FSSD 0.030 (200 reps each). Power
at σ = .01/.02 with 20 reps: dx = 100 LSD .20/1, KSD .45/1, FSSD .10/.65, LKSD .05/.05;
dx = 200 LSD .30/1, KSD .25/1, FSSD .00/.55, LKSD .05/.15 — LSD overtakes the linear-time tests
as dx grows and matches quadratic KSD at dx = 200, as the paper reports.

Example:
    >>> cfg = trial_configs(dims=[(5, 3)], sigmas=[0.5], reps=1, methods=["lksd"], n=200, burn_in=50)[0]
    >>> res = run_trial(cfg)
    >>> len(res["tests"]), 0.0 <= res["tests"][0]["pvalue"] <= 1.0
    (1, True)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch

from ..gof import METHODS, gof_tests
from ..models import GaussianBernoulliRBM
from .runner import BACKENDS, run_trials

__all__ = [
    "NAME",
    "DESCRIPTION",
    "PAPER_DIMS",
    "SIGMAS",
    "QUICK_REPS",
    "add_arguments",
    "add_rbm_sweep_arguments",
    "derive_seed",
    "parse_dims",
    "rbm_problem",
    "trial_configs",
    "run_trial",
    "summarize",
    "run",
]

NAME = "rbm-power"
QUICK_REPS = 5  # ~25 LSD tests of ~25 CPU-s each: ~6-7 min on 2 free cores
DESCRIPTION = (
    "Figure 5: rejection rates of LSD/KSD/LKSD/FSSD tests against perturbed Gaussian-Bernoulli RBMs "
    f"(--quick: dx=50 only, {QUICK_REPS} repetitions instead of 200)"
)

PAPER_DIMS: dict[int, int] = {50: 40, 100: 80, 200: 100}
SIGMAS: tuple[float, ...] = (0.0, 0.01, 0.02, 0.04, 0.06)
_KERNEL_BANDWIDTHS = ("median", "learn")


def derive_seed(*parts: Any) -> int:
    """A seed in [0, 2**31) determined by JSON-serializable parts (stable across runs and machines).

    Example:
        >>> derive_seed(0, 50, 40, 3) == derive_seed(0, 50, 40, 3) != derive_seed(0, 50, 40, 4)
        True
    """
    digest = hashlib.sha256(json.dumps(parts, separators=(",", ":")).encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def parse_dims(dims: Any) -> list[tuple[int, int]]:
    """Visible/hidden sizes from ``"50,100"``, ``"50:40,10:5"``, ints, or (dx, dh) pairs.

    A bare dx takes the paper's dh (50->40, 100->80, 200->100), else ``max(1, 4 dx // 5)``.

    Example:
        >>> parse_dims("50,100:10")
        [(50, 40), (100, 10)]
    """
    if isinstance(dims, str):
        items: Iterable[Any] = [s.strip() for s in dims.split(",") if s.strip()]
    elif isinstance(dims, (int, tuple)) and not isinstance(dims, bool):
        items = [dims]
    else:
        items = dims
    out = []
    for item in items:
        try:
            if isinstance(item, str):
                parts = [int(p) for p in item.split(":")]
            elif isinstance(item, (tuple, list)):
                parts = [int(p) for p in item]
            else:
                parts = [int(item)]
            if isinstance(item, bool) or len(parts) not in (1, 2) or min(parts) < 1:
                raise ValueError
        except (TypeError, ValueError):
            raise ValueError(f"dims must list dx or dx:dh with positive ints (e.g. '50,100:80'), got {item!r}") from None
        dx = parts[0]
        dh = parts[1] if len(parts) == 2 else PAPER_DIMS.get(dx, max(1, 4 * dx // 5))
        out.append((dx, dh))
    if not out:
        raise ValueError("dims must name at least one dimension")
    return out


def _parse_list(value: Any, name: str, kind: type) -> list:
    items = [s.strip() for s in value.split(",") if s.strip()] if isinstance(value, str) else list(value)
    try:
        out = [kind(v) for v in items]
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a comma-separated list of {kind.__name__}s, got {value!r}") from None
    if not out:
        raise ValueError(f"{name} must not be empty")
    return out


def rbm_problem(
    dx: int, dh: int, rep: int, sigma: float, *, n: int = 1000, burn_in: int = 2000, seed: int = 0
) -> tuple[GaussianBernoulliRBM, GaussianBernoulliRBM, torch.Tensor]:
    """(p, q, x): a random RBM p, p with B perturbed by N(0, sigma²), and n Gibbs samples from p.

    p, x and the perturbation direction depend only on (seed, dx, dh, rep), so the σ's of a
    repetition share data and differ only in the size of the same perturbation.

    Example:
        >>> p, q, x = rbm_problem(4, 2, rep=0, sigma=0.0, n=10, burn_in=5)
        >>> x.shape, bool(torch.equal(p.B, q.B))
        (torch.Size([10, 4]), True)
    """
    g = torch.Generator().manual_seed(derive_seed(seed, dx, dh, rep))
    p = GaussianBernoulliRBM.random(dx, dh, generator=g)
    x = p.sample(n, burn_in=burn_in, generator=g)
    q = p.perturb(sigma, generator=torch.Generator().manual_seed(derive_seed(seed, dx, dh, rep, "perturb")))
    return p, q, x


def _method_options(method: str, *, n_iters: int, hidden: int, kernel_bandwidth: str, n_bootstrap: int) -> dict:
    if method == "lsd":
        return {"n_iters": n_iters, "hidden": hidden}
    if method == "ksd":
        return {"bandwidth": kernel_bandwidth, "n_bootstrap": n_bootstrap}
    if method == "lksd":
        return {"bandwidth": kernel_bandwidth}
    return {}


def trial_configs(
    *,
    dims: Any = "50,100,200",
    sigmas: Sequence[float] = SIGMAS,
    reps: int = 200,
    methods: Sequence[str] = METHODS,
    batch: int = 1,
    n: int = 1000,
    burn_in: int = 2000,
    alpha: float = 0.05,
    n_iters: int = 1000,
    hidden: int = 300,
    kernel_bandwidth: str = "median",
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """The sweep's trial configs, LSD trials (the slow ones) first.

    Example:
        >>> len(trial_configs(dims="50", reps=4, batch=2))   # 5 sigmas x 2 blocks x 4 methods
        40
    """
    pairs = parse_dims(dims)
    sigmas = _parse_list(sigmas, "sigmas", float)
    if any(not math.isfinite(s) or s < 0 for s in sigmas):
        raise ValueError(f"sigmas must be finite and >= 0, got {sigmas}")
    methods = _parse_list(methods, "methods", str)
    bad = [m for m in methods if m not in METHODS]
    if bad:
        raise ValueError(f"methods must be among {METHODS}, got {bad}")
    for name, value, low in (("reps", reps, 1), ("batch", batch, 1), ("n", n, 4), ("burn_in", burn_in, 0),
                             ("n_iters", n_iters, 1), ("hidden", hidden, 1), ("n_bootstrap", n_bootstrap, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    if not isinstance(alpha, (int, float)) or not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha!r}")
    if kernel_bandwidth not in _KERNEL_BANDWIDTHS:
        raise ValueError(f"kernel_bandwidth must be one of {_KERNEL_BANDWIDTHS}, got {kernel_bandwidth!r}")
    blocks = [list(range(r, min(r + batch, reps))) for r in range(0, reps, batch)]
    order = sorted(methods, key=lambda m: m != "lsd")
    return [
        {
            "experiment": NAME,
            "method": method,
            "dx": dx,
            "dh": dh,
            "sigma": sigma,
            "reps": block,
            "n": n,
            "burn_in": burn_in,
            "alpha": float(alpha),
            "seed": seed,
            "options": _method_options(method, n_iters=n_iters, hidden=hidden,
                                       kernel_bandwidth=kernel_bandwidth, n_bootstrap=n_bootstrap),
        }
        for method in order
        for dx, dh in pairs
        for block in blocks
        for sigma in sigmas
    ]


def run_trial(config: dict[str, Any]) -> dict[str, Any]:
    """One method's tests on one (dx, dh, sigma) for a block of repetitions (pure: config -> result).

    Returns ``{"tests": [{"rep", "statistic", "pvalue", "reject", "seconds"}, ...],
    "data_checksums": [...], "seconds": ...}``; LSD tests of the block train as one ensemble.
    """
    start = time.perf_counter()
    dx, dh, sigma, seed = config["dx"], config["dh"], config["sigma"], config["seed"]
    models, xs, seeds, sums = [], [], [], []
    for rep in config["reps"]:
        _, q, x = rbm_problem(dx, dh, rep, sigma, n=config["n"], burn_in=config["burn_in"], seed=seed)
        models.append(q)
        xs.append(x)
        seeds.append(derive_seed(seed, dx, dh, rep, sigma, "test"))
        sums.append(float(x.double().sum()))
    results = gof_tests(models, xs, method=config["method"], alpha=config["alpha"], seeds=seeds, **config["options"])
    tests = [
        {"rep": rep, "statistic": r.statistic, "pvalue": r.pvalue, "reject": r.reject, "seconds": r.seconds}
        for rep, r in zip(config["reps"], results)
    ]
    return {"tests": tests, "data_checksums": sums, "seconds": time.perf_counter() - start}


def summarize(configs: Sequence[dict], results: Sequence[dict]) -> list[dict[str, Any]]:
    """Rejection rate per (method, dx, dh, sigma) with its binomial standard error.

    Example:
        >>> cfg = {"method": "ksd", "dx": 5, "dh": 3, "sigma": 0.0}
        >>> res = {"tests": [{"reject": True, "seconds": 1.0}, {"reject": False, "seconds": 3.0}]}
        >>> summarize([cfg], [res])[0]["rejection_rate"]
        0.5
    """
    groups: dict[tuple, list[dict]] = {}
    for cfg, res in zip(configs, results):
        key = (cfg["method"], cfg["dx"], cfg["dh"], cfg["sigma"])
        groups.setdefault(key, []).extend(res["tests"])
    rows = []
    for (method, dx, dh, sigma), tests in groups.items():
        reps = len(tests)
        rate = sum(bool(t["reject"]) for t in tests) / reps
        rows.append({
            "method": method,
            "dx": dx,
            "dh": dh,
            "sigma": sigma,
            "reps": reps,
            "rejection_rate": rate,
            "stderr": math.sqrt(rate * (1 - rate) / reps),
            "mean_seconds": sum(t["seconds"] for t in tests) / reps,
        })
    order = {m: i for i, m in enumerate(METHODS)}
    return sorted(rows, key=lambda r: (r["dx"], order.get(r["method"], 99), r["sigma"]))


def _protocol(n: int, n_iters: int, hidden: int, kernel_bandwidth: str, n_bootstrap: int) -> dict[str, str]:
    n_train, n_val = round(0.8 * n), round(0.1 * n)
    n_kernel = round(0.2 * n)
    kernel = ("median heuristic on all n points" if kernel_bandwidth == "median"
              else f"learned (power criterion) on {n_kernel} points, test on {n - n_kernel}")
    return {
        "lsd": f"split {n_train}/{n_val}/{n - n_train - n_val}, 2x{hidden} Swish critic, dropout .5, weight decay 5e-4, "
               f"lam .5, {n_iters} full-batch Adam steps, validation power every 100 selects the critic",
        "ksd": f"bandwidth: {kernel}; {n_bootstrap} wild-bootstrap draws",
        "lksd": f"bandwidth: {kernel}",
        "fssd": f"5 locations and bandwidth optimized on {n_kernel} points, statistic on the other {n - n_kernel}",
    }


def _markdown(rows: Sequence[dict], alpha: float) -> str:
    lines = [f"# {NAME}: rejection rate at alpha = {alpha:g} (± binomial standard error)", ""]
    for dx, dh in sorted({(r["dx"], r["dh"]) for r in rows}):
        sub = [r for r in rows if r["dx"] == dx]
        sigmas = sorted({r["sigma"] for r in sub})
        reps = sorted({r["reps"] for r in sub})
        lines += [f"## dx = {dx}, dh = {dh} ({'/'.join(map(str, reps))} repetitions)", ""]
        lines.append("| method | " + " | ".join(f"σ = {s:g}" for s in sigmas) + " | s/test |")
        lines.append("|---|" + "---|" * (len(sigmas) + 1))
        for method in dict.fromkeys(r["method"] for r in sub):
            cells = {r["sigma"]: r for r in sub if r["method"] == method}
            vals = [f"{cells[s]['rejection_rate']:.2f} ± {cells[s]['stderr']:.2f}" if s in cells else "" for s in sigmas]
            secs = sum(c["mean_seconds"] for c in cells.values()) / len(cells)
            lines.append(f"| {method.upper()} | " + " | ".join(vals) + f" | {secs:.2f} |")
        lines.append("")
    return "\n".join(lines)


def _plot(path: Path, rows: Sequence[dict], alpha: float) -> None:
    from matplotlib.figure import Figure

    pairs = sorted({(r["dx"], r["dh"]) for r in rows})
    fig = Figure(figsize=(4.2 * len(pairs) + 1.0, 3.6), layout="constrained")
    axes = fig.subplots(1, len(pairs), sharey=True, squeeze=False)[0]
    for ax, (dx, dh) in zip(axes, pairs):
        sub = [r for r in rows if r["dx"] == dx]
        for method in dict.fromkeys(r["method"] for r in sub):
            pts = sorted((r["sigma"], r["rejection_rate"], r["stderr"]) for r in sub if r["method"] == method)
            s, rate, se = zip(*pts)
            ax.errorbar(s, rate, yerr=se, marker="o", capsize=3, label=method.upper())
        ax.axhline(alpha, color="gray", lw=0.8, ls="--")
        reps = max(r["reps"] for r in sub)
        ax.set_title(f"dx = {dx}, dh = {dh} ({reps} reps)")
        ax.set_xlabel("perturbation σ")
        ax.set_ylim(-0.03, 1.03)
    axes[0].set_ylabel(f"rejection rate (α = {alpha:g})")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right center")
    fig.savefig(path, dpi=120)


def run(
    out: str | os.PathLike,
    *,
    quick: bool = False,
    jobs: int = 1,
    backend: str = "loky",
    reps: int | None = None,
    dims: Any = None,
    sigmas: Any = None,
    methods: Any = None,
    batch: int = 1,
    n: int = 1000,
    burn_in: int = 2000,
    alpha: float = 0.05,
    n_iters: int = 1000,
    hidden: int = 300,
    kernel_bandwidth: str = "median",
    n_bootstrap: int = 1000,
    seed: int = 0,
    progress: bool = True,
) -> dict[str, Any]:
    """Run (or resume) the sweep; write results.json, results.md and figure5.png into ``out``.

    ``quick`` sets dims to 50 (dh 40) and reps to :data:`QUICK_REPS` unless given; every test
    keeps the paper's settings. Finished trials are kept in ``out/trials.sqlite``.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    dims = parse_dims(dims if dims is not None else ("50" if quick else "50,100,200"))
    reps = reps if reps is not None else (QUICK_REPS if quick else 200)
    settings = dict(
        dims=dims, sigmas=sigmas if sigmas is not None else SIGMAS, reps=reps,
        methods=methods if methods is not None else METHODS, batch=batch, n=n, burn_in=burn_in, alpha=alpha,
        n_iters=n_iters, hidden=hidden, kernel_bandwidth=kernel_bandwidth, n_bootstrap=n_bootstrap, seed=seed,
    )
    configs = trial_configs(**settings)
    start = time.perf_counter()
    results = run_trials(run_trial, configs, db_path=out / "trials.sqlite", jobs=jobs, backend=backend,
                         progress=progress)
    rows = summarize(configs, results)
    same_data, seen = True, {}
    for cfg, res in zip(configs, results):  # every method of a repetition saw the same samples
        for rep, checksum in zip(cfg["reps"], res["data_checksums"]):
            same_data &= seen.setdefault((cfg["dx"], cfg["dh"], cfg["sigma"], rep), checksum) == checksum
    report = {
        "experiment": NAME,
        "quick": quick,
        "note": (f"{'--quick preset: ' if quick else ''}(dx, dh) = {', '.join(f'({a}, {b})' for a, b in dims)}; "
                 f"{reps} repetitions per setting (the paper: 200)"),
        "settings": {**settings, "dims": [list(p) for p in dims], "sigmas": sorted({c["sigma"] for c in configs}),
                     "methods": sorted({c["method"] for c in configs}, key=METHODS.index),
                     "jobs": jobs, "backend": backend},
        "protocol": _protocol(n, n_iters, hidden, kernel_bandwidth, n_bootstrap),
        "rows": rows,
        "all_methods_saw_same_data": same_data,
        "n_trials": len(configs),
        "seconds": time.perf_counter() - start,
    }
    (out / "results.json").write_text(json.dumps(report, indent=2))
    (out / "results.md").write_text(_markdown(rows, alpha))
    _plot(out / "figure5.png", rows, alpha)
    return report


def add_rbm_sweep_arguments(parser: argparse.ArgumentParser) -> None:
    """The options ``rbm-power`` and ``rbm-eval`` share: workers, backend, the RBMs and their samples."""
    parser.add_argument("--jobs", type=int, default=1, help="parallel trial processes (default 1)")
    parser.add_argument("--backend", choices=BACKENDS, default="loky",
                        help="joblib backend: loky (local), dask or ray (optional extras)")
    parser.add_argument("--dims", default=None,
                        help="visible dims, optionally dx:dh (default 50,100,200 with dh 40,80,100; --quick: 50)")
    parser.add_argument("--sigmas", default=None, help="perturbation stds (default 0,0.01,0.02,0.04,0.06)")
    parser.add_argument("--n", type=int, default=1000, help="samples from each RBM p (default 1000)")
    parser.add_argument("--burn-in", type=int, default=2000, help="Gibbs burn-in sweeps (default 2000)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Command-line options of ``steinkit reproduce rbm-power``."""
    add_rbm_sweep_arguments(parser)
    parser.add_argument("--reps", type=int, default=None,
                        help=f"repetitions per setting (default 200; --quick: {QUICK_REPS})")
    parser.add_argument("--methods", default=None, help="subset of lsd,ksd,lksd,fssd (default all)")
    parser.add_argument("--batch", type=int, default=1,
                        help="repetitions per trial; their LSD critics train as one ensemble (default 1)")
    parser.add_argument("--alpha", type=float, default=0.05, help="test level (default 0.05)")
    parser.add_argument("--n-iters", type=int, default=1000, help="LSD critic training steps (default 1000)")
    parser.add_argument("--hidden", type=int, default=300, help="LSD critic width (default 300)")
    parser.add_argument("--kernel-bandwidth", choices=_KERNEL_BANDWIDTHS, default="median",
                        help="KSD/LKSD bandwidth: median heuristic on all points, or learned on 200 of them")
    parser.add_argument("--n-bootstrap", type=int, default=1000, help="KSD bootstrap draws (default 1000)")
    parser.add_argument("--seed", type=int, default=0)

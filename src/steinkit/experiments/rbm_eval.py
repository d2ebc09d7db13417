"""Figure 6: scoring perturbed Gaussian-Bernoulli RBMs with LSD, kernel Stein discrepancies and the optimum.

For each (dx, dh) a random RBM p (paper B.1) gives n = 1000 Gibbs samples (burn-in 2000). Each
model q_σ adds σ·E to its weights B, with one N(0, I) direction E shared by all σ in
{0, .01, .02, .04, .06}, so the models are nested and a good score grows with σ from 0. Scores,
each with the error bar σ/√n of its sample mean:

  * ``lsd``: :func:`steinkit.stein_discrepancy` (Algorithm 1): split 800/100/100, the critic
    maximizes Eq. 11 − λ‖f‖² with λ = .5, mean − std selects it on validation (every 100
    steps), the value is the mean exact-trace Stein term on the 100 test points. The same split
    for every σ. The critic is B.1's (2x300 Swish, dropout .5, weight decay 5e-4; B.2 keeps B.1's
    models): without dropout and weight decay it overfits the 800 training points within 100
    steps at dx = 50 (training mean Stein term ~20 and growing while the validation mean stays
    near 0), and its test values carry 3-7x larger error bars.
  * ``ksd`` / ``lksd``: quadratic / linear KSD² with the RBF bandwidth learned to maximize the
    estimate itself (``objective="value"``, B.2) on 200 points, then estimated on the other 800.
  * ``theory``: the LSD of the optimal critic, E_p‖s_q − s_p‖²/(2λ) (:func:`steinkit.optimal_lsd`),
    averaged over all n samples (the optimal critic needs no training split).

One trial is one (dx, dh, σ, seed); trials live in ``out/trials.sqlite`` and resume.

Example:
    >>> cfg = trial_configs(dims="4:2", sigmas=[0.5], n=200, burn_in=20, n_iters=20, hidden=8)[0]
    >>> sorted(r["method"] for r in run_trial(cfg)["rows"])
    ['ksd', 'lksd', 'lsd', 'theory']
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path
from typing import Any, Sequence

import torch

from ..evaluate import stein_discrepancy
from ..gof.ksd import ksd_estimate, learn_ksd_bandwidth
from ..gof.lksd import learn_lksd_bandwidth, lksd_estimate
from ..models import GaussianBernoulliRBM
from ..stein import optimal_lsd
from .rbm_power import SIGMAS, _parse_list, add_rbm_sweep_arguments, derive_seed, parse_dims
from .runner import run_trials

__all__ = ["NAME", "DESCRIPTION", "EVAL_METHODS", "add_arguments", "trial_configs", "run_trial", "run"]

NAME = "rbm-eval"
DESCRIPTION = (
    "Figure 6: LSD vs learned-bandwidth KSD/linear KSD vs the optimal-critic value for perturbed "
    "Gaussian-Bernoulli RBMs (--quick: dx=50 only)"
)
EVAL_METHODS = ("lsd", "ksd", "lksd", "theory")
_LABELS = {"lsd": "LSD (learned critic)", "theory": "optimal critic E‖s_q−s_p‖²/2λ",
           "ksd": "KSD² (quadratic)", "lksd": "KSD² (linear)"}


def trial_configs(
    *,
    dims: Any = "50,100,200",
    sigmas: Sequence[float] = SIGMAS,
    seeds: Sequence[int] = (0,),
    n: int = 1000,
    burn_in: int = 2000,
    lam: float = 0.5,
    n_iters: int = 1000,
    hidden: int = 300,
    dropout: float = 0.5,
    weight_decay: float = 5e-4,
    kernel_train: float = 0.2,
) -> list[dict[str, Any]]:
    """One config per (dx, dh, seed, σ).

    Example:
        >>> len(trial_configs(dims="50,100", seeds=[0, 1]))
        20
    """
    pairs = parse_dims(dims)
    sigmas = _parse_list(sigmas, "sigmas", float)
    if any(not math.isfinite(s) or s < 0 for s in sigmas):
        raise ValueError(f"sigmas must be finite and >= 0, got {sigmas}")
    seeds = _parse_list(seeds, "seeds", int)
    for name, value, low in (("n", n, 20), ("burn_in", burn_in, 0), ("n_iters", n_iters, 1), ("hidden", hidden, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    if not isinstance(lam, (int, float)) or not lam > 0:
        raise ValueError(f"lam must be > 0, got {lam!r}")
    if not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise ValueError(f"dropout must lie in [0, 1), got {dropout!r}")
    if not isinstance(weight_decay, (int, float)) or not weight_decay >= 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay!r}")
    if not isinstance(kernel_train, float) or not 0 < kernel_train < 1:
        raise ValueError(f"kernel_train must be a fraction in (0, 1), got {kernel_train!r}")
    return [
        {
            "experiment": NAME,
            "dx": dx,
            "dh": dh,
            "sigma": sigma,
            "seed": seed,
            "n": n,
            "burn_in": burn_in,
            "lam": float(lam),
            "lsd": {"n_iters": n_iters, "hidden": hidden, "dropout": float(dropout),
                    "weight_decay": float(weight_decay)},
            "kernel_train": kernel_train,
        }
        for dx, dh in pairs
        for seed in seeds
        for sigma in sigmas
    ]


def _kernel_rows(x: torch.Tensor, s: torch.Tensor, train_fraction: float, seed: int) -> list[dict[str, Any]]:
    perm = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(seed))
    n_train = round(train_fraction * x.shape[0])
    tr, te = perm[:n_train], perm[n_train:]
    rows = []
    for method, learn, estimate in (("ksd", learn_ksd_bandwidth, ksd_estimate),
                                    ("lksd", learn_lksd_bandwidth, lksd_estimate)):
        h = learn(x[tr], s[tr], objective="value")
        value, stderr = estimate(x[te], s[te], bandwidth=h)
        rows.append({"method": method, "value": value, "stderr": stderr, "bandwidth": h,
                     "n_train": int(tr.numel()), "n_eval": int(te.numel())})
    return rows


def run_trial(config: dict[str, Any]) -> dict[str, Any]:
    """Score one perturbed RBM q_σ on samples of p with every method (pure: config -> result).

    Returns ``{"rows": [{"method", "value", "stderr", ...}, ...], "seconds": ...}``.
    """
    start = time.perf_counter()
    dx, dh, sigma, seed = config["dx"], config["dh"], config["sigma"], config["seed"]
    g = torch.Generator().manual_seed(derive_seed(seed, dx, dh))
    p = GaussianBernoulliRBM.random(dx, dh, generator=g)
    x = p.sample(config["n"], burn_in=config["burn_in"], generator=g)
    q = p.perturb(sigma, generator=torch.Generator().manual_seed(derive_seed(seed, dx, dh, "perturb")))
    with torch.no_grad():
        s_q, s_p = q.score(x), p.score(x)
    lam = config["lam"]

    t0 = time.perf_counter()
    est = stein_discrepancy(q, x, lam=lam, seed=derive_seed(seed, dx, dh, "lsd"), **config["lsd"])
    rows = [{"method": "lsd", "value": est.value, "stderr": est.stderr, "n_eval": est.n_test,
             "best_iteration": est.best_iteration, "seconds": time.perf_counter() - t0}]

    rows += _kernel_rows(x, s_q, config["kernel_train"], derive_seed(seed, dx, dh, "kernel"))

    per_point = (s_q - s_p).double().pow(2).sum(1) / (2 * lam)
    value = float(optimal_lsd(s_q.double(), s_p.double(), lam))
    rows.append({"method": "theory", "value": value, "stderr": float(per_point.std() / math.sqrt(len(per_point))),
                 "n_eval": len(per_point)})
    return {"rows": rows, "data_checksum": float(x.double().sum()), "seconds": time.perf_counter() - start}


def _summarize(configs: Sequence[dict], results: Sequence[dict]) -> list[dict[str, Any]]:
    rows = []
    for cfg, res in zip(configs, results):
        for r in res["rows"]:
            rows.append({"method": r["method"], "dx": cfg["dx"], "dh": cfg["dh"], "sigma": cfg["sigma"],
                         "seed": cfg["seed"], "value": r["value"], "stderr": r["stderr"],
                         **{k: r[k] for k in ("bandwidth", "n_eval", "best_iteration") if k in r}})
    order = {m: i for i, m in enumerate(EVAL_METHODS)}
    return sorted(rows, key=lambda r: (r["dx"], r["seed"], order[r["method"]], r["sigma"]))


def _markdown(rows: Sequence[dict]) -> str:
    lines = [f"# {NAME}: discrepancy of q_σ from samples of p (value ± σ/√n_eval)", ""]
    for dx, dh, seed in sorted({(r["dx"], r["dh"], r["seed"]) for r in rows}):
        sub = [r for r in rows if (r["dx"], r["seed"]) == (dx, seed)]
        sigmas = sorted({r["sigma"] for r in sub})
        lines += [f"## dx = {dx}, dh = {dh}, seed {seed}", ""]
        lines.append("| method | " + " | ".join(f"σ = {s:g}" for s in sigmas) + " |")
        lines.append("|---|" + "---|" * len(sigmas))
        for method in EVAL_METHODS:
            cells = {r["sigma"]: r for r in sub if r["method"] == method}
            if cells:
                vals = [f"{cells[s]['value']:.4g} ± {cells[s]['stderr']:.2g}" if s in cells else "" for s in sigmas]
                lines.append(f"| {_LABELS[method]} | " + " | ".join(vals) + " |")
        lines.append("")
    return "\n".join(lines)


def _plot(path: Path, rows: Sequence[dict]) -> None:
    from matplotlib.figure import Figure

    pairs = sorted({(r["dx"], r["dh"]) for r in rows})
    fig = Figure(figsize=(4.2 * len(pairs), 6.4), layout="constrained")
    axes = fig.subplots(2, len(pairs), squeeze=False)
    groups = (("lsd", "theory"), ("ksd", "lksd"))
    for col, (dx, dh) in enumerate(pairs):
        for row, methods in enumerate(groups):
            ax = axes[row][col]
            for method in methods:
                for seed in sorted({r["seed"] for r in rows}):
                    pts = sorted((r["sigma"], r["value"], r["stderr"]) for r in rows
                                 if (r["dx"], r["method"], r["seed"]) == (dx, method, seed))
                    if pts:
                        s, v, e = zip(*pts)
                        label = _LABELS[method] if seed == min(r["seed"] for r in rows) else None
                        ax.errorbar(s, v, yerr=e, marker="o", capsize=3, label=label,
                                    color="C0" if method in ("lsd", "ksd") else "C1")
            ax.axhline(0.0, color="gray", lw=0.8)
            ax.set_xlabel("perturbation σ")
            if row == 0:
                ax.set_title(f"dx = {dx}, dh = {dh}")
            if col == 0:
                ax.set_ylabel("LSD" if row == 0 else "KSD² (learned bandwidth)")
            ax.legend(loc="upper left", fontsize=8)
    fig.savefig(path, dpi=120)


def run(
    out: str | os.PathLike,
    *,
    quick: bool = False,
    jobs: int = 1,
    backend: str = "loky",
    dims: Any = None,
    sigmas: Any = None,
    seeds: Any = None,
    n: int = 1000,
    burn_in: int = 2000,
    lam: float = 0.5,
    n_iters: int = 1000,
    hidden: int = 300,
    dropout: float = 0.5,
    weight_decay: float = 5e-4,
    progress: bool = True,
) -> dict[str, Any]:
    """Run (or resume) the sweep; write results.json, results.md and figure6.png into ``out``.

    ``quick`` sets dims to 50 (dh 40) unless given; every estimate keeps the paper's settings.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    settings = dict(
        dims=parse_dims(dims if dims is not None else ("50" if quick else "50,100,200")),
        sigmas=sigmas if sigmas is not None else SIGMAS, seeds=seeds if seeds is not None else (0,),
        n=n, burn_in=burn_in, lam=lam, n_iters=n_iters, hidden=hidden, dropout=dropout, weight_decay=weight_decay,
    )
    configs = trial_configs(**settings)
    start = time.perf_counter()
    results = run_trials(run_trial, configs, db_path=out / "trials.sqlite", jobs=jobs, backend=backend,
                         progress=progress)
    rows = _summarize(configs, results)
    n_train, n_val = round(0.8 * n), round(0.1 * n)
    report = {
        "experiment": NAME,
        "quick": quick,
        "settings": {**settings, "dims": [list(p) for p in settings["dims"]],
                     "sigmas": sorted({c["sigma"] for c in configs}), "seeds": sorted({c["seed"] for c in configs}),
                     "jobs": jobs, "backend": backend},
        "protocol": {
            "lsd": f"stein_discrepancy: split {n_train}/{n_val}/{n - n_train - n_val}, 2x{hidden} Swish critic, "
                   f"dropout {dropout:g}, weight decay {weight_decay:g}, Eq. 11 objective - lam ||f||^2 with lam {lam:g}, "
                   f"{n_iters} full-batch Adam steps, mean - std selection every 100",
            "ksd": f"bandwidth maximizing the U-statistic on {round(0.2 * n)} points, estimate on the other "
                   f"{n - round(0.2 * n)}",
            "lksd": "same protocol with the linear-time estimate",
            "theory": f"E_p||s_q - s_p||^2 / (2 lam) averaged over all {n} samples",
            "perturbation": "B + sigma * E with one N(0, I) matrix E shared by all sigma (nested models)",
        },
        "rows": rows,
        "n_trials": len(configs),
        "seconds": time.perf_counter() - start,
    }
    (out / "results.json").write_text(json.dumps(report, indent=2))
    (out / "results.md").write_text(_markdown(rows))
    _plot(out / "figure6.png", rows)
    return report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Command-line options of ``steinkit reproduce rbm-eval``."""
    add_rbm_sweep_arguments(parser)
    parser.add_argument("--seeds", default=None, help="comma-separated seeds, one RBM each (default 0)")
    parser.add_argument("--lam", type=float, default=0.5, help="critic L2 weight lambda (default 0.5)")
    parser.add_argument("--n-iters", type=int, default=1000, help="LSD critic training steps (default 1000)")
    parser.add_argument("--hidden", type=int, default=300, help="LSD critic width (default 300)")
    parser.add_argument("--dropout", type=float, default=0.5, help="LSD critic dropout (default 0.5, as in B.1)")
    parser.add_argument("--weight-decay", type=float, default=5e-4,
                        help="LSD critic weight decay (default 5e-4, as in B.1)")

"""The built-in default problem: rank perturbed RBMs by learned Stein discrepancy.

p is a random Gaussian-Bernoulli RBM (dx=50, dh=40); the models q perturb its weights B with
Gaussian noise of std σ in {0, .01, .02, .04}. Samples of p are drawn by Gibbs sampling; the
LSD of each model is estimated with an error bar (the default estimate, :data:`~steinkit.ESTIMATE`,
all critics trained together) and printed beside the theoretical value E‖s_q − s_p‖²/(2λ) of the
optimal critic, which the estimate approaches from below.

Example:
    steinkit demo --out runs/demo
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Mapping

import torch

from .evaluate import CROSSFIT_MAX_N, compare
from ._io import markdown_table, prepare_out, pyplot, save_figure, write_json
from ._optional import paper_module
from .models import GaussianBernoulliRBM
from .settings import ESTIMATE, CriticSettings
from .splits import split_sizes
from .stein import optimal_lsd
from .validation import as_device, positive_float, positive_int, seed_value

__all__ = ["run_demo", "check_demo", "FLAGS"]

#: The command-line flag of each of :func:`run_demo`'s arguments (``steinkit demo``).
FLAGS: Mapping[str, str] = {"out": "--out", "n": "--n", "n_iters": "--iters", "seed": "--seed"}


def check_demo(
    *,
    n: Any,
    n_iters: Any = ESTIMATE.n_iters,
    batch_size: Any = ESTIMATE.batch_size,
    lam: Any = 0.5,
    seed: Any = 0,
    names: Mapping[str, str] | None = None,
) -> tuple[CriticSettings, int]:
    """Check :func:`run_demo`'s numbers before any sampling, naming each argument as ``names``
    maps it (e.g. :data:`FLAGS`; default: the argument's own name). Returns the critic settings
    and the batch size used: ``batch_size``, or the whole training split (80% of ``n``) when
    that is smaller.

    Example:
        >>> check_demo(n=4000, n_iters=0, names=FLAGS)
        Traceback (most recent call last):
        ...
        ValueError: --iters must be >= 1, got 0
        >>> check_demo(n=500, n_iters=10)[1]
        400
    """
    name = lambda key: (names or {}).get(key, key)  # noqa: E731
    n_iters = positive_int(n_iters, name("n_iters"))
    n = positive_int(n, name("n"))
    batch_size = positive_int(batch_size, name("batch_size"))
    lam = positive_float(lam, name("lam"))
    seed_value(seed, name("seed"))
    try:
        n_train = split_sizes(n, ESTIMATE.split)[0]
    except ValueError:
        raise ValueError(
            f"{name('n')} is too small for the 80/10/10 train/val/test split (each part needs 2 points), got {n}"
        ) from None
    batch_size = min(batch_size, n_train)
    return ESTIMATE.replace(lam=lam, n_iters=n_iters, batch_size=batch_size), batch_size


def run_demo(
    out: str | Path = "steinkit-demo",
    *,
    dx: int = 50,
    dh: int = 40,
    sigmas: tuple[float, ...] = (0.0, 0.01, 0.02, 0.04),
    n: int = 4000,
    n_iters: int = ESTIMATE.n_iters,
    batch_size: int = 1024,
    lam: float = 0.5,
    seed: int = 0,
    progress: bool = True,
    device: str | torch.device | None = None,
) -> dict[str, Any]:
    """Run the demo, print the ranking table, write results.json, results.md and demo.png.

    Every argument is checked before any sampling (:func:`check_demo`); the batch size is at
    most the training split (80% of ``n``).
    The samples are drawn on the CPU (the same on every device); the critics train on ``device``.
    """
    settings, batch_size = check_demo(n=n, n_iters=n_iters, batch_size=batch_size, lam=lam, seed=seed)
    device = as_device(device)
    paper_module("matplotlib", "the demo's figure")  # before the work, not after it
    out = prepare_out(out)
    start = time.perf_counter()
    g = torch.Generator().manual_seed(seed)
    p = GaussianBernoulliRBM.random(dx, dh, generator=g)
    print(f"Sampling n={n} points from a random RBM (dx={dx}, dh={dh}) by blocked Gibbs ...", flush=True)
    x = p.sample(n, burn_in=2000, generator=g)
    models = {f"sigma={s:g}": p.perturb(s, generator=torch.Generator().manual_seed(seed + 1)) for s in sigmas}
    folds = settings.folds if n <= CROSSFIT_MAX_N else 1
    print(f"Fitting {len(models) * folds} critics together ({len(models)} models x {folds} folds, Adam on batches "
          f"of up to {batch_size} until the held-out objective stops improving, at most {n_iters} steps, "
          f"lambda={lam}) ...", flush=True)
    rows = compare(models, x, settings, seed=seed, progress=progress, device=device)
    with torch.no_grad():
        theory = {name: float(optimal_lsd(m.score(x), p.score(x), lam)) for name, m in models.items()}
    table = [[i + 1, r.name, r.value, r.stderr, theory[r.name]] for i, r in enumerate(rows)]
    md = markdown_table(["rank", "model", "LSD", "± stderr", "theory E‖s_q−s_p‖²/(2λ)"], table)
    print()
    print(md)
    results = {
        "problem": {"dx": dx, "dh": dh, "n": n, "sigmas": list(sigmas), "lam": lam, "n_iters": n_iters,
                    "batch_size": batch_size, "seed": seed},
        "device": str(device),
        "ranking": [
            {"rank": i + 1, "model": r.name, "lsd": r.value, "stderr": r.stderr, "theory": theory[r.name]}
            for i, r in enumerate(rows)
        ],
        "ranking_matches_sigma_order": [r.name for r in rows] == list(models),
        "seconds": time.perf_counter() - start,
    }
    write_json(out / "results.json", results)
    (out / "results.md").write_text(md)
    _plot(out / "demo.png", sigmas, models, rows, theory)
    print(f"Wrote {out / 'results.json'}, {out / 'results.md'} and {out / 'demo.png'} "
          f"({results['seconds']:.0f} s)")
    return results


def _plot(path: Path, sigmas, models, rows, theory) -> None:
    plt = pyplot()
    by_name = {r.name: r for r in rows}
    names = list(models)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.errorbar(sigmas, [by_name[n].value for n in names], yerr=[by_name[n].stderr for n in names],
                marker="o", capsize=3, label="learned LSD ± stderr")
    ax.plot(sigmas, [theory[n] for n in names], "k--", marker="x", label="theory (optimal critic)")
    ax.set_xlabel("perturbation σ of B")
    ax.set_ylabel("Stein discrepancy")
    ax.set_title("Perturbed RBMs ranked by LSD")
    ax.legend()
    save_figure(fig, path)

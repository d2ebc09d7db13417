"""Measured sample quality of the image reproduction: its rows, the sampler study, its tables and verdict.

The figures are those of :mod:`steinkit.experiments.sample_quality` (a classifier trained here;
no downloaded network). The rows:

* **real held-out**: the first ``n`` test images; the Fréchet reference is the remaining test
  images, so this row gives each figure's value for real data at the same sample size;
* **Gaussian base**: the diagonal Gaussian fitted to the training data in the model space (the
  EBM's base at initialisation), sampled exactly;
* **EBM**: tempered SGLD from uniform pixels; the sampler study (Appendix C.2) measures both noise
  scales after each snapshot's number of steps, every chain starting from the same initial
  state, and compares settings by paired-bootstrap intervals (row i of both settings started
  from the same point, so a difference's standard error is that of paired rows);
* **EBM, stable step**: the main setting again at :data:`STABLE_MARGIN` of the base Gaussian's
  stability bound, only when the configured step is at or above it (:func:`step_note`);
* **RBM**: the Gibbs chains' last visible states and their noise-free means ``E[x | h]``.

Every row also gives the share of saturated pixels (above .99), and every EBM row the model's mean
log-density at its samples minus that at the real held-out images (:func:`mass_figures`): a large
positive gap says the model's mass lies away from the data, where a Stein discrepancy computed on
the data cannot see it.

Example:
    >>> rows = {name: {"confidence": c, "entropy": h, "frechet": f, "covered": 10, "histogram": [100] * 10}
    ...         for name, c, h, f in (("Gaussian base", 0.5, 1.0, 90.0), ("EBM", 0.8, 2.0, 30.0))}
    >>> print(base_verdict(rows, "EBM"))
    EBM beats the Gaussian base on 3/3 figures (confidence, class entropy, Fréchet distance) and covers 10/10 classes
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor

from ..samplers import sgld
from .report import markdown_table
from .sample_quality import Measured, QualityMeter, load_classifier, unit_pixels

__all__ = ["check_quality_size", "make_meter", "gaussian_rows", "sampler_study", "row_name", "study_order",
           "quality_table", "differences_table", "base_verdict", "study_verdict", "SATURATED", "saturated_share",
           "mass_figures", "mass_table", "step_note", "STABLE_MARGIN", "stable_row_name"]

SATURATED = 0.99
"""Pixels above this intensity (in [0, 1]) count as saturated."""


def make_meter(classifier_path: Path, train_pixels: Tensor, test_pixels: Tensor, n: int, *,
               seed: int) -> tuple[QualityMeter, Tensor]:
    """The meter (Fréchet reference: the test images after the first ``n``) and the real held-out
    rows (the first ``n`` test images) in ``[0, 1]``."""
    check_quality_size(n, len(test_pixels))
    meter = QualityMeter(load_classifier(classifier_path), unit_pixels(test_pixels[n:]), unit_pixels(train_pixels),
                         seed=seed)
    return meter, unit_pixels(test_pixels[:n])


def saturated_share(images01: Tensor) -> float:
    """Share of the pixels above :data:`SATURATED` (images in [0, 1]).

    Example:
        >>> saturated_share(torch.tensor([[0.0, 0.995], [1.0, 0.5]]))
        0.5
    """
    return float((images01 > SATURATED).double().mean())


def mass_figures(log_prob: Callable[[Tensor], Tensor], x: Tensor, reference_log_q: float,
                 decode: Callable[[Tensor], Tensor]) -> dict[str, float]:
    """The saturated share of the samples ``x`` (model space), the model's mean log-density there
    minus ``reference_log_q`` (its mean at the real held-out images; over the samples where it is
    finite, NaN if none), and the share of samples where it is not finite (chains that diverged).

    Example:
        >>> x = torch.tensor([[0.0, 0.0], [0.0, 0.0], [1e30, 0.0], [0.0, 0.0]])
        >>> mass_figures(lambda z: -z.square().sum(1), x, -1.0, torch.sigmoid)
        {'saturated': 0.125, 'log_q_gap': 1.0, 'log_q_nonfinite': 0.25}
    """
    with torch.no_grad():
        log_q = log_prob(x).double()
    ok = torch.isfinite(log_q)
    gap = float(log_q[ok].mean()) - reference_log_q if bool(ok.any()) else float("nan")
    return {"saturated": saturated_share(decode(x)), "log_q_gap": gap, "log_q_nonfinite": float((~ok).double().mean())}


def mass_table(rows: dict[str, dict[str, Any]]) -> str:
    """One line per row: the share of saturated pixels and, for model rows, the log-density gap,
    the share of samples whose log-density is not finite, and for EBM rows the largest SGLD step
    its base Gaussian keeps stable (:meth:`~steinkit.models.MLPEnergy.max_stable_step`)."""
    def cell(q: dict[str, Any], key: str, spec: str) -> str:
        return format(q[key], spec) if key in q else ""

    body = [[name, f"{q['saturated']:.3f}", cell(q, "log_q_gap", ".4g"), cell(q, "log_q_nonfinite", ".3f"),
             cell(q, "step_bound", ".3g")] for name, q in rows.items() if "saturated" in q]
    return markdown_table(["samples", f"pixels above {SATURATED}", "mean log q(samples) − mean log q(real held-out)",
                           "samples with log q not finite (diverged)", "stable SGLD steps: ε < 2·min σ²"], body)


def step_note(rows: dict[str, dict[str, Any]], step_size: float) -> str:
    """A sentence naming the EBM rows whose base Gaussian makes an SGLD step of ``step_size``
    unstable (empty when there are none).

    Example:
        >>> step_note({"late": {"step_bound": 0.967}, "early": {"step_bound": 2.0}}, 1.0).split(":")[0]
        'SGLD step ε = 1 is at or above the stability bound 2·min σ² of the base Gaussian for late (0.967)'
        >>> step_note({"early": {"step_bound": 2.0}}, 1.0)
        ''
    """
    over = {name: q["step_bound"] for name, q in rows.items() if q.get("step_bound", float("inf")) <= step_size}
    if not over:
        return ""
    names = ", ".join(f"{name} ({bound:.3g})" for name, bound in over.items())
    return (f"SGLD step ε = {step_size:g} is at or above the stability bound 2·min σ² of the base Gaussian for "
            f"{names}: its own drift makes the chains diverge along the narrowest pixels")


def check_quality_size(n: int, n_test_images: int) -> None:
    """``n`` real held-out images must leave at least two test images for the Fréchet reference.

    Example:
        >>> check_quality_size(1000, 359)
        Traceback (most recent call last):
        ...
        ValueError: n_quality must be in [2, 357] (the rest of the 359 test images is the Fréchet reference), got 1000
    """
    if not 2 <= n <= n_test_images - 2:
        raise ValueError(f"n_quality must be in [2, {n_test_images - 2}] (the rest of the {n_test_images} test "
                         f"images is the Fréchet reference), got {n}")


def gaussian_rows(data: Tensor, n: int, *, generator: torch.Generator) -> Tensor:
    """``n`` draws from the diagonal Gaussian with the per-coordinate mean and std of ``data`` (n, d)."""
    mean, std = data.mean(0), data.std(0)
    return mean + std * torch.randn(n, data.shape[1], generator=generator)


def row_name(sigma: float, steps: int) -> str:
    """The sampler study's name of one setting."""
    return f"EBM σ={sigma:g}, {steps} steps"


STABLE_MARGIN = 0.9
"""The stable row's SGLD step, as a fraction of the base Gaussian's stability bound 2·min σ²."""


def stable_row_name(sigma: float, steps: int) -> str:
    """The name of the main setting's row re-run at a stable step (:data:`STABLE_MARGIN` of the bound).

    Example:
        >>> stable_row_name(0.01, 1000)
        'EBM σ=0.01, 1000 steps, stable step'
    """
    return f"{row_name(sigma, steps)}, stable step"


def _sigma_key(sigmas: tuple[float, float], steps: int) -> str:
    return f"σ={sigmas[1]:g} − σ={sigmas[0]:g} at {steps} steps"


def _steps_key(sigma: float, earlier: int, later: int) -> str:
    return f"{later} − {earlier} steps at σ={sigma:g}"


def study_order(sigmas: tuple[float, float], marks: list[int]) -> tuple[list[str], list[str]]:
    """The sampler study's row names and comparison names in table order (the trial store keeps
    its results with sorted keys).

    Example:
        >>> rows, comparisons = study_order((0.01, 0.1), [30, 300])
        >>> rows[1], comparisons[1:3]
        ('EBM σ=0.01, 300 steps', ['σ=0.1 − σ=0.01 at 300 steps', '300 − 30 steps at σ=0.01'])
    """
    rows = [row_name(sigma, t) for sigma in sigmas for t in marks]
    steps = [_steps_key(sigma, t1, t2) for sigma in sigmas for t1, t2 in zip(marks, marks[1:])]
    return rows, [_sigma_key(sigmas, t) for t in marks] + steps


def sampler_study(score: Callable[[Tensor], Tensor], x0: Tensor, decode: Callable[[Tensor], Tensor],
                  meter: QualityMeter, *, step_size: float, sigmas: tuple[float, float], marks: list[int],
                  generator: torch.Generator, progress: bool = False,
                  figures: Callable[[Tensor], dict[str, float]] | None = None) -> dict[str, Any]:
    """Run tempered SGLD from ``x0`` with each noise scale, measure every snapshot, and compare the
    two scales at each step count and consecutive step counts at each scale (``later - earlier``);
    ``figures`` (of a snapshot in model space) adds its entries to each row."""
    prepared: dict[tuple[float, int], Measured] = {}
    extra: dict[tuple[float, int], dict[str, float]] = {}
    finite = {}
    for sigma in sigmas:
        run = sgld(score, x0, step_size=step_size, n_steps=max(marks), noise_std=sigma, generator=generator,
                   snapshot_steps=marks, progress=progress)
        finite[f"{sigma:g}"] = float(torch.isfinite(run.samples).all(1).float().mean())
        for t in marks:
            prepared[sigma, t] = meter.prepare(decode(run.snapshots[t]))
            extra[sigma, t] = {} if figures is None else figures(run.snapshots[t])
    rows = {row_name(s, t): {**meter.measure(b).to_dict(), **extra[s, t]} for (s, t), b in prepared.items()}
    low, high = sigmas
    differences = {_sigma_key(sigmas, t): meter.compare(prepared[high, t], prepared[low, t]) for t in marks}
    for sigma in sigmas:
        for t1, t2 in zip(marks, marks[1:]):
            differences[_steps_key(sigma, t1, t2)] = meter.compare(prepared[sigma, t2], prepared[sigma, t1])
    return {"rows": rows, "differences": differences, "fraction_finite": finite}


def _pm(value: float, se: float) -> str:
    return f"{value:.3g} ± {se:.2g}"


def quality_table(rows: dict[str, dict[str, Any]]) -> str:
    """One line per row: confidence, class entropy and Fréchet distance ± standard errors, classes
    covered, nearest-training-image distance (mean / median)."""
    body = [[name, q["n"], _pm(q["confidence"], q["confidence_se"]), _pm(q["entropy"], q["entropy_se"]),
             q["covered"], _pm(q["frechet"], q["frechet_se"]), f"{q['nn_mean']:.2f} / {q['nn_median']:.2f}"]
            for name, q in rows.items()]
    return markdown_table(["samples", "n", "confidence", "class entropy (max 2.30)", "classes covered",
                           "Fréchet distance", "nearest training image (mean / median)"], body)


def differences_table(differences: dict[str, dict[str, dict[str, float]]]) -> str:
    """One line per comparison: each figure's difference ± its paired-bootstrap standard error."""
    figures = ("confidence", "entropy", "frechet", "nn_mean")
    body = [[name, *(_pm(d[f]["diff"], d[f]["se"]) for f in figures)] for name, d in differences.items()]
    return markdown_table(["difference", "Δ confidence", "Δ class entropy", "Δ Fréchet", "Δ nearest (mean)"], body)


#: The figures compared with the Gaussian base, each with whether larger is better.
_BETTER_IF_LARGER = {"confidence": True, "entropy": True, "frechet": False}
_NAMES = {"confidence": "confidence", "entropy": "class entropy", "frechet": "Fréchet distance"}


def base_verdict(rows: dict[str, dict[str, Any]], model: str) -> str:
    """Whether the ``model`` row beats the ``"Gaussian base"`` row on each figure, and its class coverage."""
    q, base = rows[model], rows["Gaussian base"]
    wins = [f for f, larger in _BETTER_IF_LARGER.items() if (q[f] > base[f] if larger else q[f] < base[f])]
    k = len(q["histogram"])
    return (f"{model} beats the Gaussian base on {len(wins)}/{len(_BETTER_IF_LARGER)} figures "
            f"({', '.join(_NAMES[f] for f in wins) or 'none'}) and covers {q['covered']}/{k} classes")


def study_verdict(differences: dict[str, dict[str, dict[str, float]]], sigmas: tuple[float, float],
                  marks: list[int]) -> str:
    """Whether sigma matters (after the most steps) and whether the last step count matters (at the
    first sigma): a factor matters when the difference in confidence, class entropy or Fréchet distance
    is more than 1.96 standard errors from 0."""
    (low, high), (before, last) = sigmas, marks[-2:]
    parts = []
    for label, key in ((f"σ ({low:g} vs {high:g} at {last} steps)", _sigma_key(sigmas, last)),
                       (f"steps ({before} vs {last} at σ={low:g})", _steps_key(low, before, last))):
        if key not in differences:
            continue
        d = differences[key]
        apart = [_NAMES[f] for f in _BETTER_IF_LARGER if d[f]["low"] > 0 or d[f]["high"] < 0]
        fr = d["frechet"]
        state = f"matter ({', '.join(apart)} differ)" if apart else "do not matter beyond noise"
        parts.append(f"{label} {state}: Δ Fréchet {_pm(fr['diff'], fr['se'])}")
    return "; ".join(parts)


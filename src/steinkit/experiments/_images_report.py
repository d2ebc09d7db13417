"""The image reproduction's report: its quality numbers in table order, tables, verdict and plots.

Split from :mod:`.images` (which trains, samples and measures) so each module has one job; the
functions here only read the trials' results.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ._images_quality import (
    STABLE_MARGIN,
    base_verdict,
    differences_table,
    quality_table,
    row_name,
    stable_row_name,
    step_note,
    study_order,
    study_verdict,
)
from .report import pyplot

if TYPE_CHECKING:
    from .images import Settings

__all__ = ["study_marks", "quality_numbers", "quality_tables", "quality_verdict", "report_verdict",
           "quality_curve_plot", "training_curve_plot", "study_plot"]


def study_marks(s: Settings) -> list[int]:
    """The SGLD step counts the sampler study shows: 30, 300 and ``sgld_steps`` (those within the run).

    Example:
        >>> from steinkit.experiments.images import FULL
        >>> study_marks(FULL), study_marks(FULL.replace(sgld_steps=100))
        ([30, 300, 1000], [30, 100])
    """
    return sorted({t for t in (30, 300, s.sgld_steps) if t <= s.sgld_steps})


def quality_curve_plot(path: Path, quality: dict[str, Any]) -> Path:
    """Confidence, classes covered and Fréchet distance of the EBM's samples against training epochs,
    with the real held-out images and the Gaussian base as reference lines."""
    plt = pyplot()
    epochs = [q["epochs"] for q in quality["curve"].values()]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    for ax, (key, label) in zip(axes, (("confidence", "classifier confidence"), ("covered", "classes covered"),
                                       ("frechet", "Fréchet distance (lower is better)"))):
        values = [q[key] for q in quality["curve"].values()]
        errors = [q.get(f"{key}_se", 0.0) for q in quality["curve"].values()]
        ax.errorbar(epochs, values, errors, marker="o", capsize=2, label="EBM")
        for ref, style in (("real held-out", "--"), ("Gaussian base", ":")):
            ax.axhline(quality["rows"][ref][key], color="gray", ls=style, label=ref)
        ax.set(xscale="log", xlabel="training epochs", title=label)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def quality_numbers(classifier: dict[str, Any], measured: list[dict[str, Any]], s: Settings) -> dict[str, Any]:
    """The quality trials' results in table order: real, Gaussian base, the sampler study, the RBM."""
    found = {k: v for m in measured for k, v in m["rows"].items()}
    study_rows, comparisons = study_order((s.sgld_noise, s.sgld_noise_alt), study_marks(s))
    stable = stable_row_name(s.sgld_noise, s.sgld_steps)
    order = ["real held-out", "Gaussian base", *study_rows, stable, "RBM Gibbs samples", "RBM sample means"]
    quality = {"classifier": classifier, "rows": {k: found[k] for k in order if k in found},
               "seconds": {m["source"]: m["seconds"] for m in measured}}
    study = next((m for m in measured if m["source"] == "ebm"), None)
    if study is not None:
        quality.update(differences={k: study["differences"][k] for k in comparisons},
                       fraction_finite=study["fraction_finite"])
    return quality


def quality_tables(quality: dict[str, Any], s: Settings) -> list[tuple[str, str]]:
    """The quality table (the EBM at its main setting), and the sampler study's rows and differences."""
    rows, main = quality["rows"], row_name(s.sgld_noise, s.sgld_steps)
    accuracy = quality["classifier"]["accuracy"]
    title = (f"Sample quality (classifier: {quality['classifier']['architecture']}, held-out accuracy {accuracy:.3f}; "
             "± standard errors, bootstrap for entropy and Fréchet; classes covered: predicted for at least "
             "half their uniform share of the samples)")
    stable = stable_row_name(s.sgld_noise, s.sgld_steps)
    shown = {k: v for k, v in rows.items() if not k.startswith("EBM") or k in (main, stable)}
    tables = [(title + (f"; the stable-step row re-runs the main setting from the same starts at step "
                        f"{rows[stable]['step_size']:.3g}, {STABLE_MARGIN:g} of the bound 2·min σ²"
                        if stable in rows else ""), quality_table(shown))]
    if "differences" in quality:
        study_rows, _ = study_order((s.sgld_noise, s.sgld_noise_alt), study_marks(s))
        tables += [("Sampler study (C.2): tempered SGLD from the same initial states",
                    quality_table({k: rows[k] for k in study_rows if k in rows})),
                   ("Sampler study: differences (later/larger minus earlier/smaller ± paired-bootstrap se)",
                    differences_table(quality["differences"]))]
    return tables


def quality_verdict(quality: dict[str, Any], s: Settings) -> str:
    rows, main = quality["rows"], row_name(s.sgld_noise, s.sgld_steps)
    text = f"quality (classifier accuracy {quality['classifier']['accuracy']:.2f})"
    for model in [main, "RBM sample means"]:
        if model in rows:
            text += f"; {base_verdict(rows, model)}, nearest-training-image median {rows[model]['nn_median']:.2f}"
    text += f" (real held-out {rows['real held-out']['nn_median']:.2f})"
    unstable = step_note({main: rows[main]}, s.sgld_step_size) if main in rows else ""
    stable = stable_row_name(s.sgld_noise, s.sgld_steps)
    if unstable:
        text += f"; {unstable}"
        if stable in rows:
            text += f"; at a stable step ε = {rows[stable]['step_size']:.3g}, {base_verdict(rows, stable)}"
    if "differences" in quality:
        sigmas = (s.sgld_noise, s.sgld_noise_alt)
        text += "; sampler study: " + study_verdict(quality["differences"], sigmas, study_marks(s))
    return text


def report_verdict(stages: dict[str, Any], quality: dict[str, Any], s: Settings) -> str:
    parts = []
    for name, st in stages.items():
        lsd = st["held_out_lsd"]
        state = "finished" if st["diverged_at"] is None else f"diverged at update {st['diverged_at']}"
        text = f"{name.upper()} {state} after {st['steps']} LSD updates, held-out LSD {lsd['mean']:.3g}"
        text += f" ± {lsd['stderr']:.2g}"
        if name == "ebm":
            text += ", finite SGLD chains " + "/".join(f"{v:.0%}" for v in st["sgld"]["fraction_finite"].values())
        parts.append(text)
    return f"trained on {s.dataset}: " + "; ".join(parts) + "; " + quality_verdict(quality, s)


def training_curve_plot(path: Path, curves: dict[str, list[dict]]) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, len(curves), figsize=(4.5 * len(curves), 3.4), squeeze=False)
    for ax, (name, history) in zip(axes[0], curves.items()):
        rows = [r for r in history if "lsd" in r]
        ax.plot([r["step"] for r in rows], [r["lsd"] for r in rows], label="LSD (critic batches)")
        ax.set(xlabel="model update", ylabel="LSD estimate", title=name)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def study_plot(path: Path, panels: dict[str, np.ndarray], rows: int, cols: int) -> str:
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
    return path.name

"""The paper's experiments as runnable reproductions (``steinkit reproduce NAME --out DIR``).

Each experiment is a module with:
  * ``NAME``: its command name; ``DESCRIPTION``: one line;
  * ``add_arguments(parser)``: its own command-line options (``--out`` and ``--quick`` are common);
  * ``run(out: Path, *, quick: bool = False, **options) -> dict``: runs, writes
    ``out/results.json`` and PNG figures, and returns the results.

Example:
    >>> sorted(EXPERIMENTS)[:2]
    ['flow-eval', 'gaussian-critic']
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["EXPERIMENTS", "get_experiment"]

EXPERIMENTS: dict[str, str] = {
    "gaussian-critic": "steinkit.experiments.gaussian_critic",
    "model-selection": "steinkit.experiments.model_selection",
    "rbm-power": "steinkit.experiments.rbm_power",
    "rbm-eval": "steinkit.experiments.rbm_eval",
    "ica": "steinkit.experiments.ica",
    "toy": "steinkit.experiments.toy",
    "images": "steinkit.experiments.images",
    "flow-eval": "steinkit.experiments.flow_eval",
}


def get_experiment(name: str) -> ModuleType:
    """Import the experiment module registered under ``name``."""
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; choose from {sorted(EXPERIMENTS)}")
    return importlib.import_module(EXPERIMENTS[name])

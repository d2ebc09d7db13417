"""The paper's experiments as runnable reproductions (``steinkit reproduce NAME --out DIR``).

Each reproduction is a module with:
  * ``Settings``: a frozen :class:`~steinkit.experiments.settings.ReproductionSettings`
    dataclass, with its ``FULL`` and ``QUICK`` presets; the command-line options are generated
    from it;
  * pure trial functions from a config to a result, run by the sweep engine
    (:func:`~steinkit.experiments.runner.sweep`: one SQLite store keyed by the whole config,
    per-trial folders, resume by skipping stored trials, joblib / Dask / Ray);
  * ``run(settings, out, options)``: runs the sweep and writes ``results.json``,
    ``results.md`` and figures through its declaration's ``write_report``;
  * ``REPRODUCTION``, last: its :class:`~steinkit.experiments.reproduction.Reproduction`, the
    one declaration the command line and the results page read: its command name, one line of
    description, the claim of the paper it checks (shown beside our numbers in
    ``docs/results.md``), the rule, with its threshold, that its one-line verdict applies, the
    two presets and ``run``.

Example:
    >>> sorted(EXPERIMENTS)[:2]
    ['flow-eval', 'gaussian-critic']
    >>> get_reproduction("model-selection").quick.iters
    1000
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .reproduction import Reproduction

__all__ = ["EXPERIMENTS", "get_experiment", "get_reproduction"]

EXPERIMENTS: dict[str, str] = {
    "gaussian-critic": "steinkit.experiments.gaussian_critic",
    "model-selection": "steinkit.experiments.model_selection",
    "rbm-power": "steinkit.experiments.rbm_power",
    "rbm-eval": "steinkit.experiments.rbm_eval",
    "ica": "steinkit.experiments.ica",
    "toy": "steinkit.experiments.toy",
    "images": "steinkit.experiments.images",
    "flow-eval": "steinkit.experiments.flow_eval",
    "relative": "steinkit.experiments.relative",
}


def get_experiment(name: str) -> ModuleType:
    """Import the experiment module registered under ``name``."""
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; choose from {sorted(EXPERIMENTS)}")
    return importlib.import_module(EXPERIMENTS[name])


def get_reproduction(name: str) -> Reproduction:
    """The declaration (name, texts, presets) of the experiment registered under ``name``."""
    return get_experiment(name).REPRODUCTION

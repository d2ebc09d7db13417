"""The paper's experiments as runnable reproductions (``steinkit reproduce NAME --out DIR``).

Each reproduction is a module with:
  * ``NAME`` (its command name), ``DESCRIPTION`` (one line), ``PAPER_CLAIM`` (the claim of
    the paper it checks, shown beside our numbers in ``docs/results.md``) and ``VERDICT_RULE``
    (the rule, with its threshold, that its one-line verdict applies);
  * ``Settings``: a frozen :class:`~steinkit.experiments.settings.ReproductionSettings`
    dataclass, with its ``FULL`` and ``QUICK`` presets; the command-line options are generated
    from it;
  * pure trial functions from a config to a result, run by the sweep engine
    (:func:`~steinkit.experiments.runner.sweep`: one SQLite store keyed by the whole config,
    per-trial folders, resume by skipping stored trials, joblib / Dask / Ray);
  * ``run(settings, out, options)``: runs the sweep and writes ``results.json``,
    ``results.md`` and figures through :func:`~steinkit.experiments.report.write_report`.

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
    "relative": "steinkit.experiments.relative",
}


def get_experiment(name: str) -> ModuleType:
    """Import the experiment module registered under ``name``."""
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; choose from {sorted(EXPERIMENTS)}")
    return importlib.import_module(EXPERIMENTS[name])

"""The flow-checkpoint part of ``reproduce relative``: is a later checkpoint better than an earlier one?

A finished flow-eval run (``--flow-run DIR``) holds a Glow-like flow's checkpoints and their
bits/dim on the test set, so each pair's truth is known: lower bits/dim is better. The test set
(the same dequantization flow-eval scored) is cut into ``flow_blocks`` disjoint random blocks; on
each block every checkpoint gets one learned critic (:func:`steinkit.relative_tests`, the
reproduction's critic settings) and each pair (later, earlier) is tested for H0 "the later
checkpoint fits no better". Coordinates are flow-eval's: logit space, standardized by the
per-pixel mean and std of the flow's training images when flow-eval standardized its critic.
The rejection rate of a pair is over the blocks. The witness figure shows, for the first and the
last checkpoint, the mean of the test points each critic finds worst fitted and the critic's
mean there, from critics fitted on block 0 and evaluated on block 1.

Example:
    steinkit reproduce relative --out runs/relative --flow-run runs/flow-eval
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import Tensor

from ..relative import relative_tests
from ..witness import witness
from ..witness_plots import plot_images
from . import flow_eval
from .report import markdown_table
from .runner import trial_folder
from .settings import keyed_on, trial_device

__all__ = ["flow_run_rows", "flow_pairs", "flow_configs", "flow_trial", "flow_summary", "flow_witness"]


def flow_run_rows(run: str | Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The settings and checkpoint rows (step, bits/dim) of a finished flow-eval run folder."""
    path = Path(run) / "results.json"
    if not path.is_file():
        raise ValueError(f"flow_run must be a finished flow-eval output folder: {path} does not exist")
    saved = json.loads(path.read_text())
    expected = flow_eval.REPRODUCTION.name
    if saved.get("experiment") != expected:
        raise ValueError(f"flow_run {run} holds a {saved.get('experiment')!r} run, not {expected!r}")
    rows = [{"step": r["step"], "bits_per_dim": r["bits_per_dim"]} for r in saved["results"]["rows"]]
    return saved["settings"], rows


def flow_pairs(steps: Sequence[int]) -> list[tuple[int, int]]:
    """(later, earlier) index pairs: each checkpoint against the one before it, and the last against the first.

    Example:
        >>> flow_pairs([25, 50, 100])
        [(1, 0), (2, 1), (2, 0)]
    """
    pairs = [(k, k - 1) for k in range(1, len(steps))]
    return pairs + ([(len(steps) - 1, 0)] if len(steps) > 2 else [])


def flow_configs(run: str | Path, blocks: int, *, n_iters: int, hidden: int, alpha: float, seed: int
                 ) -> list[dict[str, Any]]:
    """One trial config per block of the flow-eval run's test set."""
    flow_settings, rows = flow_run_rows(run)
    return [{"experiment": "relative", "part": "flow", "flow_run": str(Path(run).resolve()),
             "flow_settings": flow_settings, "steps": [r["step"] for r in rows], "block": b, "blocks": blocks,
             "n_iters": n_iters, "hidden": hidden, "alpha": float(alpha), "seed": seed} for b in range(blocks)]


def _problem(config: dict[str, Any], *blocks: int) -> tuple[list[flow_eval.FlowScore], list[Tensor]]:
    """The checkpoints' scores (in the critic's coordinates) and each block's test points there."""
    s = flow_eval._settings(config["flow_settings"])
    y, _, shape = flow_eval._images(s, "test", s.seed + 1)  # the dequantization flow-eval scored
    order = torch.randperm(y.shape[0], generator=torch.Generator().manual_seed(config["seed"] + 17))
    size = y.shape[0] // config["blocks"]
    if size < 20:
        raise ValueError(f"flow_blocks = {config['blocks']} leaves {size} test images per block: use fewer blocks")
    ys = [y[order[b * size:(b + 1) * size]] for b in blocks]
    shift = scale = None
    if s.critic_standardize:
        y_train, _, _ = flow_eval._images(s, "train", s.seed)
        shift, scale = y_train.mean(0), y_train.std(0).clamp_min(1e-6)
        ys = [(y - shift) / scale for y in ys]
    trained = trial_folder(Path(config["flow_run"]) / "trials",
                           keyed_on(flow_eval._train_config(s), config.get("device", "cpu")))
    scores = []
    for step in config["steps"]:
        path = flow_eval._checkpoint(trained, step)
        if not path.is_file():
            raise ValueError(f"the flow-eval run {config['flow_run']} lacks its checkpoint {path}")
        flow = flow_eval._frozen(s, shape, path).to(trial_device(config))
        scores.append(flow_eval.FlowScore(flow, s.chunk_size, shift=shift, scale=scale))
    return scores, [y.to(trial_device(config)) for y in ys]


def _critic(config: dict[str, Any]) -> dict[str, Any]:
    return {"n_iters": config["n_iters"], "hidden": config["hidden"], "val_every": max(1, config["n_iters"] // 12)}


def flow_trial(config: dict[str, Any]) -> dict[str, Any]:
    """Every (later, earlier) pair's relative test on one block (pure: config -> result)."""
    start = time.perf_counter()
    scores, (x,) = _problem(config, config["block"])
    pairs = flow_pairs(config["steps"])
    results = relative_tests(scores, x, pairs, config["alpha"], config["seed"] + config["block"], method="lsd",
                             lam=0.5, device=trial_device(config), **_critic(config))
    tests = [{"later": config["steps"][a], "earlier": config["steps"][b], "difference": r.difference,
              "stderr": r.stderr, "pvalue": r.pvalue, "reject": r.reject} for (a, b), r in zip(pairs, results)]
    return {"tests": tests, "n_test": results[0].n_test, "seconds": time.perf_counter() - start}


def flow_summary(results: Sequence[dict[str, Any]], rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per pair: the rejection rate of "later is no better" over the blocks, and the truth from bits/dim."""
    bpd = {r["step"]: r["bits_per_dim"] for r in rows}
    cells: dict[tuple[int, int], list[dict[str, Any]]] = {}
    for res in results:
        for t in res["tests"]:
            cells.setdefault((t["later"], t["earlier"]), []).append(t)
    out = []
    for (later, earlier), tests in cells.items():
        rate = sum(t["reject"] for t in tests) / len(tests)
        out.append({"later": later, "earlier": earlier, "bpd_later": bpd[later], "bpd_earlier": bpd[earlier],
                    "later_is_better": bpd[later] < bpd[earlier], "blocks": len(tests), "rejection_rate": rate,
                    "stderr": math.sqrt(rate * (1 - rate) / len(tests)),
                    "mean_difference": sum(t["difference"] for t in tests) / len(tests),
                    "mean_stderr": sum(t["stderr"] for t in tests) / len(tests)})
    return out


def flow_table(summary: Sequence[dict[str, Any]]) -> str:
    """The markdown table of :func:`flow_summary`."""
    return markdown_table(
        ["later vs earlier step", "bits/dim later / earlier", "truth", "rejection rate", "mean LSD difference",
         "mean stderr", "blocks"],
        [[f"{r['later']} vs {r['earlier']}", f"{r['bpd_later']:.3f} / {r['bpd_earlier']:.3f}",
          "later better" if r["later_is_better"] else "later worse", f"{r['rejection_rate']:.2f} ± {r['stderr']:.2f}",
          f"{r['mean_difference']:.4g}", f"{r['mean_stderr']:.2g}", r["blocks"]] for r in summary])


def flow_witness(config: dict[str, Any], path: Path) -> Path:
    """The image witness of the first and last checkpoint: critics fitted on block 0, seen on block 1."""
    scores, (x, x_seen) = _problem(config, 0, 1 % config["blocks"])
    first, last = 0, len(scores) - 1
    (res,) = relative_tests([scores[last], scores[first]], x, [(0, 1)], config["alpha"], config["seed"], method="lsd",
                            lam=0.5, return_critic=True, device=trial_device(config), **_critic(config))
    steps = config["steps"]
    shown = {f"step {steps[last]}": witness(res.critic_a, x_seen),
             f"step {steps[first]}": witness(res.critic_b, x_seen)}
    return plot_images({k: dataclasses.replace(w, x=w.x.cpu()) for k, w in shown.items()}, path)

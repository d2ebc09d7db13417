"""Sample quality along training of a running full images reproduction (issue 16), without stopping it.

Checkpoints of the EBM stage copied while it trains (``SNAPS/epochK.pt``: the stage's
``checkpoint.pt`` at the end of epoch K) become the reproduction's own snapshots
(``model-stepN.pt`` in the stage's trial folder, for the epochs of ``images.CURVE_EPOCHS``); then
the reproduction's classifier and quality trials measure them, stored in OUT's trial store, so the
finished run's report reuses them. Prints one JSON line per measured row.

Usage: python benchmarks/images_curve.py OUT SNAPS [--dataset fashion-mnist]
       e.g. ``images_curve.py runs/images-full runs/snaps``
"""

from __future__ import annotations

import argparse
import functools
import json
from pathlib import Path

import torch

from steinkit.experiments import images
from steinkit.experiments._images_common import snapshot_path
from steinkit.experiments.runner import sweep, trial_folder
from steinkit.experiments.settings import RunOptions
from steinkit.train import load_checkpoint, save_checkpoint


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("snaps")
    ap.add_argument("--dataset", default="fashion-mnist")
    args = ap.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    s = images.FULL.replace(dataset=args.dataset, stages=("ebm",))
    opts = RunOptions(progress=False, threads=1)
    folder = trial_folder(out / "trials", images._stage_config(s, "ebm", "cpu"))
    n = len(images._split(s, "train")[0])
    wanted = images.curve_steps(s, n)
    for snap in sorted(Path(args.snaps).glob("epoch*.pt")):
        ck = load_checkpoint(snap)
        step = int(ck["step"])
        if step in wanted and not snapshot_path(folder, step).exists():
            save_checkpoint({"step": step, "model": ck["model"]}, snapshot_path(folder, step))
    sweep(images.classifier_trial, [images._classifier_config(s, "cpu")], out, opts, artifacts=True)
    configs = [images._quality_config(s, src, "cpu") for src in ("real", "gaussian")]
    configs += [{**images._quality_config(s, "ebm", "cpu"), "snapshot_step": k} for k in wanted
                if snapshot_path(folder, k).exists()]
    for r in sweep(functools.partial(images.quality_trial, progress=False), configs, out, opts, artifacts=True):
        for name, q in r["rows"].items():
            keys = ("confidence", "entropy", "covered", "frechet", "nn_median", "saturated", "log_q_gap",
                    "log_q_nonfinite", "histogram")
            print(json.dumps({"row": name, **{k: q[k] for k in keys if k in q}}), flush=True)


if __name__ == "__main__":
    main()

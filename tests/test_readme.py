"""The README's example and the training guide's example run as written."""

from __future__ import annotations

import contextlib
import io
import math
import os
import re
from pathlib import Path

import torch

import steinkit as sk
from steinkit.experiments.toy import grid_log_density

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
TRAINING_GUIDE = ROOT / "docs" / "guide" / "training.md"


def _python_blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(encoding="utf-8"), flags=re.S)


def _block_with(path: Path, text: str) -> str:
    (block,) = [b for b in _python_blocks(path) if text in b]
    return block


def test_the_readme_is_a_quick_start():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 120, len(lines)
    text = "\n".join(lines)
    for command in (".venv/bin/steinkit demo", ".venv/bin/python -m pytest -q", "torch==2.13.0"):
        assert command in text   # the two commands at the top are CI's (.ci/run runs the second)
    assert "sphinx-build -W --keep-going -b html docs docs/_build/html" in text


def test_the_readme_example_runs_as_written(tmp_path, monkeypatch):
    """The quick start, run as written: the perturbed RBM is rejected, its LSD is positive and the
    true model is found better."""
    monkeypatch.chdir(tmp_path)
    (block,) = _python_blocks(README)
    assert len([line for line in block.splitlines() if line.strip()]) <= 10
    out = io.StringIO()
    namespace: dict = {}
    with contextlib.redirect_stdout(out):
        exec(block, namespace)
    printed = out.getvalue()
    assert "reject H0" in printed.splitlines()[0] and "do not reject" not in printed.splitlines()[0]
    assert printed.splitlines()[1].startswith("LSD = ") and "A fits better" in printed.splitlines()[2]
    value, stderr = map(float, re.match(r"LSD = (\S+) ± (\S+) ", printed.splitlines()[1]).groups())
    x, p, q = namespace["x"], namespace["p"], namespace["q"]
    truth = float(sk.optimal_lsd(q.score(x), p.score(x), 0.5).detach())   # E‖s_q − s_p‖²/(2λ): 0.60 here
    # the largest of three noisy lower bounds (here .84 ± .29, the per-coordinate one): never above
    # the truth by 3 standard errors (the estimate panel's contract), and not far below it
    assert 0.5 * truth < value < truth + 3 * stderr, (value, stderr, truth)
    assert stderr < 0.5 * truth, stderr                                   # an error bar that says something


def _heldout_log_likelihood(model: sk.models.MLPEnergy, x: torch.Tensor) -> float:
    _, _, log_z = grid_log_density(model, 4.0, 200)   # 2-D: normalise on a grid
    with torch.no_grad():
        return float(model.log_prob(x).mean()) - log_z


def test_the_training_example_learns_the_moons(tmp_path, monkeypatch):
    """The training guide's EBM example, run as written, raises the held-out log-likelihood of the moons."""
    monkeypatch.chdir(tmp_path)
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    namespace: dict = {}
    prefix, rest = _block_with(TRAINING_GUIDE, "train(ebm").split("result = train(")
    exec(prefix, namespace)   # the data and the model as built, before training
    held = sk.data.sample_toy("moons", 4000, generator=torch.Generator().manual_seed(1))
    before = _heldout_log_likelihood(namespace["ebm"], held)
    with contextlib.redirect_stdout(io.StringIO()):
        exec("result = train(" + rest, namespace)
    gain = _heldout_log_likelihood(namespace["ebm"], held) - before
    assert math.isfinite(gain) and gain > 0.2, gain   # measured: +0.35 nats
    assert (tmp_path / "runs" / "moons.pt").exists()

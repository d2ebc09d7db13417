"""Checkpoints that keep their promise (issue 14, item 5): a default checkpoint interval that fits
the run, "resuming from step N of M (PATH)", a rerun with other settings refused with every
difference listed (or started afresh with resume=False), unreadable or incompatible files and
directories reported with their path, and the README example killed with SIGKILL then resumed."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

import steinkit as sk
from helpers import gen
from steinkit.critics import MLPCritic
from steinkit.models import Gaussian, MLPEnergy
from steinkit.train import TrainSettings, load_checkpoint, train


def _gauss(d: int = 2) -> Gaussian:
    q = Gaussian(torch.zeros(d), torch.eye(d))
    q.cov.requires_grad_(False)
    return q


def _data(n: int = 200, d: int = 2) -> torch.Tensor:
    return torch.randn(n, d, generator=gen(0)) + 1.0


def _lsd(**kw):
    """An LSD run's keywords (a small critic, built afresh each call)."""
    return {"method": "lsd", "critic": MLPCritic(2, hidden=16, generator=gen(1)), "critic_steps": 2, "lam": 0.5,
            "seed": 0, "progress": False, **kw}


def _strip(history):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


def _params(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# ----------------------------------------------------------------------------- the checkpoint interval
def test_default_checkpoint_interval_is_a_tenth_of_the_run():
    assert TrainSettings(steps=500).checkpoint_interval == 50  # the README example: 10 checkpoints, not 1
    assert TrainSettings(steps=5).checkpoint_interval == 1
    assert TrainSettings(steps=10**6).checkpoint_interval == 1000
    assert TrainSettings(steps=500, checkpoint_every=7).checkpoint_interval == 7
    with pytest.raises(ValueError, match="checkpoint_every"):
        TrainSettings(steps=5, checkpoint_every=0)


def test_a_run_interrupted_before_its_end_has_a_checkpoint_by_default(tmp_path):
    class Interrupt(Exception):
        pass

    def stop_at_step_27(model):
        calls.append(1)
        if len(calls) == 28:  # step 0, then every step (log_every = 1 for steps < 1000)
            raise Interrupt
        return {}

    calls: list[int] = []
    path = tmp_path / "ck.pt"
    with pytest.raises(Interrupt):
        train(_gauss(), _data(), method="ml", steps=50, checkpoint=path, eval_fn=stop_at_step_27, seed=0,
              progress=False)
    assert load_checkpoint(path)["step"] == 25  # every 5 steps (the old default, 1000, wrote nothing)


# ----------------------------------------------------------------------------- the README example, killed
_KILLED_RUN = """
import os, signal, sys
import torch
torch.set_num_threads(1)
import steinkit as sk
from steinkit.train import train

calls = []
def kill_at_step(model):  # called at step 0 and after every step: SIGKILL after step {kill}
    calls.append(1)
    if len(calls) == {kill} + 1:
        os.kill(os.getpid(), signal.SIGKILL)
    return {{}}

g = torch.Generator().manual_seed(0)
xy = sk.data.sample_toy("moons", 2000, generator=g)
torch.manual_seed(0)  # the energy's initial weights come from torch's global generator
ebm = sk.models.MLPEnergy(2, hidden=64).init_base(xy)
train(ebm, xy, method="lsd", steps={steps}, batch_size=200, critic_steps=5, lam=0.5, lr=1e-3, seed=0,
      checkpoint=sys.argv[1], eval_fn=kill_at_step, progress=False)
print("not killed")
"""


def _readme_run(steps: int, checkpoint: Path | None, progress: bool = False):
    """The README's training example (fewer steps; the energy's initial weights seeded)."""
    g = torch.Generator().manual_seed(0)
    xy = sk.data.sample_toy("moons", 2000, generator=g)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        ebm = sk.models.MLPEnergy(2, hidden=64).init_base(xy)
    return train(ebm, xy, method="lsd", steps=steps, batch_size=200, critic_steps=5, lam=0.5, lr=1e-3, seed=0,
                 checkpoint=checkpoint, progress=progress)


def test_the_readme_example_killed_mid_way_resumes_to_the_uninterrupted_result(tmp_path, capsys):
    steps, kill = 30, 14  # checkpoints every 3 steps: the last before the kill is at step 12
    path = tmp_path / "runs" / "moons.pt"
    script = tmp_path / "killed.py"
    script.write_text(_KILLED_RUN.format(steps=steps, kill=kill))
    src = str(Path(sk.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([src, os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, str(script), str(path)], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert "not killed" not in proc.stdout
    assert load_checkpoint(path)["step"] == 12
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no half-written temporary file

    resumed = _readme_run(steps, path, progress=True)
    assert f"resuming from step 12 of {steps} ({path})" in capsys.readouterr().err
    straight = _readme_run(steps, None)
    assert resumed.resumed_from == 12 and resumed.steps == straight.steps == steps
    assert _same(_params(resumed.model), _params(straight.model))
    assert _same(_params(resumed.critic), _params(straight.critic))
    assert _strip(resumed.history) == _strip(straight.history)
    assert load_checkpoint(path)["step"] == steps


# ----------------------------------------------------------------------------- changed settings
def test_a_rerun_with_other_settings_is_refused_listing_every_difference(tmp_path):
    path = tmp_path / "lsd.pt"
    x = _data()
    train(_gauss(), x, steps=4, **_lsd(checkpoint=path))
    before = _params(_gauss())
    def changed(**kw):
        return _lsd(checkpoint=path, batch_size=50, lam=1.0, critic_steps=3, betas=(0.9, 0.999),
                    lr_decay="cosine", batch_order="epochs", trace="exact", **kw)

    q = _gauss()
    with pytest.raises(ValueError) as info:
        train(q, x, steps=8, **changed())
    msg = str(info.value)
    assert str(path) in msg and "resume=False" in msg and "setting: saved -> now" in msg
    for diff in ("batch_size: 100 -> 50", "lam: 0.5 -> 1.0", "critic_steps: 2 -> 3",
                 "betas: (0.5, 0.9) -> (0.9, 0.999)", "lr_decay: 'constant' -> 'cosine'", "batch_order: 'replacement' -> 'epochs'",
                 "trace: 'hutchinson' -> 'exact'"):
        assert diff in msg, diff
    assert _same(_params(q), before)  # nothing was loaded
    # More rows of data, another method (and its settings), another dimension: each listed too.
    with pytest.raises(ValueError, match="data_rows: 200 -> 150"):
        train(_gauss(), _data(150), steps=8, **_lsd(checkpoint=path))
    with pytest.raises(ValueError, match=r"method: 'lsd' -> 'ml'.*batch_size: 100 -> 20"):
        train(_gauss(), x, method="ml", steps=8, batch_size=20, checkpoint=path, seed=0, progress=False)
    with pytest.raises(ValueError, match=r"model.dim: 2 -> 3"):
        train(_gauss(3), _data(d=3), method="ml", steps=8, checkpoint=path, seed=0, progress=False)
    with pytest.raises(ValueError, match=re.escape(f"{path}' is at step 4, past this run's steps=3")):
        train(_gauss(), x, steps=3, **_lsd(checkpoint=path))

    # resume=False starts afresh: the same numbers as a run without a checkpoint; the file is replaced.
    q, fresh = _gauss(), _gauss()
    res = train(q, x, steps=5, **changed(resume=False))
    train(fresh, x, steps=5, **{**changed(), "checkpoint": None})
    assert res.resumed_from == 0 and torch.equal(q.mean, fresh.mean)
    assert load_checkpoint(path)["config"]["lam"] == 1.0
    train(_gauss(), x, steps=6, **changed())  # and the new run resumes under its own settings


def test_a_new_learning_rate_or_more_steps_resume_and_say_so(tmp_path, capsys):
    path = tmp_path / "lsd.pt"
    x = _data()
    train(_gauss(), x, steps=4, **_lsd(checkpoint=path))
    res = train(_gauss(), x, steps=8, lr=1e-2, **_lsd(checkpoint=path, progress=True))
    assert res.resumed_from == 4 and res.steps == 8
    err = capsys.readouterr().err
    assert (f"resuming from step 4 of 8 ({path}; changed: steps: 4 -> 8, lr: 0.001 -> 0.01, "
            "critic_lr: 0.001 -> 0.01)") in err
    # A rerun without seed= (or with a generator) continues a seeded run; progress=False prints nothing.
    res = train(_gauss(), x, steps=10, lr=1e-2, **{**_lsd(checkpoint=path), "seed": None})
    assert res.resumed_from == 8
    res = train(_gauss(), x, steps=12, lr=1e-2, **{**_lsd(checkpoint=path), "seed": None, "generator": gen(5)})
    assert res.resumed_from == 10
    assert "resuming" not in capsys.readouterr().err
    # Another seed is unused (the checkpoint's random state continues) and said so; the run's own
    # seed (0) was kept through the reruns without one.
    res = train(_gauss(), x, steps=14, lr=1e-2, **_lsd(checkpoint=path, seed=7, progress=True))
    assert res.resumed_from == 12
    assert "changed: steps: 12 -> 14, seed: 0 -> 7 (unused: the checkpoint's random state continues)" in (
        capsys.readouterr().err)


def test_resume_false_over_an_existing_checkpoint_says_it_starts_afresh(tmp_path, capsys):
    path = tmp_path / "ml.pt"
    train(_gauss(), _data(), method="ml", steps=3, checkpoint=path, seed=0, progress=False)
    res = train(_gauss(), _data(), method="ml", steps=2, checkpoint=path, resume=False, seed=0)
    assert res.resumed_from == 0 and load_checkpoint(path)["step"] == 2
    assert f"starting afresh (resume=False): {path} will be overwritten" in capsys.readouterr().err
    with pytest.raises(TypeError, match="resume must be True or False"):
        train(_gauss(), _data(), method="ml", steps=2, checkpoint=path, resume="never", progress=False)


# ----------------------------------------------------------------------------- unreadable and incompatible files
def _bad_files(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """Bad checkpoint files and the words their error must contain."""
    good = tmp_path / "good.pt"
    train(_gauss(), _data(), method="ml", steps=2, checkpoint=good, seed=0, progress=False)
    raw = good.read_bytes()
    files: dict[str, tuple[bytes | None, str]] = {
        "empty": (b"", "the file is empty"),
        "text": (b"step = 3\n", "not written by torch.save"),
        **{f"truncated at {cut}": (raw[:cut], "truncated, corrupted")
           for cut in (1, 10, 100, len(raw) // 2, len(raw) - 1)},
    }
    out = {}
    for name, (content, words) in files.items():
        path = tmp_path / f"{name.replace(' ', '_')}.pt"
        path.write_bytes(content)
        out[name] = (path, words)
    foreign = {
        "a pickled module": (nn.Linear(2, 2), "holds Python objects"),
        "a tensor": (torch.ones(2), "holds a Tensor, not a steinkit.train checkpoint"),
        "a plain state dict": ({"mean": torch.zeros(2)}, "is not a steinkit.train checkpoint"),
        "a damaged checkpoint": ({**load_checkpoint(good), "model": None}, "is damaged (model is a NoneType)"),
        "a checkpoint whose optimiser does not load": (
            {**load_checkpoint(good), "optimizer": {"state": {}, "param_groups": []}}, "does not fit this run"),
        "a checkpoint without its history": (
            {k: v for k, v in load_checkpoint(good).items() if k != "history"}, "is incomplete (no history)"),
    }
    for name, (obj, words) in foreign.items():
        path = tmp_path / f"{name.replace(' ', '_')}.pt"
        torch.save(obj, path)
        out[name] = (path, words)
    return out


def test_unreadable_or_foreign_files_are_reported_with_their_path_and_the_way_out(tmp_path):
    for name, (path, words) in _bad_files(tmp_path).items():
        q = _gauss()
        with pytest.raises(ValueError) as info:
            train(q, _data(), method="ml", steps=3, checkpoint=path, seed=0, progress=False)
        msg = str(info.value)
        assert f"checkpoint {str(path)!r}" in msg, (name, msg)
        assert words in msg and "resume=False" in msg, (name, msg)
        assert "\n" not in msg, (name, msg)
        assert torch.equal(q.mean, torch.zeros(2)), name  # nothing was loaded into the model
        res = train(_gauss(), _data(), method="ml", steps=3, checkpoint=path, resume=False, seed=0, progress=False)
        assert res.resumed_from == 0 and load_checkpoint(path)["step"] == 3, name  # the way out works


def test_a_checkpoint_of_another_model_shape_is_refused_before_anything_loads(tmp_path):
    x = _data()
    path = tmp_path / "ebm.pt"
    train(MLPEnergy(2, hidden=16), x, method="ssm", steps=2, checkpoint=path, seed=0, progress=False)
    other = MLPEnergy(2, hidden=8)
    before = _params(other)
    with pytest.raises(ValueError) as info:
        train(other, x, method="ssm", steps=4, checkpoint=path, seed=0, progress=False)
    msg = str(info.value)
    assert str(path) in msg and "another shape" in msg and "(16, 2) -> (8, 2)" in msg and "resume=False" in msg
    assert _same(_params(other), before)
    # the LSD critic too
    path = tmp_path / "lsd.pt"
    train(_gauss(), x, steps=2, **_lsd(checkpoint=path))
    with pytest.raises(ValueError, match=r"critic\..*\(16, 2\) -> \(8, 2\)"):
        train(_gauss(), x, steps=4, **{**_lsd(checkpoint=path), "critic": MLPCritic(2, hidden=8, generator=gen(1))})


def test_a_directory_or_a_path_below_a_file_is_refused_before_training(tmp_path):
    q = _gauss()
    with pytest.raises(ValueError, match=re.escape(f"checkpoint={str(tmp_path)!r} is a directory, not a file")):
        train(q, _data(), method="ml", steps=3, checkpoint=tmp_path, seed=0, progress=False)
    with pytest.raises(ValueError, match="is a directory"):  # with resume=False too: it could never be written
        train(q, _data(), method="ml", steps=3, checkpoint=tmp_path, resume=False, seed=0, progress=False)
    with pytest.raises(ValueError, match="is a directory"):
        load_checkpoint(tmp_path)
    blocker = tmp_path / "notes.txt"
    blocker.write_text("a file")
    with pytest.raises(ValueError, match=re.escape(f"{str(blocker)!r} is a file, not a folder")):
        train(q, _data(), method="ml", steps=3, checkpoint=blocker / "run.pt", seed=0, progress=False)
    with pytest.raises(TypeError, match="checkpoint must be a file path"):
        train(q, _data(), method="ml", steps=3, checkpoint=3, seed=0, progress=False)
    assert torch.equal(q.mean, torch.zeros(2))  # no step was taken
    # a missing folder is created
    res = train(q, _data(), method="ml", steps=3, checkpoint=tmp_path / "a" / "b" / "run.pt", seed=0, progress=False)
    assert res.checkpoint.is_file()

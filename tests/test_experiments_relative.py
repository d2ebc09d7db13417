"""The 'relative' reproduction on tiny settings: pairs, trials equal to the public API, files, resume."""

from __future__ import annotations

import json

import pytest
import torch

import steinkit as sk
from steinkit.cli import build_parser, main
from steinkit.experiments import get_experiment, relative
from steinkit.experiments.settings import RunOptions, settings_from_args

TINY = relative.QUICK.replace(dims=("5:3",), sigmas=(0.0, 0.5), reps=2, batch=1, n=200, burn_in=20, n_iters=24,
                              hidden=8)


def test_registered_with_generated_options():
    assert get_experiment("relative") is relative and relative.PAPER_CLAIM and relative.SETUP_NOTE
    args = build_parser().parse_args(["reproduce", "relative", "--out", "x", "--quick", "--sigmas", "0", "0.02"])
    s = settings_from_args(args, relative.FULL, relative.QUICK)
    assert s.sigmas == (0.0, 0.02) and s.reps == relative.QUICK.reps and s.dims == ("50:40",)
    assert relative.FULL.reps == 200 and relative.FULL.sigmas == (0.0, 0.01, 0.02, 0.04)


def test_pairs_cover_ordered_and_equal():
    assert relative.model_pairs((0.02, 0.0, 0.01)) == [
        ("ordered", 0.0, 0.01), ("ordered", 0.0, 0.02), ("ordered", 0.01, 0.02),
        ("equal", 0.01, 0.01), ("equal", 0.02, 0.02)]
    with pytest.raises(ValueError, match="sigmas"):
        relative.QUICK.replace(sigmas=(0.0,))
    with pytest.raises(ValueError, match="alpha"):
        relative.QUICK.replace(alpha=1.0)


def test_trial_equals_the_public_relative_test():
    """The trial fits every model's critic once; each pair's result is relative_test's."""
    config = relative.trial_configs(TINY)[0]
    tests = relative.run_trial(config)["tests"]
    kinds = {(k, m) for k in ("ordered", "equal") for m in relative.REL_METHODS}
    assert {(t["kind"], t["method"]) for t in tests} == kinds
    p, x, models = relative._models(config, 0)
    seed = relative.derive_seed(config["seed"], 5, 3, 0, "relative")
    for method, extra in (("lsd", {"n_iters": 24, "hidden": 8, "val_every": 2}), ("optimal", {})):
        ordered = next(t for t in tests if t["method"] == method and t["kind"] == "ordered" and t["rep"] == 0)
        res = sk.relative_test(models[0.0, 0], models[0.5, 0], x, seed=seed, method=method, **extra)
        assert ordered["difference"] == pytest.approx(res.difference, rel=1e-5, abs=1e-7)
    equal = next(t for t in tests if t["kind"] == "equal" and t["rep"] == 0)
    with torch.no_grad():  # the truth is the optimal critics' LSD difference on x, with p's score
        s_p = p.score(x).double()
        truth = [float(sk.optimal_lsd(models[k].score(x).double(), s_p, 0.5)) for k in ((0.5, 0), (0.5, 1))]
    assert equal["truth"] == pytest.approx(truth[0] - truth[1])


def test_run_writes_the_report_and_resumes(tmp_path, monkeypatch):
    quiet = RunOptions(progress=False)
    report = relative.run(TINY, tmp_path, quiet)
    assert (tmp_path / "relative.png").stat().st_size > 0 and (tmp_path / "witness_toy.png").stat().st_size > 0
    rows = report["results"]["rows"]
    assert {(r["kind"], r["method"]) for r in rows} >= {("ordered", "optimal"), ("equal", "lsd")}
    assert all(r["reps"] == 2 for r in rows) and report["verdict"].startswith("no verdict")
    assert "witness_toy.png" in (tmp_path / "results.md").read_text()
    monkeypatch.setattr(relative, "run_trial", lambda config: pytest.fail("a stored trial ran again"))
    assert relative.run(TINY, tmp_path, quiet)["results"]["rows"] == rows
    assert json.loads((tmp_path / "results.json").read_text())["experiment"] == "relative"


def test_cli_runs_it(tmp_path):
    assert main(["reproduce", "relative", "--out", str(tmp_path), "--dims", "4:2", "--sigmas", "0.3", "--reps", "1",
                 "--n", "100", "--burn-in", "5", "--n-iters", "12", "--hidden", "4", "--methods", "optimal",
                 "--no-progress"]) == 0
    rows = json.loads((tmp_path / "results.json").read_text())["results"]["rows"]
    assert [(r["kind"], r["method"]) for r in rows] == [("equal", "optimal")]

"""The training reproductions (ICA, toy densities) on tiny settings: outputs, resumption, checks."""

from __future__ import annotations

import argparse
import json
import math

import pytest
import torch

from steinkit.cli import build_parser, main
from steinkit.experiments import get_experiment, ica, toy
from steinkit.experiments.runner import TrialStore, canonical_key, trial_folder
from steinkit.experiments.settings import RunOptions, add_setting_arguments, settings_from_args
from steinkit.models import MLPEnergy

OPTIONS = RunOptions(progress=False)
TINY_ICA = ica.QUICK.replace(dims=(2,), seeds=1, steps=30, curve_every=15, n_train=300, n_val=100, n_test=100)
TINY_TOY = toy.FULL.replace(datasets=("moons",), steps=(4,), hidden=16, n_train=400, n_test=200, grid=40)


def _refuse(config, folder):
    raise AssertionError("a finished trial was run again")


def _parse(module, argv):
    parser = argparse.ArgumentParser()
    add_setting_arguments(parser, module.FULL, module.QUICK)
    return settings_from_args(parser.parse_args(argv), module.FULL, module.QUICK)


def test_experiment_modules_follow_the_protocol():
    for name, module in (("ica", ica), ("toy", toy)):
        assert get_experiment(name) is module
        declared = module.REPRODUCTION
        assert declared.name == name and declared.description and declared.paper_claim
        assert isinstance(module.FULL, module.Settings) and isinstance(module.QUICK, module.Settings)
        ns = build_parser().parse_args(["reproduce", name, "--out", "x", "--jobs", "1"])
        assert ns.jobs == 1


def test_settings_are_checked_before_any_trial_starts(tmp_path, capsys):
    assert main(["reproduce", "ica", "--out", str(tmp_path), "--dims", "0"]) == 2
    assert "dims must be finite and >= 1" in capsys.readouterr().err
    assert main(["reproduce", "toy", "--out", str(tmp_path), "--steps", "10", "0"]) == 2
    assert "steps must be finite and >= 1" in capsys.readouterr().err
    assert not (tmp_path / "trials.sqlite").exists()
    # --seeds is a count in both modules, starting at --seed
    assert _parse(ica, ["--seeds", "2", "--seed", "3"]).seeds == 2
    assert {c["seed"] for c in ica.trial_configs(ica.QUICK.replace(seed=3))} == {3, 4}
    assert {c["seed"] for c in toy.trial_configs(toy.QUICK.replace(seeds=2))} == {0, 1}


def test_ica_grids_follow_appendix_b5():
    assert [len(ica.grid(m, ica.FULL)) for m in ("ml", "lsd", "ssm", "nce", "cnce")] == [3, 54, 3, 3, 12]
    lsd = ica.grid("lsd", ica.FULL)
    assert {c["lam"] for c in lsd} == {0.1, 1.0, 10.0} and {c["critic_steps"] for c in lsd} == {1, 5}
    assert {c["critic_lr_factor"] for c in lsd} == {1.0, 0.1, 0.03}
    assert {c["eps"] for c in ica.grid("cnce", ica.FULL)} == {0.01, 0.1, 1.0, 10.0}
    assert {c["lr"] for c in ica.grid("ml", ica.FULL)} == {1e-3, 1e-4, 1e-5}


def test_ica_problem_is_well_conditioned_and_split():
    truth, xtr, xva, xte = ica.make_problem("laplace", 5, 0, 50, 20, 30)
    assert float(torch.linalg.cond(truth.W.detach())) < 5
    assert (xtr.shape, xva.shape, xte.shape) == ((50, 5), (20, 5), (30, 5))
    truth2, *_ = ica.make_problem("logistic", 5, 0, 50, 20, 30)
    assert torch.equal(truth.W, truth2.W)  # both source families share the mixing matrix


def test_ica_tiny_sweep_writes_results_and_resumes(tmp_path, monkeypatch):
    res = ica.run(TINY_ICA, tmp_path, OPTIONS)["results"]
    per_source = 1 + 1 + 1 + 1 + 2 + 1  # ml, lsd, ssm, nce, cnce (2 eps), lsd_oracle
    assert res["n_runs"] == len(TrialStore(tmp_path / "trials.sqlite")) == 2 * per_source
    saved = json.loads((tmp_path / "results.json").read_text())
    rows = saved["results"]["rows"]
    assert len(rows) == 2 * 6
    for r in rows:
        assert {"method", "dim", "seed", "test_loglik", "source"} <= set(r)
        assert math.isfinite(r["test_loglik"])
    report = (tmp_path / "results.md").read_text()
    assert "| Max. Likelihood |" in report and "| LSD |" in report and "D=2" in report
    assert saved["verdict"].split(":")[0] in ("replicates", "does not replicate") and "D=2" in saved["verdict"]
    assert (tmp_path / "ica_curves.png").stat().st_size > 0
    # SSM on Laplace sources sees the smoothed jumps of the score (boundary_width 0.5).
    ssm = [r for r in saved["results"]["ssm_runs"] if r["source"] == "laplace"]
    assert ssm and all(r["mean_hess_term"] < 0.0 for r in ssm)
    assert not list((tmp_path / "trials").glob("*/checkpoint.pt"))
    # a rerun trains nothing and reports the same rows
    monkeypatch.setattr(ica, "run_trial", _refuse)
    again = ica.run(TINY_ICA, tmp_path, OPTIONS)
    assert json.loads(json.dumps(again["results"]["rows"])) == json.loads((tmp_path / "results.json").read_text())[
        "results"]["rows"] == rows


def test_ica_ssm_hessian_term_is_zero_without_boundary_smoothing(tmp_path):
    settings = TINY_ICA.replace(steps=4, methods=("ssm",), sources=("laplace",), boundary_width=0.0)
    res = ica.run(settings, tmp_path, OPTIONS)["results"]
    assert res["ssm_runs"] and all(r["mean_hess_term"] == 0.0 for r in res["ssm_runs"])
    assert {c["boundary_width"] for c in ica.trial_configs(settings)} == {0.0}


def test_ica_rejects_unknown_options():
    with pytest.raises(TypeError, match="unknown setting"):
        ica.QUICK.replace(n_layers=3)
    with pytest.raises(ValueError, match="methods must be one of"):
        ica.QUICK.replace(methods=("cd",))
    with pytest.raises(ValueError, match="sources must be one of"):
        ica.QUICK.replace(sources=("cauchy",))


def test_grid_log_density_is_normalized():
    torch.manual_seed(0)
    m = MLPEnergy(2, hidden=8)
    pts, lq, log_z = toy.grid_log_density(m, 6.0, 200)
    cell = (12.0 / 199) ** 2
    assert abs(float((lq - log_z).exp().sum()) * cell - 1.0) < 1e-4


def test_toy_tiny_run_writes_results_and_figure(tmp_path, monkeypatch):
    res = toy.run(TINY_TOY, tmp_path, OPTIONS)
    (row,) = res["results"]["rows"]
    assert row["dataset"] == "moons" and row["steps"] == row["steps_done"] == 4
    assert math.isfinite(row["test_loglik"]) and math.isfinite(row["gaussian_test_loglik"])
    assert (tmp_path / "toy_densities.png").stat().st_size > 0
    assert (tmp_path / row["trial"] / "log_density.pt").exists() and (tmp_path / row["trial"] / "history.json").exists()
    assert "| moons |" in (tmp_path / "results.md").read_text() and "Gaussian fit" in res["verdict"]
    with monkeypatch.context() as m:
        m.setattr(toy, "run_trial", _refuse)
        assert toy.run(TINY_TOY, tmp_path, OPTIONS)["results"]["rows"] == res["results"]["rows"]  # resumed
    with pytest.raises(ValueError, match="datasets must be one of"):
        toy.FULL.replace(datasets=("spiral",))
    assert res["settings"]["lr_decay"] == "cosine"
    assert _parse(toy, ["--lr-decay", "constant"]).lr_decay == "constant"
    # another setting in the same folder is a new run, not the stale one
    constant = toy.run(TINY_TOY.replace(lr_decay="constant"), tmp_path, OPTIONS)["results"]["rows"][0]
    assert constant["test_loglik"] != row["test_loglik"]  # the schedule reaches the trainer
    assert len(TrialStore(tmp_path / "trials.sqlite")) == 4  # 2 schedules x 2 gains


def test_toy_keeps_the_run_with_the_best_validation_loglik(tmp_path, monkeypatch):
    settings = TINY_TOY.replace(n_val=300, steps=(3, 6))
    res = toy.run(settings, tmp_path, OPTIONS)
    assert res["settings"]["first_layer_gains"] == [1.0, 3.0]
    runs = {(r["first_layer_gain"], r["steps"]): r for r in res["results"]["runs"]}
    assert set(runs) == {(1.0, 3), (1.0, 6), (3.0, 3), (3.0, 6)}
    assert runs[1.0, 3]["test_loglik"] != runs[3.0, 3]["test_loglik"]  # the gain reaches the model
    assert runs[1.0, 3]["test_loglik"] != runs[1.0, 6]["test_loglik"]
    best = max(runs.values(), key=lambda r: r["val_loglik"])
    (row,) = res["results"]["rows"]
    assert (row["first_layer_gain"], row["steps"], row["test_loglik"]) == (
        best["first_layer_gain"], best["steps"], best["test_loglik"])
    assert "| gain 1, 3 steps | gain 1, 6 steps | gain 3, 3 steps | gain 3, 6 steps |" in (
        tmp_path / "results.md").read_text()
    parsed = _parse(toy, ["--first-layer-gains", "1", "2", "--steps", "5", "7"])
    assert (parsed.first_layer_gains, parsed.steps) == ((1.0, 2.0), (5, 7))
    monkeypatch.setattr(toy, "run_trial", _refuse)
    only = toy.run(settings.replace(steps=(6,), first_layer_gains=(3.0,)), tmp_path, OPTIONS)  # reuses that run
    assert only["results"]["rows"][0]["test_loglik"] == runs[3.0, 6]["test_loglik"]
    assert toy.QUICK.steps == (2000,) and toy.FULL.steps == (2000, 10000)
    assert all(c in toy.trial_configs(toy.FULL) for c in toy.trial_configs(toy.QUICK))  # quick trials are full ones
    with pytest.raises(ValueError, match="first_layer_gains must be finite and >="):
        settings.replace(first_layer_gains=(0.0,))
    for bad in ((0,), (2.5,), ()):
        with pytest.raises((ValueError, TypeError), match="steps must be"):
            settings.replace(steps=bad)
    assert toy._validation_score({"val_loglik": None}) == toy._validation_score({"val_loglik": math.nan}) == -math.inf
    assert toy._validation_score({"val_loglik": 0.0}) == 0.0
    with pytest.raises(ValueError, match="lr_decay must be one of"):
        settings.replace(lr_decay="linear")


def test_ica_unmixing_parametrization_lets_the_exact_critic_reach_the_truth(tmp_path):
    # Algorithm 3's model step with the exact optimal critic, D = 10, 1500 steps: training the
    # unmixing matrix B reaches the true test log-likelihood; training the mixing matrix W (the
    # paper's Eq. 14) is still 3% short on the same batches (the landscape, not the critic).
    config = {"source": "laplace", "dim": 10, "seed": 0, "method": "lsd_oracle", "config": {"lr": 1e-2},
              "steps": 1500, "batch_size": 200, "n_train": 5000, "n_val": 500, "n_test": 2000,
              "curve_every": 500, "boundary_width": 0.5, "lr_decay": "constant"}
    unmix_config, mix_config = ({**config, "parametrization": p} for p in ("unmixing", "mixing"))
    assert trial_folder(tmp_path, unmix_config) != trial_folder(tmp_path, mix_config)  # one trial each
    unmix = ica.run_trial(unmix_config, tmp_path)
    mix = ica.run_trial(mix_config, tmp_path)
    truth = unmix["true_test_loglik"]
    assert abs(unmix["test_loglik"] / truth - 1) < 0.005
    assert mix["test_loglik"] / truth - 1 > 0.02


def test_ica_sweep_passes_parametrization_and_lr_decay_to_every_run(tmp_path):
    settings = TINY_ICA.replace(steps=4, methods=("ml", "lsd"), sources=("laplace",), parametrization="unmixing",
                                lr_decay="cosine")
    res = ica.run(settings, tmp_path, OPTIONS)
    assert res["settings"]["parametrization"] == "unmixing" and res["settings"]["lr_decay"] == "cosine"
    assert all(math.isfinite(r["test_loglik"]) for r in res["results"]["rows"])
    stored = [row["config"] for row in TrialStore(tmp_path / "trials.sqlite").rows()]
    assert len(stored) == 2 and all((c["parametrization"], c["lr_decay"]) == ("unmixing", "cosine") for c in stored)
    parsed = _parse(ica, ["--parametrization", "mixing", "--lr-decay", "constant"])
    assert (parsed.parametrization, parsed.lr_decay) == ("mixing", "constant")
    with pytest.raises(ValueError, match="parametrization must be one of"):
        settings.replace(parametrization="inverse")


def test_ica_critic_rate_factors_reach_the_grid_and_are_checked():
    assert _parse(ica, ["--critic-lr-factors", "0.1", "0.03"]).critic_lr_factors == (0.1, 0.03)
    assert ica.FULL.critic_lr_factors == (1.0, 0.1, 0.03)
    configs = ica.grid("lsd", ica.QUICK.replace(critic_lr_factors=(0.1, 0.03)))
    assert sorted(c["critic_lr_factor"] for c in configs) == [0.03, 0.1]
    for bad in ((), (0.0,), (-0.1,)):
        with pytest.raises(ValueError, match="critic_lr_factors must be"):
            ica.QUICK.replace(critic_lr_factors=bad)


def test_ica_trial_key_covers_every_setting_that_changes_a_result():
    base = ica.QUICK.replace(dims=(3,), seeds=1, methods=("ml",), steps=10, batch_size=5, n_train=50, n_val=10,
                             n_test=10, curve_every=5)
    keys = {canonical_key(c) for c in ica.trial_configs(base)}
    changes = (("steps", 11), ("batch_size", 6), ("n_train", 60), ("n_val", 11), ("n_test", 11), ("seed", 1),
               ("curve_every", 2), ("lr_decay", "constant"), ("parametrization", "mixing"))
    for k, v in changes:  # the whole config is the key: a changed setting never reuses a stored trial
        assert not keys & {canonical_key(c) for c in ica.trial_configs(base.replace(**{k: v}))}, k
    # the boundary width changes the Laplace trials only; the logistic ones are kept
    other = [c for c in ica.trial_configs(base.replace(boundary_width=0.3)) if canonical_key(c) not in keys]
    assert [c["source"] for c in other] == ["laplace"]
    assert len(ica.trial_configs(base.replace(dims=(3, 3, 4)))) == 4  # sorted, distinct D; both sources

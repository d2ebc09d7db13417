"""The training reproductions (ICA, toy densities) on tiny settings: outputs, resumption, checks."""

from __future__ import annotations

import argparse
import json
import math

import pytest
import torch

from helpers import gen
from steinkit.experiments import get_experiment, ica, toy
from steinkit.models import MLPEnergy

TINY_ICA = dict(
    dims=[2], seeds=1, steps=30, n_jobs=1, curve_every=15, n_train=300, n_val=100, n_test=100,
)


def test_experiment_modules_follow_the_protocol():
    for name, module in (("ica", ica), ("toy", toy)):
        assert get_experiment(name) is module
        assert module.NAME == name and module.DESCRIPTION
        parser = argparse.ArgumentParser()
        module.add_arguments(parser)
        ns = parser.parse_args(["--n-jobs", "1"])
        assert ns.n_jobs == 1


def test_ica_grids_follow_appendix_b5():
    assert [len(ica.grid(m, ica.FULL)) for m in ("ml", "lsd", "ssm", "nce", "cnce")] == [3, 54, 3, 3, 12]
    lsd = ica.grid("lsd", ica.FULL)
    assert {c["lam"] for c in lsd} == {0.1, 1.0, 10.0} and {c["critic_steps"] for c in lsd} == {1, 5}
    assert {c["critic_lr_factor"] for c in lsd} == {1.0, 0.1, 0.03}
    assert {c["eps"] for c in ica.grid("cnce", ica.FULL)} == {0.01, 0.1, 1.0, 10.0}
    assert {c["lr"] for c in ica.grid("ml", ica.FULL)} == {1e-3, 1e-4, 1e-5}


def test_logistic_ica_is_normalized_and_its_score_is_the_gradient_of_its_log_density():
    q = ica.LogisticICA(torch.tensor([[2.0]], dtype=torch.float64))
    xs = torch.linspace(-60, 60, 24001, dtype=torch.float64)[:, None]
    mass = float(q.log_prob(xs).detach().exp().sum() * (xs[1, 0] - xs[0, 0]))
    assert abs(mass - 1.0) < 1e-6
    q = ica.LogisticICA.random(3, generator=gen(0), dtype=torch.float64)
    x = q.sample(7, generator=gen(1)).requires_grad_(True)
    (auto,) = torch.autograd.grad(q.log_prob(x).sum(), x)
    torch.testing.assert_close(q.score(x.detach()), auto)
    # Logistic(0, 1) sources have variance π²/3: the sample covariance of 20000 draws of x = W z
    # is (π²/3) W Wᵀ up to a relative error of a few percent (4 standard errors ≈ 0.06).
    z = torch.linalg.solve(q.W.detach(), q.sample(20000, generator=gen(2)).T).T
    assert abs(float(z.var(0).mean()) - math.pi**2 / 3) < 0.06 * math.pi**2 / 3


def test_ica_problem_is_well_conditioned_and_split():
    truth, xtr, xva, xte = ica.make_problem("laplace", 5, 0, 50, 20, 30)
    assert float(torch.linalg.cond(truth.W.detach())) < 5
    assert (xtr.shape, xva.shape, xte.shape) == ((50, 5), (20, 5), (30, 5))
    truth2, *_ = ica.make_problem("logistic", 5, 0, 50, 20, 30)
    assert torch.equal(truth.W, truth2.W)  # both source families share the mixing matrix


def test_ica_tiny_sweep_writes_results_and_resumes(tmp_path):
    res = ica.run(tmp_path, quick=True, **TINY_ICA)
    per_source = 1 + 1 + 1 + 1 + 2 + 1  # ml, lsd, ssm, nce, cnce (2 eps), lsd_oracle
    assert res["n_runs"] == res["n_new_runs"] == 2 * per_source
    saved = json.loads((tmp_path / "results.json").read_text())
    rows = saved["rows"]
    assert len(rows) == 2 * 6
    for r in rows:
        assert {"method", "dim", "seed", "test_loglik", "source"} <= set(r)
        assert math.isfinite(r["test_loglik"])
    table = (tmp_path / "table.md").read_text()
    assert "| Max. Likelihood |" in table and "| LSD |" in table and "D=2" in table
    assert (tmp_path / "ica_curves.png").stat().st_size > 0
    # SSM on Laplace sources sees the smoothed jumps of the score (boundary_width 0.5).
    ssm = [r for r in saved["ssm_runs"] if r["source"] == "laplace"]
    assert ssm and all(r["mean_hess_term"] < 0.0 for r in ssm)
    assert not list((tmp_path / "checkpoints").glob("*.pt"))
    # a rerun trains nothing and reports the same rows
    again = ica.run(tmp_path, quick=True, **TINY_ICA)
    assert again["n_new_runs"] == 0
    assert again["rows"] == rows


def test_ica_ssm_hessian_term_is_zero_without_boundary_smoothing(tmp_path):
    res = ica.run(tmp_path, quick=True, **{**TINY_ICA, "steps": 4}, methods=["ssm"], sources=["laplace"],
                  boundary_width=None)
    assert res["ssm_runs"] and all(r["mean_hess_term"] == 0.0 for r in res["ssm_runs"])
    assert all("-bwnone" in r["key"] for r in res["rows"])


def test_ica_rejects_unknown_options(tmp_path):
    with pytest.raises(ValueError, match="unknown options"):
        ica.run(tmp_path, quick=True, n_layers=3)
    with pytest.raises(ValueError, match="methods must be among"):
        ica.run(tmp_path, quick=True, methods=["cd"])
    with pytest.raises(ValueError, match="sources must be among"):
        ica.run(tmp_path, quick=True, sources=["cauchy"])


def test_grid_log_density_is_normalized():
    torch.manual_seed(0)
    m = MLPEnergy(2, hidden=8)
    pts, lq, log_z = toy.grid_log_density(m, 6.0, 200)
    cell = (12.0 / 199) ** 2
    assert abs(float((lq - log_z).exp().sum()) * cell - 1.0) < 1e-4


def test_toy_tiny_run_writes_results_and_figure(tmp_path):
    opts = dict(datasets=["moons"], steps=4, hidden=16, n_train=400, n_test=200, grid=40, n_jobs=1)
    res = toy.run(tmp_path, **opts)
    (row,) = res["rows"]
    assert row["dataset"] == "moons" and row["steps"] == row["steps_done"] == 4
    assert math.isfinite(row["test_loglik"]) and math.isfinite(row["gaussian_test_loglik"])
    assert (tmp_path / "toy_densities.png").stat().st_size > 0
    assert "| moons |" in (tmp_path / "table.md").read_text()
    assert toy.run(tmp_path, **opts)["rows"] == res["rows"]  # resumed: nothing retrained
    with pytest.raises(ValueError, match="datasets must be among"):
        toy.run(tmp_path, datasets=["spiral"])
    assert res["settings"]["lr_decay"] == "cosine"
    parser = argparse.ArgumentParser()
    toy.add_arguments(parser)
    assert parser.parse_args(["--lr-decay", "constant"]).lr_decay == "constant"
    # another setting in the same folder is a new run, not the stale one
    constant = toy.run(tmp_path, **opts, lr_decay="constant")["rows"][0]
    assert constant["test_loglik"] != row["test_loglik"]  # the schedule reaches the trainer
    assert len(list((tmp_path / "runs").glob("moons-*.json"))) == 4  # 2 schedules x 2 gains


def test_toy_keeps_the_run_with_the_best_validation_loglik(tmp_path):
    opts = dict(datasets=["moons"], hidden=16, n_train=400, n_val=300, n_test=200, grid=40, n_jobs=1)
    res = toy.run(tmp_path, **opts, steps=[3, 6])
    assert res["settings"]["first_layer_gains"] == [1.0, 3.0]
    runs = {(r["first_layer_gain"], r["steps"]): r for r in res["runs"]}
    assert set(runs) == {(1.0, 3), (1.0, 6), (3.0, 3), (3.0, 6)}
    assert runs[1.0, 3]["test_loglik"] != runs[3.0, 3]["test_loglik"]  # the gain reaches the model
    assert runs[1.0, 3]["test_loglik"] != runs[1.0, 6]["test_loglik"]
    best = max(runs.values(), key=lambda r: r["val_loglik"])
    (row,) = res["rows"]
    assert (row["first_layer_gain"], row["steps"], row["test_loglik"]) == (
        best["first_layer_gain"], best["steps"], best["test_loglik"])
    assert "| gain 1, 3 steps | gain 1, 6 steps | gain 3, 3 steps | gain 3, 6 steps |" in res["table"]
    parser = argparse.ArgumentParser()
    toy.add_arguments(parser)
    ns = parser.parse_args(["--first-layer-gains", "1", "2", "--steps", "5", "7"])
    assert (ns.first_layer_gains, ns.steps) == ([1.0, 2.0], [5, 7])
    only = toy.run(tmp_path, **opts, steps=6, first_layer_gains=[3.0])  # reuses that run
    assert only["rows"][0]["test_loglik"] == runs[3.0, 6]["test_loglik"]
    assert toy.QUICK["steps"] == [2000] and toy.FULL["steps"] == [2000, 10000]
    with pytest.raises(ValueError, match="first_layer_gains must be positive"):
        toy.run(tmp_path, **opts, first_layer_gains=[0.0])
    for bad in ([0], [2.5], []):
        with pytest.raises(ValueError, match="steps must be positive"):
            toy.run(tmp_path, **opts, steps=bad)
    assert toy._validation_score({"val_loglik": None}) == toy._validation_score({"val_loglik": math.nan}) == -math.inf
    assert toy._validation_score({"val_loglik": 0.0}) == 0.0
    with pytest.raises(ValueError, match="lr_decay must be one of"):
        toy.run(tmp_path / "bad", **opts, lr_decay="linear")


def test_ica_unmixing_parametrization_lets_the_exact_critic_reach_the_truth(tmp_path):
    # Algorithm 3's model step with the exact optimal critic, D = 10, 1500 steps: training the
    # unmixing matrix B reaches the true test log-likelihood; training the mixing matrix W (the
    # paper's Eq. 14) is still 3% short on the same batches (the landscape, not the critic).
    spec = {"source": "laplace", "dim": 10, "seed": 0, "method": "lsd_oracle", "config": {"lr": 1e-2},
            "steps": 1500, "batch_size": 200, "n_train": 5000, "n_val": 500, "n_test": 2000,
            "curve_every": 500, "boundary_width": 0.5}
    unmix = ica.run_job({**spec, "parametrization": "unmixing"}, tmp_path)
    mix = ica.run_job({**spec, "parametrization": "mixing"}, tmp_path)
    assert unmix["key"].endswith("-unmixing") and not mix["key"].endswith("-unmixing")
    truth = unmix["true_test_loglik"]
    assert abs(unmix["test_loglik"] / truth - 1) < 0.005
    assert mix["test_loglik"] / truth - 1 > 0.02


def test_ica_sweep_passes_parametrization_and_lr_decay_to_every_run(tmp_path):
    res = ica.run(tmp_path, quick=True, **{**TINY_ICA, "steps": 4}, methods=["ml", "lsd"], sources=["laplace"],
                  parametrization="unmixing", lr_decay="cosine")
    assert res["settings"]["parametrization"] == "unmixing" and res["settings"]["lr_decay"] == "cosine"
    assert all(r["key"].endswith("-unmixing-cosine") and math.isfinite(r["test_loglik"]) for r in res["rows"])
    parser = argparse.ArgumentParser()
    ica.add_arguments(parser)
    ns = parser.parse_args(["--parametrization", "unmixing", "--lr-decay", "cosine"])
    assert (ns.parametrization, ns.lr_decay) == ("unmixing", "cosine")
    with pytest.raises(ValueError, match="parametrization must be"):
        ica.run(tmp_path, quick=True, **{**TINY_ICA, "steps": 2}, methods=["ml"], parametrization="inverse")


def test_ica_critic_rate_factors_reach_the_grid_and_are_checked(tmp_path):
    parser = argparse.ArgumentParser()
    ica.add_arguments(parser)
    assert parser.parse_args(["--critic-lr-factors", "0.1", "0.03"]).critic_lr_factors == [0.1, 0.03]
    assert ica.FULL["critic_lr_factors"] == [1.0, 0.1, 0.03]
    configs = ica.grid("lsd", {**ica.QUICK, "critic_lr_factors": [0.1, 0.03]})
    assert sorted(c["critic_lr_factor"] for c in configs) == [0.03, 0.1]
    for bad in ([], [0.0], [-0.1]):
        with pytest.raises(ValueError, match="critic_lr_factors must be positive"):
            ica.run(tmp_path, quick=True, **TINY_ICA, critic_lr_factors=bad)


def test_ica_run_key_covers_the_sizes_that_change_a_result():
    spec = {"source": "logistic", "dim": 3, "seed": 0, "method": "ml", "config": {"lr": 1e-3}, "steps": 10,
            "batch_size": 5, "n_train": 50, "n_val": 10, "n_test": 10, "curve_every": 5}
    assert ica._key(spec) == ica._key({**spec, "curve_every": 2})  # only when the curve is sampled
    for k, v in (("steps", 11), ("batch_size", 6), ("n_train", 60), ("n_val", 11), ("n_test", 11), ("seed", 1)):
        assert ica._key({**spec, k: v}) != ica._key(spec), k

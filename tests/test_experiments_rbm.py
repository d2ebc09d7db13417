"""RBM experiments (Figures 5 and 6) on tiny settings: well-formed trials, files, resume."""

from __future__ import annotations

import json
import math

import pytest
import torch

from steinkit.cli import build_parser
from steinkit.experiments import get_experiment, rbm_eval, rbm_power
from steinkit.experiments.runner import TrialStore
from steinkit.problems import rbm_problem
from steinkit.experiments.settings import RunOptions, run_options_from_args, settings_from_args

TINY_POWER = rbm_power.QUICK.replace(dims=("5:3",), n=200, burn_in=50, n_iters=20, hidden=16, n_bootstrap=100)
TINY_EVAL = rbm_eval.QUICK.replace(dims=("5:3",), n=200, burn_in=50, n_iters=20, hidden=16)
QUIET = RunOptions(progress=False)


def _refuse(config):
    raise AssertionError("a finished trial was run again")


# --- rbm-power ---------------------------------------------------------------------------

@pytest.mark.parametrize("mod", [rbm_power, rbm_eval])
def test_registry_and_generated_options(mod):
    name = mod.REPRODUCTION.name
    assert get_experiment(name) is mod and name in ("rbm-power", "rbm-eval") and mod.REPRODUCTION.paper_claim
    args = build_parser().parse_args(["reproduce", name, "--out", "x", "--jobs", "2", "--dims", "50", "100:10",
                                      "--sigmas", "0", "0.01"])
    settings, options = settings_from_args(args, mod.FULL, mod.QUICK), run_options_from_args(args)
    assert settings.dims == ("50:40", "100:10") and settings.sigmas == (0.0, 0.01) and settings.pairs[1] == (100, 10)
    assert options.jobs == 2 and options.backend == "loky" and settings.n == mod.FULL.n == 1000
    quick = settings_from_args(build_parser().parse_args(["reproduce", name, "--out", "x", "--quick"]),
                               mod.FULL, mod.QUICK)
    assert quick == mod.QUICK and quick.dims == ("50:40",) and mod.FULL.dims == ("50:40", "100:80", "200:100")


def test_parse_dims():
    assert rbm_power.parse_dims(("50", "100", "200")) == ("50:40", "100:80", "200:100")
    assert rbm_power.parse_dims(["10:3", " 20"]) == ("10:3", "20:16")
    assert rbm_power.parse_dims([(7, 2), 50]) == ("7:2", "50:40")
    for bad in ("50:0", "a", "1:2:3", "", [True], [], "50,100", 5.5):
        with pytest.raises(ValueError, match="dims"):
            rbm_power.parse_dims(bad)
    with pytest.raises(ValueError, match="dims"):
        rbm_power.Settings(dims=("50:0",))


def test_trial_configs_cover_the_sweep_lsd_first():
    cfgs = rbm_power.trial_configs(rbm_power.FULL.replace(dims=("50", "100"), reps=5, batch=2))
    assert len(cfgs) == len(rbm_power.TEST_METHODS) * 2 * 3 * 5  # every method and lsd-paper x dims x blocks x sigmas
    assert rbm_power.FULL.methods == rbm_power.TEST_METHODS
    assert [c["reps"] for c in cfgs[:3]] == [[0, 1], [0, 1], [0, 1]]
    assert {tuple(c["reps"]) for c in cfgs} == {(0, 1), (2, 3), (4,)}
    n_lsd = sum(c["method"].startswith("lsd") for c in cfgs)
    assert n_lsd == 2 * 2 * 3 * 5 and all(c["method"].startswith("lsd") for c in cfgs[:n_lsd])
    assert cfgs[0]["method"] == "lsd" and cfgs[0]["options"] == {"protocol": "combined"}  # the default, named
    paper = next(c for c in cfgs if c["method"] == "lsd-paper")
    assert paper["options"] == {"protocol": "paper", "n_iters": 1000, "hidden": 300}
    inc = [c for c in cfgs if c["method"] == "ksdagg-inc"]
    assert inc and all(c["options"] == {"n_bootstrap": 500, "n_correction": 500} for c in inc)  # the papers' B1, B2
    assert cfgs[-1]["method"] == "ksd-seq" and cfgs[-1]["alpha"] == 0.05
    assert rbm_power.Settings(sigmas=(0, 1, 1.0)).sigmas == (0.0, 1.0)  # a seed hashes 0.0, whatever was typed
    assert rbm_power.Settings(dims=("50", "50:40")).dims == ("50:40",)  # each size once: no test counted twice
    assert len(rbm_power.trial_configs(rbm_power.QUICK.replace(methods=("ksd", "ksd")))) == 5 * 5


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(methods=("lsd", "mmd")), ValueError, "methods must be one of"),
        (dict(reps=0), ValueError, "reps must be finite and >= 1"),
        (dict(batch=1.5), TypeError, "batch must be of type int"),
        (dict(sigmas=(-0.1,)), ValueError, "sigmas must be finite and >= 0"),
        (dict(sigmas="a,b"), ValueError, "sigmas must be a non-empty tuple"),
        (dict(alpha=1.0), ValueError, "alpha must lie in"),
        (dict(kernel_bandwidth="silverman"), ValueError, "kernel_bandwidth must be one of"),
        (dict(reps_per_trial=2), TypeError, "unknown setting"),
    ],
)
def test_settings_reject_bad_values(kwargs, error, match):
    with pytest.raises(error, match=match):
        rbm_power.FULL.replace(**kwargs)


def test_rbm_problem_is_seeded_and_perturbations_are_nested():
    p, q1, x = rbm_problem(6, 3, rep=2, sigma=0.01, n=20, burn_in=10)
    p2, q2, x2 = rbm_problem(6, 3, rep=2, sigma=0.02, n=20, burn_in=10)
    assert torch.equal(x, x2) and torch.equal(p.B, p2.B)
    assert torch.allclose(q2.B - p.B, 2 * (q1.B - p.B), atol=1e-6)
    _, _, x3 = rbm_problem(6, 3, rep=3, sigma=0.01, n=20, burn_in=10)
    _, _, x4 = rbm_problem(6, 3, rep=None, sigma=0.01, n=20, burn_in=10)
    assert not torch.equal(x, x3) and not torch.equal(x, x4)


def test_power_trials_are_well_formed_and_share_data():
    cfgs = rbm_power.trial_configs(TINY_POWER.replace(sigmas=(0.0,), reps=2, batch=2))
    checksums = set()
    for cfg in cfgs:
        res = rbm_power.run_trial(cfg)
        json.dumps(res)
        assert [t["rep"] for t in res["tests"]] == [0, 1]
        for t in res["tests"]:
            assert 0.0 <= t["pvalue"] <= 1.0 and t["reject"] == (t["pvalue"] < 0.05) and t["seconds"] >= 0
        checksums.add(tuple(res["data_checksums"]))
    assert len(checksums) == 1  # every method tested the same samples


def test_batched_lsd_trial_equals_single_trials():
    tiny = TINY_POWER.replace(sigmas=(0.05,), reps=2, methods=("lsd",))
    together = rbm_power.run_trial(rbm_power.trial_configs(tiny.replace(batch=2))[0])["tests"]
    alone = [rbm_power.run_trial(c)["tests"][0] for c in rbm_power.trial_configs(tiny)]
    for a, b in zip(together, alone):
        assert a["rep"] == b["rep"]
        assert a["pvalue"] == pytest.approx(b["pvalue"], abs=1e-4)


def test_summarize_rates_and_binomial_stderr():
    cfg = {"method": "lsd", "dx": 5, "dh": 3, "sigma": 0.0}
    tests = [{"reject": r, "seconds": 1.0} for r in (True, False, False, False)]
    (row,) = rbm_power.summarize([cfg, cfg], [{"tests": tests[:2]}, {"tests": tests[2:]}])
    assert row["reps"] == 4 and row["rejection_rate"] == 0.25
    assert row["stderr"] == pytest.approx(math.sqrt(0.25 * 0.75 / 4))


def test_power_run_writes_results_and_resumes(tmp_path, monkeypatch):
    tiny = TINY_POWER.replace(reps=2, sigmas=(0.0, 0.5))
    report = rbm_power.run(tiny, tmp_path, QUIET)
    saved = json.loads((tmp_path / "results.json").read_text())
    numbers = saved["results"]
    assert numbers["rows"] == report["results"]["rows"] and saved["settings"] == tiny.to_dict()
    assert saved["command"].startswith("steinkit reproduce rbm-power --out") and "--dims 5:3" in saved["command"]
    assert saved["verdict"].startswith("no verdict: 2 repetitions are too few")   # a rate from 2 reps judges nothing
    assert "preset, changed:" in saved["budget"] and "reps 2" in saved["budget"] and "minus 0.05" in saved["verdict_rule"]
    methods = len(tiny.methods)
    assert methods == len(rbm_power.reproduction_methods())  # every registered method and the variant
    assert len(numbers["rows"]) == methods * 2  # methods x sigmas
    for row in numbers["rows"]:
        assert set(row) >= {"method", "dx", "dh", "sigma", "reps", "rejection_rate", "stderr"}
        assert row["reps"] == 2 and 0 <= row["rejection_rate"] <= 1 and (row["dx"], row["dh"]) == (5, 3)
    assert numbers["all_methods_saw_same_data"] is True
    assert "| LSD |" in (tmp_path / "results.md").read_text()
    assert (tmp_path / "figure5.png").stat().st_size > 1000
    assert len(TrialStore(tmp_path / "trials.sqlite")) == numbers["n_trials"] == methods * 2 * 2
    monkeypatch.setattr(rbm_power, "run_trial", _refuse)  # a rerun must not run any trial
    assert rbm_power.run(tiny, tmp_path, QUIET)["results"]["rows"] == numbers["rows"]


def test_verdicts_say_when_the_run_cannot_test_the_claim():
    rows = [{"method": "ksd", "dx": 5, "sigma": s, "rejection_rate": 1.0} for s in (0.0, 0.5)]
    assert rbm_power._verdict(rows).startswith("no comparison")
    rows = [{"method": m, "dx": 5, "seed": 0, "sigma": 0.5, "value": 1.0} for m in rbm_eval.EVAL_METHODS]
    assert rbm_eval._verdict(rows).startswith("no comparison")
    rows += [dict(r, sigma=0.0, value=0.0 if r["method"] == "theory" else 2.0) for r in rows]
    rows.sort(key=lambda r: r["sigma"])
    assert rbm_eval._verdict(rows).startswith("does not replicate: LSD does not rise")


# --- rbm-eval ----------------------------------------------------------------------------

def test_eval_trial_is_well_formed():
    cfg0, cfg1 = rbm_eval.trial_configs(TINY_EVAL.replace(sigmas=(0.0, 0.5)))
    res0, res1 = rbm_eval.run_trial(cfg0), rbm_eval.run_trial(cfg1)
    json.dumps(res0)
    assert res0["data_checksum"] == res1["data_checksum"]  # same samples of p for every sigma
    rows0 = {r["method"]: r for r in res0["rows"]}
    rows1 = {r["method"]: r for r in res1["rows"]}
    assert set(rows0) == set(rbm_eval.EVAL_METHODS)
    assert rows0["theory"]["value"] == 0.0 and rows0["theory"]["stderr"] == 0.0  # q = p
    assert rows1["theory"]["value"] > 0
    for r in res1["rows"]:
        assert math.isfinite(r["value"]) and r["stderr"] >= 0
    assert rows1["ksd"]["n_train"] == 40 and rows1["ksd"]["n_eval"] == 160
    assert rows1["lsd"]["n_eval"] == 20 and rows1["ksd"]["bandwidth"] > 0


def test_eval_configs_one_rbm_per_seed():
    cfgs = rbm_eval.trial_configs(rbm_eval.FULL.replace(dims=("50", "100"), rbms=2, seed=3))
    assert len(cfgs) == 2 * 2 * 5 and sorted({c["seed"] for c in cfgs}) == [3, 4]


@pytest.mark.parametrize(
    "kwargs, match",
    [(dict(lam=0.0), "lam must be finite and >= 1e-12"), (dict(dropout=1.0), "dropout must be in"),
     (dict(n=10), "n must be"), (dict(kernel_train=1.0), "kernel_train must be in"), (dict(rbms=0), "rbms must")],
)
def test_eval_settings_reject_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TINY_EVAL.replace(**kwargs)


def test_eval_run_writes_results_and_resumes(tmp_path, monkeypatch):
    tiny = TINY_EVAL.replace(sigmas=(0.0, 0.5))
    report = rbm_eval.run(tiny, tmp_path, QUIET)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["results"]["rows"] == report["results"]["rows"] and saved["settings"] == tiny.to_dict()
    assert len(saved["results"]["rows"]) == 2 * 4
    for row in saved["results"]["rows"]:
        assert set(row) >= {"method", "dx", "sigma", "value", "stderr"}
    assert "optimal critic" in (tmp_path / "results.md").read_text()
    assert (tmp_path / "figure6.png").stat().st_size > 1000
    monkeypatch.setattr(rbm_eval, "run_trial", _refuse)
    assert rbm_eval.run(tiny, tmp_path, QUIET)["results"]["rows"] == report["results"]["rows"]

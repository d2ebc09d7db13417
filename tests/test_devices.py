"""``device=`` on every public entry point, checked on the CPU: the argument is validated by
name, and the answer is bitwise the same whether the CPU is given as None, "cpu" or
torch.device("cpu"). (The same calls on a GPU are in ``test_cuda.py``.)"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import steinkit as sk
from helpers import gen
from steinkit.cli import main
from steinkit.critics import MLPCritic
from steinkit.experiments.settings import RunOptions, keyed_on, trial_device
from steinkit.fit import fit_critic
from steinkit.heldout import fit_heldout_critics
from steinkit.models import GaussianBernoulliRBM, MLPEnergy
from steinkit.samplers import sgld
from steinkit.scores import as_score, module_on
from steinkit.train import train
from steinkit.validation import as_device, generator_on, parse_device

CPUS = [None, "cpu", torch.device("cpu")]
NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message given when CUDA is absent")

# Small but complete settings for every test method (each draws random numbers).
METHOD_OPTIONS = {
    "lsd": dict(n_iters=20, hidden=8, val_every=10),
    "ksd": dict(n_bootstrap=200),
    "lksd": {},
    "fssd": dict(opt_steps=10, n_simulate=200),
    "ksdagg": dict(n_bootstrap=100, n_correction=100),
    "ksdagg-inc": dict(n_bootstrap=100, n_correction=100),
}


def _problem():
    x = torch.randn(200, 3, generator=gen(0)) + 0.3
    return sk.models.Gaussian(torch.zeros(3), torch.eye(3)), x


# --------------------------------------------------------------------------- the argument
def test_as_device_defaults_to_where_the_data_live():
    assert as_device(None, torch.zeros(1)) == as_device(None, np.zeros(1)) == as_device("cpu") == torch.device("cpu")
    assert as_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.parametrize("bad, error", [("gpu", ValueError), ("cuda:x", ValueError), (0, TypeError)])
def test_a_bad_device_names_the_argument(bad, error):
    with pytest.raises(error, match="device"):
        as_device(bad)
    with pytest.raises(error, match="device"):
        parse_device(bad)


@NO_CUDA
def test_cuda_without_cuda_says_so():
    with pytest.raises(ValueError, match=r"device='cuda' was requested but CUDA is not available"):
        as_device("cuda")
    assert parse_device("cuda:1") == torch.device("cuda", 1)  # a name a cluster's workers may have


@NO_CUDA
@pytest.mark.parametrize(
    "call",
    [
        lambda m, x: sk.gof_test(m, x, "ksd", device="cuda"),
        lambda m, x: sk.gof_tests([m], [x], "lsd", device="cuda"),
        lambda m, x: sk.stein_discrepancy(m, x, device="cuda"),
        lambda m, x: sk.compare({"m": m}, x, device="cuda"),
        lambda m, x: sk.relative_test(m, m, x, device="cuda"),
        lambda m, x: fit_critic(MLPCritic(3, 8), x, m.score(x), x, m.score(x), device="cuda"),
        lambda m, x: fit_heldout_critics([(as_score(m), x, 0)], device="cuda"),
        lambda m, x: train(m, x, method="ssm", steps=1, device="cuda", progress=False),
        lambda m, x: sgld(m.score, x, step_size=0.1, n_steps=1, device="cuda"),
        lambda m, x: GaussianBernoulliRBM.random(3, 2).sample(4, device="cuda"),
        lambda m, x: MLPCritic(3, 8, device="cuda"),
    ],
    ids=["gof_test", "gof_tests", "stein_discrepancy", "compare", "relative_test", "fit_critic", "fit_heldout_critics", "train",
         "sgld", "rbm.sample", "MLPCritic"],
)
def test_every_entry_point_refuses_cuda_by_name_without_it(call):
    model, x = _problem()
    with pytest.raises(ValueError, match="device='cuda' was requested but CUDA is not available"):
        call(model, x)


def test_a_generator_on_another_device_is_refused_by_name():
    with pytest.raises(ValueError, match="generator is on cpu but device is meta"):
        generator_on(torch.Generator(), torch.device("meta"))
    generator_on(None, torch.device("meta"))


def test_a_module_model_is_copied_to_the_device_not_moved():
    model, _ = _problem()
    moved = module_on(model, torch.device("meta"))
    assert moved is not model and moved.mean.device.type == "meta" and model.mean.device.type == "cpu"
    assert module_on(model, torch.device("cpu")) is model


# --------------------------------------------------------------------------- same answers on the CPU
@pytest.mark.parametrize("method", list(METHOD_OPTIONS))
def test_gof_test_is_bitwise_the_same_for_every_spelling_of_the_cpu(method):
    model, x = _problem()
    results = [sk.gof_test(model, x, method, seed=3, device=d, **METHOD_OPTIONS[method]) for d in CPUS]
    assert len({(r.statistic, r.pvalue) for r in results}) == 1


def test_gof_tests_ensemble_is_bitwise_the_same_on_every_spelling_of_the_cpu():
    model, x = _problem()
    xs = [x, x.flip(0) * 1.1]
    runs = [sk.gof_tests([model, model], xs, "lsd", device=d, **METHOD_OPTIONS["lsd"]) for d in CPUS]
    assert len({tuple((r.statistic, r.pvalue) for r in run) for run in runs}) == 1


def test_stein_discrepancy_and_compare_are_bitwise_the_same():
    model, x = _problem()
    other = sk.models.Gaussian(torch.ones(3), torch.eye(3))
    cfg = dict(n_iters=20, hidden=8, val_every=10, batch_size=50)  # mini-batches draw on the device
    ests = [sk.stein_discrepancy(model, x, seed=1, device=d, **cfg) for d in CPUS]
    assert len({(e.value, e.stderr, e.best_iteration) for e in ests}) == 1
    rows = [sk.compare({"a": model, "b": other}, x, device=d, **cfg) for d in CPUS]
    assert len({tuple((r.name, r.value) for r in rs) for rs in rows}) == 1


def test_fit_critic_is_bitwise_the_same():
    model, x = _problem()
    s = model.score(x).detach()
    finals = []
    for d in CPUS:
        critic = MLPCritic(3, 8, generator=gen(1))
        fit = fit_critic(critic, x[:150], s[:150], x[150:], s[150:], n_iters=20, val_every=10, batch_size=40,
                         dropout=0.0, generator=gen(2), device=d)
        finals.append(torch.cat([p.detach().flatten() for p in fit.critic.parameters()]))
    assert all(torch.equal(finals[0], f) for f in finals[1:])


def test_train_is_bitwise_the_same():
    x = torch.randn(300, 2, generator=gen(0))
    params = []
    for d in CPUS:
        torch.manual_seed(0)
        ebm = MLPEnergy(2, hidden=8).init_base(x)
        res = train(ebm, x, method="lsd", steps=4, batch_size=50, critic=MLPCritic(2, 8, generator=gen(1)),
                    critic_steps=2, seed=5, progress=False, device=d)
        params.append(torch.cat([p.detach().flatten() for p in ebm.parameters()]))
        assert res.critic is not None and next(res.critic.parameters()).device.type == "cpu"
    assert all(torch.equal(params[0], p) for p in params[1:])


def test_samplers_are_bitwise_the_same():
    rbm = GaussianBernoulliRBM.random(4, 3, generator=gen(0))
    draws = [rbm.sample(20, burn_in=10, generator=gen(1), device=d) for d in CPUS]
    assert all(torch.equal(draws[0], y) for y in draws[1:])
    chains = [sgld(rbm.score, torch.zeros(20, 4), step_size=0.1, n_steps=5, generator=gen(2), device=d).samples
              for d in CPUS]
    assert all(torch.equal(chains[0], y) for y in chains[1:])


# --------------------------------------------------------------------------- command line and reproductions
@pytest.fixture
def files(tmp_path):
    (tmp_path / "m.py").write_text("import torch, steinkit as sk\n"
                                   "model = sk.models.Gaussian(torch.zeros(2), torch.eye(2))\n")
    np.save(tmp_path / "x.npy", np.random.default_rng(0).standard_normal((200, 2)).astype(np.float32))
    return tmp_path


@pytest.mark.parametrize("command", ["test", "evaluate"])
def test_cli_device_gives_the_same_answer_on_the_cpu(files, capsys, command):
    extra = ["--method", "ksd"] if command == "test" else ["--option", "n_iters=20", "--option", "hidden=8"]
    base = [command, "--model", f"{files}/m.py:model", "--data", f"{files}/x.npy", "--json", *extra]
    outs = []
    for extra in ([], ["--device", "cpu"]):
        assert main(base + extra) == 0
        outs.append(json.loads(capsys.readouterr().out))
    keep = "pvalue" if command == "test" else "value"
    assert outs[0][keep] == outs[1][keep]


@NO_CUDA
def test_cli_reports_a_missing_gpu_in_one_line(files, capsys):
    assert main(["test", "--model", f"{files}/m.py:model", "--data", f"{files}/x.npy", "--method", "ksd",
                 "--device", "cuda"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("steinkit: error: device='cuda' was requested but CUDA is not available")


def test_every_command_takes_a_device():
    from steinkit.cli import build_parser
    from steinkit.experiments import EXPERIMENTS

    parser = build_parser()
    for argv in (["demo"], ["test", "--model", "m", "--data", "d"], ["evaluate", "--model", "m", "--data", "d"],
                 *(["reproduce", name, "--out", "o"] for name in EXPERIMENTS)):
        assert parser.parse_args([*argv, "--device", "cuda:1"]).device == "cuda:1", argv


def test_run_options_check_the_device_where_trials_run():
    assert RunOptions().device == "cpu"
    with pytest.raises(ValueError, match="device"):
        RunOptions(device="gpu")
    with pytest.raises(ValueError, match="device"):
        RunOptions(backend="dask", address="tcp://127.0.0.1:1", device="gpu")
    RunOptions(backend="dask", address="tcp://127.0.0.1:1", device="cuda:3")  # the workers check it


def test_only_trials_off_the_cpu_carry_their_device_in_the_key():
    assert RunOptions().with_device([{"a": 1}]) == [{"a": 1}]
    assert keyed_on({"a": 1}, "cuda:1") == {"a": 1, "device": "cuda:1"}
    assert trial_device({"a": 1}) == torch.device("cpu")


@NO_CUDA
def test_a_local_sweep_refuses_a_missing_gpu_before_any_work():
    with pytest.raises(ValueError, match="CUDA is not available"):
        RunOptions(device="cuda")

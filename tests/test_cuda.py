"""Every public entry point on a GPU (``device="cuda"``), checked against the same call on the CPU.

Marked ``cuda`` and skipped where CUDA is absent; run them with ``pytest -m cuda`` (or
``python benchmarks/gpu_check.py``). Where no random draw is involved (full-batch exact-trace
critic fitting without dropout, maximum-likelihood epochs, kernel statistics, noise-free
Langevin) the two devices must agree to float64 rounding; where the GPU's generator draws
(probes, dropout, bootstrap weights, test locations) they must reach the same decision on a
clear alternative and give valid p-values. ``STEINKIT_TEST_DEVICE=cpu`` dry-runs this file's
logic on the CPU.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

import steinkit as sk
from helpers import gen
from steinkit.cli import main
from steinkit.critics import MLPCritic
from steinkit.fit import fit_critic
from steinkit.heldout import fit_heldout_critics
from steinkit.models import GaussianBernoulliRBM, MLPEnergy
from steinkit.samplers import sgld
from steinkit.scores import as_score
from steinkit.train import train
from steinkit.validation import as_device

DEVICE = os.environ.get("STEINKIT_TEST_DEVICE", "cuda")


def _present(name: str) -> bool:
    try:
        as_device(name)
    except ValueError:
        return False
    return True


pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not _present(DEVICE), reason=f"needs a {DEVICE} device (torch.cuda.is_available() is False)"),
]

TIGHT = dict(rtol=1e-6, atol=1e-8)  # float64 on both devices, no random draw in between
# No random draw while the critic trains: full batch, exact trace, no dropout.
DETERMINISTIC = dict(n_iters=30, hidden=16, val_every=10, trace="exact", dropout=0.0, batch_size=None)
OPTIONS = {
    "lsd": dict(n_iters=100, hidden=32, val_every=50),
    "ksd": dict(n_bootstrap=500),
    "lksd": {},
    "fssd": dict(opt_steps=30, n_simulate=1000),
    "ksdagg": dict(n_bootstrap=1000, n_correction=1000),  # fewer draws cannot give p < .05
    "ksdagg-inc": dict(n_bootstrap=1000, n_correction=1000),
}


def _on_device(t: torch.Tensor) -> bool:
    return t.device.type == torch.device(DEVICE).type


def _problem(shift: float = 0.0, n: int = 500, d: int = 3):
    x = torch.randn(n, d, generator=gen(0), dtype=torch.float64) + shift
    model = sk.models.Gaussian(torch.zeros(d, dtype=torch.float64), torch.eye(d, dtype=torch.float64))
    return model, x


@pytest.mark.parametrize("method", list(OPTIONS))
def test_gof_test_reaches_the_cpu_decision(method):
    model, x = _problem(shift=1.0)
    cpu = sk.gof_test(model, x, method, seed=0, device="cpu", **OPTIONS[method])
    gpu = sk.gof_test(model, x, method, seed=0, device=DEVICE, **OPTIONS[method])
    assert cpu.reject and gpu.reject and 0.0 <= gpu.pvalue <= 1.0
    assert model.mean.device.type == "cpu"  # the caller's model is not moved


@pytest.mark.parametrize("method", list(OPTIONS))
def test_gof_test_under_h0_gives_a_valid_pvalue_on_the_device(method):
    model, x = _problem()
    res = sk.gof_test(model, x, method, seed=1, device=DEVICE, **OPTIONS[method])
    assert 0.0 <= res.pvalue <= 1.0 and np.isfinite(res.statistic)


def test_kernel_statistics_agree_with_the_cpu():
    model, x = _problem(shift=0.2)
    for method in ("ksd", "lksd"):
        cpu = sk.gof_test(model, x, method, device="cpu", **OPTIONS[method])
        gpu = sk.gof_test(model, x, method, device=DEVICE, **OPTIONS[method])
        np.testing.assert_allclose(gpu.statistic, cpu.statistic, **TIGHT)
    # the wild bootstrap draws on the device's generator: the p-values agree up to its noise
    cpu = sk.gof_test(model, x, "ksd", device="cpu", n_bootstrap=2000)
    gpu = sk.gof_test(model, x, "ksd", device=DEVICE, n_bootstrap=2000)
    assert abs(cpu.pvalue - gpu.pvalue) < 0.1


def test_lsd_without_random_draws_agrees_with_the_cpu():
    model, x = _problem(shift=0.3)
    cpu = sk.gof_test(model, x, "lsd", device="cpu", **DETERMINISTIC)
    gpu = sk.gof_test(model, x, "lsd", device=DEVICE, **DETERMINISTIC)
    np.testing.assert_allclose(gpu.statistic, cpu.statistic, **TIGHT)
    np.testing.assert_allclose(gpu.pvalue, cpu.pvalue, rtol=1e-6, atol=1e-10)


def test_gof_tests_ensemble_agrees_with_the_cpu_and_with_lone_tests():
    model, _ = _problem()
    xs = [torch.randn(300, 3, generator=gen(k), dtype=torch.float64) + 0.1 * k for k in range(4)]
    cpu = sk.gof_tests([model] * 4, xs, "lsd", device="cpu", **DETERMINISTIC)
    gpu = sk.gof_tests([model] * 4, xs, "lsd", device=DEVICE, **DETERMINISTIC)
    np.testing.assert_allclose([r.statistic for r in gpu], [r.statistic for r in cpu], **TIGHT)
    lone = sk.gof_test(model, xs[2], "lsd", seed=2, device=DEVICE, **DETERMINISTIC)
    np.testing.assert_allclose(lone.statistic, gpu[2].statistic, **TIGHT)


def test_data_on_the_device_are_tested_there_by_default():
    model, x = _problem(shift=1.0)
    res = sk.gof_test(model, x.to(DEVICE), "ksd", n_bootstrap=200)
    assert res.reject


def test_stein_discrepancy_and_compare_agree_with_the_cpu():
    model, x = _problem()
    shifted = sk.models.Gaussian(torch.ones(3, dtype=torch.float64), torch.eye(3, dtype=torch.float64))
    cpu = sk.stein_discrepancy(shifted, x, device="cpu", **DETERMINISTIC)
    gpu = sk.stein_discrepancy(shifted, x, device=DEVICE, **DETERMINISTIC)
    np.testing.assert_allclose([gpu.value, gpu.stderr], [cpu.value, cpu.stderr], **TIGHT)
    rows_cpu = sk.compare({"right": model, "shifted": shifted}, x, device="cpu", **DETERMINISTIC)
    rows_gpu = sk.compare({"right": model, "shifted": shifted}, x, device=DEVICE, **DETERMINISTIC)
    assert [r.name for r in rows_gpu] == [r.name for r in rows_cpu] == ["right", "shifted"]
    np.testing.assert_allclose([r.value for r in rows_gpu], [r.value for r in rows_cpu], **TIGHT)
    # the default estimate (Hutchinson probes on the device) still finds the shift
    est = sk.stein_discrepancy(shifted, x, device=DEVICE, n_iters=200, hidden=32)
    assert est.value > 3 * est.stderr


def test_fit_critic_agrees_with_the_cpu_and_moves_the_critic():
    model, x = _problem(shift=0.5)
    with torch.no_grad():
        s = model.score(x)
    fits = {}
    for device in ("cpu", DEVICE):
        critic = MLPCritic(3, 16, generator=gen(1), dtype=torch.float64)
        fits[device] = fit_critic(critic, x[:400], s[:400], x[400:], s[400:], n_iters=30, val_every=10,
                                  trace="exact", device=device)
        assert _on_device(next(critic.parameters())) or device == "cpu"
    for a, b in zip(fits["cpu"].critic.parameters(), fits[DEVICE].critic.parameters()):
        torch.testing.assert_close(b.detach().cpu(), a.detach(), **TIGHT)
    if torch.device(DEVICE).type != "cpu":
        with pytest.raises(ValueError, match="generator is on cpu"):
            fit_critic(MLPCritic(3, 8, dtype=torch.float64), x, s, x, s, n_iters=2, generator=torch.Generator(),
                       device=DEVICE)


def test_fit_heldout_critics_agrees_with_the_cpu():
    model, x = _problem(shift=0.2)
    cfg = sk.ESTIMATE.replace(**DETERMINISTIC)
    cpu = fit_heldout_critics([(as_score(model), x, 0)], cfg, device="cpu")[0]
    gpu = fit_heldout_critics([(as_score(model, device=as_device(DEVICE)), x, 0)], cfg, device=DEVICE)[0]
    assert _on_device(gpu.test_terms)
    torch.testing.assert_close(gpu.test_terms.cpu(), cpu.test_terms, **TIGHT)


def test_mlp_critic_is_the_same_critic_on_the_device():
    a, b = MLPCritic(3, 8, generator=gen(0)), MLPCritic(3, 8, generator=gen(0), device=DEVICE)
    for p, q in zip(a.parameters(), b.parameters()):
        assert _on_device(q) and torch.equal(p, q.cpu())


def test_train_by_maximum_likelihood_agrees_with_the_cpu():
    _, x = _problem(shift=1.0)
    means = []
    for device in ("cpu", DEVICE):
        q = sk.models.Gaussian(torch.zeros(3, dtype=torch.float64), torch.eye(3, dtype=torch.float64))
        train(q, x, method="ml", steps=20, batch_size=100, batch_order="epochs", lr=1e-2, seed=0, progress=False,
              device=device)
        assert _on_device(q.mean) or device == "cpu"  # training moves the model in place
        means.append(q.mean.detach().cpu())
    torch.testing.assert_close(means[1], means[0], **TIGHT)


def test_train_lsd_on_the_device_moves_model_and_critic():
    x = torch.randn(400, 2, generator=gen(0))
    torch.manual_seed(0)
    ebm = MLPEnergy(2, hidden=16).init_base(x)
    critic = MLPCritic(2, 16, generator=gen(1))
    res = train(ebm, x, method="lsd", steps=10, batch_size=100, critic=critic, critic_steps=2, seed=0,
                progress=False, device=DEVICE)
    assert _on_device(next(ebm.parameters())) and _on_device(next(critic.parameters()))
    assert res.steps == 10 and np.isfinite(res.history[-1]["loss"])


def test_thin_and_ksd_path_agree_with_the_cpu():
    x = torch.randn(2000, 4, generator=gen(0), dtype=torch.float64)
    model = sk.models.Gaussian(torch.zeros(4, dtype=torch.float64), torch.eye(4, dtype=torch.float64))
    for pre in ("med", "smpcov"):
        cpu = sk.thin(x, model, 30, preconditioner=pre)
        gpu = sk.thin(x.to(DEVICE), model, 30, preconditioner=pre)
        assert _on_device(gpu) and gpu.tolist() == cpu.tolist()
        path = sk.thinning.ksd_path(x.to(DEVICE), model, gpu, preconditioner=pre)
        assert _on_device(path)
        torch.testing.assert_close(path.cpu(), sk.thinning.ksd_path(x, model, cpu, preconditioner=pre), **TIGHT)


def test_sgld_without_noise_agrees_with_the_cpu():
    rbm = GaussianBernoulliRBM.random(4, 3, generator=gen(0), dtype=torch.float64)
    x0 = torch.randn(50, 4, generator=gen(1), dtype=torch.float64)
    cpu = sgld(rbm.score, x0, step_size=0.05, n_steps=20, noise_std=0.0, device="cpu").samples
    gpu = sgld(rbm.score, x0, step_size=0.05, n_steps=20, noise_std=0.0, device=DEVICE).samples
    assert _on_device(gpu)
    torch.testing.assert_close(gpu.cpu(), cpu, **TIGHT)
    noisy = sgld(rbm.score, x0, step_size=0.05, n_steps=20, generator=torch.Generator(device=DEVICE).manual_seed(0),
                 device=DEVICE).samples
    assert bool(torch.isfinite(noisy).all())


def test_gibbs_sampling_on_the_device_matches_the_cpu_in_distribution():
    rbm = GaussianBernoulliRBM.random(5, 3, generator=gen(0), dtype=torch.float64)
    cpu = rbm.sample(20000, burn_in=100, generator=gen(1))
    gpu = rbm.sample(20000, burn_in=100, generator=torch.Generator(device=DEVICE).manual_seed(1), device=DEVICE)
    assert _on_device(gpu) and rbm.B.device.type == "cpu"
    torch.testing.assert_close(gpu.mean(0).cpu(), cpu.mean(0), rtol=0, atol=0.06)
    torch.testing.assert_close(gpu.std(0).cpu(), cpu.std(0), rtol=0, atol=0.06)


# --------------------------------------------------------------------------- command line and reproductions
@pytest.fixture
def files(tmp_path):
    (tmp_path / "m.py").write_text("import torch, steinkit as sk\n"
                                   "model = sk.models.Gaussian(torch.zeros(2), torch.eye(2))\n")
    np.save(tmp_path / "x.npy", (np.random.default_rng(0).standard_normal((300, 2)) + 1.0).astype(np.float32))
    return tmp_path


@pytest.mark.parametrize("argv", [["test", "--method", "ksd"], ["test", "--method", "lsd", "--option", "n_iters=50"],
                                  ["evaluate", "--option", "n_iters=50"]])
def test_cli_commands_run_on_the_device(files, capsys, argv):
    assert main([*argv, "--model", f"{files}/m.py:model", "--data", f"{files}/x.npy", "--json",
                 "--device", DEVICE]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["reject"] if argv[0] == "test" else out["value"] > 0


def test_demo_runs_on_the_device(tmp_path):
    from steinkit.demo import run_demo

    res = run_demo(tmp_path, dx=6, dh=4, n=400, n_iters=30, batch_size=100, progress=False, device=DEVICE)
    assert len(res["ranking"]) == 4 and res["device"].startswith(torch.device(DEVICE).type)


def test_a_reproduction_runs_on_the_device_and_keys_its_trials_apart(tmp_path):
    from steinkit.experiments.runner import TrialStore

    argv = ["reproduce", "gaussian-critic", "--out", str(tmp_path), "--dim", "5", "--iters", "40", "--batch-size",
            "64", "--n-eval", "500", "--device", DEVICE]
    assert main(argv) == 0
    (key,) = TrialStore(tmp_path / "trials.sqlite").keys()
    assert ('"device"' in key) == (torch.device(DEVICE).type != "cpu")

"""Trainer and losses: exact loss values, gradients, input checks, checkpoints and resume, NaN stop,
closed-form first steps, the exact-critic objective, custom objectives, settings and batch orders."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from helpers import gen
from steinkit.critics import MLPCritic
from steinkit.models import Gaussian, GaussianBernoulliRBM, LinearICA, MLPEnergy
from steinkit.stein import stein_terms
from steinkit.train import (
    METHODS,
    LSDOracle,
    Objective,
    TrainingDiverged,
    TrainSettings,
    cnce_loss,
    fit_noise,
    load_checkpoint,
    lsd_model_loss,
    nce_loss,
    ssm_terms,
    train,
)
from steinkit.train.batches import EpochBatches


def _gauss(d: int = 2, dtype: torch.dtype = torch.float32) -> Gaussian:
    """A Gaussian whose mean is trained and whose covariance is frozen."""
    q = Gaussian(torch.zeros(d, dtype=dtype), torch.eye(d, dtype=dtype))
    q.cov.requires_grad_(False)
    return q


def _data(n: int = 1000, d: int = 2, shift: float = 1.0, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, d, generator=gen(seed)) + shift


def _small_critic(d: int = 2, seed: int = 1) -> MLPCritic:
    return MLPCritic(d, hidden=16, generator=gen(seed))


def _kwargs(method: str) -> dict:
    if method == "lsd":
        return {"critic": _small_critic(), "critic_steps": 2, "lam": 0.5}
    if method == "cnce":
        return {"eps": 0.5}
    return {}


# ----------------------------------------------------------------------------- losses
def test_ssm_terms_are_exact_for_a_gaussian():
    cov = torch.tensor([[2.0, 0.5], [0.5, 1.0]], dtype=torch.float64)
    mean = torch.tensor([0.3, -0.2], dtype=torch.float64)
    q = Gaussian(mean, cov)
    x = torch.randn(5, 2, generator=gen(0), dtype=torch.float64)
    eps = torch.randn(5, 2, generator=gen(1), dtype=torch.float64)
    sq, hess = ssm_terms(q, x, eps)
    prec = torch.linalg.inv(cov)
    s = -(x - mean) @ prec
    torch.testing.assert_close(sq, 0.5 * s.pow(2).sum(1))
    torch.testing.assert_close(hess, -((eps @ prec) * eps).sum(1))


def test_ssm_hessian_term_of_the_laplace_ica_model():
    # The Laplace log-density is piecewise linear in x: differentiated pointwise
    # (boundary_width=None) its Hessian is zero, so SSM sees only ½‖s‖², which shrinks as W grows.
    q = LinearICA.random(4, generator=gen(0), dtype=torch.float64)
    x = q.sample(50, generator=gen(1))
    v = torch.randn(50, 4, generator=gen(2), dtype=torch.float64)
    q.boundary_width = None
    sq, hess = ssm_terms(q, x, v)
    assert torch.all(hess == 0)
    assert torch.all(sq > 0)
    # With the smoothed sign, ∇s = -W^{-T} diag(sech²(z/w)/w) W^{-1}: vᵀ∇s v in closed form.
    q.boundary_width = 0.5
    _, hess = ssm_terms(q, x, v)
    W_inv = torch.linalg.inv(q.W.detach())
    z, u = x @ W_inv.T, v @ W_inv.T
    expected = -(u**2 * (1 - torch.tanh(z / 0.5) ** 2) / 0.5).sum(1)
    torch.testing.assert_close(hess, expected)


def test_ssm_terms_reject_a_score_without_graph():
    class Detached(nn.Module):
        dim = 2

        def __init__(self):
            super().__init__()
            self.a = nn.Parameter(torch.zeros(2))

        def score(self, x):
            return (-x).detach()

    with pytest.raises(ValueError, match="differentiable"):
        ssm_terms(Detached(), torch.zeros(3, 2), torch.ones(3, 2))


def test_ssm_terms_check_probe_shape():
    with pytest.raises(ValueError, match="probes"):
        ssm_terms(_gauss(), torch.zeros(3, 2), torch.ones(2, 2))


def test_nce_loss_matches_the_logistic_formula():
    q = _gauss()
    noise = fit_noise(_data(500))
    x, y = _data(7, seed=3), noise.sample(7, generator=gen(4))
    c = torch.tensor(0.3)
    gx = q.log_prob(x) + c - noise.log_prob(x)
    gy = q.log_prob(y) + c - noise.log_prob(y)
    expect = -torch.log(torch.sigmoid(gx)).mean() - torch.log(1 - torch.sigmoid(gy)).mean()
    torch.testing.assert_close(nce_loss(q, x, y, noise.log_prob, c), expect)


def test_fit_noise_matches_the_data_moments():
    x = _data(400, d=3)
    noise = fit_noise(x)
    torch.testing.assert_close(noise.mean, x.mean(0))
    torch.testing.assert_close(noise.cov, torch.cov(x.T), rtol=1e-4, atol=1e-4)
    assert not any(p.requires_grad for p in noise.parameters())


def test_cnce_loss_matches_the_formula_and_is_log2_for_equal_points():
    q = _gauss()
    x = _data(6)
    y = x + 0.1 * torch.randn(6, 2, generator=gen(5))
    g = q.log_prob(x) - q.log_prob(y)
    torch.testing.assert_close(cnce_loss(q, x, y), torch.log1p(torch.exp(-g)).mean())
    assert math.isclose(float(cnce_loss(q, x, x).detach()), math.log(2.0), rel_tol=1e-6)


def test_lsd_model_gradient_equals_the_gradient_of_the_stein_discrepancy():
    # The trace term does not depend on θ, so E[sᵀf] (critic held fixed) has LSD's θ-gradient.
    torch.manual_seed(0)
    ebm = MLPEnergy(2, hidden=8, dtype=torch.float64)
    critic = MLPCritic(2, hidden=8, generator=gen(1), dtype=torch.float64)
    x = torch.randn(20, 2, generator=gen(2), dtype=torch.float64)
    probes = torch.randn(20, 2, generator=gen(3), dtype=torch.float64)
    terms, _ = stein_terms(critic, x, ebm.score(x), probes=probes)
    full = torch.autograd.grad(terms.mean(), list(ebm.parameters()), allow_unused=True)
    with torch.no_grad():
        f = critic(x)
    ours = torch.autograd.grad(lsd_model_loss(ebm.score(x), f), list(ebm.parameters()), allow_unused=True)
    for a, b in zip(full, ours):
        if a is None or b is None:
            assert a is None and b is None
        else:
            torch.testing.assert_close(a, b)


# ----------------------------------------------------------------------------- training works
@pytest.mark.parametrize("method", METHODS)
def test_each_method_moves_a_gaussian_mean_to_the_data_mean(method):
    # Data N(1, I); the model N(m, I) starts at m = 0. Every method's population optimum is m = 1.
    x = _data(2000)
    q = _gauss()
    res = train(q, x, method=method, steps=300, batch_size=100, lr=2e-2, seed=0, progress=False, **_kwargs(method))
    assert res.steps == 300 and res.method == method
    # The sample mean of 2000 points is within 4·(1/√2000) ≈ 0.09 of 1; Adam's jitter at this lr
    # and the critic's error (LSD) add at most a few hundredths more.
    assert torch.allclose(q.mean.detach(), torch.ones(2), atol=0.2), q.mean


def test_lsd_and_ssm_train_an_mlp_energy_through_its_autograd_score():
    x = _data(500)
    for method in ("lsd", "ssm"):
        torch.manual_seed(0)
        ebm = MLPEnergy(2, hidden=16).init_base(x)
        before = [p.detach().clone() for p in ebm.parameters()]
        res = train(ebm, x, method=method, steps=10, batch_size=50, seed=0, progress=False, **_kwargs(method))
        changed = [not torch.equal(a, b.detach()) for a, b in zip(before, ebm.parameters())]
        # Every parameter the score depends on moves (the output bias of the net does not
        # enter the score, so it stays put).
        names = [n for n, _ in ebm.named_parameters()]
        assert all(c for n, c in zip(names, changed) if n not in ("net.4.bias",)), (method, names, changed)
        assert math.isfinite(res.history[-1]["loss"])


def test_nce_learns_the_log_normalizer_of_an_unnormalized_model():
    # An RBM's log_prob omits log Z, so the learned c must absorb it; check only that c moves
    # and training runs on a model flagged unnormalized.
    rbm = GaussianBernoulliRBM.random(3, 2, generator=gen(0))
    x = rbm.sample(500, burn_in=50, generator=gen(1))
    res = train(rbm, x, method="nce", steps=50, seed=0, lr=1e-2, progress=False)
    assert res.log_normalizer is not None and res.log_normalizer != 0.0


def test_same_seed_same_parameters_and_float64_works():
    x = _data(300).double()
    runs = []
    for seed in (0, 0, 1):
        q = _gauss(dtype=torch.float64)
        train(q, x, method="cnce", steps=20, seed=seed, lr=1e-2, progress=False)
        runs.append(q.mean.detach().clone())
    assert runs[0].dtype == torch.float64
    assert torch.equal(runs[0], runs[1]) and not torch.equal(runs[0], runs[2])


def test_history_and_eval_fn_are_recorded():
    x = _data(300)
    calls = []

    def eval_fn(model):
        calls.append(1)
        return {"mean0": float(model.mean[0].detach())}

    res = train(_gauss(), x, method="ml", steps=20, log_every=5, eval_every=10, eval_fn=eval_fn, seed=0, progress=False)
    steps = [h["step"] for h in res.history]
    assert steps == [0, 5, 10, 15, 20]
    assert [h["step"] for h in res.history if "mean0" in h] == [0, 10, 20]
    assert all("loss" in h for h in res.history[1:])
    assert len(calls) == 3

    res = train(_gauss(), x, method="lsd", steps=4, log_every=2, seed=0, progress=False, eval_fn=lambda m: 1.5, **_kwargs("lsd"))
    assert {"loss", "critic_loss", "lsd", "eval"} <= set(res.history[-1])


# ----------------------------------------------------------------------------- input checks
def test_bad_inputs_raise_errors_that_name_the_argument():
    x = _data(100)
    q = _gauss()
    with pytest.raises(ValueError, match="method must be one of"):
        train(q, x, method="cd", steps=1, progress=False)
    with pytest.raises(ValueError, match=r"data has 3 columns .*model.dim = 2"):
        train(q, _data(100, d=3), method="ml", steps=1, progress=False)
    with pytest.raises(ValueError, match=r"data must be a 2-D tensor"):
        train(q, torch.zeros(10), method="ml", steps=1, progress=False)
    bad = x.clone()
    bad[7, 1] = float("nan")
    with pytest.raises(ValueError, match=r"data contains NaN or infinite values"):
        train(q, bad, method="ml", steps=1, progress=False)
    bad[7, 1] = float("inf")
    with pytest.raises(ValueError, match=r"data contains NaN or inf"):
        train(q, bad, method="ssm", steps=1, progress=False)
    with pytest.raises(ValueError, match=r"method='ml' needs a normalized model .*MLPEnergy"):
        train(MLPEnergy(2, hidden=4), x, method="ml", steps=1, progress=False)
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        train(lambda z: -z, x, method="lsd", steps=1, progress=False)
    with pytest.raises(ValueError, match="steps must be >= 1"):
        train(q, x, method="ml", steps=0, progress=False)
    with pytest.raises(TypeError, match="batch_size must be an int"):
        train(q, x, method="ml", steps=1, batch_size=2.5, progress=False)
    with pytest.raises(ValueError, match="lr must be"):
        train(q, x, method="ml", steps=1, lr=-1.0, progress=False)
    with pytest.raises(ValueError, match="lam must be"):
        train(q, x, method="lsd", steps=1, lam=0.0, progress=False)
    with pytest.raises(ValueError, match="eps must be"):
        train(q, x, method="cnce", steps=1, eps=float("nan"), progress=False)
    with pytest.raises(ValueError, match=r"betas\[1\] must lie in \[0, 1\)"):
        train(q, x, method="ml", steps=1, betas=(0.5, 1.0), progress=False)
    with pytest.raises(ValueError, match=r"betas must be a pair"):
        train(q, x, method="ml", steps=1, betas=(0.5,), progress=False)
    with pytest.raises(ValueError, match="trace must be"):
        train(q, x, method="lsd", steps=1, trace="sloppy", progress=False)
    with pytest.raises(ValueError, match="on_nan must be"):
        train(q, x, method="ml", steps=1, on_nan="ignore", progress=False)
    with pytest.raises(ValueError, match="critic has dimension critic.dim = 3"):
        train(q, x, method="lsd", steps=1, critic=MLPCritic(3, hidden=4), progress=False)
    with pytest.raises(ValueError, match="either generator or seed"):
        train(q, x, method="ml", steps=1, seed=0, generator=gen(0), progress=False)
    with pytest.raises(ValueError, match="distributed=True needs torch.distributed"):
        train(q, x, method="ml", steps=1, distributed=True, progress=False)
    with pytest.raises(TypeError, match="seed must be an int, got type float"):
        train(q, x, method="ml", steps=1, seed=1.5, progress=False)
    with pytest.raises(ValueError, match="critic_lr must be a finite number > 0"):
        train(q, x, method="lsd", steps=1, critic_lr=0.0, progress=False)
    with pytest.raises(ValueError, match="log_every must be >= 1"):
        train(q, x, method="ml", steps=1, log_every=0, progress=False)
    flat = _gauss()
    flat.dim = 0
    with pytest.raises(ValueError, match="model.dim must be >= 1"):
        train(flat, x, method="ml", steps=1, progress=False)


def test_lsd_refuses_a_score_without_parameter_graph():
    class Fixed(nn.Module):
        dim = 2

        def __init__(self):
            super().__init__()
            self.a = nn.Parameter(torch.zeros(2))

        def score(self, x):
            return -x

    with pytest.raises(ValueError, match="differentiable in the model's parameters"):
        train(Fixed(), _data(50), method="lsd", steps=1, progress=False, **_kwargs("lsd"))


# ----------------------------------------------------------------------------- checkpoints
@pytest.mark.parametrize("method", METHODS)
def test_resumed_run_ends_with_the_parameters_of_a_straight_run(tmp_path, method):
    x = _data(500)

    def fresh():
        return _gauss(), _kwargs(method)

    q1, kw1 = fresh()
    straight = train(q1, x, method=method, steps=12, log_every=3, seed=0, lr=1e-2, progress=False, **kw1)

    path = tmp_path / f"{method}.pt"
    q2, kw2 = fresh()
    first = train(q2, x, method=method, steps=7, log_every=3, checkpoint=path, seed=0, lr=1e-2, progress=False, **kw2)
    assert first.steps == 7 and path.exists()
    q3, kw3 = fresh()  # brand-new objects: everything must come from the checkpoint
    resumed = train(q3, x, method=method, steps=12, log_every=3, checkpoint=path, seed=123, lr=1e-2, progress=False, **kw3)
    assert resumed.resumed_from == 7 and resumed.steps == 12
    assert torch.equal(q1.mean, q3.mean)
    if method == "lsd":
        for a, b in zip(straight.critic.parameters(), resumed.critic.parameters()):
            assert torch.equal(a, b)
    if method == "nce":
        assert straight.log_normalizer == resumed.log_normalizer
    strip = lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h]  # noqa: E731
    assert strip(straight.history) == strip(resumed.history)
    assert load_checkpoint(path)["step"] == 12
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary files left behind


def test_resume_refuses_a_checkpoint_of_another_method(tmp_path):
    path = tmp_path / "ck.pt"
    train(_gauss(), _data(100), method="ml", steps=2, checkpoint=path, seed=0, progress=False)
    with pytest.raises(ValueError, match="method: 'ml' -> 'ssm'"):
        train(_gauss(), _data(100), method="ssm", steps=4, checkpoint=path, seed=0, progress=False)
    # resume=False starts over and overwrites it
    res = train(_gauss(), _data(100), method="ssm", steps=3, checkpoint=path, resume=False, seed=0, progress=False)
    assert res.resumed_from == 0 and load_checkpoint(path)["method"] == "ssm"


class _Breaks(nn.Module):
    """N(mu, I) whose log_prob turns NaN from its ``bad_call``-th call on."""

    normalized = True

    def __init__(self, bad_call: int) -> None:
        super().__init__()
        self.dim = 2
        self.mu = nn.Parameter(torch.zeros(2))
        self.calls, self.bad_call = 0, bad_call

    def log_prob(self, x):
        self.calls += 1
        lp = -0.5 * (x - self.mu).pow(2).sum(1) - math.log(2 * math.pi)
        return lp * float("nan") if self.calls >= self.bad_call else lp


def test_nan_stops_training_and_keeps_the_last_good_checkpoint(tmp_path):
    path = tmp_path / "ck.pt"
    model = _Breaks(bad_call=12)
    with pytest.raises(TrainingDiverged, match=r"step 12 .*last good checkpoint \(step 10\)") as info:
        train(model, _data(100), method="ml", steps=30, checkpoint=path, checkpoint_every=5, seed=0, progress=False)
    assert info.value.step == 12 and info.value.last_good_step == 10
    state = load_checkpoint(path)
    assert state["step"] == 10
    assert torch.isfinite(model.mu).all()
    # on_nan="stop": a warning and a result instead of an exception
    model = _Breaks(bad_call=4)
    with pytest.warns(RuntimeWarning, match="diverged"):
        res = train(model, _data(100), method="ml", steps=30, on_nan="stop", seed=0, progress=False)
    assert res.diverged_at == 4 and res.steps == 3
    assert torch.isfinite(model.mu).all()


class _Explodes(nn.Module):
    """N(mu, I) whose log-density is multiplied by ``gain`` from its ``bad_call``-th call on
    (a plain attribute, not saved in checkpoints)."""

    normalized = True

    def __init__(self, bad_call: int, gain: float = 1e12) -> None:
        super().__init__()
        self.dim = 2
        self.mu = nn.Parameter(torch.zeros(2))
        self.calls, self.bad_call, self.gain = 0, bad_call, gain

    def log_prob(self, x):
        self.calls += 1
        lp = -0.5 * (x - self.mu).pow(2).sum(1) - math.log(2 * math.pi)
        return lp * self.gain if self.calls >= self.bad_call else lp


def test_divergence_to_huge_values_stops_like_nan_and_keeps_the_last_good_checkpoint(tmp_path):
    path = tmp_path / "ck.pt"
    model = _Explodes(bad_call=12)
    with pytest.raises(TrainingDiverged, match=r"model loss reached .* beyond max_loss_ratio=1e\+08 .* at step 12 .*"
                                               r"last good checkpoint \(step 10\).*smaller lr \(now 0.001\)") as info:
        train(model, _data(100), method="ml", steps=30, checkpoint=path, checkpoint_every=5, seed=0, progress=False)
    assert info.value.step == 12 and info.value.last_good_step == 10
    assert load_checkpoint(path)["step"] == 10 and torch.isfinite(model.mu).all()
    with pytest.warns(RuntimeWarning, match="max_loss_ratio"):
        res = train(_Explodes(bad_call=4), _data(100), method="ml", steps=30, on_nan="stop", seed=0, progress=False)
    assert res.diverged_at == 4 and res.steps == 3
    # the bound is a setting: larger, or None, lets the same run finish
    assert train(_Explodes(bad_call=4), _data(100), method="ml", steps=8, max_loss_ratio=1e20, seed=0,
                 progress=False).steps == 8
    assert train(_Explodes(bad_call=4), _data(100), method="ml", steps=8, max_loss_ratio=None, seed=0,
                 progress=False).steps == 8
    with pytest.raises(ValueError, match="max_loss_ratio must be a finite number > 0"):
        train(_gauss(), _data(100), method="ml", steps=1, max_loss_ratio=0.0, progress=False)


def test_a_huge_learning_rate_is_stopped_not_reported_as_a_result():
    """lr = 1e4 used to 'succeed' with losses near -1e26; the critic's loss now passes the bound."""
    x = LinearICA.random(2, generator=gen(0)).sample(300, generator=gen(1))
    with pytest.raises(TrainingDiverged, match=r"critic loss reached .*lr \(now 10000\) or a larger lam \(now 0.5\)"
                                               r".*larger max_loss_ratio"):
        train(LinearICA(torch.eye(2)), x, steps=50, lr=1e4, critic=_small_critic(), critic_steps=2, seed=0,
              progress=False)


def test_a_resumed_run_keeps_the_scale_of_the_bound(tmp_path):
    """The bound is relative to the run's first loss, not to the first loss after a resume."""
    path, x = tmp_path / "ck.pt", _data(100)
    res = train(_Explodes(bad_call=10**9), x, method="ml", steps=3, log_every=1, checkpoint=path, seed=0,
                progress=False)
    assert load_checkpoint(path)["loss_scales"] == {"model": max(1.0, abs(res.history[0]["loss"]))}
    with pytest.raises(TrainingDiverged, match="at step 4"):
        train(_Explodes(bad_call=1), x, method="ml", steps=6, checkpoint=path, seed=0, progress=False)


def test_cosine_lr_decay_starts_at_lr_and_resumes_exactly(tmp_path):
    x = _data(300)
    with pytest.raises(ValueError, match="lr_decay"):
        train(_gauss(), x, method="ml", steps=2, lr_decay="step", seed=0, progress=False)
    runs = {}
    for decay, steps in (("constant", 1), ("cosine", 1), ("constant", 6), ("cosine", 6)):
        q = _gauss()
        train(q, x, method="ml", steps=steps, lr=1e-2, lr_decay=decay, seed=0, progress=False)
        runs[decay, steps] = q.mean.detach().clone()
    assert torch.equal(runs["constant", 1], runs["cosine", 1])  # step 1 of T uses the full rate
    assert not torch.allclose(runs["constant", 6], runs["cosine", 6])
    # Interrupted at step 3 (after the checkpoint of step 2), then rerun: the schedule is the same.
    class Interrupt(Exception):
        pass

    def stop_at_step_3(model):
        calls.append(1)
        if len(calls) == 2:  # step 0, then step 3
            raise Interrupt
        return 0.0

    calls: list[int] = []
    path = tmp_path / "cos.pt"
    kw = dict(method="ml", steps=6, lr=1e-2, lr_decay="cosine", checkpoint=path, checkpoint_every=2, seed=0,
              progress=False)
    with pytest.raises(Interrupt):
        train(_gauss(), x, eval_fn=stop_at_step_3, eval_every=3, **kw)
    assert load_checkpoint(path)["step"] == 2
    q = _gauss()
    train(q, x, **kw)
    assert torch.equal(q.mean, runs["cosine", 6])


# ----------------------------------------------------------------------------- closed forms
def test_first_ml_update_is_the_closed_form_adam_step():
    # N(m, I) from m = 0: the batch's NLL is ½ mean‖x‖² + log 2π, its m-gradient −mean(x), and
    # Adam's first step moves m by lr · g / (|g| + ε) = lr · sign(mean x) (to Adam's ε).
    x = _data(50)
    q = _gauss()
    res = train(q, x, method="ml", steps=1, batch_size=10, lr=0.1, log_every=1, seed=3, progress=False)
    xb = x[torch.randint(0, 50, (10,), generator=gen(3))]  # the trainer's first batch
    nll = 0.5 * xb.pow(2).sum(1).mean() + math.log(2 * math.pi)
    assert math.isclose(res.history[0]["loss"], float(nll), rel_tol=1e-6)
    torch.testing.assert_close(q.mean.detach(), 0.1 * torch.sign(xb.mean(0)), rtol=0, atol=1e-6)


def test_lsd_oracle_uses_the_exact_critic_and_moves_the_model_to_the_data():
    # Model N(m, I), data N(1, I): f = s_q − s_p = (m − x) − (1 − x) = m − 1 at every x, so at
    # m = 0 the model loss E[s_q(x)ᵀ f] = E[Σ x] on the first batch; training drives m to 1.
    x = _data(2000)
    p = Gaussian(torch.ones(2), torch.eye(2))
    q = _gauss()
    res = train(q, x, method=LSDOracle(p), steps=1, batch_size=10, log_every=1, seed=0, progress=False)
    assert res.method == "lsd_oracle" and res.critic is None
    xb = x[torch.randint(0, 2000, (10,), generator=gen(0))]
    assert math.isclose(res.history[0]["loss"], float(xb.sum(1).mean()), rel_tol=1e-6)
    q = _gauss()
    train(q, x, method=LSDOracle(p.score), steps=300, lr=2e-2, seed=0, progress=False)  # a score function works too
    torch.testing.assert_close(q.mean.detach(), torch.ones(2), rtol=0, atol=0.05)
    with pytest.raises(TypeError, match="target must have a score"):
        LSDOracle(3)


def test_a_custom_objective_trains_checkpoints_and_resumes_under_its_name(tmp_path):
    class MeanMatching(Objective):
        """Pull the Gaussian's mean to each batch's mean (a toy method with one part)."""

        name = "mean_matching"

        def build(self, model, data, settings, generator):
            class Loss(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.model = model

                def forward(self, x):
                    return (self.model.mean - x.mean(0)).pow(2).sum(), {}

            return {"model": Loss()}

        def update(self, state):
            state.take("model", state.batches.next())

    path = tmp_path / "mm.pt"
    q = _gauss()
    train(q, _data(300), method=MeanMatching(), steps=3, checkpoint=path, seed=0, progress=False)
    assert load_checkpoint(path)["method"] == "mean_matching"
    res = train(q, _data(300), method=MeanMatching(), steps=200, lr=5e-2, checkpoint=path, seed=0, progress=False)
    assert res.resumed_from == 3 and res.method == "mean_matching"
    torch.testing.assert_close(q.mean.detach(), torch.ones(2), rtol=0, atol=0.2)
    with pytest.raises(ValueError, match="method: 'mean_matching' -> 'ml'"):
        train(_gauss(), _data(300), method="ml", steps=5, checkpoint=path, progress=False)


# ----------------------------------------------------------------------------- settings and batch orders
def test_train_settings_validate_and_replace_and_are_an_alternative_to_keywords():
    s = TrainSettings(steps=10, lr=1e-2)
    assert (s.log_interval, s.eval_interval, s.critic_rate) == (1, 1, 1e-2)
    assert s.replace(critic_lr=1e-3).critic_rate == 1e-3
    with pytest.raises(TypeError, match="unexpected keyword"):
        s.replace(learning_rate=1.0)
    with pytest.raises(ValueError, match="batch_order must be one of"):
        TrainSettings(steps=1, batch_order="sorted")
    x = _data(300)
    a, b = _gauss(), _gauss()
    train(a, x, method="ml", steps=10, lr=1e-2, seed=0, progress=False)
    train(b, x, method="ml", settings=s, seed=0, progress=False)
    assert torch.equal(a.mean, b.mean)
    with pytest.raises(TypeError, match="unexpected keyword"):
        train(_gauss(), x, method="ml", settings=s, learning_rate=0.5, progress=False)
    with pytest.raises(TypeError, match="needs steps="):
        train(_gauss(), x, method="ml", progress=False)


def test_train_keywords_the_call_names_override_settings_even_at_their_defaults():
    x = _data(300)
    default_lr = TrainSettings(steps=1).lr
    s = TrainSettings(steps=10, lr=1e-2, log_every=5)
    a, b, c = _gauss(), _gauss(), _gauss()
    res = train(a, x, method="ml", settings=s, lr=default_lr, seed=0, progress=False)
    train(b, x, method="ml", steps=10, lr=default_lr, log_every=5, seed=0, progress=False)
    train(c, x, method="ml", settings=s, seed=0, progress=False)
    assert torch.equal(a.mean, b.mean) and not torch.equal(a.mean, c.mean)
    assert [row["step"] for row in res.history] == [5, 10]  # the rest of s is kept
    # None is a value too: log_every=None overrides s.log_every (back to a record every step here)
    res = train(_gauss(), x, method="ml", settings=s, log_every=None, seed=0, progress=False)
    assert [row["step"] for row in res.history] == list(range(1, 11))


def test_epoch_batches_visit_every_row_once_per_epoch_and_resume_where_they_stopped():
    x = torch.arange(10.0).reshape(10, 1)
    batches = EpochBatches(x, 3, seed=4)  # 3 batches of 3 per epoch, one row left out each epoch
    for _ in range(2):
        rows = torch.cat([batches.next() for _ in range(3)]).flatten()
        assert len(set(rows.tolist())) == 9
    again = EpochBatches(x, 3, seed=0)
    again.load_state_dict(batches.state_dict())
    assert torch.equal(again.next(), batches.next())
    assert torch.equal(EpochBatches(x, 50, seed=0).next().sort(0).values, x)  # batch_size capped at n


def test_resume_refuses_other_trajectory_settings_but_takes_a_new_learning_rate(tmp_path):
    path = tmp_path / "lsd.pt"
    x = _data(200)
    train(_gauss(), x, method="lsd", steps=2, checkpoint=path, seed=0, progress=False, **_kwargs("lsd"))
    with pytest.raises(ValueError, match="batch_size: 100 -> 50"):
        train(_gauss(), x, method="lsd", steps=4, batch_size=50, checkpoint=path, progress=False, **_kwargs("lsd"))
    with pytest.raises(ValueError, match="lam: 0.5 -> 1.0"):
        train(_gauss(), x, method="lsd", steps=4, checkpoint=path, progress=False, **{**_kwargs("lsd"), "lam": 1.0})
    res = train(_gauss(), x, method="lsd", steps=4, lr=1e-2, checkpoint=path, progress=False, **_kwargs("lsd"))
    assert res.resumed_from == 2 and res.steps == 4

"""Tests for steinkit.models.flows (Glow-like flow) and its maximum-likelihood training through steinkit.train."""

from __future__ import annotations

import copy
import math
from typing import Callable

import pytest
import torch
from torch import nn

from steinkit.models.flows import (
    ActNorm,
    AdditiveCoupling,
    GlowFlow,
    ReversePermute,
    Squeeze,
)
from steinkit.train import load_checkpoint, train

DT = torch.float64


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@torch.no_grad()
def _perturb(module: nn.Module, seed: int, scale: float = 0.1) -> None:
    """Move every parameter away from its initial value (the zero-init convs included)."""
    g = _gen(seed)
    for p in module.parameters():
        p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))


def _small_flow(
    shape: tuple[int, int, int], n_stages: int, n_blocks: int = 2, hidden: int = 8, seed: int = 0
) -> GlowFlow:
    return GlowFlow(shape, n_stages, n_blocks, hidden, generator=_gen(seed)).to(DT)


# Configurations covering: squeeze at every stage, no squeeze on odd sizes, odd channel counts
# in couplings and in the multi-scale split, single-stage flows.
FLOW_CONFIGS = [
    ((1, 4, 4), 3),  # 4x2x2 -> 8x1x1 -> 4x1x1 (no squeeze at stage 3)
    ((1, 8, 8), 3),  # squeeze at all three stages
    ((1, 12, 12), 3),  # 28x28-like: 4x6x6 -> 8x3x3 -> 4x3x3 without a squeeze
    ((3, 3, 3), 2),  # no squeeze, coupling split 1/2, multi-scale split keeps 2 factors 1
    ((5, 2, 2), 2),  # 20 channels -> factor out 10
    ((2, 6, 6), 1),
]


# --------------------------------------------------------------------------------------------
# Per-layer contract
# --------------------------------------------------------------------------------------------


def _make_actnorm() -> nn.Module:
    layer = ActNorm(3).to(DT)
    layer(torch.randn(16, 3, 3, 3, generator=_gen(5), dtype=DT) * 2 + 1)  # data-dependent init
    _perturb(layer, seed=6, scale=0.5)
    return layer


def _make_coupling(c: int) -> Callable[[], nn.Module]:
    def make() -> nn.Module:
        torch.manual_seed(c)
        layer = AdditiveCoupling(c, hidden=8).to(DT)
        _perturb(layer, seed=10 + c, scale=0.3)
        return layer

    return make


LAYERS: dict[str, tuple[Callable[[], nn.Module], tuple[int, int, int]]] = {
    "squeeze": (lambda: Squeeze(), (2, 4, 6)),
    "actnorm": (_make_actnorm, (3, 3, 3)),
    "reverse": (lambda: ReversePermute(), (3, 2, 2)),
    "coupling-even": (_make_coupling(2), (2, 3, 3)),
    "coupling-odd": (_make_coupling(3), (3, 3, 2)),
    "coupling-odd5": (_make_coupling(5), (5, 2, 2)),
}


@pytest.mark.parametrize("name", list(LAYERS))
def test_layer_contract(name: str) -> None:
    make, shape = LAYERS[name]
    layer = make()
    x = torch.randn(4, *shape, generator=_gen(1), dtype=DT)
    with torch.no_grad():
        y, ld = layer(x)
    assert ld.shape == (4,)
    assert y.numel() == x.numel()
    # invertible
    assert torch.allclose(layer.inverse(y), x, rtol=0, atol=1e-10)  # type: ignore[operator]
    # log_det equals log|det J| per example
    for i in range(x.shape[0]):
        def f(v: torch.Tensor) -> torch.Tensor:
            return layer(v.reshape(1, *shape))[0].reshape(-1)

        jac = torch.autograd.functional.jacobian(f, x[i].reshape(-1))
        ref = torch.linalg.slogdet(jac).logabsdet
        assert abs(float(ld[i]) - float(ref)) <= 1e-8 * max(1.0, abs(float(ref)))


def test_coupling_starts_as_identity_and_rejects_one_channel() -> None:
    layer = AdditiveCoupling(4, hidden=8)
    x = torch.randn(2, 4, 3, 3)
    assert torch.equal(layer(x)[0], x)
    with pytest.raises(ValueError, match="channels"):
        AdditiveCoupling(1, hidden=8)


def test_actnorm_data_dependent_init_and_state_dict() -> None:
    layer = ActNorm(2).to(DT)
    assert not bool(layer.initialized)
    x = torch.randn(256, 2, 4, 4, generator=_gen(2), dtype=DT) * torch.tensor(
        [3.0, 0.5], dtype=DT
    ).view(1, 2, 1, 1) + 7.0
    y, _ = layer(x)
    assert bool(layer.initialized)
    assert torch.allclose(y.mean(dim=(0, 2, 3)), torch.zeros(2, dtype=DT), atol=1e-10)
    assert torch.allclose(y.std(dim=(0, 2, 3), unbiased=False), torch.ones(2, dtype=DT), atol=1e-5)
    # second call does not re-initialise
    params = [p.clone() for p in layer.parameters()]
    layer(x * 5)
    assert all(torch.equal(a, b) for a, b in zip(params, layer.parameters()))
    # the flag travels with state_dict
    other = ActNorm(2).to(DT)
    other.load_state_dict(layer.state_dict())
    assert bool(other.initialized)
    assert torch.equal(other(x)[0], y)


# --------------------------------------------------------------------------------------------
# Whole flow: invertibility, Jacobian, densities
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape,n_stages", FLOW_CONFIGS)
def test_flow_invertible(shape: tuple[int, int, int], n_stages: int) -> None:
    flow = _small_flow(shape, n_stages)
    d = flow.dim
    x = torch.randn(8, d, generator=_gen(3), dtype=DT) * 2 + 0.5
    z, ld = flow(x)  # initialises ActNorm
    assert z.shape == (8, d) and ld.shape == (8,)
    assert torch.allclose(flow.inverse(z), x, rtol=0, atol=1e-10)
    _perturb(flow, seed=4, scale=0.2)
    z2, _ = flow(x)
    assert not torch.allclose(z2, z)  # the perturbation changed the map
    assert torch.allclose(flow.inverse(z2), x, rtol=0, atol=1e-10)
    assert torch.allclose(flow(flow.inverse(z2))[0], z2, rtol=0, atol=1e-10)


@pytest.mark.parametrize("shape,n_stages", FLOW_CONFIGS)
def test_flow_log_det_matches_jacobian(shape: tuple[int, int, int], n_stages: int) -> None:
    flow = _small_flow(shape, n_stages)
    x = torch.randn(3, flow.dim, generator=_gen(7), dtype=DT)
    flow(x)
    _perturb(flow, seed=8, scale=0.2)
    with torch.no_grad():
        _, ld = flow(x)
    for i in range(3):
        jac = torch.autograd.functional.jacobian(lambda v: flow(v[None])[0][0], x[i])
        ref = torch.linalg.slogdet(jac).logabsdet
        assert abs(float(ld[i]) - float(ref)) <= 1e-8 * abs(float(ref))


def test_identity_couplings_give_the_right_gaussian() -> None:
    """With zero couplings the flow is a per-pixel affine map; log_prob must be the Gaussian
    whose mean is inverse(0) and whose std per pixel is read off inverse(e_j) - inverse(0)."""
    flow = _small_flow((1, 4, 4), 2)
    d = flow.dim
    g = _gen(11)
    with torch.no_grad():
        for m in flow.modules():
            if isinstance(m, ActNorm):
                m.bias.copy_(torch.randn(m.bias.shape, generator=g, dtype=DT))
                m.log_scale.copy_(0.5 * torch.randn(m.log_scale.shape, generator=g, dtype=DT))
                m.initialized.fill_(True)
        mean = flow.inverse(torch.zeros(1, d, dtype=DT))[0]
        cols = flow.inverse(torch.eye(d, dtype=DT)) - mean  # row j: image of e_j under M^-1
    # M^-1 is a permuted positive diagonal: every pixel is moved by exactly one latent
    assert ((cols.abs() > 1e-12).sum(dim=0) == 1).all()
    std = cols.sum(dim=0)
    assert (std > 0).all()
    x = torch.randn(20, d, generator=g, dtype=DT) * 2
    ref = torch.distributions.Normal(mean, std).log_prob(x).sum(dim=1)
    assert torch.allclose(flow.log_prob(x), ref, rtol=1e-12, atol=1e-10)
    # and the samples have that mean and std (4.5 standard errors over 16 coordinates)
    n = 20000
    s = flow.sample(n, generator=_gen(12))
    z_mean = (s.mean(0) - mean) / (std / math.sqrt(n))
    z_var = (s.var(0) / std**2 - 1) / math.sqrt(2 / n)
    assert z_mean.abs().max() < 4.5
    assert z_var.abs().max() < 4.5


def test_fresh_flow_is_standard_normal_up_to_permutation() -> None:
    flow = _small_flow((1, 4, 4), 3)
    x = torch.randn(2, 16, generator=_gen(0), dtype=DT)
    with torch.no_grad():
        z = flow.inverse(x)  # ActNorm not initialised: identity, and inverse does not init it
    assert not any(bool(m.initialized) for m in flow.modules() if isinstance(m, ActNorm))
    assert torch.equal(torch.sort(z, dim=1).values, torch.sort(x, dim=1).values)
    for m in flow.modules():  # keep the identity ActNorm (no data-dependent init)
        if isinstance(m, ActNorm):
            m.initialized.fill_(True)
    ref = torch.distributions.Normal(0.0, 1.0).log_prob(x).sum(1)
    assert torch.allclose(flow.log_prob(x), ref, rtol=0, atol=1e-12)
    assert torch.equal(flow(z)[0], x)


def test_log_prob_integrates_to_one() -> None:
    """Importance-sampling estimate of int exp(log_prob) dx for a nonlinear 4-D flow."""
    flow = _small_flow((1, 2, 2), 1, n_blocks=3, hidden=8, seed=1)
    flow(torch.randn(256, 4, generator=_gen(0), dtype=DT) * 1.5 + 0.3)
    _perturb(flow, seed=2, scale=0.3)
    s = flow.sample(5000, generator=_gen(3))
    mu, cov = s.mean(0), torch.cov(s.T) * 2.0  # a wider Gaussian proposal
    prop = torch.distributions.MultivariateNormal(mu, cov)
    eps = torch.randn(200_000, 4, generator=_gen(4), dtype=DT)
    xs = mu + eps @ torch.linalg.cholesky(cov).T
    with torch.no_grad():
        w = torch.exp(flow.log_prob(xs) - prop.log_prob(xs))
    est, se = float(w.mean()), float(w.std() / math.sqrt(len(w)))
    assert se < 0.01
    assert abs(est - 1.0) < 4 * se


# --------------------------------------------------------------------------------------------
# Score and sampling
# --------------------------------------------------------------------------------------------


def _trained_like_flow() -> GlowFlow:
    flow = _small_flow((1, 4, 4), 2)
    flow(torch.randn(32, 16, generator=_gen(0), dtype=DT))
    _perturb(flow, seed=1, scale=0.2)
    return flow


def test_score_matches_autograd_of_log_prob() -> None:
    flow = _trained_like_flow()
    x = torch.randn(6, 16, generator=_gen(2), dtype=DT)
    ref = torch.autograd.functional.jacobian(lambda v: flow.log_prob(v).sum(), x)
    with torch.no_grad():
        s = flow.score(x)
    assert not s.requires_grad
    assert torch.allclose(s, ref, rtol=1e-12, atol=1e-12)
    # with grad enabled it carries a graph to the parameters
    s2 = flow.score(x)
    assert s2.requires_grad and torch.allclose(s2, ref, rtol=1e-12, atol=1e-12)
    s2.pow(2).sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in flow.parameters())
    # explicit create_graph=False under grad: detached
    assert not flow.score(x, create_graph=False).requires_grad


def test_score_graph_to_x_gives_hessian_vector_product() -> None:
    flow = _trained_like_flow()
    x = torch.randn(3, 16, generator=_gen(3), dtype=DT, requires_grad=True)
    v = torch.randn(3, 16, generator=_gen(4), dtype=DT)
    (hv,) = torch.autograd.grad((flow.score(x) * v).sum(), x)
    _, ref = torch.autograd.functional.hvp(lambda u: flow.log_prob(u).sum(), x.detach(), v)
    assert torch.allclose(hv, ref, rtol=1e-10, atol=1e-10)


def test_sample_finite_reproducible_and_temperature() -> None:
    flow = _trained_like_flow()
    a = flow.sample(50, generator=_gen(5))
    b = flow.sample(50, generator=_gen(5))
    assert a.shape == (50, 16) and a.dtype == DT and not a.requires_grad
    assert torch.equal(a, b)
    assert torch.isfinite(flow.log_prob(a)).all()
    cold = flow.sample(3, generator=_gen(5), temperature=0.0)
    assert torch.allclose(cold, flow.inverse(torch.zeros(3, 16, dtype=DT)).detach())


# --------------------------------------------------------------------------------------------
# The paper's configuration
# --------------------------------------------------------------------------------------------


def _n_params_expected(stage_channels: list[int], n_blocks: int, hidden: int) -> int:
    total = 0
    for c in stage_channels:
        c1, c2 = c // 2, c - c // 2
        coupling = (c1 * 9 * hidden + hidden) + (hidden * hidden + hidden) + (hidden * 9 * c2 + c2)
        total += n_blocks * (coupling + 2 * c)
    return total


def test_default_28x28_config_builds_and_runs() -> None:
    flow = GlowFlow()
    assert flow.image_shape == (1, 28, 28) and flow.dim == 784
    assert flow._stage_in_shapes == [(1, 28, 28), (2, 14, 14), (4, 7, 7)]
    assert flow._final_shape == (4, 7, 7)
    n_params = sum(p.numel() for p in flow.parameters())
    print(f"GlowFlow() default 1x28x28, 3 stages x 4 blocks x 128 ch: {n_params} parameters")
    assert n_params == _n_params_expected([4, 8, 4], 4, 128) == 273_568
    x = torch.randn(4, 784, generator=_gen(0))
    z, ld = flow(x)
    assert z.shape == (4, 784) and z.dtype == torch.float32 and ld.shape == (4,)
    assert torch.isfinite(z).all() and torch.isfinite(ld).all()
    assert torch.allclose(flow.inverse(z), x, atol=1e-4)
    with torch.no_grad():
        assert flow.score(x[:2]).shape == (2, 784)


def test_generator_makes_construction_reproducible() -> None:
    a = GlowFlow((1, 8, 8), 2, 1, 8, generator=_gen(9))
    b = GlowFlow((1, 8, 8), 2, 1, 8, generator=_gen(9))
    c = GlowFlow((1, 8, 8), 2, 1, 8, generator=_gen(10))
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def test_state_dict_roundtrip_keeps_actnorm_initialisation() -> None:
    flow = _trained_like_flow()
    other = _small_flow((1, 4, 4), 2, seed=99)
    other.load_state_dict(flow.state_dict())
    x = torch.randn(5, 16, generator=_gen(1), dtype=DT) * 10  # would re-init if flag lost
    assert torch.equal(other.log_prob(x), flow.log_prob(x))


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------


def _toy_data(n: int = 512) -> torch.Tensor:
    g = _gen(20)
    a = torch.randn(16, 16, generator=g, dtype=DT) / 4
    return torch.randn(n, 16, generator=g, dtype=DT) @ a.T + torch.linspace(-1, 1, 16, dtype=DT)


def _train(flow: GlowFlow, data: torch.Tensor, **kwargs: object):
    """The flow's maximum-likelihood run: shuffled epochs and Adam's default betas."""
    args = {"method": "ml", "batch_order": "epochs", "betas": (0.9, 0.999), "log_every": 1, "progress": False}
    return train(flow, data, **{**args, **kwargs})  # type: ignore[arg-type]


def _losses(res) -> list[float]:
    return [h["loss"] for h in res.history if "loss" in h]


def test_ml_training_decreases_nll_and_evaluates_on_schedule() -> None:
    data = _toy_data()
    flow = _small_flow((1, 4, 4), 2, hidden=16)
    with torch.no_grad():
        before = -flow.log_prob(data).mean().item()  # also the ActNorm init
    res = _train(flow, data, steps=60, batch_size=64, lr=1e-2, eval_every=20, eval_fn=lambda f: 0.0,
                 generator=_gen(0))
    with torch.no_grad():
        after = -flow.log_prob(data).mean().item()
    assert len(_losses(res)) == 60 and all(math.isfinite(h) for h in _losses(res))
    assert [h["step"] for h in res.history if "eval" in h] == [0, 20, 40, 60]
    assert after < before - 1.0, (before, after)


def test_ml_training_is_reproducible_and_follows_the_epoch_order() -> None:
    data = _toy_data(100)
    runs = [_losses(_train(_small_flow((1, 4, 4), 2, n_blocks=1), data, steps=7, batch_size=32, seed=s))
            for s in (3, 3, 4)]  # fmt: skip
    assert runs[0] == runs[1] and runs[0] != runs[2]
    # Step k's batch is slice k mod 3 of epoch k // 3 (100 // 32 = 3 batches, 4 rows dropped),
    # the epoch's order drawn from a generator seeded by (seed, epoch): replay it by hand.
    flow, opt = _small_flow((1, 4, 4), 2, n_blocks=1), None
    manual = []
    for k in range(7):
        e, j = divmod(k, 3)
        perm = torch.randperm(100, generator=_gen((3 * 1_000_003 + e) % 2**63))
        loss = -flow.log_prob(data[perm[32 * j : 32 * (j + 1)]]).mean()
        opt = opt or torch.optim.Adam(flow.parameters(), lr=1e-3)
        opt.zero_grad()
        loss.backward()
        opt.step()
        manual.append(loss.item())
    assert manual == runs[0]


def test_the_first_training_batch_initialises_actnorm_before_any_evaluation() -> None:
    data = _toy_data(100)
    flow = _small_flow((1, 4, 4), 2, n_blocks=1)
    expected = copy.deepcopy(flow)
    first = torch.randperm(100, generator=_gen((5 * 1_000_003) % 2**63))[:32]
    with torch.no_grad():
        expected.log_prob(data[first])
    seen: list[dict[str, torch.Tensor]] = []

    def eval_fn(f: GlowFlow) -> float:  # called at step 0, before the first update
        seen.append(copy.deepcopy(f.state_dict()))
        with torch.no_grad():
            return float(f.log_prob(data[:10]).mean())  # evaluation data must not initialise ActNorm

    _train(flow, data, steps=1, batch_size=32, seed=5, eval_fn=eval_fn, eval_every=5)
    for key, value in expected.state_dict().items():
        assert torch.equal(seen[0][key], value), key


def test_resumed_ml_training_equals_a_straight_run(tmp_path) -> None:
    data = _toy_data(100)  # 3 batches of 32 per epoch: the resume point (step 4) is mid-epoch 2
    straight_flow = _small_flow((1, 4, 4), 2, n_blocks=1)
    straight = _train(straight_flow, data, steps=7, batch_size=32, seed=5, lr=1e-2)
    path = tmp_path / "flow.pt"
    first = _train(_small_flow((1, 4, 4), 2, n_blocks=1), data, steps=4, batch_size=32, seed=5, lr=1e-2,
                   checkpoint=path)
    assert load_checkpoint(path)["batches"] == {"order": "epochs", "seed": 5, "drawn": 4}
    flow = _small_flow((1, 4, 4), 2, n_blocks=1, seed=9)  # everything comes from the checkpoint
    rest = _train(flow, data, steps=7, batch_size=32, seed=0, lr=1e-2, checkpoint=path)
    assert first.steps == 4 and rest.resumed_from == 4
    assert _losses(rest) == _losses(straight)
    for a, b in zip(straight_flow.state_dict().values(), flow.state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="batch_size: 32 -> 16"):
        _train(flow, data, steps=9, batch_size=16, checkpoint=path)


# --------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------


def test_bad_x_raises() -> None:
    flow = _small_flow((1, 4, 4), 2)
    with pytest.raises(ValueError, match=r"x must be a 2-D tensor \(n, 16\)"):
        flow(torch.zeros(3, 15, dtype=DT))
    with pytest.raises(ValueError, match="x must be"):
        flow.log_prob(torch.zeros(16, dtype=DT))
    with pytest.raises(ValueError, match="x must be"):
        flow.score(torch.zeros(2, 1, 4, 4, dtype=DT))
    with pytest.raises(ValueError, match="z must be"):
        flow.inverse(torch.zeros(3, 17, dtype=DT))
    with pytest.raises(TypeError, match="x must be a torch.Tensor"):
        flow(torch.zeros(3, 16).numpy())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="x has dtype torch.float32"):
        flow(torch.zeros(3, 16))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"image_shape": (28, 28)}, "image_shape"),
        ({"image_shape": (1, 0, 4)}, "image_shape"),
        ({"image_shape": (1, 7, 7)}, "single channel"),
        ({"image_shape": (1, 6, 6), "n_stages": 3}, "single channel"),
        ({"n_stages": 0}, "n_stages"),
        ({"n_blocks": -1}, "n_blocks"),
        ({"hidden_channels": 2.5}, "hidden_channels"),
    ],
)
def test_bad_constructor_args_raise(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        GlowFlow(**kwargs)


def test_bad_sample_args_raise() -> None:
    flow = _small_flow((1, 4, 4), 2)
    with pytest.raises(ValueError, match="n must be"):
        flow.sample(0)
    with pytest.raises(ValueError, match="temperature"):
        flow.sample(2, temperature=-1.0)


@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        ({"steps": 0}, ValueError, "steps must be >= 1"),
        ({"batch_size": 0}, ValueError, "batch_size must be >= 1"),
        ({"lr": -1.0}, ValueError, "lr must be"),
        ({"checkpoint_every": 0}, ValueError, "checkpoint_every must be >= 1"),
        ({"eval_fn": 3}, TypeError, "eval_fn must be callable"),
        ({"data": torch.zeros(4, 15, dtype=DT)}, ValueError, "data has 15 columns"),
        ({"data": torch.full((4, 16), math.nan, dtype=DT)}, ValueError, "data contains NaN"),
        ({"flow": nn.Linear(2, 2)}, TypeError, "model must have an int attribute `dim`"),
    ],
)
def test_bad_train_args_raise(kwargs: dict, exc: type, match: str) -> None:
    args = {"flow": _small_flow((1, 4, 4), 2), "data": torch.zeros(4, 16, dtype=DT), "steps": 2}
    args.update(kwargs)
    flow, data = args.pop("flow"), args.pop("data")
    with pytest.raises(exc, match=match):
        _train(flow, data, **args)

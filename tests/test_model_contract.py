"""The contract every model in ``steinkit.models`` passes.

Each model class is registered once in ``SPECS`` (small sizes, fixed seeds; LinearICA in both
parametrizations) and every check runs on every entry:

* the score is the gradient of ``log_prob`` (float64, to round-off) and gives the same
  parameter gradients as autograd's score, which is what the trainers differentiate;
* ``log_prob`` (n,) and ``score`` (n, d) keep the model's dtype, float32 and float64; points of
  the other dtype are converted (or refused with an error naming ``x``); each row's answer
  does not depend on the other rows; bad points are refused naming ``x``;
* ``as_score(model)`` is ``model.score``, and the adapter's autograd route through
  ``log_prob`` agrees with it;
* where the model samples: shape, dtype, no graph, the same generator seed gives the same
  draws without touching torch's global RNG, a bad ``n`` is named, and the draws satisfy
  Stein's identities E[s(x)] = 0 and E[s(x) xᵀ] = −I (the sampler and the score describe the
  same density).

Per-model exact answers (closed forms, normalization, Gibbs moments) stay in test_models.py
and test_flows.py. A new class exported by ``steinkit.models`` fails
``test_every_model_class_is_registered`` until it gets an entry here.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pytest
import torch
from torch import nn

import steinkit as sk
from steinkit import models

from helpers import gen

DTYPES = [torch.float32, torch.float64]


# --- the registry ------------------------------------------------------------------------------

def _spd(d: int, seed: int, dtype: torch.dtype) -> torch.Tensor:
    a = torch.randn(d, d, generator=gen(seed), dtype=torch.float64)
    return (a @ a.T / d + 0.5 * torch.eye(d, dtype=torch.float64)).to(dtype)


def _gaussian(dtype: torch.dtype) -> nn.Module:
    return models.Gaussian(torch.randn(4, generator=gen(1), dtype=torch.float64).to(dtype), _spd(4, 2, dtype))


def _rbm(dtype: torch.dtype) -> nn.Module:
    return models.GaussianBernoulliRBM.random(5, 3, generator=gen(3), dtype=dtype)


def _ica(**kwargs: Any) -> Callable[[torch.dtype], nn.Module]:
    def make(dtype: torch.dtype) -> nn.Module:
        W = models.LinearICA.random(4, generator=gen(4), dtype=torch.float64).W.detach()
        return models.LinearICA(W.to(dtype), **kwargs)

    return make


def _ebm(dtype: torch.dtype) -> nn.Module:
    with torch.random.fork_rng():  # MLPEnergy initialises from the global RNG
        torch.manual_seed(5)
        ebm = models.MLPEnergy(3, hidden=16, dtype=dtype)
    return ebm.init_base(torch.randn(50, 3, generator=gen(6), dtype=dtype) * 2 + 1)


def _glow(dtype: torch.dtype) -> nn.Module:
    flow = models.GlowFlow((1, 4, 4), n_stages=2, n_blocks=1, hidden_channels=4, generator=gen(7)).to(dtype)
    flow(torch.randn(32, 16, generator=gen(8), dtype=torch.float64).to(dtype))  # ActNorm's data-dependent init
    g = gen(9)
    with torch.no_grad():  # move every parameter (the zero-initialised convs too) off its start
        for p in flow.parameters():
            p.add_(0.2 * torch.randn(p.shape, generator=g, dtype=torch.float64).to(dtype))
    return flow


@dataclass(frozen=True)
class Spec:
    make: Callable[[torch.dtype], nn.Module]
    normalized: bool
    sample_kwargs: dict | None = None  # None: the model does not sample
    mixed_dtype: str = "convert"  # points of another dtype: "convert" to the model's, or "raise"
    marks: dict[str, Any] = field(default_factory=dict)  # test name -> pytest mark for this model


SPECS: dict[str, Spec] = {
    "gaussian": Spec(_gaussian, normalized=True, sample_kwargs={}),
    "rbm": Spec(_rbm, normalized=False, sample_kwargs={"burn_in": 100}),
    "ica-mixing": Spec(_ica(parametrization="mixing"), normalized=True, sample_kwargs={}),
    "ica-unmixing": Spec(_ica(parametrization="unmixing"), normalized=True, sample_kwargs={}),
    "ebm": Spec(_ebm, normalized=False),
    "glow": Spec(_glow, normalized=True, sample_kwargs={}, mixed_dtype="raise"),
}
if "sources" in inspect.signature(models.LinearICA).parameters:  # logistic sources, once offered
    SPECS["ica-logistic"] = Spec(_ica(sources="logistic"), normalized=True, sample_kwargs={})


def _params(test: str, only_sampling: bool = False) -> list:
    out = []
    for name, spec in SPECS.items():
        if only_sampling and spec.sample_kwargs is None:
            continue
        marks = [spec.marks[test]] if test in spec.marks else []
        out.append(pytest.param(name, marks=marks, id=name))
    return out


def _model(name: str, dtype: torch.dtype = torch.float64) -> nn.Module:
    """The registered model; a fresh one each call (tests may change parameters)."""
    return SPECS[name].make(dtype)


def _dtype(model: nn.Module) -> torch.dtype:
    return next(model.parameters()).dtype


def _points(model: nn.Module, n: int = 32, seed: int = 11, dtype: torch.dtype | None = None) -> torch.Tensor:
    x = 1.5 * torch.randn(n, model.dim, generator=gen(seed), dtype=torch.float64)
    return x.to(dtype or _dtype(model))


def _rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach(), b.detach()
    return float((a - b).norm() / b.norm().clamp_min(1e-300))


def test_every_model_class_is_registered():
    exported = {getattr(models, n) for n in models.__all__}
    classes = {c for c in exported if isinstance(c, type) and issubclass(c, nn.Module)}
    registered = {type(spec.make(torch.float64)) for spec in SPECS.values()}
    assert classes <= registered, f"no contract entry for {sorted(c.__name__ for c in classes - registered)}"


# --- score and log_prob --------------------------------------------------------------------------

@pytest.mark.parametrize("name", _params("test_score_is_gradient_of_log_prob"))
def test_score_is_gradient_of_log_prob(name):
    model = _model(name)
    x = _points(model).requires_grad_(True)
    (auto,) = torch.autograd.grad(model.log_prob(x).sum(), x)
    assert _rel_err(model.score(x.detach()), auto) < 1e-10


@pytest.mark.parametrize("name", _params("test_score_backpropagates_to_parameters"))
def test_score_backpropagates_to_parameters(name):
    """A trainer differentiates score(x)·f(x) w.r.t. the parameters: the model's score must give
    the same parameter gradient as the autograd score (with create_graph)."""
    model = _model(name)
    if isinstance(model, models.LinearICA):  # autograd of log_prob differentiates sign pointwise (to 0)
        model.boundary_width = None
    x = _points(model)
    f = torch.randn(x.shape, generator=gen(8), dtype=x.dtype)
    params = list(model.parameters())
    grads = torch.autograd.grad((model.score(x) * f).sum(), params, allow_unused=True)
    xr = x.clone().requires_grad_(True)
    (auto_score,) = torch.autograd.grad(model.log_prob(xr).sum(), xr, create_graph=True)
    ref = torch.autograd.grad((auto_score * f).sum(), params, allow_unused=True)
    assert any(g is not None and float(g.abs().sum()) > 0 for g in grads)
    for g, r, p in zip(grads, ref, params):
        if r is None or float(r.abs().sum()) == 0:  # e.g. the mean of log q does not enter the score
            assert g is None or float(g.abs().max()) < 1e-10
            continue
        assert g is not None and g.shape == p.shape
        assert _rel_err(g, r) < 1e-6


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", _params("test_shapes_dtype_and_parameters"))
def test_shapes_dtype_and_parameters(name, dtype):
    model = _model(name, dtype)
    assert isinstance(model, nn.Module) and isinstance(model.dim, int) and model.dim >= 1
    params = list(model.parameters())
    assert params and all(isinstance(p, nn.Parameter) and p.dtype == dtype for p in params)
    x = _points(model, n=7)
    lp, s = model.log_prob(x), model.score(x)
    assert lp.shape == (7,) and s.shape == (7, model.dim)
    assert lp.dtype == dtype and s.dtype == dtype
    assert bool(torch.isfinite(lp).all()) and bool(torch.isfinite(s).all())
    with torch.no_grad():  # evaluation mode: the same values (to round-off: the graph-building
        s0 = model.score(x)  # backward may use other kernels), no graph
    assert not s0.requires_grad
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(s0, s.detach(), rtol=tol, atol=tol)


@pytest.mark.parametrize("name", _params("test_declares_whether_log_prob_is_normalized"))
def test_declares_whether_log_prob_is_normalized(name):
    assert _model(name).normalized is SPECS[name].normalized


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", _params("test_points_of_the_other_dtype"))
def test_points_of_the_other_dtype(name, dtype):
    model = _model(name, dtype)
    other = torch.float32 if dtype == torch.float64 else torch.float64
    x = _points(model, dtype=other)
    if SPECS[name].mixed_dtype == "raise":
        for method in (model.log_prob, model.score):
            with pytest.raises(TypeError, match=rf"\bx\b.*{other}"):
                method(x)
        return
    converted = x.to(dtype)  # converted to the model's dtype, then the same computation
    for method in (model.log_prob, model.score):
        out = method(x)
        assert out.dtype == dtype
        assert torch.equal(out.detach(), method(converted).detach())


@pytest.mark.parametrize("name", _params("test_each_row_is_answered_on_its_own"))
def test_each_row_is_answered_on_its_own(name):
    model = _model(name)
    x = _points(model, n=9)
    lp, s = model.log_prob(x).detach(), model.score(x).detach()
    for i in (0, 4, 8):
        row = x[i : i + 1]
        torch.testing.assert_close(model.log_prob(row).detach(), lp[i : i + 1], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(model.score(row).detach(), s[i : i + 1], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", _params("test_bad_points_raise_naming_x"))
def test_bad_points_raise_naming_x(name):
    model = _model(name)
    d = model.dim
    for method in (model.log_prob, model.score):
        with pytest.raises(ValueError, match=rf"x must be a 2-D tensor \(n, {d}\)"):
            method(torch.zeros(d, dtype=torch.float64))
        with pytest.raises(ValueError, match=rf"\bx\b.*\b{d}\b.*got shape \(3, {d + 1}\)"):
            method(torch.zeros(3, d + 1, dtype=torch.float64))
        with pytest.raises(TypeError, match="x must be a torch.Tensor"):
            method(np.zeros((3, d)))


# --- as_score -----------------------------------------------------------------------------------

class _LogProbOnly:
    """Offers only ``log_prob`` and ``dim``, so ``as_score`` takes its autograd route."""

    def __init__(self, model: nn.Module) -> None:
        self.log_prob, self.dim = model.log_prob, model.dim


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", _params("test_as_score_is_the_model_score"))
def test_as_score_is_the_model_score(name, dtype):
    model = _model(name, dtype)
    x = _points(model)
    with torch.no_grad():
        direct = model.score(x)
        adapted = sk.as_score(model)(x)
        by_autograd = sk.as_score(_LogProbOnly(model))(x)
    assert torch.equal(adapted, direct)
    tol = 1e-10 if dtype == torch.float64 else 1e-5
    assert _rel_err(by_autograd, direct) < tol
    with pytest.raises(ValueError, match=rf"\bx\b.*dimension {model.dim + 1}"):
        sk.as_score(model)(_points(model, dtype=dtype)[:, :1].repeat(1, model.dim + 1))


# --- sampling -----------------------------------------------------------------------------------

def _sample(model: nn.Module, name: str, n: int, seed: int) -> torch.Tensor:
    return model.sample(n, generator=gen(seed), **SPECS[name].sample_kwargs)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", _params("test_sampling_shape_dtype_and_generator", only_sampling=True))
def test_sampling_shape_dtype_and_generator(name, dtype):
    model = _model(name, dtype)
    state = torch.get_rng_state()
    a = _sample(model, name, 20, seed=21)
    assert torch.equal(torch.get_rng_state(), state), "sampling with a generator moved the global RNG"
    assert a.shape == (20, model.dim) and a.dtype == dtype and not a.requires_grad
    assert bool(torch.isfinite(a).all()) and bool(torch.isfinite(model.log_prob(a)).all())
    assert torch.equal(a, _sample(model, name, 20, seed=21))
    assert not torch.equal(a, _sample(model, name, 20, seed=22))


@pytest.mark.parametrize("name", _params("test_sampling_bad_count_is_named", only_sampling=True))
def test_sampling_bad_count_is_named(name):
    model = _model(name)
    for n in (0, -3, 2.5):
        with pytest.raises((TypeError, ValueError), match=r"\bn\b"):
            model.sample(n, **SPECS[name].sample_kwargs)


@pytest.mark.parametrize("name", _params("test_samples_satisfy_steins_identities", only_sampling=True))
def test_samples_satisfy_steins_identities(name):
    """For x ~ q: E[s(x)] = 0 and E[s(x) xᵀ] = −I (integration by parts), exactly in the limit."""
    model = _model(name)
    n, d = 4000, model.dim
    x = _sample(model, name, n, seed=31)
    with torch.no_grad():
        s = model.score(x)
    for values, target in ((s, torch.zeros(d, dtype=x.dtype)), (s[:, :, None] * x[:, None, :], -torch.eye(d, dtype=x.dtype))):
        mean, se = values.mean(0), values.std(0) / math.sqrt(n)
        z = ((mean - target).abs() / se.clamp_min(1e-12)).max()
        assert float(z) < 5.0, f"{name}: Stein identity off by {float(z):.1f} standard errors"

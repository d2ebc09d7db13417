"""Exact checks per model in steinkit.models.

What every model must do (score = gradient of log_prob, parameter gradients through the
score, shapes and dtypes, bad points named, sampling with a generator) is checked once per
model in test_model_contract.py.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from steinkit.models.energy import MLPEnergy
from steinkit.models.gaussian import Gaussian
from steinkit.models.ica import LinearICA
from steinkit.models.rbm import GaussianBernoulliRBM
from steinkit.samplers import sgld

from helpers import gen


def _spd(d: int, seed: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    a = torch.randn(d, d, generator=gen(seed), dtype=dtype)
    return a @ a.T / d + 0.5 * torch.eye(d, dtype=dtype)


def make_gaussian(dtype: torch.dtype) -> Gaussian:
    mean = torch.randn(4, generator=gen(1), dtype=dtype)
    return Gaussian(mean, _spd(4, 2, dtype))


def make_rbm(dtype: torch.dtype) -> GaussianBernoulliRBM:
    return GaussianBernoulliRBM.random(5, 3, generator=gen(3), dtype=dtype)


def make_ica(dtype: torch.dtype) -> LinearICA:
    return LinearICA.random(4, generator=gen(4), dtype=dtype)


def make_ica_logistic(dtype: torch.dtype) -> LinearICA:
    return LinearICA.random(4, generator=gen(4), dtype=dtype, sources="logistic")


def make_ebm(dtype: torch.dtype) -> MLPEnergy:
    torch.manual_seed(5)
    ebm = MLPEnergy(3, hidden=16, dtype=dtype)
    return ebm.init_base(torch.randn(50, 3, generator=gen(6), dtype=dtype) * 2 + 1)


def _points(model: torch.nn.Module, n: int = 64, seed: int = 7) -> torch.Tensor:
    dtype = next(model.parameters()).dtype
    return 1.5 * torch.randn(n, model.dim, generator=gen(seed), dtype=dtype)


def _rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach(), b.detach()
    return float((a - b).norm() / b.norm().clamp_min(1e-300))


# ----------------------------------------------------------------------------------------------
# Gaussian
# ----------------------------------------------------------------------------------------------


def test_gaussian_log_prob_matches_scipy() -> None:
    q = make_gaussian(torch.float64)
    x = _points(q, n=20)
    ref = stats.multivariate_normal(q.mean.detach().numpy(), q.cov.detach().numpy()).logpdf(x.numpy())
    np.testing.assert_allclose(q.log_prob(x).detach().numpy(), ref, rtol=1e-12, atol=1e-12)


def test_gaussian_score_closed_form() -> None:
    q = make_gaussian(torch.float64)
    x = _points(q, n=20)
    ref = -(x - q.mean) @ torch.linalg.inv(q.cov).T
    assert _rel_err(q.score(x).detach(), ref.detach()) < 1e-10


def test_gaussian_sample_moments_and_determinism() -> None:
    q = make_gaussian(torch.float64)
    n = 20_000
    x = q.sample(n, generator=gen(11))
    assert x.shape == (n, 4) and not x.requires_grad
    assert torch.equal(x, q.sample(n, generator=gen(11)))
    se = torch.sqrt(torch.diagonal(q.cov.detach()) / n)
    assert bool(((x.mean(0) - q.mean.detach()).abs() < 4 * se).all())
    # Whitened samples have identity covariance; each entry of the sample covariance of N(0, I)
    # has standard error <= sqrt(2 / n).
    chol = torch.linalg.cholesky(q.cov.detach())
    z = torch.linalg.solve_triangular(chol, (x - q.mean.detach()).T, upper=False).T
    assert float((torch.cov(z.T) - torch.eye(4, dtype=z.dtype)).abs().max()) < 4 * math.sqrt(2 / n)


def test_gaussian_bad_arguments() -> None:
    with pytest.raises(ValueError, match="cov must be positive definite"):
        Gaussian(torch.zeros(2), torch.tensor([[1.0, 2.0], [2.0, 1.0]]))
    with pytest.raises(ValueError, match="cov must be symmetric"):
        Gaussian(torch.zeros(2), torch.tensor([[1.0, 0.5], [0.0, 1.0]]))
    with pytest.raises(ValueError, match=r"cov must have shape \(2, 2\)"):
        Gaussian(torch.zeros(2), torch.eye(3))
    with pytest.raises(ValueError, match="cov must be a 2-D tensor"):
        Gaussian(torch.zeros(2), torch.ones(2))
    with pytest.raises(ValueError, match="mean must be a 1-D tensor"):
        Gaussian(torch.zeros(2, 1), torch.eye(2))
    with pytest.raises(ValueError, match="mean must contain only finite values"):
        Gaussian(torch.tensor([0.0, float("nan")]), torch.eye(2))
    q = Gaussian(torch.zeros(2), torch.eye(2))
    with pytest.raises(ValueError, match="n must be >= 1"):
        q.sample(0)
    with pytest.raises(TypeError, match="n must be an int"):
        q.sample(2.5)  # type: ignore[arg-type]


def test_gaussian_float32_default_and_array_like() -> None:
    q = Gaussian([0.0, 1.0], [[2.0, 0.0], [0.0, 1.0]])
    assert q.mean.dtype == torch.get_default_dtype() and q.dim == 2


# ----------------------------------------------------------------------------------------------
# Linear ICA
# ----------------------------------------------------------------------------------------------


def test_ica_log_prob_matches_direct_computation() -> None:
    q = make_ica(torch.float64)
    x = _points(q, n=30)
    W = q.W.detach().numpy()
    z = np.linalg.solve(W, x.numpy().T).T
    ref = -np.abs(z).sum(1) - q.dim * math.log(2) - math.log(abs(np.linalg.det(W)))
    np.testing.assert_allclose(q.log_prob(x).detach().numpy(), ref, rtol=1e-12, atol=1e-12)
    score_ref = -np.sign(z) @ np.linalg.inv(W)
    np.testing.assert_allclose(q.score(x).detach().numpy(), score_ref, rtol=1e-10, atol=1e-12)


def test_ica_integrates_to_one_in_1d() -> None:
    q = LinearICA(torch.tensor([[-1.7]], dtype=torch.float64))

    def density(t: float) -> float:
        return math.exp(float(q.log_prob(torch.tensor([[t]], dtype=torch.float64)).detach()))

    total, err = integrate.quad(density, -np.inf, np.inf, points=None, limit=200)
    assert abs(total - 1) < 1e-7 and err < 1e-6
    # Laplace with scale |w|: p(t) = exp(-|t| / |w|) / (2 |w|).
    assert density(0.3) == pytest.approx(math.exp(-0.3 / 1.7) / 3.4, rel=1e-12)


def test_ica_integrates_to_one_in_2d() -> None:
    q = LinearICA(torch.tensor([[1.0, 0.6], [-0.4, 0.8]], dtype=torch.float64))
    # All mass beyond |x|_inf > 40 is < 1e-12 here; trapezoid error is O(h^2) away from the kinks.
    t = torch.linspace(-40, 40, 2001, dtype=torch.float64)
    xx, yy = torch.meshgrid(t, t, indexing="ij")
    dens = q.log_prob(torch.stack([xx.reshape(-1), yy.reshape(-1)], 1)).detach().exp().reshape(xx.shape)
    total = torch.trapezoid(torch.trapezoid(dens, t, dim=1), t)
    assert abs(float(total) - 1) < 2e-3


@pytest.mark.parametrize("parametrization", ["mixing", "unmixing"])
def test_ica_parameter_gradient_includes_the_moving_sign_boundaries(parametrization: str) -> None:
    # F = E_p[a . s_q(x)] for p = N(m, I) has a closed form: with R = W^{-1} = B (rows r_i),
    # E[sign(r_i . x)] = 2 Phi(r_i . m / |r_i|) - 1, so F = -sum_i (R a)_i (2 Phi(...) - 1).
    W0 = torch.tensor([[1.0, 0.6], [-0.4, 0.8]], dtype=torch.float64)
    m = torch.tensor([0.3, -0.5], dtype=torch.float64)
    a = torch.tensor([0.7, -1.1], dtype=torch.float64)

    def exact(weight: torch.Tensor) -> torch.Tensor:
        R = torch.linalg.inv(weight) if parametrization == "mixing" else weight
        return -(R @ a) @ (2 * torch.special.ndtr(R @ m / R.norm(dim=1)) - 1)

    q0 = LinearICA(W0, parametrization=parametrization)  # type: ignore[arg-type]
    weight = q0.weight.detach().clone().requires_grad_(True)
    (g_exact,) = torch.autograd.grad(exact(weight), weight)
    x = m + torch.randn(200_000, 2, generator=gen(3), dtype=torch.float64)

    def mc_grad(width: float | None) -> torch.Tensor:
        q = LinearICA(W0, boundary_width=width, parametrization=parametrization)  # type: ignore[arg-type]
        plain = LinearICA(W0, boundary_width=None, parametrization=parametrization)  # type: ignore[arg-type]
        assert torch.equal(q.score(x), plain.score(x))  # same values
        return torch.autograd.grad((q.score(x) @ a).mean(), q.weight)[0]

    # MC error of the smoothed estimate ~0.005 here; the dropped boundary term is ~0.2.
    assert float((mc_grad(0.05) - g_exact).abs().max()) < 0.02
    assert float((mc_grad(None) - g_exact).abs().max()) > 0.1
    with pytest.raises(ValueError, match="boundary_width"):
        LinearICA(W0, boundary_width=0.0)


def test_ica_unmixing_parametrization_is_the_same_density() -> None:
    q = make_ica(torch.float64)
    u = LinearICA(q.W.detach(), parametrization="unmixing")
    assert u.parametrization == "unmixing" and torch.equal(u.B, u.weight)
    torch.testing.assert_close(u.weight.detach(), torch.linalg.inv(q.W.detach()), rtol=0, atol=0)
    torch.testing.assert_close(u.W, q.W.detach(), rtol=1e-12, atol=1e-12)
    x = _points(q, n=30)
    torch.testing.assert_close(u.log_prob(x), q.log_prob(x), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(u.score(x), q.score(x), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(u.sample(7, generator=gen(4)), q.sample(7, generator=gen(4)), rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="parametrization must be"):
        LinearICA(q.W.detach(), parametrization="inverse")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unmixing matrix is singular"):
        with torch.no_grad():
            u.weight.zero_()
        u.log_prob(x)


def test_ica_sample_sources_are_laplace() -> None:
    q = make_ica(torch.float64)
    n = 20_000
    x = q.sample(n, generator=gen(12))
    assert torch.equal(x, q.sample(n, generator=gen(12)))
    z = torch.linalg.solve(q.W.detach(), x.T).T
    # |z| ~ Exponential(1): mean 1, sd 1; z has mean 0, sd sqrt(2).
    assert bool(((z.abs().mean(0) - 1).abs() < 4 / math.sqrt(n)).all())
    assert bool((z.mean(0).abs() < 4 * math.sqrt(2 / n)).all())


@pytest.mark.parametrize("dim", [2, 5, 10, 20])
def test_ica_random_condition_number(dim: int) -> None:
    q = LinearICA.random(dim, generator=gen(dim))
    assert float(torch.linalg.cond(q.W.detach().double())) < dim
    assert torch.equal(q.W, LinearICA.random(dim, generator=gen(dim)).W)
    q3 = LinearICA.random(dim, generator=gen(dim), max_condition=3 * dim)
    assert float(torch.linalg.cond(q3.W.detach().double())) <= 3 * dim


def test_ica_bad_arguments() -> None:
    with pytest.raises(ValueError, match="W must be non-singular"):
        LinearICA(torch.tensor([[1.0, 2.0], [2.0, 4.0]]))
    with pytest.raises(ValueError, match="W must be a non-empty square matrix"):
        LinearICA(torch.ones(2, 3))
    with pytest.raises(ValueError, match="max_condition must be >= 1"):
        LinearICA.random(3, max_condition=0.5)
    with pytest.raises(RuntimeError, match="raise max_condition"):
        LinearICA.random(10, max_condition=1.01, max_tries=5, generator=gen(0))
    with pytest.raises(ValueError, match="dim must be >= 1"):
        LinearICA.random(0)


# ----------------------------------------------------------------------------------------------
# Gaussian-Bernoulli RBM
# ----------------------------------------------------------------------------------------------


def _rbm_mixture(rbm: GaussianBernoulliRBM) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Exact marginal of x as a Gaussian mixture. Completing the square in x,

    ½xᵀBh + bᵀx + cᵀh − ½‖x‖² = −½‖x − m_h‖² + cᵀh + ½‖m_h‖²,  m_h = b + ½Bh,

    so p(x) = Σ_h w_h N(x; m_h, I) with w_h ∝ exp(cᵀh + ½‖m_h‖²). Returns (log w, means)."""
    B, b, c = (t.detach() for t in (rbm.B, rbm.b, rbm.c))
    hs = torch.tensor(list(itertools.product([-1.0, 1.0], repeat=rbm.hidden_dim)), dtype=B.dtype)
    means = b + 0.5 * hs @ B.T
    log_w = hs @ c + 0.5 * means.square().sum(1)
    return log_w - torch.logsumexp(log_w, 0), means


def _tiny_rbm() -> GaussianBernoulliRBM:
    return GaussianBernoulliRBM.random(2, 3, generator=gen(21), dtype=torch.float64)


def test_rbm_log_prob_is_log_of_exact_mixture_up_to_a_constant() -> None:
    rbm = _tiny_rbm()
    log_w, means = _rbm_mixture(rbm)
    x = 3 * torch.randn(200, 2, generator=gen(22), dtype=torch.float64)
    comp = -0.5 * (x[:, None, :] - means[None]).square().sum(2) - math.log(2 * math.pi)
    log_mix = torch.logsumexp(log_w + comp, 1)
    diff = rbm.log_prob(x).detach() - log_mix
    assert float(diff.max() - diff.min()) < 1e-10


def test_rbm_log_prob_is_stable_for_large_preactivations() -> None:
    rbm = GaussianBernoulliRBM(100 * torch.ones(2, 1), torch.zeros(2), torch.zeros(1))
    x = torch.tensor([[50.0, 50.0], [-50.0, -50.0]])
    lp = rbm.log_prob(x)
    # log cosh(a) = |a| - log 2 exactly in float32 for |a| = 5000.
    assert torch.allclose(lp, torch.full((2,), -2500.0 + 5000.0 - math.log(2)))


def _rank_one_rbm() -> GaussianBernoulliRBM:
    """dx=3, dh=2 with parallel columns: B^T B is singular."""
    B = torch.tensor([[1.0, -1.0], [1.0, -1.0], [-1.0, 1.0]], dtype=torch.float64)
    return GaussianBernoulliRBM(B, torch.tensor([0.3, -0.5, 0.1], dtype=torch.float64), torch.tensor([0.4, -0.2], dtype=torch.float64))


GIBBS_CASES = {
    "dx2_dh3": _tiny_rbm,  # dh >= dx: every sweep draws x
    "dx3_dh2": lambda: GaussianBernoulliRBM.random(3, 2, generator=gen(27), dtype=torch.float64),  # projected sweeps
    "dx3_dh2_rank1": _rank_one_rbm,  # projected sweeps with a singular B^T B
}


@pytest.mark.parametrize("case", GIBBS_CASES)
def test_rbm_gibbs_matches_exact_mixture_moments(case: str) -> None:
    rbm = GIBBS_CASES[case]()
    d = rbm.dim
    log_w, means = _rbm_mixture(rbm)
    w = log_w.exp()
    mu = w @ means
    cov = torch.eye(d, dtype=mu.dtype) + (means * w[:, None]).T @ means - torch.outer(mu, mu)
    n = 20_000
    x = rbm.sample(n, burn_in=200, generator=gen(23))
    assert x.shape == (n, d) and x.dtype == torch.float64 and not x.requires_grad
    se_mean = torch.sqrt(torch.diagonal(cov) / n)
    assert bool(((x.mean(0) - mu).abs() < 4 * se_mean).all()), (x.mean(0), mu)
    xc = x - mu  # centre at the exact mean: E[xc_i xc_j] = cov_ij
    for i, j in itertools.combinations_with_replacement(range(d), 2):
        prod = xc[:, i] * xc[:, j]
        se = float(prod.std()) / math.sqrt(n)
        assert abs(float(prod.mean()) - float(cov[i, j])) < 4 * se, (i, j)


def test_rbm_gibbs_float32_default_and_x0() -> None:
    rbm = GaussianBernoulliRBM.random(6, 4, generator=gen(24))
    assert rbm.B.dtype == torch.float32
    x0 = torch.randn(10, 6, generator=gen(25))
    assert torch.equal(rbm.sample(10, burn_in=0, x0=x0), x0)
    x = rbm.sample(10, burn_in=5, generator=gen(26), x0=x0)
    assert x.dtype == torch.float32 and x.shape == (10, 6)
    assert torch.equal(x0, torch.randn(10, 6, generator=gen(25)))  # x0 is not modified


def test_rbm_score_closed_form_has_half_factors() -> None:
    rbm = make_rbm(torch.float64)
    x = _points(rbm)
    B, b, c = (t.detach() for t in (rbm.B, rbm.b, rbm.c))
    ref = b - x + 0.5 * torch.tanh(0.5 * x @ B + c) @ B.T
    assert _rel_err(rbm.score(x).detach(), ref) < 1e-12


def test_rbm_random_follows_b1_recipe() -> None:
    dx, dh = 200, 100
    rbm = GaussianBernoulliRBM.random(dx, dh, generator=gen(41))
    assert (rbm.dim, rbm.hidden_dim) == (dx, dh)
    B = rbm.B.detach()
    assert bool(((B == 1) | (B == -1)).all())
    n_b = B.numel()
    assert abs(float((B == 1).float().mean()) - 0.5) < 4 * 0.5 / math.sqrt(n_b)
    for v in (rbm.b.detach(), rbm.c.detach()):
        m = v.numel()
        assert abs(float(v.mean())) < 4 / math.sqrt(m)
        assert abs(float(v.var()) - 1) < 4 * math.sqrt(2 / m)
    again = GaussianBernoulliRBM.random(dx, dh, generator=gen(41))
    assert all(torch.equal(p, q) for p, q in zip(rbm.parameters(), again.parameters()))
    assert GaussianBernoulliRBM.random(3, 2, dtype=torch.float64).B.dtype == torch.float64


def test_rbm_perturb() -> None:
    rbm = GaussianBernoulliRBM.random(200, 100, generator=gen(51))
    same = rbm.perturb(0.0, generator=gen(52))
    assert same is not rbm and torch.equal(same.B, rbm.B)
    std = 0.04
    new = rbm.perturb(std, generator=gen(53))
    delta = (new.B - rbm.B).detach()
    m = delta.numel()
    assert abs(float(delta.std()) - std) < 4 * std / math.sqrt(2 * m)
    assert abs(float(delta.mean())) < 4 * std / math.sqrt(m)
    assert torch.equal(new.b, rbm.b) and torch.equal(new.c, rbm.c)
    assert new.b.data_ptr() != rbm.b.data_ptr()  # a real copy, not shared storage
    assert torch.equal(new.B, rbm.perturb(std, generator=gen(53)).B)
    assert bool(((rbm.B == 1) | (rbm.B == -1)).all())  # the original is untouched


def test_rbm_bad_arguments() -> None:
    rbm = GaussianBernoulliRBM.random(4, 3, generator=gen(0))
    with pytest.raises(ValueError, match="std must be a finite number >= 0"):
        rbm.perturb(-0.1)
    with pytest.raises(ValueError, match="std must be a finite number >= 0"):
        rbm.perturb(float("nan"))
    with pytest.raises(TypeError, match="std must be a real number"):
        rbm.perturb("a")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"b must have shape \(4,\)"):
        GaussianBernoulliRBM(torch.ones(4, 3), torch.zeros(5), torch.zeros(3))
    with pytest.raises(ValueError, match=r"c must have shape \(3,\)"):
        GaussianBernoulliRBM(torch.ones(4, 3), torch.zeros(4), torch.zeros(2))
    with pytest.raises(ValueError, match="B must be a 2-D tensor"):
        GaussianBernoulliRBM(torch.ones(4), torch.zeros(4), torch.zeros(3))
    with pytest.raises(ValueError, match="burn_in must be >= 0"):
        rbm.sample(5, burn_in=-1)
    with pytest.raises(ValueError, match=r"x0 must have shape \(5, 4\)"):
        rbm.sample(5, x0=torch.zeros(5, 3))
    with pytest.raises(ValueError, match="dx must be >= 1"):
        GaussianBernoulliRBM.random(0, 3)


# ----------------------------------------------------------------------------------------------
# MLP energy
# ----------------------------------------------------------------------------------------------


def test_ebm_energy_log_prob_and_base() -> None:
    ebm = make_ebm(torch.float64)
    x = _points(ebm, n=10)
    base = stats.norm(ebm.mu.detach().numpy(), ebm.log_sigma.detach().exp().numpy()).logpdf(x.numpy()).sum(1)
    np.testing.assert_allclose(ebm.base_log_prob(x).detach().numpy(), base, rtol=1e-12)
    e_net = ebm.net(x).squeeze(1)
    assert torch.allclose(ebm.energy(x), e_net - ebm.base_log_prob(x))
    assert torch.equal(ebm.log_prob(x), -ebm.energy(x))


def test_ebm_init_base_sets_data_mean_and_std() -> None:
    ebm = MLPEnergy(3, hidden=8, dtype=torch.float64)
    x = torch.randn(500, 3, generator=gen(61), dtype=torch.float64) * torch.tensor([1.0, 2.0, 0.5]) + 3
    assert ebm.init_base(x) is ebm
    assert torch.allclose(ebm.mu.detach(), x.mean(0))
    assert torch.allclose(ebm.log_sigma.detach().exp(), x.std(0))
    assert ebm.mu.requires_grad and ebm.mu.grad is None


def test_ebm_max_stable_step_separates_growing_from_shrinking_sgld_chains() -> None:
    # With the network's output layer zeroed, only the base Gaussian drives the chain, and a noise-free
    # step multiplies x_i − μ_i by 1 − ε/σ_i²: just below 2·min σ² every coordinate shrinks, just above
    # the narrowest one grows without bound.
    ebm = MLPEnergy(3, hidden=8, dtype=torch.float64)
    with torch.no_grad():
        ebm.net[-1].weight.zero_()
        ebm.net[-1].bias.zero_()
        ebm.mu.copy_(torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64))
        ebm.log_sigma.copy_(torch.log(torch.tensor([0.7, 3.0, 1.5], dtype=torch.float64)))
    bound = ebm.max_stable_step()
    assert bound == pytest.approx(2 * 0.7**2, rel=1e-12)
    start = ebm.mu.detach() + torch.ones(4, 3, dtype=torch.float64)
    below = sgld(ebm.sampling_score, start, step_size=0.99 * bound, n_steps=400, noise_std=0.0).samples
    above = sgld(ebm.sampling_score, start, step_size=1.01 * bound, n_steps=400, noise_std=0.0).samples
    assert float((below - ebm.mu.detach()).abs().max()) < 1e-1
    assert float((above - ebm.mu.detach())[:, 0].abs().min()) > 1e3
    assert float((above - ebm.mu.detach())[:, 1:].abs().max()) < 1e-1


def test_ebm_score_under_no_grad_and_graph_modes() -> None:
    ebm = make_ebm(torch.float64)
    x = _points(ebm, n=10)
    s = ebm.score(x)
    assert s.requires_grad  # keeps its graph for a trainer
    with torch.no_grad():
        s0 = ebm.score(x)
    assert not s0.requires_grad and torch.allclose(s0, s.detach())
    assert all(p.grad is None for p in ebm.parameters())
    # If x requires grad, the score is differentiable in x too (second derivatives, e.g. for SSM).
    xr = x.clone().requires_grad_(True)
    (hess_diag0,) = torch.autograd.grad(ebm.score(xr)[:, 0].sum(), xr)
    assert float(hess_diag0.abs().sum()) > 0


def test_ebm_bad_arguments() -> None:
    with pytest.raises(ValueError, match="activation must be one of"):
        MLPEnergy(2, activation="sigmoidish")
    with pytest.raises(ValueError, match="hidden must be >= 1"):
        MLPEnergy(2, hidden=0)
    with pytest.raises(ValueError, match="n_layers must be >= 1"):
        MLPEnergy(2, n_layers=0)
    with pytest.raises(TypeError, match="dim must be an int"):
        MLPEnergy(2.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="x must have at least 2 rows"):
        MLPEnergy(2).init_base(torch.zeros(1, 2))
    for gain in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="first_layer_gain must be a finite number > 0"):
            MLPEnergy(2, first_layer_gain=gain)
    with pytest.raises(TypeError, match="first_layer_gain must be a real number"):
        MLPEnergy(2, first_layer_gain="3")  # type: ignore[arg-type]


def test_ebm_first_layer_gain_scales_only_the_first_layer() -> None:
    torch.manual_seed(0)
    plain = MLPEnergy(2, hidden=6)
    torch.manual_seed(0)
    sharp = MLPEnergy(2, hidden=6, first_layer_gain=3.0)
    first, *rest = [m for m in plain.net if isinstance(m, torch.nn.Linear)]
    first3, *rest3 = [m for m in sharp.net if isinstance(m, torch.nn.Linear)]
    torch.testing.assert_close(first3.weight, 3 * first.weight)
    torch.testing.assert_close(first3.bias, 3 * first.bias)
    for a, b in zip(rest, rest3):
        torch.testing.assert_close(a.weight, b.weight)
        torch.testing.assert_close(a.bias, b.bias)
    # the gained network is the plain one evaluated at 3x with its biases scaled alike
    x = torch.randn(5, 2)
    torch.testing.assert_close(sharp.net(x), plain.net[1:](first(3 * x) + 2 * first.bias))


@pytest.mark.parametrize("activation", ["swish", "relu", "elu", "softplus", "tanh"])
def test_ebm_activations_and_depth(activation: str) -> None:
    ebm = MLPEnergy(4, hidden=5, n_layers=3, activation=activation)
    assert sum(isinstance(m, torch.nn.Linear) for m in ebm.net) == 4
    assert ebm.score(torch.randn(3, 4)).shape == (3, 4)


# ----------------------------------------------------------------------------------------------
# The NumPy reference sampler of benchmarks/gibbs_numpy_reference.py samples the same chain.
# ----------------------------------------------------------------------------------------------


def _load_benchmark():  # type: ignore[no-untyped-def]
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "gibbs_numpy_reference.py"
    spec = importlib.util.spec_from_file_location("gibbs_numpy_reference", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("legacy", [True, False])
def test_numpy_reference_gibbs_matches_exact_mixture_mean(legacy: bool) -> None:
    bench = _load_benchmark()
    rbm = _tiny_rbm()
    log_w, means = _rbm_mixture(rbm)
    w = log_w.exp()
    mu = (w @ means).numpy()
    var = (1 + w @ means.square() - torch.from_numpy(mu).square()).numpy()
    n = 20_000
    B, b, c = (p.detach().numpy() for p in (rbm.B, rbm.b, rbm.c))
    x = bench.numpy_gibbs(B, b, c, n, 100, seed=5, legacy=legacy)
    assert x.shape == (n, 2)
    assert np.all(np.abs(x.mean(0) - mu) < 4 * np.sqrt(var / n))


def test_bench_gibbs_smoke() -> None:
    res = _load_benchmark().bench_gibbs(n=20, dx=4, dh=3, steps=5)
    assert {"gibbs_speedup", "steinkit_s", "numpy_s"} <= set(res)
    assert res["gibbs_speedup"] > 0 and res["steinkit_s"] > 0 and res["numpy_s"] > 0


# ----------------------------------------------------------------------------------------------
# Logic the models own (issue 11): RBM visible mean, logistic ICA sources, EBM sampling score.
# ----------------------------------------------------------------------------------------------


def test_rbm_visible_mean_averages_to_the_conditional_mean() -> None:
    """E[b + B h / 2 | x] = b + B tanh(B^T x / 2 + c) / 2, since E[h_j | x] = tanh(a_j)."""
    rbm = make_rbm(torch.float64)
    x = _points(rbm, n=3).repeat(20000, 1)
    draws = rbm.visible_mean(x, generator=gen(8)).reshape(20000, 3, rbm.dim)
    a = 0.5 * _points(rbm, n=3) @ rbm.B.detach() + rbm.c.detach()
    exact = rbm.b.detach() + 0.5 * torch.tanh(a) @ rbm.B.detach().T
    stderr = draws.std(0) / math.sqrt(20000)
    assert bool(((draws.mean(0) - exact).abs() < 5 * stderr + 1e-12).all())
    # every draw is b + B h / 2 for some h in {-1, +1}^dh
    h = 2.0 * torch.linalg.lstsq(rbm.B.detach(), (draws[0] - rbm.b.detach()).T).solution.T
    assert torch.allclose(h.abs(), torch.ones_like(h), atol=1e-6)


def test_rbm_visible_mean_is_seeded_and_checks_x() -> None:
    rbm = make_rbm(torch.float32)
    x = _points(rbm, n=4)
    assert torch.equal(rbm.visible_mean(x, generator=gen(1)), rbm.visible_mean(x, generator=gen(1)))
    with pytest.raises(ValueError, match=r"x must be a 2-D tensor \(n, 5\)"):
        rbm.visible_mean(torch.zeros(4, 3))


def test_logistic_ica_log_prob_score_and_samples_in_closed_form() -> None:
    q = make_ica_logistic(torch.float64)
    x = _points(q)
    z = torch.linalg.solve(q.W.detach(), x.T).T
    log_pz = (-z - 2.0 * torch.log1p(torch.exp(-z))).sum(1)  # Logistic(0, 1) density
    exact = log_pz - torch.linalg.slogdet(q.W.detach()).logabsdet
    assert _rel_err(q.log_prob(x), exact) < 1e-10
    exact_score = -torch.linalg.solve(q.W.detach().T, torch.tanh(z / 2).T).T
    assert _rel_err(q.score(x), exact_score) < 1e-10
    sources = torch.linalg.solve(q.W.detach(), q.sample(40000, generator=gen(9)).T).T
    ks = stats.kstest(sources[:, 0].numpy(), stats.logistic.cdf)
    assert ks.pvalue > 1e-3
    assert "sources='logistic'" in repr(q)


def test_logistic_ica_is_normalized() -> None:
    q = LinearICA(torch.tensor([[2.0]], dtype=torch.float64), sources="logistic")
    xs = torch.linspace(-60, 60, 24001, dtype=torch.float64)[:, None]
    mass = float(q.log_prob(xs).detach().exp().sum() * (xs[1, 0] - xs[0, 0]))
    assert abs(mass - 1.0) < 1e-6


def test_ica_sources_must_be_known() -> None:
    with pytest.raises(ValueError, match="sources must be one of"):
        LinearICA(torch.eye(2), sources="gaussian")


def test_ebm_sampling_score_is_the_score_without_a_graph() -> None:
    ebm = make_ebm(torch.float64)
    x = _points(ebm).requires_grad_(True)
    fast = ebm.sampling_score(x)
    assert not fast.requires_grad
    assert torch.allclose(fast, ebm.score(x).detach(), rtol=0, atol=1e-12)


def test_ebm_initial_weights_can_come_from_a_generator() -> None:
    one = MLPEnergy(3, hidden=16, generator=gen(5))
    two = MLPEnergy(3, hidden=16, generator=gen(5))
    other = MLPEnergy(3, hidden=16, generator=gen(6))
    for a, b, c in zip(one.parameters(), two.parameters(), other.parameters()):
        assert torch.equal(a, b)
    assert not torch.equal(one.net[0].weight, other.net[0].weight)
    for layer in (m for m in one.net if isinstance(m, torch.nn.Linear)):  # PyTorch's default bounds
        bound = 1 / math.sqrt(layer.in_features)
        assert layer.weight.abs().max().item() <= bound and layer.bias.abs().max().item() <= bound
    gained = MLPEnergy(3, hidden=16, first_layer_gain=3.0, generator=gen(5))
    assert torch.allclose(gained.net[0].weight, 3 * one.net[0].weight)
    with pytest.raises(TypeError, match="generator"):
        MLPEnergy(3, generator=5)

"""Every problem family passes one contract: p's score is the gradient of its log-density, its
draws satisfy Stein's identity and their known moments, its model works with ``sk.as_score``,
nulls have zero Fisher divergence, and a seed reproduces the draws."""

from __future__ import annotations

import math

import pytest
import torch

import steinkit as sk
from steinkit import problems as P

# one small instance of every family (and of every null the power panel uses)
CASES = {
    "gaussian-mean": lambda: P.gaussian_mean(3, 1.0),
    "gaussian-scale": lambda: P.gaussian_scale(3, 1.5),
    "gaussian-correlation": lambda: P.gaussian_correlation(3, 0.3),
    "gaussian-diagonal": lambda: P.gaussian_diagonal(3, 2.0),
    "gaussian-ar1-data": lambda: P.gaussian_ar1(4, 0.5),
    "gaussian-ar1-model": lambda: P.gaussian_ar1(4, 0.5, side="model"),
    "rbm": lambda: P.rbm(4, 3, sigma=0.5, burn_in=200),
    "student-t": lambda: P.student_t(3, 6.0),
    "student-t-correlated": lambda: P.student_t(3, 6.0, rho=0.5),
    "laplace": lambda: P.laplace(3),
    "mixture": lambda: P.mixture(2, 3.0),
    "heavy-model": lambda: P.heavy_model(3, 5.0),
    "banana": lambda: P.banana(3, 0.7),
    "funnel": lambda: P.funnel(3, 0.8),
    "skew-normal": lambda: P.skew_normal(3, 3.0),
    "sinh-arcsinh": lambda: P.sinh_arcsinh(3, 0.5, 0.8),
    "sinh-arcsinh-light": lambda: P.sinh_arcsinh(2, -0.3, 1.5),
    "sin-perturbed": lambda: P.sin_perturbed(3, 0.8, 2.0),
    "mixture-weights": lambda: P.mixture_weights(2, 1.0),
    "mixture-missing": lambda: P.mixture_missing(3, 0.2),
    "null-ar1": lambda: P.null(4, "gaussian-ar1", rho=0.5),
    "null-banana": lambda: P.null(3, "banana", curvature=1.0),
    "null-funnel": lambda: P.null(3, "funnel", strength=1.0),
    "null-student-t": lambda: P.null(3, "student-t", nu=4.0, rho=0.3),
    "null-mixture": lambda: P.null(2, "mixture-weights", tilt=0.0),
    "null-skew": lambda: P.null(3, "skew-normal", alpha=3.0),
    "null-rbm": lambda: P.rbm(4, 3, sigma=0.0, burn_in=200),
    "mixture-weights-0": lambda: P.mixture_weights(2, 0.0),
    "mixture-missing-0": lambda: P.mixture_missing(2, 0.0),
}
NULLS = {k for k in CASES if k.startswith("null") or k.endswith("-0")}


@pytest.fixture(params=sorted(CASES), scope="module")
def case(request):
    return request.param, CASES[request.param]()


def test_every_family_is_covered():
    covered = {CASES[k]().family for k in CASES}
    assert covered == set(P.FAMILIES)


def _autograd(log_prob, x: torch.Tensor) -> torch.Tensor:
    x = x.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(log_prob(x).sum(), x)
    return g


def test_data_score_is_the_gradient_of_its_log_density(case):
    _, prob = case
    x = prob.sample(200, seed=1, dtype=torch.float64)
    if prob.family == "laplace":
        x = x[(x.abs() > 1e-9).all(1)]            # the score is the gradient almost everywhere
    torch.testing.assert_close(prob.data.score(x), _autograd(prob.data.log_prob, x), rtol=1e-9, atol=1e-9)


def test_model_works_with_as_score_and_matches_its_log_density(case):
    _, prob = case
    x = prob.sample(100, seed=2)                  # float32, as the tests get it
    score = sk.as_score(prob.model)
    s = score(x)
    assert s.shape == x.shape and bool(torch.isfinite(s).all())
    if hasattr(prob.model, "log_prob"):
        torch.testing.assert_close(s, _autograd(prob.model.log_prob, x), rtol=1e-4, atol=1e-4)


def test_draws_satisfy_steins_identity(case):
    """E_p[s_p(x)] = 0 and E_p[s_p(x) xᵀ] = −I: the sampler and the score describe one distribution."""
    _, prob = case
    n = 100_000 if prob.family != "rbm" else 20_000
    x = prob.sample(n, seed=3, dtype=torch.float64)
    s = prob.data.score(x)
    se = s.std(0) / math.sqrt(n)
    assert bool(((s.mean(0)).abs() <= 5 * se + 1e-3).all()), s.mean(0)
    cross = (s[:, :, None] * x[:, None, :]).mean(0)
    cross_se = (s[:, :, None] * x[:, None, :]).std(0) / math.sqrt(n)
    eye = torch.eye(prob.d, dtype=torch.float64)
    assert bool(((cross + eye).abs() <= 5 * cross_se + 2e-3).all()), cross


def _moments(prob: P.Problem) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The known mean and covariance of p, where the family states them."""
    d, eye, zero = prob.d, torch.eye(prob.d, dtype=torch.float64), torch.zeros(prob.d, dtype=torch.float64)
    data = prob.data
    if isinstance(data, (P.SkewNormal, P.SinhArcsinh, P.Laplace, P.StudentT)):
        return zero, eye
    if isinstance(data, P.LinearMap):
        return zero, data.L @ data.L.T
    if isinstance(data, P.Banana):
        cov = eye.clone()
        cov[1, 1] = 1 + 2 * data.b**2
        return zero, cov
    if isinstance(data, P.Funnel):
        cov = eye.clone()
        cov[1, 1] = math.exp(data.a**2 / 2)
        return zero, cov
    if isinstance(data, P.SinPerturbed):
        mean = zero.clone()
        mean[0] = data.eps * data.omega * math.exp(-data.omega**2 / 2)
        return mean, eye - torch.outer(mean, mean)
    if isinstance(data, P.GaussianMixture):
        mean = data.weights @ data.means
        second = (data.weights[:, None, None] * data.means[:, :, None] * data.means[:, None, :]).sum(0)
        return mean, eye * data.sigma**2 + second - torch.outer(mean, mean)
    if isinstance(data, sk.models.Gaussian):
        return data.mean.detach(), data.cov.detach()
    return None


def test_draws_have_the_known_mean_and_covariance(case):
    _, prob = case
    known = _moments(prob)
    if known is None:
        pytest.skip("no closed-form moments (RBM)")
    mean, cov = known
    x = prob.sample(200_000, seed=4, dtype=torch.float64)
    tol = 0.03 * max(1.0, float(cov.diagonal().max()))
    torch.testing.assert_close(x.mean(0), mean, rtol=0, atol=tol)
    torch.testing.assert_close(torch.cov(x.T).reshape(prob.d, prob.d), cov, rtol=0, atol=3 * tol)


def test_nulls_have_zero_fisher_divergence_and_the_others_do_not(case):
    name, prob = case
    x = prob.sample(2000, seed=5, dtype=torch.float64)
    with torch.no_grad():
        gap = (sk.as_score(prob.model)(x.float()).double() - prob.data.score(x)).pow(2).sum(1).mean()
    if name in NULLS:
        assert prob.null and prob.fisher_divergence() == 0.0
        assert float(gap) < 1e-6
    else:
        assert not prob.null and float(gap) > 1e-3


def test_a_seed_reproduces_the_draws(case):
    _, prob = case
    a, b, c = (prob.sample(50, seed=s) for s in (7, 7, 8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    g1, g2 = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    assert torch.equal(prob.sample(20, generator=g1), prob.sample(20, generator=g2))


def test_sinh_arcsinh_moments_match_the_closed_form():
    """Jones & Pewsey's standardization: the raw y = sinh((asinh z + ε)/δ) has the stated mean and sd."""
    p = P.SinhArcsinh(1, 0.7, 0.6)
    z = torch.randn(400_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    y = torch.sinh((torch.asinh(z) + 0.7) / 0.6)
    assert abs(float(y.mean()) - p.mean) < 0.02 and abs(float(y.std()) - p.std) / p.std < 0.03


def test_the_strength_moves_the_fisher_divergence_away_from_zero():
    weak, strong = P.banana(4, 0.2), P.banana(4, 1.0)
    assert 0 < weak.fisher_divergence(n_mc=20_000) < strong.fisher_divergence(n_mc=20_000)
    assert P.gaussian_ar1(5, 0.0).exact_fisher == 0.0


@pytest.mark.parametrize("call, match", [
    (lambda: P.banana(1, 1.0), "d must be at least 2"),
    (lambda: P.funnel(1, 1.0), "d must be at least 2"),
    (lambda: P.sin_perturbed(2, 1.5), "eps must lie"),
    (lambda: P.gaussian_ar1(3, 1.0), "rho must lie"),
    (lambda: P.gaussian_ar1(3, 0.2, side="both"), "side"),
    (lambda: P.mixture_missing(2, 1.0), "weight must lie"),
    (lambda: P.mixture_weights(2, 1.0, modes=5), "modes must be at most"),
    (lambda: P.student_t(3, 4.0, rho=-0.1), "rho"),
    (lambda: P.sinh_arcsinh(2, 0.0, -1.0), "tail"),
    (lambda: P.null(2, "nope"), "of must name a family"),
])
def test_bad_parameters_name_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()

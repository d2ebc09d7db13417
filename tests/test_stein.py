"""Stein identity, optimal critic and closed-form discrepancies (exact answers)."""

import math

import pytest
import torch

import steinkit as sk

from helpers import gen

F64 = torch.float64


@pytest.mark.parametrize("trace", ["exact", "hutchinson"])
def test_stein_identity_holds_for_p_equal_q(trace):
    """E_p[s_p·f + tr ∇f] = 0 for any critic: the mean is within 4 standard errors of 0."""
    d, n = 5, 20000
    x = torch.randn(n, d, generator=gen(0), dtype=F64)
    critic = sk.MLPCritic(d, 32, generator=gen(1), dtype=F64).eval()
    with torch.no_grad():
        terms, _ = sk.stein_terms(critic, x, -x, trace=trace, generator=gen(2))
    stderr = terms.std() / math.sqrt(n)
    assert abs(float(terms.mean())) < 4 * float(stderr)


def test_stein_identity_detects_a_wrong_model():
    d, n = 5, 20000
    x = torch.randn(n, d, generator=gen(0), dtype=F64)
    critic = lambda z: torch.ones_like(z)  # noqa: E731
    terms, _ = sk.stein_terms(critic, x, -(x - 0.1), trace="exact")
    assert float(terms.mean()) > 0.4  # exactly d * 0.1 = 0.5 in expectation


def test_generic_traces_on_a_linear_map():
    a = torch.randn(4, 4, generator=gen(0), dtype=F64)
    x = torch.randn(6, 4, generator=gen(1), dtype=F64)
    tr, _ = sk.exact_trace(lambda z: z @ a.T, x)
    torch.testing.assert_close(tr, torch.full((6,), float(torch.trace(a)), dtype=F64))
    probes = torch.randn(3000 * 6, 4, generator=gen(2), dtype=F64)
    est, _ = sk.hutchinson_trace(lambda z: z @ a.T, x, probes=probes)
    per_probe = ((probes @ a.T) * probes).sum(1)
    assert abs(float(est.mean() - torch.trace(a))) < 4 * float(per_probe.std()) / math.sqrt(len(probes))


def test_optimal_critic_attains_the_closed_form_lsd():
    """For p = N(0, I), q = N(μ, I): f* = (s_q − s_p)/(2λ) = μ/(2λ), LSD(f*) = ‖μ‖²/(2λ)."""
    d, n, lam = 4, 50000, 0.5
    mu = torch.tensor([0.3, -0.2, 0.1, 0.5], dtype=F64)
    x = torch.randn(n, d, generator=gen(0), dtype=F64)
    s_q, s_p = -(x - mu), -x
    f_star = sk.optimal_critic(lambda z: -(z - mu), lambda z: -z, lam)
    with torch.no_grad():
        terms, _ = sk.stein_terms(f_star, x, s_q, trace="exact")
    truth = float(mu @ mu) / (2 * lam)
    assert abs(float(terms.mean()) - truth) < 4 * float(terms.std()) / math.sqrt(n)
    torch.testing.assert_close(float(sk.optimal_lsd(s_q, s_p, lam)), truth)
    torch.testing.assert_close(float(sk.fisher_divergence(s_q, s_p)), float(mu @ mu))


def test_optimal_critic_maximises_the_penalised_objective():
    """J(c f*) = c L* − c² L*/2 peaks at c = 1 with value L*/2."""
    d, n, lam = 3, 20000, 0.25
    x = torch.randn(n, d, generator=gen(0), dtype=F64)
    s_q = -x / 2.0  # q = N(0, 2I)
    f_star = sk.optimal_critic(lambda z: -z / 2.0, lambda z: -z, lam)
    values = []
    for c in [0.5, 1.0, 1.5]:
        terms, f = sk.stein_terms(lambda z: c * f_star(z), x, s_q, trace="exact")
        values.append(float((terms.mean() - lam * f.pow(2).sum(1).mean()).detach()))
    assert values[1] > values[0] and values[1] > values[2]


def test_lam_must_be_positive():
    with pytest.raises(ValueError, match="lam"):
        sk.optimal_critic(lambda z: z, lambda z: z, 0.0)
    with pytest.raises(ValueError, match="lam"):
        sk.optimal_lsd(torch.zeros(2, 2), torch.zeros(2, 2), -1.0)


def test_critic_objective_formulas_and_ensemble_axis():
    terms = torch.randn(3, 50, generator=gen(0), dtype=F64)
    f = torch.randn(3, 50, 2, generator=gen(1), dtype=F64)
    penalty = 0.3 * (f**2).sum(-1).mean(-1)
    lsd = sk.critic_objective(terms, f, 0.3)
    power = sk.critic_objective(terms, f, 0.3, objective="power")
    torch.testing.assert_close(lsd, terms.mean(-1) - penalty)
    torch.testing.assert_close(power, terms.mean(-1) / (terms.std(-1) + 1e-6) - penalty)
    assert lsd.shape == (3,) and sk.critic_objective(terms[0], f[0], 0.3).shape == ()
    with pytest.raises(ValueError, match="objective must be one of"):
        sk.critic_objective(terms, f, 0.3, objective="mean")


def test_critic_objective_at_the_optimal_critic_is_the_closed_form():
    """At f* = (s_q − s_p)/(2λ) the penalised objective is E_p‖s_q − s_p‖²/(4λ)."""
    d, n, lam = 3, 200000, 0.5
    x = torch.randn(n, d, generator=gen(2), dtype=F64)  # p = N(0, I), q = N(mu, I)
    mu = torch.tensor([0.5, -0.25, 0.0], dtype=F64)
    f_star = sk.optimal_critic(lambda z: -(z - mu), lambda z: -z, lam)
    terms, f = sk.stein_terms(f_star, x, -(x - mu), trace="exact")
    value = float(sk.critic_objective(terms.detach(), f.detach(), lam))
    assert value == pytest.approx(float(mu @ mu) / (4 * lam), rel=0.02)


class _CountingCritic:
    """A critic with fused Stein terms of its own: f(x) = -x, tr ∇f = -d."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, x):
        return -x

    def stein_terms(self, x, scores, *, trace="hutchinson", n_probes=1, probes=None, generator=None):
        self.calls += 1
        return (scores * -x).sum(-1) - x.shape[-1], -x


def test_stein_terms_dispatches_on_the_protocol_not_a_class():
    critic = _CountingCritic()
    assert isinstance(critic, sk.FusedSteinCritic)
    assert isinstance(sk.MLPCritic(2, 4), sk.FusedSteinCritic)
    assert not isinstance(lambda z: z, sk.FusedSteinCritic)
    x = torch.randn(5, 3, generator=gen(0))
    fused, _ = sk.stein_terms(critic, x, -x)
    generic, _ = sk.stein_terms(lambda z: -z, x, -x, trace="exact")
    assert critic.calls == 1
    torch.testing.assert_close(fused, generic)

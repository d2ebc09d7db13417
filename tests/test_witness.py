"""Witnesses: the returned critics are the ones the results were computed with, they point where
the model is wrong (against the closed-form optimal critic), pictures, bad input."""

import pytest
import torch

import steinkit as sk
from steinkit.splits import split_data
from steinkit.witness_plots import image_shape, plot_field, plot_images

from helpers import gen

FAST = dict(n_iters=100, hidden=16, val_every=50)


def test_critic_field_matches_the_optimal_critic_for_a_wrong_mean():
    """Data N(0, I_10), model N(m, I_10): f* = (s_q − s_p)/(2λ) = m/(2λ). The learned field's
    cosine similarity with f* on fresh points (the L2 inner product over the points) is >= .9."""
    d, lam = 10, 0.5
    m = torch.linspace(-0.6, 0.6, d)
    model = sk.models.Gaussian(m, torch.eye(d))
    est = sk.stein_discrepancy(model, torch.randn(1000, d, generator=gen(0)), n_iters=300, hidden=64,
                               val_every=50, return_critic=True)
    fresh = torch.randn(2000, d, generator=gen(1))
    field = sk.witness(est, fresh).field.double()
    optimal = sk.optimal_critic(model.score, lambda x: -x, lam)(fresh).detach().double()
    cosine = float((field * optimal).sum() / (field.norm() * optimal.norm()))
    assert cosine >= 0.9


def test_estimate_critic_reproduces_the_estimate_on_its_test_split():
    x = torch.randn(300, 2, generator=gen(2)) + 0.5
    est = sk.stein_discrepancy(sk.models.Gaussian(torch.zeros(2), torch.eye(2)), x, seed=3, return_critic=True,
                               folds=1, **FAST)   # one split: the critic's terms on its test split give est.mean
    test = split_data(x, sk.ESTIMATE.split, generator=gen(3))[2]
    w = sk.witness(est, test)
    assert float(w.terms.double().mean()) == pytest.approx(est.mean, rel=1e-5)
    assert est.critic.iteration == est.best_iteration and est.critic.lam == 0.5
    assert w.magnitude.shape == (30,) and w.bound.shape == (30,)


@pytest.mark.parametrize("protocol", ["aggregated", "paper"])
def test_lsd_test_critic_reproduces_the_statistic(protocol):
    """The aggregated test returns the critic of its largest statistic; the paper's, its selected one."""
    x = torch.randn(400, 2, generator=gen(4)) + 0.4
    res = sk.gof_test(sk.models.Gaussian(torch.zeros(2), torch.eye(2)), x, seed=1, protocol=protocol,
                      return_critic=True, **FAST)
    split = (sk.LEARNED_TEST if protocol == "aggregated" else sk.TEST).split
    terms = sk.witness(res, split_data(x, split, generator=gen(1))[2]).terms.double()
    assert float(terms.mean() / terms.std() * len(terms) ** 0.5) == pytest.approx(res.statistic, rel=1e-4)
    assert res.critic.iteration == res.details["best_iteration"]


def test_compare_rows_carry_their_critics():
    x = torch.randn(200, 2, generator=gen(5))
    rows = sk.compare({"a": sk.models.Gaussian(torch.zeros(2), torch.eye(2))}, x, return_critic=True, **FAST)
    assert isinstance(rows[0].estimate.critic, sk.FittedCritic)
    assert sk.compare({"a": sk.models.Gaussian(torch.zeros(2), torch.eye(2))}, x, **FAST)[0].estimate.critic is None


def test_witness_errors_name_what_to_do():
    x = torch.randn(200, 2, generator=gen(6))
    model = sk.models.Gaussian(torch.zeros(2), torch.eye(2))
    with pytest.raises(ValueError, match="return_critic=True"):
        sk.witness(sk.stein_discrepancy(model, x, **FAST), x)
    with pytest.raises(TypeError, match="critic_a or result.critic_b"):
        sk.witness(sk.relative_test(model, model, x, **FAST), x)
    with pytest.raises(TypeError, match="result must be a FittedCritic.*got type str"):
        sk.witness("critic", x)
    with pytest.raises(TypeError, match="return_critic applies to method='lsd'"):
        sk.gof_test(model, x, method="ksd", return_critic=True)
    est = sk.stein_discrepancy(model, x, return_critic=True, **FAST)
    with pytest.raises(ValueError, match="x must have 2 columns|dimension"):
        sk.witness(est, torch.randn(5, 3))


def test_pictures_are_written(tmp_path):
    x = torch.randn(200, 2, generator=gen(7))
    est = sk.stein_discrepancy(sk.models.Gaussian(torch.ones(2), torch.eye(2)), x, return_critic=True, **FAST)
    assert plot_field({"shifted": est.critic, "again": est.critic}, x, tmp_path / "f.png").stat().st_size > 0
    images = torch.rand(200, 16, generator=gen(8))
    est = sk.stein_discrepancy(sk.models.Gaussian(torch.zeros(16), torch.eye(16)), images, return_critic=True,
                               **FAST)
    assert plot_images(sk.witness(est, images), tmp_path / "i.png", k=5).stat().st_size > 0
    with pytest.raises(ValueError, match="not a square number"):
        image_shape(15)
    with pytest.raises(TypeError, match="critics must be a FittedCritic"):
        plot_field({"a": 1}, x, tmp_path / "g.png")

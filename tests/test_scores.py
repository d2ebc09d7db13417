"""as_score: every kind of model gives the same checked score function."""

import numpy as np
import pytest
import torch
from torch import nn

import steinkit as sk
from steinkit.validation import as_data

from helpers import gen

F64 = torch.float64


def gaussian_score(x, mean, prec):
    return -(x - mean) @ prec


@pytest.fixture
def setup():
    d = 3
    mean = torch.randn(d, generator=gen(0), dtype=F64)
    a = torch.randn(d, d, generator=gen(1), dtype=F64)
    cov = a @ a.T + d * torch.eye(d, dtype=F64)
    x = torch.randn(7, d, generator=gen(2), dtype=F64)
    return mean, cov, x


def test_distribution(setup):
    mean, cov, x = setup
    dist = torch.distributions.MultivariateNormal(mean, cov)
    torch.testing.assert_close(sk.as_score(dist)(x), gaussian_score(x, mean, torch.linalg.inv(cov)))


def test_batched_scalar_distribution_sums_coordinates():
    x = torch.randn(5, 2, generator=gen(0))
    dist = torch.distributions.Normal(torch.tensor([0.0, 1.0]), torch.tensor([1.0, 2.0]))
    torch.testing.assert_close(sk.as_score(dist)(x), -(x - torch.tensor([0.0, 1.0])) / torch.tensor([1.0, 4.0]))


def test_object_with_score_and_log_prob_and_energy_and_callable(setup):
    mean, cov, x = setup
    prec = torch.linalg.inv(cov)
    expected = gaussian_score(x, mean, prec)

    class WithScore:
        def score(self, z):
            return gaussian_score(z, mean, prec)

    class WithLogProb:
        def log_prob(self, z):
            return -0.5 * (((z - mean) @ prec) * (z - mean)).sum(1)

    class Energy(nn.Module):
        def forward(self, z):
            return 0.5 * (((z - mean) @ prec) * (z - mean)).sum(1)

    for model in [WithScore(), WithLogProb(), Energy(), lambda z: gaussian_score(z, mean, prec)]:
        torch.testing.assert_close(sk.as_score(model)(x), expected)


def test_score_keeps_graph_only_when_asked():
    energy = nn.Linear(2, 1, bias=False)
    score = sk.as_score(lambda z: energy(z).squeeze(1))  # a plain callable returning (n,): a log-density
    torch.testing.assert_close(score(torch.zeros(3, 2)), energy.weight.detach().expand(3, 2))
    assert "log-density" in score.source
    class E(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(2, 1)

        def forward(self, z):
            return (self.lin(z) ** 2).squeeze(1)

    e = E()
    x = torch.randn(4, 2, generator=gen(0))
    with torch.no_grad():
        assert not sk.as_score(e)(x).requires_grad
    xg = x.clone().requires_grad_(True)
    s = sk.as_score(e)(xg)
    assert s.requires_grad  # differentiable for training (e.g. score matching)


def test_plain_log_density_function_is_differentiated():
    mean = torch.tensor([1.0, -2.0])
    log_q = lambda z: -0.5 * ((z - mean) ** 2).sum(1)  # noqa: E731 - one value per row: log q
    x = torch.randn(5, 2, generator=gen(3))
    score = sk.as_score(log_q)
    torch.testing.assert_close(score(x), -(x - mean))
    torch.testing.assert_close(score(x + 1.0), -(x + 1.0 - mean))  # the kind is kept after the first call
    assert "log-density function <lambda>" in repr(score)


def test_wrong_shape_and_nonfinite_scores_raise():
    with pytest.raises(ValueError, match="score .* shape"):
        sk.as_score(lambda z: z[:, :1])(torch.zeros(3, 2))
    with pytest.raises(ValueError, match="NaN or inf"):
        sk.as_score(lambda z: z / 0.0)(torch.zeros(3, 2))


def test_model_dimension_is_checked():
    model = sk.models.Gaussian(torch.zeros(3), torch.eye(3))
    with pytest.raises(ValueError, match="x has dimension 2 but the model"):
        sk.as_score(model)(torch.zeros(4, 2))


def test_not_a_model():
    with pytest.raises(TypeError, match="model must be"):
        sk.as_score(42)


@pytest.mark.parametrize(
    "bad, match",
    [
        (torch.tensor([[0.0, float("nan")]]), "NaN or inf"),
        (torch.tensor([[0.0, float("inf")]]), "NaN or inf"),
        (torch.zeros(3), "2-D"),
        (torch.zeros(2, 3, 4), "2-D"),
        ("abc", "x must be"),
    ],
)
def test_as_data(bad, match):
    with pytest.raises((ValueError, TypeError), match=match):
        as_data(bad)


def test_as_data_converts_numpy_and_ints():
    assert as_data(np.ones((2, 3))).dtype == torch.float64
    assert as_data(np.ones((2, 3), dtype=np.int64)).dtype == torch.float32

"""The level-corrected maximum of studentised statistics (gof/aggregate.py) against exact answers."""

import math

import pytest
import torch
from scipy.stats import norm

from steinkit.gof.aggregate import max_normal_pvalue, max_t_pvalue, studentised

from helpers import gen


def test_one_statistic_gets_the_normal_tail():
    terms = torch.randn(1, 400, generator=gen(0), dtype=torch.float64) + 0.1
    t_max, p, t = max_t_pvalue(terms)
    assert t_max == pytest.approx(math.sqrt(400) * float(terms.mean()) / float(terms.std()))
    assert p == pytest.approx(norm.sf(t_max), rel=1e-12)


def test_identical_statistics_cost_no_correction():
    row = torch.randn(1, 300, generator=gen(1), dtype=torch.float64) + 0.15
    _, p_one, _ = max_t_pvalue(row)
    _, p_four, _ = max_t_pvalue(row.repeat(4, 1), generator=gen(2), n_draws=200000)
    assert p_four == pytest.approx(p_one, abs=4 * math.sqrt(p_one / 200000) + 1e-5)


def test_independent_statistics_get_the_sidak_correction():
    terms = torch.randn(3, 2000, generator=gen(3), dtype=torch.float64)
    terms[0] += 0.06
    t_max, p, _ = max_t_pvalue(terms, generator=gen(4), n_draws=200000)
    # nearly uncorrelated rows: P(max of 3 independent N(0,1) >= t) = 1 - Φ(t)^3
    exact = 1 - norm.cdf(t_max) ** 3
    assert p == pytest.approx(exact, rel=0.1)


def test_weights_split_the_level_in_proportion():
    z, eye = torch.tensor([2.1, 1.4, 0.3], dtype=torch.float64), torch.eye(3, dtype=torch.float64)
    # equal weights are the maximum itself, draw for draw
    assert max_normal_pvalue(z, eye, weights=torch.full((3,), 7.0, dtype=torch.float64), generator=gen(8)) == \
        max_normal_pvalue(z, eye, generator=gen(8))
    # independent statistics: P(min Φ̄(Z_i)/ν_i ≤ c) = 1 − Π(1 − c·ν_i), c the observed minimum
    nu = torch.tensor([0.6, 0.3, 0.1], dtype=torch.float64)
    stat, p = max_normal_pvalue(z, eye, weights=nu, generator=gen(9), n_draws=400000)
    c = float((torch.special.ndtr(-z) / nu).min())
    exact = 1 - float(torch.prod(1 - (c * nu).clamp(max=1)))
    assert stat == 2.1 and p == pytest.approx(exact, abs=4 * math.sqrt(exact / 400000))
    # the share follows the weight: a statistic with a large share rejects where the maximum does not
    z = torch.tensor([2.2, 0.0, 0.0, 0.0, 0.0, 0.0], dtype=torch.float64)
    heavy = torch.tensor([5.0, 1.0, 1.0, 1.0, 1.0, 1.0], dtype=torch.float64)
    eye = torch.eye(6, dtype=torch.float64)
    assert max_normal_pvalue(z, eye, generator=gen(10))[1] > 0.05 > \
        max_normal_pvalue(z, eye, weights=heavy, generator=gen(10))[1]
    with pytest.raises(ValueError, match="weights must be"):
        max_normal_pvalue(z, eye, weights=torch.zeros(6, dtype=torch.float64))


def test_p_values_are_uniform_under_the_null():
    # 400 null problems of 3 correlated statistics each: the p-values' rejection rate at .1
    g = gen(5)
    base = torch.randn(400, 1, 500, generator=g, dtype=torch.float64)
    terms = 0.8 * base + 0.6 * torch.randn(400, 3, 500, generator=g, dtype=torch.float64)
    ps = torch.tensor([max_t_pvalue(t, generator=g, n_draws=4000)[1] for t in terms])
    rate = float((ps <= 0.1).double().mean())
    assert abs(rate - 0.1) < 3 * math.sqrt(0.09 / 400)


def test_degenerate_rows_and_bad_shapes():
    assert studentised(torch.zeros(2, 5, dtype=torch.float64)).tolist() == [0.0, 0.0]
    terms = torch.cat([torch.zeros(1, 50, dtype=torch.float64), torch.randn(1, 50, generator=gen(6)).double()])
    t_max, p, _ = max_t_pvalue(terms, generator=gen(7))
    assert 0 < p <= 1 and math.isfinite(t_max)
    with pytest.raises(ValueError, match="terms must be"):
        max_t_pvalue(torch.zeros(5))
    with pytest.raises(ValueError, match="n_draws"):
        max_t_pvalue(torch.zeros(2, 5), n_draws=0)

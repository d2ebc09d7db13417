"""The sequential witness test (gof/sequential.py) against exact answers and by simulation."""

import math

import pytest
import torch

from steinkit.gof.sequential import sequential_witness_test, witness_terms
from steinkit.kernels import IMQ

from helpers import gen


def test_witness_terms_are_row_means_of_the_stein_kernel():
    g = gen(0)
    a, b = torch.randn(7, 3, generator=g, dtype=torch.float64), torch.randn(5, 3, generator=g, dtype=torch.float64)
    sa, sb = -a + 0.2, -b + 0.2
    got = witness_terms(a, sa, b, sb, [0.7, 2.0])
    assert torch.equal(witness_terms(a, sa, b, sb, [0.7, 2.0], IMQ()), got)
    for row, lam in enumerate([0.7, 2.0]):
        for i in range(5):
            u = IMQ(lam).stein_pairs(a, sa, b[i].expand(7, 3), sb[i].expand(7, 3))
            assert float(got[row, i]) == pytest.approx(float(u.mean()), rel=1e-10)


def test_size_under_the_null_and_power_against_a_shift():
    # 200 null data sets N(0, I_5) (n = 160): the rejection rate at .1 within 3 binomial stderrs
    g = gen(1)
    ps = [sequential_witness_test(x, -x, generator=g, n_draws=2000).pvalue
          for x in torch.randn(200, 160, 5, generator=g)]
    rate = sum(p <= 0.1 for p in ps) / len(ps)
    assert abs(rate - 0.1) < 3 * math.sqrt(0.09 / 200)
    x = torch.randn(160, 5, generator=g) + 0.35
    assert sequential_witness_test(x, -x, generator=g).pvalue < 0.01   # model N(0, I), data shifted by .35


def test_details_and_same_seed_same_answer():
    x = torch.randn(120, 2, generator=gen(2))
    a = sequential_witness_test(x, -x, folds=4, exponents=(-2, 0), generator=gen(3))
    b = sequential_witness_test(x, -x, folds=4, exponents=(-2, 0), generator=gen(3))
    assert (a.statistic, a.pvalue) == (b.statistic, b.pvalue)
    assert len(a.details["bandwidths"]) == 3 and a.statistic == max(a.details["statistics"])
    assert a.details["folds"] == 4 and a.details["fold_size"] == 30


@pytest.mark.parametrize("kwargs, match", [
    ({"folds": 1}, "folds"), ({"folds": 100}, "folds"), ({"exponents": (0, -1)}, "exponents"),
    ({"kernel": "rbf"}, "kernel"), ({"n_draws": 0}, "n_draws"),
    ({"kernel": IMQ(), "exponents": (-2, 0)}, "exponents"),
])
def test_bad_settings_are_named(kwargs, match):
    x = torch.randn(60, 2, generator=gen(4))
    with pytest.raises((ValueError, TypeError), match=match):
        sequential_witness_test(x, -x, **kwargs)


def test_repeated_rows_are_an_error_not_a_verdict():
    x = torch.ones(64, 2)
    with pytest.raises(FloatingPointError, match="no spread"):
        sequential_witness_test(x, -x + 1.0)

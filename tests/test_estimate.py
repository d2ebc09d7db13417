"""The default LSD estimate against closed forms (issue 24): it cannot run away, it never claims
more misfit than there is, and compare ranks models as the truth does."""

from __future__ import annotations

import warnings

import pytest
import torch

import steinkit as sk
from steinkit import problems as P
from steinkit.critics import MLPCritic
from steinkit.evaluate import _estimate
from steinkit.heldout import HeldOutFit, fit_crossfit_critics
from steinkit.scores import as_score
from steinkit.stein import scaled_lsd, stein_terms

from helpers import gen


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _judge(est, truth: float) -> tuple[bool, bool]:
    """(right, over): within 15% or 3 stderr of the truth; above it by more than 3 stderr."""
    err = est.value - truth
    return abs(err) <= max(0.15 * truth, 3 * est.stderr), err > 3 * est.stderr


# --- the statistic ---------------------------------------------------------------------------

def test_scaled_lsd_is_scale_free_and_exact_at_the_optimal_direction():
    x = torch.randn(50_000, 3, generator=gen(0), dtype=torch.float64)   # data N(0, I), model N(0, 2I)
    for c in (0.1, 1.0, 7.0):
        terms, f = stein_terms(lambda z: c * z / 2, x, -x / 2, trace="exact")
        value, se = scaled_lsd(terms, f.pow(2).sum(-1), 0.5)
        assert abs(float(value) - 0.75) < 3 * float(se) and float(se) < 0.02   # E‖x/2‖²/(2λ) = 3/4


def test_scaled_lsd_is_below_the_truth_for_any_direction():
    """Cauchy–Schwarz: a critic not parallel to f* captures only cos² of the discrepancy."""
    x = torch.randn(50_000, 2, generator=gen(1), dtype=torch.float64)
    terms, f = stein_terms(lambda z: torch.stack([z[:, 0], torch.zeros_like(z[:, 1])], 1), x, -x / 2, trace="exact")
    value, se = scaled_lsd(terms, f.pow(2).sum(-1), 0.5)
    assert abs(float(value) - 0.25) < 3 * float(se)   # one coordinate of two: half of 0.5


def test_scaled_lsd_has_no_upward_bias_under_the_null():
    """With p = q the mean Stein term is zero; m̂² alone would average σ²/n > 0."""
    values = []
    for rep in range(400):
        x = torch.randn(50, 2, generator=gen(rep), dtype=torch.float64)
        terms, f = stein_terms(lambda z: z + 1.0, x, -x, trace="exact")
        values.append(float(scaled_lsd(terms, f.pow(2).sum(-1), 0.5)[0]))
    values = torch.tensor(values)
    assert abs(float(values.mean())) < 3 * float(values.std()) / 20


# --- the estimate ----------------------------------------------------------------------------

def test_the_issue_case_is_right_where_the_paper_settings_run_away():
    """N(0, I) data against N(0, 2I), d = 20, n = 1000: Algorithm 1's literal settings overfit
    (flagged, with a warning); the default is within 15% or 3 stderr of the closed form."""
    prob = P.gaussian_scale(20, 2.0)
    x = prob.sample(1000, seed=0)
    truth = prob.lsd()
    est = sk.stein_discrepancy(prob.model, x, seed=0)
    right, over = _judge(est, truth)
    assert right and not over and not est.overfit
    assert len(est.fold_values) == 5 and est.n_test == 1000
    with pytest.warns(RuntimeWarning, match="limited by the data"):
        paper = sk.stein_discrepancy(prob.model, x, sk.PAPER_ESTIMATE.replace(n_iters=400), seed=0)
    assert paper.overfit and paper.value > 10 * truth and paper.train_value > 2 * paper.value


@pytest.mark.parametrize("prob", [P.gaussian_mean(10, 1.0), P.gaussian_scale(10, 0.5), P.gaussian_correlation(2, 0.5),
                                  P.gaussian_scale(2, 2.0)], ids=lambda p: p.name)
def test_closed_form_panel_cells(prob):
    x = prob.sample(2000, seed=1)
    est = sk.stein_discrepancy(prob.model, x, seed=1)
    right, over = _judge(est, prob.lsd())
    assert right and not over, (est, prob.lsd())


def test_rescaling_the_data_rescales_the_estimate_exactly():
    """The critic sees standardised inputs, so data a·x against the model rescaled alike gives
    the same fit, and the LSD (a Fisher divergence over 2λ) scales by 1/a²."""
    prob = P.gaussian_correlation(3, 0.5)
    x = prob.sample(600, seed=2, dtype=torch.float64)
    cov = prob.model.cov.detach().double()
    a = 7.0
    small = sk.stein_discrepancy(sk.models.Gaussian(torch.zeros(3, dtype=torch.float64), cov), x, seed=3)
    big = sk.stein_discrepancy(sk.models.Gaussian(torch.zeros(3, dtype=torch.float64), a * a * cov), a * x, seed=3)
    # equal up to float64 rounding, which the solve with the smallest skip ridge (10⁻⁶ of its scale)
    # amplifies to a few parts in 10⁶; a fit that saw the scale would differ by far more
    assert big.value == pytest.approx(small.value / a**2, rel=2e-5)
    assert big.stderr == pytest.approx(small.stderr / a**2, rel=2e-5)


def test_overfit_guard_flags_a_critic_that_fits_only_its_training_points():
    terms, sq = torch.full((100,), 3.0) + torch.randn(100, generator=gen(4)), torch.full((100,), 3.0)
    value = float(scaled_lsd(terms, sq, 0.5)[0])   # about 3
    est = _estimate([HeldOutFit(terms, 100, (), sq, train_scaled=40.0, hidden=8)], None, sk.ESTIMATE)
    assert est.overfit and est.train_value == 40.0 and "loose lower bound" in str(est)
    fine = _estimate([HeldOutFit(terms, 100, (), sq, train_scaled=1.2 * value)], None, sk.ESTIMATE)
    assert not fine.overfit


def test_crossfitting_tests_every_point_once_with_a_critic_that_never_saw_it():
    x = torch.randn(103, 2, generator=gen(5))
    cfg = sk.ESTIMATE.replace(hidden=8, n_iters=20)
    folds = fit_crossfit_critics([(as_score(lambda z: -z), x, 9)], cfg, 4, keep_critics=True)[0]
    assert [f.test_terms.shape[0] for f in folds] == [25] * 4   # 103 // 4; the remainder always trains
    order = torch.randperm(103, generator=torch.Generator().manual_seed(9))
    for j, fit in enumerate(folds):   # fold j's terms are its critic's terms on rows order[25j:25(j+1)]
        test = x[order[25 * j:25 * (j + 1)]]
        expected, _ = stein_terms(fit.critic, test, -test, trace="exact")
        torch.testing.assert_close(fit.test_terms, expected.detach(), rtol=1e-5, atol=1e-5)


def test_standardised_critic_with_skip_matches_autograd():
    c = MLPCritic(4, 16, skip=True, loc=torch.randn(4, generator=gen(6)), scale=torch.rand(4, generator=gen(7)) + 0.5,
                  dtype=torch.float64, generator=gen(8))
    with torch.no_grad():
        c.skip.normal_(generator=gen(9))
    x, s = torch.randn(10, 4, generator=gen(10), dtype=torch.float64), torch.randn(10, 4, generator=gen(11),
                                                                                    dtype=torch.float64)
    fused, f = c.stein_terms(x, s, trace="exact")
    auto, f_auto = stein_terms(lambda z: c(z), x, s, trace="exact")
    torch.testing.assert_close(fused, auto.detach())
    torch.testing.assert_close(f, f_auto.detach())
    probes = torch.randn(4000 * 10, 4, generator=gen(12), dtype=torch.float64)
    with torch.no_grad():
        hutch, _ = c.stein_terms(x, s, probes=probes)
    assert float((hutch - fused).abs().max()) < 0.5   # 4000 probes: an unbiased mean near the exact trace
    lone = MLPCritic(4, 16, skip=True, n_critics=2, seeds=[1, 2], dtype=torch.float64)
    lone.set_standardization(torch.zeros(2, 1, 4, dtype=torch.float64), torch.full((2, 1, 4), 2.0, dtype=torch.float64))
    torch.testing.assert_close(lone.member(1)(x), lone(x)[1])


# --- compare ---------------------------------------------------------------------------------

def test_compare_ranks_as_the_truth_and_pairs_never_call_the_worse_model_better():
    """The issue's case: N(0, .5I) (LSD 20) was ranked above N(0, 2I) (LSD 5)."""
    d = 20
    x = P.gaussian_scale(d, 2.0).sample(1000, seed=0)
    models = {"cov x2": P.gaussian_scale(d, 2.0).model, "cov x0.5": P.gaussian_scale(d, 0.5).model,
              "shift": P.gaussian_mean(d, 1.0).model}
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # no overfit warning on this problem
        table = sk.compare(models, x, pairwise=True, seed=0)
    assert [r.name for r in table] == ["shift", "cov x2", "cov x0.5"]   # truths 1, 5, 20
    assert table[0].excess == 0.0 and 3.0 < table[1].excess < 5.0 and 17.0 < table[2].excess < 22.0
    truth = {"shift": 1.0, "cov x2": 5.0, "cov x0.5": 20.0}
    for pair in table.pairwise:
        assert truth[pair.better] < truth[pair.worse] and pair.difference < 0 and pair.agrees
    text = str(table)
    assert "lower bound" in text and "exact" in text and "better vs worse" in text


def test_compare_flags_a_pair_its_ranking_orders_the_other_way():
    from steinkit.evaluate import ComparisonRow, _pairwise

    est = _estimate([HeldOutFit(torch.ones(4), 1, (), torch.ones(4))], None, sk.ESTIMATE)
    rows = [ComparisonRow("a", 1.0, 0.1, est), ComparisonRow("b", 2.0, 0.1, est)]
    terms = {"a": torch.tensor([3.0, 3.1, 2.9, 3.0]), "b": torch.tensor([1.0, 1.1, 0.9, 1.0])}
    (pair,) = _pairwise(rows, terms)
    assert (pair.better, pair.worse, pair.agrees) == ("b", "a", False) and pair.difference == pytest.approx(-2.0)

"""gof_test / gof_tests: LSD-specific behaviour of the front end.

What every method must do (valid, printable, frozen results; same seed, same answer; bad
input named) is checked once per method in test_gof_contract.py.
"""

import pytest
import torch

import steinkit as sk

from helpers import gen

LSD_FAST = dict(hidden=32, n_iters=60, val_every=20)
MODEL = sk.models.Gaussian(torch.zeros(2), torch.eye(2))


def test_lsd_test_rejects_a_wrong_model():
    x = torch.randn(400, 2, generator=gen(1)) + torch.tensor([0.6, 0.0])
    res = sk.gof_test(MODEL, x, method="lsd", seed=0, hidden=32)
    assert res.reject and res.statistic > 2
    assert res.details["protocol"] == "combined" and res.details["n_test"] == 350  # the witness scores 7 of 8 folds
    feat = sk.gof_test(MODEL, x, method="lsd", seed=0, protocol="features", hidden=32)
    assert feat.details["protocol"] == "features" and feat.details["n_test"] == 350 and feat.reject  # 7 folds
    seq = sk.gof_test(MODEL, x, method="lsd", seed=0, protocol="sequential", hidden=32, n_iters=200)
    assert seq.details["protocol"] == "sequential" and seq.details["n_test"] == 300 and seq.reject  # 3 folds
    agg = sk.gof_test(MODEL, x, method="lsd", seed=0, protocol="aggregated", hidden=32, n_iters=200, val_every=50)
    assert agg.details["protocol"] == "aggregated" and agg.details["n_test"] == 200 and agg.reject
    paper = sk.gof_test(MODEL, x, method="lsd", seed=0, protocol="paper", hidden=32, n_iters=200, val_every=50)
    assert paper.details["protocol"] == "paper" and paper.details["n_test"] == 40


def test_aggregated_statistic_is_the_largest_stopping_point_statistic():
    x = torch.randn(200, 2, generator=gen(2)) + 0.3
    res = sk.gof_test(MODEL, x, method="lsd", seed=0, protocol="aggregated", **LSD_FAST)
    d = res.details
    assert d["snapshot_iterations"] == [20, 40, 60] and len(d["snapshot_statistics"]) == 3
    assert res.statistic == max(d["snapshot_statistics"])
    assert d["best_iteration"] == d["snapshot_iterations"][d["snapshot_statistics"].index(res.statistic)]
    # the level correction: never below the largest statistic's own normal tail, at most 3 times it
    from scipy.stats import norm

    assert norm.sf(res.statistic) * 0.95 <= res.pvalue <= 3 * norm.sf(res.statistic) + 2e-4


def test_protocol_is_checked_and_lsd_only():
    x = torch.randn(50, 2, generator=gen(2))
    with pytest.raises(ValueError, match="protocol"):
        sk.gof_test(MODEL, x, method="lsd", protocol="cross")
    with pytest.raises(TypeError, match="protocol applies to method='lsd' only"):
        sk.gof_test(MODEL, x, method="ksd", protocol="paper")


def test_lsd_statistic_is_the_test_split_t_statistic():
    x = torch.randn(200, 2, generator=gen(2))
    res = sk.gof_test(MODEL, x, method="lsd", seed=0, protocol="paper", **LSD_FAST)
    d = res.details
    assert res.statistic == pytest.approx(d["n_test"] ** 0.5 * d["test_mean"] / d["test_std"])
    from scipy.stats import norm

    assert res.pvalue == pytest.approx(norm.sf(res.statistic), rel=1e-9)


@pytest.mark.parametrize("options", [LSD_FAST, dict(protocol="features", hidden=32),
                                     dict(protocol="sequential", **LSD_FAST)])
def test_batched_lsd_tests_equal_lone_tests(options):
    xs = [torch.randn(200, 2, generator=gen(10 + k)) + 0.2 * k for k in range(3)]
    batch = sk.gof_tests([MODEL] * 3, xs, method="lsd", seeds=[5, 6, 7], **options)
    for k, x in enumerate(xs):
        lone = sk.gof_test(MODEL, x, method="lsd", seed=5 + k, **options)
        assert batch[k].statistic == pytest.approx(lone.statistic, rel=1e-4, abs=1e-5)
        assert batch[k].pvalue == pytest.approx(lone.pvalue, rel=1e-3, abs=1e-6)


def test_dropout_critic_is_reproducible_in_a_batch():
    xs = [torch.randn(200, 2, generator=gen(20 + k)) for k in range(2)]
    opts = dict(LSD_FAST, dropout=0.5, protocol="sequential")
    batch = sk.gof_tests([MODEL] * 2, xs, method="lsd", seeds=[1, 2], **opts)
    lone = sk.gof_test(MODEL, xs[1], method="lsd", seed=2, **opts)
    assert batch[1].statistic == pytest.approx(lone.statistic, rel=1e-4, abs=1e-5)


def test_too_few_samples_for_the_lsd_split():
    with pytest.raises(ValueError, match="too few samples"):
        sk.gof_test(MODEL, torch.randn(12, 2, generator=gen(0)), method="lsd")


def test_gof_tests_checks_lengths():
    with pytest.raises(ValueError, match="same length"):
        sk.gof_tests([MODEL], [], method="ksd")


@pytest.mark.parametrize("method", ["ksd", "lksd", "fssd", "ksdagg"])
def test_every_test_function_returns_the_shared_outcome(method):
    from steinkit.gof import TestOutcome, fssd_test, ksd_test, lksd_test
    from steinkit.gof.ksdagg import ksdagg_test

    fn = {"ksd": ksd_test, "lksd": lksd_test, "fssd": fssd_test, "ksdagg": ksdagg_test}[method]
    kwargs = {"opt_steps": 5} if method == "fssd" else ({"n_bootstrap": 20, "n_correction": 20} if method == "ksdagg" else {})
    x = torch.randn(200, 2, generator=gen(0))
    out = fn(x, -x, generator=gen(0), **kwargs)
    assert isinstance(out, TestOutcome) and 0.0 <= out.pvalue <= 1.0


def test_lsd_tests_return_the_shared_outcome():
    from steinkit.gof import TestOutcome, lsd_tests
    from steinkit.scores import as_score

    out = lsd_tests([(as_score(MODEL), torch.randn(320, 2, generator=gen(0)), 0)], **LSD_FAST)[0]
    assert isinstance(out, TestOutcome) and out.details["n_test"] == 280  # eighths 2-8 of 40


def test_kernel_options_come_from_the_test_functions():
    from steinkit.gof import get_method

    assert get_method("ksd").option_names() == (
        "kernel", "bandwidth", "n_bootstrap", "train_fraction", "max_seconds", "max_memory_gb")
    assert "n_locations" in get_method("fssd").option_names() and "generator" not in get_method("fssd").option_names()


def test_sequential_protocol_weights_the_fold_statistics():
    x = torch.randn(240, 2, generator=gen(8)) + 0.4
    res = sk.gof_test(MODEL, x, method="lsd", seed=0, protocol="sequential", hidden=16, n_iters=60)
    d = res.details
    assert d["protocol"] == "sequential" and d["folds"] == 4 and d["n_test"] == 180
    t = d["fold_statistics"]
    assert res.statistic == pytest.approx((t[0] + 2**0.5 * t[1] + 3**0.5 * t[2]) / 6**0.5)
    assert res.reject


def test_sequential_fold_terms_depend_on_earlier_folds_only():
    # changing the last fold's points leaves the statistics of folds 2 and 3 unchanged
    from steinkit.prequential import fit_sequential_critics
    from steinkit.scores import as_score

    x = torch.randn(120, 2, generator=gen(9))
    order = torch.randperm(120, generator=torch.Generator().manual_seed(5))
    y = x.clone()
    y[order[90:]] += 1.0  # the fourth fold after the shuffle of seed 5
    cfg = sk.LEARNED_TEST.replace(hidden=8, n_iters=30)
    a = fit_sequential_critics([(as_score(MODEL), x, 5)], cfg, 4)[0]
    b = fit_sequential_critics([(as_score(MODEL), y, 5)], cfg, 4)[0]
    assert torch.equal(a[:2], b[:2]) and not torch.equal(a[2], b[2])


def test_features_protocol_tests_with_the_closed_form_witness():
    """Each fold's terms are those of the closed-form last layer fitted on the folds before it."""
    from steinkit.heldout import critic_ensemble
    from steinkit.prequential import sequential_feature_terms
    from steinkit.last_layer import feature_witness
    from steinkit.scores import as_score
    from steinkit.stein import stein_terms

    x = torch.randn(240, 2, generator=gen(8)) + 0.4
    res = sk.gof_test(MODEL, x, method="lsd", seed=3, protocol="features", hidden=16)
    d = res.details
    assert d["protocol"] == "features" and d["folds"] == 8 and d["n_test"] == 210 and res.reject
    t = torch.tensor(d["fold_statistics"], dtype=torch.float64)
    weights = torch.arange(1, 8, dtype=torch.float64).sqrt()
    assert res.statistic == pytest.approx(float((weights * t).sum() / weights.norm()))
    problem = (as_score(MODEL), x, 3)
    cfg = sk.LEARNED_TEST.replace(hidden=16)
    terms = sequential_feature_terms([problem], cfg, 8)[0]
    order = torch.randperm(240, generator=torch.Generator().manual_seed(3))
    xs = x[order]
    critic = critic_ensemble([3], 2, cfg, x)[0].member(0)
    w = feature_witness(critic, xs[:210], -xs[:210])  # fold 8 is tested by the witness of folds 1-7
    expected, _ = stein_terms(w, xs[210:], -xs[210:], trace="exact")
    torch.testing.assert_close(terms[6], expected.detach(), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="return_critic"):
        sk.gof_test(MODEL, x, method="lsd", protocol="features", return_critic=True)


def test_features_protocol_holds_its_level():
    """200 null data sets N(0, I_5), n = 200: the rejection rate at .1 within 3 binomial stderrs."""
    from steinkit.gof import lsd_tests
    from steinkit.scores import as_score

    score = as_score(sk.models.Gaussian(torch.zeros(5), torch.eye(5)))
    xs = torch.randn(200, 200, 5, generator=gen(4))
    out = lsd_tests([(score, x, i) for i, x in enumerate(xs)], protocol="features", hidden=16)
    rate = sum(o.pvalue <= 0.1 for o in out) / len(out)
    assert abs(rate - 0.1) < 3 * (0.09 / 200) ** 0.5


def test_features_protocol_refuses_settings_it_does_not_use():
    x = torch.randn(80, 2, generator=gen(1))
    with pytest.raises(TypeError, match=r"n_iters, val_every do not apply to protocol='features'.*'sequential'"):
        sk.gof_test(MODEL, x, method="lsd", protocol="features", n_iters=10, val_every=5)
    d = sk.gof_test(MODEL, x, method="lsd", protocol="features", hidden=8, n_layers=1).details
    assert d["protocol"] == "features" and d["folds"] == 8


def test_combined_protocol_takes_the_larger_statistic_with_a_level_correction():
    """The two statistics are the sequential protocol's (4 folds) and the one-layer features
    protocol's (8 folds) on the same shuffle."""
    from steinkit.prequential import fit_sequential_critics, sequential_feature_terms
    from steinkit.gof.lsd import _sequential_outcome
    from steinkit.scores import as_score

    x = torch.randn(240, 2, generator=gen(8)) + 0.3
    res = sk.gof_test(MODEL, x, method="lsd", seed=2, hidden=16, n_iters=60)
    d = res.details
    assert d["protocol"] == "combined" and d["folds"] == {"trained": 4, "features": 8} and d["n_test"] == 210
    problem = [(as_score(MODEL), x, 2)]
    cfg = sk.LEARNED_TEST.replace(hidden=16, n_iters=60)
    trained = _sequential_outcome(fit_sequential_critics(problem, cfg, 4)[0], "sequential")
    closed = _sequential_outcome(sequential_feature_terms(problem, cfg.replace(n_layers=1), 8)[0], "features")
    assert d["statistics"]["trained"] == pytest.approx(trained.statistic, rel=1e-6)
    assert d["statistics"]["features"] == pytest.approx(closed.statistic, rel=1e-5)
    assert res.statistic == max(d["statistics"].values()) and -1 <= d["correlation"] <= 1
    # the maximum of two: never below the larger's own tail, at most twice it
    assert min(trained.pvalue, closed.pvalue) * 0.95 <= res.pvalue <= 2 * min(trained.pvalue, closed.pvalue) + 2e-4


def test_combined_correlation_is_the_folds_correlation_when_folds_coincide():
    """With equal folds the point-by-point estimate is the √k-weighted mean of the folds' sample
    correlations (weights k), and one statistic against itself has correlation 1."""
    from steinkit.gof.aggregate import term_correlation
    from steinkit.gof.lsd import _contributions

    g = torch.Generator().manual_seed(0)
    a = torch.randn(3, 50, generator=g, dtype=torch.float64)
    b = 0.6 * a + torch.randn(3, 50, generator=g, dtype=torch.float64)
    expected = sum((k + 1) * term_correlation(torch.stack([a[k], b[k]]))[0, 1] for k in range(3)) / 6
    assert float(_contributions(a, 200) @ _contributions(b, 200)) == pytest.approx(float(expected), rel=1e-12)
    assert float(_contributions(a, 210) @ _contributions(a, 210)) == pytest.approx(1.0)
    # eighths inside quarters: a fold statistic of quarters against the same points cut in eighths
    quarters = torch.randn(3, 50, generator=g, dtype=torch.float64)
    eighths = torch.cat([torch.randn(25, dtype=torch.float64, generator=g), quarters.reshape(-1)]).reshape(7, 25)
    assert 0.5 < float(_contributions(quarters, 200) @ _contributions(eighths, 200)) < 1


def test_combined_protocol_holds_its_level():
    """200 null data sets N(0, I_4), n = 160: the rejection rate at .1 within 3 binomial stderrs."""
    from steinkit.gof import lsd_tests
    from steinkit.scores import as_score

    score = as_score(sk.models.Gaussian(torch.zeros(4), torch.eye(4)))
    xs = torch.randn(200, 160, 4, generator=gen(6))
    out = lsd_tests([(score, x, i) for i, x in enumerate(xs)], hidden=16, n_iters=30)
    rate = sum(o.pvalue <= 0.1 for o in out) / len(out)
    assert abs(rate - 0.1) < 3 * (0.09 / 200) ** 0.5

"""relative_test and compare(pairwise=True): exact answers, symmetry, calibration, bad input."""

import math

import pytest
import torch

import steinkit as sk
from steinkit.relative import holm, paired_test

from helpers import gen

FAST = dict(n_iters=100, hidden=16, val_every=50)


def gaussian(mean, d=3):
    return sk.models.Gaussian(torch.full((d,), float(mean)), torch.eye(d))


def test_optimal_method_is_the_exact_score_matching_difference():
    """For N(a, I) and N(b, I): ‖s‖² + 2 tr ∇s = ‖x − m‖² − 2d, so the per-point difference is
    (‖x − a‖² − ‖x − b‖²)/(2λ), whose mean estimates (‖a‖² − ‖b‖²)/(2λ) under N(0, I) data.
    """
    x = torch.randn(500, 3, generator=gen(0), dtype=torch.float64)
    a, b = (sk.models.Gaussian(torch.full((3,), m, dtype=torch.float64), torch.eye(3, dtype=torch.float64))
            for m in (0.2, -0.5))
    res = sk.relative_test(a, b, x, method="optimal", lam=0.25)
    per_point = ((x - 0.2).pow(2).sum(1) - (x + 0.5).pow(2).sum(1)) / (2 * 0.25)
    assert res.difference == pytest.approx(float(per_point.mean()), rel=1e-9)
    assert res.stderr == pytest.approx(float(per_point.std()) / math.sqrt(500), rel=1e-9)
    assert res.n_test == 500 and res.value_a is None and res.reject  # truth: (0.12 − 0.75)/(0.5) < 0


def test_optimal_method_holds_its_level_for_equally_good_models():
    """N(+m, I) and N(−m, I) against N(0, I) data are equally good: rejections stay near α."""
    m = torch.full((5,), 0.3)
    a, b = sk.models.Gaussian(m, torch.eye(5)), sk.models.Gaussian(-m, torch.eye(5))
    g = gen(1)
    pvalues = [sk.relative_test(a, b, torch.randn(300, 5, generator=g), method="optimal").pvalue
               for _ in range(300)]
    rate = sum(p < 0.05 for p in pvalues) / len(pvalues)
    assert rate < 0.05 + 3 * math.sqrt(0.05 * 0.95 / 300)
    assert 0.35 < sum(pvalues) / len(pvalues) < 0.65


def test_optimal_method_needs_a_differentiable_score():
    x = torch.randn(50, 2, generator=gen(0))
    with pytest.raises(ValueError, match="differentiable by torch autograd; score function <lambda> returned"):
        sk.relative_test(gaussian(0, 2), lambda z: -z.detach(), x, method="optimal")


def test_auto_runs_the_exact_method_unless_a_critic_is_asked_for():
    x = torch.randn(200, 2, generator=gen(0))
    a, b = gaussian(0, 2), gaussian(0.5, 2)
    auto = sk.relative_test(a, b, x, lam=0.25)
    assert auto == sk.relative_test(a, b, x, lam=0.25, method="optimal") and auto.method == "optimal"
    assert sk.relative_test(a, lambda z: -z.detach(), x, lam=0.25).method == "lsd"  # no autograd graph
    assert sk.relative_test(a, b, x, **FAST).method == "lsd"  # critic settings ask for the critic
    assert sk.relative_test(a, b, x, settings=sk.RELATIVE.replace(**FAST)).method == "lsd"
    res = sk.relative_test(a, b, x, return_critic=True, **FAST)
    assert res.method == "lsd" and res.critic_a is not None


def test_learned_test_finds_the_better_model_and_returns_both_critics():
    x = torch.randn(600, 3, generator=gen(2))
    res = sk.relative_test(gaussian(0.0), gaussian(0.6), x, return_critic=True, **FAST)
    assert res.reject and res.difference < 0 and res.n_test == 300
    assert res.value_a < res.value_b and res.statistic == pytest.approx(-res.difference / res.stderr)
    assert isinstance(res.critic_a, sk.FittedCritic) and isinstance(res.critic_b, sk.FittedCritic)
    assert res.to_dict()["method"] == "lsd" and "critic_a" not in res.to_dict()


def test_learned_test_of_a_model_against_itself_is_exactly_neutral():
    """Same split, initialisation and probes for both critics: the paired differences are zero."""
    x = torch.randn(200, 2, generator=gen(3))
    model = gaussian(0.5, 2)
    res = sk.relative_test(model, model, x, **FAST)
    assert res.difference == 0.0 and res.pvalue == 0.5 and not res.reject


def test_swapping_the_models_flips_the_difference():
    x = torch.randn(300, 2, generator=gen(4))
    a, b = gaussian(0.3, 2), gaussian(-0.4, 2)
    ab, ba = sk.relative_test(a, b, x, seed=5, **FAST), sk.relative_test(b, a, x, seed=5, **FAST)
    assert ab.difference == pytest.approx(-ba.difference, rel=1e-5, abs=1e-6)
    assert ab.pvalue + ba.pvalue == pytest.approx(1.0, abs=1e-5)


def test_same_seed_same_answer_and_generator_draws_it():
    x = torch.randn(200, 2, generator=gen(5))
    a, b = gaussian(0.3, 2), gaussian(-0.4, 2)
    assert sk.relative_test(a, b, x, seed=7, **FAST) == sk.relative_test(a, b, x, seed=7, **FAST)
    assert sk.relative_test(a, b, x, generator=gen(9), **FAST) == sk.relative_test(a, b, x, generator=gen(9), **FAST)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"method": "kernel"}, ValueError, "method"),
        ({"alpha": 1.5}, ValueError, "alpha"),
        ({"return_critic": True, "method": "optimal"}, TypeError, "return_critic applies to method='lsd'"),
        ({"return_critic": "yes"}, TypeError, "return_critic must be a bool, got type str"),
        ({"iters": 5}, TypeError, "unknown option"),
        ({"settings": "fast"}, TypeError, "settings"),
    ],
)
def test_bad_arguments_are_named(kwargs, error, message):
    x = torch.randn(50, 2, generator=gen(0))
    with pytest.raises(error, match=message):
        sk.relative_test(gaussian(0, 2), gaussian(1, 2), x, **kwargs)


def test_models_must_match_the_data_dimension():
    with pytest.raises(ValueError, match="dimension"):
        sk.relative_test(gaussian(0, 3), gaussian(1, 2), torch.randn(50, 2), method="optimal")


def test_paired_test_and_holm():
    assert paired_test(torch.tensor([2.0, 2.0])) == (2.0, 0.0, math.inf)
    with pytest.raises(ValueError, match="n >= 2"):
        paired_test(torch.tensor([1.0]))
    assert holm([0.2, 0.01]) == [0.2, 0.02]
    assert holm([]) == []


def test_compare_pairwise_table():
    x = torch.randn(500, 2, generator=gen(6))
    models = {"right": gaussian(0, 2), "near": gaussian(0.1, 2), "far": gaussian(1.0, 2)}
    table = sk.compare(models, x, pairwise=True, **FAST)
    assert isinstance(table, sk.Comparison) and [r.name for r in table] == [r.name for r in table.rows]
    assert len(table) == 3 and table[0].name == "right" and table[2].name == "far"
    assert [(p.better, p.worse) for p in table.pairwise] == [
        (table[0].name, table[1].name), (table[0].name, table[2].name), (table[1].name, table[2].name)]
    assert all(p.adjusted >= p.pvalue for p in table.pairwise)
    far = [p for p in table.pairwise if p.worse == "far"]
    assert all(p.adjusted < 0.01 and p.difference < 0 for p in far)
    assert "holm-adjusted" in str(table) and table.method == "optimal"
    plain = sk.compare(models, x, **FAST)
    assert [r.value for r in plain] == [r.value for r in table]
    # differentiable scores: each pair is the exact relative test (two-sided)
    exact = {(p.better, p.worse): p for p in table.pairwise}[("right", "far")]
    one = sk.relative_test(models["right"], models["far"], x, method="optimal")
    assert exact.difference == pytest.approx(one.difference) and exact.stderr == pytest.approx(one.stderr)


def test_compare_pairwise_falls_back_to_the_critics_without_autograd():
    x = torch.randn(300, 2, generator=gen(6))
    models = {"right": lambda z: -z.detach(), "far": lambda z: -(z.detach() - 1.0)}
    table = sk.compare(models, x, pairwise=True, **FAST)
    (pair,) = table.pairwise
    assert table.method == "lsd" and (pair.better, pair.worse) == ("right", "far") and pair.adjusted < 0.01


def test_compare_pairwise_of_one_model_twice_is_neutral():
    model = gaussian(0.5, 2)
    table = sk.compare({"a": model, "b": model}, torch.randn(200, 2, generator=gen(7)), pairwise=True, **FAST)
    assert table.pairwise[0].difference == 0.0 and table.pairwise[0].pvalue == 1.0


def test_compare_rejects_a_non_bool_pairwise():
    with pytest.raises(TypeError, match="pairwise must be a bool"):
        sk.compare({"a": gaussian(0, 2)}, torch.randn(50, 2), pairwise=1)


def test_relative_tests_equal_the_single_tests():
    x = torch.randn(300, 2, generator=gen(8))
    models = [gaussian(m, 2) for m in (0.0, 0.2, 0.8)]
    for method, extra in (("lsd", FAST), ("optimal", {})):
        many = sk.relative_tests(models, x, [(0, 2), (2, 1)], method=method, seed=4, **extra)
        one = [sk.relative_test(models[a], models[b], x, method=method, seed=4, **extra) for a, b in [(0, 2), (2, 1)]]
        for m, o in zip(many, one):
            assert m.difference == pytest.approx(o.difference, rel=1e-5, abs=1e-7) and m.n_test == o.n_test
    with pytest.raises(ValueError, match="pairs must be a non-empty list"):
        sk.relative_tests(models, x, [(0, 3)], method="optimal")
    with pytest.raises(TypeError, match="models must be a list"):
        sk.relative_tests({"a": models[0]}, x, [(0, 0)])

"""The sample-quality figures (issue 16): exact answers where the math gives one, and the classifier."""

from __future__ import annotations

import math

import pytest
import torch

from helpers import gen
from steinkit.data import load_image_dataset
from steinkit.experiments._images_quality import check_quality_size, study_verdict
from steinkit.experiments.sample_quality import (
    Classifier,
    QualityMeter,
    classes_covered,
    classifier_accuracy,
    frechet_distance,
    gaussian_frechet_distance,
    histogram_entropy,
    load_classifier,
    nearest_distances,
    save_classifier,
    train_classifier,
    unit_pixels,
)


def _random_cov(d: int, seed: int) -> torch.Tensor:
    a = torch.randn(d, d, generator=gen(seed), dtype=torch.float64)
    return a @ a.T / d + 0.1 * torch.eye(d, dtype=torch.float64)


# --------------------------------------------------------------------------- Fréchet distance
def test_frechet_of_identical_gaussians_is_zero():
    cov, mean = _random_cov(20, 0), torch.randn(20, generator=gen(1), dtype=torch.float64)
    assert gaussian_frechet_distance(mean, cov, mean, cov) == pytest.approx(0.0, abs=1e-9)


def test_frechet_of_shifted_standard_gaussians_is_the_squared_shift():
    mu = torch.randn(30, generator=gen(2))
    eye = torch.eye(30)
    assert gaussian_frechet_distance(torch.zeros(30), eye, mu, eye) == pytest.approx(float(mu.square().sum()), rel=1e-9)


def test_frechet_of_diagonal_gaussians_is_the_squared_root_difference():
    a, b = torch.rand(10, generator=gen(3)) + 0.1, torch.rand(10, generator=gen(4)) + 0.1
    expected = float((a.double().sqrt() - b.double().sqrt()).square().sum())
    got = gaussian_frechet_distance(torch.zeros(10), torch.diag(a), torch.zeros(10), torch.diag(b))
    assert got == pytest.approx(expected, rel=1e-9)


def test_frechet_is_symmetric_for_non_commuting_covariances():
    c1, c2 = _random_cov(8, 5), _random_cov(8, 6)
    m1, m2 = torch.zeros(8, dtype=torch.float64), torch.ones(8, dtype=torch.float64)
    d12, d21 = gaussian_frechet_distance(m1, c1, m2, c2), gaussian_frechet_distance(m2, c2, m1, c1)
    assert d12 == pytest.approx(d21, rel=1e-9) and d12 > 8.0  # the mean shift alone gives 8


def test_frechet_of_feature_sets_uses_their_moments():
    f = torch.randn(400, 5, generator=gen(7))
    assert frechet_distance(f, f) == pytest.approx(0.0, abs=1e-9)
    assert frechet_distance(f, f + 2.0) == pytest.approx(5 * 4.0, rel=1e-6)  # same covariance, shifted mean


# --------------------------------------------------------------------------- class histogram
def test_uniform_histogram_entropy_is_log_k_and_one_class_is_zero():
    assert histogram_entropy(torch.full((10,), 7)) == pytest.approx(math.log(10), rel=1e-12)
    assert histogram_entropy(torch.tensor([0, 12, 0])) == 0.0


def test_classes_covered_counts_classes_with_half_their_uniform_share():
    counts = torch.tensor([100, 100, 100, 100, 100, 100, 100, 100, 50, 40])  # 1/20 of 890 is 44.5
    assert classes_covered(counts) == 9
    assert classes_covered(counts, min_share=0.1) == 8


# --------------------------------------------------------------------------- nearest neighbours
def test_training_images_are_at_distance_zero_from_the_training_set():
    x = torch.rand(300, 50, generator=gen(8))
    assert torch.equal(nearest_distances(x[::7], x), torch.zeros(len(x[::7])))


def test_nearest_distances_match_brute_force():
    x, ref = torch.rand(40, 12, generator=gen(9)), torch.rand(100, 12, generator=gen(10))
    torch.testing.assert_close(nearest_distances(x, ref, batch=7), torch.cdist(x, ref).min(1).values)


# --------------------------------------------------------------------------- the classifier and the meter
@pytest.fixture(scope="module")
def digits():
    x, y, _ = load_image_dataset("digits", split="train")
    tx, ty, _ = load_image_dataset("digits", split="test")
    return torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(tx), torch.from_numpy(ty)


@pytest.fixture(scope="module")
def classifier(digits):
    x, y, _, _ = digits
    return train_classifier(x, y, epochs=15, seed=0)


def test_classifier_learns_digits_and_is_reproducible(digits, classifier):
    x, y, tx, ty = digits
    assert classifier_accuracy(classifier, unit_pixels(tx), ty) > 0.85
    again = train_classifier(x, y, epochs=15, seed=0)
    for p, q in zip(classifier.parameters(), again.parameters()):
        assert torch.equal(p, q)


def test_classifier_round_trips_through_its_file(classifier, tmp_path, digits):
    back = load_classifier(save_classifier(classifier, tmp_path / "clf.pt"))
    x = unit_pixels(digits[2])
    assert torch.equal(back(x), classifier(x)) and not back.training


def test_meter_separates_real_images_from_noise(digits, classifier):
    x, _, tx, _ = digits
    meter = QualityMeter(classifier, unit_pixels(tx[100:]), unit_pixels(x), reps=50)
    real = meter.measure(unit_pixels(tx[:100]))
    noise = meter.measure(torch.rand(100, 64, generator=gen(11)))
    copies = meter.measure(unit_pixels(x[:100]))
    assert real.n == 100 and sum(real.histogram) == 100 and real.covered >= 8
    assert real.entropy > 2.0 and real.confidence > noise.confidence and real.frechet < noise.frechet
    assert real.frechet_se > 0 and real.entropy_se > 0 and real.confidence_se > 0
    assert copies.nn_mean == copies.nn_median == 0.0 and real.nn_median > 0
    assert set(real.to_dict()) >= {"confidence", "entropy", "covered", "frechet", "nn_mean", "histogram"}


def test_paired_comparison_of_a_batch_with_itself_is_exactly_zero(digits, classifier):
    x, _, tx, _ = digits
    meter = QualityMeter(classifier, unit_pixels(tx[100:]), unit_pixels(x), reps=30)
    batch = meter.prepare(unit_pixels(tx[:100]))
    same = meter.compare(batch, batch)
    assert all(d == {"diff": 0.0, "se": 0.0, "low": 0.0, "high": 0.0} for d in same.values())
    noise = meter.compare(torch.rand(100, 64, generator=gen(12)), batch)
    assert noise["frechet"]["low"] > 0 and noise["confidence"]["high"] < 0


def test_study_verdict_says_which_factor_matters():
    zero = {"diff": 0.0, "se": 1.0, "low": -1.96, "high": 1.96}
    apart = {"diff": 5.0, "se": 1.0, "low": 3.04, "high": 6.96}
    diffs = {"σ=0.1 − σ=0.01 at 1000 steps": dict(confidence=zero, entropy=zero, frechet=apart, nn_mean=zero),
             "1000 − 300 steps at σ=0.01": dict(confidence=zero, entropy=zero, frechet=zero, nn_mean=apart)}
    text = study_verdict(diffs, (0.01, 0.1), [30, 300, 1000])
    assert "σ (0.01 vs 0.1 at 1000 steps) matter (Fréchet distance differ)" in text
    assert "steps (300 vs 1000 at σ=0.01) do not matter beyond noise" in text


# --------------------------------------------------------------------------- errors name the argument
@pytest.mark.parametrize(
    "bad, match",
    [
        (torch.rand(10, 63), r"samples must have shape \(n, 64\)"),
        (torch.rand(10, 64) + 1.0, "samples must be finite with values in"),
        (torch.full((10, 64), float("nan")), "samples must be finite"),
        (torch.rand(1, 64), "samples must hold at least 2"),
    ],
)
def test_bad_samples_name_the_argument(classifier, bad, match):
    meter = QualityMeter(classifier, torch.rand(20, 64, generator=gen(0)), torch.rand(20, 64, generator=gen(1)), reps=2)
    with pytest.raises(ValueError, match=match):
        meter.measure(bad)


def test_bad_inputs_of_the_classifier_and_meter():
    with pytest.raises(TypeError, match="pixels"):
        train_classifier(torch.rand(10, 4), torch.zeros(10, dtype=torch.long))
    with pytest.raises(ValueError, match="labels"):
        train_classifier(torch.zeros(10, 4, dtype=torch.uint8), torch.zeros(9, dtype=torch.long))
    with pytest.raises(TypeError, match="classifier"):
        QualityMeter("clf", torch.rand(3, 4), torch.rand(3, 4))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="reference"):
        QualityMeter(Classifier(4, 2), torch.rand(3, 5), torch.rand(3, 4))
    with pytest.raises(ValueError, match=r"n_quality must be in \[2, 357\]"):
        check_quality_size(358, 359)

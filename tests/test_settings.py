"""CriticSettings: checked fields, help texts, the two named values, and the public calls that take them."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import steinkit as sk
from steinkit.critics import MLPCritic
from steinkit.fit import fit_critic
from steinkit.settings import ESTIMATE, PAPER_ESTIMATE, TEST, CriticSettings, field_names

from helpers import gen

# The option dicts the settings replaced (evaluate._DEFAULTS and gof.lsd.LSD_DEFAULTS before
# issue 11, without seed and progress, which are call arguments now).
OLD_ESTIMATE = dict(
    lam=0.5, split=(0.8, 0.1, 0.1), hidden=300, n_layers=2, dropout=0.0, weight_decay=0.0, n_iters=1000,
    lr=1e-3, batch_size=None, val_every=100, objective="lsd", selection="mean-std", trace="hutchinson", n_probes=1,
)
OLD_TEST = dict(
    split=(0.8, 0.1, 0.1), hidden=300, n_layers=2, dropout=0.5, weight_decay=5e-4, lam=0.5, n_iters=1000,
    lr=1e-3, batch_size=None, val_every=100, trace="hutchinson", n_probes=1, objective="power", selection="power",
)
FAST = dict(n_iters=40, hidden=16, val_every=20)
MODEL = sk.models.Gaussian(torch.zeros(2), torch.eye(2))


NEW_FIELDS_OFF = dict(folds=1, patience=None, standardize=False, refit=False, coordinate_features=False,
                      value="mean")


def test_named_values_hold_the_old_defaults():
    """Algorithm 1 and 2 as published keep their settings; the fields added later are off in both."""
    assert PAPER_ESTIMATE.as_dict() == {**OLD_ESTIMATE, **NEW_FIELDS_OFF}
    assert TEST.as_dict() == {**OLD_TEST, **NEW_FIELDS_OFF}
    assert CriticSettings() == PAPER_ESTIMATE


def test_every_field_has_a_help_text():
    fields = dataclasses.fields(CriticSettings)
    assert [f.name for f in fields] == list(field_names())
    assert all(isinstance(f.metadata.get("help"), str) and len(f.metadata["help"]) > 10 for f in fields)


def test_settings_are_frozen_hashable_and_normalised():
    s = CriticSettings(split=[0.6, 0.2, 0.2], lam=1)
    assert s.split == (0.6, 0.2, 0.2) and isinstance(s.lam, float)
    assert hash(s) == hash(CriticSettings(split=(0.6, 0.2, 0.2), lam=1.0))
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.lam = 2.0  # type: ignore[misc]


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(hidden=0), ValueError, "hidden must be >= 1"),
        (dict(n_layers=1.5), TypeError, "n_layers must be an int"),
        (dict(dropout=1.0), ValueError, r"dropout must lie in \[0, 1\)"),
        (dict(weight_decay=-1e-4), ValueError, "weight_decay must be a finite number >= 0"),
        (dict(lam=0.0), ValueError, "lam must be a finite number > 0"),
        (dict(lam="big"), TypeError, "lam must be a real number"),
        (dict(n_iters=0), ValueError, "n_iters must be >= 1"),
        (dict(lr=float("nan")), ValueError, "lr must be a finite number > 0"),
        (dict(batch_size=0), ValueError, "batch_size must be >= 1"),
        (dict(val_every=True), TypeError, "val_every must be an int"),
        (dict(objective="mean"), ValueError, "objective must be one of"),
        (dict(selection="best"), ValueError, "selection must be one of"),
        (dict(trace="approx"), ValueError, "trace must be one of"),
        (dict(n_probes=0), ValueError, "n_probes must be >= 1"),
        (dict(split=(0.5, 0.5)), ValueError, "split must be three positive fractions"),
        (dict(split=(0.8, 0.2, 0.1)), ValueError, "split must be three positive fractions"),
    ],
)
def test_bad_fields_are_named(kwargs, error, match):
    with pytest.raises(error, match=match):
        CriticSettings(**kwargs)
    with pytest.raises(error, match=match):
        ESTIMATE.replace(**kwargs)


def test_replace_rejects_unknown_names_listing_the_valid_ones():
    with pytest.raises(TypeError, match=r"unknown CriticSettings field\(s\) \['iters'\]; valid: .*'n_iters'"):
        TEST.replace(iters=5)


def test_stein_discrepancy_settings_equal_keywords():
    x = torch.randn(200, 2, generator=gen(0)) + 0.3
    by_keywords = sk.stein_discrepancy(MODEL, x, seed=2, **FAST)
    by_settings = sk.stein_discrepancy(MODEL, x, ESTIMATE.replace(**FAST), seed=2)
    mixed = sk.stein_discrepancy(MODEL, x, ESTIMATE.replace(n_iters=40), seed=2, hidden=16, val_every=20)
    assert by_keywords.value == by_settings.value == mixed.value
    assert by_keywords.history == by_settings.history


def test_compare_takes_settings_too():
    x = torch.randn(200, 2, generator=gen(1))
    rows = sk.compare({"a": MODEL}, x, settings=ESTIMATE.replace(**FAST))
    assert rows[0].value == sk.stein_discrepancy(MODEL, x, **FAST).value


def test_unknown_overrides_list_the_valid_names():
    x = torch.randn(50, 2, generator=gen(0))
    with pytest.raises(TypeError, match=r"unknown option\(s\) \['iters'\]; valid: .*'n_iters'.*or seed, generator, return_critic, progress"):
        sk.stein_discrepancy(MODEL, x, iters=3)
    with pytest.raises(TypeError, match="settings must be a CriticSettings"):
        sk.stein_discrepancy(MODEL, x, {"n_iters": 3})


def test_gof_test_settings_equal_keywords():
    x = torch.randn(200, 2, generator=gen(3))
    a = sk.gof_test(MODEL, x, "lsd", seed=1, **FAST)
    b = sk.gof_test(MODEL, x, "lsd", seed=1, settings=sk.LEARNED_TEST.replace(**FAST))
    assert (a.statistic, a.pvalue) == (b.statistic, b.pvalue)
    c = sk.gof_test(MODEL, x, "lsd", seed=1, protocol="paper", **FAST)
    d = sk.gof_test(MODEL, x, "lsd", seed=1, protocol="paper", settings=TEST.replace(**FAST))
    assert (c.statistic, c.pvalue) == (d.statistic, d.pvalue)
    with pytest.raises(TypeError, match="settings applies to method='lsd'/'witnesses' only, not 'ksd'"):
        sk.gof_test(MODEL, x, "ksd", settings=TEST)
    with pytest.raises(TypeError, match=r"unknown option\(s\) \['n_iter'\] for method 'lsd'"):
        sk.gof_test(MODEL, x, "lsd", n_iter=3)


def test_fit_critic_settings_equal_keyword_overrides():
    x = torch.randn(120, 2, generator=gen(4)) + 1.0
    parts = (x[:80], -x[:80], x[80:], -x[80:])
    a = fit_critic(MLPCritic(2, 8, generator=gen(5)), *parts, n_iters=30, val_every=10, lam=0.3, generator=gen(6))
    b = fit_critic(
        MLPCritic(2, 8, generator=gen(5)), *parts, PAPER_ESTIMATE.replace(n_iters=30, val_every=10, lam=0.3),
        generator=gen(6)
    )
    assert a.history == b.history and a.best_iteration == b.best_iteration
    with pytest.raises(TypeError, match="unknown option"):
        fit_critic(MLPCritic(2, 8), *parts, n_iter=3)
    full = fit_critic(MLPCritic(2, 8, generator=gen(5)), *parts, n_iters=30, val_every=10, generator=gen(6))
    beyond = fit_critic(MLPCritic(2, 8, generator=gen(5)), *parts, n_iters=30, val_every=10, batch_size=81,
                        generator=gen(6))
    assert beyond.history == full.history  # a batch beyond the training split is all of it

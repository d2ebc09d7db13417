"""The witness-family test: each member's folds, statistics and their correlation."""

from __future__ import annotations

import math

import pytest
import torch

from steinkit.gof.lsd import _fold_statistics, _weighted
from steinkit.gof.outcome import normal_sf
from steinkit.gof.sequential import sequential_witness_test
from steinkit.coordinate_class import CoordinateClass
from steinkit.gof.aggregate import max_normal_pvalue
from steinkit.gof.witnesses import _coordinate_terms, _linear_terms, _outcome, witness_tests
from steinkit.scores import as_score

from helpers import gen


def test_one_member_gives_the_normal_p_value_and_copies_cost_nothing():
    terms = torch.randn(7, 50, generator=gen(1), dtype=torch.float64) + 0.2
    alone = _outcome({"a": terms}, 400, seed=0, weights={"a": 1.0})
    z = float(_weighted(torch.tensor([math.sqrt(50) * float(r.mean() / r.std()) for r in terms],
                                     dtype=torch.float64)))
    assert alone.statistic == pytest.approx(z)
    assert alone.pvalue == pytest.approx(normal_sf(z), abs=0.01)   # 20000 Gaussian draws
    twice = _outcome({"a": terms, "b": terms.clone()}, 400, seed=0, weights={"a": 1.0, "b": 3.0})
    assert twice.details["correlation"][0][1] == pytest.approx(1.0)
    assert twice.pvalue == pytest.approx(alone.pvalue, abs=0.01)   # whatever the shares


def test_weights_give_each_member_its_share_and_a_members_statistics_split_it():
    g = gen(11)
    members = {"a": torch.randn(7, 50, generator=g, dtype=torch.float64) + 0.25,
               "kernel 1": torch.randn(7, 50, generator=g, dtype=torch.float64),
               "kernel 2": torch.randn(7, 50, generator=g, dtype=torch.float64)}
    out = _outcome(members, 400, seed=0, weights={"a": 3.0, "kernel": 1.0})
    assert out.details["weights"] == {"a": 3.0, "kernel 1": 0.5, "kernel 2": 0.5}
    equal = _outcome(members, 400, seed=0, weights={"a": 1.0, "kernel": 2.0})   # 1 per statistic: the maximum
    z = torch.tensor(list(equal.details["statistics"].values()), dtype=torch.float64)
    corr = torch.tensor(equal.details["correlation"], dtype=torch.float64)
    assert equal.pvalue == max_normal_pvalue(z, corr, generator=torch.Generator().manual_seed(3))[1]
    assert out.pvalue < equal.pvalue   # the strong member's larger share
    x = torch.randn(200, 2, generator=g)
    with pytest.raises(ValueError, match="weights must give every chosen member"):
        witness_tests([(as_score(lambda z: -z), x, 0)], members=["linear", "kernel"], weights={"linear": 1.0})
    with pytest.raises(ValueError, match="weights"):
        witness_tests([(as_score(lambda z: -z), x, 0)], members=["linear"], weights={"linear": 0.0})


def test_linear_witness_is_the_closed_form_of_the_folds_before():
    x = torch.randn(80, 2, generator=gen(2), dtype=torch.float64)
    s = -1.3 * x
    terms = _linear_terms(x, s, 4)
    m = 20
    mu, sigma = x[:m].mean(0), x[:m].std(0)
    psi = lambda z: torch.cat([(z - mu) / sigma, torch.ones(len(z), 1, dtype=z.dtype)], 1)  # noqa: E731
    jac = torch.cat([torch.diag(1 / sigma), torch.zeros(1, 2, dtype=x.dtype)], 0).T
    W = (s[:2 * m].T @ psi(x[:2 * m])) / (2 * m) + jac   # the witness of folds 1-2, scoring fold 3
    expected = (s[2 * m:3 * m] * (psi(x[2 * m:3 * m]) @ W.T)).sum(1) + (W * jac).sum()
    torch.testing.assert_close(terms[1], expected)


def test_coordinate_witness_is_the_ridged_closed_form_of_the_folds_before():
    x = torch.randn(400, 3, generator=gen(5), dtype=torch.float64)
    s = -x / (1 + x * x)
    out = _coordinate_terms(x, s, 8, ridge=0.1, which=("coordinate", "pooled"))
    terms, pooled = out["coordinate"], out["pooled"]
    m = 50
    cls = CoordinateClass.fit(x[:m])
    tau, psi = cls.terms(x[:3 * m], s[:3 * m])   # the witness of folds 1-3, scoring fold 4
    c = torch.einsum("njk,njl->jkl", psi, psi) / (3 * m)
    c = c + torch.diag_embed(0.1 * torch.diagonal(c, dim1=-2, dim2=-1))
    theta = torch.linalg.solve(c, tau.mean(0).unsqueeze(-1)).squeeze(-1)
    expected = torch.einsum("ndk,dk->n", cls.terms(x[3 * m:4 * m], s[3 * m:4 * m])[0], theta)
    torch.testing.assert_close(terms[2], expected)
    # the pooled witness: one θ for the three coordinates, from their summed coefficients
    c = torch.einsum("njk,njl->kl", psi, psi) / (3 * m)
    theta = torch.linalg.solve(c + torch.diag(0.1 * torch.diagonal(c)), tau.mean(0).sum(0))
    torch.testing.assert_close(pooled[2], torch.einsum("ndk,k->n", cls.terms(x[3 * m:4 * m], s[3 * m:4 * m])[0], theta))
    later = x.clone()
    later[5 * m:] += 1.0   # folds 6-8 changed: the terms of folds 2-5 use folds 1-5 only
    again = _coordinate_terms(later, s, 8, which=("coordinate", "pooled"))
    torch.testing.assert_close(again["coordinate"][:4], terms[:4])
    torch.testing.assert_close(again["pooled"][:4], pooled[:4])


def test_coordinate_members_hold_their_level_and_find_laplace_tails():
    # under H0 each z is N(0, 1): Gaussian data against their model, 300 data sets
    g = gen(6)
    zs = {"coordinate": [], "pooled": []}
    for rep in range(300):
        x = torch.randn(400, 4, generator=g, dtype=torch.float64) * 2.0 + 1.0
        for name, terms in _coordinate_terms(x, -(x - 1.0) / 4.0, 8, which=tuple(zs)).items():
            zs[name].append(float(_weighted(torch.tensor([math.sqrt(50) * float(r.mean() / r.std()) for r in terms]))))
    for name, z in zs.items():
        rate = sum(v > 1.645 for v in z) / len(z)
        assert rate < 0.05 + 3 * math.sqrt(0.05 * 0.95 / 300), (name, rate)
        assert abs(sum(z) / len(z)) < 3 / math.sqrt(300) + 0.05, name
    # Laplace data (unit variance) against N(0, I): the steps tanh(k z) hold the optimal critic
    u = torch.rand(400, 10, generator=gen(7), dtype=torch.float64) - 0.5
    lap = -(2**-0.5) * u.sign() * torch.log1p(-2 * u.abs())   # inverse CDF, scale 1/√2
    out = witness_tests([(as_score(lambda z: -z), lap, 0)], members=["coordinate"])[0]
    assert out.statistic > 3 and out.pvalue < 0.01
    # a scale error all 30 coordinates share (×1.08): one pooled θ finds it, 8 per coordinate hardly
    x = torch.randn(800, 30, generator=gen(12), dtype=torch.float64) * 1.08
    terms = _coordinate_terms(x, -x, 8, which=("coordinate", "pooled"))
    z = {k: float(_weighted(_fold_statistics(v))) for k, v in terms.items()}
    assert z["pooled"] > 5 and z["pooled"] > 2 * z["coordinate"], z


def test_coordinate_member_leaves_out_features_that_two_valued_coordinates_make_zero():
    # on {0, 1} data the steps and log cosh are functions of z_j: less their fit they vanish, and
    # their second moments with them; they are left out instead of making C singular
    x = (torch.rand(400, 3, generator=gen(8)) > 0.5).double()
    cls = CoordinateClass.fit(x)
    assert cls.used[:, 0].all() and not cls.used[:, 1:5].any()
    out = _coordinate_terms(x, -(x - 0.5) / 0.25, 8, which=("coordinate", "pooled"))
    assert all(torch.isfinite(t).all() for t in out.values())
    assert CoordinateClass.fit(torch.randn(400, 3, generator=gen(9))).used.all()


def test_the_kernel_member_is_ksd_seq_on_the_same_folds():
    """With the kernel member alone, the statistic is KSD-Seq's maximum over bandwidths on the same shuffle."""
    x = torch.randn(240, 2, generator=gen(3)) * 1.2
    out = witness_tests([(as_score(lambda z: -z), x, 5)], members=["kernel"])[0]
    ref = sequential_witness_test(x, -x, generator=torch.Generator().manual_seed(5))
    assert out.statistic == pytest.approx(ref.statistic, rel=1e-6)
    assert out.pvalue == pytest.approx(ref.pvalue, abs=0.01)


def test_members_are_checked():
    x = torch.randn(80, 2, generator=gen(4))
    with pytest.raises(ValueError, match="members must be one of"):
        witness_tests([(as_score(lambda z: -z), x, 0)], members=["bogus"])
    with pytest.raises(ValueError, match="at least one"):
        witness_tests([(as_score(lambda z: -z), x, 0)], members=[])


def test_the_kernel_basis_caps_the_past_points_the_kernel_witness_uses():
    """kernel_basis >= n changes nothing; a smaller basis is KSD-Seq's witness of the first points only."""
    x = torch.randn(400, 2, generator=gen(5)) * 1.2
    full = witness_tests([(as_score(lambda z: -z), x, 5)], members=["kernel"])[0]
    same = witness_tests([(as_score(lambda z: -z), x, 5)], members=["kernel"], kernel_basis=400)[0]
    capped = witness_tests([(as_score(lambda z: -z), x, 5)], members=["kernel"], kernel_basis=60)[0]
    assert same.statistic == full.statistic
    assert capped.statistic != full.statistic
    with pytest.raises(ValueError, match="kernel_basis"):
        witness_tests([(as_score(lambda z: -z), x, 0)], members=["kernel"], kernel_basis=0)


def test_the_kernel_member_tests_a_prefix_of_the_shuffled_points():
    """kernel_points >= n changes nothing; a prefix gives the kernel witness test of those points,
    its share vector zero on the rest, so the correlation with the other members stays aligned."""
    x = torch.randn(400, 2, generator=gen(6)) * 1.2
    problems = [(as_score(lambda z: -z), x, 5)]
    full = witness_tests(problems, members=["kernel", "linear"])[0]
    assert witness_tests(problems, members=["kernel", "linear"], kernel_points=400)[0].statistic == full.statistic
    part = witness_tests(problems, members=["kernel", "linear"], kernel_points=160)[0]
    assert part.details["statistics"]["linear"] == full.details["statistics"]["linear"]
    assert part.details["statistics"] != full.details["statistics"]
    corr = torch.tensor(part.details["correlation"])
    torch.testing.assert_close(torch.diagonal(corr), torch.ones(corr.shape[0], dtype=corr.dtype))

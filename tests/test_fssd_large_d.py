"""FSSD at large d: the null eigenvalues come from the (n, n) Gram matrix of the centred
features when n < J d (the same non-zero eigenvalues as the (J d, J d) covariance), and the
initial locations avoid the (d, d) data covariance when d > n.

The reference "old path" below is the covariance computation the test used before.
"""

from __future__ import annotations

import time

import pytest
import torch

import steinkit as sk
from steinkit.gof import fssd
from steinkit.gof.fssd import fssd_test


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _old_simulated_pvalue(tau: torch.Tensor, stat: float, n_simulate: int, generator: torch.Generator) -> float:
    """The previous null simulation: all J d eigenvalues of the (J d, J d) covariance."""
    evals = torch.linalg.eigvalsh(torch.atleast_2d(torch.cov(tau.T))).clamp_min(0.0)
    zs = torch.randn(n_simulate, evals.numel(), generator=generator, dtype=torch.float64)
    return float((((zs * zs - 1.0) @ evals) >= stat).double().mean())


def _features(n: int, p: int, seed: int) -> torch.Tensor:
    g = _gen(seed)
    return 0.3 * torch.randn(n, p, generator=g, dtype=torch.float64) + 0.05


@pytest.mark.parametrize("n,p", [(12, 30), (30, 12), (7, 7), (3, 200)])
def test_gram_and_covariance_give_the_same_eigenvalues(n: int, p: int) -> None:
    tau = _features(n, p, 0)
    gram = fssd._null_eigenvalues(tau, "gram")
    cov = fssd._null_eigenvalues(tau, "covariance")
    assert gram.shape == cov.shape == (min(n, p),)
    assert torch.allclose(gram, cov, rtol=0.0, atol=1e-12 * float(cov.max()))
    # the p - n eigenvalues the Gram path leaves out are zero
    everything = torch.linalg.eigvalsh(torch.cov(tau.T))
    dropped = everything[: p - min(n, p)]
    assert dropped.numel() == 0 or float(dropped.abs().max()) < 1e-12 * float(cov.max())
    # the default picks the smaller matrix
    assert torch.equal(fssd._null_eigenvalues(tau), gram if n < p else cov)


def test_both_paths_give_the_same_pvalue_with_the_same_seed() -> None:
    tau = _features(15, 40, 1)  # n < J d: the default is the Gram path
    stat = float(15 * fssd._fssd2_unbiased(tau))
    for scale in (0.25, 0.5, 1.0, 2.0):
        p_gram = fssd._simulated_pvalue(tau, scale * stat, 2000, _gen(3))
        p_cov = fssd._simulated_pvalue(tau, scale * stat, 2000, _gen(3), via="covariance")
        assert p_gram == p_cov


def test_pvalue_unchanged_when_n_is_at_least_jd() -> None:
    tau = _features(60, 12, 2)  # J d <= n: the covariance path, the same draws as before
    stat = float(60 * fssd._fssd2_unbiased(tau))
    for scale in (0.5, 1.0, 2.0):
        assert fssd._simulated_pvalue(tau, scale * stat, 1000, _gen(4)) == _old_simulated_pvalue(
            tau, scale * stat, 1000, _gen(4)
        )


def test_fssd_test_same_statistic_and_pvalue_as_the_covariance_path(monkeypatch: pytest.MonkeyPatch) -> None:
    g = _gen(5)
    x = torch.randn(40, 8, generator=g) + 0.3
    s = -x
    kw = dict(n_locations=5, train_fraction=0.5, opt_steps=5, n_simulate=1000)  # n_test 20 < J d = 40
    new = fssd_test(x, s, generator=_gen(6), **kw)
    gram_eigs = []
    original = fssd._null_eigenvalues

    def covariance_path(tau: torch.Tensor, via: str | None = None) -> torch.Tensor:
        gram_eigs.append(original(tau))
        return original(tau, "covariance")

    monkeypatch.setattr(fssd, "_null_eigenvalues", covariance_path)
    old = fssd_test(x, s, generator=_gen(6), **kw)
    assert new.details["n_test"] == 20 and gram_eigs[0].numel() == 20
    assert new.statistic == old.statistic
    assert new.pvalue == old.pvalue
    assert torch.equal(new.details["locations"], old.details["locations"])


def test_thin_gaussian_locations_have_the_data_mean_and_covariance() -> None:
    x = torch.randn(4, 6, generator=_gen(7), dtype=torch.float64) * torch.arange(1.0, 7.0, dtype=torch.float64)
    v = fssd._gaussian_locations(x, 40000, _gen(8))  # d = 6 > n = 4: no (d, d) matrix
    mean, cov = x.mean(0), torch.cov(x.T)
    scale = float(cov.diagonal().max())
    assert float((v.mean(0) - mean).abs().max()) < 0.05 * scale**0.5
    assert float((torch.cov(v.T) - cov).abs().max()) < 0.05 * scale
    # every draw lies in mean + row space of the centred data, like the (d, d) path's
    q, _ = torch.linalg.qr((x - mean).T)
    resid = (v - mean) - ((v - mean) @ q) @ q.T
    assert float(resid.abs().max()) < 1e-9 * scale**0.5


def test_fssd_at_d_5000_n_50_finishes_quickly_and_is_valid() -> None:
    x = torch.randn(50, 5000, generator=_gen(0))
    start = time.perf_counter()
    res = sk.gof_test(lambda z: -z, x, method="fssd", seed=0)
    seconds = time.perf_counter() - start
    assert 0.0 <= res.pvalue <= 1.0 and torch.isfinite(torch.tensor(res.statistic))
    assert res.details["n_test"] == 40 and tuple(res.details["locations"].shape) == (5, 5000)
    assert seconds < 120.0  # generous on a loaded machine; it took minutes and ~10 GB before
    # a clearly wrong model is rejected at the same size
    wrong = sk.gof_test(lambda z: -(z - 0.5), x, method="fssd", seed=0, opt_steps=20)
    assert wrong.pvalue < 0.05

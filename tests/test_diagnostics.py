"""sk.sample_quality (issue 29): exact answers where the math gives one, shapes, errors, and a
small size and power check on autocorrelated chains.

The chains here are Gaussian autoregressions x_t = ρ x_{t−1} + σ√(1 − ρ²) ε_t: reversible with
stationary law N(0, σ² I) and integrated autocorrelation time (1 + ρ)/(1 − ρ) in every
coordinate, so σ = 1 is a correct but sticky sampler of N(0, I) and σ ≠ 1 a biased one.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from scipy.signal import lfilter

import steinkit as sk
from steinkit.diagnostics import batch_means, batch_size, integrated_time, reference, stein_features
from steinkit.gof.ksd import ksd_estimate, ksd_test
from steinkit.kernels import IMQ


def ar1_chains(chains: int, n: int, d: int, rho: float, sigma: float = 1.0, seed: int = 0) -> torch.Tensor:
    """(chains, n, d) stationary AR(1) chains with law N(0, σ² I)."""
    rng = np.random.default_rng(seed)
    e = rng.standard_normal((chains, n, d)) * sigma * math.sqrt(1 - rho**2)
    e[:, 0] = rng.standard_normal((chains, d)) * sigma  # start in the stationary law
    return torch.as_tensor(lfilter([1.0], [1.0, -rho], e, axis=1))


def standard_normal_score(x: torch.Tensor) -> torch.Tensor:
    return -x


# --------------------------------------------------------------------------- autocorrelation
def test_batch_means_variance_of_an_ar1_series_is_the_long_run_variance():
    rho = 0.9
    h = ar1_chains(1, 400_000, 1, rho, seed=1)[0]  # marginal variance 1
    long_run = (1 + rho) / (1 - rho)  # σ²(1 + ρ)/(1 − ρ) with σ² = 1
    tau = integrated_time(h[:, 0])
    assert tau == pytest.approx(long_run, rel=0.05)
    assert batch_size(h.shape[0], tau)[0] >= 29  # at most 30 batches, each ≥ 5τ̂
    bm = batch_means(h, 400)  # batches of 1000 ≈ 53τ: bias −τ/m ≈ −2%, sd √(2/399) ≈ 7%
    assert float(bm.stderr[0] ** 2 * h.shape[0]) == pytest.approx(long_run, rel=0.2)
    assert bm.df == 399 and bm.size == 1000


def test_batch_means_with_equal_weights_is_the_plain_estimate():
    h = torch.randn(600, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    plain, weighted = batch_means(h, 12), batch_means(h, 12, torch.full((600,), 3.0, dtype=torch.float64))
    torch.testing.assert_close(weighted.mean, plain.mean)
    torch.testing.assert_close(weighted.stderr, plain.stderr)
    assert weighted.df == plain.df == 11


# --------------------------------------------------------------------------- features
def test_scale_feature_is_the_stein_operator_of_its_field():
    """h_scale = sᵀf + ∇·f for f(y) = (y − c)(1 + ‖y − c‖²/h²)^(−1/2), the divergence by autograd."""
    g = torch.Generator().manual_seed(0)
    y = torch.randn(7, 3, generator=g, dtype=torch.float64)
    c, h = torch.tensor([0.3, -0.2, 1.0], dtype=torch.float64), 1.7
    s = torch.randn(7, 3, generator=g, dtype=torch.float64)  # any vectors: the operator is linear in s
    ref = reference(c.expand(4, 3).clone(), torch.zeros(4, 3, dtype=torch.float64), None, IMQ(1.0), h)
    feature = stein_features(ref, y, s)[:, 1]
    div = []
    for row in y:
        jac = torch.autograd.functional.jacobian(lambda v: (v - c) * (1 + ((v - c) ** 2).sum() / h**2).rsqrt(), row)
        div.append(jac.diagonal().sum())
    field = (y - c) * (1 + ((y - c) ** 2).sum(1, keepdim=True) / h**2).rsqrt()
    torch.testing.assert_close(feature, (s * field).sum(1) + torch.stack(div))


@pytest.mark.parametrize("target", ["mixture", "banana"])
def test_every_feature_has_mean_zero_under_the_target(target):
    g = torch.Generator().manual_seed(1)
    dist = sk.problems.Banana(2, 1.0) if target == "banana" else sk.problems.GaussianMixture(
        torch.tensor([[0.0, 0.0], [2.0, 1.0]]), torch.tensor([0.5, 0.5]), 0.8)
    a, y = dist.sample(300, generator=g), dist.sample(100_000, generator=g)
    f = stein_features(reference(a, dist.score(a), None, IMQ(1.5), 1.5), y, dist.score(y))
    z = f.mean(0) / (f.std(0) / math.sqrt(y.shape[0]))
    assert bool((z.abs() < 4).all()), z


def test_discrepancy_is_the_cross_part_of_the_ksd_u_statistic():
    """With at most 512 draws every draw of a half enters the witness: the discrepancy is the mean
    of u(x_i, x_j) over pairs across the halves, which the full and within-half U-statistics of
    the existing KSD estimate give exactly."""
    x = torch.randn(400, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    k = IMQ(1.3)
    res = sk.sample_quality(x, scores=-x, kernel=k)
    m, n = 200, 400
    full, first, second = (ksd_estimate(v, -v, kernel=k)[0] for v in (x, x[:m], x[m:]))
    cross = (n * (n - 1) * full - m * (m - 1) * (first + second)) / (2 * m * m)
    assert res.discrepancy == pytest.approx(cross, rel=1e-9)
    assert res.chains[0].discrepancy == res.discrepancy  # one chain: the pool is the chain


def test_thinned_method_is_the_ksd_test_on_the_thinned_draws():
    x = ar1_chains(1, 600, 2, 0.5, seed=3)[0]
    res = sk.sample_quality(x, scores=-x, method="thinned", kernel=IMQ(1.0), n_bootstrap=200, seed=5)
    step = res.chains[0].details["step"]
    out = ksd_test(x[::step], -x[::step], kernel=IMQ(1.0), n_bootstrap=200, generator=torch.Generator().manual_seed(5))
    assert (res.statistic, res.pvalue) == pytest.approx((out.statistic, out.pvalue))
    assert step == math.ceil(2 * res.chains[0].iat)


# --------------------------------------------------------------------------- inputs
def test_shapes_and_target_kinds_give_one_answer():
    x = ar1_chains(3, 300, 2, 0.5, seed=4)
    ref = sk.sample_quality(x, scores=-x)
    log_density = lambda z: -0.5 * (z**2).sum(1)  # noqa: E731
    normal = torch.distributions.MultivariateNormal(torch.zeros(2), torch.eye(2))
    for draws, target in [(x, log_density), (x.numpy(), standard_normal_score), (list(x), normal),
                          ([c.float() for c in x], sk.models.Gaussian(torch.zeros(2), torch.eye(2)))]:
        res = sk.sample_quality(draws, target)
        assert len(res.chains) == 3
        assert res.pvalue == pytest.approx(ref.pvalue, rel=1e-4)
        assert [c.pvalue for c in res.chains] == pytest.approx([c.pvalue for c in ref.chains], rel=1e-4)
    one = sk.sample_quality(x[0], log_density)
    assert len(one.chains) == 1 and one.agreement_pvalue is None and one.chains[0].disagreement_pvalue is None
    assert one.pvalue == pytest.approx(ref.chains[0].pvalue, rel=1e-4)
    stat, p = one  # unpacks like every test result
    assert (stat, p) == (one.statistic, one.pvalue)
    json.dumps(one.to_dict())


def test_chains_of_different_lengths():
    x = ar1_chains(2, 500, 2, 0.5, seed=6)
    res = sk.sample_quality([x[0], x[1, :240]], standard_normal_score)
    assert [c.n for c in res.chains] == [500, 240] and res.pooled.n == 740
    assert "chain" in res.table() and "pooled" in str(res)


class _Var:
    def __init__(self, values, dims):
        self.values, self.dims = values, dims


class _Posterior:
    """What sample_quality reads of an ArviZ posterior: ``data_vars`` and variables with ``values``
    and ``dims`` (chain, draw, ...)."""

    def __init__(self, **variables):
        self._vars = variables
        self.data_vars = list(variables)

    def __getitem__(self, name):
        return self._vars[name]


class _InferenceData:
    def __init__(self, posterior):
        self.posterior = posterior


def test_an_arviz_like_posterior_is_read_variable_by_variable():
    x = ar1_chains(2, 300, 3, 0.5, seed=7).numpy()
    post = _Posterior(mu=_Var(x[:, :, 0], ("chain", "draw")),
                      beta=_Var(x[:, :, 1:].transpose(1, 0, 2), ("draw", "chain", "beta_dim")))
    res = sk.sample_quality(_InferenceData(post), standard_normal_score)
    assert res.columns == ("mu", "beta[0]", "beta[1]")
    direct = sk.sample_quality(torch.as_tensor(x), standard_normal_score)
    assert res.pvalue == pytest.approx(direct.pvalue, rel=1e-9)


def test_weights_correct_draws_from_a_proposal():
    """Independent draws from N(0, 1.5² I) are wrong for N(0, I); with self-normalised
    importance weights p/q they are right."""
    g = torch.Generator().manual_seed(8)
    x = 1.5 * torch.randn(4000, 2, generator=g, dtype=torch.float64)
    log_w = -0.5 * (x**2).sum(1) + 0.5 * (x**2).sum(1) / 1.5**2
    w = (log_w - log_w.max()).exp()
    assert sk.sample_quality(x, standard_normal_score).pvalue < 1e-6
    weighted = sk.sample_quality(x, standard_normal_score, weights=w)
    assert weighted.pvalue > 0.01  # 0.027 here: the kernel member's t = 2.8 on 28 df, times 6 members
    plain = sk.sample_quality(x, standard_normal_score)
    ones = sk.sample_quality(x, standard_normal_score, weights=torch.full((4000,), 0.1))
    assert ones.pvalue == pytest.approx(plain.pvalue, rel=1e-9)


@pytest.mark.parametrize("call, match", [
    (lambda x: sk.sample_quality(x.clone().index_fill_(1, torch.tensor([5]), math.nan), standard_normal_score),
     "draws .*NaN"),
    (lambda x: sk.sample_quality(x, lambda z: z / 0.0), "NaN or inf"),
    (lambda x: sk.sample_quality(x, scores=torch.full_like(x, math.inf)), "scores.*NaN or infinite"),
    (lambda x: sk.sample_quality(x, scores=-x[:, :10]), "scores.*shape"),
    (lambda x: sk.sample_quality(x), "exactly one of target"),
    (lambda x: sk.sample_quality(x, standard_normal_score, scores=-x), "got both"),
    (lambda x: sk.sample_quality(x[:, :10], standard_normal_score), "at least 20 rows"),
    (lambda x: sk.sample_quality(x, standard_normal_score, alpha=1.5), "alpha"),
    (lambda x: sk.sample_quality(x, standard_normal_score, method="rhat"), "method must be one of"),
    (lambda x: sk.sample_quality(x, standard_normal_score, weights=-torch.ones(2, 50)), "weights .*>= 0"),
    (lambda x: sk.sample_quality(x, standard_normal_score, weights=torch.ones(2, 49)), "weights .*shape"),
    (lambda x: sk.sample_quality(x, standard_normal_score, weights=torch.ones(2, 50), method="thinned"),
     "batch-means"),
    (lambda x: sk.sample_quality(x, standard_normal_score, kernel=IMQ([0.5, 1.0])), "one bandwidth"),
    (lambda x: sk.sample_quality([x[0], x[1, :, :1]], standard_normal_score), "same dimension"),
    (lambda x: sk.sample_quality(x, sk.models.Gaussian(torch.zeros(3), torch.eye(3))), "dimension"),
])
def test_bad_input_fails_early_naming_the_argument(call, match):
    x = ar1_chains(2, 50, 2, 0.5, seed=9)
    with pytest.raises(ValueError, match=match):
        call(x)


def test_wrong_types_raise_type_errors():
    with pytest.raises(TypeError, match="draws"):
        sk.sample_quality("chains.npy", standard_normal_score)
    with pytest.raises(TypeError, match="history"):
        sk.sample_quality(ar1_chains(1, 50, 2, 0.5)[0], standard_normal_score, history="yes")


# --------------------------------------------------------------------------- verdicts
def test_size_on_sticky_correct_chains():
    """40 correct chains with τ = 19 (n/τ ≈ 100 effective draws each): the number rejected at
    α = .05 is Binomial(40, ≤ .05) under a valid test; more than 6 has probability 1.4%. Raw KSD
    on the same draws rejects nearly every chain."""
    x = ar1_chains(40, 2000, 3, 0.9, seed=10)
    res = sk.sample_quality(x, standard_normal_score)
    rejected = sum(c.reject for c in res.chains)
    assert rejected <= 6, [round(c.pvalue, 3) for c in res.chains]
    assert not res.reject  # the pool: 40 chains, one test
    assert not res.disagreeing
    # τ̂ is the largest of Geyer's estimates over the features and coordinates: at least τ = 19
    assert 19 < float(np.median([c.iat for c in res.chains])) < 30
    naive = [ksd_test(c, -c, kernel=IMQ(), n_bootstrap=200, generator=torch.Generator().manual_seed(0)).pvalue
             for c in x[:5]]
    assert sum(p < 0.05 for p in naive) >= 4  # the independent-draws test is fooled


def test_power_on_biased_sticky_chains():
    """Stationary law N(0, 1.2² I) for the target N(0, I), τ = 19 (about 200 effective draws
    per chain): every chain is flagged; so is a chain whose second half stands still."""
    x = ar1_chains(10, 4000, 3, 0.9, sigma=1.2, seed=11)
    res = sk.sample_quality(x, standard_normal_score)
    assert all(c.reject for c in res.chains) and res.reject
    assert res.discrepancy > 2 * res.stderr
    stuck = ar1_chains(1, 200, 2, 0.5, seed=12)[0]
    stuck[100:] = stuck[99]
    assert sk.sample_quality(stuck, standard_normal_score).reject


def test_a_burn_in_left_in_the_first_half_is_caught():
    x = ar1_chains(1, 2000, 2, 0.9, seed=13)[0]
    x[:300] += torch.linspace(6.0, 0.0, 300, dtype=torch.float64)[:, None]  # a transient from far away
    assert sk.sample_quality(x, standard_normal_score).reject
    assert not sk.sample_quality(x[1000:], standard_normal_score).reject


def test_history_grows_to_the_whole_chain():
    x = ar1_chains(2, 800, 2, 0.5, seed=14)
    res = sk.sample_quality(x, standard_normal_score, history=True)
    hist = res.chains[1].history
    assert hist["n"] == sorted(hist["n"]) and hist["n"][-1] == 800 and len(hist["n"]) == 8
    assert hist["discrepancy"][-1] == pytest.approx(res.chains[1].discrepancy)
    assert res.pooled.history is None


# --------------------------------------------------------------------------- command line
TARGET_FILE = """
import torch

def log_density(x):                      # N(0, I), one value per draw
    return -0.5 * (x ** 2).sum(1)
"""


@pytest.fixture
def chain_files(tmp_path):
    (tmp_path / "target.py").write_text(TARGET_FILE)
    x = ar1_chains(3, 400, 2, 0.5, seed=15).numpy()
    x[2] += 1.5  # the third chain is off
    np.save(tmp_path / "chains.npy", x.astype(np.float32))
    np.save(tmp_path / "one.npy", x[0])
    np.save(tmp_path / "bad.npy", x[None])
    return tmp_path


def test_diagnose_command_table_json_and_plot(chain_files, capsys):
    from steinkit.cli import main

    args = ["diagnose", "--target", f"{chain_files}/target.py:log_density", "--draws", f"{chain_files}/chains.npy"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "REJECT" in text and "DISAGREES" in text and "pooled" in text
    plot = chain_files / "figs" / "history.png"
    assert main(args + ["--json", "--plot", str(plot)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["n_chains"], out["n"], out["d"]) == (3, 400, 2)
    assert [c["reject"] for c in out["chains"]] == [False, False, True] and out["disagreeing"] == [2]
    assert len(out["chains"][0]["history"]["n"]) == 8 and plot.stat().st_size > 1000
    assert main(["diagnose", "--target", f"{chain_files}/target.py:log_density", "--draws",
                 f"{chain_files}/one.npy", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["n_chains"] == 1


@pytest.mark.parametrize("draws, message", [("bad.npy", "shape"), ("missing.npy", "does not exist")])
def test_diagnose_command_errors_are_one_line(chain_files, capsys, draws, message):
    from steinkit.cli import main

    code = main(["diagnose", "--target", f"{chain_files}/target.py:log_density", "--draws", f"{chain_files}/{draws}"])
    err = capsys.readouterr().err
    assert code == 2 and message in err and "Traceback" not in err

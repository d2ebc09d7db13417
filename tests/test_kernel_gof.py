"""Tests of the kernel Stein goodness-of-fit baselines (KSD, linear KSD, FSSD).

Exact checks compare the vectorized code with explicit per-pair float64 loops; the
statistical checks are seeded, and their thresholds are set by the Monte-Carlo error.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from steinkit.gof.fssd import fssd_features, fssd_power_criterion, fssd_statistic, fssd_test
from steinkit.gof.kernels import (
    median_bandwidth,
    rbf_kernel,
    search_bandwidth,
    stein_kernel_matrix,
    stein_kernel_pairs,
)
from steinkit.gof.ksd import ksd_estimate, ksd_test, learn_ksd_bandwidth
from steinkit.gof.lksd import learn_lksd_bandwidth, lksd_estimate, lksd_test
from steinkit.gof.outcome import TestOutcome


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _data(n: int, d: int, shift: float = 0.0, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """x ~ N(shift, I_d); scores of the model N(0, I_d) at x."""
    x = torch.randn(n, d, generator=_gen(seed), dtype=torch.float64) + shift
    return x, -x


# ---------------------------------------------------------------------------
# explicit references
# ---------------------------------------------------------------------------


def _u_loop(xi: np.ndarray, si: np.ndarray, xj: np.ndarray, sj: np.ndarray, h: float) -> float:
    """u_q(x_i, x_j) from the per-pair formula, term by term."""
    d = xi.shape[0]
    r = xi - xj
    r2 = float(r @ r)
    k = math.exp(-r2 / (2 * h**2))
    grad_x_k = -r / h**2 * k
    grad_y_k = r / h**2 * k
    trace = (d / h**2 - r2 / h**4) * k
    return float(si @ sj) * k + float(si @ grad_y_k) + float(grad_x_k @ sj) + trace


def _stein_loop(x: torch.Tensor, s: torch.Tensor, h: float) -> np.ndarray:
    xn, sn = x.double().numpy(), s.double().numpy()
    n = xn.shape[0]
    U = np.empty((n, n))
    for i in range(n):
        for j in range(n):
            U[i, j] = _u_loop(xn[i], sn[i], xn[j], sn[j], h)
    return U


def _fssd_loop(x: torch.Tensor, s: torch.Tensor, V: torch.Tensor, h: float) -> tuple[np.ndarray, float]:
    xn, sn, vn = x.double().numpy(), s.double().numpy(), V.double().numpy()
    n, d = xn.shape
    J = vn.shape[0]
    tau = np.zeros((n, J * d))
    for i in range(n):
        for j in range(J):
            r = xn[i] - vn[j]
            k = math.exp(-float(r @ r) / (2 * h**2))
            xi = sn[i] * k - r / h**2 * k  # s(x) k + grad_x k
            tau[i, j * d:(j + 1) * d] = xi / math.sqrt(d * J)
    total = 0.0
    for i in range(n):
        for j in range(n):
            if i != j:
                total += float(tau[i] @ tau[j])
    return tau, n * total / (n * (n - 1))


def _rel(a: float | np.ndarray, b: float | np.ndarray) -> float:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


# ---------------------------------------------------------------------------
# exact agreement with the loops
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("d,h", [(1, 0.7), (3, 1.3), (5, 4.0)])
def test_stein_kernel_matrix_and_ksd_statistic_match_loop(d: int, h: float) -> None:
    g = _gen(d)
    x = torch.randn(12, d, generator=g, dtype=torch.float64) * 1.5 + 3.0  # off-centre on purpose
    s = torch.randn(12, d, generator=g, dtype=torch.float64)  # any scores, not only Gaussian ones
    U_ref = _stein_loop(x, s, h)
    U = stein_kernel_matrix(x, s, h)
    assert U.dtype == torch.float64 and U.shape == (12, 12)
    assert _rel(U.numpy(), U_ref) < 1e-8
    out = ksd_test(x, s, bandwidth=h, n_bootstrap=50, generator=_gen(0))
    assert _rel(out.statistic, U_ref.sum() / 12) < 1e-8
    assert _rel(out.details["v_statistic"], U_ref.mean()) < 1e-8
    value, stderr = ksd_estimate(x, s, bandwidth=h)
    off = U_ref[~np.eye(12, dtype=bool)]
    assert _rel(value, off.mean()) < 1e-8
    rows = (U_ref.sum(1) - np.diag(U_ref)) / 11
    assert _rel(stderr, 2 * rows.std(ddof=1) / math.sqrt(12)) < 1e-8


@pytest.mark.parametrize("n,block", [(5, 64), (128, 64), (129, 64), (300, 64), (1001, 128), (1001, 1001)])
def test_blocked_bootstrap_equals_full_quadratic_forms(n: int, block: int) -> None:
    from steinkit.gof.quadratic import symmetric_sums
    from steinkit.kernels import Gaussian

    x, _ = _data(n, 3, seed=n)
    s = torch.randn(n, 3, generator=_gen(n + 1), dtype=torch.float64)
    U = stein_kernel_matrix(x, s, 1.0)
    W = torch.randint(0, 2, (17, n), generator=_gen(0), dtype=torch.float64) * 2 - 1
    ref = ((W @ U) * W).sum(1)
    totals, forms, rows = symmetric_sums([Gaussian(1.0)], x, s, weights=W.T, rows=True, block=block)
    scale = float(U.abs().sum())
    assert torch.allclose(forms[0], ref, rtol=1e-10, atol=1e-10 * scale)
    assert abs(float(totals[0]) - float(U.sum())) <= 1e-10 * scale
    assert torch.allclose(rows[0], U.sum(1), rtol=1e-10, atol=1e-10 * scale / n)


def test_ksd_bootstrap_draws_are_rademacher_quadratic_forms() -> None:
    x, s = _data(40, 2, shift=0.2, seed=21)
    out = ksd_test(x, s, bandwidth=1.0, n_bootstrap=30, generator=_gen(4))
    W = torch.randint(0, 2, (30, 40), generator=_gen(4), dtype=torch.float64) * 2 - 1
    U = torch.from_numpy(_stein_loop(x, s, 1.0))
    ref = ((W @ U) * W).sum(1) / 40
    assert _rel(out.details["bootstrap_statistics"].numpy(), ref.numpy()) < 1e-10
    assert out.pvalue == (1 + int((ref >= out.statistic).sum())) / 31


def test_stein_kernel_float32_input_matches_float64() -> None:
    x, _ = _data(30, 4, seed=3)
    s = torch.randn(30, 4, generator=_gen(4), dtype=torch.float64)
    x32, s32 = x.float(), s.float()
    U32 = stein_kernel_matrix(x32, s32, 1.1)
    assert U32.dtype == torch.float64
    assert _rel(U32.numpy(), _stein_loop(x32, s32, 1.1)) < 1e-8


def test_linear_statistic_matches_loop() -> None:
    g = _gen(7)
    n, d, h = 13, 3, 0.9  # odd n: the last row is unused
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    s = torch.randn(n, d, generator=g, dtype=torch.float64) - 0.3
    xn, sn = x.numpy(), s.numpy()
    hs = np.array([_u_loop(xn[2 * i], sn[2 * i], xn[2 * i + 1], sn[2 * i + 1], h) for i in range(n // 2)])
    t_ref = math.sqrt(n // 2) * hs.mean() / hs.std(ddof=1)
    out = lksd_test(x, s, bandwidth=h)
    assert _rel(out.statistic, t_ref) < 1e-8
    assert out.details["n_pairs"] == 6
    assert abs(out.pvalue - 0.5 * math.erfc(t_ref / math.sqrt(2))) < 1e-12
    value, stderr = lksd_estimate(x, s, bandwidth=h)
    assert _rel(value, hs.mean()) < 1e-8
    assert _rel(stderr, hs.std(ddof=1) / math.sqrt(6)) < 1e-8
    pairs = stein_kernel_pairs(x[0:12:2], s[0:12:2], x[1:12:2], s[1:12:2], h)
    assert _rel(pairs.numpy(), hs) < 1e-8


def test_fssd_features_and_statistic_match_loop() -> None:
    g = _gen(11)
    n, d, J, h = 15, 3, 4, 1.7
    x = torch.randn(n, d, generator=g, dtype=torch.float64) + 1.0
    s = torch.randn(n, d, generator=g, dtype=torch.float64)
    V = torch.randn(J, d, generator=g, dtype=torch.float64)
    tau_ref, stat_ref = _fssd_loop(x, s, V, h)
    tau = fssd_features(x, s, V, h)
    assert tau.shape == (n, J * d)
    assert _rel(tau.numpy(), tau_ref) < 1e-10
    assert _rel(fssd_statistic(x, s, V, h), stat_ref) < 1e-8
    mu = tau_ref.mean(0)
    var_h1 = 4 * np.mean((tau_ref @ mu - (tau_ref @ mu).mean()) ** 2)
    crit_ref = (stat_ref / n) / math.sqrt(var_h1 + 1e-2)
    assert _rel(fssd_power_criterion(x, s, V, h, reg=1e-2), crit_ref) < 1e-8


def test_fssd_test_statistic_uses_returned_locations_and_bandwidth() -> None:
    x, s = _data(60, 2, shift=0.5, seed=5)
    out = fssd_test(x, s, opt_steps=5, n_simulate=100, generator=_gen(0))
    # the split is the first permutation drawn from the generator
    perm = torch.randperm(60, generator=_gen(0))
    test = perm[out.details["n_train"]:]
    stat = fssd_statistic(x[test], s[test], out.details["locations"], out.details["bandwidth"])
    assert _rel(out.statistic, stat) < 1e-10


def test_rbf_kernel_and_median_bandwidth() -> None:
    x, _ = _data(9, 2, seed=1)
    y, _ = _data(4, 2, seed=2)
    K = rbf_kernel(x, y, 0.8)
    ref = np.exp(-((x.numpy()[:, None] - y.numpy()[None]) ** 2).sum(-1) / (2 * 0.8**2))
    assert K.shape == (9, 4) and _rel(K.numpy(), ref) < 1e-12
    xn = x.numpy()
    dists = [np.linalg.norm(xn[i] - xn[j]) for i in range(9) for j in range(i + 1, 9)]
    assert abs(median_bandwidth(x) - float(np.sort(dists)[(len(dists) - 1) // 2])) < 1e-12
    # tied points: the median of the positive distances is used
    assert median_bandwidth(torch.tensor([[0.0], [0.0], [0.0], [2.0]])) == 2.0
    assert median_bandwidth(torch.zeros(3, 2)) == 1.0
    # subsampling above max_points is seeded
    big, _ = _data(300, 2, seed=3)
    a = median_bandwidth(big, max_points=100)
    assert a == median_bandwidth(big, max_points=100)
    assert median_bandwidth(big, max_points=100, generator=_gen(5)) == median_bandwidth(
        big, max_points=100, generator=_gen(5)
    )
    assert abs(a - median_bandwidth(big)) / median_bandwidth(big) < 0.2


# ---------------------------------------------------------------------------
# p-values, seeds, learned bandwidths
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("shift", [0.0, 0.5])
def test_pvalues_in_unit_interval_and_seeded(shift: float) -> None:
    x, s = _data(80, 2, shift=shift, seed=8)
    runs = {
        "ksd": lambda seed: ksd_test(x, s, n_bootstrap=99, generator=_gen(seed)),
        "ksd_learn": lambda seed: ksd_test(x, s, bandwidth="learn", n_bootstrap=99, generator=_gen(seed)),
        "lksd": lambda seed: lksd_test(x, s),
        "lksd_learn": lambda seed: lksd_test(x, s, bandwidth="learn", generator=_gen(seed)),
        "fssd": lambda seed: fssd_test(x, s, opt_steps=10, n_simulate=200, generator=_gen(seed)),
    }
    for name, run in runs.items():
        a, b = run(3), run(3)
        assert isinstance(a, TestOutcome)
        assert 0.0 <= a.pvalue <= 1.0, name
        assert math.isfinite(a.statistic), name
        assert (a.statistic, a.pvalue) == (b.statistic, b.pvalue), name
    ksd = runs["ksd"](3)
    assert ksd.pvalue >= 1.0 / 100  # (1 + #) / (1 + B) is never 0
    assert ksd.details["bootstrap_statistics"].shape == (99,)
    learned = runs["ksd_learn"](3).details
    assert learned["bandwidth_rule"] == "learn" and learned["n_train"] == 16 and learned["n_test"] == 64


def test_search_bandwidth_finds_known_maximum() -> None:
    h, v = search_bandwidth(lambda h: -(math.log(h) - 0.7) ** 2, 1.0, steps=40)
    assert abs(math.log(h) - 0.7) < 1e-6 and v <= 0.0
    # non-finite values are skipped
    h, _ = search_bandwidth(lambda h: float("nan") if h < 1.0 else -h, 1.0)
    assert h >= 1.0 and h < 1.2


@pytest.mark.parametrize("objective", ["value", "power"])
def test_learned_bandwidths_beat_their_search_grid(objective: str) -> None:
    x, s = _data(120, 3, shift=0.3, seed=9)
    x = x * torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)  # model stays N(0, I)
    h0 = median_bandwidth(x)

    def ksd_obj(h: float) -> float:
        value, stderr = ksd_estimate(x, s, bandwidth=h)
        return value if objective == "value" else value / stderr

    def lksd_obj(h: float) -> float:
        value, stderr = lksd_estimate(x, s, bandwidth=h)
        return value if objective == "value" else value / stderr

    for learn, obj in ((learn_ksd_bandwidth, ksd_obj), (learn_lksd_bandwidth, lksd_obj)):
        h = learn(x, s, objective=objective)
        assert h > 0
        best = obj(h)
        for factor in (0.25, 0.5, 1.0, 2.0, 4.0):
            assert best >= obj(h0 * factor) - 1e-6 * abs(best)
        assert learn(x, s, objective=objective, init=h0 * 2.0) > 0


def test_fssd_optimisation_increases_power_criterion() -> None:
    x, s = _data(500, 2, shift=0.5, seed=12)
    out = fssd_test(x, s, opt_steps=100, n_simulate=500, generator=_gen(1))
    before, after = out.details["power_criterion_init"], out.details["power_criterion_opt"]
    assert after > 1.05 * before > 0
    assert out.details["locations"].shape == (5, 2)
    assert out.details["n_train"] == 100 and out.details["n_test"] == 400
    # no optimisation: the criterion stays where it started
    still = fssd_test(x, s, opt_steps=0, n_simulate=10, generator=_gen(1)).details
    assert still["power_criterion_opt"] == still["power_criterion_init"] == before


def test_ksd_estimate_stderr_matches_spread_under_alternative() -> None:
    reps = 60
    values, stderrs = [], []
    for r in range(reps):
        x, s = _data(150, 2, shift=0.5, seed=100 + r)
        v, se = ksd_estimate(x, s, bandwidth=1.5)
        values.append(v)
        stderrs.append(se)
    spread = float(np.std(values, ddof=1))
    # the sample std of 60 values has relative error ~ 1/sqrt(2*59) = 9%; allow 4 of those
    assert abs(float(np.mean(stderrs)) / spread - 1.0) < 0.4


# ---------------------------------------------------------------------------
# calibration under H0 and power under H1
# ---------------------------------------------------------------------------

_REPS = 100
_ALPHA = 0.05
_LIMIT = _ALPHA + 3 * math.sqrt(_ALPHA * (1 - _ALPHA) / _REPS)


def _rejection_rate(run, n: int, d: int = 2) -> float:
    rejections = 0
    for r in range(_REPS):
        x, s = _data(n, d, seed=1000 + r)
        rejections += run(x, s, r).pvalue <= _ALPHA
    return rejections / _REPS


def test_ksd_calibrated_under_null() -> None:
    rate = _rejection_rate(lambda x, s, r: ksd_test(x, s, n_bootstrap=199, generator=_gen(r)), n=50)
    assert rate <= _LIMIT


def test_lksd_calibrated_under_null() -> None:
    rate = _rejection_rate(lambda x, s, r: lksd_test(x, s), n=200)
    assert rate <= _LIMIT


def test_fssd_calibrated_under_null() -> None:
    rate = _rejection_rate(lambda x, s, r: fssd_test(x, s, opt_steps=10, n_simulate=500, generator=_gen(r)), n=100)
    assert rate <= _LIMIT


@pytest.mark.parametrize(
    "run,n",
    [
        (lambda x, s: ksd_test(x, s, generator=_gen(0)), 200),
        (lambda x, s: ksd_test(x, s, bandwidth="learn", generator=_gen(0)), 200),
        (lambda x, s: lksd_test(x, s), 1000),
        (lambda x, s: fssd_test(x, s, generator=_gen(0)), 500),
    ],
    ids=["ksd", "ksd_learn", "lksd", "fssd"],
)
def test_power_against_mean_shift(run, n: int) -> None:
    x, s = _data(n, 2, shift=0.5, seed=77)
    assert run(x, s).pvalue < _ALPHA


# ---------------------------------------------------------------------------
# input checks
# ---------------------------------------------------------------------------

_X, _S = _data(20, 2, seed=0)


@pytest.mark.parametrize(
    "call,exc,match",
    [
        (lambda: ksd_test(_X.numpy(), _S), TypeError, "x must be a torch.Tensor"),
        (lambda: ksd_test(_X, [[1.0]]), TypeError, "s must be a torch.Tensor"),
        (lambda: ksd_test(_X[:, 0], _S), ValueError, r"x must be a 2-D tensor \(n, d\), got shape \(20,\)"),
        (lambda: ksd_test(_X, _S[:, :1]), ValueError, "s must have the same shape as x"),
        (lambda: ksd_test(_X.to(torch.complex128), _S), TypeError, "x must be a real-valued"),
        (lambda: ksd_test(torch.where(_X > 1, float("nan"), _X), _S), ValueError, "x contains NaN"),
        (lambda: ksd_test(_X, torch.where(_S > 1, float("inf"), _S)), ValueError, "s contains NaN or infinite"),
        (lambda: ksd_test(_X[:1], _S[:1]), ValueError, "x must have at least 2 rows"),
        (lambda: ksd_test(_X, _S, bandwidth=0.0), ValueError, "bandwidth must be a finite number > 0"),
        (lambda: ksd_test(_X, _S, bandwidth=-1.0), ValueError, "bandwidth must be a finite number > 0"),
        (lambda: ksd_test(_X, _S, bandwidth=float("nan")), ValueError, "bandwidth must be a finite number > 0"),
        (lambda: ksd_test(_X, _S, bandwidth="silverman"), ValueError, "bandwidth must be a positive float, None"),
        (lambda: ksd_test(_X, _S, bandwidth=[1.0]), TypeError, "bandwidth must be a real number"),
        (lambda: ksd_test(_X, _S, n_bootstrap=0), ValueError, "n_bootstrap must be >= 1"),
        (lambda: ksd_test(_X, _S, n_bootstrap=10.0), TypeError, "n_bootstrap must be an int"),
        (lambda: ksd_test(_X, _S, generator=0), TypeError, "generator must be a torch.Generator"),
        (lambda: ksd_test(_X, _S, bandwidth="learn", train_fraction=1.0), ValueError, "train_fraction must lie"),
        (lambda: ksd_test(_X[:4], _S[:4], bandwidth="learn"), ValueError, "too few rows"),
        (lambda: ksd_estimate(_X, _S, bandwidth=0), ValueError, "bandwidth must be a finite number > 0"),
        (lambda: learn_ksd_bandwidth(_X, _S, objective="mean"), ValueError, r"objective must be one of \('value', 'power'\)"),
        (lambda: learn_ksd_bandwidth(_X, _S, init=-2.0), ValueError, "init must be a finite number > 0"),
        (lambda: learn_ksd_bandwidth(_X, _S, steps=-1), ValueError, "steps must be >= 0"),
        (lambda: learn_ksd_bandwidth(_X, _S, reg=-1.0), ValueError, "reg must be"),
        (lambda: lksd_test(_X[:3], _S[:3]), ValueError, "x must have at least 4 rows"),
        (lambda: lksd_test(_X, _S, bandwidth=-0.5), ValueError, "bandwidth must be a finite number > 0"),
        (lambda: lksd_test(_X, _S, bandwidth="learn", train_fraction=0.0), ValueError, "train_fraction must lie"),
        (lambda: lksd_test(_X[:8], _S[:8], bandwidth="learn", train_fraction=0.6), ValueError, "at least 4 are needed"),
        (lambda: lksd_estimate(_X[:3], _S[:3]), ValueError, "x must have at least 4 rows"),
        (lambda: learn_lksd_bandwidth(_X, _S, objective=""), ValueError, "objective must be"),
        (lambda: fssd_test(_X, _S, n_locations=0), ValueError, "n_locations must be >= 1"),
        (lambda: fssd_test(_X, _S, train_fraction=0.0), ValueError, r"train_fraction must lie in \(0, 1\)"),
        (lambda: fssd_test(_X, _S, train_fraction=1.5), ValueError, r"train_fraction must lie in \(0, 1\)"),
        (lambda: fssd_test(_X, _S, train_fraction="half"), TypeError, "train_fraction must be a float"),
        (lambda: fssd_test(_X, _S, opt_steps=-1), ValueError, "opt_steps must be >= 0"),
        (lambda: fssd_test(_X, _S, n_simulate=0), ValueError, "n_simulate must be >= 1"),
        (lambda: fssd_test(_X, _S, learning_rate=0.0), ValueError, "learning_rate must be"),
        (lambda: fssd_test(_X, _S, reg=-1.0), ValueError, "reg must be"),
        (lambda: fssd_test(_X, _S, bandwidth=0.0), ValueError, "bandwidth must be a finite number > 0"),
        (lambda: fssd_test(_X, _S, locations=torch.zeros(3, 5)), ValueError, r"locations must have shape \(J, d\)"),
        (lambda: fssd_test(_X[:6], _S[:6], train_fraction=0.1), ValueError, "too few rows"),
        (lambda: fssd_test(_X[:3], _S[:3]), ValueError, "x must have at least 4 rows"),
        (lambda: fssd_statistic(_X, _S, torch.zeros(2), 1.0), ValueError, "locations must be a 2-D tensor"),
        (lambda: stein_kernel_matrix(_X, _S, 0.0), ValueError, "bandwidth must be a finite number > 0"),
        (lambda: stein_kernel_pairs(_X, _S, _X[:3], _S[:3], 1.0), ValueError, "y must have the same shape as x"),
        (lambda: stein_kernel_pairs(_X, _S, _X, _S[:, :1], 1.0), ValueError, "s_y must have the same shape as y"),
        (lambda: rbf_kernel(_X, torch.zeros(2, 3), 1.0), ValueError, "y must have the same number of columns"),
        (lambda: median_bandwidth(_X[:1]), ValueError, "x must have at least 2 rows"),
        (lambda: median_bandwidth(_X, max_points=1), ValueError, "max_points must be >= 2"),
        (lambda: search_bandwidth(lambda h: h, 1.0, span=0.5), ValueError, "span must be"),
        (lambda: search_bandwidth(lambda h: h, 1.0, grid_size=1), ValueError, "grid_size must be >= 2"),
    ],
)
def test_input_checks(call, exc: type[Exception], match: str) -> None:
    with pytest.raises(exc, match=match):
        call()

"""KSDAgg / KSDAggInc: the statistics against brute force, block by block and band by band
against the whole matrix, the incomplete statistic against the complete one, size under H0
and power. (Every kernel's Stein kernel is checked against autograd in test_kernels.py.)"""

from __future__ import annotations

import pytest
import torch

from steinkit.gof import ksdagg
from steinkit.gof.ksdagg import _complete_statistics, _incomplete_statistics, _RademacherRows, ksdagg_test
from steinkit.kernels import IMQ, Bandwidths, Gaussian


def _autograd_stein_kernel(x, y, sx, sy, lam, kernel):
    """h(x, y) = sxᵀsy k + sxᵀ∇_y k + syᵀ∇_x k + tr ∇_x∇_y k by autograd, for one pair."""
    x = x.clone().requires_grad_(True)
    y = y.clone().requires_grad_(True)
    r2 = ((x - y) ** 2).sum()
    k = (1 + r2 / lam**2) ** -0.5 if kernel == "imq" else torch.exp(-r2 / (2 * lam**2))
    gx, gy = torch.autograd.grad(k, (x, y), create_graph=True)
    trace = sum(torch.autograd.grad(gy[i], x, retain_graph=True)[0][i] for i in range(x.shape[0]))
    return ((sx @ sy) * k + sx @ gy + sy @ gx + trace).detach()


@pytest.mark.parametrize("kernel", ["imq", "gaussian"])
def test_the_kernels_are_the_papers(kernel):
    g = torch.Generator().manual_seed(0)
    x, y, sx, sy = torch.randn(4, 3, generator=g, dtype=torch.float64)
    for lam in (0.3, 1.0, 2.5):
        k = (IMQ if kernel == "imq" else Gaussian)(lam)
        got = k.stein_pairs(x[None], sx[None], y[None], sy[None])[0]
        want = _autograd_stein_kernel(x, y, sx, sy, lam, kernel)
        assert torch.allclose(got, want, rtol=1e-10, atol=1e-12)


def test_complete_statistic_is_the_u_statistic_and_incomplete_with_all_pairs_equals_it():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(12, 2, generator=g, dtype=torch.float64)
    s = -x + 0.3
    eps = torch.randint(0, 2, (12, 5), generator=g).double() * 2 - 1
    lams = [0.5, 1.7]
    kernels = [IMQ(lam) for lam in lams]
    full = _complete_statistics(x, s, kernels, eps)
    for row, lam in enumerate(lams):
        brute = [
            sum(float(_autograd_stein_kernel(x[i], x[j], s[i], s[j], lam, "imq")) * (w[i] * w[j] if w is not None else 1)
                for i in range(12) for j in range(12) if i != j) / (12 * 11)
            for w in [None, eps[:, 0]]
        ]
        assert full[row, 0].item() == pytest.approx(brute[0], rel=1e-9)
        assert full[row, 1].item() == pytest.approx(float(brute[1]), rel=1e-9, abs=1e-12)
    for block in (1, 3, 16):
        inc = _incomplete_statistics(x, s, kernels, eps, n_diagonals=11, block=block)
        assert torch.allclose(inc, full, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("n,R,block", [(40, 1, 16), (40, 7, 5), (41, 39, 16), (300, 30, 64), (300, 200, 17)])
def test_incomplete_bands_are_the_sub_diagonal_sums(n, R, block):
    g = torch.Generator().manual_seed(n + R)
    x = torch.randn(n, 2, generator=g, dtype=torch.float64)
    s = -x + 0.2
    eps = torch.randint(0, 2, (n, 6), generator=g).double() * 2 - 1
    kernels = [IMQ(0.5), IMQ(2.0), Gaussian(1.0)]
    want = torch.zeros(3, 7, dtype=torch.float64)
    for r in range(1, R + 1):  # one sub-diagonal at a time, as the earlier code did
        h = torch.stack([k.stein_pairs(x[:-r], s[:-r], x[r:], s[r:]) for k in kernels])
        want[:, 0] += h.sum(1)
        want[:, 1:] += h @ (eps[:-r] * eps[r:])
    want /= sum(n - r for r in range(1, R + 1))
    got = _incomplete_statistics(x, s, kernels, eps, n_diagonals=R, block=block)
    assert torch.allclose(got, want, rtol=1e-10, atol=1e-12)


def test_rademacher_rows_drawn_as_needed_are_one_draw():
    whole = ksdagg._rademacher(1000, 37, torch.Generator().manual_seed(3), torch.device("cpu"))
    rows = _RademacherRows(1000, 37, torch.Generator().manual_seed(3), torch.device("cpu"))
    for a, b in [(0, 10), (0, 250), (200, 460), (460, 461), (461, 1000)]:
        assert torch.equal(rows.rows(a, b), whole[a:b])
    assert rows.buffer.shape[0] <= 1000 - 200  # rows before the last request are dropped


def test_complete_statistics_block_by_block_equal_the_whole_matrix(monkeypatch):
    g = torch.Generator().manual_seed(4)
    x = torch.randn(500, 3, generator=g, dtype=torch.float64)
    s = -(x - 0.1)
    eps = torch.randint(0, 2, (500, 9), generator=g).double() * 2 - 1
    kernels = IMQ(Bandwidths.powers_of_two(-4, 0)).resolve(x)
    want = []
    for k in kernels:
        u = k.stein_matrix(x, s, x, s).fill_diagonal_(0.0)
        want.append(torch.cat([u.sum()[None], ((u @ eps) * eps).sum(0)]) / (500 * 499))
    monkeypatch.setattr("steinkit.gof.quadratic.BLOCK_BYTES", 2**20)  # blocks of 64 rows
    assert torch.allclose(_complete_statistics(x, s, kernels, eps), torch.stack(want), rtol=1e-10, atol=1e-13)


def test_incomplete_with_every_pair_gives_the_complete_test():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(60, 3, generator=g)
    s = -(x - 0.2)
    a = ksdagg_test(x, s, generator=torch.Generator().manual_seed(5))
    b = ksdagg_test(x, s, incomplete=59, generator=torch.Generator().manual_seed(5))
    assert a.pvalue == b.pvalue and a.statistic == pytest.approx(b.statistic)
    assert b.details["n_pairs"] == 60 * 59 // 2


@pytest.mark.parametrize("incomplete", [None, 20])
def test_size_under_h0_and_power_against_a_shift(incomplete):
    g = torch.Generator().manual_seed(3)
    reps, n, d = 60, 80, 3
    null = [ksdagg_test(x, -x, incomplete=incomplete, n_bootstrap=200, n_correction=200, generator=g).pvalue
            for x in torch.randn(reps, n, d, generator=g)]
    # level .05 over 60 reps: binomial sd .028, so a valid test exceeds .15 with probability < 1e-3
    assert sum(p < 0.05 for p in null) / reps <= 0.15
    assert 0.3 < sum(null) / reps < 0.7  # p-values spread over [0, 1], not piled at one end
    shifted = [ksdagg_test(x + 0.7, -(x + 0.7), incomplete=incomplete, generator=g).pvalue
               for x in torch.randn(5, n, d, generator=g)]
    assert all(p < 0.05 for p in shifted)


def test_same_generator_state_same_answer():
    x = torch.randn(50, 2, generator=torch.Generator().manual_seed(4))
    one = ksdagg_test(x, -x + 0.1, generator=torch.Generator().manual_seed(9))
    two = ksdagg_test(x, -x + 0.1, generator=torch.Generator().manual_seed(9))
    assert one.pvalue == two.pvalue and one.details["statistics"] == two.details["statistics"]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(kernel="laplace"), "kernel must be one of"),
        (dict(kernel=IMQ(), exponents=(-3, 0)), "exponents apply to a kernel given by name"),
        (dict(kernel={"name": "imq", "bandwidth": 1.0}, bandwidths=[1.0]), "give the bandwidths once"),
        (dict(n_bootstrap=0), "n_bootstrap must be a positive int"),
        (dict(incomplete=0), "incomplete must be None or a positive int"),
        (dict(bandwidths=[1.0, -1.0]), "bandwidths must be positive"),
        (dict(exponents=(0, -2)), "exponents must be two ints"),
    ],
)
def test_bad_arguments_name_themselves(kwargs, message):
    x = torch.randn(20, 2)
    with pytest.raises(ValueError, match=message):
        ksdagg_test(x, -x, **kwargs)


def test_non_finite_scores_are_an_error_not_a_verdict():
    x = torch.randn(20, 2)
    s = -x
    s[3, 0] = float("inf")
    with pytest.raises(FloatingPointError, match="not finite"):
        ksdagg_test(x, s)

"""steinkit.kernels: every kernel's Stein kernel and gradient against autograd, today's numbers
kept, bandwidth rules, a kernel added in one module plus one line, a user's own kernel object
in every kernel test, and bad input named."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
import torch
from torch import Tensor

import steinkit as sk
from steinkit.gof import fssd_test, ksd_estimate, ksd_test, ksdagg_test, lksd_test, sequential_witness_test
from steinkit.gof import ksdagg, sequential
from steinkit.gof.kernels import stein_kernel_matrix, stein_kernel_pairs
from steinkit.kernels import (
    IMQ,
    KERNELS,
    Bandwidths,
    Gaussian,
    Radial,
    SteinKernel,
    Sum,
    as_kernel,
    autograd_stein_kernel,
    median_bandwidth,
)
from steinkit.kernels.base import stein_blocks, stein_pair_values

from helpers import gen

KERNEL_METHODS = ("ksd", "lksd", "fssd", "ksdagg", "ksdagg-inc", "ksd-seq")
CHEAP = {"fssd": dict(opt_steps=5, n_simulate=200), "ksdagg": dict(n_bootstrap=500, n_correction=500),
         "ksdagg-inc": dict(n_bootstrap=500, n_correction=500), "ksd": dict(n_bootstrap=200)}


@dataclass(frozen=True, eq=False, repr=False)
class RationalQuadratic(Radial):
    """A kernel added in one module: k = (1 + z / 2)^(-1), its profile and two derivatives."""

    def profile(self, z: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        base = 1.0 + 0.5 * z
        return 1.0 / base, -0.5 / base**2, 0.5 / base**3


def _spd(d: int, seed: int) -> Tensor:
    a = torch.randn(d, d, generator=gen(seed), dtype=torch.float64)
    return a @ a.T + 0.5 * torch.eye(d, dtype=torch.float64)


KERNELS_UNDER_TEST = {
    "gaussian": lambda: Gaussian(1.3),
    "imq": lambda: IMQ(0.8),
    "imq-beta-0.3-c-0.5": lambda: IMQ(0.7, beta=-0.3, c=0.5),
    "imq-beta-1.5": lambda: IMQ(2.0, beta=-1.5),
    "gaussian-preconditioned": lambda: Gaussian(1.1, preconditioner=_spd(3, 1)),
    "imq-diagonal": lambda: IMQ(0.9, preconditioner=torch.tensor([0.5, 2.0, 3.0])),
    "sum": lambda: Gaussian(1.0) + IMQ(2.0, beta=-0.8, preconditioner=_spd(3, 2)),
    "rational-quadratic": lambda: RationalQuadratic(0.6),
}


def _pairs(n: int = 6, d: int = 3, seed: int = 0) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    g = gen(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64) * 1.5 + 2.0
    y = torch.randn(n, d, generator=g, dtype=torch.float64)
    sx, sy = (torch.randn(n, d, generator=g, dtype=torch.float64) for _ in range(2))
    return x, sx, y, sy


# --- exact properties ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", KERNELS_UNDER_TEST)
def test_stein_kernel_matches_autograd(name):
    k = KERNELS_UNDER_TEST[name]()
    x, sx, y, sy = _pairs()
    want = autograd_stein_kernel(k, x, sx, y, sy)
    assert torch.allclose(k.stein_pairs(x, sx, y, sy), want, rtol=1e-10, atol=1e-12)
    U = k.stein_matrix(x, sx, y, sy)
    assert U.shape == (6, 6) and U.dtype == torch.float64
    assert torch.allclose(U.diagonal(), want, rtol=1e-10, atol=1e-12)
    # the matrix holds every pair, and it is symmetric on one sample
    assert torch.allclose(U[1, 4], k.stein_pairs(x[1:2], sx[1:2], y[4:5], sy[4:5])[0], rtol=1e-10)
    V = k.stein_matrix(x, sx, x, sx)
    assert torch.allclose(V, V.T, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", KERNELS_UNDER_TEST)
def test_grad_x_matches_autograd_and_value_is_symmetric(name):
    k = KERNELS_UNDER_TEST[name]()
    x, _, y, _ = _pairs(5, 3, 1)
    xg = x.clone().requires_grad_(True)
    K = k.value(xg, y[:4])
    rows = [torch.autograd.grad(K[:, j].sum(), xg, retain_graph=True)[0] for j in range(4)]
    assert torch.allclose(k.grad_x(x, y[:4]), torch.stack(rows, 1), rtol=1e-10, atol=1e-12)
    assert torch.allclose(k.value(x, y), k.value(y, x).T, rtol=1e-12, atol=1e-14)


def test_the_autograd_reference_is_the_stein_kernel_of_the_formula():
    # u_q for the Gaussian kernel written out term by term (Liu, Lee and Jordan 2016)
    x, sx, y, sy = _pairs(4, 2, 3)
    h = 0.9
    r = x - y
    k = torch.exp(-(r * r).sum(1) / (2 * h * h))
    want = k * ((sx * sy).sum(1) + ((sx - sy) * r).sum(1) / h**2 + 2 / h**2 - (r * r).sum(1) / h**4)
    assert torch.allclose(autograd_stein_kernel(Gaussian(h), x, sx, y, sy), want, rtol=1e-12)


def test_shared_pieces_give_each_kernels_own_block():
    x, sx, y, sy = _pairs(7, 3, 4)
    g = _spd(3, 5)
    kernels = [IMQ(0.5), IMQ(2.0, beta=-0.3), Gaussian(1.0), Gaussian(1.0, preconditioner=g),
               IMQ(3.0, preconditioner=g), RationalQuadratic(1.0), Gaussian(1.0) + IMQ(1.0)]
    for k, u in zip(kernels, stein_blocks(kernels, x, sx, y, sy)):
        assert torch.allclose(u, k.stein_matrix(x, sx, y, sy), rtol=1e-12, atol=1e-14)
    values = stein_pair_values(kernels, x, sx, y, sy)
    for k, row in zip(kernels, values):
        assert torch.allclose(row, k.stein_pairs(x, sx, y, sy), rtol=1e-12, atol=1e-14)


# --- today's numbers ----------------------------------------------------------------------------

def test_gaussian_and_imq_are_the_kernels_of_the_tests():
    x, sx, _, _ = _pairs(30, 4, 8)
    for h in (0.3, 1.0, 5.0):
        assert torch.equal(Gaussian(h).stein_matrix(x, sx, x, sx), stein_kernel_matrix(x, sx, h))
        assert torch.equal(Gaussian(h).stein_pairs(x[::2], sx[::2], x[1::2], sx[1::2]),
                           stein_kernel_pairs(x[::2], sx[::2], x[1::2], sx[1::2], h))
    assert ksdagg.DEFAULT_KERNEL == IMQ(bandwidth=Bandwidths.powers_of_two(-20, 0), beta=-0.5, c=1.0)
    assert sequential.DEFAULT_KERNEL == IMQ(bandwidth=Bandwidths.powers_of_two(-5, 0))


def _data(n: int, seed: int, shift: float, d: int = 5) -> tuple[Tensor, Tensor]:
    x = 1.02 * torch.randn(n, d, generator=gen(seed)) + shift
    return x, -x


def _flat(*values) -> list[float]:
    out = []
    for v in values:
        out.extend(_flat(*v) if isinstance(v, (list, tuple)) else [float(v)])
    return out


_X, _S = _data(3000, 0, 0.05)  # n = 3000: the quadratic tests sum several blocks of rows
_X4, _S4 = _data(400, 1, 0.2)
_X6, _S6 = _data(600, 3, 0.1)
_X1, _S1 = _data(1000, 2, 0.1)

# What the tests returned before they took kernel objects and summed block by block (commit
# 136291e, the full-matrix code), on the data above: statistic, p-value and a few details.
BEFORE = {
    "ksd": (lambda: (lambda r: _flat(r.statistic, r.pvalue, r.details["bandwidth"],
                                     r.details["bootstrap_statistics"][:5].tolist()))(
        ksd_test(_X, _S, generator=gen(1))),
            [23.83175229758228, 0.000999000999000999, 3.020056233846383, 2.7877627675381524, 4.034598281001809,
             6.421373567734918, 8.129333338146695, 4.842621001466658]),
    "ksd-learn": (lambda: (lambda r: _flat(r.statistic, r.pvalue, r.details["bandwidth"]))(
        ksd_test(_X4, _S4, bandwidth="learn", generator=gen(2))),
        [59.69990040877114, 0.000999000999000999, 3.6722389685468415]),
    "ksd-estimate": (lambda: _flat(ksd_estimate(_X, _S)), [0.006006805556082523, 0.0023640023148343865]),
    "lksd": (lambda: (lambda r: _flat(r.statistic, r.pvalue))(lksd_test(_X, _S)),
             [-0.2662452375720259, 0.6049748273247548]),
    "lksd-learn": (lambda: (lambda r: _flat(r.statistic, r.pvalue, r.details["bandwidth"]))(
        lksd_test(_X, _S, bandwidth="learn", generator=gen(3))),
        [-0.2068313640246968, 0.5819292196056612, 96.27645320108137]),
    "fssd": (lambda: (lambda r: _flat(r.statistic, r.pvalue, r.details["bandwidth"]))(
        fssd_test(_X1, _S1, opt_steps=20, generator=gen(4))), [11.553937030432412, 0.0, 6.580200269932657]),
    "ksdagg": (lambda: (lambda r: _flat(r.statistic, r.pvalue, r.details["statistics"]))(
        ksdagg_test(_X, _S, exponents=(-3, 0), n_bootstrap=200, n_correction=200, generator=gen(5))),
        [0.019900497049093246, 0.004975124378109453, 0.001490475485716835, 0.0027986961024461807,
         0.004626147052232558, 0.006305022004292987]),
    "ksdagg-default": (lambda: (lambda r: _flat(r.statistic, r.pvalue, r.details["statistics"][-3:]))(
        ksdagg_test(_X6, _S6, generator=gen(6))),
        [0.04197901161387563, 0.0034982508745627187, 0.006810847221378771, 0.01204148794961673, 0.018108479414296413]),
    "ksdagg-inc": (lambda: (lambda r: _flat(r.statistic, r.pvalue, r.details["statistics"][-3:]))(
        ksdagg_test(_X, _S, incomplete=50, n_bootstrap=200, n_correction=200, generator=gen(7))),
        [0.4179104380309582, 0.05970149253731343, 0.003257959751152518, 0.004681460686520749, 0.006290471308294403]),
    "ksdagg-inc-gaussian": (lambda: (lambda r: _flat(r.statistic, r.pvalue, r.details["statistics"][-3:]))(
        ksdagg_test(_X6, _S6, kernel="gaussian", incomplete=200, generator=gen(8))),
        [0.27286357060074806, 0.079960019990005, 0.00064915196814938, 0.004870324493618806, 0.013240032427375726]),
    "ksd-seq": (lambda: (lambda r: _flat(r.statistic, r.pvalue, r.details["statistics"]))(
        sequential_witness_test(_X, _S, generator=gen(9))),
        [4.784823412743033, 4.999750012499375e-05, 3.675271185936532, 4.122857806600319, 4.5791085469723285,
         4.784823412743033, 4.636944768174676, 4.249089185897948]),
    "ksd-seq-gaussian": (lambda: (lambda r: _flat(r.statistic, r.pvalue, r.details["statistics"]))(
        sequential_witness_test(_X6, _S6, kernel="gaussian", exponents=(-2, 1), generator=gen(10))),
        [2.538993437417274, 0.015899205039748013, -0.1866792967609143, 1.7139533811088448, 2.3533061088331846,
         2.538993437417274]),
}


@pytest.mark.parametrize("case", BEFORE)
def test_the_tests_give_the_numbers_they_gave_before(case):
    run, before = BEFORE[case]
    assert run() == pytest.approx(before, rel=1e-10, abs=1e-300)


# --- kernels as arguments -----------------------------------------------------------------------

def test_a_kernel_object_equal_to_the_default_gives_the_default_answer():
    x, s = _data(150, 10, 0.1, d=3)
    assert ksd_test(x, s, kernel=Gaussian(), generator=gen(0)).pvalue == ksd_test(x, s, generator=gen(0)).pvalue
    a = ksdagg_test(x, s, n_bootstrap=100, n_correction=100, generator=gen(1))
    b = ksdagg_test(x, s, kernel=ksdagg.DEFAULT_KERNEL, n_bootstrap=100, n_correction=100, generator=gen(1))
    c = ksdagg_test(x, s, kernel={"name": "imq", "beta": -0.5}, n_bootstrap=100, n_correction=100, generator=gen(1))
    assert a.pvalue == b.pvalue == c.pvalue and a.details["statistics"] == b.details["statistics"]
    a = sequential_witness_test(x, s, generator=gen(2))
    b = sequential_witness_test(x, s, kernel=sequential.DEFAULT_KERNEL, generator=gen(2))
    assert (a.statistic, a.pvalue) == (b.statistic, b.pvalue)
    # a fixed bandwidth on the object, or given to the test, is the same thing
    assert lksd_test(x, s, kernel=IMQ(0.7)).statistic == lksd_test(x, s, kernel="imq", bandwidth=0.7).statistic


def test_learned_bandwidths_start_from_the_kernels_family():
    x, s = _data(200, 11, 0.3, d=2)
    r = ksd_test(x, s, kernel=IMQ(beta=-0.3), bandwidth="learn", generator=gen(0), n_bootstrap=100)
    assert r.details["bandwidth_rule"] == "learn" and "IMQ" in r.details["kernel"]
    r = lksd_test(x, s, kernel=IMQ(beta=-0.3), bandwidth="learn", generator=gen(0))
    assert r.details["bandwidth"] > 0
    out = fssd_test(x, s, kernel=IMQ(2.0), opt_steps=10, n_simulate=100, generator=gen(0))
    assert out.details["power_criterion_opt"] >= out.details["power_criterion_init"]


class Doubled:
    """A user's kernel written from scratch (no Radial): twice a Gaussian kernel."""

    def __init__(self, bandwidth="median"):
        self.bandwidth = bandwidth
        self.inner = Gaussian(bandwidth)

    def resolve(self, x):
        return tuple(Doubled(k.bandwidth) for k in self.inner.resolve(x))

    def with_bandwidth(self, bandwidth):
        return Doubled(bandwidth)

    def value(self, x, y):
        return 2.0 * self.inner.value(x, y)

    def grad_x(self, x, y):
        return 2.0 * self.inner.grad_x(x, y)

    def stein_matrix(self, x, sx, y, sy):
        return 2.0 * self.inner.stein_matrix(x, sx, y, sy)

    def stein_pairs(self, x, sx, y, sy):
        return 2.0 * self.inner.stein_pairs(x, sx, y, sy)


@pytest.mark.parametrize("method", KERNEL_METHODS)
def test_a_users_own_kernel_works_in_every_kernel_test(method):
    assert isinstance(Doubled(), SteinKernel)
    x = torch.randn(120, 2, generator=gen(12)) + torch.tensor([1.5, 0.0])
    model = sk.models.Gaussian(torch.zeros(2), torch.eye(2))
    kernel = Doubled() if method in ("ksd", "lksd", "fssd") else Doubled(Bandwidths.powers_of_two(-3, 0))
    res = sk.gof_test(model, x, method=method, kernel=kernel, seed=0, **CHEAP.get(method, {}))
    assert res.reject and 0.0 <= res.pvalue <= 1.0


@pytest.mark.parametrize("method", KERNEL_METHODS)
def test_adding_a_kernel_is_one_module_plus_one_line(method, monkeypatch):
    monkeypatch.setitem(KERNELS, "rq", RationalQuadratic)  # the one line
    x = torch.randn(120, 2, generator=gen(13)) + torch.tensor([1.5, 0.0])
    model = sk.models.Gaussian(torch.zeros(2), torch.eye(2))
    res = sk.gof_test(model, x, method=method, kernel="rq", seed=0, **CHEAP.get(method, {}))
    assert res.reject and "RationalQuadratic" in res.details["kernel"]


def test_the_command_line_takes_a_kernel_by_name_and_with_arguments(tmp_path, capsys):
    import json

    import numpy as np

    from steinkit.cli import main

    (tmp_path / "m.py").write_text("import torch, steinkit as sk\n"
                                   "model = sk.models.Gaussian(torch.zeros(2), torch.eye(2))\n")
    np.save(tmp_path / "x.npy", np.random.default_rng(0).standard_normal((200, 2)))
    base = ["test", "--model", f"{tmp_path}/m.py:model", "--data", f"{tmp_path}/x.npy", "--json"]
    assert main(base + ["--method", "ksd", "--option", "kernel=imq"]) == 0
    assert json.loads(capsys.readouterr().out)["details"]["kernel"].startswith("IMQ(")
    assert main(base + ["--method", "lksd", "--option", 'kernel={"name": "imq", "beta": -0.3}']) == 0
    assert "beta=-0.3" in json.loads(capsys.readouterr().out)["details"]["kernel"]


# --- bandwidths ---------------------------------------------------------------------------------

def test_bandwidth_rules_and_collections():
    x = torch.randn(50, 3, generator=gen(14), dtype=torch.float64)
    med = median_bandwidth(x)
    assert [k.bandwidth for k in Gaussian().resolve(x)] == [med]
    assert Gaussian(2.5).resolve(x) == (Gaussian(2.5),)
    collection = IMQ(Bandwidths.powers_of_two(-2, 1)).resolve(x)
    assert [k.bandwidth for k in collection] == [med * 2.0**e for e in (-2, -1, 0, 1)]
    assert [k.bandwidth for k in IMQ([0.5, 3.0]).resolve(x)] == [0.5, 3.0]
    assert Bandwidths([1.0, 4.0], base=0.5).values() == (0.5, 2.0)
    assert len(Bandwidths.powers_of_two(-20, 0)) == 21
    # a preconditioned kernel takes the median in its own metric
    g = torch.tensor([4.0, 1.0, 0.25], dtype=torch.float64)
    assert Gaussian(preconditioner=g).resolve(x)[0].bandwidth == pytest.approx(median_bandwidth(x / g.sqrt()))
    # a collection is the aggregated tests' business, not a single-bandwidth test's
    with pytest.raises(ValueError, match="kernel must have one bandwidth"):
        ksd_test(x, -x, kernel=IMQ(Bandwidths.powers_of_two(-2, 0)))


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: Gaussian(0.0), ValueError, "bandwidth must be a finite number > 0"),
        (lambda: Gaussian("silverman"), ValueError, r"bandwidth must be a positive number or one of \('median',\)"),
        (lambda: Gaussian(object()), TypeError, "bandwidth must be a positive number"),
        (lambda: IMQ(beta=0.5), ValueError, "beta must be < 0"),
        (lambda: IMQ(beta="a"), TypeError, "beta must be a real number"),
        (lambda: IMQ(c=0.0), ValueError, "c must be a finite number > 0"),
        (lambda: Gaussian(preconditioner=torch.tensor([[1.0, 2.0], [2.0, 1.0]])), ValueError,
         "preconditioner must be a symmetric positive definite matrix"),
        (lambda: Gaussian(preconditioner=torch.tensor([1.0, -1.0])), ValueError, "preconditioner .* positive"),
        (lambda: Gaussian(preconditioner=[1.0, 2.0]), TypeError, "preconditioner must be a real tensor"),
        (lambda: Bandwidths([]), ValueError, "scales must hold at least one"),
        (lambda: Bandwidths([1.0, -1.0]), ValueError, "scales must be a finite number > 0"),
        (lambda: Bandwidths([1.0], base="mean"), ValueError, "base must be a positive number or one of"),
        (lambda: Bandwidths.powers_of_two(0, -1), ValueError, "hi must be >= 0"),
        (lambda: Sum(Gaussian()), ValueError, "a Sum needs at least two parts"),
        (lambda: Sum(Gaussian(), "imq"), TypeError, "parts of a Sum must be Stein kernels"),
        (lambda: as_kernel(3), TypeError, "kernel must be a kernel name"),
        (lambda: as_kernel("laplace"), ValueError, r"kernel must be one of \('gaussian', 'imq'\)"),
        (lambda: as_kernel({"name": "imq", "gamma": 1.0}), TypeError, "kernel: .*gamma"),
        (lambda: IMQ().stein_matrix(torch.zeros(2, 2), torch.zeros(2, 2), torch.zeros(2, 2), torch.zeros(2, 2)),
         ValueError, "has no fixed bandwidth: resolve it"),
        (lambda: IMQ(1.0).stein_matrix(torch.zeros(2, 2), torch.zeros(2, 3), torch.zeros(2, 2), torch.zeros(2, 2)),
         ValueError, "sx must have the shape of x"),
        (lambda: IMQ(1.0).stein_pairs(torch.zeros(2, 2), torch.zeros(2, 2), torch.zeros(3, 2), torch.zeros(3, 2)),
         ValueError, "y must have the shape of x"),
        (lambda: IMQ(1.0).value(torch.zeros(2, 2), torch.zeros(2, 3)), ValueError,
         "y must have the same number of columns"),
        (lambda: IMQ(1.0).value(torch.zeros(2, 2).numpy(), torch.zeros(2, 2)), TypeError, "x must be a torch.Tensor"),
        (lambda: IMQ(1.0, preconditioner=torch.ones(3)).value(torch.zeros(2, 2), torch.zeros(2, 2)), ValueError,
         "preconditioner is for d = 3 coordinates, but the points have d = 2"),
        (lambda: (IMQ(Bandwidths.powers_of_two(-1, 0)) + Gaussian()).resolve(torch.randn(5, 2)), ValueError,
         "each part of a Sum needs one bandwidth"),
        (lambda: ksdagg_test(torch.randn(20, 2), -torch.randn(20, 2), kernel=3), TypeError, "kernel must be"),
        (lambda: lksd_test(torch.randn(20, 2), -torch.randn(20, 2), kernel="rbf"), ValueError, "kernel must be one of"),
    ],
)
def test_bad_input_names_the_argument(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_kernels_print_and_compare_as_values():
    assert repr(IMQ(Bandwidths.powers_of_two(-20, 0))) == \
        "IMQ(bandwidth=Bandwidths.powers_of_two(-20, 0), beta=-0.5, c=1.0)"
    assert IMQ(1.0, beta=-0.3) == IMQ(1.0, beta=-0.3) != IMQ(1.0) and hash(IMQ(1.0)) == hash(IMQ(1.0))
    g = _spd(2, 9)
    assert Gaussian(1.0, preconditioner=g) == Gaussian(1.0, preconditioner=g.clone()) != Gaussian(1.0)
    assert "preconditioner=<2x2 tensor>" in repr(Gaussian(1.0, preconditioner=g))
    assert Gaussian(1.0) + IMQ(2.0) + Gaussian(3.0) == Sum(Gaussian(1.0), IMQ(2.0), Gaussian(3.0))
    assert math.isclose(float(IMQ(2.0).value(torch.zeros(1, 1), torch.full((1, 1), 2.0))), 2.0**-0.5)

"""Tests of Stein thinning (:mod:`steinkit.thinning`).

Three kinds of check: the same indices as the reference package ``stein-thinning`` 0.2.0 on the
same inputs and settings; the Stein kernel's closed form against autograd; and exact
properties (the first choice minimises the diagonal, each step is the greedy minimiser of the
KSD, repeated draws go to their first copy, a one-point KSD is sqrt(k0(x, x))).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

import steinkit as sk
from steinkit.thinning import _first_copies, _geometry, _k0, _kernel, _median_sq, ksd_path, thin

stein_thinning = pytest.importorskip("stein_thinning")
from stein_thinning.kernel import make_imq, make_precon, vfk0_imq  # noqa: E402
from stein_thinning.stein import ksd as reference_ksd  # noqa: E402
from stein_thinning.thinning import _greedy_search, _make_stein_integrand  # noqa: E402
from stein_thinning.thinning import thin as reference_thin  # noqa: E402

PRECONDITIONERS = ["id", "med", "sclmed", "smpcov"]


# --------------------------------------------------------------------------- problems
def _gaussian_2d() -> tuple[np.ndarray, np.ndarray]:
    """500 independent draws of N(0, I_2) with their scores."""
    x = np.random.default_rng(0).normal(size=(500, 2))
    return x, -x


def _correlated_5d_chain() -> tuple[np.ndarray, np.ndarray]:
    """2000 random-walk Metropolis draws of a correlated 5-d Gaussian (repeated draws where a
    proposal is rejected), with their scores."""
    rng = np.random.default_rng(1)
    a = rng.normal(size=(5, 5))
    prec = np.linalg.inv(a @ a.T + np.eye(5))
    mean = np.arange(5.0)
    logp = lambda z: -0.5 * (z - mean) @ prec @ (z - mean)  # noqa: E731
    z, lz = mean.copy(), logp(mean)
    out = np.empty((2000, 5))
    steps, logu = rng.normal(scale=0.6, size=(2000, 5)), np.log(rng.uniform(size=2000))
    for i in range(2000):
        prop = z + steps[i]
        lp = logp(prop)
        if logu[i] < lp - lz:
            z, lz = prop, lp
        out[i] = z
    return out, -(out - mean) @ prec


def _package_gmm() -> tuple[np.ndarray, np.ndarray]:
    """The reference package's own demo: 500 MCMC draws of a 2-d Gaussian mixture."""
    folder = Path(stein_thinning.__file__).parent / "demo" / "data"
    if not folder.is_dir():
        pytest.skip("stein-thinning's demo data are not installed")
    read = lambda name: np.genfromtxt(folder / name, delimiter=",")  # noqa: E731
    return read("smp.csv"), read("scr.csv")


PROBLEMS = {"gaussian-2d": _gaussian_2d, "correlated-5d-chain": _correlated_5d_chain, "package-gmm": _package_gmm}


# --------------------------------------------------------------------------- the reference package
@pytest.mark.parametrize("problem", list(PROBLEMS))
@pytest.mark.parametrize("preconditioner", PRECONDITIONERS)
def test_same_indices_as_the_reference_package(problem, preconditioner):
    x, g = PROBLEMS[problem]()
    ours = thin(torch.from_numpy(x), None, 40, gradients=torch.from_numpy(g), preconditioner=preconditioner)
    ref = reference_thin(x, g, 40, standardize=True, preconditioner=preconditioner)
    assert ours.tolist() == ref.astype(np.int64).tolist()


@pytest.mark.parametrize("preconditioner", PRECONDITIONERS)
def test_same_indices_as_the_reference_package_without_standardizing(preconditioner):
    x, g = _correlated_5d_chain()
    ours = thin(x, None, 30, gradients=g, preconditioner=preconditioner, standardize=False)
    ref = reference_thin(x, g, 30, standardize=False, preconditioner=preconditioner)
    assert ours.tolist() == ref.astype(np.int64).tolist()


def test_a_number_is_the_reference_packages_numeric_length_scale():
    x, g = _correlated_5d_chain()
    ours = thin(x, None, 30, gradients=g, preconditioner=2.5)
    assert ours.tolist() == reference_thin(x, g, 30, preconditioner="2.5").astype(np.int64).tolist()


def test_a_matrix_preconditioner_is_the_reference_kernel_with_that_matrix():
    x, g = _correlated_5d_chain()
    b = np.random.default_rng(2).normal(size=(5, 5))
    gamma = b @ b.T + 0.5 * np.eye(5)
    linv = np.linalg.inv(gamma)
    integrand = _make_stein_integrand(x, g, vfk0=lambda x1, x2, g1, g2: vfk0_imq(x1, x2, g1, g2, linv))
    ref = _greedy_search(30, integrand)
    assert thin(x, None, 30, gradients=g, preconditioner=gamma).tolist() == ref.astype(np.int64).tolist()


@pytest.mark.parametrize("preconditioner", ["sclmed", "smpcov"])
def test_ksd_path_is_the_reference_packages_ksd_sequence(preconditioner):
    x, g = _correlated_5d_chain()
    idx = thin(x, None, 25, gradients=g, preconditioner=preconditioner)
    scale = np.abs(x - x.mean(0)).mean(0)  # the package's standardisation, done by hand
    xs, gs = x / scale, g * scale
    vfk0 = make_imq(xs, preconditioner)  # its preconditioner from all (standardised) draws
    integrand = _make_stein_integrand(xs[idx.numpy()], gs[idx.numpy()], standardize=False, vfk0=vfk0)
    ours = ksd_path(x, None, idx, gradients=g, preconditioner=preconditioner)
    np.testing.assert_allclose(ours.numpy(), reference_ksd(integrand, 25), rtol=1e-12)


@pytest.mark.parametrize("points", [[0, 1, 3], [0, 1, 3, 7], [0, 1, 3, 3], [0, 0, 0, 1, 2]])
def test_median_heuristic_is_the_reference_packages(points):
    """Odd and even numbers of pairs, with and without a tie between the two middle values."""
    x = np.array(points, dtype=np.float64)[:, None]
    assert 1.0 / _median_sq(torch.from_numpy(x)) == make_precon(x, "med")[0, 0]


# --------------------------------------------------------------------------- the Stein kernel
def _autograd_k0(x, y, sx, sy, linv):
    """k0 = ∇x·∇y k + s(x)ᵀ∇y k + s(y)ᵀ∇x k + k s(x)ᵀs(y) for k = (1 + uᵀ L u)^(-1/2), by autograd."""
    x, y = x.clone().requires_grad_(True), y.clone().requires_grad_(True)
    u = x - y
    k = (1.0 + u @ linv @ u) ** -0.5
    gx, gy = torch.autograd.grad(k, (x, y), create_graph=True)
    trace = sum(torch.autograd.grad(gx[j], y, retain_graph=True)[0][j] for j in range(x.numel()))
    return float((trace + sx @ gy + sy @ gx + k * (sx @ sy)).detach())


@pytest.mark.parametrize("preconditioner", ["id", "med", "diagonal", "matrix"])
def test_stein_kernel_matches_autograd(preconditioner):
    g = torch.Generator().manual_seed(3)
    x, s = torch.randn(40, 4, generator=g, dtype=torch.float64), torch.randn(40, 4, generator=g, dtype=torch.float64)
    b = torch.randn(4, 4, generator=g, dtype=torch.float64)
    gamma = {"id": torch.eye(4), "med": None, "diagonal": torch.diag(torch.tensor([0.5, 1.0, 2.0, 4.0])),
             "matrix": b @ b.T + 0.5 * torch.eye(4)}[preconditioner]
    geo = _geometry(x, "med" if gamma is None else gamma.double(), standardize=False)
    linv = torch.eye(4, dtype=torch.float64) * geo.lam if gamma is None else torch.linalg.inv(gamma.double())
    xs, ss, lam, tr = _kernel(geo, x, s)
    for i, j in [(0, 1), (2, 3), (5, 5), (7, 30)]:
        closed = float(_k0(xs[i], ss[i], xs[j], ss[j], lam, tr))
        assert closed == pytest.approx(_autograd_k0(x[i], x[j], s[i], s[j], linv), rel=1e-12, abs=1e-12)


def test_the_row_and_the_column_layout_give_the_same_kernel():
    g = torch.Generator().manual_seed(4)
    x, s = torch.randn(30, 3, generator=g, dtype=torch.float64), torch.randn(30, 3, generator=g, dtype=torch.float64)
    lam = torch.tensor([0.5, 1.0, 3.0], dtype=torch.float64)
    rows = _k0(x, s, x[7], s[7], lam, 4.5)
    cols = _k0(x.T, s.T, x.T[:, 7:8], s.T[:, 7:8], lam[:, None], 4.5, dim=0)
    torch.testing.assert_close(rows, cols, rtol=1e-14, atol=1e-14)


# --------------------------------------------------------------------------- exact answers
def test_one_point_ksd_is_the_root_of_the_diagonal():
    x = torch.randn(50, 3, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    path = ksd_path(x, None, [4, 9], gradients=-x, preconditioner="id", standardize=False)
    assert path[0].item() == pytest.approx(math.sqrt(3.0 + float((x[4] ** 2).sum())), rel=1e-14)


def test_the_first_choice_minimises_the_diagonal():
    # with Γ = I and no standardisation k0(x, x) = d + |s(x)|², so the draw of smallest score wins
    x = torch.randn(300, 2, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    s = -(x - 0.3)
    assert thin(x, None, 1, gradients=s, preconditioner="id", standardize=False).item() == int((s ** 2).sum(1).argmin())


def test_every_step_is_the_greedy_minimiser_of_the_ksd():
    """Against the full (n, n) kernel matrix: step t picks the first i minimising the KSD of
    the selection so far plus x_i."""
    x, g = _correlated_5d_chain()
    x, g = torch.from_numpy(x[::25]), torch.from_numpy(g[::25])  # 80 draws
    idx = thin(x, None, 12, gradients=g, preconditioner="smpcov")
    xs, ss, lam, tr = _kernel(_geometry(x, "smpcov", standardize=True), x, g)
    k0 = _k0(xs[:, None], ss[:, None], xs[None], ss[None], lam, tr)  # (n, n)
    chosen: list[int] = []
    for t in range(12):
        totals = k0[chosen][:, chosen].sum() + 2 * k0[chosen].sum(0) + k0.diagonal()
        best = totals.min()
        assert int(idx[t]) in torch.nonzero(totals <= best + 1e-12 * best.abs()).flatten().tolist()
        chosen.append(int(idx[t]))
    path = ksd_path(x, None, idx, gradients=g, preconditioner="smpcov")
    sums = [float(k0[chosen[:t]][:, chosen[:t]].sum()) for t in range(1, 13)]
    np.testing.assert_allclose(path.numpy(), np.sqrt(sums) / np.arange(1, 13), rtol=1e-12)


def test_repeated_draws_go_to_their_first_copy():
    x = torch.randn(200, 3, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    gamma = torch.tensor([[2.0, 0.5, 0.0], [0.5, 1.0, 0.2], [0.0, 0.2, 0.7]], dtype=torch.float64)
    for pre in ["id", gamma]:
        once = thin(x, None, 30, gradients=-x, preconditioner=pre, block_size=64)
        twice = thin(torch.cat([x, x]), None, 30, gradients=torch.cat([-x, -x]), preconditioner=pre, block_size=64)
        assert twice.tolist() == once.tolist()


@pytest.mark.parametrize("size", [1.0, 1.7e308])  # the second overflows the sort key: exact torch.unique
def test_first_copies_of_repeated_rows(size):
    x = torch.full((6, 4), size, dtype=torch.float64)
    s = torch.tensor([[1.0], [2.0], [1.0], [3.0], [2.0], [1.0]], dtype=torch.float64).expand(6, 4)
    assert _first_copies(x, s).tolist() == [0, 1, 3]


def test_chains_are_taken_one_after_another():
    x = torch.randn(3, 100, 2, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    flat = x.reshape(300, 2)
    assert torch.equal(thin(x, None, 15, gradients=-x), thin(flat, None, 15, gradients=-flat))


def test_a_target_gives_the_indices_of_its_gradients():
    x = torch.randn(300, 3, generator=torch.Generator().manual_seed(9))
    model = sk.models.Gaussian(torch.zeros(3), torch.eye(3))
    by_model = thin(x, model, 20)
    assert torch.equal(by_model, thin(x, None, 20, gradients=model.score(x)))
    assert torch.equal(by_model, thin(x, lambda z: -z, 20, block_size=7))  # scores in blocks


def test_block_size_does_not_change_the_indices():
    x, g = _correlated_5d_chain()
    assert torch.equal(thin(x, None, 30, gradients=g, block_size=97), thin(x, None, 30, gradients=g))


def test_m_larger_than_n_repeats_draws():
    x = torch.randn(5, 2, generator=torch.Generator().manual_seed(10), dtype=torch.float64)
    idx = thin(x, None, 12, gradients=-x, preconditioner="id")
    assert idx.shape == (12,) and idx.dtype == torch.int64 and len(set(idx.tolist())) <= 5


# --------------------------------------------------------------------------- input errors
X = torch.randn(50, 2, generator=torch.Generator().manual_seed(11), dtype=torch.float64)
GAUSS_3D = sk.models.Gaussian(torch.zeros(3), torch.eye(3))


def _thin(draws=X, target=None, m=2, **options):
    """thin on 50 draws of N(0, I_2) with their gradients, unless told otherwise."""
    if target is None:
        options.setdefault("gradients", -X[: len(draws)])
    return thin(draws, target, m, **options)


ERRORS = {
    "m zero": (lambda: _thin(m=0), ValueError, "m must be >= 1"),
    "m float": (lambda: _thin(m=2.5), TypeError, "m must be an int"),
    "draws nan": (lambda: _thin(torch.full((5, 2), math.nan)), ValueError, "draws contains NaN"),
    "draws 1-d": (lambda: _thin(X[:, 0]), ValueError, "draws must be a 2-D"),
    "gradients shape": (lambda: _thin(gradients=-X[:40]), ValueError, "gradients must have the shape of draws"),
    "gradients inf": (lambda: _thin(gradients=X / 0.0), ValueError, "gradients contains NaN or infinite"),
    "neither": (lambda: thin(X, None, 2), ValueError, "give exactly one of target"),
    "both": (lambda: _thin(target=lambda z: -z, gradients=-X), ValueError, "give exactly one of target"),
    "score nan": (lambda: _thin(target=lambda z: z / 0.0), ValueError, "score of model .* NaN or inf"),
    "target type": (lambda: _thin(target=3), TypeError, "model must be"),
    "target dim": (lambda: _thin(target=GAUSS_3D), ValueError, "draws has dimension 2"),
    "unknown preconditioner": (lambda: _thin(preconditioner="median"), ValueError, "preconditioner must be one of"),
    "negative preconditioner": (lambda: _thin(preconditioner=-1.0), ValueError,
                                "preconditioner must be a finite number > 0"),
    "not positive definite": (lambda: _thin(preconditioner=[[1.0, 2.0], [2.0, 1.0]]), ValueError,
                              "preconditioner must be positive definite"),
    "not positive diagonal": (lambda: _thin(preconditioner=torch.diag(torch.tensor([1.0, 0.0]))), ValueError,
                              "preconditioner must be positive definite"),
    "not symmetric": (lambda: _thin(preconditioner=[[1.0, 0.5], [0.0, 1.0]]), ValueError,
                      "preconditioner must be a symmetric"),
    "matrix shape": (lambda: _thin(preconditioner=torch.eye(3)), ValueError,
                     r"preconditioner must be a \(2, 2\) matrix"),
    "preconditioner type": (lambda: _thin(preconditioner=object()), TypeError, "preconditioner must be"),
    "singular covariance": (lambda: _thin(X[:, [0, 0]], preconditioner="smpcov"), ValueError,
                            "preconditioner='smpcov'.* positive definite"),
    "too few draws for smpcov": (lambda: _thin(X[:2], preconditioner="smpcov"), ValueError, "smpcov' needs more draws"),
    "all draws equal": (lambda: _thin(torch.ones(10, 2), standardize=False), ValueError,
                        "median distance between draws is 0"),
    "constant column": (lambda: _thin(torch.cat([X[:, :1], torch.ones(50, 1)], 1)), ValueError,
                        "draws has a constant column"),
    "standardize type": (lambda: _thin(standardize="yes"), TypeError, "standardize must be a bool"),
    "block_size": (lambda: _thin(block_size=0), ValueError, "block_size must be >= 1"),
    "device": (lambda: _thin(device="gpu"), ValueError, "device must name"),
    "indices range": (lambda: ksd_path(X, None, [0, 50], gradients=-X), ValueError, r"indices must lie in \[0, 50\)"),
    "indices float": (lambda: ksd_path(X, None, [0.0, 1.0], gradients=-X), TypeError, "indices must hold integers"),
    "indices empty": (lambda: ksd_path(X, None, [], gradients=-X), ValueError, "indices must be a non-empty"),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_bad_input_names_the_argument(case):
    call, error, message = ERRORS[case]
    with pytest.raises(error, match=message):
        call()

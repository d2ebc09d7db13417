"""Tests for steinkit.samplers.sgld against exact answers for Gaussian targets.

For a Gaussian target N(mu, Sigma) the score is -P (x - mu) with P = Sigma^-1, so each SGLD step
is a linear Gaussian map  x' = A x + b + noise:
  Eq. 18: A = I - (eps/2) P, b = (eps/2) P mu, noise covariance eps I;
  Eq. 19: A = I - eps P,     b = eps P mu,     noise covariance sigma^2 I.
The mean and covariance after T steps from a fixed start are then known exactly
(m' = A m + b, C' = A C A^T + Q), which lets the tests separate discretisation bias from
Monte-Carlo error.
"""

from __future__ import annotations

import math

import pytest
import torch

from steinkit.samplers.sgld import SGLDResult, sgld, sgld_step

MU = torch.tensor([1.0, -2.0], dtype=torch.float64)
SIGMA = torch.tensor([[1.0, 0.6], [0.6, 2.0]], dtype=torch.float64)
PREC = torch.linalg.inv(SIGMA)


def precision_times(d: torch.Tensor) -> torch.Tensor:
    """(x - mu) P written out for d = 2: avoids BLAS, whose threads crawl on a busy 2-core box."""
    p = PREC.to(d.dtype)
    return d[:, :1] * p[0] + d[:, 1:] * p[1]


def gaussian_score(x: torch.Tensor) -> torch.Tensor:
    return -precision_times(x - MU.to(x.dtype))


def exact_moments(eps: float, noise_std: float | None, n_steps: int, x0: torch.Tensor):
    """Exact mean and covariance of the chain after n_steps from the point x0 (float64)."""
    eye = torch.eye(2, dtype=torch.float64)
    if noise_std is None:
        A, b, Q = eye - 0.5 * eps * PREC, 0.5 * eps * PREC @ MU, eps * eye
    else:
        A, b, Q = eye - eps * PREC, eps * PREC @ MU, noise_std**2 * eye
    m, C = x0.clone(), torch.zeros(2, 2, dtype=torch.float64)
    for _ in range(n_steps):
        m, C = A @ m + b, A @ C @ A.T + Q
    return m, C


def check_moments(x: torch.Tensor, m: torch.Tensor, C: torch.Tensor, slack: torch.Tensor | None = None) -> None:
    """Sample mean / covariance of x agree with (m, C) within 4 standard errors (+ slack on C)."""
    n = x.shape[0]
    x = x.double()
    mean_se = torch.sqrt(torch.diag(C) / n)
    assert ((x.mean(0) - m).abs() < 4 * mean_se).all(), (x.mean(0), m, mean_se)
    # Var of the product (x_i - m_i)(x_j - m_j) for a Gaussian is C_ii C_jj + C_ij^2.
    cov_se = torch.sqrt((torch.outer(torch.diag(C), torch.diag(C)) + C**2) / n)
    bound = 4 * cov_se + (0 if slack is None else slack)
    assert ((torch.cov(x.T) - C).abs() < bound).all(), (torch.cov(x.T), C, bound)


@pytest.mark.parametrize("noise_std", [None, 0.3], ids=["eq18", "eq19"])
def test_gaussian_moments_match_exact_chain(noise_std: float | None) -> None:
    eps, n_steps, n = 0.1, 300, 4000
    x0 = torch.zeros(n, 2)
    res = sgld(gaussian_score, x0, step_size=eps, n_steps=n_steps, noise_std=noise_std,
               generator=torch.Generator().manual_seed(0))
    m, C = exact_moments(eps, noise_std, n_steps, torch.zeros(2, dtype=torch.float64))
    check_moments(res.samples, m, C)


def test_plain_sgld_targets_gaussian_up_to_discretisation_bias() -> None:
    eps, n_steps, n = 0.05, 2000, 4000
    # the chain has mixed: after n_steps the exact moments equal the stationary ones ...
    m, C = exact_moments(eps, None, n_steps, torch.zeros(2, dtype=torch.float64))
    # ... which for Eq. 18 are mu and Sigma (I - (eps/4) P)^-1 = Sigma + O(eps)
    stationary = SIGMA @ torch.linalg.inv(torch.eye(2, dtype=torch.float64) - 0.25 * eps * PREC)
    torch.testing.assert_close(m, MU, atol=1e-8, rtol=0)
    torch.testing.assert_close(C, stationary, atol=1e-8, rtol=0)
    bias = (stationary - SIGMA).abs()
    assert bias.max() < 0.02  # eps/4 * (1 + O(eps)) in every entry
    res = sgld(gaussian_score, torch.zeros(n, 2, dtype=torch.float64), step_size=eps, n_steps=n_steps,
               generator=torch.Generator().manual_seed(1))
    check_moments(res.samples, MU, SIGMA, slack=bias)


def test_tempered_sgld_concentrates_on_mode() -> None:
    x0 = torch.randn(500, 2, generator=torch.Generator().manual_seed(2)) * 3
    res = sgld(gaussian_score, x0, step_size=0.1, n_steps=500, noise_std=0.0,
               generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(res.samples, MU.float().expand(500, 2), atol=1e-5, rtol=0)
    # with noise sigma the stationary spread is sigma^2 sum_k 1/(1 - a_k^2), a_k = 1 - eps/lambda_k
    spreads = []
    for sigma in (1e-1, 1e-2, 1e-3):
        res = sgld(gaussian_score, x0.double(), step_size=0.1, n_steps=500, noise_std=sigma,
                   generator=torch.Generator().manual_seed(4))
        spreads.append(((res.samples - MU) ** 2).sum(1).mean().item())
        _, C = exact_moments(0.1, sigma, 500, torch.zeros(2, dtype=torch.float64))
        # E||x - mu||^2 = tr C; its estimate has relative sd <= sqrt(2 / 500) ~ 0.063
        assert spreads[-1] == pytest.approx(torch.trace(C).item(), rel=4 * math.sqrt(2 / 500))
    assert spreads[0] > 50 * spreads[1] > 2500 * spreads[2]


def test_same_seed_same_samples_and_dtype() -> None:
    x0 = torch.randn(64, 3, generator=torch.Generator().manual_seed(0))
    score = lambda x: -x  # noqa: E731
    a = sgld(score, x0, step_size=0.05, n_steps=20, generator=torch.Generator().manual_seed(5)).samples
    b = sgld(score, x0, step_size=0.05, n_steps=20, generator=torch.Generator().manual_seed(5)).samples
    c = sgld(score, x0, step_size=0.05, n_steps=20, generator=torch.Generator().manual_seed(6)).samples
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.dtype == torch.float32
    d = sgld(score, x0.double(), step_size=0.05, n_steps=20, generator=torch.Generator().manual_seed(5)).samples
    assert d.dtype == torch.float64  # (float64 noise is a different stream from float32 noise)


def test_snapshots_at_requested_steps() -> None:
    x0 = torch.randn(16, 2, generator=torch.Generator().manual_seed(0))
    res = sgld(gaussian_score, x0, step_size=0.1, n_steps=30, snapshot_steps=[0, 7, 30, 7],
               generator=torch.Generator().manual_seed(1))
    assert isinstance(res, SGLDResult)
    assert sorted(res.snapshots) == [0, 7, 30]
    assert torch.equal(res.snapshots[0], x0)
    assert torch.equal(res.snapshots[30], res.samples)
    short = sgld(gaussian_score, x0, step_size=0.1, n_steps=7, generator=torch.Generator().manual_seed(1))
    assert torch.equal(res.snapshots[7], short.samples)
    assert "snapshots=[0, 7, 30]" in repr(res)
    none = sgld(gaussian_score, x0, step_size=0.1, n_steps=3)
    assert none.snapshots == {}


def test_one_step_formulas() -> None:
    x = torch.randn(8, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    noise = torch.randn(8, 2, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    eps, sigma = 0.3, 0.07
    s = gaussian_score(x)
    out18 = sgld_step(gaussian_score, x, step_size=eps, generator=torch.Generator().manual_seed(9))
    torch.testing.assert_close(out18, x + eps / 2 * s + math.sqrt(eps) * noise)
    out19 = sgld_step(gaussian_score, x, step_size=eps, noise_std=sigma, generator=torch.Generator().manual_seed(9))
    torch.testing.assert_close(out19, x + eps * s + sigma * noise)
    res = sgld(gaussian_score, x, step_size=eps, n_steps=1, generator=torch.Generator().manual_seed(9))
    torch.testing.assert_close(res.samples, out18)


def test_autograd_score_works_under_no_grad_and_builds_no_graph() -> None:
    weight = torch.tensor(1.0, requires_grad=True)

    def energy_score(x: torch.Tensor) -> torch.Tensor:
        x = x.requires_grad_(True)
        d = x - MU.float()
        energy = 0.5 * weight * (precision_times(d) * d).sum()
        return -torch.autograd.grad(energy, x)[0]

    x0 = torch.zeros(32, 2, requires_grad=True)
    with torch.no_grad():
        a = sgld(energy_score, x0, step_size=0.1, n_steps=10, generator=torch.Generator().manual_seed(0))
    b = sgld(gaussian_score, x0.detach(), step_size=0.1, n_steps=10, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(a.samples, b.samples)
    # outside no_grad too: the score's requires_grad_() on its input must not leak into the chain
    a2 = sgld(energy_score, x0, step_size=0.1, n_steps=10, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a2.samples, a.samples) and a2.samples.grad_fn is None
    # a score that carries a graph (through `weight`) is detached each step
    c = sgld(lambda x: -weight * x, x0, step_size=0.1, n_steps=5, snapshot_steps=(2,))
    assert not c.samples.requires_grad and c.samples.grad_fn is None
    assert not c.snapshots[2].requires_grad
    assert not x0.detach().any()  # x0 is not modified in place


def test_clamp_and_zero_steps() -> None:
    x0 = torch.zeros(100, 2)
    res = sgld(lambda x: torch.ones_like(x), x0, step_size=1.0, n_steps=10, clamp=(-0.5, 0.5),
               generator=torch.Generator().manual_seed(0))
    assert res.samples.min() >= -0.5 and res.samples.max() <= 0.5
    zero = sgld(gaussian_score, x0, step_size=0.1, n_steps=0, snapshot_steps=(0,))
    assert torch.equal(zero.samples, x0) and zero.samples is not x0


def test_progress_bar_runs(capsys: pytest.CaptureFixture[str]) -> None:
    res = sgld(gaussian_score, torch.zeros(4, 2), step_size=0.1, n_steps=3, progress=True)
    assert res.samples.shape == (4, 2)


def test_divergence_warns() -> None:
    with pytest.warns(RuntimeWarning, match=r"non-finite.*step_size"):
        sgld(lambda x: -x, torch.ones(4, 2), step_size=10.0, n_steps=200,
             generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        (dict(step_size=0.0), ValueError, r"step_size must be a finite number > 0"),
        (dict(step_size=-1.0), ValueError, r"step_size must be a finite number > 0"),
        (dict(step_size=float("nan")), ValueError, r"step_size must be a finite number > 0, got nan"),
        (dict(step_size="0.1"), TypeError, r"step_size must be a real number"),
        (dict(n_steps=-1), ValueError, r"n_steps must be >= 0"),
        (dict(n_steps=2.0), TypeError, r"n_steps must be an int"),
        (dict(n_steps=True), TypeError, r"n_steps must be an int"),
        (dict(noise_std=-0.1), ValueError, r"noise_std must be a finite number >= 0"),
        (dict(snapshot_steps=(11,)), ValueError, r"snapshot_steps entries must be in \[0, n_steps=10\]"),
        (dict(snapshot_steps=(1.5,)), TypeError, r"snapshot_steps must hold ints"),
        (dict(clamp=(1.0, 0.0)), ValueError, r"clamp must satisfy low < high"),
        (dict(clamp=(0.0,)), ValueError, r"clamp must be a pair"),
    ],
)
def test_bad_arguments(kwargs: dict, error: type, match: str) -> None:
    args = dict(step_size=0.1, n_steps=10) | kwargs
    with pytest.raises(error, match=match):
        sgld(gaussian_score, torch.zeros(3, 2), **args)


def test_bad_x0_and_score() -> None:
    kw = dict(step_size=0.1, n_steps=2)
    with pytest.raises(ValueError, match=r"x0 must be a 2-D tensor \(n, d\), got shape \(3,\)"):
        sgld(gaussian_score, torch.zeros(3), **kw)
    with pytest.raises(ValueError, match=r"x0 contains NaN or infinite values"):
        sgld(gaussian_score, torch.tensor([[0.0, float("inf")]]), **kw)
    with pytest.raises(TypeError, match=r"x0 must be a floating tensor"):
        sgld(gaussian_score, torch.zeros(3, 2, dtype=torch.int64), **kw)
    with pytest.raises(TypeError, match=r"x0 must be a torch.Tensor"):
        sgld(gaussian_score, [[0.0, 0.0]], **kw)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"score_fn must be callable"):
        sgld(None, torch.zeros(3, 2), **kw)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"score_fn must return a tensor of the input's shape \(3, 2\), got \(3,\)"):
        sgld(lambda x: x.sum(1), torch.zeros(3, 2), **kw)
    with pytest.raises(TypeError, match=r"score_fn must return a torch.Tensor"):
        sgld(lambda x: 0.0, torch.zeros(3, 2), **kw)
    with pytest.raises(ValueError, match=r"x must be a 2-D tensor"):
        sgld_step(gaussian_score, torch.zeros(2), step_size=0.1)

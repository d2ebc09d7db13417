"""Finite Set Stein Discrepancy (FSSD) test.

Jitkrittum, Xu, Szabó, Fukumizu & Gretton (2017), "A linear-time kernel goodness-of-fit
test". With J test locations ``v_1..v_J`` and a kernel k (``kernel=``, by default the Gaussian
``k(x, v) = exp(-||x - v||^2 / (2 h^2))``), the Stein witness at ``v_j`` is

    xi(x, v_j) = s(x) k(x, v_j) + grad_x k(x, v_j)   (Gaussian: k(x, v_j) (s(x) - (x - v_j) / h^2)),

the feature vector is ``tau(x) = [xi(x, v_1), ..., xi(x, v_J)] / sqrt(d J)`` in R^{dJ}, and
``FSSD^2 = ||E tau(x)||^2``, estimated without bias by
``(||sum_i tau_i||^2 - sum_i ||tau_i||^2) / (n (n - 1))``.

The test: a seeded split keeps ``train_fraction`` of x to choose the locations and the
bandwidth (locations drawn from a Gaussian fitted to the training split, then Adam on
the power criterion ``FSSD^2 / sqrt(sigma_H1^2 + reg)``, ``sigma_H1^2 = 4 var(tau(x)^T mu)``);
the statistic ``n FSSD^2`` is computed on the rest, and its null distribution
``sum_i lambda_i (Z_i^2 - 1)`` is simulated with ``lambda`` the eigenvalues of the covariance
of ``tau`` on the test split (from its (n, n) Gram matrix when n < dJ: the same non-zero
eigenvalues, so no (dJ, dJ) matrix is formed and large d costs O(n^2 dJ), not O((dJ)^3)).
p-value: the fraction of simulations ``>=`` the statistic. Locations are optimized in
coordinates standardized by the training split (so the learning rate is scale free) and the
bandwidth in log space.

The test is linear in n, but its optimisation costs about opt_steps·n_train·J·d: before it
starts, the test predicts its time (from one timed step on part of the training split) and
memory and refuses above ``max_seconds`` or ``max_memory_gb`` (:mod:`steinkit.gof.cost`).

Example:
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> x = torch.randn(500, 2, generator=g) + 0.5      # model N(0, I): scores -x
    >>> fssd_test(x, -x, opt_steps=50, generator=g).pvalue < 0.05
    True
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from ..kernels import Gaussian, as_kernel
from ..validation import as_generator, integer, nonneg_float, positive_float, probability
from .cost import DEFAULT_MAX_SECONDS, best_time, check_limits, guard, one_thread, thread_speedup
from .kernels import _data_and_scores, _float64_matrix, _generator_device, _split_indices, _start
from .outcome import TestOutcome

__all__ = ["fssd_features", "fssd_statistic", "fssd_power_criterion", "fssd_test"]


def _features(kernel: Any, x64: Tensor, s64: Tensor, locations: Tensor) -> Tensor:
    """tau(x) as an (n, J*d) tensor for a kernel with a fixed bandwidth; differentiable in
    ``locations`` and in a tensor bandwidth."""
    n, d = x64.shape
    J = locations.shape[0]
    xi = kernel.value(x64, locations)[:, :, None] * s64[:, None, :] + kernel.grad_x(x64, locations)
    return xi.reshape(n, J * d) / math.sqrt(d * J)


def _kernel(kernel: Any) -> Any:
    return as_kernel(Gaussian() if kernel is None else kernel)


def _fssd2_unbiased(tau: Tensor) -> Tensor:
    n = tau.shape[0]
    total = tau.sum(0)
    return ((total * total).sum() - (tau * tau).sum()) / (n * (n - 1))


def _power(tau: Tensor, reg: float) -> Tensor:
    mu = tau.mean(0)
    proj = tau @ mu
    var_h1 = 4.0 * ((proj * proj).mean() - (mu @ mu) ** 2)
    return _fssd2_unbiased(tau) / torch.sqrt(var_h1.clamp_min(0.0) + reg)


def _check_locations(locations: Any, d: int, device: torch.device) -> Tensor:
    v = _float64_matrix(locations, "locations")
    if v.shape[1] != d:
        raise ValueError(f"locations must have shape (J, d) with d={d} columns like x, got {tuple(v.shape)}")
    return v.to(device)


def _checked_features(x: Tensor, s: Tensor, locations: Tensor, bandwidth: float, kernel: Any, min_n: int, what: str):
    """Checked float64 copies of the inputs and their features tau, (n, J*d)."""
    x64, s64 = _data_and_scores(x, s, min_n=min_n, what=what)
    v = _check_locations(locations, x64.shape[1], x64.device)
    return x64, _features(_kernel(kernel).with_bandwidth(positive_float(bandwidth, "bandwidth")), x64, s64, v)


def fssd_features(x: Tensor, s: Tensor, locations: Tensor, bandwidth: float, *, kernel: Any = None) -> Tensor:
    """The FSSD feature vectors ``tau(x_i)`` in R^{dJ}, shape (n, J*d), float64.

    Column block j (columns ``j*d .. (j+1)*d - 1``) is ``xi(x, v_j) / sqrt(d J)``.

    Arguments:
        x: data, shape (n, d).
        s: scores at x, shape (n, d).
        locations: test locations V, shape (J, d).
        bandwidth: kernel bandwidth h > 0.
        kernel: a Stein kernel (:mod:`steinkit.kernels`) or its name; None: the Gaussian kernel.

    Example:
        >>> import torch
        >>> x = torch.randn(10, 3, generator=torch.Generator().manual_seed(0))
        >>> fssd_features(x, -x, torch.zeros(2, 3), 1.0).shape
        torch.Size([10, 6])
    """
    return _checked_features(x, s, locations, bandwidth, kernel, 1, "FSSD features")[1]


def fssd_statistic(x: Tensor, s: Tensor, locations: Tensor, bandwidth: float, *, kernel: Any = None) -> float:
    """The FSSD test statistic ``n * FSSD^2`` (unbiased U-statistic estimate of FSSD^2).

    Arguments as for :func:`fssd_features`, with n >= 2.

    Example:
        >>> import torch
        >>> x = torch.randn(400, 2, generator=torch.Generator().manual_seed(0))
        >>> fssd_statistic(x, -(x - 1.0), torch.zeros(3, 2), 1.0) > fssd_statistic(x, -x, torch.zeros(3, 2), 1.0)
        True
    """
    x64, tau = _checked_features(x, s, locations, bandwidth, kernel, 2, "the FSSD statistic")
    return float(x64.shape[0] * _fssd2_unbiased(tau))


def fssd_power_criterion(
    x: Tensor, s: Tensor, locations: Tensor, bandwidth: float, *, reg: float = 1e-2, kernel: Any = None
) -> float:
    """The FSSD power criterion ``FSSD^2 / sqrt(4 var(tau(x)^T mu) + reg)`` (mu = mean feature).

    Arguments as for :func:`fssd_features` (n >= 2), and ``reg`` (>= 0), added to the H1 variance.

    Example:
        >>> import torch
        >>> x = torch.randn(400, 2, generator=torch.Generator().manual_seed(0))
        >>> fssd_power_criterion(x, -(x - 1.0), torch.zeros(3, 2), 1.0) > 0
        True
    """
    _, tau = _checked_features(x, s, locations, bandwidth, kernel, 2, "the FSSD power criterion")
    return float(_power(tau, nonneg_float(reg, "reg")))


def _gaussian_locations(x64: Tensor, J: int, generator: torch.Generator | None) -> Tensor:
    """J draws from N(mean(x), cov(x)) (a singular covariance is fine).

    With d <= n through the (d, d) covariance's eigendecomposition; with d > n (the
    covariance has rank < n) as ``mean + w^T xc / sqrt(n - 1)``, ``w ~ N(0, I_n)`` and ``xc``
    the centred data: the same law, in O(J n d) time and memory instead of a (d, d) matrix
    and its O(d^3) eigendecomposition (the draws differ from the d x d path's).
    """
    n, d = x64.shape
    mean = x64.mean(0)
    if d > n:
        w = torch.randn(J, n, generator=generator, device=_generator_device(generator),
                        dtype=torch.float64).to(x64.device)
        return mean + (w @ (x64 - mean)) / math.sqrt(n - 1)
    cov = torch.atleast_2d(torch.cov(x64.T))
    evals, evecs = torch.linalg.eigh(cov)
    root = evecs * evals.clamp_min(0.0).sqrt()
    z = torch.randn(J, x64.shape[1], generator=generator, device=_generator_device(generator),
                    dtype=torch.float64).to(x64.device)
    return mean + z @ root.T


def fssd_test(
    x: Tensor,
    s: Tensor,
    *,
    kernel: Any = None,
    n_locations: int = 5,
    train_fraction: float = 0.2,
    opt_steps: int = 200,
    learning_rate: float = 0.05,
    reg: float = 1e-2,
    n_simulate: int = 3000,
    locations: Tensor | None = None,
    bandwidth: float | None = None,
    generator: torch.Generator | None = None,
    max_seconds: float | None = DEFAULT_MAX_SECONDS,
    max_memory_gb: float | str | None = "auto",
) -> TestOutcome:
    """FSSD goodness-of-fit test with optimized test locations and bandwidth.

    Arguments:
        x: data, shape (n, d); the split needs at least 2 points on each side.
        s: scores grad_x log q at x, shape (n, d).
        kernel: a Stein kernel with one bandwidth (:mod:`steinkit.kernels`) or its name; None: the
            Gaussian kernel with the median heuristic. Its bandwidth is where the optimisation starts.
        n_locations: J, the number of test locations (>= 1); ignored when ``locations`` is given.
        train_fraction: fraction of x (seeded random split) used to choose locations and bandwidth.
        opt_steps: Adam steps on the power criterion (0: keep the initial locations and bandwidth);
            the best iterate by the training criterion, the initial point included, is kept.
        learning_rate: Adam learning rate (on standardized locations and the log bandwidth).
        reg: regularizer of the power criterion's variance.
        n_simulate: draws from the simulated null distribution (>= 1).
        locations: initial locations (J, d); None draws J from a Gaussian fitted to the training split.
        bandwidth: initial bandwidth; None uses the kernel's on the training split (the median
            heuristic by default).
        generator: torch.Generator for the split, the initial locations and the null simulation.
        max_seconds, max_memory_gb: refuse when the predicted time or memory is above these
            (:mod:`steinkit.gof.cost`; ``"auto"``: half of the memory available; None: no limit).

    Returns:
        TestOutcome with ``statistic = n_test * FSSD^2`` on the test split,
        ``pvalue = #{sim >= stat} / n_simulate``, and details ``locations`` ((J, d) CPU float64),
        ``bandwidth``, ``power_criterion_init``, ``power_criterion_opt`` (training split),
        ``fssd2``, ``n_train``, ``n_test``, ``n_locations``, ``opt_steps``, ``n_simulate``.

    Example:
        >>> import torch
        >>> g = torch.Generator().manual_seed(0)
        >>> x = torch.randn(300, 2, generator=g)
        >>> out = fssd_test(x, -x, opt_steps=20, generator=g)
        >>> 0.0 <= out.pvalue <= 1.0
        True
    """
    x64, s64 = _data_and_scores(x, s, min_n=4, what="the FSSD test")
    n_locations, opt_steps = integer(n_locations, "n_locations", minimum=1), integer(opt_steps, "opt_steps", minimum=0)
    train_fraction, n_simulate = probability(train_fraction, "train_fraction"), integer(n_simulate, "n_simulate", minimum=1)
    learning_rate, reg = positive_float(learning_rate, "learning_rate"), nonneg_float(reg, "reg")
    as_generator(generator=generator)
    kernel = _kernel(kernel)
    v0 = None if locations is None else _check_locations(locations, x64.shape[1], x64.device)
    h0 = None if bandwidth is None else positive_float(bandwidth, "bandwidth")

    train, test = _split_indices(x64.shape[0], train_fraction, generator)
    x_tr, s_tr = x64[train.to(x64.device)], s64[train.to(x64.device)]
    x_te, s_te = x64[test.to(x64.device)], s64[test.to(x64.device)]
    _guard(kernel, x_tr, s_tr, x_te.shape[0], n_locations if v0 is None else v0.shape[0], opt_steps, reg,
           max_seconds, max_memory_gb)
    v0 = _gaussian_locations(x_tr, n_locations, generator) if v0 is None else v0
    h0 = _start(kernel, x_tr) if h0 is None else h0
    crit_init, crit_opt, v_opt, h_opt = _optimize_locations(kernel, x_tr, s_tr, v0, h0, reg, opt_steps, learning_rate)

    tau = _features(kernel.with_bandwidth(h_opt), x_te, s_te, v_opt)
    fssd2 = _fssd2_unbiased(tau)
    stat = _statistic(tau, fssd2, h_opt)
    pvalue = _simulated_pvalue(tau, stat, n_simulate, generator)
    details: dict[str, Any] = dict(
        kernel=repr(kernel), locations=v_opt.cpu(), bandwidth=h_opt, power_criterion_init=crit_init,
        power_criterion_opt=crit_opt, fssd2=float(fssd2), n_train=int(train.numel()), n_test=tau.shape[0],
        n_locations=int(v_opt.shape[0]), opt_steps=opt_steps, n_simulate=n_simulate,
    )
    return TestOutcome(statistic=stat, pvalue=pvalue, details=details)


def _statistic(tau: Tensor, fssd2: Tensor, bandwidth: float) -> float:
    """n_test · FSSD²; features all equal (a null of all-zero eigenvalues, where p = 1 says
    nothing) raise ``FloatingPointError``."""
    n_te = tau.shape[0]
    stat = float(n_te * fssd2)
    if stat <= 0 and not bool((tau != tau[0]).any()):
        raise FloatingPointError(
            f"the FSSD features on the {n_te} test points are all equal (zero variance), so the test is undefined: "
            f"the bandwidth ({bandwidth:.3g}) is far from the scale of the data, or the data have no spread; "
            "give another bandwidth or check x"
        )
    return stat


def _guard(kernel: Any, x_tr: Tensor, s_tr: Tensor, n_test: int, J: int, opt_steps: int, reg: float,
           max_seconds: Any, max_memory_gb: Any) -> None:
    """Refuse an FSSD test whose predicted time or memory is over the limits (:mod:`.cost`).

    The time is (opt_steps + 1) criterion steps on the training split plus the test split's
    features, at the seconds per row of one timed step (criterion and gradient) on up to 65536
    training rows (more than a cache holds, like the test), timed on one thread and divided by
    the threads' speedup."""
    max_seconds, max_memory_gb = check_limits(max_seconds, max_memory_gb)
    (n_train, d), device = x_tr.shape, x_tr.device

    def seconds(per_row: float) -> float:
        return per_row * ((opt_steps + 1) * n_train + 0.5 * n_test)

    def measure() -> float:
        m = min(n_train, 65536)
        xb, sb = x_tr[:m], s_tr[:m]
        v = xb[torch.arange(J, device=device) % m].clone().requires_grad_(True)
        eta = torch.zeros((), dtype=torch.float64, device=device, requires_grad=True)
        h0 = _start(kernel, xb)

        def step() -> None:
            with torch.enable_grad():
                (-_power(_features(kernel.with_bandwidth(h0 * torch.exp(eta)), xb, sb, v), reg)).backward()

        with one_thread(device):
            per_row = best_time(step, device, repeats=1) / m
        return per_row / thread_speedup(device)

    n = n_train + n_test
    guard("fssd", f"is linear in n but its optimisation costs opt_steps·n_train·J·d: n = {n} (n_train = {n_train}, "
                  f"{opt_steps} steps, J = {J}, d = {d})",
          seconds=seconds, nbytes=8.0 * (J * d * (6 * n_train + 3 * n_test) + 6 * n * d),
          rates=(1e-6 * J * d, measure), device=device, max_seconds=max_seconds, max_memory_gb=max_memory_gb,
          advice="lower opt_steps or train_fraction, use method='lksd' or the learned test (method='lsd')")


def _optimize_locations(
    kernel: Any,
    x_tr: Tensor, s_tr: Tensor, v0: Tensor, h0: float, reg: float, opt_steps: int, learning_rate: float
) -> tuple[float, float, Tensor, float]:
    """Adam on the power criterion over locations (standardized coordinates) and log bandwidth.

    Returns (initial criterion, best criterion, best locations, best bandwidth); the initial
    point counts as a candidate.
    """
    # optimize in standardized coordinates: v = centre + scale * z, h = h0 * exp(eta)
    centre = x_tr.mean(0)
    scale = x_tr.std(0, unbiased=True)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    z = ((v0 - centre) / scale).clone().requires_grad_(True)
    eta = torch.zeros((), dtype=torch.float64, device=x_tr.device, requires_grad=True)
    with torch.enable_grad():
        def criterion() -> Tensor:
            return _power(_features(kernel.with_bandwidth(h0 * torch.exp(eta)), x_tr, s_tr, centre + scale * z), reg)

        crit = criterion()
        crit_init = float(crit.detach())
        best = (crit_init, v0.clone(), h0)
        opt = torch.optim.Adam([z, eta], lr=learning_rate)
        for _ in range(opt_steps):
            opt.zero_grad()
            (-crit).backward()
            opt.step()
            crit = criterion()
            c = float(crit.detach())
            if math.isfinite(c) and c > best[0]:
                best = (c, (centre + scale * z).detach().clone(), float(h0 * torch.exp(eta.detach())))
    return crit_init, best[0], best[1], best[2]


def _null_eigenvalues(tau: Tensor, via: str | None = None) -> Tensor:
    """The largest ``min(n, p)`` eigenvalues (ascending, clamped at 0) of the covariance of tau (n, p).

    The (p, p) covariance ``tc^T tc / (n - 1)`` of the centred features ``tc`` and their
    (n, n) Gram matrix ``tc tc^T / (n - 1)`` have the same non-zero eigenvalues (at most
    n - 1 of them), so only the smaller matrix is formed: ``via`` is "gram" when n < p,
    "covariance" otherwise (either may be forced, for tests). With p <= n these are all
    p eigenvalues of the covariance, as before; with n < p the p - n dropped ones are zero.
    """
    n, p = tau.shape
    if via is None:
        via = "gram" if n < p else "covariance"
    if via == "gram":
        tc = tau - tau.mean(0)
        evals = torch.linalg.eigvalsh(tc @ tc.T / (n - 1))
    elif via == "covariance":
        evals = torch.linalg.eigvalsh(torch.atleast_2d(torch.cov(tau.T)))
    else:
        raise ValueError(f"via must be 'gram' or 'covariance', got {via!r}")
    return evals[-min(n, p):].clamp_min(0.0)


def _simulated_pvalue(
    tau: Tensor, stat: float, n_simulate: int, generator: torch.Generator | None, via: str | None = None
) -> float:
    """Fraction of draws of the null sum_i lambda_i (Z_i^2 - 1) at or above ``stat``.

    One Z per eigenvalue of :func:`_null_eigenvalues` (``min(n, p)`` of them), so both of
    its paths give the same draws and the same p-value.
    """
    evals = _null_eigenvalues(tau, via)
    zs = torch.randn(n_simulate, evals.numel(), generator=generator, device=_generator_device(generator),
                     dtype=torch.float64).to(evals.device)
    sims = (zs * zs - 1.0) @ evals
    return float((sims >= stat).double().mean())

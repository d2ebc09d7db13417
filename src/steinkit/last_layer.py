"""The closed-form last layer of a critic: the Stein witness of fixed network features.

A critic f(x) = W φ(x) + b with fixed features φ (the last hidden layer, h units) has Stein
terms linear in (W, b): T(x) = ⟨W, s(x) φ(x)ᵀ + J_φ(x)ᵀ⟩ + ⟨b, s(x)⟩, J_φ the (h, d) Jacobian of the
features. Under a weight penalty ½(‖W‖² + ‖b‖²) the best last layer on data x₁..x_n is therefore
the mean of those coefficients,

    W* = mean_i [s(x_i) φ(x_i)ᵀ + J_φ(x_i)ᵀ],   b* = mean_i s(x_i),

the finite-dimensional analogue of Eq. 9 (the kernel Stein witness of the kernel
k(x, y) = φ(x)ᵀφ(y) + 1; :mod:`steinkit.gof.sequential` does the same with IMQ kernels). No step of
gradient descent is needed; the scale of (W*, b*) is irrelevant to a studentised statistic. With
φ the features of a critic at its random initialisation this is a random-feature Stein witness.

Example:
    >>> import torch
    >>> from steinkit.critics import MLPCritic
    >>> critic = MLPCritic(2, hidden=8, generator=torch.Generator().manual_seed(0))
    >>> x = torch.randn(50, 2, generator=torch.Generator().manual_seed(1))
    >>> feature_witness(critic, x, -x).weights[-1].shape
    torch.Size([2, 8])
"""

from __future__ import annotations

import copy
import itertools

import torch
from torch import Tensor

from .coordinate_features import N_FEATURES, coordinate_features
from .critics import MLPCritic, swish

__all__ = ["features", "witness_sums", "with_last_layer", "feature_witness", "refit_last_layer"]


def features(critic: MLPCritic, x: Tensor) -> Tensor:
    """The critic's last hidden layer φ(z) at the network's inputs z (x standardised as the
    critic does): (n, h), or (K, n, h) for an ensemble (no dropout)."""
    a = critic._inputs(x)
    for W, b in zip(list(critic.weights)[:-1], list(critic.biases)[:-1]):
        a = swish(a @ W.transpose(-1, -2) + b.unsqueeze(-2))
    return a


_SUM_ROWS = 16384  # rows per chunk of witness_sums


def witness_sums(critic: MLPCritic, x: Tensor, s: Tensor) -> tuple[Tensor, Tensor]:
    """The sums over the rows of x of the last layer's Stein coefficients: (Σ_i s_i φ_iᵀ + J_φ(x_i)ᵀ,
    Σ_i s_i), shapes (…, d, h) and (…, d). Sums over disjoint parts add up, so a growing data set
    costs each point once; the rows are taken a chunk at a time, so memory is bounded whatever n.
    ``s``: the model's scores at x, same shape. With one or two hidden layers the Jacobians' sum
    is closed form (:func:`_jacobian_sum`: a few products per row, whatever d); deeper critics take
    one backward pass per unit.

    Example:
        >>> critic = MLPCritic(3, hidden=4, n_layers=1, generator=torch.Generator().manual_seed(0))
        >>> x = torch.randn(7, 3, generator=torch.Generator().manual_seed(1))
        >>> [t.shape for t in witness_sums(critic, x, -x)]
        [torch.Size([3, 4]), torch.Size([3])]
    """
    weight: Tensor | float = 0.0
    bias: Tensor | float = 0.0
    with torch.no_grad():
        for start in range(0, x.shape[-2], _SUM_ROWS):
            xc, sc = x[..., start:start + _SUM_ROWS, :].detach(), s[..., start:start + _SUM_ROWS, :].detach()
            if critic.n_layers in (1, 2):
                phi, jac = _jacobian_sum(critic, xc)
            else:
                phi, jac = _jacobian_sum_by_autograd(critic, xc)
            sc = sc.to(phi.dtype)
            weight = weight + sc.transpose(-1, -2) @ phi + jac
            bias = bias + sc.sum(-2)
    assert isinstance(weight, Tensor) and isinstance(bias, Tensor)
    return weight, bias


def _jacobian_sum(critic: MLPCritic, x: Tensor) -> tuple[Tensor, Tensor]:
    """The features φ at x and Σ_i J_φ(x_i)ᵀ (…, d, h) in x's coordinates, one or two hidden layers:
    J_φ = D₁W₁S⁻¹ or D₂W₂D₁W₁S⁻¹ (D the Swish slopes, S the input scale), so the sum is
    (Σ_i g₁ᵢ) ∘ W₁ or ((Σ_i g₂ᵢg₁ᵢᵀ) ∘ W₂) W₁, divided by the scale column by column."""
    a = critic._inputs(x)
    slopes = []
    for W, b in zip(list(critic.weights)[:-1], list(critic.biases)[:-1]):
        h = a @ W.transpose(-1, -2) + b.unsqueeze(-2)
        sig = torch.sigmoid(h)
        a = h * sig
        slopes.append(sig + a * (1 - sig))
    W1 = critic.weights[0]
    if critic.n_layers == 1:
        jac = slopes[0].sum(-2).unsqueeze(-1) * W1  # (…, h, d)
    else:
        cross = slopes[1].transpose(-1, -2) @ slopes[0]  # Σ_i g₂ᵢg₁ᵢᵀ, (…, h, h)
        jac = (cross * critic.weights[1]) @ W1
    jac = jac.transpose(-1, -2)  # (…, d, h)
    if critic.scale is not None:
        scale = critic.scale
        jac = jac / (scale.transpose(-1, -2) if scale.dim() == 3 else scale.unsqueeze(-1))
    return a, jac


def _jacobian_sum_by_autograd(critic: MLPCritic, x: Tensor) -> tuple[Tensor, Tensor]:
    """:func:`_jacobian_sum` for any depth: one backward pass per feature."""
    xg = x.detach().requires_grad_(True)
    with torch.enable_grad():
        phi = features(critic, xg)
        rows = [torch.autograd.grad(phi[..., j].sum(), xg, retain_graph=j < phi.shape[-1] - 1)[0].sum(-2)
                for j in range(phi.shape[-1])]
    return phi.detach(), torch.stack(rows, -1)


def with_last_layer(critic: MLPCritic, weight: Tensor, bias: Tensor) -> MLPCritic:
    """A copy of ``critic`` (eval mode) with last layer (weight, bias)."""
    out = copy.deepcopy(critic).eval()
    with torch.no_grad():
        out.weights[-1].copy_(weight)
        out.biases[-1].copy_(bias)
    return out


def feature_witness(critic: MLPCritic, x: Tensor, s: Tensor) -> MLPCritic:
    """A copy of ``critic`` (eval mode) whose last layer is the closed-form witness (W*, b*) of
    its features on the data x with model scores s ((n, d), or (K, n, d) for an ensemble)."""
    weight, bias = witness_sums(critic, x, s)
    n = x.shape[-2]
    return with_last_layer(critic, weight / n, bias / n)


_RIDGE_EXPONENTS = tuple(range(-6, 5))  # ridge weights 10^e (relative to each group's feature scale)


def _mean_feature_jacobian(critic: MLPCritic, z: Tensor) -> Tensor:
    """mean_i J_φ(z_i), (h, d), for a lone critic at network inputs z: with two hidden layers
    J_φ = D₂W₂D₁W₁, so the mean is ((mean_i g₂g₁ᵀ) ∘ W₂) W₁ (g the Swish slopes); deeper
    critics take one backward pass per unit."""
    W, b = list(critic.weights), list(critic.biases)
    if critic.n_layers != 2:
        zg = z.detach().requires_grad_(True)
        with torch.enable_grad():
            a = zg
            for Wl, bl in zip(W[:-1], b[:-1]):
                a = swish(a @ Wl.T + bl)
            rows = [torch.autograd.grad(a[:, j].sum(), zg, retain_graph=True)[0].sum(0) for j in range(a.shape[1])]
        return torch.stack(rows) / z.shape[0]
    slopes, a = [], z
    for Wl, bl in zip(W[:-1], b[:-1]):
        h = a @ Wl.T + bl
        sig = torch.sigmoid(h)
        a = h * sig
        slopes.append(sig + a * (1 - sig))
    cross = slopes[1].T @ slopes[0] / z.shape[0]
    return (cross * W[1]) @ W[0]


_REFIT_CHUNK = 16384


class _Moments:
    """Means (or sums) over data rows of the last layer's quadratic objective, ψ = [φ(z), z if skip, 1]
    shared by every output and u_j = the coordinate features of output j (when the critic has them):
    b = s_z ψᵀ + J_ψᵀ (d, k), c = ψψᵀ (k, k), bu = s_z,j u_j + ∂_j u_j (d, M), g = ψ u_jᵀ (k, d, M),
    du = u_j u_jᵀ (d, M, M)."""

    FIELDS = ("b", "c", "bu", "g", "du")

    def __init__(self, b: Tensor, c: Tensor, bu: Tensor | None = None, g: Tensor | None = None,
                 du: Tensor | None = None) -> None:
        self.b, self.c, self.bu, self.g, self.du = b, c, bu, g, du

    @classmethod
    def sums(cls, lone: MLPCritic, x: Tensor, s: Tensor) -> _Moments:
        """The sums over the rows of (x, s)."""
        z = lone._inputs(x)
        s_z = s * (1.0 if lone.scale is None else lone.scale)  # the score in z
        n, d = z.shape
        ones = torch.ones(n, 1, dtype=z.dtype, device=z.device)
        psi = torch.cat([features(lone, x)] + ([z] if lone.skip is not None else []) + [ones], 1)
        jac = [n * _mean_feature_jacobian(lone, z).T]
        if lone.skip is not None:
            jac.append(n * torch.eye(d, dtype=z.dtype, device=z.device))
        jac.append(torch.zeros(d, 1, dtype=z.dtype, device=z.device))
        out = cls(s_z.T @ psi + torch.cat(jac, 1), psi.T @ psi)
        if lone.coord is not None:
            u, du = coordinate_features(z)
            out.bu, out.g = (s_z.unsqueeze(-1) * u + du).sum(0), torch.einsum("nk,njm->kjm", psi, u)
            out.du = torch.einsum("njm,njl->jml", u, u)
        return out

    def mix(self, other: _Moments | None, a: float, b: float = 0.0) -> _Moments:
        """a·self + b·other, field by field (other None: a·self)."""
        fields = [getattr(self, f) for f in self.FIELDS]
        theirs = [None if other is None else getattr(other, f) for f in self.FIELDS]
        return _Moments(*[None if m is None else a * m + (0.0 if t is None else b * t) for m, t in zip(fields, theirs)])


def _moments(lone: MLPCritic, x: Tensor, s: Tensor) -> _Moments:
    """The means of :class:`_Moments` over the rows of (x, s), a chunk of rows at a time."""
    n, d = x.shape
    rows = _REFIT_CHUNK if lone.coord is None else max(256, min(_REFIT_CHUNK, 2**22 // (d * N_FEATURES)))
    total = _Moments.sums(lone, x[:rows], s[:rows])
    for start in range(rows, n, rows):
        total = total.mix(_Moments.sums(lone, x[start:start + rows], s[start:start + rows]), 1.0, 1.0)
    return total.mix(None, 1.0 / n)


def _factor(m: _Moments, lam: float, ridge: Tensor, jitter: float, coordinates: bool = True
            ) -> tuple[Tensor, Tensor | None]:
    """A⁻¹bᵀ (k, d) and A⁻¹g (k, d, M) (None without coordinate features or ``coordinates``),
    A = 2λC + 2·diag(ridge)."""
    k = m.c.shape[0]
    eye = torch.eye(k, dtype=m.c.dtype, device=m.c.device)
    chol = torch.linalg.cholesky(2 * lam * m.c + 2 * torch.diag(ridge) + jitter * eye)
    if m.g is None or not coordinates:
        return torch.cholesky_solve(m.b.T, chol), None
    d = m.b.shape[0]
    solved = torch.cholesky_solve(torch.cat([m.b.T, m.g.reshape(k, -1)], 1), chol)
    return solved[:, :d], solved[:, d:].reshape(m.g.shape)


def _finish(m: _Moments, lam: float, a_b: Tensor, a_g: Tensor | None, coord_exp: int | None, jitter: float
            ) -> tuple[Tensor, Tensor | None]:
    """θ (d, k) and the coordinate weights α (d, M), from :func:`_factor`'s products; α is None
    when ``coord_exp`` is None (no coordinate features). Output j solves
    [[A, 2λG_j], [2λG_jᵀ, 2λD_j + 2Γ_j]] [θ_j; α_j] = [b_j; bu_j] by its Schur complement; Γ_j is
    10^coord_exp times diag(D_j), feature by feature."""
    if coord_exp is None or a_g is None:
        return a_b.T, None
    diag = torch.diagonal(m.du, dim1=-2, dim2=-1)
    block = 2 * lam * m.du + torch.diag_embed(2 * 10.0**coord_exp * diag + jitter)
    schur = block - (2 * lam) ** 2 * torch.einsum("kjm,kjl->jml", m.g, a_g)
    rhs = m.bu - 2 * lam * torch.einsum("kjm,kj->jm", m.g, a_b)
    alpha = torch.linalg.solve(schur, rhs.unsqueeze(-1)).squeeze(-1)
    return a_b.T - 2 * lam * torch.einsum("kjm,jm->jk", a_g, alpha), alpha


def _solve(m: _Moments, lam: float, ridge: Tensor, coord_exp: int | None, jitter: float
           ) -> tuple[Tensor, Tensor | None]:
    """The last layer maximising mean(T) − λ·mean‖g‖² − ridge terms: :func:`_finish` of :func:`_factor`."""
    return _finish(m, lam, *_factor(m, lam, ridge, jitter, coord_exp is not None), coord_exp, jitter)


def _mean_and_square(m: _Moments, theta: Tensor, alpha: Tensor | None, w: Tensor) -> tuple[float, float]:
    """The mean Stein term and mean ‖f‖² of last layer (θ, α) under moments m (w: 1/scale² per output)."""
    mean = (w * (theta * m.b).sum(-1)).sum()
    square = (w * ((theta @ m.c) * theta).sum(-1)).sum()
    if alpha is not None:
        mean = mean + (w * (alpha * m.bu).sum(-1)).sum()
        square = square + (w * (2 * torch.einsum("jk,kjm,jm->j", theta, m.g, alpha)
                                + torch.einsum("jm,jml,jl->j", alpha, m.du, alpha))).sum()
    return float(mean), float(square)


_CV_FOLDS = 5


def _fold_moments(lone: MLPCritic, x: Tensor, s: Tensor) -> tuple[_Moments, list[tuple[_Moments, int]]]:
    """The means over all rows, and over each of :data:`_CV_FOLDS` consecutive parts with its size."""
    n = x.shape[0]
    cuts = [round(i * n / _CV_FOLDS) for i in range(_CV_FOLDS + 1)]
    parts = [(_moments(lone, x[a:b], s[a:b]), b - a) for a, b in zip(cuts[:-1], cuts[1:]) if b > a]
    full = parts[0][0].mix(None, parts[0][1] / n)
    for part, rows in parts[1:]:
        full = full.mix(part, 1.0, rows / n)
    return full, parts


def _coordinate_ridge(lone: MLPCritic, full: _Moments, parts: list[tuple[_Moments, int]], lam: float,
                      ridge: Tensor, jitter: float) -> int | None:
    """The coordinate features' ridge exponent with the largest cross-validated penalised objective
    m − λv over the training rows' parts (:func:`_fold_moments`), the other ridges fixed, among those
    that beat leaving the features out (None) by more than one standard error of the gain over the
    parts. The features are fixed functions, so unlike the network's, their fit can be judged
    on the rows the network was trained on, which are many more than the validation rows; the
    penalised objective, unlike the value at the best scale, marks down a fit whose size is noise."""
    n = sum(rows for _, rows in parts)
    w = torch.ones(lone.dim, dtype=full.c.dtype) if lone.scale is None else lone.scale.pow(-2).to(full.c.dtype)
    choices: list[int | None] = [None, *_RIDGE_EXPONENTS]
    folds = {e: [] for e in choices}  # the penalised objective on each held-out part
    for part, rows in parts:
        rest = full.mix(part, n / (n - rows), -rows / (n - rows))
        a_b, a_g = _factor(rest, lam, ridge, jitter)
        for e in choices:
            mean, square = _mean_and_square(part, *_finish(rest, lam, a_b, a_g, e, jitter), w)
            folds[e].append(mean - lam * square)
    base = torch.tensor(folds[None], dtype=torch.float64)
    gains = {e: torch.tensor(folds[e], dtype=torch.float64) - base for e in _RIDGE_EXPONENTS}
    # the features only where they beat leaving them out by more than a standard error of the gain
    kept = [e for e, g in gains.items() if float(g.mean()) > float(g.std() / len(g) ** 0.5)]
    return max(kept, key=lambda e: float(gains[e].mean())) if kept else None


def _refit_member(critic: MLPCritic, x_train: Tensor, s_train: Tensor, x_val: Tensor, s_val: Tensor,
                  lam: float) -> tuple[Tensor, Tensor | None, dict]:
    """The closed-form last layer of one lone critic (float64): θ = [W, L, b] (d, k), the coordinate
    features' weights (d, M) or None, and the chosen ridge exponents with their validation objective."""
    dt = torch.float64
    with torch.no_grad():
        lone = critic.double()
        h, d = lone.hidden, lone.dim
        x_train, s_train = x_train.to(dt), s_train.to(dt)
        if lone.coord is None:
            m, parts = _moments(lone, x_train, s_train), []
        else:
            m, parts = _fold_moments(lone, x_train, s_train)
        groups = [(0, h)] + ([(h, d)] if lone.skip is not None else [])
        unit = [float(torch.diagonal(m.c)[a:a + w].mean()) for a, w in groups]
        trial = copy.deepcopy(lone).eval()
        x_val, s_val = x_val.to(dt), s_val.to(dt)
        jitter = 1e-10 * (1.0 + float(torch.diagonal(m.c).mean()))

        def ridge_of(exps: tuple[int, ...]) -> Tensor:
            ridge = torch.zeros(m.c.shape[0], dtype=dt, device=m.c.device)
            for (a, w), e, u in zip(groups, exps, unit):
                ridge[a:a + w] = 10.0**e * u
            return ridge

        def value(exps: tuple[int, ...]) -> float:
            _set_last(trial, *_solve(m, lam, ridge_of(exps), None, jitter), h, d)
            terms, f = trial.stein_terms(x_val, s_val, trace="exact")
            return float(terms.mean() - lam * f.pow(2).sum(-1).mean())

        # the network's and the skip's ridges by the validation rows' penalised objective; then the
        # coordinate features'
        tried = {exps: value(exps) for exps in itertools.product(_RIDGE_EXPONENTS, repeat=len(groups))}
        best = max(tried, key=lambda e: tried[e])
        coord_exp = None if lone.coord is None else _coordinate_ridge(lone, m, parts, lam, ridge_of(best), jitter)
        theta, alpha = _solve(m, lam, ridge_of(best), coord_exp, jitter)
        return theta, alpha, {"ridge_exponents": best, "coordinate_ridge_exponent": coord_exp,
                              "val_objective": tried[best]}


def _set_last(critic: MLPCritic, theta: Tensor, alpha: Tensor | None, h: int, d: int, k: int | None = None) -> None:
    """Write θ = [W (d, h), L (d, d) if the critic has a skip, b (d,)] and the coordinate weights α
    (zero when None) into a lone critic, or into member ``k`` of an ensemble."""
    at = (lambda p: p) if k is None else (lambda p: p[k])  # noqa: E731
    at(critic.weights[-1]).copy_(theta[:, :h])
    if critic.skip is not None:
        at(critic.skip).copy_(theta[:, h:h + d])
    at(critic.biases[-1]).copy_(theta[:, -1])
    if critic.coord is not None:
        at(critic.coord).copy_(0.0 if alpha is None else alpha)


def refit_last_layer(critic: MLPCritic, x_train: Tensor, s_train: Tensor, x_val: Tensor, s_val: Tensor,
                     lam: float) -> list[dict]:
    """Re-solve the critic's last layer, skip connection, output bias and coordinate features (when it
    has them: :meth:`~steinkit.critics.MLPCritic.add_coordinate_features`) in closed form, in place.

    With the hidden features φ fixed, the penalised objective mean(T) − λ·mean‖f‖² on the
    training data is a concave quadratic in the last layer θ = [W, L, b] (g = Wφ(z) + Lz + b):
    with ψ = [φ, z, 1], B = mean(s_z ψᵀ + J_ψᵀ) and C = mean(ψψᵀ) in the critic's coordinates z,
    the maximiser under a ridge Γ is θ = B (2λC + 2Γ)⁻¹ (a standardised critic's weights 1/scale_j²
    on output j multiply its terms, penalty and ridge alike, and cancel). Γ is zero on b and 10^e
    times the features' mean square on the hidden
    features and, separately, on the skip (e = −6..4): the pair whose critic has the largest
    penalised objective mean(T) − λ·mean‖f‖² on the validation data (as fitted: the value at the
    best scale would forgive a fit whose size is noise). The coordinate
    features u_j of output j join ψ for that output alone, with a ridge of 10^e times each one's
    mean square, e chosen after the others by cross-validation on the training data
    (:func:`_coordinate_ridge`), or left out. An ensemble
    is refitted member by member (inputs with a leading K axis, or shared).

    Returns:
        One dict per member: the chosen ridge exponents and their penalised objective on the validation data.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> x = torch.randn(600, 3, generator=g, dtype=torch.float64)
        >>> critic = MLPCritic(3, hidden=8, skip=True, generator=g, dtype=torch.float64)
        >>> info = refit_last_layer(critic, x[:400], -x[:400] / 2, x[400:], -x[400:] / 2, lam=0.5)
        >>> from steinkit.stein import scaled_lsd                  # data N(0, I), model N(0, 2I): f* = x/2
        >>> fresh = torch.randn(20000, 3, generator=g, dtype=torch.float64)
        >>> terms, f = critic.stein_terms(fresh, -fresh / 2, trace="exact")
        >>> round(float(scaled_lsd(terms, f.pow(2).sum(-1), 0.5)[0]), 1)   # the optimum: d/4 = .75
        0.7
    """
    out = []
    for k in range(critic.n_critics or 1):
        part = (lambda t: t[k] if critic.n_critics and t.dim() == 3 else t)
        theta, alpha, info = _refit_member(critic.member(k), part(x_train), part(s_train), part(x_val),
                                           part(s_val), lam)
        dtype = critic.weights[-1].dtype
        with torch.no_grad():
            _set_last(critic, theta.to(dtype), None if alpha is None else alpha.to(dtype), critic.hidden, critic.dim,
                      k if critic.n_critics else None)
        out.append(info)
    return out

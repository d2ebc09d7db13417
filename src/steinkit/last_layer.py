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


def _moments(lone: MLPCritic, x: Tensor, s: Tensor) -> tuple[Tensor, Tensor]:
    """Sums over the rows of (x, s) of B = s_z ψᵀ + J_ψᵀ and C = ψψᵀ, ψ = [φ(z), z if skip, 1]."""
    z = lone._inputs(x)
    s_z = s * (1.0 if lone.scale is None else lone.scale)  # the score in z
    n, d = z.shape
    ones = torch.ones(n, 1, dtype=z.dtype, device=z.device)
    psi = torch.cat([features(lone, x)] + ([z] if lone.skip is not None else []) + [ones], 1)
    jac = [n * _mean_feature_jacobian(lone, z).T]
    if lone.skip is not None:
        jac.append(n * torch.eye(d, dtype=z.dtype, device=z.device))
    jac.append(torch.zeros(d, 1, dtype=z.dtype, device=z.device))
    return s_z.T @ psi + torch.cat(jac, 1), psi.T @ psi


def _refit_member(critic: MLPCritic, x_train: Tensor, s_train: Tensor, x_val: Tensor, s_val: Tensor,
                  lam: float) -> tuple[Tensor, dict]:
    """The closed-form last layer of one lone critic (float64): returns θ = [W, L, b] (d, k)
    and the chosen ridge exponents with their validation value."""
    from .stein import scaled_lsd

    dt = torch.float64
    with torch.no_grad():
        lone = critic.double()
        n, d, h = x_train.shape[0], x_train.shape[1], lone.hidden
        B = C = 0.0
        for start in range(0, n, _REFIT_CHUNK):  # sums over the rows, a chunk at a time
            B_part, C_part = _moments(lone, x_train[start:start + _REFIT_CHUNK].to(dt),
                                      s_train[start:start + _REFIT_CHUNK].to(dt))
            B, C = B + B_part, C + C_part
        B, C = B / n, C / n  # (d, k) and (k, k): mean(T) = <θ, B>, mean ‖g‖² = Σ_j θ_j C θ_jᵀ
        groups = [(0, h)] + ([(h, d)] if lone.skip is not None else [])
        unit = [float(torch.diagonal(C)[a:a + m].mean()) for a, m in groups]
        trial = copy.deepcopy(lone).eval()
        x_val, s_val = x_val.to(dt), s_val.to(dt)
        jitter = 1e-10 * (1.0 + float(torch.diagonal(C).mean())) * torch.eye(C.shape[0], dtype=dt, device=C.device)

        def value(exps: tuple[int, ...]) -> tuple[float, Tensor]:
            ridge = torch.zeros(C.shape[0], dtype=dt, device=C.device)
            for (a, m), e, u in zip(groups, exps, unit):
                ridge[a:a + m] = 10.0**e * u
            theta = torch.linalg.solve(2 * lam * C + 2 * torch.diag(ridge) + jitter, B.T).T
            _set_last(trial, theta, h, d)
            terms, f = trial.stein_terms(x_val, s_val, trace="exact")
            return float(scaled_lsd(terms, f.pow(2).sum(-1), lam)[0]), theta

        tried = {exps: value(exps) for exps in itertools.product(_RIDGE_EXPONENTS, repeat=len(groups))}
        chosen = max(tried, key=lambda e: tried[e][0])
        return tried[chosen][1], {"ridge_exponents": chosen, "val_value": tried[chosen][0]}


def _set_last(critic: MLPCritic, theta: Tensor, h: int, d: int) -> None:
    """Write θ = [W (d, h), L (d, d) if the critic has a skip, b (d,)] into a lone critic."""
    critic.weights[-1].copy_(theta[:, :h])
    if critic.skip is not None:
        critic.skip.copy_(theta[:, h:h + d])
    critic.biases[-1].copy_(theta[:, -1])


def refit_last_layer(critic: MLPCritic, x_train: Tensor, s_train: Tensor, x_val: Tensor, s_val: Tensor,
                     lam: float) -> list[dict]:
    """Re-solve the critic's last layer, skip connection and output bias in closed form, in place.

    With the hidden features φ fixed, the penalised objective mean(T) − λ·mean‖f‖² on the
    training data is a concave quadratic in the last layer θ = [W, L, b] (g = Wφ(z) + Lz + b):
    with ψ = [φ, z, 1], B = mean(s_z ψᵀ + J_ψᵀ) and C = mean(ψψᵀ) in the critic's coordinates z,
    the maximiser under a ridge Γ is θ = B (2λC + 2Γ)⁻¹ (a standardised critic's weights 1/scale_j²
    on output j multiply its terms, penalty and ridge alike, and cancel). Γ is zero on b and 10^e
    times the features' mean square on the hidden
    features and, separately, on the skip (e = −6..4): the pair whose critic has the largest LSD
    at its best scale (:func:`~steinkit.stein.scaled_lsd`) on the validation data. An ensemble
    is refitted member by member (inputs with a leading K axis, or shared).

    Returns:
        One dict per member: the chosen ridge exponents and their validation value.

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
        theta, info = _refit_member(critic.member(k), part(x_train), part(s_train), part(x_val), part(s_val), lam)
        theta = theta.to(critic.weights[-1].dtype)
        h, d = critic.hidden, critic.dim
        with torch.no_grad():
            if critic.n_critics:
                critic.weights[-1][k].copy_(theta[:, :h])
                if critic.skip is not None:
                    critic.skip[k].copy_(theta[:, h:h + d])
                critic.biases[-1][k].copy_(theta[:, -1])
            else:
                _set_last(critic, theta, h, d)
        out.append(info)
    return out

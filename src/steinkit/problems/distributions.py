"""The data distributions (and non-Gaussian models) of the problem families.

Each has ``dim``, ``log_prob(x)`` (up to a constant; differentiable), ``score(x)`` = ∇ log p in
the dtype of ``x``, and ``sample(n, generator=)`` returning float64 draws, so each is both a data
distribution p and a model q that :func:`steinkit.as_score` accepts.

Example:
    >>> import torch
    >>> p = Banana(3, 1.0)
    >>> p.score(torch.tensor([[1.0, 0.5, 2.0]])).tolist()    # y₂ − b(y₁² − 1) = .5 there
    [[0.0, -0.5, -2.0]]
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..models import GaussianBernoulliRBM
from ..validation import nonneg_float, positive_float, positive_int, real

__all__ = ["StudentT", "Laplace", "GaussianMixture", "Banana", "Funnel", "SkewNormal", "SinhArcsinh", "SinPerturbed",
           "LinearMap"]

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


class StudentT:
    """Isotropic multivariate Student-t with ν degrees of freedom and scale ``scale``.

    Example:
        >>> StudentT(1, 5.0).score(torch.tensor([[1.0]])).tolist()   # −(ν + d) x/(ν + x²)
        [[-1.0]]
    """

    def __init__(self, d: int, nu: float, scale: float = 1.0) -> None:
        self.dim, self.nu, self.scale = positive_int(d, "d"), positive_float(nu, "nu"), positive_float(scale, "scale")

    def log_prob(self, x: Tensor) -> Tensor:
        """Unnormalized log-density, (n,)."""
        return -0.5 * (self.nu + self.dim) * torch.log1p(x.pow(2).sum(-1) / (self.nu * self.scale**2))

    def score(self, x: Tensor) -> Tensor:
        """∇ log p, (n, d)."""
        return -(self.nu + self.dim) * x / (self.nu * self.scale**2 + x.pow(2).sum(-1, keepdim=True))

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        """n draws, (n, d), float64."""
        z = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
        chi2 = 2.0 * torch._standard_gamma(torch.full((n,), self.nu / 2, dtype=torch.float64), generator=generator)
        return self.scale * z / (chi2 / self.nu).sqrt()[:, None]


class Laplace:
    """Independent Laplace(0, b) coordinates (variance 2b²).

    Example:
        >>> Laplace(2, 0.5).score(torch.tensor([[1.0, -1.0]])).tolist()
        [[-2.0, 2.0]]
    """

    def __init__(self, d: int, b: float = 2**-0.5) -> None:
        self.dim, self.b = positive_int(d, "d"), positive_float(b, "b")

    def log_prob(self, x: Tensor) -> Tensor:
        """Unnormalized log-density, (n,)."""
        return -x.abs().sum(-1) / self.b

    def score(self, x: Tensor) -> Tensor:
        """∇ log p (almost everywhere), (n, d)."""
        return -torch.sign(x) / self.b

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        """n draws, (n, d), float64."""
        e = torch.empty(2, n, self.dim, dtype=torch.float64).exponential_(generator=generator)
        return self.b * (e[0] - e[1])


class GaussianMixture:
    """Mixture Σ_k w_k N(μ_k, σ²I) of isotropic Gaussians with one shared variance.

    Example:
        >>> mix = GaussianMixture(torch.tensor([[-1.0], [1.0]]), torch.tensor([0.5, 0.5]))
        >>> mix.score(torch.zeros(1, 1)).tolist()
        [[0.0]]
    """

    def __init__(self, means: Tensor, weights: Tensor, sigma: float = 1.0) -> None:
        self.means, self.weights = means.double(), weights.double() / weights.sum()
        self.dim, self.sigma = int(means.shape[1]), positive_float(sigma, "sigma")

    def _responsibilities(self, x: Tensor) -> Tensor:
        logits = self.weights.log() - (x[:, None, :] - self.means.to(x)).pow(2).sum(-1) / (2 * self.sigma**2)
        return torch.softmax(logits, dim=1)

    def log_prob(self, x: Tensor) -> Tensor:
        """Unnormalized log-density, (n,)."""
        d2 = (x[:, None, :] - self.means.to(x)).pow(2).sum(-1)
        return torch.logsumexp(self.weights.log().to(x) - d2 / (2 * self.sigma**2), dim=1)

    def score(self, x: Tensor) -> Tensor:
        """∇ log p, (n, d)."""
        r = self._responsibilities(x).to(x)
        return (r @ self.means.to(x) - x) / self.sigma**2

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        """n draws, (n, d), float64."""
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        return self.means[k] + self.sigma * torch.randn(n, self.dim, generator=generator, dtype=torch.float64)


class Banana:
    """N(0, I) with its second coordinate bent: y₂ = z₂ + b(z₁² − 1) (mean 0, Var y₂ = 1 + 2b²).

    log p(y) = −½y₁² − ½(y₂ − b(y₁² − 1))² − ½Σ_{j>2} y_j² + const (the bend has Jacobian 1).

    Example:
        >>> Banana(2, 0.5).sample(3, generator=torch.Generator().manual_seed(0)).shape
        torch.Size([3, 2])
    """

    def __init__(self, d: int, curvature: float) -> None:
        self.dim, self.b = positive_int(d, "d"), real(curvature, "curvature")
        if self.dim < 2:
            raise ValueError(f"d must be at least 2 for a banana pair of coordinates, got {d}")

    def _bent(self, x: Tensor) -> Tensor:
        return x[:, 1] - self.b * (x[:, 0].pow(2) - 1)

    def log_prob(self, x: Tensor) -> Tensor:
        """Unnormalized log-density, (n,)."""
        return -0.5 * (x.pow(2).sum(-1) - x[:, 1].pow(2) + self._bent(x).pow(2))

    def score(self, x: Tensor) -> Tensor:
        """∇ log p, (n, d)."""
        u = self._bent(x)
        s = -x.clone()
        s[:, 0] = -x[:, 0] + 2 * self.b * x[:, 0] * u
        s[:, 1] = -u
        return s

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        """n draws, (n, d), float64."""
        z = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
        z[:, 1] += self.b * (z[:, 0].pow(2) - 1)
        return z


class SkewNormal:
    """Independent skew-normal coordinates of shape α, standardized to mean 0 and variance 1.

    y ~ SN(α) has density 2φ(y)Φ(αy), mean m = δ√(2/π) and variance s² = 1 − 2δ²/π with
    δ = α/√(1 + α²); the coordinates are x = (y − m)/s.

    Example:
        >>> SkewNormal(1, 0.0).score(torch.tensor([[2.0]])).tolist()    # α = 0: N(0, 1)
        [[-2.0]]
    """

    def __init__(self, d: int, alpha: float) -> None:
        self.dim, self.alpha = positive_int(d, "d"), real(alpha, "alpha")
        self.delta = self.alpha / math.sqrt(1 + self.alpha**2)
        self.mean = self.delta * math.sqrt(2 / math.pi)
        self.std = math.sqrt(1 - 2 * self.delta**2 / math.pi)

    def log_prob(self, x: Tensor) -> Tensor:
        """Unnormalized log-density, (n,)."""
        y = self.mean + self.std * x
        return (-0.5 * y.pow(2) + torch.special.log_ndtr(self.alpha * y)).sum(-1)

    def score(self, x: Tensor) -> Tensor:
        """∇ log p, (n, d)."""
        y = self.mean + self.std * x
        ay = self.alpha * y
        mills = torch.exp(-0.5 * ay.pow(2) - _LOG_SQRT_2PI - torch.special.log_ndtr(ay))  # φ(αy)/Φ(αy)
        return self.std * (-y + self.alpha * mills)

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        """n draws, (n, d), float64."""
        u = torch.randn(2, n, self.dim, generator=generator, dtype=torch.float64)
        y = self.delta * u[0].abs() + math.sqrt(1 - self.delta**2) * u[1]
        return (y - self.mean) / self.std


def _sinh_arcsinh_moments(skew: float, tail: float) -> tuple[float, float]:
    """Mean and standard deviation of sinh((asinh z + ε)/δ), z ~ N(0, 1) (Jones & Pewsey 2009)."""
    from scipy.special import kv

    def p(q: float) -> float:
        return math.exp(0.25) / math.sqrt(8 * math.pi) * (kv((q + 1) / 2, 0.25) + kv((q - 1) / 2, 0.25))

    mean = math.sinh(skew / tail) * p(1 / tail)
    second = 0.5 * (math.cosh(2 * skew / tail) * p(2 / tail) - 1)
    return mean, math.sqrt(second - mean**2)


class SinhArcsinh:
    """Independent sinh-arcsinh coordinates (Jones & Pewsey 2009), standardized to mean 0, variance 1.

    y = sinh((asinh z + ε)/δ), z ~ N(0, 1): ε (``skew``) skews, δ (``tail``) < 1 gives heavier
    and δ > 1 lighter tails than the normal (ε = 0, δ = 1 is N(0, 1)). The density of y is
    δ cosh(w) φ(sinh w)/√(1 + y²) with w = δ asinh y − ε; the coordinates are x = (y − m)/s.

    Example:
        >>> p = SinhArcsinh(1, 0.0, 1.0)                 # ε = 0, δ = 1: N(0, 1)
        >>> round(p.std, 6), round(p.score(torch.tensor([[2.0]])).item(), 5)
        (1.0, -2.0)
    """

    def __init__(self, d: int, skew: float = 0.0, tail: float = 1.0) -> None:
        self.dim, self.skew, self.tail = positive_int(d, "d"), real(skew, "skew"), positive_float(tail, "tail")
        self.mean, self.std = _sinh_arcsinh_moments(self.skew, self.tail)

    def log_prob(self, x: Tensor) -> Tensor:
        """Unnormalized log-density, (n,)."""
        y = self.mean + self.std * x
        w = self.tail * torch.asinh(y) - self.skew
        return (torch.log(torch.cosh(w)) - 0.5 * torch.sinh(w).pow(2) - 0.5 * torch.log1p(y.pow(2))).sum(-1)

    def score(self, x: Tensor) -> Tensor:
        """∇ log p, (n, d)."""
        y = self.mean + self.std * x
        w = self.tail * torch.asinh(y) - self.skew
        root = torch.sqrt(1 + y.pow(2))
        return self.std * (self.tail * (torch.tanh(w) - torch.sinh(w) * torch.cosh(w)) / root - y / root.pow(2))

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        """n draws, (n, d), float64."""
        z = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
        return (torch.sinh((torch.asinh(z) + self.skew) / self.tail) - self.mean) / self.std


class SinPerturbed:
    """N(0, I) perturbed along its first coordinate: p(x) = N(x; 0, I)·(1 + ε sin(ωx₁)).

    The perturbation integrates to zero (sin is odd), so p is normalized for 0 ≤ ε ≤ 1;
    E x₁ = εω e^{−ω²/2}. Draws: x₁ by rejection from N(0, 1) (acceptance (1 + ε sin ωx₁)/(1 + ε)).

    Example:
        >>> SinPerturbed(2, 0.5, 1.0).score(torch.tensor([[0.0, 1.0]])).tolist()   # εω cos 0/(1 + 0), −x₂
        [[0.5, -1.0]]
    """

    def __init__(self, d: int, eps: float, omega: float = 1.0) -> None:
        self.dim, self.eps, self.omega = positive_int(d, "d"), nonneg_float(eps, "eps"), positive_float(omega, "omega")
        if self.eps > 1:
            raise ValueError(f"eps must lie in [0, 1] for a positive density, got {eps}")

    def log_prob(self, x: Tensor) -> Tensor:
        """Log-density up to the Gaussian constant, (n,)."""
        return -0.5 * x.pow(2).sum(-1) + torch.log1p(self.eps * torch.sin(self.omega * x[:, 0]))

    def score(self, x: Tensor) -> Tensor:
        """∇ log p, (n, d)."""
        s = -x.clone()
        x1 = self.omega * x[:, 0]
        s[:, 0] += self.eps * self.omega * torch.cos(x1) / (1 + self.eps * torch.sin(x1))
        return s

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        """n draws, (n, d), float64."""
        x = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
        first, have = [], 0
        while have < n:
            z = torch.randn(2 * (n - have) + 16, generator=generator, dtype=torch.float64)
            u = torch.rand(z.shape[0], generator=generator, dtype=torch.float64)
            keep = z[u * (1 + self.eps) < 1 + self.eps * torch.sin(self.omega * z)]
            first.append(keep)
            have += keep.shape[0]
        x[:, 0] = torch.cat(first)[:n]
        return x


class Funnel:
    """Neal's funnel in its first two coordinates: x₁ ~ N(0, 1), x₂ | x₁ ~ N(0, e^{a·x₁}), the
    others N(0, 1) (mean 0, Var x₂ = e^{a²/2}).

    log p(x) = −½x₁² − ½a·x₁ − ½x₂²e^{−a·x₁} − ½Σ_{j>2} x_j² + const.

    Example:
        >>> Funnel(2, 1.0).score(torch.tensor([[0.0, 1.0]])).tolist()   # (−a/2 + a/2·x₂², −x₂) at x₁ = 0
        [[0.0, -1.0]]
    """

    def __init__(self, d: int, strength: float) -> None:
        self.dim, self.a = positive_int(d, "d"), real(strength, "strength")
        if self.dim < 2:
            raise ValueError(f"d must be at least 2 for a funnel pair of coordinates, got {d}")

    def log_prob(self, x: Tensor) -> Tensor:
        """Unnormalized log-density, (n,)."""
        x1, x2 = x[:, 0], x[:, 1]
        return -0.5 * (x.pow(2).sum(-1) - x2.pow(2) + self.a * x1 + x2.pow(2) * torch.exp(-self.a * x1))

    def score(self, x: Tensor) -> Tensor:
        """∇ log p, (n, d)."""
        x1, x2 = x[:, 0], x[:, 1]
        shrink = torch.exp(-self.a * x1)
        s = -x.clone()
        s[:, 0] = -x1 - 0.5 * self.a + 0.5 * self.a * x2.pow(2) * shrink
        s[:, 1] = -x2 * shrink
        return s

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        """n draws, (n, d), float64."""
        x = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
        x[:, 1] = x[:, 1] * torch.exp(0.5 * self.a * x[:, 0])
        return x


class LinearMap:
    """The distribution of x = L z for z ~ ``base`` and an invertible (d, d) matrix L.

    log p(x) = log p_z(L⁻¹x) + const and ∇ log p(x) = L⁻ᵀ ∇ log p_z(L⁻¹x).

    Example:
        >>> lm = LinearMap(Laplace(2, 1.0), torch.tensor([[2.0, 0.0], [0.0, 1.0]]))
        >>> lm.score(torch.tensor([[2.0, -1.0]])).tolist()
        [[-0.5, 1.0]]
    """

    def __init__(self, base, L: Tensor) -> None:
        self.base, self.L = base, L.double()
        self.dim = int(base.dim)
        if self.L.shape != (self.dim, self.dim):
            raise ValueError(f"L must have shape ({self.dim}, {self.dim}), got {tuple(L.shape)}")
        self.L_inv = torch.linalg.inv(self.L)

    def log_prob(self, x: Tensor) -> Tensor:
        """Unnormalized log-density, (n,)."""
        return self.base.log_prob(x @ self.L_inv.T.to(x))

    def score(self, x: Tensor) -> Tensor:
        """∇ log p, (n, d)."""
        L_inv = self.L_inv.to(x)
        return self.base.score(x @ L_inv.T) @ L_inv

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        """n draws, (n, d), float64."""
        return self.base.sample(n, generator=generator) @ self.L.T


class RBMData:
    """Draws of an RBM by blocked Gibbs sampling (``burn_in`` sweeps) and its exact score."""

    def __init__(self, rbm: GaussianBernoulliRBM, burn_in: int) -> None:
        self.rbm, self.burn_in, self.dim = rbm, burn_in, rbm.dim

    def log_prob(self, x: Tensor) -> Tensor:
        """Unnormalized marginal log-density, (n,)."""
        return self.rbm.log_prob(x.to(self.rbm.B.dtype)).to(x.dtype)

    def score(self, x: Tensor) -> Tensor:
        """∇ log p, (n, d)."""
        return self.rbm.score(x.to(self.rbm.B.dtype)).detach().to(x.dtype)

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        """n draws, (n, d), float64 (the chains' states after ``burn_in`` sweeps)."""
        return self.rbm.sample(n, burn_in=self.burn_in, generator=generator)

"""Problem families: a data distribution p and a model q, with the truth where the math gives it.

A :class:`Problem` holds p (``data``: draws and its score ∇ log p) and q (``model``: anything
:func:`steinkit.as_score` takes). :meth:`Problem.fisher_divergence` is E_p‖s_q − s_p‖², in
closed form for Gaussian pairs and by Monte Carlo with p's exact score otherwise, so
:meth:`Problem.lsd` = E_p‖s_q − s_p‖²/(2λ), the value of the λ-penalised optimal critic (Eq. 9),
is known for every problem. Benchmarks and tests draw their problems from :data:`FAMILIES`:
Gaussian pairs (:mod:`.gaussian`), non-Gaussian families and nulls (:mod:`.families`), over the
distributions of :mod:`.distributions`.

Example:
    >>> import torch
    >>> prob = gaussian_scale(20, 2.0)              # data N(0, I), model N(0, 2I)
    >>> round(prob.lsd(), 3)
    5.0
    >>> prob.sample(100, generator=torch.Generator().manual_seed(0)).shape
    torch.Size([100, 20])
    >>> FAMILIES["null"](5, of="student-t", nu=3.0).null
    True
"""

from __future__ import annotations

from typing import Callable

from .base import Problem, model_of
from .distributions import (Banana, GaussianMixture, Laplace, LinearMap, RBMData, SinhArcsinh, SinPerturbed,
                            SkewNormal, StudentT)
from .families import (banana, heavy_model, laplace, mixture, mixture_missing, mixture_weights, mode_means, null,
                       rbm, sin_perturbed, sinh_arcsinh, skew_normal, student_t)
from .gaussian import ar1_cov, gaussian_ar1, gaussian_correlation, gaussian_diagonal, gaussian_mean, gaussian_scale

__all__ = [
    "Problem", "FAMILIES", "gaussian_mean", "gaussian_scale", "gaussian_correlation", "gaussian_diagonal",
    "gaussian_ar1", "rbm", "student_t", "laplace", "mixture", "heavy_model", "banana", "skew_normal",
    "sinh_arcsinh", "sin_perturbed", "mixture_weights", "mixture_missing", "null", "mode_means", "ar1_cov",
    "model_of", "StudentT", "Laplace", "GaussianMixture", "Banana", "SkewNormal", "SinhArcsinh", "SinPerturbed",
    "LinearMap", "RBMData",
]

FAMILIES: dict[str, Callable[..., Problem]] = {
    "gaussian-mean": gaussian_mean,
    "gaussian-scale": gaussian_scale,
    "gaussian-correlation": gaussian_correlation,
    "gaussian-diagonal": gaussian_diagonal,
    "gaussian-ar1": gaussian_ar1,
    "rbm": rbm,
    "student-t": student_t,
    "laplace": laplace,
    "mixture": mixture,
    "heavy-model": heavy_model,
    "banana": banana,
    "skew-normal": skew_normal,
    "sinh-arcsinh": sinh_arcsinh,
    "sin-perturbed": sin_perturbed,
    "mixture-weights": mixture_weights,
    "mixture-missing": mixture_missing,
    "null": null,
}
"""Every family by name, each a function of the dimension (first argument) and its parameters."""

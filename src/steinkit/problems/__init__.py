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

from .base import Problem, model_of
from .catalog import FAMILIES, null
from .distributions import (Banana, Funnel, GaussianMixture, Laplace, LinearMap, RBMData, SinhArcsinh, SinPerturbed,
                            SkewNormal, StudentT)
from .families import (banana, funnel, heavy_model, laplace, mixture, mixture_missing, mixture_weights, mode_means,
                       rbm, sin_perturbed, sinh_arcsinh, skew_normal, student_t)
from .rbm_benchmark import derive_seed, rbm_problem
from .gaussian import ar1_cov, gaussian_ar1, gaussian_correlation, gaussian_diagonal, gaussian_mean, gaussian_scale

__all__ = [
    "Problem", "FAMILIES", "gaussian_mean", "gaussian_scale", "gaussian_correlation", "gaussian_diagonal",
    "gaussian_ar1", "rbm", "student_t", "laplace", "mixture", "heavy_model", "banana", "funnel", "skew_normal",
    "sinh_arcsinh", "sin_perturbed", "mixture_weights", "mixture_missing", "null", "mode_means", "ar1_cov",
    "model_of", "StudentT", "Laplace", "GaussianMixture", "Banana", "Funnel", "SkewNormal", "SinhArcsinh",
    "SinPerturbed", "LinearMap", "RBMData", "rbm_problem", "derive_seed",
]

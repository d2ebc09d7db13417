"""Every problem family by name (:data:`FAMILIES`), and :func:`null`, the null problem of any of them
(its data distribution as both p and q).

Example:
    >>> prob = null(10, "banana", curvature=1.0)
    >>> prob.null, prob.name
    (True, 'null(d=10, of=banana, curvature=1)')
"""

from __future__ import annotations

from typing import Any, Callable

from ..validation import wrong_type
from .base import Problem, model_of
from .families import (banana, funnel, heavy_model, laplace, mixture, mixture_missing, mixture_weights, rbm,
                       sin_perturbed, sinh_arcsinh, skew_normal, student_t)
from .gaussian import gaussian_ar1, gaussian_correlation, gaussian_diagonal, gaussian_mean, gaussian_scale

__all__ = ["FAMILIES", "null"]


def null(d: int, of: str, **params: Any) -> Problem:
    """A null problem: the data distribution of family ``of`` (with ``params``) as both p and q.

    Example:
        >>> null(3, "gaussian-ar1", rho=0.5).exact_fisher
        0.0
    """
    if not isinstance(of, str):
        raise wrong_type("of", "a family name", of)
    if of not in FAMILIES or of == "null":
        raise ValueError(f"of must name a family of steinkit.problems.FAMILIES other than 'null', got {of!r}")
    prob = FAMILIES[of](d, **params)
    return Problem("null", prob.d, model_of(prob.data), prob.data, {"of": of, **prob.params}, 0.0)


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
    "funnel": funnel,
    "skew-normal": skew_normal,
    "sinh-arcsinh": sinh_arcsinh,
    "sin-perturbed": sin_perturbed,
    "mixture-weights": mixture_weights,
    "mixture-missing": mixture_missing,
    "null": null,
}
"""Every family by name, each a function of the dimension (first argument) and its parameters."""

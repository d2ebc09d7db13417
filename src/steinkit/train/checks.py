"""Input checks of :func:`steinkit.train.train`: the model, the data and the source of randomness.

Each fails early with a ``TypeError``/``ValueError`` that names the argument; the number and
data rules are those of :mod:`steinkit.validation`.

Example:
    >>> import torch
    >>> from steinkit.models import Gaussian
    >>> from steinkit.train.objectives import ML
    >>> q = Gaussian(torch.zeros(2), torch.eye(2))
    >>> check_model(q, ML())
    2
    >>> check_data([[0, 1], [2, 3]], 2, q.mean).dtype
    torch.float32
    >>> make_generator(None, 5, q.mean.device)[1]
    5
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..validation import as_data, as_generator, generator_on, positive_int, seed_value, wrong_type
from .objectives import Objective

__all__ = ["check_model", "check_data", "make_generator"]


def check_model(model: Any, objective: Objective) -> int:
    """The model's dimension, after checking it offers what ``objective`` needs."""
    method = objective.name
    if not isinstance(model, nn.Module):
        raise wrong_type("model", "a torch.nn.Module", model)
    if getattr(model, "dim", None) is None:
        raise TypeError("model must have an int attribute `dim` (its data dimension), got None")
    dim = positive_int(model.dim, "model.dim")
    if not callable(getattr(model, objective.needs, None)):
        raise TypeError(f"method={method!r} needs model.{objective.needs}(x); {type(model).__name__} has none")
    if objective.needs_normalized and getattr(model, "normalized", False) is not True:
        raise ValueError(
            f"method={method!r} needs a normalized model (model.normalized is True), but "
            f"{type(model).__name__}.log_prob is unnormalized; use 'lsd', 'ssm', 'nce' or 'cnce'"
        )
    if not any(p.requires_grad for p in model.parameters()):
        raise ValueError("model has no trainable parameters (none with requires_grad=True)")
    return dim


def check_data(data: Any, dim: int, like: Tensor) -> Tensor:
    """``data`` as a finite (n, dim) tensor of ``like``'s dtype and device, detached
    (:func:`steinkit.validation.as_data`; a wrong width is reported against ``model.dim``), with
    at least two distinct rows (a density cannot be fitted to one point)."""
    data = as_data(data, "data", like=like).detach()
    if data.shape[1] != dim:
        raise ValueError(f"data has {data.shape[1]} columns but the model has dimension model.dim = {dim}")
    if not bool((data != data[0]).any()):
        raise ValueError(f"data has zero variance: all {data.shape[0]} rows are equal, and a density cannot be fitted "
                         "to one point")
    return data


def make_generator(
    generator: torch.Generator | None, seed: int | None, device: torch.device
) -> tuple[torch.Generator, int | None]:
    """The run's generator and its seed (``None`` when a generator was given).

    Give one of ``generator`` and ``seed``, or neither (then a seed is drawn from torch's
    global generator). A seed gives a generator on ``device`` (the model's); a given generator
    must be there.
    """
    if generator is not None:
        generator = as_generator(seed, generator)
        generator_on(generator, device)
        return generator, None
    seed = int(torch.randint(0, 2**62, (1,)).item()) if seed is None else seed_value(seed)
    return torch.Generator(device=device).manual_seed(seed), seed

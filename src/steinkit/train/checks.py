"""Input checks of :func:`steinkit.train.train`: the model, the data and the source of randomness.

Each fails early with a ``TypeError``/``ValueError`` that names the argument.

Example:
    >>> import torch
    >>> from steinkit.models import Gaussian
    >>> from steinkit.train.objectives import ML
    >>> q = Gaussian(torch.zeros(2), torch.eye(2))
    >>> check_model(q, ML())
    2
    >>> check_data(torch.zeros(3, 2), 2, q.mean).shape
    torch.Size([3, 2])
    >>> make_generator(None, 5, q.mean.device)[1]
    5
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from .objectives import Objective

__all__ = ["check_model", "check_data", "make_generator"]


def check_model(model: Any, objective: Objective) -> int:
    """The model's dimension, after checking it offers what ``objective`` needs."""
    method = objective.name
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    dim = getattr(model, "dim", None)
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise TypeError(f"model must have an int attribute `dim` (its data dimension), got {dim!r}")
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
    """``data`` as a finite (n, dim) tensor of ``like``'s dtype and device."""
    if not isinstance(data, Tensor):
        try:
            data = torch.as_tensor(data)
        except Exception as exc:  # noqa: BLE001 - report what was given
            raise TypeError(f"data must be a tensor of shape (n, {dim}), got {type(data).__name__}") from exc
    if data.dim() != 2:
        raise ValueError(f"data must be a 2-D tensor (n, {dim}), got shape {tuple(data.shape)}")
    if data.shape[1] != dim:
        raise ValueError(f"data has {data.shape[1]} columns but the model has dimension model.dim = {dim}")
    if data.shape[0] < 1:
        raise ValueError("data must have at least one row")
    data = data.detach().to(dtype=like.dtype, device=like.device)
    bad = ~torch.isfinite(data).all(1)
    if bool(bad.any()):
        rows = bad.nonzero().flatten()
        raise ValueError(f"data contains NaN or inf in {len(rows)} row(s) (first: row {int(rows[0])}); remove them")
    return data


def make_generator(
    generator: torch.Generator | None, seed: int | None, device: torch.device
) -> tuple[torch.Generator, int | None]:
    """The run's generator and its seed (``None`` when a generator was given).

    Give one of ``generator`` and ``seed``, or neither (then a seed is drawn from torch's
    global generator).
    """
    if generator is not None and seed is not None:
        raise ValueError("give either generator or seed, not both")
    if generator is not None:
        if not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
        return generator, None
    if seed is None:
        seed = int(torch.randint(0, 2**62, (1,)).item())
    return torch.Generator(device=device).manual_seed(int(seed)), int(seed)

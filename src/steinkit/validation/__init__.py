"""The one place where steinkit checks its inputs: bad input fails early with a ``ValueError``
or ``TypeError`` that names the argument and says what was expected.

Data (``as_data``): one rule per kind of entry point, chosen by its keywords.

* Public data entry points (:func:`steinkit.stein_discrepancy`, :func:`steinkit.compare`,
  :func:`steinkit.gof_test`, :func:`steinkit.split_data`): ``as_data(x)``. Tensors or arrays
  of shape (n, d); floating tensors keep their dtype, integer data become the default float
  dtype (float32); NaN/inf are rejected.
* Kernel Stein tests (:mod:`steinkit.gof.kernels`, ``ksd``, ``lksd``, ``fssd``):
  ``as_data(x, tensors_only=True, dtype=torch.float64)``. Tensors only, of any real dtype;
  the computation runs on a float64 copy; NaN/inf are rejected.
* Model methods (``log_prob``, ``score``, ...): ``as_data(x, dim=model.dim,
  tensors_only=True, like=parameter, finite=False)``. Tensors only, cast to the model's
  parameter dtype and device; not checked for NaN (hot path; a model maps NaN to NaN).
* Samplers (:func:`steinkit.samplers.sgld`): ``as_data(x0, tensors_only=True,
  floating=True)``. Floating tensors only (no silent cast of the chain's state), dtype kept.
* Image preprocessing: :func:`float_tensor` (floating tensors of any shape, dtype kept).

Devices: :func:`as_device` (a ``device=`` argument: checked to exist here; None means where
the data live, else the CPU), :func:`parse_device` (the name only) and :func:`generator_on` (a
given generator must be on that device).

Numbers: :func:`positive_int`, :func:`nonneg_int`, :func:`positive_float`,
:func:`nonneg_float`, :func:`fraction` ([0, 1)), :func:`probability` ((0, 1)),
:func:`one_of`, :func:`as_generator`. Booleans are never accepted as numbers.

An argument of the wrong type raises :func:`wrong_type`'s ``TypeError``, which says "type".

Import them from here; they live in :mod:`.scalars`, :mod:`.tensors` and :mod:`.devices`.

Example:
    >>> import torch
    >>> as_data([[0, 1], [2, 3]]).dtype
    torch.float32
    >>> positive_int(0, "n_iters")
    Traceback (most recent call last):
    ...
    ValueError: n_iters must be >= 1, got 0
"""

from __future__ import annotations

from .devices import as_device, generator_on, parse_device
from .scalars import (as_generator, flag, fraction, integer, nonneg_float, nonneg_int, one_of, positive_float,
                      positive_int, probability, real, seed_from, seed_value, wrong_type)
from .tensors import as_data, as_param, float_dtype, float_tensor, model_points

__all__ = [
    "wrong_type",
    "as_data",
    "model_points",
    "float_tensor",
    "float_dtype",
    "as_param",
    "integer",
    "positive_int",
    "nonneg_int",
    "real",
    "positive_float",
    "nonneg_float",
    "fraction",
    "probability",
    "one_of",
    "flag",
    "seed_value",
    "as_generator",
    "seed_from",
    "as_device",
    "parse_device",
    "generator_on",
]

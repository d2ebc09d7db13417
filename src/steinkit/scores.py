"""One adapter from every kind of model to a score function x -> ∇ₓ log q(x).

Example:
    >>> import torch
    >>> score = as_score(torch.distributions.Normal(torch.zeros(2), torch.ones(2)))
    >>> score(torch.ones(3, 2)).tolist()
    [[-1.0, -1.0], [-1.0, -1.0], [-1.0, -1.0]]
"""

from __future__ import annotations

import copy
import itertools
from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn

__all__ = ["Score", "as_score", "as_scores", "module_on", "score_rows", "SCORE_ROWS"]

SCORE_ROWS = 65536
"""Rows per call of a model's score in :func:`score_rows` (a model's own intermediates, e.g. an RBM's
hidden units or an autograd graph, then take memory bounded whatever n)."""


class Score:
    """A checked score function: calls the model and verifies shape and finiteness.

    Arguments:
        fn: the raw function (n, d) -> (n, d).
        dim: the model's dimension if it declares one (checked against the data).
        source: a short description of the model for error messages.
    """

    def __init__(self, fn: Callable[[Tensor], Tensor], dim: int | None, source: str) -> None:
        self.fn, self.dim, self.source = fn, dim, source

    def check_dim(self, x: Tensor, name: str = "x") -> None:
        """Raise if the data's dimension differs from the model's declared dimension."""
        if self.dim is not None and x.shape[-1] != self.dim:
            raise ValueError(
                f"{name} has dimension {x.shape[-1]} but the model ({self.source}) has dimension {self.dim}"
            )

    def __call__(self, x: Tensor) -> Tensor:
        self.check_dim(x)
        try:
            out = self.fn(x)
        except (RuntimeError, IndexError) as exc:
            raise ValueError(
                f"model ({self.source}) failed on x of shape {tuple(x.shape)}: {exc}"
            ) from exc
        if not isinstance(out, Tensor):
            kind = f"{type(out).__module__}.{type(out).__name__}" if type(out).__module__ != "builtins" else \
                type(out).__name__
            raise TypeError(
                f"score of model ({self.source}) must return a torch.Tensor, got type {kind}"
                + ("; convert it with torch.as_tensor(...)" if kind.startswith("numpy") else "")
            )
        if out.shape != x.shape:
            raise ValueError(
                f"score of model ({self.source}) must have the shape of x {tuple(x.shape)}, got {tuple(out.shape)}"
            )
        if out.device != x.device:  # a model that computes elsewhere: its scores join the data
            out = out.to(x.device)
        if not bool(torch.isfinite(out).all()):
            raise ValueError(f"score of model ({self.source}) returned NaN or inf values")
        return out

    def __repr__(self) -> str:
        return f"Score({self.source})"


def score_rows(score: Callable[[Tensor], Tensor], x: Tensor, rows: int = SCORE_ROWS) -> Tensor:
    """``score(x)`` computed ``rows`` rows at a time (over the second-to-last axis) into one
    tensor, without gradients: the same values as one call (a score is a function of each row),
    with the model's intermediates bounded whatever n.

    Example:
        >>> score = as_score(lambda z: -z)
        >>> x = torch.randn(10, 2)
        >>> torch.equal(score_rows(score, x, rows=3), score(x))
        True
    """
    n = x.shape[-2]
    with torch.no_grad():
        if n <= rows:
            return score(x)
        out: Tensor | None = None
        for start in range(0, n, rows):
            part = score(x[..., start:start + rows, :])
            if out is None:
                out = torch.empty(*x.shape[:-2], n, part.shape[-1], dtype=part.dtype, device=part.device)
            out[..., start:start + part.shape[-2], :] = part
    assert out is not None
    return out


def _autograd_score(log_density: Callable[[Tensor], Tensor], sign: float) -> Callable[[Tensor], Tensor]:
    """Score from a scalar-per-example function by autograd (sign=+1 for log q, -1 for energy).

    Builds a graph for higher derivatives only when the caller has grad mode on and the
    input needs it, so evaluation stays cheap.
    """

    def score(x: Tensor) -> Tensor:
        create_graph = torch.is_grad_enabled() and x.requires_grad
        with torch.enable_grad():
            xg = x if x.requires_grad else x.detach().requires_grad_(True)
            out = log_density(xg)
            if not isinstance(out, Tensor) or out.shape != (x.shape[0],):
                shape = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
                raise ValueError(
                    f"log-density/energy must return one value per example, shape ({x.shape[0]},), got {shape}"
                )
            (grad,) = torch.autograd.grad(out.sum(), xg, create_graph=create_graph)
        return grad * sign if sign != 1 else grad

    return score


def _callable_score(fn: Callable[[Tensor], Tensor], dim: int | None, name: str) -> Score:
    """A plain function as a model: a score function if it returns (n, d), a log-density log q
    (differentiated by autograd) if it returns (n,). The kind is read off the first call's
    output shape and kept; the Score's ``source`` then says which it was taken to be."""
    state: dict[str, Any] = {"log_density": None}
    log_density_score = _autograd_score(fn, 1.0)

    def score(x: Tensor) -> Tensor:
        if state["log_density"]:
            return log_density_score(x)
        out = fn(x)
        if state["log_density"] is None and isinstance(out, Tensor):
            if out.dim() == 1 and x.dim() == 2 and out.shape[0] == x.shape[0]:
                state["log_density"] = True
                wrapped.source = f"autograd of log-density function {name} (it returns one value per row)"
                return log_density_score(x)
            state["log_density"] = False
        return out

    wrapped = Score(score, dim, f"score function {name}")
    return wrapped


def _model_dim(obj: Any) -> int | None:
    dim = getattr(obj, "dim", None)
    if isinstance(dim, int):
        return dim
    if isinstance(obj, torch.distributions.Distribution) and len(obj.event_shape) == 1:
        return int(obj.event_shape[0])
    if isinstance(obj, torch.distributions.Distribution) and len(obj.batch_shape) == 1:
        return int(obj.batch_shape[0])
    return None


def module_on(module: nn.Module, device: torch.device) -> nn.Module:
    """``module`` itself if all its parameters and buffers are on ``device``, else a copy moved
    there (the caller's module stays where it is).

    Example:
        >>> lin = torch.nn.Linear(2, 2)
        >>> module_on(lin, torch.device("cpu")) is lin
        True
    """
    tensors = itertools.chain(module.parameters(), module.buffers())
    if all(t.device == device for t in tensors):
        return module
    return copy.deepcopy(module).to(device)


def as_scores(models: Sequence[Any], device: torch.device | None = None) -> list[Score]:
    """:func:`as_score` of each model on ``device``; a model given several times is converted
    (and, if it is a module elsewhere, copied to the device) once.

    Example:
        >>> q = torch.distributions.Normal(torch.zeros(2), torch.ones(2))
        >>> a, b = as_scores([q, q])
        >>> a is b
        True
    """
    done: dict[int, Score] = {}
    for m in models:
        if id(m) not in done:
            done[id(m)] = as_score(m, device=device)
    return [done[id(m)] for m in models]


def as_score(obj: Any, *, device: torch.device | None = None) -> Score:
    """Turn a model into a checked score function x (n, d) -> ∇ₓ log q(x) (n, d).

    With a ``device``, a model that is an ``nn.Module`` with parameters elsewhere is copied
    there first (:func:`module_on`); other models are called on the data where they are, and
    scores they return on another device are moved to the data's.

    Accepted, in this order:
      1. a :class:`Score` (returned as is);
      2. a ``torch.distributions.Distribution`` (autograd of ``log_prob``; a distribution with
         a batch of d independent scalars has its log-probabilities summed per example);
      3. an object with a ``.score`` method;
      4. an object with a ``.log_prob`` method (autograd);
      5. an ``nn.Module`` energy E with q ∝ exp(−E): ``E(x)`` returns (n,), score = −∇E;
      6. any other callable: the score function itself when it returns (n, d); a log-density
         log q (up to a constant; autograd gives the score) when it returns one value per row,
         (n,). An *energy* function must be negated (``lambda x: -E(x)``) or be an ``nn.Module``.

    Example:
        >>> energy = lambda x: 0.5 * (x ** 2).sum(1)
        >>> class Energy(torch.nn.Module):
        ...     def forward(self, x):
        ...         return 0.5 * (x ** 2).sum(1)
        >>> as_score(Energy())(torch.ones(1, 2)).tolist()
        [[-1.0, -1.0]]
        >>> as_score(lambda x: -0.5 * (x ** 2).sum(1))(torch.ones(1, 2)).tolist()   # a log-density
        [[-1.0, -1.0]]
    """
    if isinstance(obj, Score):
        return obj
    if device is not None and isinstance(obj, nn.Module):
        obj = module_on(obj, device)
    name = type(obj).__name__
    dim = _model_dim(obj)
    if isinstance(obj, torch.distributions.Distribution):
        event_dims = len(obj.event_shape)

        def log_prob(x: Tensor) -> Tensor:
            lp = obj.log_prob(x)
            return lp if event_dims else lp.sum(-1)

        return Score(_autograd_score(log_prob, 1.0), dim, f"Distribution {name}")
    if callable(getattr(obj, "score", None)):
        return Score(obj.score, dim, f"{name}.score")
    if callable(getattr(obj, "log_prob", None)):
        return Score(_autograd_score(obj.log_prob, 1.0), dim, f"autograd of {name}.log_prob")
    if isinstance(obj, nn.Module):
        return Score(_autograd_score(obj, -1.0), dim, f"energy module {name}")
    if callable(obj):
        return _callable_score(obj, dim, getattr(obj, "__name__", name))
    raise TypeError(
        "model must be a torch Distribution, an object with .score or .log_prob, an energy "
        f"nn.Module or a score callable, got type {name}"
    )

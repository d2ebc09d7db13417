"""The inputs of :func:`~steinkit.sample_quality`: chains of draws, their scores and weights.

Draws come as one array (chains, n, d), one chain (n, d), a list of chains (lengths may
differ), or an ArviZ posterior (``InferenceData`` or an xarray ``DataTree`` with a
``posterior`` group, read by duck typing, so arviz need not be installed to pass one): its
variables, each of dims (chain, draw, ...), are flattened per draw into columns, in the order
the posterior lists them.

Example:
    >>> import torch
    >>> chains, names = as_chains(torch.zeros(3, 50, 2))
    >>> len(chains), tuple(chains[0].shape), names
    (3, (50, 2), None)
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

from ..scores import as_score
from ..validation import as_data, wrong_type

__all__ = ["MIN_DRAWS", "as_chains", "chain_scores", "chain_weights"]

MIN_DRAWS = 20  # per chain: a first half to build the Stein features and a second to test them
_SCORE_ROWS = 4096  # rows per call of the target's score


def _posterior(draws: Any) -> tuple[list[np.ndarray], list[str]] | None:
    """Per-chain (n, d) arrays and column names of an ArviZ posterior, or None if ``draws`` is not one."""
    post = getattr(draws, "posterior", None)
    if post is None or not hasattr(post, "data_vars"):
        return None
    parts, names = [], []
    for name in post.data_vars:
        var = post[name]
        dims = tuple(var.dims)
        if "chain" not in dims or "draw" not in dims:
            raise ValueError(f"draws: posterior variable {name!r} must have dims 'chain' and 'draw', got {dims}")
        arr = np.moveaxis(np.asarray(var.values), [dims.index("chain"), dims.index("draw")], [0, 1])
        shape = arr.shape[2:]
        parts.append(arr.reshape(arr.shape[0], arr.shape[1], -1))
        names += [str(name)] if not shape else [f"{name}[{','.join(map(str, i))}]" for i in np.ndindex(*shape)]
    if not parts:
        raise ValueError("draws: the posterior holds no variables")
    full = np.concatenate(parts, axis=2).astype(np.float64)
    return list(full), names


def _parts(value: Any, name: str) -> list[Any]:
    """The per-chain pieces of ``value``: (chains, n, ...) arrays split along the first axis, a
    list or tuple as given, anything else as one chain."""
    if isinstance(value, (Tensor, np.ndarray)):
        if value.ndim == 3:
            return list(value)
        return [value]
    if isinstance(value, (list, tuple)):
        if not value:
            raise ValueError(f"{name} must hold at least one chain, got an empty {type(value).__name__}")
        if all(isinstance(v, (Tensor, np.ndarray)) for v in value) or all(isinstance(v, (list, tuple)) for v in value):
            first = value[0]
            depth = first.ndim if isinstance(first, (Tensor, np.ndarray)) else np.ndim(first)
            if depth == 2:
                return list(value)
        return [value]
    raise wrong_type(name, "a tensor or array (chains, n, d) or (n, d), a list of (n, d) chains, "
                           "or an ArviZ posterior", value)


def as_chains(draws: Any, device: torch.device | None = None) -> tuple[list[Tensor], list[str] | None]:
    """Chains of draws as a list of (n_c, d) tensors (float dtype kept, integers become float32)
    on ``device``, and the column names of an ArviZ posterior (else None).

    Example:
        >>> chains, _ = as_chains([torch.zeros(30, 2), torch.ones(40, 2)])
        >>> [tuple(c.shape) for c in chains]
        [(30, 2), (40, 2)]
    """
    post = _posterior(draws)
    names = None
    if post is not None:
        parts, names = post
    else:
        parts = _parts(draws, "draws")
    chains = []
    for c, part in enumerate(parts):
        label = "draws" if len(parts) == 1 else f"draws (chain {c})"
        x = as_data(part, label, min_rows=MIN_DRAWS,
                    what="a sample-quality check (half of them build the Stein features, half test them)")
        if chains and x.shape[1] != chains[0].shape[1]:
            raise ValueError(f"draws: every chain must have the same dimension d; chain 0 has {chains[0].shape[1]}, "
                             f"chain {c} has {x.shape[1]}")
        chains.append(x if device is None else x.to(device))
    return chains, names


def chain_scores(chains: Sequence[Tensor], target: Any, scores: Any) -> list[Tensor]:
    """float64 ∇ log p at every draw, from exactly one of ``target`` (anything
    :func:`steinkit.as_score` takes, a log-density function included) and ``scores`` (given in
    the shape of ``draws``).

    Example:
        >>> s = chain_scores([torch.ones(25, 2)], lambda x: -0.5 * (x ** 2).sum(1), None)
        >>> s[0][0].tolist()
        [-1.0, -1.0]
    """
    if (target is None) == (scores is None):
        raise ValueError("give exactly one of target (a model steinkit.as_score accepts, or a log-density "
                         "function x -> (n,)) and scores= (∇ log p at the draws, in the shape of draws), "
                         + ("got both" if target is not None else "got neither"))
    if scores is not None:
        parts = _parts(scores, "scores")
        if len(parts) != len(chains):
            raise ValueError(f"scores must have one chain per chain of draws ({len(chains)}), got {len(parts)}")
        out = []
        for c, (part, x) in enumerate(zip(parts, chains)):
            label = "scores" if len(parts) == 1 else f"scores (chain {c})"
            s = as_data(part, label, dtype=torch.float64)
            if s.shape != x.shape:
                raise ValueError(f"{label} must have the shape of the draws {tuple(x.shape)}, got {tuple(s.shape)}")
            out.append(s.to(x.device))
        return out
    score = as_score(target, device=chains[0].device)
    out = []
    for x in chains:
        score.check_dim(x, "draws")
        with torch.no_grad():
            rows = [score(x[a:a + _SCORE_ROWS]).detach() for a in range(0, x.shape[0], _SCORE_ROWS)]
        out.append(torch.cat(rows).to(torch.float64))
    return out


def chain_weights(weights: Any, chains: Sequence[Tensor]) -> list[Tensor] | None:
    """Importance weights (self-normalised: any positive scale) per chain, float64, or None.

    Example:
        >>> w = chain_weights(torch.ones(1, 30), [torch.zeros(30, 2)])
        >>> tuple(w[0].shape)
        (30,)
    """
    if weights is None:
        return None
    if isinstance(weights, (Tensor, np.ndarray)) and weights.ndim == 2:
        parts = list(weights)
    elif isinstance(weights, (Tensor, np.ndarray)) and weights.ndim == 1 and len(chains) == 1:
        parts = [weights]
    elif isinstance(weights, (list, tuple)) and len(weights) and not isinstance(weights[0], (int, float)):
        parts = list(weights)
    elif isinstance(weights, (list, tuple)) and len(chains) == 1:
        parts = [weights]
    else:
        raise wrong_type("weights", "one weight per draw: a tensor or array (chains, n), (n,) for one chain, "
                                    "or a list of (n_c,) per chain", weights)
    if len(parts) != len(chains):
        raise ValueError(f"weights must have one row per chain ({len(chains)}), got {len(parts)}")
    out = []
    for c, (part, x) in enumerate(zip(parts, chains)):
        try:
            w = torch.as_tensor(np.asarray(part) if not isinstance(part, Tensor) else part)
        except (TypeError, ValueError) as err:
            raise wrong_type("weights", "an array of numbers", part) from err
        if w.is_complex() or w.dtype == torch.bool:
            raise TypeError(f"weights must be real numbers, got element type (dtype) {w.dtype}")
        w = w.to(torch.float64)
        if w.shape != (x.shape[0],):
            raise ValueError(f"weights (chain {c}) must have one weight per draw, shape ({x.shape[0]},), "
                             f"got {tuple(w.shape)}")
        if not bool(torch.isfinite(w).all()) or bool((w < 0).any()):
            raise ValueError(f"weights (chain {c}) must be finite and >= 0")
        half = x.shape[0] // 2
        if not (float(w[:half].sum()) > 0 and float(w[half:].sum()) > 0):
            raise ValueError(f"weights (chain {c}) must be positive somewhere in each half of the chain")
        out.append(w.to(x.device))
    return out

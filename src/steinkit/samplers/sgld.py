r"""Langevin sampling from a score function (paper Appendix B.6.1, Eqs. 18 and 19).

With ``score(x) = grad_x log q(x) = -grad_x E(x)`` and step size ``eps``:

* plain (unadjusted) Langevin, Eq. 18: ``x <- x + (eps / 2) score(x) + N(0, eps I)``, i.e. noise
  of variance ``eps`` (standard deviation ``sqrt(eps)``); it targets ``q`` up to an
  ``O(eps)`` discretisation bias;
* tempered, Eq. 19: ``x <- x + eps score(x) + N(0, sigma^2 I)``; the step and the noise scale
  are decoupled. It targets ``q^(2 eps / sigma^2)`` approximately, so small ``sigma`` concentrates
  the samples around the modes, and ``sigma = 0`` is plain gradient ascent on ``log q``.

No autograd graph is kept across steps: every step works on a detached state.
"""

from __future__ import annotations

import math
import numbers
import warnings
from dataclasses import dataclass, field
from typing import Callable, Iterable

import torch
from torch import Tensor

__all__ = ["SGLDResult", "sgld", "sgld_step"]

ScoreFn = Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class SGLDResult:
    """Result of :func:`sgld`.

    Attributes:
        samples: the state after the last step, shape ``(n, d)``.
        snapshots: the state after ``t`` steps for each requested ``t`` (``0`` is ``x0``).
    """

    samples: Tensor
    snapshots: dict[int, Tensor] = field(default_factory=dict)

    def __repr__(self) -> str:
        n, d = self.samples.shape
        return f"SGLDResult(samples=<{n}x{d} {self.samples.dtype}>, snapshots={sorted(self.snapshots)})"


def _score(score_fn: ScoreFn, x: Tensor) -> Tensor:
    # A fresh detached alias: score_fn may call requires_grad_() on it without touching x.
    with torch.enable_grad():
        s = score_fn(x.detach())
    if not isinstance(s, Tensor):
        raise TypeError(f"score_fn must return a torch.Tensor, got {type(s).__name__}")
    if s.shape != x.shape:
        raise ValueError(
            f"score_fn must return a tensor of the input's shape {tuple(x.shape)}, got {tuple(s.shape)}"
        )
    return s.detach().to(x.dtype)


def _step(
    score_fn: ScoreFn, x: Tensor, step_size: float, noise_std: float | None, generator: torch.Generator | None
) -> Tensor:
    s = _score(score_fn, x)
    noise = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    if noise_std is None:
        return x + (0.5 * step_size) * s + math.sqrt(step_size) * noise
    return x + step_size * s + noise_std * noise


def sgld_step(
    score_fn: ScoreFn,
    x: Tensor,
    *,
    step_size: float,
    noise_std: float | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """One Langevin step (Eq. 18 if ``noise_std`` is ``None``, else Eq. 19); returns a detached tensor.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> x = sgld_step(lambda x: -x, torch.zeros(4, 2), step_size=0.1, generator=g)
        >>> x.shape
        torch.Size([4, 2])
    """
    _check_state(x, "x")
    step_size, noise_std = _check_step(step_size, noise_std)
    return _step(score_fn, x.detach(), step_size, noise_std, generator)


def _check_real(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


def _check_state(x: object, name: str) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.dtype.is_floating_point:
        raise TypeError(f"{name} must be a floating tensor, got dtype {x.dtype}")
    if x.dim() != 2:
        raise ValueError(f"{name} must be a 2-D tensor (n, d), got shape {tuple(x.shape)}")


def _check_step(step_size: object, noise_std: object) -> tuple[float, float | None]:
    step = _check_real(step_size, "step_size")
    if step <= 0:
        raise ValueError(f"step_size must be > 0, got {step}")
    if noise_std is None:
        return step, None
    sigma = _check_real(noise_std, "noise_std")
    if sigma < 0:
        raise ValueError(f"noise_std must be >= 0 or None, got {sigma}")
    return step, sigma


def sgld(
    score_fn: ScoreFn,
    x0: Tensor,
    *,
    step_size: float,
    n_steps: int,
    noise_std: float | None = None,
    generator: torch.Generator | None = None,
    snapshot_steps: Iterable[int] = (),
    clamp: tuple[float, float] | None = None,
    progress: bool = False,
) -> SGLDResult:
    """Run ``n_steps`` Langevin steps from ``x0`` (each row of ``x0`` is one chain).

    Arguments:
        score_fn: maps ``(n, d) -> (n, d)``, ``grad_x log q``. It is called under
            ``torch.enable_grad()`` on a detached input, so it may use autograd internally
            (even when ``sgld`` itself runs under ``torch.no_grad()``).
        x0: initial states, a finite floating tensor ``(n, d)``.
        step_size: ``eps > 0``.
        n_steps: number of steps, an int ``>= 0``.
        noise_std: ``None`` for Eq. 18 (noise variance ``eps``, drift ``eps/2 * score``);
            ``sigma >= 0`` for the tempered Eq. 19 (drift ``eps * score``, noise std ``sigma``).
        generator: the source of the Gaussian noise; same seed, same samples.
        snapshot_steps: step counts ``t`` in ``[0, n_steps]`` at which to keep a copy of the
            state after ``t`` steps.
        clamp: optional ``(low, high)``; states are clamped into this box after every step.
        progress: show a tqdm progress bar.

    Returns:
        :class:`SGLDResult` with ``samples`` and ``snapshots``.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> res = sgld(lambda x: -x, torch.zeros(1000, 2), step_size=0.1, n_steps=200,
        ...            generator=g, snapshot_steps=(0, 100))
        >>> sorted(res.snapshots), res.samples.shape
        ([0, 100], torch.Size([1000, 2]))
    """
    if not callable(score_fn):
        raise TypeError(f"score_fn must be callable, got {type(score_fn).__name__}")
    _check_state(x0, "x0")
    if not bool(torch.isfinite(x0).all()):
        raise ValueError("x0 must be finite (no NaN or inf)")
    step_size, noise_std = _check_step(step_size, noise_std)
    if isinstance(n_steps, bool) or not isinstance(n_steps, numbers.Integral):
        raise TypeError(f"n_steps must be an int, got {type(n_steps).__name__}")
    if n_steps < 0:
        raise ValueError(f"n_steps must be >= 0, got {n_steps}")
    n_steps = int(n_steps)
    wanted: set[int] = set()
    for t in snapshot_steps:
        if isinstance(t, bool) or not isinstance(t, numbers.Integral):
            raise TypeError(f"snapshot_steps must hold ints, got {t!r}")
        t = int(t)
        if not 0 <= t <= n_steps:
            raise ValueError(f"snapshot_steps entries must be in [0, n_steps={n_steps}], got {t}")
        wanted.add(t)
    low = high = None
    if clamp is not None:
        if not isinstance(clamp, (tuple, list)) or len(clamp) != 2:
            raise ValueError(f"clamp must be a pair (low, high) or None, got {clamp!r}")
        low, high = _check_real(clamp[0], "clamp[0]"), _check_real(clamp[1], "clamp[1]")
        if not low < high:
            raise ValueError(f"clamp must satisfy low < high, got {clamp!r}")

    x = x0.detach().clone()
    snapshots: dict[int, Tensor] = {}
    if 0 in wanted:
        snapshots[0] = x.clone()
    steps: Iterable[int] = range(1, n_steps + 1)
    if progress:
        from tqdm.auto import tqdm

        steps = tqdm(steps, desc="sgld", total=n_steps)
    for t in steps:
        x = _step(score_fn, x, step_size, noise_std, generator)
        if low is not None:
            x = x.clamp(low, high)
        if t in wanted:
            snapshots[t] = x.clone()
    if not bool(torch.isfinite(x).all()):
        warnings.warn(
            "sgld produced non-finite samples; the chain diverged (try a smaller step_size)",
            RuntimeWarning,
            stacklevel=2,
        )
    return SGLDResult(samples=x, snapshots=snapshots)

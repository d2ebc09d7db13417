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

from ..validation import as_data, as_device, generator_on, nonneg_float, nonneg_int, positive_float, real, wrong_type

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
        raise TypeError(f"score_fn must return a torch.Tensor, got type {type(s).__name__}")
    if s.shape != x.shape:
        raise ValueError(
            f"score_fn must return a tensor of the input's shape {tuple(x.shape)}, got {tuple(s.shape)}"
        )
    return s.detach().to(dtype=x.dtype, device=x.device)


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
    as_data(x, "x", tensors_only=True, floating=True, finite=False)
    step_size, noise_std = _check_step(step_size, noise_std)
    return _step(score_fn, x.detach(), step_size, noise_std, generator)


def _check_step(step_size: object, noise_std: object) -> tuple[float, float | None]:
    step = positive_float(step_size, "step_size")
    return step, None if noise_std is None else nonneg_float(noise_std, "noise_std")


def _check_snapshots(snapshot_steps: Iterable[int], n_steps: int) -> set[int]:
    wanted: set[int] = set()
    for t in snapshot_steps:
        if isinstance(t, bool) or not isinstance(t, numbers.Integral):
            raise TypeError(f"snapshot_steps must hold ints, got type {type(t).__name__} ({t!r})")
        if not 0 <= int(t) <= n_steps:
            raise ValueError(f"snapshot_steps entries must be in [0, n_steps={n_steps}], got {t}")
        wanted.add(int(t))
    return wanted


def _check_clamp(clamp: object) -> tuple[float, float] | None:
    if clamp is None:
        return None
    if not isinstance(clamp, (tuple, list)) or len(clamp) != 2:
        raise ValueError(f"clamp must be a pair (low, high) or None, got {clamp!r}")
    low, high = real(clamp[0], "clamp[0]"), real(clamp[1], "clamp[1]")
    if not low < high:
        raise ValueError(f"clamp must satisfy low < high, got {clamp!r}")
    return low, high


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
    device: torch.device | str | None = None,
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
        generator: the source of the Gaussian noise, on ``device``; same seed, same samples.
        snapshot_steps: step counts ``t`` in ``[0, n_steps]`` at which to keep a copy of the
            state after ``t`` steps.
        clamp: optional ``(low, high)``; states are clamped into this box after every step.
        progress: show a tqdm progress bar.
        device: where the chains run (default: where ``x0`` lives); ``x0`` is copied there and
            ``score_fn`` is called there (scores it returns elsewhere are moved to the chains).

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
        raise wrong_type("score_fn", "callable", score_fn)
    as_data(x0, "x0", tensors_only=True, floating=True)
    step_size, noise_std = _check_step(step_size, noise_std)
    n_steps = nonneg_int(n_steps, "n_steps")
    wanted = _check_snapshots(snapshot_steps, n_steps)
    bounds = _check_clamp(clamp)
    device = as_device(device, x0)
    generator_on(generator, device)

    x = x0.detach().to(device, copy=True)
    snapshots: dict[int, Tensor] = {}
    if 0 in wanted:
        snapshots[0] = x.clone()
    steps: Iterable[int] = range(1, n_steps + 1)
    if progress:
        from tqdm.auto import tqdm

        steps = tqdm(steps, desc="sgld", total=n_steps)
    for t in steps:
        x = _step(score_fn, x, step_size, noise_std, generator)
        if bounds is not None:
            x = x.clamp(*bounds)
        if t in wanted:
            snapshots[t] = x.clone()
    if not bool(torch.isfinite(x).all()):
        warnings.warn(
            "sgld produced non-finite samples; the chain diverged (try a smaller step_size)",
            RuntimeWarning,
            stacklevel=2,
        )
    return SGLDResult(samples=x, snapshots=snapshots)

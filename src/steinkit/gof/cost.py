"""Before a costly kernel test starts: predict its seconds and memory, and refuse above a limit.

A test's time is a count of Stein-kernel evaluations and matrix-product flops (given by the
test) times per-unit costs measured here (:func:`stein_rates`): one timed (256, 256) block of
the test's own kernel on its own data (the bandwidth-free pieces, and each further bandwidth)
and one timed matrix product of the bootstrap's shape, on the test's device (on the CPU: timed
on one thread, then scaled by the threads' measured speedup on a larger product). Measuring takes
milliseconds and only happens when a pessimistic bound (slow rates fixed below) exceeds the
limit, so small tests pay nothing. Memory is the test's formula in bytes. Above ``max_seconds`` (default 10 minutes) or
``max_memory_gb`` (default: half the memory available when the test starts) the test raises one
``ValueError`` line naming the cheaper methods and the option that overrides the limit.

Example:
    >>> check_limits(600, "auto")[0]
    600.0
    >>> duration(7200.0), duration(42.0)
    ('2.0 h', '42 s')
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import torch
from torch import Tensor

from ..kernels.base import stein_blocks
from ..validation import positive_float

__all__ = [
    "DEFAULT_MAX_SECONDS",
    "LINEAR_ADVICE",
    "Rates",
    "stein_rates",
    "check_limits",
    "guard",
    "duration",
    "symmetric_pairs",
    "best_time",
    "one_thread",
    "thread_speedup",
]

DEFAULT_MAX_SECONDS = 600.0
LINEAR_ADVICE = "use a linear-time method (method='lksd', 'ksdagg-inc' or the learned test, method='lsd')"
_PROBE = 256  # rows of the timed block


@dataclass(frozen=True)
class Rates:
    """Seconds per unit of work: a pair's bandwidth-free pieces, a pair's value for one more
    kernel, and one matrix-product flop."""

    pair: float
    kernel: float
    flop: float


def _slow(d: int) -> Rates:
    """Rates slower than any machine this runs on: a bound that decides whether to measure."""
    return Rates(pair=8.0 * d / 1e9 + 1e-7, kernel=3e-7, flop=1e-9)


def symmetric_pairs(n: int, block: int) -> float:
    """Pairs evaluated over the upper block triangle of an (n, n) matrix in blocks of ``block`` rows.

    Example:
        >>> symmetric_pairs(4, 2)
        12.0
    """
    return 0.5 * n * (n + min(block, n))


def check_limits(max_seconds: Any, max_memory_gb: Any) -> tuple[float | None, float | str | None]:
    """Checked limits: seconds > 0 or None; gigabytes > 0, "auto" or None.

    Example:
        >>> check_limits(None, 2)
        (None, 2.0)
    """
    seconds = None if max_seconds is None else positive_float(max_seconds, "max_seconds")
    if max_memory_gb is None or max_memory_gb == "auto":
        return seconds, max_memory_gb
    return seconds, positive_float(max_memory_gb, "max_memory_gb")


def _available_bytes(device: torch.device) -> float:
    """Memory free for a test on ``device``: CUDA's free memory, else the system's available memory."""
    if device.type == "cuda":
        return float(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024.0
    except OSError:
        pass
    return float(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def best_time(fn: Callable[[], Any], device: torch.device, repeats: int = 3) -> float:
    """The shortest of ``repeats`` timed calls of ``fn`` after one untimed call (seconds)."""
    fn()
    _sync(device)
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return best


@contextmanager
def one_thread(device: torch.device) -> Iterator[None]:
    """Run the block inside on one CPU thread: a small timed block on several threads is at the
    mercy of other work on the cores (one descheduled thread stalls every parallel step)."""
    threads = torch.get_num_threads()
    if device.type != "cpu" or threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def thread_speedup(device: torch.device) -> float:
    """How many times faster torch's CPU threads run a (512, 512) by (512, 1024) product than one
    thread, between 1 and their number (1 on a GPU): what a test's large blocks gain over the
    one-thread timings."""
    threads = torch.get_num_threads()
    if device.type != "cpu" or threads == 1:
        return 1.0
    a = torch.ones(512, 512, dtype=torch.float64)
    w = torch.ones(512, 1024, dtype=torch.float64)
    many = best_time(lambda: a @ w, device, repeats=2)
    with one_thread(device):
        one = best_time(lambda: a @ w, device, repeats=2)
    return min(max(one / many, 1.0), float(threads))


def stein_rates(kernel: Any, x: Tensor, s: Tensor, draws: int) -> tuple[Rates, Callable[[], Rates]]:
    """(a pessimistic bound on the :class:`Rates`, a function measuring them) for a Stein-kernel test."""
    return _slow(x.shape[1]), lambda: measure_rates(kernel, x, s, draws)


def measure_rates(kernel: Any, x: Tensor, s: Tensor, draws: int) -> Rates:
    """Per-unit costs from one timed block of ``kernel`` on the first rows of (x, s) and one timed
    product of a (256, 256) block by (256, B) bootstrap weights (float64, on x's device), timed on
    one CPU thread and divided by :func:`thread_speedup`."""
    m = min(_PROBE, x.shape[0])
    xb, sb = x[:m] - x[:m].mean(0), s[:m]
    first = kernel.resolve(xb)[0]
    cols = max(1, min(draws, 2048))
    a = torch.ones(m, m, dtype=torch.float64, device=x.device)
    w = torch.ones(m, cols, dtype=torch.float64, device=x.device)
    with one_thread(x.device):
        one = best_time(lambda: [u for u in stein_blocks([first], xb, sb, xb, sb)], x.device)
        two = best_time(lambda: [u for u in stein_blocks([first, first], xb, sb, xb, sb)], x.device)
        flop = best_time(lambda: a @ w, x.device) / (2.0 * m * m * cols)
    per_kernel = max(two - one, 0.05 * one)
    speedup = thread_speedup(x.device)
    return Rates(pair=max(one - per_kernel, 0.0) / (m * m) / speedup, kernel=per_kernel / (m * m) / speedup,
                 flop=flop / speedup)


def duration(seconds: float) -> str:
    """A rough duration for a message.

    Example:
        >>> duration(90 * 60.0), duration(3 * 86400.0)
        ('90 min', '3 days')
    """
    if seconds < 10:
        return f"{seconds:.2g} s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 91 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.0f} days"


def _gigabytes(nbytes: float) -> str:
    gb = nbytes / 1e9
    return f"{gb:.2g} GB" if gb < 10 else f"{gb:.0f} GB"


def guard(
    method: str,
    what: str,
    *,
    seconds: Callable[[Any], float],
    nbytes: float,
    rates: tuple[Any, Callable[[], Any]],
    device: torch.device,
    max_seconds: float | None,
    max_memory_gb: float | str | None,
    advice: str,
) -> None:
    """Raise one ``ValueError`` line if the predicted time or memory of a test is over its limit.

    Arguments:
        method: the method's name in :func:`steinkit.gof_test`.
        what: how the cost grows, e.g. "is quadratic in n: n = 100000".
        seconds: the predicted seconds for given rates (e.g. :class:`Rates`).
        nbytes: the predicted memory in bytes.
        rates: (pessimistic rates, a function measuring them), e.g. from :func:`stein_rates`.
        device: where the test runs (for the memory available).
        max_seconds, max_memory_gb: the limits (see :func:`check_limits`).
        advice: the cheaper ways, e.g. "use a linear-time method (method='lksd')".
    """
    limit_bytes = None
    if max_memory_gb == "auto":
        limit_bytes = 0.5 * _available_bytes(device)
    elif max_memory_gb is not None:
        limit_bytes = 1e9 * max_memory_gb
    over_memory = limit_bytes is not None and nbytes > limit_bytes
    bound, measure = rates
    over_time = max_seconds is not None and seconds(bound) > max_seconds
    if not (over_time or over_memory):
        return
    predicted = seconds(measure())
    over_time = max_seconds is not None and predicted > max_seconds
    if not (over_time or over_memory):
        return
    limits, overrides = [], []
    if over_time:
        limits.append(f"limit {duration(max_seconds)}")
        overrides.append("max_seconds=None (--max-seconds none)")
    if over_memory:
        auto = ", half of what is free" if max_memory_gb == "auto" else ""
        limits.append(f"limit {_gigabytes(limit_bytes)}{auto}")
        overrides.append("max_memory_gb=None (--max-memory-gb none)")
    raise ValueError(
        f"method={method!r} {what} would take about {duration(predicted)} and {_gigabytes(nbytes)} here "
        f"({'; '.join(limits)}); {advice}, or pass {' and '.join(overrides)} to run it anyway"
    )

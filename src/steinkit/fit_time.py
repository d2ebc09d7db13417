"""How long a critic fit will take here, measured before it starts.

Example:
    >>> import torch
    >>> from steinkit.scores import as_score
    >>> from steinkit.settings import TEST
    >>> x = torch.randn(300, 3, generator=torch.Generator().manual_seed(0))
    >>> fit_seconds([(as_score(lambda z: -z), x, 0)], TEST.replace(n_iters=100)) > 0
    True
"""

from __future__ import annotations

import time
from typing import Sequence

import torch

from .fit import critic_step
from .heldout import Problem, check_problems, critic_ensemble, split_problems
from .settings import ESTIMATE, CriticSettings, sized_for
from .stein import stein_terms

__all__ = ["fit_seconds"]


def fit_seconds(
    problems: Sequence[Problem], settings: CriticSettings | None = None, *, steps: int = 3
) -> float:
    """About how many seconds :func:`fit_heldout_critics` takes on these problems, from a quick
    timing on this machine: one warm-up and ``steps`` timed critic steps (scaled to
    ``n_iters``), and one exact-trace validation on at most 64 rows (scaled linearly to the
    validation's train + val rows, once per validation). It works on its own copies of the
    critic and generators and draws nothing from torch's global generator, so the fit that
    follows is unchanged.

    Example:
        >>> from steinkit.scores import as_score
        >>> from steinkit.settings import TEST
        >>> x = torch.randn(300, 3, generator=torch.Generator().manual_seed(0))
        >>> fit_seconds([(as_score(lambda z: -z), x, 0)], TEST.replace(n_iters=100)) > 0
        True
    """
    cfg = ESTIMATE if settings is None else settings
    check_problems(problems)
    x_parts, s_parts = split_problems(problems, cfg.split)
    cfg = sized_for(cfg, x_parts[0].shape[-2], x_parts[0].shape[-1])
    critic, generators = critic_ensemble([s for _, _, s in problems], x_parts[0].shape[-1], cfg, x_parts[0])
    n_train = x_parts[0].shape[-2]
    full_batch = cfg.batch_size is None or cfg.batch_size >= n_train
    optimizer = torch.optim.Adam(critic.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    critic.train()
    critic_step(critic, optimizer, x_parts[0], s_parts[0], cfg, generators, full_batch)  # warm-up
    start = time.perf_counter()
    for _ in range(steps):
        critic_step(critic, optimizer, x_parts[0], s_parts[0], cfg, generators, full_batch)
    per_step = (time.perf_counter() - start) / steps
    rows = min(64, n_train)
    critic.eval()
    start = time.perf_counter()
    with torch.no_grad():
        stein_terms(critic, x_parts[0][..., :rows, :], s_parts[0][..., :rows, :], trace="exact")
    per_validation = (time.perf_counter() - start) * (n_train + x_parts[1].shape[-2]) / rows
    validations = -(-cfg.n_iters // cfg.val_every)
    return cfg.n_iters * per_step + validations * per_validation

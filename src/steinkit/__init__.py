"""steinkit: train, evaluate and test unnormalized density models with learned Stein discrepancies.

Example:
    >>> import torch, steinkit as sk
    >>> x = torch.randn(400, 2, generator=torch.Generator().manual_seed(0))
    >>> est = sk.stein_discrepancy(sk.models.Gaussian(torch.zeros(2), torch.eye(2)), x,
    ...                            n_iters=100, hidden=32)
    >>> abs(est.value) < 5 * est.stderr + 0.1
    True
"""

from __future__ import annotations

from . import data, gof, models, samplers
from .gof import GofResult, gof_test, gof_tests
from .critics import MLPCritic
from .evaluate import ComparisonRow, DiscrepancyEstimate, compare, split_data, stein_discrepancy
from .fit import CriticFit, fit_critic
from .scores import Score, as_score
from .stein import (
    exact_trace,
    fisher_divergence,
    hutchinson_trace,
    optimal_critic,
    optimal_lsd,
    stein_terms,
)

__version__ = "0.1.0"

__all__ = [
    "models",
    "data",
    "samplers",
    "gof",
    "gof_test",
    "gof_tests",
    "GofResult",
    "as_score",
    "Score",
    "MLPCritic",
    "stein_terms",
    "hutchinson_trace",
    "exact_trace",
    "optimal_critic",
    "optimal_lsd",
    "fisher_divergence",
    "fit_critic",
    "CriticFit",
    "stein_discrepancy",
    "compare",
    "split_data",
    "DiscrepancyEstimate",
    "ComparisonRow",
]

"""steinkit: train, evaluate and test unnormalized density models with learned Stein discrepancies.

Example:
    >>> import torch, steinkit as sk
    >>> x = torch.randn(400, 2, generator=torch.Generator().manual_seed(0))
    >>> est = sk.stein_discrepancy(sk.models.Gaussian(torch.zeros(2), torch.eye(2)), x,
    ...                            n_iters=100, hidden=32)
    >>> abs(est.value) < 5 * est.stderr + 0.1
    True
    >>> quick = sk.ESTIMATE.replace(n_iters=100, hidden=32)   # the same, as a settings object
    >>> sk.stein_discrepancy(sk.models.Gaussian(torch.zeros(2), torch.eye(2)), x, quick).value == est.value
    True
"""

from __future__ import annotations

from . import data, diagnostics, gof, kernels, models, problems, samplers, train, witness_plots
from .gof import GofResult, gof_test, gof_tests
from .critics import MLPCritic
from .diagnostics import ChainQuality, SampleQuality, sample_quality
from .evaluate import Comparison, ComparisonRow, DiscrepancyEstimate, PairwiseRow, compare, stein_discrepancy
from .fit import CriticFit, fit_critic
from .relative import RelativeResult, relative_test, relative_tests
from .results import TestResult
from .scores import Score, as_score
from .settings import ESTIMATE, LEARNED_TEST, PAPER_ESTIMATE, RELATIVE, TEST, CriticSettings
from .splits import split_data
from .stein import (
    FusedSteinCritic,
    critic_objective,
    exact_trace,
    fisher_divergence,
    hutchinson_trace,
    optimal_critic,
    optimal_lsd,
    stein_terms,
)
from .thinning import thin
from .witness import FittedCritic, Witness, witness

__version__ = "0.1.0"

__all__ = [
    "models",
    "problems",
    "data",
    "samplers",
    "train",
    "witness_plots",
    "gof",
    "kernels",
    "gof_test",
    "gof_tests",
    "GofResult",
    "as_score",
    "Score",
    "MLPCritic",
    "FusedSteinCritic",
    "stein_terms",
    "critic_objective",
    "hutchinson_trace",
    "exact_trace",
    "optimal_critic",
    "optimal_lsd",
    "fisher_divergence",
    "CriticSettings",
    "ESTIMATE",
    "PAPER_ESTIMATE",
    "TEST",
    "LEARNED_TEST",
    "RELATIVE",
    "fit_critic",
    "CriticFit",
    "stein_discrepancy",
    "compare",
    "split_data",
    "DiscrepancyEstimate",
    "ComparisonRow",
    "Comparison",
    "PairwiseRow",
    "relative_test",
    "relative_tests",
    "RelativeResult",
    "TestResult",
    "witness",
    "Witness",
    "FittedCritic",
    "thin",
    "diagnostics",
    "sample_quality",
    "SampleQuality",
    "ChainQuality",
]

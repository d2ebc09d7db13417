"""Sample-quality diagnostics: is a sampler's output distributed as the target?

* :func:`sample_quality` (also ``steinkit.sample_quality``): per-chain and pooled Stein tests
  valid for autocorrelated draws, KSD² with error bars, and the chains that disagree.
* :func:`integrated_time`, :func:`batch_means`: the autocorrelation tools it rests on.
* Stein thinning is :func:`steinkit.thin`.

Example:
    >>> import torch, steinkit as sk
    >>> x = torch.randn(3, 400, 2, generator=torch.Generator().manual_seed(0))
    >>> sk.diagnostics.sample_quality(x, lambda z: -z).reject    # a score function of N(0, I)
    False
"""

from __future__ import annotations

from .autocorr import BatchMeans, batch_means, batch_size, integrated_time, integrated_times
from .features import MEMBERS, Reference, reference, stein_features
from .quality import METHODS, ChainQuality, SampleQuality, sample_quality

__all__ = [
    "sample_quality",
    "SampleQuality",
    "ChainQuality",
    "METHODS",
    "MEMBERS",
    "integrated_time",
    "integrated_times",
    "batch_size",
    "batch_means",
    "BatchMeans",
    "Reference",
    "reference",
    "stein_features",
]

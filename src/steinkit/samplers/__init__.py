"""Samplers: stochastic gradient Langevin dynamics (Gibbs sampling lives on the RBM model)."""

from .sgld import SGLDResult, sgld, sgld_step

__all__ = ["SGLDResult", "sgld", "sgld_step"]

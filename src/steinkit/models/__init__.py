"""Probability models: Gaussian, Gaussian-Bernoulli RBM, linear ICA, MLP energy with a Gaussian base."""

from .energy import MLPEnergy
from .gaussian import Gaussian
from .ica import LinearICA
from .rbm import GaussianBernoulliRBM

__all__ = ["Gaussian", "GaussianBernoulliRBM", "LinearICA", "MLPEnergy"]

"""Probability models: Gaussian, Gaussian-Bernoulli RBM, linear ICA, MLP energy with a Gaussian base, Glow-like flow."""

from .energy import MLPEnergy
from .flows import GlowFlow
from .gaussian import Gaussian
from .ica import LinearICA
from .rbm import GaussianBernoulliRBM

__all__ = ["Gaussian", "GaussianBernoulliRBM", "LinearICA", "MLPEnergy", "GlowFlow"]

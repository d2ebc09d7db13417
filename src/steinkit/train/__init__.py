"""Training unnormalized models: LSD (Algorithm 3) and the baselines ML, SSM, NCE and CNCE.

:func:`train` is the entry point; :mod:`steinkit.train.trainer` maps the modules behind it.

Example:
    >>> import torch
    >>> from steinkit.models import Gaussian
    >>> x = torch.randn(500, 2, generator=torch.Generator().manual_seed(0)) + 1.0
    >>> q = Gaussian(torch.zeros(2), torch.eye(2))
    >>> res = train(q, x, method="ssm", steps=200, lr=1e-2, seed=0, progress=False)
    >>> bool((q.mean - 1.0).abs().max() < 0.3)
    True
"""

from .checkpoint import load_checkpoint, save_checkpoint
from .losses import cnce_loss, lsd_critic_loss, lsd_model_loss, ml_loss, nce_loss, ssm_loss, ssm_terms
from .modules import fit_noise
from .objectives import CNCE, LSD, ML, NCE, SSM, LSDOracle, Objective
from .settings import TrainSettings
from .state import TrainState
from .trainer import METHODS, TrainingDiverged, TrainResult, train

__all__ = [
    "train",
    "TrainSettings",
    "TrainResult",
    "TrainState",
    "TrainingDiverged",
    "METHODS",
    "Objective",
    "LSD",
    "LSDOracle",
    "ML",
    "SSM",
    "NCE",
    "CNCE",
    "save_checkpoint",
    "load_checkpoint",
    "ml_loss",
    "ssm_loss",
    "ssm_terms",
    "nce_loss",
    "cnce_loss",
    "lsd_critic_loss",
    "lsd_model_loss",
    "fit_noise",
]

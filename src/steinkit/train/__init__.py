"""Training unnormalized models: LSD (Algorithm 3) and the baselines ML, SSM, NCE and CNCE.

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
from .objectives import fit_noise
from .trainer import METHODS, TrainingDiverged, TrainResult, train

__all__ = [
    "train",
    "TrainResult",
    "TrainingDiverged",
    "METHODS",
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

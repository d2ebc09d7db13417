"""Training checkpoints: the whole :class:`~steinkit.train.state.TrainState`, written atomically.

:func:`save_checkpoint` writes with ``torch.save`` to a temporary file, then ``os.replace``, so
a reader sees either the previous complete checkpoint or the new complete one, never a
half-written file, even if the process is killed mid-write. :func:`state_dict` and
:func:`restore` turn a training state into a checkpoint and back (model, critic, optimisers,
generator, batch order, step, history, running sums); :func:`check_resumable` refuses a
checkpoint written by another method, for another dimension or with other settings.

Example:
    >>> import tempfile, os, torch
    >>> path = os.path.join(tempfile.mkdtemp(), "run.pt")
    >>> save_checkpoint({"step": 3, "w": torch.ones(2)}, path)
    >>> load_checkpoint(path)["step"]
    3
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from .objectives import Objective
    from .state import TrainState

__all__ = ["save_checkpoint", "load_checkpoint", "state_dict", "restore", "check_resumable", "FORMAT"]

FORMAT = "steinkit.train/1"
#: Settings every resumed run must share with its checkpoint (objectives add their own).
_SHARED = ("batch_size", "lr_decay", "batch_order")

PathLike = str | os.PathLike


def save_checkpoint(state: dict[str, Any], path: PathLike) -> None:
    """Write ``state`` to ``path`` atomically (temporary file in the same folder + ``os.replace``).

    Example:
        >>> import tempfile, os
        >>> save_checkpoint({"step": 1}, os.path.join(tempfile.mkdtemp(), "a", "ck.pt"))
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(state, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def load_checkpoint(path: PathLike) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` (tensors and plain containers only).

    Example:
        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "ck.pt")
        >>> save_checkpoint({"history": [{"step": 1, "loss": 0.5}]}, p)
        >>> load_checkpoint(p)["history"][0]["loss"]
        0.5
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise ValueError(f"checkpoint {str(path)!r} does not hold a dict, got {type(state).__name__}")
    return state


def _config(state: TrainState) -> dict[str, Any]:
    s = state.settings
    return {"lr": s.lr, "batch_size": s.batch_size, "lam": s.lam, "critic_steps": s.critic_steps, "eps": s.eps,
            "lr_decay": s.lr_decay, "trace": s.trace, "n_probes": s.n_probes, "batch_order": s.batch_order}


def state_dict(state: TrainState, method: str) -> dict[str, Any]:
    """The checkpoint of ``state`` (plain containers and tensors, loadable with ``weights_only``).

    Example:
        >>> import torch
        >>> from steinkit.models import Gaussian
        >>> from steinkit.train import train
        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "ml.pt")
        >>> _ = train(Gaussian(torch.zeros(2), torch.eye(2)), torch.randn(50, 2), method="ml", steps=3,
        ...           checkpoint=path, seed=0, progress=False)
        >>> ck = load_checkpoint(path)
        >>> ck["method"], ck["step"], ck["batches"]
        ('ml', 3, {'order': 'replacement'})
    """
    model_part = state.steppers["model"]
    critic_part = state.steppers.get("critic")
    return {
        "format": FORMAT,
        "method": method,
        "dim": state.model.dim,
        "step": state.step,
        "seconds": state.elapsed(),
        "model": state.model.state_dict(),
        "objective_extra": {k: v for k, v in model_part.module.state_dict().items() if not k.startswith("model.")},
        "optimizer": model_part.optimizer.state_dict(),
        "critic": None if state.critic is None else state.critic.state_dict(),
        "critic_optimizer": None if critic_part is None else critic_part.optimizer.state_dict(),
        "generator": state.generator.get_state(),
        "batches": state.batches.state_dict(),
        "history": state.history,
        "pending": state.pending,
        "tail_row": state.tail_row,
        "config": _config(state),
    }


def check_resumable(saved: dict[str, Any], path: PathLike, objective: Objective, state: TrainState) -> None:
    """Raise ``ValueError`` unless ``saved`` continues this run: same format, method, dimension
    and the settings that shape the trajectory (learning rates may change)."""
    where = f"checkpoint {str(path)!r}"
    if saved.get("format") != FORMAT:
        raise ValueError(f"{where} is not a steinkit.train checkpoint")
    if saved["method"] != objective.name:
        raise ValueError(
            f"{where} was written by method={saved['method']!r}, not {objective.name!r}; "
            "pass resume=False to overwrite it"
        )
    if saved["dim"] != state.model.dim:
        raise ValueError(f"{where} is for dimension {saved['dim']}, model.dim = {state.model.dim}")
    now, before = _config(state), {"batch_order": "replacement", **saved["config"]}  # (older files: no order)
    for key in (*_SHARED, *objective.settings_used):
        if key in before and before[key] != now[key]:
            raise ValueError(
                f"{where} was written with {key}={before[key]!r}, this run has {key}={now[key]!r}; "
                "pass the same value, or resume=False to start over"
            )


def restore(state: TrainState, saved: dict[str, Any]) -> None:
    """Load a checkpoint into ``state``; the learning rates of ``state.settings`` replace the
    saved ones (the Adam moments are kept)."""
    model_part = state.steppers["model"]
    state.model.load_state_dict(saved["model"])
    model_part.module.load_state_dict({**saved["objective_extra"], **{f"model.{k}": v for k, v in saved["model"].items()}})
    model_part.optimizer.load_state_dict(saved["optimizer"])
    model_part.set_lr(state.settings.lr)
    if state.critic is not None:
        state.critic.load_state_dict(saved["critic"])
        state.steppers["critic"].optimizer.load_state_dict(saved["critic_optimizer"])
        state.steppers["critic"].set_lr(state.settings.critic_rate)
    state.generator.set_state(saved["generator"])
    state.batches.load_state_dict(saved.get("batches", {"order": "replacement"}))
    state.step, state.seconds = int(saved["step"]), float(saved["seconds"])
    state.history, state.pending = list(saved["history"]), saved["pending"]
    if saved["tail_row"] and state.history:
        state.history.pop()  # written only because that run ended at this step

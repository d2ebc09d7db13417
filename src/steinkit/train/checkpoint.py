"""Training checkpoints: the whole :class:`~steinkit.train.state.TrainState`, written atomically.

:func:`save_checkpoint` writes with ``torch.save`` to a temporary file, then ``os.replace``, so
a reader sees either the previous complete checkpoint or the new complete one, never a
half-written file, even if the process is killed mid-write. :func:`state_dict` and
:func:`restore` turn a training state into a checkpoint and back (model, critic, optimisers,
generator, batch order, step, history, running sums, and each part's first-loss scale of the
divergence bound); :func:`check_resumable` refuses a
checkpoint written by another method, for a model of another shape or with other settings,
listing every difference; :func:`resume_note` is the line a resumed run prints.
:func:`check_path` refuses a ``checkpoint=`` that cannot be a file before any training, and
:func:`load_checkpoint` reports a file it cannot read (empty, truncated, not a torch file,
Python objects inside) as a ``ValueError`` naming the path and what to do.

Resuming (``train(..., checkpoint=path, resume=True)`` with an existing file) prints ``resuming
from step N of M (PATH)`` (unless ``progress=False``) and runs up to ``steps``, which may grow;
new learning rates replace the saved ones, and a new seed is unused (the checkpoint's random
state continues); the line lists such changes. A checkpoint of another run (method, model
shape, number of data rows, or a setting that shapes the trajectory: ``batch_size``, ``betas``,
``lr_decay``, ``batch_order``, the method's own such as ``lam``, ``critic_steps``, ``trace``,
``n_probes``, ``eps``) raises ``ValueError`` listing every difference as ``setting: saved -> now``.

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
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..validation import wrong_type

if TYPE_CHECKING:
    from .objectives import Objective
    from .state import TrainState

__all__ = [
    "save_checkpoint", "load_checkpoint", "check_path", "state_dict", "restore", "check_resumable", "resume_note",
    "FORMAT",
]

FORMAT = "steinkit.train/1"
#: Settings every resumed run must share with its checkpoint (objectives add their own); the
#: ``betas`` of older files come from their Adam.
_SHARED = ("batch_size", "lr_decay", "batch_order", "betas", "data_rows")
#: Settings a resumed run may change, said in its resume line: the learning rates, ``steps`` (at
#: least the saved step) and ``seed`` (unused: the checkpoint's random state continues).
_MAY_CHANGE = ("steps", "lr", "critic_lr", "seed")
#: What to do when a checkpoint cannot continue this run.
_START_AFRESH = "pass resume=False to start afresh (the file is overwritten), or give another checkpoint path"
#: The entries of a complete checkpoint (written by :func:`state_dict`) and their types.
_KEYS: dict[str, type | tuple[type, ...]] = {
    "method": str, "dim": object, "step": int, "seconds": (int, float), "model": dict, "objective_extra": dict,
    "optimizer": dict, "critic": (dict, type(None)), "critic_optimizer": (dict, type(None)),
    "generator": torch.Tensor, "history": list, "pending": dict, "tail_row": bool, "config": dict,
}

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

    A file that is not one (empty, truncated, not written by ``torch.save``, holding Python
    objects, not a dict) raises ``ValueError`` naming the path; a directory too.

    Example:
        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "ck.pt")
        >>> save_checkpoint({"history": [{"step": 1, "loss": 0.5}]}, p)
        >>> load_checkpoint(p)["history"][0]["loss"]
        0.5
        >>> _ = open(p, "w").write("not a checkpoint")
        >>> load_checkpoint(p)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: checkpoint '...ck.pt' cannot be read: it is truncated, corrupted or not written by torch.save; pass ...
    """
    path = Path(path)
    where = f"checkpoint {str(path)!r}"
    if path.is_dir():
        raise ValueError(f"{where} is a directory, not a file; give a file path such as {str(path / 'run.pt')!r}")
    if not path.exists():
        raise FileNotFoundError(f"{where} does not exist")
    if not path.is_file():
        raise ValueError(f"{where} is not a regular file; give the path of a checkpoint file")
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols of foreign files
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - every way torch.load fails on a bad file
        raise ValueError(f"{where} cannot be read: {_unreadable(path, exc)}; {_START_AFRESH}") from None
    if not isinstance(state, dict):
        raise ValueError(
            f"{where} holds a {type(state).__name__}, not a steinkit.train checkpoint (a dict); {_START_AFRESH}"
        )
    return state


def _unreadable(path: Path, exc: Exception) -> str:
    """Why ``torch.load`` failed on ``path``, in words."""
    if isinstance(exc, PermissionError):
        return f"permission denied ({exc.strerror})"
    try:
        if path.stat().st_size == 0:
            return "the file is empty"
    except OSError:
        pass
    text = str(exc)
    if "Unsupported global" in text:
        return "it holds Python objects besides tensors and plain containers, so steinkit.train did not write it"
    detail = f" ({type(exc).__name__}: {_first_line(exc)})" if "Weights only load failed" not in text else ""
    return f"it is truncated, corrupted or not written by torch.save{detail}"


def _first_line(exc: Exception, limit: int = 120) -> str:
    """The first sentence of ``exc``'s message, at most ``limit`` characters."""
    line = (str(exc).strip().splitlines() or [""])[0].split(". ")[0]
    return line if len(line) <= limit else line[: limit - 3] + "..."


def check_path(checkpoint: Any, *, writer: bool = True) -> Path | None:
    """``checkpoint=`` as a ``Path`` (or ``None``), refused before any training if it cannot be
    a file: a directory, a path below a file, or (for the process that writes it) a folder
    that cannot be created or written. Creates the missing folders of a writer's path.

    Example:
        >>> import tempfile
        >>> check_path(tempfile.mkdtemp())  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: checkpoint='...' is a directory, not a file; give a file path such as '.../run.pt'
    """
    if checkpoint is None:
        return None
    if not isinstance(checkpoint, (str, os.PathLike)):
        raise wrong_type("checkpoint", "a file path (str or os.PathLike)", checkpoint)
    path = Path(checkpoint)
    where = f"checkpoint={str(path)!r}"
    if path.is_dir():
        raise ValueError(f"{where} is a directory, not a file; give a file path such as {str(path / 'run.pt')!r}")
    blocking = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise ValueError(f"{where} cannot be written: {str(blocking)!r} is a file, not a folder; give another path")
    if writer:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ValueError(
                f"{where} cannot be written: its folder cannot be created ({exc.strerror or exc}); give another path"
            ) from None
        if not os.access(path.parent, os.W_OK | os.X_OK):
            raise ValueError(f"{where} cannot be written: no permission to write in {str(path.parent)!r}")
    return path


def _config(state: TrainState) -> dict[str, Any]:
    s = state.settings
    return {"lr": s.lr, "batch_size": s.batch_size, "lam": s.lam, "critic_steps": s.critic_steps, "eps": s.eps,
            "lr_decay": s.lr_decay, "trace": s.trace, "n_probes": s.n_probes, "batch_order": s.batch_order,
            "betas": tuple(s.betas), "steps": s.steps, "critic_lr": s.critic_rate, "seed": state.seed,
            "data_rows": int(state.data.shape[0])}


def _saved_config(saved: dict[str, Any]) -> dict[str, Any]:
    """The saved settings, completed for files written before a setting was recorded (their
    batch order was always "replacement"; their betas are those of their Adam)."""
    config = {"batch_order": "replacement", **saved["config"]}
    if "betas" not in config:
        groups = saved["optimizer"].get("param_groups") if isinstance(saved["optimizer"], dict) else None
        if groups and "betas" in groups[0]:
            config["betas"] = groups[0]["betas"]
    if "betas" in config:
        config["betas"] = tuple(float(b) for b in config["betas"])
    return config


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
        "loss_scales": {name: stepper.scale for name, stepper in state.steppers.items()},
    }


def check_resumable(saved: dict[str, Any], path: PathLike, objective: Objective, state: TrainState) -> None:
    """Raise ``ValueError`` unless ``saved`` continues this run: a complete checkpoint of this
    format, method and dimension, for a model (and critic) of the same shapes, written with the
    same trajectory settings (every difference is listed as ``setting: saved -> now``). The
    learning rates and ``steps`` may change, but ``steps`` not below the saved step."""
    where = f"checkpoint {str(path)!r}"
    if saved.get("format") != FORMAT:
        raise ValueError(
            f"{where} is not a steinkit.train checkpoint (format {saved.get('format')!r}); {_START_AFRESH}"
        )
    missing = [k for k in _KEYS if k not in saved]
    if missing:
        raise ValueError(f"{where} is incomplete (no {', '.join(missing)}); {_START_AFRESH}")
    damaged = [f"{k} is a {type(saved[k]).__name__}" for k, kind in _KEYS.items() if not isinstance(saved[k], kind)]
    if damaged:
        raise ValueError(f"{where} is damaged ({', '.join(damaged)}); {_START_AFRESH}")
    before, now = _saved_config(saved), _config(state)
    differences = []
    if saved["method"] != objective.name:
        differences.append(f"method: {saved['method']!r} -> {objective.name!r}")
    if saved["dim"] != state.model.dim:
        differences.append(f"model.dim: {saved['dim']!r} -> {state.model.dim!r}")
    for key in dict.fromkeys((*_SHARED, *objective.settings_used)):
        if key in before and before[key] != now[key]:
            differences.append(f"{key}: {before[key]!r} -> {now[key]!r}")
    if differences:
        raise ValueError(
            f"{where} was written by another run; its settings differ from this one's (setting: saved -> now): "
            f"{', '.join(differences)}. Rerun with the saved settings to continue it, or {_START_AFRESH}"
        )
    shapes = _shape_differences(saved, state)
    if shapes:
        raise ValueError(
            f"{where} holds a model of another shape (name: saved -> now): {', '.join(shapes)}. Build the model "
            f"(and critic) as in the run that wrote it, or {_START_AFRESH}"
        )
    if int(saved["step"]) > state.settings.steps:
        raise ValueError(
            f"{where} is at step {saved['step']}, past this run's steps={state.settings.steps}; pass "
            f"steps >= {saved['step']} to continue it, or {_START_AFRESH}"
        )


def _shape_differences(saved: dict[str, Any], state: TrainState, limit: int = 6) -> list[str]:
    """``name: saved shape -> this run's shape`` (or ``absent``) for every tensor of the model,
    the objective's extra parameters and the critic whose shape differs."""
    model_part = state.steppers["model"].module
    now_parts = {
        "": state.model.state_dict(),
        "objective.": {k: v for k, v in model_part.state_dict().items() if not k.startswith("model.")},
        "critic.": {} if state.critic is None else state.critic.state_dict(),
    }
    saved_parts = {"": saved["model"], "objective.": saved["objective_extra"], "critic.": saved["critic"] or {}}
    out = []
    for prefix, now in now_parts.items():
        before = saved_parts[prefix]
        if not isinstance(before, dict):
            return [f"{prefix or 'model'} (not a state dict)"]
        for key in dict.fromkeys((*before, *now)):
            a, b = _shape(before.get(key)), _shape(now.get(key))
            if a != b:
                out.append(f"{prefix}{key}: {a} -> {b}")
    return out if len(out) <= limit else [*out[:limit], f"and {len(out) - limit} more"]


def _shape(t: Any) -> str:
    if t is None:
        return "absent"
    return str(tuple(t.shape)) if isinstance(t, torch.Tensor) else type(t).__name__


def resume_note(saved: dict[str, Any], path: PathLike, state: TrainState) -> str:
    """The line a resumed run prints: ``resuming from step N of M (PATH)``, and the settings a
    resumed run may change that did (``steps``, learning rates, a seed given to both runs) as
    ``setting: saved -> now``. Call it before :func:`restore`."""
    before, now = _saved_config(saved), _config(state)
    unused = " (unused: the checkpoint's random state continues)"
    changed = [
        f"{k}: {before[k]!r} -> {now[k]!r}" + (unused if k == "seed" else "")
        for k in _MAY_CHANGE
        if before.get(k) is not None and now[k] is not None and before[k] != now[k]
    ]
    note = f"resuming from step {int(saved['step'])} of {state.settings.steps} ({str(path)}"
    return note + (f"; changed: {', '.join(changed)})" if changed else ")")


def restore(state: TrainState, saved: dict[str, Any], path: PathLike = "checkpoint") -> None:
    """Load a checkpoint (checked by :func:`check_resumable`) into ``state``; the learning rates
    of ``state.settings`` replace the saved ones (the Adam moments are kept). A part that does
    not load raises ``ValueError`` naming ``path``, leaving the model, critic and generator as
    they were."""
    model_part = state.steppers["model"]
    backup = _backup(state)
    try:
        state.generator.set_state(saved["generator"])  # first: fails for another device, before the model changes
        state.model.load_state_dict(saved["model"])
        model_part.module.load_state_dict(
            {**saved["objective_extra"], **{f"model.{k}": v for k, v in saved["model"].items()}}
        )
        model_part.optimizer.load_state_dict(saved["optimizer"])
        model_part.set_lr(state.settings.lr)
        if state.critic is not None:
            state.critic.load_state_dict(saved["critic"])
            state.steppers["critic"].optimizer.load_state_dict(saved["critic_optimizer"])
            state.steppers["critic"].set_lr(state.settings.critic_rate)
        state.batches.load_state_dict(saved.get("batches", {"order": "replacement"}))
    except (RuntimeError, KeyError, ValueError, TypeError, IndexError) as exc:
        _roll_back(state, backup)
        raise ValueError(
            f"checkpoint {str(path)!r} does not fit this run ({type(exc).__name__}: {_first_line(exc)}); "
            f"{_START_AFRESH}"
        ) from None
    state.step, state.seconds = int(saved["step"]), float(saved["seconds"])
    state.history, state.pending = list(saved["history"]), saved["pending"]
    state.seed = _saved_config(saved).get("seed", state.seed)  # the run's own seed, kept through reruns
    scales = saved.get("loss_scales")  # older files have none: each part's next step sets its scale
    scales = scales if isinstance(scales, dict) else {}
    for name, stepper in state.steppers.items():
        stepper.scale = scales.get(name)
    if saved["tail_row"] and state.history:
        state.history.pop()  # written only because that run ended at this step


def _backup(state: TrainState) -> dict[str, Any]:
    """Copies of what :func:`restore` changes in the caller's objects (model, critic, generator)."""
    copy = lambda sd: {k: v.detach().clone() for k, v in sd.items()}  # noqa: E731
    return {
        "module": copy(state.steppers["model"].module.state_dict()),  # the model's and the objective's
        "critic": None if state.critic is None else copy(state.critic.state_dict()),
        "generator": state.generator.get_state(),
    }


def _roll_back(state: TrainState, backup: dict[str, Any]) -> None:
    state.steppers["model"].module.load_state_dict(backup["module"])
    if state.critic is not None:
        state.critic.load_state_dict(backup["critic"])
    state.generator.set_state(backup["generator"])

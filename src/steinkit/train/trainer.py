"""One trainer for unnormalized models: a loop over an explicit :class:`~steinkit.train.state.TrainState`.

``train(model, x, method=...)`` checks its inputs, builds the state (the objective's parts,
an Adam per part, the generator and the batch order), resumes it from a checkpoint if one
exists, and then, for each step t up to T: sets the learning rate, lets the objective do one
model update, records history, writes a checkpoint. The pieces live in their own modules:

=============================  ==========================================================
:mod:`~.settings`              :class:`TrainSettings` (validated settings)
:mod:`~.objectives`            the methods: ``lsd`` (Algorithm 3, with its critic loop),
                               ``ml``, ``ssm``, ``nce``, ``cnce``, and :class:`LSDOracle`
:mod:`~.modules`, :mod:`~.losses`  the losses, as functions and as DDP-wrappable modules
:mod:`~.state`                 :class:`TrainState`, metric sums and history rows
:mod:`~.batches`               mini-batch orders (with replacement, or shuffled epochs)
:mod:`~.schedule`              learning rate, record and checkpoint schedules
:mod:`~.checkpoint`            atomic save/load, resume and its settings check
:mod:`~.distributed`           DDP (:class:`World`) and the guarded optimiser step
=============================  ==========================================================

A step that diverges is not applied: training stops there, leaving the parameters and the
last checkpoint at their last good values. A step diverges when its loss or gradients are not
finite, or when its loss passes ``max_loss_ratio`` times its first scale (divergence to huge
values, e.g. from too large a learning rate; see :class:`TrainSettings`). A resumed run ends with
exactly the parameters and history of an uninterrupted one.

Example:
    >>> import torch
    >>> from steinkit.models import LinearICA
    >>> g = torch.Generator().manual_seed(0)
    >>> truth = LinearICA.random(3, generator=g)
    >>> x = truth.sample(2000, generator=g)
    >>> res = train(LinearICA(torch.eye(3)), x, method="ml", steps=300, batch_size=100,
    ...             lr=1e-2, seed=0, progress=False)
    >>> res.history[-1]["loss"] < res.history[0]["loss"]
    True
"""

from __future__ import annotations

import os
import sys
import warnings
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..validation import as_device
from .checkpoint import check_path, check_resumable, load_checkpoint, restore, resume_note, save_checkpoint, state_dict
from .checks import check_data, check_model, make_generator
from .distributed import Diverged, World
from .modules import NCELoss
from .objectives import METHODS, Objective, make_objective
from .schedule import checkpoints, learning_rate, records
from .settings import FROM_SETTINGS, LR_DECAYS, TrainSettings
from ..validation import wrong_type
from .state import EvalFn, TrainState, new_state

__all__ = ["LR_DECAYS", "METHODS", "TrainResult", "TrainingDiverged", "train"]


@dataclass(frozen=True)
class TrainResult:
    """Result of :func:`train`.

    Attributes:
        model: the trained model (the object passed in, updated in place).
        method: the training method's name.
        steps: model updates done in total (including those before a resume).
        history: one dict per record: ``step``, ``seconds`` and the mean ``loss`` (and
            method metrics: ``lsd``/``critic_loss`` for LSD, ``sq_norm``/``hess_term`` for SSM,
            ``log_c`` for NCE) since the previous record, plus ``eval_fn``'s values at its steps.
        critic: the critic (``lsd``) or ``None``.
        log_normalizer: NCE's learned log-normalizer c (log q̃ = log_prob + c), else ``None``.
        seconds: training wall time, summed over resumed segments.
        resumed_from: the step the run resumed from (0 for a fresh run).
        diverged_at: the step that diverged (loss or gradients not finite, or a loss past the
            ``max_loss_ratio`` bound; only with ``on_nan="stop"``), else ``None``.
        checkpoint: the checkpoint path, if any.
        world_size: the number of DDP processes (1 without DDP).
    """

    model: nn.Module
    method: str
    steps: int
    history: tuple[dict, ...]
    critic: nn.Module | None = None
    log_normalizer: float | None = None
    seconds: float = 0.0
    resumed_from: int = 0
    diverged_at: int | None = None
    checkpoint: Path | None = None
    world_size: int = 1

    def __repr__(self) -> str:
        last = self.history[-1] if self.history else {}
        loss = last.get("loss", float("nan"))
        status = f", diverged_at={self.diverged_at}" if self.diverged_at is not None else ""
        return (
            f"TrainResult(method={self.method!r}, steps={self.steps}, loss={loss:.4g}, "
            f"seconds={self.seconds:.1f}{status})"
        )


class TrainingDiverged(RuntimeError):
    """Raised when training diverges: a loss or gradient turns non-finite (NaN/inf), or a loss
    passes the ``max_loss_ratio`` bound, during :func:`train`.

    Attributes: ``step`` (the failed step), ``history`` (records so far), ``checkpoint`` (the
    path of the last good checkpoint, or ``None``) and ``last_good_step`` (its step).
    """

    def __init__(
        self, message: str, *, step: int, history: tuple[dict, ...], checkpoint: Path | None, last_good_step: int
    ) -> None:
        super().__init__(message)
        self.step, self.history, self.checkpoint, self.last_good_step = step, history, checkpoint, last_good_step


def train(
    model: nn.Module,
    data: Tensor,
    *,
    method: str | Objective = "lsd",
    settings: TrainSettings | None = None,
    steps: int = FROM_SETTINGS, batch_size: int = FROM_SETTINGS, lr: float = FROM_SETTINGS,
    betas: tuple[float, float] = FROM_SETTINGS, lr_decay: str = FROM_SETTINGS, batch_order: str = FROM_SETTINGS,
    critic_steps: int = FROM_SETTINGS, critic_lr: float | None = FROM_SETTINGS, lam: float = FROM_SETTINGS,
    trace: str = FROM_SETTINGS, n_probes: int = FROM_SETTINGS, eps: float = FROM_SETTINGS,
    checkpoint_every: int | None = FROM_SETTINGS, log_every: int | None = FROM_SETTINGS,
    eval_every: int | None = FROM_SETTINGS, on_nan: str = FROM_SETTINGS, max_loss_ratio: float | None = FROM_SETTINGS,
    critic: nn.Module | None = None,
    checkpoint: str | os.PathLike | None = None,
    resume: bool = True,
    eval_fn: EvalFn | None = None,
    generator: torch.Generator | None = None,
    seed: int | None = None,
    progress: bool = True,
    distributed: bool | None = None,
    device: torch.device | str | None = None,
) -> TrainResult:
    """Train an unnormalized model on ``data`` with LSD (Algorithm 3) or a baseline.

    Arguments:
        model: an ``nn.Module`` with an int ``dim`` and what the method calls: ``score`` (``lsd``,
            ``ssm``) or ``log_prob`` (``ml`` also needs ``normalized = True``). Trained in place.
        data: training data, (n, model.dim), finite; cast to the model's dtype.
        method: ``"lsd"``, ``"ml"``, ``"ssm"``, ``"nce"``, ``"cnce"`` or an
            :class:`~steinkit.train.objectives.Objective` (e.g. ``LSDOracle(p)``).
        settings, steps, ..., max_loss_ratio: a :class:`~steinkit.train.settings.TrainSettings`
            (its fields say what each does), and its fields one by one. Every field the call
            names overrides ``settings``' value; without ``settings``, ``steps`` is required.
        critic: the LSD critic (default ``MLPCritic(model.dim)``, initialised from the generator).
        checkpoint, resume: a file written atomically every ``checkpoint_every`` steps and at the
            end; ``resume=True`` continues from it when it exists, ``False`` overwrites it (what
            a resumed run may change: :mod:`steinkit.train.checkpoint`).
        eval_fn: ``eval_fn(model)`` -> float (recorded as ``"eval"``) or dict of floats, called
            at step 0, every ``eval_every`` steps and at the end.
        generator, seed: the source of every random draw; give one or neither.
        progress: show a progress bar and the resume line (rank 0).
        distributed: use DDP (:mod:`steinkit.train.distributed`); ``None``: if
            ``torch.distributed`` is initialised with more than one process.
        device: where to train; the model and the critic move there in place, the data are
            copied there. Default: where the model's parameters are.

    Returns:
        A :class:`TrainResult`. A diverging step is not applied: :class:`TrainingDiverged` is
        raised, or with ``on_nan="stop"`` a warning, and the result says ``diverged_at``.

    Example:
        >>> from steinkit.critics import MLPCritic
        >>> from steinkit.models import MLPEnergy
        >>> x = torch.randn(500, 2, generator=torch.Generator().manual_seed(1))
        >>> ebm = MLPEnergy(2, hidden=16).init_base(x)
        >>> train(ebm, x, steps=5, critic=MLPCritic(2, hidden=16), critic_steps=2, progress=False).steps
        5
        >>> train(ebm, x, method="ssm", settings=TrainSettings(steps=3), steps=2, progress=False).steps
        2
    """
    keywords = {name: value for name, value in locals().items() if name in _FIELDS}  # before any other local
    settings = _settings(settings, keywords)
    objective = make_objective(method, critic)
    if eval_fn is not None and not callable(eval_fn):
        raise wrong_type("eval_fn", "callable", eval_fn)
    if not isinstance(resume, bool):
        raise wrong_type("resume", "True or False", resume)
    path = check_path(checkpoint, writer=False)
    state = _start(model, data, objective, settings, generator=generator, seed=seed, distributed=distributed,
                   device=device)
    state.seed = seed
    if path is not None and state.world.rank == 0:
        check_path(path, writer=True)
    start = _resume(state, objective, path, resume=resume, show=progress and state.world.rank == 0)
    diverged_at, cause, last_good = _loop(state, objective, eval_fn, path, progress)
    if diverged_at is not None:
        assert cause is not None
        _report_divergence(state, objective, diverged_at, cause, path, last_good)
    return _result(state, objective, start, diverged_at, path)


#: The :class:`TrainSettings` fields, each also a keyword of :func:`train`.
_FIELDS = tuple(f.name for f in fields(TrainSettings))


def _settings(settings: TrainSettings | None, keywords: dict[str, Any]) -> TrainSettings:
    """``settings`` (or the defaults) with every keyword the caller wrote put over it."""
    given = {name: value for name, value in keywords.items() if value is not FROM_SETTINGS}
    if settings is None:
        if "steps" not in given:
            raise TypeError("train() needs steps= (the number of model updates) or settings=")
        return TrainSettings(**given)
    if not isinstance(settings, TrainSettings):
        raise wrong_type("settings", "a TrainSettings", settings)
    return settings.replace(**given)


def _start(
    model: nn.Module,
    data: Tensor,
    objective: Objective,
    settings: TrainSettings,
    *,
    generator: torch.Generator | None,
    seed: int | None,
    distributed: bool | None,
    device: torch.device | str | None,
) -> TrainState:
    """The checked inputs as a fresh training state at step 0."""
    dim = check_model(model, objective)
    if device is not None:
        model.to(as_device(device))
    first = next(p for p in model.parameters() if p.requires_grad)
    data = check_data(data, dim, first)
    generator, seed = make_generator(generator, seed, first.device)
    world = World.detect(distributed)
    return new_state(model, data, objective, settings, generator=generator, seed=seed, world=world)


def _resume(state: TrainState, objective: Objective, path: Path | None, *, resume: bool, show: bool) -> int:
    """Restore ``state`` from ``path`` if that file exists and ``resume`` (saying so on stderr
    when ``show``); a fresh run initialises its data-dependent layers. Returns the step the
    run starts from."""
    if path is not None and path.exists():
        if not resume:
            if show:
                print(f"starting afresh (resume=False): {str(path)} will be overwritten", file=sys.stderr, flush=True)
        else:
            saved = load_checkpoint(path)
            check_resumable(saved, path, objective, state)
            note = resume_note(saved, path, state)
            restore(state, saved, path)
            if show:
                print(note, file=sys.stderr, flush=True)
    if state.step == 0:
        _initialize_from_data(state, objective)
    return state.step


def _result(
    state: TrainState, objective: Objective, start: int, diverged_at: int | None, path: Path | None
) -> TrainResult:
    loss = state.steppers["model"].module
    return TrainResult(
        model=state.model,
        method=objective.name,
        steps=state.step,
        history=tuple(state.history),
        critic=state.critic,
        log_normalizer=float(loss.log_c.detach()) if isinstance(loss, NCELoss) else None,
        seconds=state.elapsed(),
        resumed_from=start,
        diverged_at=diverged_at,
        checkpoint=path,
        world_size=state.world.size,
    )


def _initialize_from_data(state: TrainState, objective: Objective) -> None:
    """Let layers with data-dependent initialisation (a flow's ActNorm: an ``initialized``
    buffer still False) initialise on the first global training batch, before any ``eval_fn``
    call and identically on every DDP process. Draws nothing; other models are not called."""
    if not any(_is_false(getattr(m, "initialized", None)) for m in state.model.modules()):
        return
    with torch.no_grad():
        getattr(state.model, objective.needs)(state.batches.peek())


def _is_false(flag: object) -> bool:
    return isinstance(flag, Tensor) and flag.numel() == 1 and not bool(flag)


def _loop(
    state: TrainState, objective: Objective, eval_fn: EvalFn | None, path: Path | None, progress: bool
) -> tuple[int | None, Diverged | None, int | None]:
    """Steps ``state.step + 1 .. T``. Returns the step that diverged and how (or ``None``
    twice), and the step of the last checkpoint written."""
    settings, writer = state.settings, path is not None and state.world.rank == 0
    last_good = state.step if path is not None and state.step > 0 else None
    state.model.train()
    if state.critic is not None:
        state.critic.train()
    if state.step == 0 and eval_fn is not None:
        state.record(0, evaluate=True, eval_fn=eval_fn)
    show = progress and state.world.rank == 0
    bar = tqdm(total=settings.steps, initial=min(state.step, settings.steps), desc=f"train[{objective.name}]",
               disable=not show)  # fmt: skip
    try:
        for step in range(state.step + 1, settings.steps + 1):
            state.steppers["model"].set_lr(learning_rate(settings, step))
            try:
                objective.update(state)
            except Diverged as exc:
                return step, exc, last_good
            state.step = step
            bar.update(1)
            row = records(settings, step)
            if row is not None:
                state.record(step, evaluate=row != "log", eval_fn=eval_fn, final=row == "final")
                if state.history and show:
                    bar.set_postfix(loss=f"{state.history[-1].get('loss', float('nan')):.4g}")
            if checkpoints(settings, step) and path is not None:
                if writer:
                    save_checkpoint(state_dict(state, objective.name), path)
                last_good = step
    finally:
        bar.close()
    return None, None, last_good


def _report_divergence(
    state: TrainState, objective: Objective, step: int, cause: Diverged, path: Path | None, last_good: int | None
) -> None:
    """Raise :class:`TrainingDiverged` (``on_nan="raise"``) or warn (``"stop"``), naming the
    cause and the settings to change."""
    msg = (
        f"training diverged: the {cause.part} {cause.reason} at step {step} "
        f"(method={objective.name!r}); that step was not applied, so the parameters are those after step "
        f"{step - 1}"
    )
    if path is not None:
        msg += (
            f"; the last good checkpoint (step {last_good}) is kept at {str(path)!r}"
            if last_good is not None
            else f"; no checkpoint had been written to {str(path)!r} yet"
        )
    msg += f". {_remedy(state, objective, cause)}."
    if state.settings.on_nan == "raise":
        raise TrainingDiverged(
            msg, step=step, history=tuple(state.history), checkpoint=path, last_good_step=last_good or 0
        )
    warnings.warn(msg, RuntimeWarning, stacklevel=4)  # the caller of train()


def _remedy(state: TrainState, objective: Objective, cause: Diverged) -> str:
    """What to change after a divergence: the data or model when it failed before any update;
    else the rates (and LSD's lam), or the bound itself."""
    settings = state.settings
    if cause.first:
        return (
            f"It failed before any update of the {cause.part}, so the learning rate is not the cause: check the data "
            f"(largest |data| is {float(state.data.abs().max()):.3g}; rescale or standardize data that large) and "
            f"the model's {objective.needs}(x) on them"
        )
    rates = f"lr (now {settings.lr:g})"
    if cause.part == "critic" and settings.critic_lr is not None:
        rates = f"critic_lr (now {settings.critic_lr:g})"
    text = f"Try a smaller {rates}"
    if "lam" in objective.settings_used:
        text += f" or a larger lam (now {settings.lam:g})"
    if "max_loss_ratio" in cause.reason:
        text += "; if losses this large are expected, pass a larger max_loss_ratio (or None)"
    return text

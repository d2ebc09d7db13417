"""One trainer for unnormalized models over five methods: ``lsd``, ``ml``, ``ssm``, ``nce``, ``cnce``.

``lsd`` is Algorithm 3 of the paper: ``critic_steps`` critic updates (each on a fresh
mini-batch) per model update, both with Adam (betas (.5, .9) by default). The other methods take
one Adam step per iteration on their own loss (see :mod:`steinkit.train.losses`).

The loop records a metric history, evaluates an optional ``eval_fn``, writes atomic checkpoints
(model, critic, optimizers, generator state, step, history) and resumes from them; a resumed run
ends with exactly the parameters of an uninterrupted one. A step whose loss or gradients are not
finite is not applied: training stops there, leaving the parameters and the last checkpoint at
their last finite values.

Under ``torchrun`` (``torch.distributed`` initialised, world size > 1) each objective is wrapped
in ``DistributedDataParallel``. Every process holds the full data and the same generator, draws
the same *global* batch indices and random inputs (probes, noise), and takes its own contiguous
share of the rows; gradients are averaged by DDP, so an update equals the single-process update
on the global batch.

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

import math
import numbers
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..critics import MLPCritic
from .checkpoint import load_checkpoint, save_checkpoint
from .objectives import (
    CNCEObjective,
    CriticObjective,
    LSDModelObjective,
    MLObjective,
    NCEObjective,
    Objective,
    SSMObjective,
    fit_noise,
)

__all__ = ["LR_DECAYS", "METHODS", "TrainResult", "TrainingDiverged", "train"]

METHODS: tuple[str, ...] = ("lsd", "ml", "ssm", "nce", "cnce")
LR_DECAYS: tuple[str, ...] = ("constant", "cosine")
_TRACES = ("hutchinson", "exact")
_FORMAT = "steinkit.train/1"

EvalFn = Callable[[nn.Module], "float | Mapping[str, float]"]


@dataclass(frozen=True)
class TrainResult:
    """Result of :func:`train`.

    Attributes:
        model: the trained model (the object passed in, updated in place).
        method: the training method.
        steps: model updates done in total (including those before a resume).
        history: one dict per record: ``step``, ``seconds`` and the mean ``loss`` (and
            method metrics: ``lsd``/``critic_loss`` for LSD, ``sq_norm``/``hess_term`` for SSM,
            ``log_c`` for NCE) since the previous record, plus ``eval_fn``'s values at its steps.
        critic: the critic (``lsd``) or ``None``.
        log_normalizer: NCE's learned log-normalizer c (log q̃ = log_prob + c), else ``None``.
        seconds: training wall time, summed over resumed segments.
        resumed_from: the step the run resumed from (0 for a fresh run).
        diverged_at: the step whose loss or gradients were not finite (only with
            ``on_nan="stop"``), else ``None``.
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
    """Raised when a loss or gradient turns non-finite (NaN/inf) during :func:`train`.

    Attributes: ``step`` (the failed step), ``history`` (records so far), ``checkpoint`` (the
    path of the last good checkpoint, or ``None``) and ``last_good_step`` (its step).
    """

    def __init__(
        self, message: str, *, step: int, history: tuple[dict, ...], checkpoint: Path | None, last_good_step: int
    ) -> None:
        super().__init__(message)
        self.step, self.history, self.checkpoint, self.last_good_step = step, history, checkpoint, last_good_step


# --------------------------------------------------------------------------- validation
def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {value}")
    return int(value)


def _positive_float(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value}")
    return value


def _check_model(model: Any, method: str) -> int:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    dim = getattr(model, "dim", None)
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise TypeError(f"model must have an int attribute `dim` (its data dimension), got {dim!r}")
    need = "score" if method in ("lsd", "ssm") else "log_prob"
    if not callable(getattr(model, need, None)):
        raise TypeError(f"method={method!r} needs model.{need}(x); {type(model).__name__} has none")
    if method == "ml" and getattr(model, "normalized", False) is not True:
        raise ValueError(
            f"method='ml' needs a normalized model (model.normalized is True), but "
            f"{type(model).__name__}.log_prob is unnormalized; use 'lsd', 'ssm', 'nce' or 'cnce'"
        )
    if not any(p.requires_grad for p in model.parameters()):
        raise ValueError("model has no trainable parameters (none with requires_grad=True)")
    return dim


def _check_data(data: Any, dim: int, like: Tensor) -> Tensor:
    if not isinstance(data, Tensor):
        try:
            data = torch.as_tensor(data)
        except Exception as exc:  # noqa: BLE001 - report what was given
            raise TypeError(f"data must be a tensor of shape (n, {dim}), got {type(data).__name__}") from exc
    if data.dim() != 2:
        raise ValueError(f"data must be a 2-D tensor (n, {dim}), got shape {tuple(data.shape)}")
    if data.shape[1] != dim:
        raise ValueError(
            f"data has {data.shape[1]} columns but the model has dimension model.dim = {dim}"
        )
    if data.shape[0] < 1:
        raise ValueError("data must have at least one row")
    data = data.detach().to(dtype=like.dtype, device=like.device)
    bad = ~torch.isfinite(data).all(1)
    if bool(bad.any()):
        rows = bad.nonzero().flatten()
        raise ValueError(
            f"data contains NaN or inf in {len(rows)} row(s) (first: row {int(rows[0])}); remove them"
        )
    return data


def _distributed_info(distributed: bool | None) -> tuple[bool, int, int]:
    import torch.distributed as dist

    ready = dist.is_available() and dist.is_initialized()
    if distributed is None:
        distributed = ready and dist.get_world_size() > 1
    if distributed and not ready:
        raise ValueError(
            "distributed=True needs torch.distributed to be initialised "
            "(run under torchrun and call torch.distributed.init_process_group first)"
        )
    if not distributed:
        return False, 0, 1
    return True, dist.get_rank(), dist.get_world_size()


# --------------------------------------------------------------------------- the loop
class _Stepper:
    """One optimizer step on one (possibly DDP-wrapped) objective, with the NaN guard."""

    def __init__(self, module: nn.Module, lr: float, betas: tuple[float, float], distributed: bool, world: int) -> None:
        self.module = module
        self.params = [p for p in module.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(self.params, lr=lr, betas=betas)
        self.distributed, self.world = distributed, world
        self.wrapped: nn.Module = module
        if distributed:
            from torch.nn.parallel import DistributedDataParallel

            # find_unused_parameters: a score never depends on, e.g., an energy's output bias.
            self.wrapped = DistributedDataParallel(module, find_unused_parameters=True)

    def step(self, *inputs: Any) -> dict[str, float] | None:
        """Forward, backward, NaN check, Adam step. Returns the (global) loss and metrics, or
        ``None`` (without stepping) when the loss or a gradient is not finite."""
        loss, metrics = self.wrapped(*inputs)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        names = ["loss", *metrics]
        values = torch.stack([loss.detach(), *(m.detach().to(loss.dtype) for m in metrics.values())])
        grads = [p.grad for p in self.params if p.grad is not None]
        grad_sum = torch.stack([g.sum() for g in grads]).sum() if grads else loss.new_zeros(())
        values = torch.cat([values, grad_sum.reshape(1)])
        if self.distributed:
            import torch.distributed as dist

            dist.all_reduce(values)
            values = values / self.world
        if not bool(torch.isfinite(values).all()):
            self.optimizer.zero_grad(set_to_none=True)
            return None
        self.optimizer.step()
        return dict(zip(names, values[:-1].tolist()))


def _build_objective(method: str, model: nn.Module, data: Tensor, eps: float) -> Objective:
    if method == "ml":
        return MLObjective(model)
    if method == "ssm":
        return SSMObjective(model)
    if method == "nce":
        return NCEObjective(model, fit_noise(data))
    if method == "cnce":
        return CNCEObjective(model, eps)
    return LSDModelObjective(model)


def _set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


def _empty_pending() -> dict[str, dict[str, Any]]:
    """Running sums of the metrics since the last history record, per optimizer."""
    return {"model": {"count": 0, "sums": {}}, "critic": {"count": 0, "sums": {}}}


def _rows(t: Tensor | None, lo: int, hi: int) -> Tensor | None:
    return None if t is None else t[lo:hi]


def train(
    model: nn.Module,
    data: Tensor,
    *,
    method: str = "lsd",
    steps: int,
    batch_size: int = 100,
    lr: float = 1e-3,
    betas: tuple[float, float] = (0.5, 0.9),
    lr_decay: str = "constant",
    critic: nn.Module | None = None,
    critic_steps: int = 5,
    critic_lr: float | None = None,
    lam: float = 0.5,
    trace: str = "hutchinson",
    n_probes: int = 1,
    eps: float = 0.1,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int = 1000,
    resume: bool = True,
    eval_fn: EvalFn | None = None,
    eval_every: int | None = None,
    log_every: int | None = None,
    on_nan: str = "raise",
    generator: torch.Generator | None = None,
    seed: int | None = None,
    progress: bool = True,
    distributed: bool | None = None,
) -> TrainResult:
    """Train an unnormalized model on ``data`` with LSD (Algorithm 3) or a baseline.

    Arguments:
        model: an ``nn.Module`` with an int ``dim`` and ``score`` (``lsd``, ``ssm``; the score
            must be differentiable in the parameters, and for ``ssm`` also in x) or
            ``log_prob`` (``ml``, ``nce``, ``cnce``; ``ml`` also needs ``normalized = True``).
            It is trained in place.
        data: training data, (n, model.dim), finite; cast to the model's dtype.
        method: ``"lsd"``, ``"ml"``, ``"ssm"``, ``"nce"`` or ``"cnce"``.
        steps: total model updates T (a resumed run continues up to ``steps``).
        batch_size: global mini-batch size (drawn with replacement, fresh for every update;
            divisible by the world size under DDP).
        lr, betas: Adam settings of the model (and of the critic, unless ``critic_lr``).
        lr_decay: the model's learning-rate schedule: ``"constant"`` (the paper's) or
            ``"cosine"`` (lr · ½(1 + cos(π (t-1) / T)) at step t of T; the critic's rate stays).
            Adam's step does not shrink with the gradient, so with a constant rate the model
            keeps jittering at a scale set by lr around the optimum.
        critic: the LSD critic (default ``MLPCritic(model.dim)``: 2x300 Swish, initialised
            from the generator).
        critic_steps: critic updates C per model update (``lsd``).
        critic_lr: the critic's learning rate (default ``lr``).
        lam: the critic's L2 penalty weight λ (``lsd``).
        trace: ``"hutchinson"`` or ``"exact"`` trace in the critic objective (``lsd``).
        n_probes: Hutchinson probes per example (``lsd``).
        eps: the noise scale ε of ``cnce`` (y = x + ε n).
        checkpoint: a file path; written atomically every ``checkpoint_every`` steps and at
            the end (by rank 0 only).
        resume: continue from ``checkpoint`` if the file exists (it must be of the same method);
            the learning rates given now replace the saved ones, the Adam moments are kept.
        eval_fn: called as ``eval_fn(model)`` at step 0, every ``eval_every`` steps and at the
            end; returns a float (recorded as ``"eval"``) or a dict of floats.
        eval_every: steps between evaluations (default: ``log_every``).
        log_every: steps between history records (default ``max(1, steps // 500)``).
        on_nan: ``"raise"`` (raise :class:`TrainingDiverged`) or ``"stop"`` (warn and return a
            result with ``diverged_at`` set) when a loss or gradient is not finite. Either way
            that step is not applied and the last checkpoint is kept as it was.
        generator, seed: the source of every random draw (mini-batches, probes, noise, the
            default critic's initialisation); give one or neither (then a seed is drawn from
            torch's global generator).
        progress: show a tqdm progress bar (rank 0).
        distributed: use DDP; ``None`` means "if ``torch.distributed`` is initialised with more
            than one process".

    Returns:
        A :class:`TrainResult`.

    Example:
        >>> from steinkit.models import MLPEnergy
        >>> x = torch.randn(500, 2, generator=torch.Generator().manual_seed(1))
        >>> ebm = MLPEnergy(2, hidden=16).init_base(x)
        >>> res = train(ebm, x, method="lsd", steps=5, critic=MLPCritic(2, hidden=16),
        ...             critic_steps=2, seed=0, progress=False)
        >>> res.steps, res.critic is not None
        (5, True)
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    dim = _check_model(model, method)
    first = next(p for p in model.parameters() if p.requires_grad)
    data = _check_data(data, dim, first)
    steps = _positive_int(steps, "steps")
    batch_size = _positive_int(batch_size, "batch_size")
    lr = _positive_float(lr, "lr")
    critic_lr = lr if critic_lr is None else _positive_float(critic_lr, "critic_lr")
    if lr_decay not in LR_DECAYS:
        raise ValueError(f"lr_decay must be one of {LR_DECAYS}, got {lr_decay!r}")
    if not (isinstance(betas, (tuple, list)) and len(betas) == 2 and all(0.0 <= float(b) < 1.0 for b in betas)):
        raise ValueError(f"betas must be a pair of numbers in [0, 1), got {betas!r}")
    betas = (float(betas[0]), float(betas[1]))
    critic_steps = _positive_int(critic_steps, "critic_steps")
    lam = _positive_float(lam, "lam")
    eps = _positive_float(eps, "eps")
    n_probes = _positive_int(n_probes, "n_probes")
    if trace not in _TRACES:
        raise ValueError(f"trace must be one of {_TRACES}, got {trace!r}")
    checkpoint_every = _positive_int(checkpoint_every, "checkpoint_every")
    log_every = max(1, steps // 500) if log_every is None else _positive_int(log_every, "log_every")
    eval_every = log_every if eval_every is None else _positive_int(eval_every, "eval_every")
    if eval_fn is not None and not callable(eval_fn):
        raise TypeError(f"eval_fn must be callable, got {type(eval_fn).__name__}")
    if on_nan not in ("raise", "stop"):
        raise ValueError(f"on_nan must be 'raise' or 'stop', got {on_nan!r}")
    if generator is not None and seed is not None:
        raise ValueError("give either generator or seed, not both")
    if generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    if generator is None:
        if seed is None:
            seed = int(torch.randint(0, 2**62, (1,)).item())
        generator = torch.Generator(device=first.device).manual_seed(int(seed))
    is_dist, rank, world = _distributed_info(distributed)
    if batch_size % world:
        raise ValueError(f"batch_size ({batch_size}) must be divisible by the world size ({world})")
    local = batch_size // world
    lo, hi = rank * local, (rank + 1) * local

    # -- the objectives and their optimizers
    objective = _build_objective(method, model, data, eps)
    model_step = _Stepper(objective, lr, betas, is_dist, world)
    critic_step: _Stepper | None = None
    critic_obj: CriticObjective | None = None
    if method == "lsd":
        if critic is None:
            init_gen = generator
            if generator.device.type != "cpu":  # the critic is initialised on the CPU
                cpu_seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device))
                init_gen = torch.Generator().manual_seed(cpu_seed)
            critic = MLPCritic(dim, generator=init_gen, dtype=first.dtype).to(first.device)
        if not isinstance(critic, nn.Module):
            raise TypeError(f"critic must be a torch.nn.Module, got {type(critic).__name__}")
        cdim = getattr(critic, "dim", dim)
        if cdim != dim:
            raise ValueError(f"critic has dimension critic.dim = {cdim} but model.dim = {dim}")
        critic_obj = CriticObjective(critic, lam, trace, n_probes)
        critic_step = _Stepper(critic_obj, critic_lr, betas, is_dist, world)
    else:
        critic = None

    # -- resume
    path = None if checkpoint is None else Path(checkpoint)
    start, seconds_before, history = 0, 0.0, []
    pending = _empty_pending()
    tail_row = False  # whether history[-1] is an off-schedule row written at a run's end
    if path is not None and resume and path.exists():
        state = load_checkpoint(path)
        if state.get("format") != _FORMAT:
            raise ValueError(f"checkpoint {str(path)!r} is not a steinkit.train checkpoint")
        if state["method"] != method:
            raise ValueError(
                f"checkpoint {str(path)!r} was written by method={state['method']!r}, not {method!r}; "
                "pass resume=False to overwrite it"
            )
        if state["dim"] != dim:
            raise ValueError(f"checkpoint {str(path)!r} is for dimension {state['dim']}, model.dim = {dim}")
        model.load_state_dict(state["model"])
        objective.load_state_dict({**state["objective_extra"], **{f"model.{k}": v for k, v in state["model"].items()}})
        model_step.optimizer.load_state_dict(state["optimizer"])
        _set_lr(model_step.optimizer, lr)  # the rates given now win over the saved ones
        if critic_step is not None:
            assert critic is not None
            critic.load_state_dict(state["critic"])
            critic_step.optimizer.load_state_dict(state["critic_optimizer"])
            _set_lr(critic_step.optimizer, critic_lr)
        generator.set_state(state["generator"])
        start, seconds_before = int(state["step"]), float(state["seconds"])
        history = list(state["history"])
        pending = state["pending"]
        if state["tail_row"] and history:
            history.pop()  # written only because that run ended at this step
    last_good = start if path is not None and start > 0 else None

    def snapshot(step: int, elapsed: float) -> None:
        nonlocal last_good
        if path is None or rank != 0:
            return
        state = {
            "format": _FORMAT,
            "method": method,
            "dim": dim,
            "step": step,
            "seconds": elapsed,
            "model": model.state_dict(),
            "objective_extra": {k: v for k, v in objective.state_dict().items() if not k.startswith("model.")},
            "optimizer": model_step.optimizer.state_dict(),
            "critic": None if critic is None else critic.state_dict(),
            "critic_optimizer": None if critic_step is None else critic_step.optimizer.state_dict(),
            "generator": generator.get_state(),
            "history": history,
            "pending": pending,
            "tail_row": tail_row,
            "config": {"lr": lr, "batch_size": batch_size, "lam": lam, "critic_steps": critic_steps, "eps": eps,
                       "lr_decay": lr_decay},
        }
        save_checkpoint(state, path)
        last_good = step

    def add(group: str, metrics: dict[str, float]) -> None:
        acc = pending[group]
        acc["count"] += 1
        for k, v in metrics.items():
            acc["sums"][k] = acc["sums"].get(k, 0.0) + v

    def record(step: int, elapsed: float, evaluate: bool, *, final: bool = False) -> None:
        """Append a history row. A row only written because the run ends here (``final``)
        keeps the running sums, and a resumed run drops it again, so that a resumed history
        equals an uninterrupted one."""
        nonlocal pending, tail_row
        row: dict[str, Any] = {"step": step, "seconds": elapsed}
        for acc in pending.values():
            if acc["count"]:
                row.update({k: v / acc["count"] for k, v in acc["sums"].items()})
        if not final:
            pending = _empty_pending()
        if evaluate and eval_fn is not None:
            out = eval_fn(model)
            if isinstance(out, Mapping):
                row.update({str(k): float(v) for k, v in out.items()})
            else:
                row["eval"] = float(out)
        if len(row) > 2:
            history.append(row)
            tail_row = final

    t0 = time.perf_counter()
    elapsed = lambda: seconds_before + time.perf_counter() - t0  # noqa: E731
    model.train()
    if critic is not None:
        critic.train()
    if start == 0 and eval_fn is not None:
        record(0, 0.0, True)
    bar = tqdm(total=steps, initial=min(start, steps), desc=f"train[{method}]", disable=not progress or rank != 0)
    diverged_at: int | None = None
    n = data.shape[0]
    try:
        for step in range(start + 1, steps + 1):
            failed = ""
            if lr_decay == "cosine":
                _set_lr(model_step.optimizer, lr * 0.5 * (1.0 + math.cos(math.pi * (step - 1) / steps)))
            if critic_step is not None and critic_obj is not None:
                for _ in range(critic_steps):
                    idx = torch.randint(0, n, (batch_size,), generator=generator, device=data.device)
                    probes = critic_obj.draw(batch_size, generator, data)
                    xb = data[idx[lo:hi]]
                    with torch.no_grad():
                        sb = model.score(xb)
                    out = critic_step.step(xb, sb, _rows(probes, lo, hi))
                    if out is None:
                        failed = "critic"
                        break
                    out["critic_loss"] = out.pop("loss")
                    add("critic", out)
                if not failed:
                    idx = torch.randint(0, n, (batch_size,), generator=generator, device=data.device)
                    xb = data[idx[lo:hi]]
                    assert critic is not None
                    was_training = critic.training
                    critic.train(False)
                    with torch.no_grad():
                        f = critic(xb)
                    critic.train(was_training)
                    out = model_step.step(xb, f)
                    failed = "" if out is not None else "model"
            else:
                idx = torch.randint(0, n, (batch_size,), generator=generator, device=data.device)
                aux = objective.draw(batch_size, generator, data)
                out = model_step.step(data[idx[lo:hi]], _rows(aux, lo, hi))
                failed = "" if out is not None else "model"
            if failed:
                diverged_at = step
                break
            assert out is not None
            add("model", out)
            bar.update(1)
            on_schedule = step % log_every == 0 or step % eval_every == 0
            if on_schedule or step == steps:
                record(step, elapsed(), step % eval_every == 0 or step == steps, final=not on_schedule)
                if history and progress and rank == 0:
                    bar.set_postfix(loss=f"{history[-1].get('loss', float('nan')):.4g}")
            if step % checkpoint_every == 0 or step == steps:
                snapshot(step, elapsed())
    finally:
        bar.close()

    if diverged_at is not None:
        done = diverged_at - 1
    else:
        done = max(start, steps)
    if diverged_at is not None:
        where = "critic" if failed == "critic" else "model"
        msg = (
            f"training diverged: the {where} loss or its gradient became NaN/inf at step {diverged_at} "
            f"(method={method!r}); that step was not applied, so the parameters are those after step "
            f"{diverged_at - 1}"
        )
        if path is not None:
            msg += (
                f"; the last good checkpoint (step {last_good}) is kept at {str(path)!r}"
                if last_good is not None
                else f"; no checkpoint had been written to {str(path)!r} yet"
            )
        msg += ". Try a smaller lr" + (" or a larger lam" if method == "lsd" else "") + "."
        if on_nan == "raise":
            raise TrainingDiverged(
                msg, step=diverged_at, history=tuple(history), checkpoint=path, last_good_step=last_good or 0
            )
        warnings.warn(msg, RuntimeWarning, stacklevel=2)
    log_c = float(objective.log_c.detach()) if isinstance(objective, NCEObjective) else None
    return TrainResult(
        model=model,
        method=method,
        steps=done,
        history=tuple(history),
        critic=critic,
        log_normalizer=log_c,
        seconds=elapsed(),
        resumed_from=start,
        diverged_at=diverged_at,
        checkpoint=path,
        world_size=world,
    )

"""Training methods as objects: the loss modules each one optimises, and one model update.

An :class:`Objective` builds its parts (``"model"``, and ``"critic"`` for LSD) from the model,
the data and the :class:`~steinkit.train.settings.TrainSettings`, and :meth:`Objective.update`
does one model update on a :class:`~steinkit.train.state.TrainState`: it draws its batches and
random inputs and steps its parts through ``state.take``. LSD owns its inner loop (C critic
updates, each on a fresh batch, then one model update with the critic held fixed);
:class:`LSDOracle` replaces the learned critic by the exact one when the data's score is known.

``train(model, x, method=...)`` takes a method name (:data:`METHODS`) or any Objective.

Example:
    >>> import torch
    >>> from steinkit.models import LinearICA
    >>> from steinkit.train import train
    >>> g = torch.Generator().manual_seed(0)
    >>> truth = LinearICA.random(2, generator=g)
    >>> x = truth.sample(500, generator=g)
    >>> res = train(LinearICA(torch.eye(2)), x, method=LSDOracle(truth), steps=20, seed=0, progress=False)
    >>> res.method, res.steps
    ('lsd_oracle', 20)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import torch
from torch import Tensor, nn

from ..critics import MLPCritic
from ..settings import auto_hidden
from ..scores import module_on
from ..validation import wrong_type
from .modules import CNCELoss, CriticLoss, LossModule, LSDModelLoss, MLLoss, NCELoss, SSMLoss, fit_noise
from .settings import TrainSettings

if TYPE_CHECKING:
    from .state import TrainState

__all__ = ["Objective", "ML", "SSM", "NCE", "CNCE", "LSD", "LSDOracle", "METHODS", "make_objective"]


class Objective:
    """A training method. Subclasses set the class attributes and define :meth:`build` and
    :meth:`update`.

    Attributes:
        name: the method's name (recorded in results and checkpoints).
        needs: the model method the objective calls, ``"score"`` or ``"log_prob"``.
        needs_normalized: whether ``model.normalized`` must be True (exact likelihood).
        settings_used: the settings (besides ``batch_size``, ``lr_decay``, ``batch_order``) a
            resumed run must share with its checkpoint.
    """

    name: str = ""
    needs: str = "log_prob"
    needs_normalized: bool = False
    settings_used: tuple[str, ...] = ()

    def build(
        self, model: nn.Module, data: Tensor, settings: TrainSettings, generator: torch.Generator
    ) -> dict[str, nn.Module]:
        """The loss modules to optimise: ``{"model": ...}`` and optionally ``"critic"``."""
        raise NotImplementedError

    def update(self, state: TrainState) -> None:
        """One model update (with any inner updates), through ``state.take``."""
        raise NotImplementedError


class _OneLoss(Objective):
    """One Adam step per update on a loss of the model and the random inputs it draws."""

    def loss(self, model: nn.Module, data: Tensor, settings: TrainSettings) -> LossModule:
        raise NotImplementedError

    def build(
        self, model: nn.Module, data: Tensor, settings: TrainSettings, generator: torch.Generator
    ) -> dict[str, nn.Module]:
        return {"model": self.loss(model, data, settings)}

    def update(self, state: TrainState) -> None:
        x = state.batches.next()
        loss = state.steppers["model"].module
        assert isinstance(loss, LossModule)
        aux = loss.draw(state.batches.batch_size, state.generator, state.data)
        state.take("model", x, state.local(aux))


class ML(_OneLoss):
    """Exact maximum likelihood, −E log q(x) (the model must be normalized)."""

    name, needs_normalized = "ml", True

    def loss(self, model: nn.Module, data: Tensor, settings: TrainSettings) -> LossModule:
        return MLLoss(model)


class SSM(_OneLoss):
    """Sliced score matching with one Gaussian probe per example."""

    name, needs = "ssm", "score"

    def loss(self, model: nn.Module, data: Tensor, settings: TrainSettings) -> LossModule:
        return SSMLoss(model)


class NCE(_OneLoss):
    """Noise-contrastive estimation against a Gaussian fitted to the data, with a learned log Z."""

    name = "nce"

    def loss(self, model: nn.Module, data: Tensor, settings: TrainSettings) -> LossModule:
        return NCELoss(model, fit_noise(data))


class CNCE(_OneLoss):
    """Conditional NCE with noisy copies y = x + ε n."""

    name, settings_used = "cnce", ("eps",)

    def loss(self, model: nn.Module, data: Tensor, settings: TrainSettings) -> LossModule:
        return CNCELoss(model, settings.eps)


def _default_critic(dim: int, like: Tensor, generator: torch.Generator) -> MLPCritic:
    """``MLPCritic(dim)`` of :func:`~steinkit.settings.auto_hidden` width, initialised from ``generator``
    (via a CPU seed for a device generator)."""
    init = generator
    if generator.device.type != "cpu":
        cpu_seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device))
        init = torch.Generator().manual_seed(cpu_seed)
    return MLPCritic(dim, auto_hidden(like.shape[0], dim), generator=init, dtype=like.dtype).to(like.device)


class LSD(Objective):
    """Algorithm 3: ``critic_steps`` critic updates per model update, both on fresh batches.

    The critic maximises LSDE − λE‖f‖² at the model's current (fixed) scores; the model then
    minimises E[s_θ(x)ᵀ f(x)] with the critic (in eval mode) held fixed.

    Arguments:
        critic: the critic (default an ``MLPCritic`` of :func:`~steinkit.settings.auto_hidden` width,
            initialised from the generator).
    """

    name, needs = "lsd", "score"
    settings_used = ("lam", "critic_steps", "trace", "n_probes")

    def __init__(self, critic: nn.Module | None = None) -> None:
        self.critic = critic

    def build(
        self, model: nn.Module, data: Tensor, settings: TrainSettings, generator: torch.Generator
    ) -> dict[str, nn.Module]:
        critic = self.critic if self.critic is not None else _default_critic(model.dim, data, generator)
        if not isinstance(critic, nn.Module):
            raise wrong_type("critic", "a torch.nn.Module", critic)
        critic.to(data.device)  # trained in place, beside the model and the data
        cdim = getattr(critic, "dim", model.dim)
        if cdim != model.dim:
            raise ValueError(f"critic has dimension critic.dim = {cdim} but model.dim = {model.dim}")
        return {
            "model": LSDModelLoss(model),
            "critic": CriticLoss(critic, settings.lam, settings.trace, settings.n_probes),
        }

    def update(self, state: TrainState) -> None:
        critic_loss = state.steppers["critic"].module
        assert isinstance(critic_loss, CriticLoss)
        for _ in range(state.settings.critic_steps):
            x = state.batches.next()
            probes = critic_loss.draw(state.batches.batch_size, state.generator, state.data)
            with torch.no_grad():
                scores = state.model.score(x)
            state.take("critic", x, scores, state.local(probes))
        x = state.batches.next()
        critic = critic_loss.critic
        was_training = critic.training
        critic.train(False)
        with torch.no_grad():
            f = critic(x)
        critic.train(was_training)
        state.take("model", x, f)


class LSDOracle(Objective):
    """Algorithm 3's model update with the exact critic f = s_q − s_p instead of a learned one.

    A diagnostic for when the data distribution p is known (e.g. a simulation): it isolates the
    model's gradient from critic error. The optimal critic (s_q − s_p)/(2λ) differs from f by a
    positive factor only, which Adam's update ignores (up to its ε).

    Arguments:
        target: the data distribution p: anything with ``.score(x)``, or a score function. A
            target that is an ``nn.Module`` is used on the data's device (copied there if need be).
    """

    name, needs = "lsd_oracle", "score"

    def __init__(self, target: nn.Module | Callable[[Tensor], Tensor]) -> None:
        score = getattr(target, "score", target)
        if not callable(score):
            raise TypeError(f"target must have a score(x) method or be callable, got type {type(target).__name__}")
        self.target, self.target_score = target, score

    def build(
        self, model: nn.Module, data: Tensor, settings: TrainSettings, generator: torch.Generator
    ) -> dict[str, nn.Module]:
        if isinstance(self.target, nn.Module):
            self.target_score = module_on(self.target, data.device).score
        return {"model": LSDModelLoss(model)}

    def update(self, state: TrainState) -> None:
        x = state.batches.next()
        with torch.no_grad():
            f = state.model.score(x) - self.target_score(x)
        state.take("model", x, f)


_BY_NAME: dict[str, type[Objective]] = {"lsd": LSD, "ml": ML, "ssm": SSM, "nce": NCE, "cnce": CNCE}
METHODS: tuple[str, ...] = tuple(_BY_NAME)


def make_objective(method: str | Objective, critic: nn.Module | None = None) -> Objective:
    """The objective for a method name (``critic`` goes to LSD), or ``method`` itself.

    Example:
        >>> make_objective("ssm").name
        'ssm'
    """
    if isinstance(method, Objective):
        return method
    if method not in _BY_NAME:
        raise ValueError(f"method must be one of {METHODS} or an Objective, got {method!r}")
    return LSD(critic) if method == "lsd" else _BY_NAME[method]()

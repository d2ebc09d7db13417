"""Where a model is wrong: the fitted critic as a witness, with its per-point Stein terms.

A learned estimate or test run with ``return_critic=True`` carries a :class:`FittedCritic`: the
selected critic f together with the model's score and λ. The optimal critic is
f* = (s_q − s_p)/(2λ), so f points where the model's score s_q exceeds the data's s_p: along f
the model's log-density rises faster than the data's, i.e. the model puts too much mass ahead
and too little behind. :func:`witness` evaluates it on points x:

* ``field``: f(x), (n, d), and ``magnitude`` ‖f(x)‖;
* ``terms``: the Stein terms s_q(x)ᵀf(x) + tr ∇f(x) (exact trace), whose mean over held-out
  points is the critic's estimate of the discrepancy; large terms mark badly fitted points;
* ``bound``: 2(terms − λ‖f(x)‖²), whose mean is at most the optimal critic's LSD
  E‖s_q − s_p‖²/(2λ) whatever f is, short of it by exactly 2λ·E‖f − f*‖².

Example:
    >>> import torch, steinkit as sk
    >>> x = torch.randn(400, 2, generator=torch.Generator().manual_seed(0))
    >>> est = sk.stein_discrepancy(sk.models.Gaussian(torch.ones(2), torch.eye(2)), x, n_iters=200,
    ...                            hidden=32, return_critic=True)
    >>> w = witness(est, x[:5])
    >>> w.field.shape, w.terms.shape, bool((w.field.mean(0) > 0).all())   # f* = (1, 1)/(2λ)
    (torch.Size([5, 2]), torch.Size([5]), True)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .critics import MLPCritic
from .scores import Score
from .stein import stein_terms
from .validation import as_data, positive_int, wrong_type

__all__ = ["FittedCritic", "Witness", "witness"]


@dataclass(frozen=True)
class FittedCritic:
    """A selected critic with the model it was fitted against.

    Attributes:
        critic: the critic f (a lone :class:`~steinkit.critics.MLPCritic`, eval mode).
        score: the model's checked score function s_q.
        lam: the L2 weight λ the critic was fitted with.
        iteration: the training step the critic was taken at.

    Calling it gives the field f(x) (without gradients).
    """

    critic: MLPCritic
    score: Score
    lam: float
    iteration: int

    def __call__(self, x: Any) -> Tensor:
        x = _points(x, self)
        with torch.no_grad():
            return self.critic(x)

    def __repr__(self) -> str:
        return f"FittedCritic({self.critic.n_layers}x{self.critic.hidden} critic of {self.score.source}, " \
               f"λ={self.lam}, iteration {self.iteration})"


@dataclass(frozen=True)
class Witness:
    """A critic evaluated at points x (see the module docstring).

    Attributes:
        x: the points, (n, d).
        field: the critic's values f(x), (n, d).
        terms: the Stein terms s_q(x)ᵀf(x) + tr ∇f(x), (n,).
        lam: the critic's λ.
    """

    x: Tensor
    field: Tensor
    terms: Tensor
    lam: float

    @property
    def magnitude(self) -> Tensor:
        """‖f(x)‖ at every point, (n,)."""
        return self.field.norm(dim=1)

    @property
    def bound(self) -> Tensor:
        """The penalised terms 2(terms − λ‖f(x)‖²), (n,), whose mean is a lower bound of the optimal
        critic's LSD."""
        return 2 * (self.terms - self.lam * self.field.pow(2).sum(1))

    def worst(self, k: int) -> Tensor:
        """Indices of the k points with the largest Stein terms (the worst fitted), largest first.

        Example:
            >>> w = Witness(torch.zeros(3, 1), torch.zeros(3, 1), torch.tensor([0.5, 2.0, 1.0]), 0.5)
            >>> w.worst(2).tolist()
            [1, 2]
        """
        k = positive_int(k, "k")
        return self.terms.topk(min(k, self.terms.shape[0])).indices


def _fitted(result: Any) -> FittedCritic:
    critic = result if isinstance(result, FittedCritic) else getattr(result, "critic", None)
    if isinstance(critic, FittedCritic):
        return critic
    if critic is None and hasattr(result, "critic"):
        raise ValueError("result carries no critic: run the estimate or test with return_critic=True")
    if hasattr(result, "critic_a"):
        raise TypeError("a relative test's result has two critics: pass result.critic_a or result.critic_b")
    raise wrong_type("result", "a FittedCritic or a result with one (return_critic=True)", result)


def _points(x: Any, fitted: FittedCritic) -> Tensor:
    w = fitted.critic.weights[0]
    x = as_data(x, "x", dim=fitted.critic.dim).to(device=w.device, dtype=w.dtype)
    fitted.score.check_dim(x)
    return x


def witness(result: Any, x: Any) -> Witness:
    """Evaluate a fitted critic at points x: its field and the model's Stein terms there.

    Arguments:
        result: a :class:`FittedCritic`, or a result that carries one: a
            :class:`~steinkit.evaluate.DiscrepancyEstimate`, a comparison row's estimate or a
            :class:`~steinkit.gof.GofResult` of ``method="lsd"``, made with ``return_critic=True``
            (a relative test's result has two: pass ``result.critic_a`` or ``result.critic_b``).
        x: points (n, d), best held out from the critic's training (the test split, or new data).

    Returns:
        A :class:`Witness`.
    """
    fitted = _fitted(result)
    x = _points(x, fitted)
    with torch.no_grad():
        terms, field = stein_terms(fitted.critic, x, fitted.score(x), trace="exact")
    return Witness(x, field, terms, fitted.lam)

"""The closed-form last layer (steinkit.last_layer) against exact answers."""

from __future__ import annotations

import copy

import torch

from steinkit.critics import MLPCritic
from steinkit.last_layer import feature_witness, features, witness_sums
from steinkit.stein import stein_terms


def _problem(k=None):
    g = torch.Generator().manual_seed(0)
    shape = (40, 3) if k is None else (k, 40, 3)
    x = torch.randn(*shape, generator=g, dtype=torch.float64)
    s = torch.randn(*shape, generator=g, dtype=torch.float64)
    critic = MLPCritic(3, hidden=5, n_critics=k, seeds=None if k is None else list(range(k)),
                       generator=torch.Generator().manual_seed(1) if k is None else None, dtype=torch.float64)
    return critic, x, s


def test_witness_mean_term_is_its_squared_norm():
    """T is linear in (W, b) with coefficients whose mean is (W*, b*): mean T = ‖W*‖² + ‖b*‖²."""
    critic, x, s = _problem()
    w = feature_witness(critic, x, s)
    terms, _ = stein_terms(w, x, s, trace="exact")
    expected = w.weights[-1].pow(2).sum() + w.biases[-1].pow(2).sum()
    torch.testing.assert_close(terms.mean(), expected.detach())


def test_witness_maximises_the_weight_penalised_objective():
    """Any other last layer (W, b) gives a smaller mean T − ½(‖W‖² + ‖b‖²)."""
    critic, x, s = _problem()
    best = feature_witness(critic, x, s)

    def objective(c):
        terms, _ = stein_terms(c, x, s, trace="exact")
        return float((terms.mean() - 0.5 * (c.weights[-1].pow(2).sum() + c.biases[-1].pow(2).sum())).detach())

    top = objective(best)
    g = torch.Generator().manual_seed(2)
    for _ in range(5):
        other = feature_witness(critic, x, s)
        with torch.no_grad():
            other.weights[-1].add_(0.1 * torch.randn(other.weights[-1].shape, generator=g, dtype=torch.float64))
            other.biases[-1].add_(0.1 * torch.randn(other.biases[-1].shape, generator=g, dtype=torch.float64))
        assert objective(other) < top


def test_ensemble_members_equal_lone_witnesses_and_features_are_unchanged():
    critic, x, s = _problem(k=3)
    w = feature_witness(critic, x, s)
    for k in range(3):
        lone = feature_witness(critic.member(k), x[k], s[k])
        torch.testing.assert_close(w.weights[-1][k], lone.weights[-1])
        torch.testing.assert_close(w.biases[-1][k], lone.biases[-1])
        torch.testing.assert_close(features(w, x)[k], features(critic.member(k), x[k]))
    assert not w.training and critic.weights[-1].data_ptr() != w.weights[-1].data_ptr()


def test_float64_scores_with_a_float32_critic():
    critic, x, s = _problem()
    w64 = feature_witness(critic, x, s)
    lone = copy.deepcopy(critic).float()
    w32 = feature_witness(lone, x.float(), s)
    assert w32.weights[-1].dtype == torch.float32
    torch.testing.assert_close(w32.weights[-1].double(), w64.weights[-1], rtol=1e-4, atol=1e-5)


def test_sums_over_parts_add_up_to_the_whole():
    critic, x, s = _problem()
    w_all, b_all = witness_sums(critic, x, s)
    parts = [witness_sums(critic, x[i:i + 10], s[i:i + 10]) for i in range(0, 40, 10)]
    torch.testing.assert_close(sum(p[0] for p in parts), w_all)
    torch.testing.assert_close(sum(p[1] for p in parts), b_all)

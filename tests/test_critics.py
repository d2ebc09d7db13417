"""The fused MLP critic against plain autograd formulations (exact answers in float64)."""

import pytest
import torch

from steinkit.critics import MLPCritic
from steinkit.stein import exact_trace, hutchinson_trace

from helpers import gen

F64 = torch.float64


def reference_forward(critic: MLPCritic, masks, member=None):
    """The same MLP written with plain torch ops (dropout masks passed explicitly)."""

    def pick(t):
        return t if member is None else t[member]

    def f(x):
        a = x
        for i, (W, b) in enumerate(zip(list(critic.weights)[:-1], list(critic.biases)[:-1])):
            a = torch.nn.functional.silu(a @ pick(W).T + pick(b))
            if masks:
                a = a * pick(masks[i])
        return a @ pick(critic.weights[-1]).T + pick(critic.biases[-1])

    return f


@pytest.mark.parametrize("n_layers", [1, 2, 3])
@pytest.mark.parametrize("dropout", [0.0, 0.3])
@pytest.mark.parametrize("n_critics", [None, 3])
@pytest.mark.parametrize("n_probes", [1, 2])
def test_fused_hutchinson_terms_and_gradients_match_double_backward(n_layers, dropout, n_critics, n_probes):
    n, d = 6, 4
    seeds = list(range(n_critics)) if n_critics else None
    critic = MLPCritic(d, 7, n_layers, dropout, n_critics=n_critics, seeds=seeds, dtype=F64)
    critic.train()
    lead = (n_critics,) if n_critics else ()
    x = torch.randn(n, d, generator=gen(1), dtype=F64)
    s = torch.randn(*lead, n, d, generator=gen(2), dtype=F64)
    eps = torch.randn(*lead, n_probes * n, d, generator=gen(3), dtype=F64)

    terms, f = critic.stein_terms(x, s, probes=eps, generator=gen(4))
    loss = (terms**2).sum() + (f**3).sum()
    grads = torch.autograd.grad(loss, list(critic.parameters()))

    masks = critic._dropout_masks(critic._lead(x), n, gen(4))
    ref_loss, ref_terms = 0.0, []
    for k in range(n_critics) if n_critics else [None]:
        fn = reference_forward(critic, masks, k)
        tr, fk = hutchinson_trace(fn, x, probes=eps if k is None else eps[k])
        tk = ((s if k is None else s[k]) * fk).sum(1) + tr
        ref_terms.append(tk)
        ref_loss = ref_loss + (tk**2).sum() + (fk**3).sum()
    ref_grads = torch.autograd.grad(ref_loss, list(critic.parameters()))

    expected = torch.stack(ref_terms) if n_critics else ref_terms[0]
    torch.testing.assert_close(terms, expected, rtol=1e-10, atol=1e-12)
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g, r, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("n_layers", [1, 2, 3])
@pytest.mark.parametrize("n_critics", [None, 2])
def test_exact_trace_matches_autograd(n_layers, n_critics):
    n, d = 5, 4
    seeds = [3, 4] if n_critics else None
    critic = MLPCritic(d, 6, n_layers, n_critics=n_critics, seeds=seeds, dtype=F64).eval()
    x = torch.randn(n, d, generator=gen(0), dtype=F64)
    lead = (n_critics,) if n_critics else ()
    s = torch.randn(*lead, n, d, generator=gen(1), dtype=F64)
    terms, _ = critic.stein_terms(x, s, trace="exact")
    for k in range(n_critics) if n_critics else [None]:
        tr, f = exact_trace(reference_forward(critic, [], k), x)
        sk_ = s if k is None else s[k]
        torch.testing.assert_close(terms if k is None else terms[k], (sk_ * f).sum(1) + tr, rtol=1e-10, atol=1e-12)


def test_exact_trace_gradient_matches_autograd():
    critic = MLPCritic(3, 5, dtype=F64).eval()
    x = torch.randn(4, 3, generator=gen(0), dtype=F64)
    s = torch.randn(4, 3, generator=gen(1), dtype=F64)
    terms, _ = critic.stein_terms(x, s, trace="exact")
    grads = torch.autograd.grad(terms.sum(), list(critic.parameters()))
    tr, f = exact_trace(reference_forward(critic, []), x)
    ref = torch.autograd.grad(((s * f).sum(1) + tr).sum(), list(critic.parameters()))
    for g, r in zip(grads, ref):
        torch.testing.assert_close(g, r, rtol=1e-9, atol=1e-11)


def test_hutchinson_is_unbiased_for_the_exact_trace():
    critic = MLPCritic(4, 8, dtype=F64).eval()
    x = torch.randn(3, 4, generator=gen(0), dtype=F64)
    s = torch.zeros(3, 4, dtype=F64)
    exact, _ = critic.stein_terms(x, s, trace="exact")
    probes = 4000
    eps = torch.randn(probes * 3, 4, generator=gen(1), dtype=F64)
    _, jv = critic.jvp(x, eps)
    samples = (eps * jv).sum(1).reshape(probes, 3)
    stderr = samples.std(0) / probes**0.5
    assert torch.all((samples.mean(0) - exact).abs() < 4 * stderr)


def test_ensemble_member_equals_lone_critic():
    x = torch.randn(10, 3, generator=gen(0))
    ens = MLPCritic(3, 9, n_critics=3, seeds=[5, 6, 7])
    for k, seed in enumerate([5, 6, 7]):
        lone = MLPCritic(3, 9, generator=gen(seed))
        torch.testing.assert_close(ens(x)[k], lone(x))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(dim=0), "dim"),
        (dict(dim=3, hidden=0), "hidden"),
        (dict(dim=3, dropout=1.0), "dropout"),
        (dict(dim=3, n_critics=0), "n_critics"),
        (dict(dim=3, n_critics=2, seeds=[1]), "seeds"),
    ],
)
def test_bad_critic_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MLPCritic(**kwargs)


def test_bad_trace_name():
    critic = MLPCritic(2, 4)
    with pytest.raises(ValueError, match="trace"):
        critic.stein_terms(torch.zeros(3, 2), torch.zeros(3, 2), trace="approx")

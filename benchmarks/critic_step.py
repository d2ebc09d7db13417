"""Critic training step: steinkit's fused forward-mode step against the plain double backward.

The plain formulation (as in the paper's code): f = critic(x) with x requiring grad, one
vector-Jacobian product εᵀ∇f with ``create_graph=True`` for the Hutchinson term, then
``loss.backward()`` through both. steinkit propagates x and ε together through the network
(forward mode) and backpropagates with a hand-written first-order pass.

Both steps use the same weights and probes; the per-example Stein terms and the parameter
gradients are checked to agree to float tolerance before timing. Timings alternate between
the two sides (this machine is noisy) and report medians; the last line is JSON with the key
``speedup`` (plain time / steinkit time).

Usage:
    python benchmarks/critic_step.py [--n 800] [--d 50] [--hidden 300] [--repeats 30] [--threads 0]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from torch import nn

from steinkit.critics import MLPCritic


def plain_critic(critic: MLPCritic) -> nn.Sequential:
    """An nn.Sequential MLP with the same weights as ``critic``."""
    layers: list[nn.Module] = []
    for i, (w, b) in enumerate(zip(critic.weights, critic.biases)):
        lin = nn.Linear(w.shape[1], w.shape[0])
        with torch.no_grad():
            lin.weight.copy_(w)
            lin.bias.copy_(b)
        layers.append(lin)
        if i < critic.n_layers:
            layers.append(nn.SiLU())
    return nn.Sequential(*layers)


def plain_terms(net: nn.Module, x: torch.Tensor, s: torch.Tensor, eps: torch.Tensor):
    x = x.detach().requires_grad_(True)
    f = net(x)
    (vjp,) = torch.autograd.grad(f, x, eps, create_graph=True)
    return (s * f).sum(1) + (vjp * eps).sum(1), f


def loss_of(terms: torch.Tensor, f: torch.Tensor, lam: float = 0.5) -> torch.Tensor:
    return -(terms.mean() - lam * f.pow(2).sum(1).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=800)
    parser.add_argument("--d", type=int, default=50)
    parser.add_argument("--hidden", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(0)
    critic = MLPCritic(args.d, args.hidden, generator=g)
    net = plain_critic(critic)
    x = torch.randn(args.n, args.d, generator=g)
    s = torch.randn(args.n, args.d, generator=g)
    eps = torch.randn(args.n, args.d, generator=g)

    # Same answers first: per-example terms and gradients.
    t_fast, f_fast = critic.stein_terms(x, s, probes=eps)
    t_plain, f_plain = plain_terms(net, x, s, eps)
    torch.testing.assert_close(t_fast, t_plain, rtol=1e-4, atol=1e-4)
    ordered = [p for pair in zip(critic.weights, critic.biases) for p in pair]  # as in nn.Sequential
    g_fast = torch.autograd.grad(loss_of(t_fast, f_fast), ordered)
    g_plain = torch.autograd.grad(loss_of(t_plain, f_plain), list(net.parameters()))
    for a, b in zip(g_fast, g_plain):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-5)
    max_diff = float((t_fast - t_plain).abs().max())

    opt_fast = torch.optim.Adam(critic.parameters(), lr=0.0)
    opt_plain = torch.optim.Adam(net.parameters(), lr=0.0)

    def step_fast() -> None:
        probes = torch.randn(args.n, args.d, generator=g)
        terms, f = critic.stein_terms(x, s, probes=probes)
        opt_fast.zero_grad(set_to_none=True)
        loss_of(terms, f).backward()
        opt_fast.step()

    def step_plain() -> None:
        probes = torch.randn(args.n, args.d, generator=g)
        terms, f = plain_terms(net, x, s, probes)
        opt_plain.zero_grad(set_to_none=True)
        loss_of(terms, f).backward()
        opt_plain.step()

    def step_matmuls() -> None:
        # The fused step's matrix products alone (its floor).
        w = list(critic.weights)
        rows = torch.cat([x, eps])
        a = rows @ w[0].T
        a = a @ w[1].T
        out = a @ w[2].T
        grad = out @ w[2]
        _ = out.T @ a
        grad2 = grad @ w[1]
        _ = grad.T @ a
        _ = grad2.T @ rows

    for fn in (step_fast, step_plain, step_matmuls):
        for _ in range(5):
            fn()
    times: dict[str, list[float]] = {"steinkit": [], "plain": [], "matmuls": []}
    for _ in range(args.repeats):
        for name, fn in (("steinkit", step_fast), ("plain", step_plain), ("matmuls", step_matmuls)):
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    med = {k: statistics.median(v) * 1e3 for k, v in times.items()}

    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(10):
            step_fast()
    total = sum(e.self_cpu_time_total for e in prof.key_averages())
    share = sorted(
        ((e.key, e.self_cpu_time_total / total) for e in prof.key_averages()), key=lambda kv: -kv[1]
    )[:6]
    print(f"n={args.n} d={args.d} hidden={args.hidden} threads={torch.get_num_threads()} repeats={args.repeats}")
    print(f"per-example Stein terms agree: max |diff| = {max_diff:.2e}; gradients agree")
    print(f"plain double backward : {med['plain']:.2f} ms/step")
    print(f"steinkit fused step   : {med['steinkit']:.2f} ms/step")
    print(f"its matrix products   : {med['matmuls']:.2f} ms ({100 * med['matmuls'] / med['steinkit']:.0f}% of the fused step)")
    print("fused step, share of self CPU time: " + ", ".join(f"{k} {100 * v:.0f}%" for k, v in share))
    print(json.dumps({
        "speedup": med["plain"] / med["steinkit"],
        "steinkit_ms": med["steinkit"],
        "plain_ms": med["plain"],
        "matmul_floor_ms": med["matmuls"],
        "n": args.n, "d": args.d, "hidden": args.hidden, "threads": torch.get_num_threads(),
    }))


if __name__ == "__main__":
    main()

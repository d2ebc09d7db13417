"""A GPU check in one go (issue 13): the device tests, three timings, one JSON line.

1. ``pytest -m cuda tests/test_cuda.py``: every public entry point on the device, checked
   against the same call on the CPU (run here with ``STEINKIT_TEST_DEVICE`` set to ``--device``,
   so a CPU run dry-runs them);
2. one critic training step, steinkit's fused forward-mode step (``MLPCritic.stein_terms``)
   against the plain double backward (``autograd.grad(..., create_graph=True)``), at the RBM
   test's sizes (n = 800, d = 50, 2x300 Swish, Hutchinson), median over repeats;
3. 200 LSD tests (RBM dx = 50, dh = 40, n = 1000 each, σ = .02, the test's 1000 critic steps)
   trained as one critic ensemble (``gof_tests``) against sequential ``gof_test`` calls. Only
   the first ``--sequential`` sequential tests are timed and their time is extrapolated to all
   of them (the output says so); their p-values are compared with the ensemble's;
4. one quadratic KSD test (1000 wild-bootstrap draws) at n = 10,000.

Human-readable lines come first; the last line is one JSON object with every timing, the sizes
and the device's name. The process exits with 1 if a device test failed. ``--small`` shrinks
every size so that a CPU smoke run (``--device cpu --small``) takes well under a minute.

Usage, from the repository root:

    PYTHONPATH=src python benchmarks/gpu_check.py                      # on a GPU machine
    PYTHONPATH=src python benchmarks/gpu_check.py --device cpu --small # a CPU smoke run
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Callable, TypeVar

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling critic_step benchmark

from critic_step import loss_of, plain_critic, plain_terms  # noqa: E402

from steinkit.critics import MLPCritic  # noqa: E402
from steinkit.gof import gof_test, gof_tests  # noqa: E402
from steinkit.models import GaussianBernoulliRBM  # noqa: E402
from steinkit.scores import module_on  # noqa: E402
from steinkit.validation import as_device  # noqa: E402

__all__ = ["Sizes", "FULL", "SMALL", "main"]

T = TypeVar("T")
GOAL_ENSEMBLE_SPEEDUP = 20.0  # issue 13: 200 LSD tests as one ensemble >= 20x faster on the GPU


@dataclasses.dataclass(frozen=True)
class Sizes:
    """Every size the check uses (``FULL``: the issue's; ``SMALL``: a CPU smoke run)."""

    step_n: int = 800  # critic step: examples
    step_d: int = 50  # critic step: data dimension
    hidden: int = 300  # critic step: units per hidden layer (2 layers)
    repeats: int = 30  # critic step: timed steps per side
    k: int = 200  # LSD tests in the ensemble
    n: int = 1000  # samples per LSD test
    dx: int = 50  # RBM visible units
    dh: int = 40  # RBM hidden units
    sigma: float = 0.02  # perturbation of the model's B
    n_iters: int = 300  # critic steps per LSD test (the default protocol's)
    sequential: int = 10  # sequential LSD tests timed (the rest extrapolated)
    burn_in: int = 2000  # Gibbs sweeps for the data
    ksd_n: int = 10_000  # samples of the KSD test
    n_bootstrap: int = 1000  # its wild-bootstrap draws


FULL = Sizes()
SMALL = Sizes(step_n=200, step_d=10, hidden=64, repeats=5, k=8, n=200, dx=10, dh=5, n_iters=20, sequential=3,
              burn_in=100, ksd_n=1000, n_bootstrap=200)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Callable[[], T], device: torch.device) -> tuple[T, float]:
    """``fn()`` and its wall time in seconds, with the device's queue drained on both sides."""
    _sync(device)
    start = time.perf_counter()
    out = fn()
    _sync(device)
    return out, time.perf_counter() - start


def device_name(device: torch.device) -> str:
    """The accelerator's name (``torch.cuda.get_device_name``), or the CPU's."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine() or 'cpu'} ({torch.get_num_threads()} torch threads)"


def device_tests(device: torch.device, pytest_args: str) -> dict[str, Any]:
    """Run the CUDA-marked tests on ``device`` in a fresh process; their counts and time."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "junit.xml"
        env = {**os.environ, "STEINKIT_TEST_DEVICE": str(device),
               "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))}
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}",
               *shlex.split(pytest_args)]
        proc, seconds = _timed(lambda: subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True),
                               torch.device("cpu"))
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-15:]
        counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        if report.exists():
            root = ET.parse(report).getroot()
            suite = root if root.tag == "testsuite" else root.find("testsuite")
            if suite is not None:
                counts = {key: int(suite.get(key, 0)) for key in counts}
    passed = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    return {"command": " ".join(["pytest", *shlex.split(pytest_args)]), "returncode": proc.returncode,
            "passed": passed, "failed": counts["failures"] + counts["errors"], "skipped": counts["skipped"],
            "seconds": seconds, "output_tail": tail}


def critic_step(device: torch.device, s: Sizes) -> dict[str, Any]:
    """Median time of one Adam step of the critic: fused forward-mode against plain double backward."""
    g = torch.Generator().manual_seed(0)
    critic = MLPCritic(s.step_d, s.hidden, generator=g, device=device)
    net = plain_critic(critic).to(device)
    x, sc = (torch.randn(s.step_n, s.step_d, generator=g).to(device) for _ in range(2))
    draws = torch.Generator(device=device).manual_seed(1)
    opt_fused = torch.optim.Adam(critic.parameters(), lr=0.0)
    opt_plain = torch.optim.Adam(net.parameters(), lr=0.0)

    def fused() -> None:
        probes = torch.randn(s.step_n, s.step_d, generator=draws, device=device)
        terms, f = critic.stein_terms(x, sc, probes=probes)
        opt_fused.zero_grad(set_to_none=True)
        loss_of(terms, f).backward()
        opt_fused.step()

    def plain() -> None:
        probes = torch.randn(s.step_n, s.step_d, generator=draws, device=device)
        terms, f = plain_terms(net, x, sc, probes)
        opt_plain.zero_grad(set_to_none=True)
        loss_of(terms, f).backward()
        opt_plain.step()

    eps = torch.randn(s.step_n, s.step_d, generator=draws, device=device)
    diff = float((critic.stein_terms(x, sc, probes=eps)[0] - plain_terms(net, x, sc, eps)[0]).detach().abs().max())
    for fn in (fused, plain) * 5:  # warm-up (kernels, allocator)
        fn()
    times: dict[str, list[float]] = {"fused": [], "plain": []}
    for _ in range(s.repeats):  # alternate the sides: a noisy machine hurts both alike
        for name, fn in (("fused", fused), ("plain", plain)):
            times[name].append(_timed(fn, device)[1])
    fused_ms, plain_ms = (statistics.median(times[k]) * 1e3 for k in ("fused", "plain"))
    return {"n": s.step_n, "d": s.step_d, "hidden": s.hidden, "repeats": s.repeats, "fused_ms": fused_ms,
            "plain_ms": plain_ms, "speedup": plain_ms / fused_ms, "max_terms_diff": diff}


def _rbm_data(device: torch.device, s: Sizes, n: int) -> tuple[torch.nn.Module, torch.Tensor]:
    """The model q (p with B perturbed by σ) on ``device``, and n Gibbs samples of p drawn there."""
    p = GaussianBernoulliRBM.random(s.dx, s.dh, generator=torch.Generator().manual_seed(0))
    q = p.perturb(s.sigma, generator=torch.Generator().manual_seed(1))
    x = p.sample(n, burn_in=s.burn_in, generator=torch.Generator(device=device).manual_seed(2), device=device)
    return module_on(q, device), x


def lsd_ensemble(device: torch.device, s: Sizes) -> dict[str, Any]:
    """``k`` LSD tests as one ensemble against sequential ones (the first ``sequential`` timed)."""
    q, x = _rbm_data(device, s, s.k * s.n)
    xs, seeds = list(x.split(s.n)), list(range(s.k))
    gof_tests([q, q], xs[:2], "lsd", n_iters=2, hidden=8, device=device)  # warm-up
    together, ensemble_s = _timed(lambda: gof_tests([q] * s.k, xs, "lsd", seeds=seeds, n_iters=s.n_iters,
                                                    device=device), device)
    m = min(s.sequential, s.k)
    alone, timed_s = _timed(lambda: [gof_test(q, xs[i], "lsd", seed=i, n_iters=s.n_iters, device=device)
                                     for i in range(m)], device)
    per_test = timed_s / m
    return {"k": s.k, "n": s.n, "dx": s.dx, "dh": s.dh, "sigma": s.sigma, "n_iters": s.n_iters,
            "ensemble_seconds": ensemble_s, "sequential_timed": m, "sequential_timed_seconds": timed_s,
            "sequential_seconds_per_test": per_test, "sequential_seconds": per_test * s.k,
            "sequential_extrapolated": m < s.k, "speedup": per_test * s.k / ensemble_s,
            "max_pvalue_diff": max(abs(a.pvalue - b.pvalue) for a, b in zip(alone, together)),
            "rejections": sum(r.reject for r in together)}


def ksd_large(device: torch.device, s: Sizes) -> dict[str, Any]:
    """One quadratic KSD test with wild bootstrap at n = ``ksd_n``."""
    q, x = _rbm_data(device, s, s.ksd_n)
    gof_test(q, x[:200], "ksd", n_bootstrap=10, device=device)  # warm-up
    res, seconds = _timed(lambda: gof_test(q, x, "ksd", n_bootstrap=s.n_bootstrap, device=device), device)
    return {"n": s.ksd_n, "d": s.dx, "n_bootstrap": s.n_bootstrap, "seconds": seconds, "statistic": res.statistic,
            "pvalue": res.pvalue}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda", help="torch device to check (default cuda)")
    parser.add_argument("--small", action="store_true", help="small sizes for a CPU smoke run (not the issue's)")
    parser.add_argument("--pytest-args", default="-m cuda tests/test_cuda.py",
                        help="what to run as the device tests (default: -m cuda tests/test_cuda.py)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = as_device(args.device)
    sizes = SMALL if args.small else FULL
    start = time.perf_counter()
    out: dict[str, Any] = {"device": str(device), "device_name": device_name(device), "torch": torch.__version__,
                           "small": args.small, "sizes": dataclasses.asdict(sizes)}
    print(f"device {device} ({out['device_name']}), torch {torch.__version__}, "
          f"sizes {'SMALL' if args.small else 'FULL'}", flush=True)

    tests = device_tests(device, args.pytest_args)
    out["device_tests"] = {k: v for k, v in tests.items() if k != "output_tail"}
    print("\n".join(tests["output_tail"]))
    print(f"1. device tests ({tests['command']}): {tests['passed']} passed, {tests['failed']} failed, "
          f"{tests['skipped']} skipped in {tests['seconds']:.1f} s", flush=True)

    step = out["critic_step"] = critic_step(device, sizes)
    print(f"2. critic step n={step['n']} d={step['d']} 2x{step['hidden']}: fused {step['fused_ms']:.2f} ms, plain "
          f"double backward {step['plain_ms']:.2f} ms -> {step['speedup']:.2f}x", flush=True)

    ens = out["lsd_ensemble"] = lsd_ensemble(device, sizes)
    how = (f"{ens['sequential_timed']} timed, extrapolated to {ens['k']}" if ens["sequential_extrapolated"]
           else "all timed")
    print(f"3. {ens['k']} LSD tests ({ens['n_iters']} critic steps, n={ens['n']}, dx={ens['dx']}): ensemble "
          f"{ens['ensemble_seconds']:.1f} s, sequential {ens['sequential_seconds']:.1f} s ({how}) -> "
          f"{ens['speedup']:.1f}x (goal on a GPU >= {GOAL_ENSEMBLE_SPEEDUP:g}x); "
          f"max |Δp| {ens['max_pvalue_diff']:.1e}", flush=True)

    ksd = out["ksd"] = ksd_large(device, sizes)
    print(f"4. KSD test n={ksd['n']} d={ksd['d']} B={ksd['n_bootstrap']}: {ksd['seconds']:.2f} s", flush=True)

    out["goal_ensemble_speedup"] = GOAL_ENSEMBLE_SPEEDUP
    out["seconds_total"] = time.perf_counter() - start
    print(json.dumps(out), flush=True)
    return 1 if tests["failed"] or tests["returncode"] not in (0, 5) else 0  # 5: pytest collected nothing


if __name__ == "__main__":
    sys.exit(main())

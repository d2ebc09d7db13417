"""Size and power of :func:`steinkit.sample_quality` on MCMC output (issue 29).

**Size**: correct samplers with autocorrelated output, started at exact draws of the target (so
the chains are stationary): MALA on a 20-d AR(1) Gaussian (Σ_ij = 0.5^|i−j|), random-walk
Metropolis with a preconditioned proposal (covariance 2.38²/d · Σ) on the 10-d AR(1) Gaussian, and
random-walk Metropolis with two step sizes on the 2-d banana y₂ = z₂ + (z₁² − 1)
(:class:`steinkit.problems.Banana`, curvature 1). **Power**: the unadjusted Langevin algorithm
(ULA) on the 20-d Gaussian with two steps, started from its own stationary law N(0, C) (C in
closed form: in each eigen-direction of Σ, λ/(1 − h/(2λ))), so the draws are biased by the
discretisation only; and random walks started far away and stopped before mixing (the 20-d
Gaussian from x₀ = 4·1, the banana from its tip (−4, 15)), their burn-in kept.

Chains of a cell are simulated together (all repetitions as one batch, one seed per cell) to the
longest length and cut to each length n (500, 2000, 8000 by default). ``sample_quality`` runs on
groups of 4 chains: each chain's own verdict (its p-value does not depend on the others), the
pooled verdict of the group, and whether any chain was flagged as disagreeing. Each line of the
JSON-lines store is one (cell, n, method, group) with its p-values and CPU seconds; a rerun
skips the lines it holds, so an interrupted run resumes. ``--report`` writes the markdown
tables (rejection rates at α = .05 with binomial standard errors) and prints them.

Run from the repository root (one thread):

    OMP_NUM_THREADS=1 PYTHONPATH=src python benchmarks/sample_quality.py runs/sample_quality.jsonl
    PYTHONPATH=src python benchmarks/sample_quality.py runs/sample_quality.jsonl --report docs/sample_quality.md
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

import steinkit as sk
from steinkit.diagnostics import integrated_times
from steinkit.problems import Banana, ar1_cov

__all__ = ["CELLS", "simulate", "main"]

VERSION = 1  # bump when the test changes, so old lines are not mixed with new ones
GROUP = 4


class GaussianTarget:
    """N(0, Σ) with Σ the AR(1) covariance ρ^|i−j|: log density, score and exact draws on (R, d)."""

    def __init__(self, d: int, rho: float = 0.5) -> None:
        self.dim = d
        self.cov = ar1_cov(d, rho).to(torch.float64)
        self.prec = torch.linalg.inv(self.cov)
        self.chol = torch.linalg.cholesky(self.cov)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return -0.5 * ((x @ self.prec) * x).sum(-1)

    def score(self, x: torch.Tensor) -> torch.Tensor:
        return -x @ self.prec

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return torch.randn(n, self.dim, generator=generator, dtype=torch.float64) @ self.chol.T

    def ula_stationary(self, h: float) -> torch.Tensor:
        """The covariance C of ULA's stationary law: x' = (I − hΣ⁻¹)x + √(2h) ξ."""
        lam, vec = torch.linalg.eigh(self.cov)
        return (vec * (lam / (1 - h / (2 * lam)))) @ vec.T


class BananaTarget:
    """The 2-d banana of :class:`steinkit.problems.Banana` with exact draws."""

    def __init__(self, curvature: float = 1.0) -> None:
        self.dist = Banana(2, curvature)
        self.dim = 2
        self.chol = torch.eye(2, dtype=torch.float64)

    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        return self.dist.log_prob(x)

    def score(self, x: torch.Tensor) -> torch.Tensor:
        return self.dist.score(x)

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return self.dist.sample(n, generator=generator)


TARGETS: dict[str, Callable[[], Any]] = {"gauss20": lambda: GaussianTarget(20), "gauss10": lambda: GaussianTarget(10),
                                         "banana": lambda: BananaTarget(1.0)}


def simulate(target: Any, kind: str, step: float, x0: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
    """(R, n, d) draws of R chains started at the rows of ``x0``: ``kind`` is "mala", "ula",
    "rwm" (proposal N(x, step·I)) or "prwm" (proposal N(x, step·Σ), Σ = target.chol cholᵀ).

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> t = GaussianTarget(3)
        >>> simulate(t, "mala", 0.3, t.sample(5, g), 100, g).shape
        torch.Size([5, 100, 3])
    """
    x = x0.clone()
    R, d = x.shape
    out = torch.empty(R, n, d, dtype=torch.float64)
    lp, s = target.log_prob(x), target.score(x)
    root = math.sqrt(2 * step) if kind in ("mala", "ula") else math.sqrt(step)
    for t in range(n):
        xi = torch.randn(R, d, generator=generator, dtype=torch.float64)
        if kind == "ula":
            x = x + step * s + root * xi
            s = target.score(x)
            out[:, t] = x
            continue
        if kind == "mala":
            y = x + step * s + root * xi
            ly, sy = target.log_prob(y), target.score(y)
            log_a = ly - lp - ((x - y - step * sy) ** 2).sum(-1) / (4 * step) \
                + ((y - x - step * s) ** 2).sum(-1) / (4 * step)
        else:
            y = x + root * (xi @ target.chol.T if kind == "prwm" else xi)
            ly = target.log_prob(y)
            log_a = ly - lp
        accept = torch.rand(R, generator=generator, dtype=torch.float64).log() < log_a
        x = torch.where(accept[:, None], y, x)
        lp = torch.where(accept, ly, lp)
        if kind == "mala":
            s = torch.where(accept[:, None], sy, s)
        out[:, t] = x
    return out


@dataclass(frozen=True)
class Cell:
    """One sampler on one target: ``role`` "size" (a correct sampler) or "power" (a biased one)."""

    name: str
    role: str
    target: str
    kind: str
    step: float
    start: str  # "target" (exact draws), "stationary" (ULA's own law) or "far"
    far: tuple[float, ...] = ()
    note: str = ""

    def chains(self, reps: int, n: int, seed: int) -> tuple[torch.Tensor, Any]:
        target = TARGETS[self.target]()
        g = torch.Generator().manual_seed(seed)
        if self.start == "target":
            x0 = target.sample(reps, g)
        elif self.start == "stationary":
            c = torch.linalg.cholesky(target.ula_stationary(self.step))
            x0 = torch.randn(reps, target.dim, generator=g, dtype=torch.float64) @ c.T
        else:
            x0 = torch.tensor(self.far, dtype=torch.float64).expand(reps, -1)
        return simulate(target, self.kind, self.step, x0, n, g), target


CELLS = [
    Cell("gauss20-mala", "size", "gauss20", "mala", 0.3, "target"),
    Cell("gauss10-prwm", "size", "gauss10", "prwm", 2.38**2 / 10, "target"),
    Cell("banana-rwm", "size", "banana", "rwm", 3.0, "target"),
    Cell("banana-rwm-sticky", "size", "banana", "rwm", 1.5, "target"),
    Cell("gauss20-ula-0.1", "power", "gauss20", "ula", 0.1, "stationary"),
    Cell("gauss20-ula-0.06", "power", "gauss20", "ula", 0.06, "stationary"),
    Cell("gauss20-rwm-far", "power", "gauss20", "rwm", 0.05, "far", (4.0,) * 20),
    Cell("banana-rwm-far", "power", "banana", "rwm", 1.5, "far", (-4.0, 15.0)),
]


def cell_seed(cell: Cell) -> int:
    return int(hashlib.sha256(f"sample-quality|{cell.name}".encode()).hexdigest()[:12], 16)


def excess_variance(cell: Cell) -> str:
    """ULA's excess variance: mean and largest over Σ's eigen-directions, and of the trace."""
    target = TARGETS[cell.target]()
    lam = torch.linalg.eigvalsh(target.cov)
    ratio = 1 / (1 - cell.step / (2 * lam))
    total = float((lam * ratio).sum() / lam.sum())
    return f"+{100 * (float(ratio.mean()) - 1):.1f}% mean, +{100 * (float(ratio.max()) - 1):.1f}% max, " \
           f"+{100 * (total - 1):.1f}% trace"


# --------------------------------------------------------------------------- store
def read_store(path: Path) -> list[dict]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut short by an interruption
                continue
    return [r for r in rows if r.get("version") == VERSION]


def key(row: dict) -> tuple:
    return row["cell"], row["n"], row["method"], row["group"]


def run(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    store = Path(args.store)
    store.parent.mkdir(parents=True, exist_ok=True)
    done = {key(r) for r in read_store(store)}
    cells = [c for c in CELLS if args.cells is None or c.name in args.cells]
    groups = args.reps // GROUP
    for cell in cells:
        todo = [(n, m, g) for n in args.lengths for m in args.methods for g in range(groups)
                if (cell.name, n, m, g) not in done]
        if not todo:
            continue
        t0 = time.process_time()
        xs, target = cell.chains(groups * GROUP, max(args.lengths), cell_seed(cell))
        iat = float(integrated_times(xs.permute(0, 2, 1).reshape(-1, xs.shape[1])).reshape(xs.shape[0], -1)
                    .max(1).values.median())
        print(f"{cell.name}: {xs.shape[0]} chains of {xs.shape[1]} draws in {time.process_time() - t0:.1f} CPU s, "
              f"median IAT {iat:.1f}", flush=True)
        scores = target.score(xs.reshape(-1, xs.shape[-1])).reshape(xs.shape)
        with store.open("a") as fh:
            for n, method, g in todo:
                x = xs[g * GROUP:(g + 1) * GROUP, :n]
                s = scores[g * GROUP:(g + 1) * GROUP, :n]
                t0 = time.process_time()
                res = sk.sample_quality(x, scores=s, method=method, seed=g, n_bootstrap=500)
                row = {"version": VERSION, "cell": cell.name, "n": n, "method": method, "group": g,
                       "iat": iat, "seconds": time.process_time() - t0,
                       "chain_p": [c.pvalue for c in res.chains], "chain_iat": [c.iat for c in res.chains],
                       "chain_ksd": [c.discrepancy for c in res.chains], "pooled_p": res.pvalue,
                       "agreement_p": res.agreement_pvalue, "disagreeing": list(res.disagreeing)}
                fh.write(json.dumps(row) + "\n")
                fh.flush()


# --------------------------------------------------------------------------- report
def _rate(values: list[bool]) -> str:
    k = len(values)
    if k == 0:
        return "-"
    p = sum(values) / k
    return f"{p:.3f} ± {math.sqrt(max(p * (1 - p), 1e-12) / k):.3f}"


def report(args: argparse.Namespace) -> str:
    rows = read_store(Path(args.store))
    by: dict[tuple, list[dict]] = {}
    for r in rows:
        by.setdefault((r["cell"], r["n"], r["method"]), []).append(r)
    lines = []
    for role, title in (("size", "Size: correct samplers (rejection rate at α = 0.05; should be ≤ 0.05)"),
                        ("power", "Power: biased samplers (rejection rate at α = 0.05)")):
        lines += [f"#### {title}", "",
                  "| cell | sampler, target | median IAT | n | method | per chain (reps) | pooled, 4 chains (reps) | "
                  "a chain flagged as disagreeing | CPU s per 4 chains |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for cell in CELLS:
            if cell.role != role:
                continue
            what = {"mala": "MALA", "ula": "ULA", "rwm": "RWM", "prwm": "preconditioned RWM"}[cell.kind]
            what += f" h={cell.step:.3g} on {cell.target}"
            if cell.kind == "ula":
                what += f" ({excess_variance(cell)} variance)"
            if cell.start == "far":
                what += f", from {list(cell.far[:2])}{'...' if len(cell.far) > 2 else ''}, burn-in kept"
            for n in sorted({k[1] for k in by if k[0] == cell.name}):
                for method in ("batch-means", "thinned"):
                    rs = by.get((cell.name, n, method), [])
                    if not rs:
                        continue
                    chain = [p < 0.05 for r in rs for p in r["chain_p"]]
                    pooled = [r["pooled_p"] < 0.05 for r in rs]
                    flagged = [bool(r["disagreeing"]) for r in rs]
                    secs = float(np.mean([r["seconds"] for r in rs]))
                    lines.append(f"| {cell.name} | {what} | {rs[0]['iat']:.1f} | {n} | {method} | "
                                 f"{_rate(chain)} ({len(chain)}) | {_rate(pooled)} ({len(pooled)}) | "
                                 f"{_rate(flagged)} | {secs:.2f} |")
        lines.append("")
    text = "\n".join(lines)
    if args.report != "-":
        Path(args.report).parent.mkdir(parents=True, exist_ok=True)
        Path(args.report).write_text(text + "\n")
    print(text)
    return text


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("store", help="JSON-lines store (created; a rerun resumes)")
    p.add_argument("--reps", type=int, default=200, help="chains per cell (groups of 4)")
    p.add_argument("--lengths", type=int, nargs="+", default=[500, 2000, 8000])
    p.add_argument("--methods", nargs="+", default=["batch-means", "thinned"], choices=list(sk.diagnostics.METHODS))
    p.add_argument("--cells", nargs="+", default=None, choices=[c.name for c in CELLS])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--report", default=None, metavar="OUT.md", help="write the tables ('-': print only) and exit")
    args = p.parse_args(argv)
    if args.report is not None:
        report(args)
        return
    run(args)


if __name__ == "__main__":
    main()

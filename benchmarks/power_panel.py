"""The power panel (issue 25): every goodness-of-fit method on every cell, tuning and held-out halves apart.

A cell is one problem of :mod:`steinkit.problems` (a family, its parameters with the strength, d)
at one sample size n. Each repetition r of a cell draws its data with a seed derived from (cell,
r), the same data for every method, and runs ``sk.gof_test(model, x, method=..., seed=r)`` at
α = .05; null cells (the model is the data distribution) measure the size. The RBM cells draw a
new RBM and perturbation direction per repetition, as the paper's benchmark does.

The split into halves was fixed before any strength was calibrated, by family (the choice of
the default test may look at the tuning half only; the held-out half is reported apart):

* **tuning** — the issue's five examples (Laplace d = 10 at n = 400, a correlated Student-t
  against its Gaussian in d = 20, a banana pair among 10 coordinates, a 6% scale error in d = 50,
  the RBM at dx = 50) and the RBM at dx = 100; a sin-perturbed Gaussian (seen in the findings
  already); a four-mode mixture with misplaced weights. Nulls: the RBM at σ = 0 (dx = 50 and
  100), a correlated (AR(1)) Gaussian and a bimodal mixture (the nulls of lsd_size.py).
  Kinds: tails, curved dependence, scale, local perturbation, mixture.
* **held-out** — AR(1) correlated data against an independent model (d = 50), skew-normal data,
  heavy tails (sinh-arcsinh), a mixture with a missing mode, data with lighter tails than the
  model (a Student-t model), an anisotropic scale error in d = 100. Nulls: a correlated
  Student-t, a banana, a skewed heavy-tailed sinh-arcsinh.
  Kinds: tails, skew, dependence, scale, mixture.

Strengths were chosen so that the better of KSDAgg and ``lsd:sequential`` has intermediate
power (the calibration runs are in benchmarks/power_panel_calibrate.py and the report).

Results go to a JSON-lines store, one line per (cell, method, repetition) with the p-value,
statistic, rejection at .05 and CPU seconds (``time.process_time``); a run skips what the store
holds, re-reading it before each unit, so an interrupted run resumes and several processes may
share one store (a process claims a unit in ``STORE.claims`` before running it). A method is
``NAME`` or ``NAME:PROTOCOL`` (``lsd:sequential``), passed through to ``gof_test`` as ``method=``
and ``protocol=``, so a method registered later needs no change here; ``--tag`` keeps runs of a
changed method apart.

Usage:
  python benchmarks/power_panel.py STORE [--half tuning|heldout|all] [--methods lsd:sequential ksdagg ...]
         [--reps 100] [--null-reps 200] [--cells NAME ...] [--cache DIR] [--tag TAG]
  python benchmarks/power_panel.py STORE --report docs/power-panel.md --figure docs/figures/power-panel.png
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import math
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import torch

import steinkit as sk
from steinkit import problems as P

ALPHA = 0.05
METHODS = ("witnesses", "lsd:sequential", "lsd:combined", "ksdagg", "ksd-seq", "ksdagg-inc", "ksd", "lksd", "fssd")


@dataclass(frozen=True)
class Cell:
    """One problem at one sample size.

    Attributes:
        name: a short unique name.
        kind: what misfit it shows (tails, skew, dependence, scale, local, mixture, null).
        family: a key of ``steinkit.problems.FAMILIES``.
        d: the dimension.
        n: the sample size.
        params: the family's parameters (with the strength).
        reseed: draw a new problem per repetition (the family's ``seed`` = a seed of (cell, r)).
    """

    name: str
    kind: str
    family: str
    d: int
    n: int
    params: dict[str, Any] = field(default_factory=dict)
    reseed: bool = False

    @property
    def key(self) -> str:
        """The name with a hash of the definition: a changed cell never mixes with old results."""
        spec = json.dumps([self.family, self.d, self.n, self.params, self.reseed], sort_keys=True)
        return f"{self.name}:{hashlib.sha256(spec.encode()).hexdigest()[:8]}"

    @property
    def null(self) -> bool:
        return self.kind == "null"

    def problem(self, rep: int) -> P.Problem:
        """The problem of repetition ``rep``."""
        params = dict(self.params)
        if self.reseed:
            params["seed"] = derive_seed(self.name, rep, "problem")
        return P.FAMILIES[self.family](self.d, **params)

    def label(self) -> str:
        params = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in self.params.items())
        return f"{self.family}({params})" if params else self.family


RBM = {"burn_in": 2000}
TUNING = [
    Cell("laplace", "tails", "laplace", 10, 400),
    Cell("student-t-corr", "tails", "student-t", 20, 1000, {"nu": 12.0, "rho": 0.5}),
    Cell("banana", "dependence", "banana", 10, 1000, {"curvature": 0.2}),
    Cell("scale", "scale", "gaussian-scale", 50, 1000, {"factor": 1.06}),
    Cell("rbm50", "dependence", "rbm", 50, 1000, {"hidden": 40, "sigma": 0.0125, **RBM}, reseed=True),
    Cell("rbm100", "dependence", "rbm", 100, 1000, {"hidden": 80, "sigma": 0.01, **RBM}, reseed=True),
    Cell("sin", "local", "sin-perturbed", 2, 200, {"eps": 0.45, "omega": 2.0}),
    Cell("mix-weights", "mixture", "mixture-weights", 2, 5000, {"tilt": 0.15, "modes": 4, "radius": 2.0}),
    Cell("null-rbm50", "null", "rbm", 50, 1000, {"hidden": 40, "sigma": 0.0, **RBM}, reseed=True),
    Cell("null-rbm100", "null", "rbm", 100, 1000, {"hidden": 80, "sigma": 0.0, **RBM}, reseed=True),
    Cell("null-ar1", "null", "null", 10, 1000, {"of": "gaussian-ar1", "rho": 0.5}),
    Cell("null-bimodal", "null", "null", 10, 1000, {"of": "mixture", "separation": 4.0}),
]
HELDOUT = [
    Cell("ar1", "dependence", "gaussian-ar1", 50, 500, {"rho": 0.1}),
    Cell("skew", "skew", "skew-normal", 20, 1000, {"alpha": 1.5}),
    Cell("sinh-tails", "tails", "sinh-arcsinh", 5, 5000, {"skew": 0.0, "tail": 0.88}),
    Cell("mix-missing", "mixture", "mixture-missing", 5, 1000, {"weight": 0.025, "modes": 3, "radius": 3.0}),
    Cell("light-tails", "tails", "heavy-model", 10, 1000, {"nu": 10.0}),
    Cell("diagonal", "scale", "gaussian-diagonal", 100, 200, {"spread": 1.75}),
    Cell("null-student-t", "null", "null", 20, 1000, {"of": "student-t", "nu": 4.0, "rho": 0.5}),
    Cell("null-banana", "null", "null", 10, 1000, {"of": "banana", "curvature": 1.0}),
    Cell("null-sinh", "null", "null", 5, 500, {"of": "sinh-arcsinh", "skew": 0.5, "tail": 0.7}),
]
HALVES = {"tuning": TUNING, "heldout": HELDOUT, "all": TUNING + HELDOUT}


def derive_seed(*parts: Any) -> int:
    """A seed in [0, 2**31) determined by JSON-serializable parts.

    Example:
        >>> derive_seed("banana", 3) == derive_seed("banana", 3) != derive_seed("banana", 4)
        True
    """
    digest = hashlib.sha256(json.dumps(parts, separators=(",", ":")).encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def split_method(label: str) -> tuple[str, dict[str, str]]:
    """``"lsd:sequential"`` -> ("lsd", {"protocol": "sequential"}); ``"ksdagg"`` -> ("ksdagg", {}).

    Example:
        >>> split_method("lsd:combined")
        ('lsd', {'protocol': 'combined'})
    """
    method, _, protocol = label.partition(":")
    if not method:
        raise ValueError(f"methods must be NAME or NAME:PROTOCOL, got {label!r}")
    return method, ({"protocol": protocol} if protocol else {})


# --------------------------------------------------------------------------- data and one test
def data(cell: Cell, rep: int, cache: Path | None = None) -> tuple[P.Problem, torch.Tensor]:
    """(problem, x) of repetition ``rep``: x drawn with the seed of (cell, rep), read from and
    written to ``cache`` when given (one file per cell and repetition)."""
    prob = cell.problem(rep)
    path = cache / cell.key.replace(":", "_") / f"{rep}.pt" if cache is not None else None
    if path is not None and path.exists():
        return prob, torch.load(path)
    x = prob.sample(cell.n, seed=derive_seed(cell.name, rep, "data"))
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        torch.save(x, tmp)
        tmp.replace(path)
    return prob, x


def run_test(prob: P.Problem, x: torch.Tensor, label: str, rep: int) -> dict[str, Any]:
    """One test of ``label`` on x with seed ``rep``: p-value, statistic, rejection at α, CPU and wall seconds."""
    method, kwargs = split_method(label)
    if "max_seconds" in sk.gof.get_method(method).option_names():  # the panel runs every cell, whatever it costs
        kwargs["max_seconds"] = None
    cpu, wall = time.process_time(), time.perf_counter()
    res = sk.gof_test(prob.model, x, method=method, alpha=ALPHA, seed=rep, **kwargs)
    row = {"pvalue": res.pvalue, "statistic": res.statistic, "reject": bool(res.pvalue < ALPHA),
           "cpu_seconds": time.process_time() - cpu, "wall_seconds": time.perf_counter() - wall}
    if "members" in res.details:  # an aggregate keeps its members' statistics and correlation, for subsets
        row["members"] = {k: res.details[k] for k in ("statistics", "correlation")}
    return row


# --------------------------------------------------------------------------- the store
class Store:
    """A JSON-lines store of finished tests, read incrementally, with claims for shared runs."""

    def __init__(self, path: Path) -> None:
        self.path, self.claims = Path(path), Path(path).with_name(Path(path).name + ".claims")
        self._offset, self.rows, self._done = 0, [], set()

    @staticmethod
    def unit(row: dict) -> tuple[str, str, int]:
        return row["cell_key"], row["method"], row["rep"]

    def refresh(self) -> None:
        """Read the lines other processes (or this one) appended since the last read."""
        if not self.path.exists():
            return
        with self.path.open("rb") as fh:
            fh.seek(self._offset)
            chunk = fh.read()
        end = chunk.rfind(b"\n") + 1          # a line still being written waits for the next read
        for line in chunk[:end].decode().splitlines():
            if line.strip():
                row = json.loads(line)
                if self.unit(row) not in self._done:
                    self._done.add(self.unit(row))
                    self.rows.append(row)
        self._offset += end

    def done(self, unit: tuple[str, str, int]) -> bool:
        self.refresh()
        return unit in self._done

    def append(self, row: dict) -> None:
        with self.path.open("a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            fh.write(json.dumps(row) + "\n")
        self.refresh()

    def claim(self, unit: tuple[str, str, int], stale_seconds: float = 6 * 3600) -> bool:
        """Claim a unit (a file in ``STORE.claims/``) unless a live process holds it; the claim of a
        dead process on this host, or an old one from another host, lapses."""
        self.claims.mkdir(parents=True, exist_ok=True)
        path = self.claims / (hashlib.sha256(json.dumps(unit).encode()).hexdigest()[:20] + ".json")
        me = {"unit": list(unit), "host": socket.gethostname(), "pid": os.getpid(), "time": time.time()}
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                held = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError):
                return False                      # being written right now
            mine = (held["host"], held["pid"]) == (me["host"], me["pid"])
            live = _alive(held["pid"]) if held["host"] == me["host"] else time.time() - held["time"] < stale_seconds
            if live and not mine:
                return False
            path.write_text(json.dumps(me))
            return True
        with os.fdopen(fd, "w") as fh:
            fh.write(json.dumps(me))
        return True

    def release(self, unit: tuple[str, str, int]) -> None:
        path = self.claims / (hashlib.sha256(json.dumps(unit).encode()).hexdigest()[:20] + ".json")
        path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10,
                             cwd=Path(__file__).parent)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def units(cells: list[Cell], reps: int, null_reps: int) -> Iterator[tuple[Cell, int]]:
    """(cell, rep) with repetitions outermost, so a partial run covers every cell."""
    for rep in range(max(reps, null_reps)):
        for cell in cells:
            if rep < (null_reps if cell.null else reps):
                yield cell, rep


def run(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    store, commit = Store(args.store), _commit()
    cells = select(args.half, args.cells)
    labels = [m + (f"@{args.tag}" if args.tag else "") for m in args.methods]
    for cell, rep in units(cells, args.reps, args.null_reps):
        todo = [(m, lab) for m, lab in zip(args.methods, labels) if not store.done((cell.key, lab, rep))]
        if not todo:
            continue
        prob, x = None, None
        for method, label in todo:
            unit = (cell.key, label, rep)
            if store.done(unit) or not store.claim(unit):
                continue
            if store.done(unit):                  # finished by another process since the first look
                store.release(unit)
                continue
            if x is None:
                prob, x = data(cell, rep, args.cache)
            out = run_test(prob, x, method, rep)
            store.append({"cell": cell.name, "cell_key": cell.key, "half": half_of(cell), "kind": cell.kind,
                          "family": cell.family, "params": cell.params, "d": cell.d, "n": cell.n,
                          "null": cell.null, "method": label, "rep": rep, **out, "alpha": ALPHA,
                          "threads": args.threads, "commit": commit})
            store.release(unit)
            print(f"{cell.name:14s} rep={rep:3d} {label:16s} p={out['pvalue']:.3f} "
                  f"{'REJECT' if out['reject'] else '      '} {out['cpu_seconds']:6.2f} CPU s", flush=True)


def half_of(cell: Cell) -> str:
    return "tuning" if cell in TUNING else "heldout"


def select(half: str, names: list[str] | None) -> list[Cell]:
    cells = HALVES[half]
    if names:
        unknown = set(names) - {c.name for c in HALVES["all"]}
        if unknown:
            raise SystemExit(f"unknown cells {sorted(unknown)}; cells: {[c.name for c in HALVES['all']]}")
        cells = [c for c in HALVES["all"] if c.name in names]
    return cells


# --------------------------------------------------------------------------- the report
def summarize(rows: list[dict], cells: list[Cell]) -> dict[str, dict[str, dict[str, float]]]:
    """{cell: {method: {rate, se, reps, cpu}}} over the rows of the current cell definitions."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for cell in cells:
        by_method: dict[str, list[dict]] = {}
        for r in rows:
            if r["cell_key"] == cell.key:
                by_method.setdefault(r["method"], []).append(r)
        out[cell.name] = {}
        for method, rs in by_method.items():
            k, m = sum(r["reject"] for r in rs), len(rs)
            rate = k / m
            out[cell.name][method] = {"rate": rate, "se": math.sqrt(rate * (1 - rate) / m), "reps": m,
                                      "cpu": sum(r["cpu_seconds"] for r in rs) / m}
    return out


def _methods_in(summary: dict) -> list[str]:
    seen = {m for cell in summary.values() for m in cell}
    return sorted(seen, key=lambda m: (METHODS.index(m.split("@")[0]) if m.split("@")[0] in METHODS else 99, m))


def tables(half: str, cells: list[Cell], summary: dict) -> list[str]:
    methods = _methods_in({c.name: summary[c.name] for c in cells})
    if not methods:
        return []
    head = "| cell | kind | problem | d | n | " + " | ".join(methods) + " |"
    rule = "|---|---|---|---|---|" + "---|" * len(methods)
    lines = [f"## {'Tuning' if half == 'tuning' else 'Held-out'} half: rejection rate at α = .05", "",
             "Entries: rate ± binomial standard error (repetitions); **bold**: the largest rate of an "
             "alternative's row; null cells (size) are marked *null*.", "", head, rule]
    for c in cells:
        s = summary[c.name]
        best = max((v["rate"] for v in s.values()), default=None)
        cols = []
        for m in methods:
            v = s.get(m)
            if v is None:
                cols.append("")
                continue
            text = f"{v['rate']:.2f} ± {v['se']:.2f} ({v['reps']})"
            cols.append(f"**{text}**" if not c.null and v["rate"] == best else text)
        kind = "*null*" if c.null else c.kind
        lines.append(f"| {c.name} | {kind} | {c.label()} | {c.d} | {c.n} | " + " | ".join(cols) + " |")
    lines += ["", f"CPU seconds per test, {'tuning' if half == 'tuning' else 'held-out'} half (`time.process_time` "
              "of the `gof_test` call on the threads of the run, one by default; data generation excluded):", "",
              "| cell | d | n | " + " | ".join(methods) + " |", "|---|---|---|" + "---|" * len(methods)]
    for c in cells:
        s = summary[c.name]
        lines.append(f"| {c.name} | {c.d} | {c.n} | " + " | ".join(f"{s[m]['cpu']:.3g}" if m in s else ""
                                                                   for m in methods) + " |")
    means = []
    for m in methods:
        cpus = [summary[c.name][m]["cpu"] for c in cells if m in summary[c.name]]
        means.append(f"{sum(cpus) / len(cpus):.3g}" if cpus else "")
    lines.append("| mean over cells | | | " + " | ".join(means) + " |")
    return lines + [""]


def report(args: argparse.Namespace) -> None:
    store = Store(args.store)
    store.refresh()
    summary = summarize(store.rows, HALVES["all"])
    lines = ["# Power panel (issue 25)", "",
             "Every method on every cell: the data of repetition r are the same for every method "
             "(seed of (cell, r)); each test runs with seed r at α = .05. Generated by "
             "`python benchmarks/power_panel.py STORE --report ...` from a store of "
             f"{len(store.rows)} tests; the cells and their halves are defined in "
             "`benchmarks/power_panel.py`. The default was chosen on the tuning half; the held-out half is "
             "reported apart (what of it was seen before each choice: docs/default-test.md).", ""]
    for half, cells in (("tuning", TUNING), ("heldout", HELDOUT)):
        lines += tables(half, cells, summary)
    Path(args.report).parent.mkdir(parents=True, exist_ok=True)
    Path(args.report).write_text("\n".join(lines) + "\n")
    if args.figure:
        figure(summary, Path(args.figure))
    halves = {h: {c.name: {"null": c.null, **summary[c.name]} for c in cells}
              for h, cells in (("tuning", TUNING), ("heldout", HELDOUT))}
    print(json.dumps({"alpha": ALPHA, "tests": len(store.rows), "halves": halves}))


def figure(summary: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    methods = _methods_in(summary)
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.2), sharey=True,
                             gridspec_kw={"width_ratios": [len(TUNING), len(HELDOUT)]})
    for ax, (title, cells) in zip(axes, (("tuning half", TUNING), ("held-out half", HELDOUT))):
        for j, m in enumerate(methods):
            xs, ys, es = [], [], []
            for i, c in enumerate(cells):
                v = summary[c.name].get(m)
                if v is not None:
                    xs.append(i + (j - (len(methods) - 1) / 2) * 0.8 / max(1, len(methods)))
                    ys.append(v["rate"])
                    es.append((min(2 * v["se"], v["rate"]), min(2 * v["se"], 1 - v["rate"])))
            ax.errorbar(xs, ys, yerr=list(zip(*es)) if es else None, fmt="o", ms=4, capsize=2,
                        label=m if ax is axes[0] else None)
        for i, c in enumerate(cells):
            if c.null:
                ax.axvspan(i - 0.45, i + 0.45, color="0.92", zorder=0)
        ax.axhline(ALPHA, color="k", lw=0.7, ls="--")
        ax.set_xticks(range(len(cells)), [c.name for c in cells], rotation=45, ha="right", fontsize=8)
        ax.set_title(f"{title} (grey: nulls, dashed: α)")
        ax.set_ylim(-0.02, 1.02)
    axes[0].set_ylabel("rejection rate at α = .05 (± 2 se)")
    fig.legend(loc="upper center", ncol=min(8, len(methods)), fontsize=8, bbox_to_anchor=(0.5, 1.02))
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store", type=Path)
    parser.add_argument("--half", choices=tuple(HALVES), default="tuning")
    parser.add_argument("--methods", nargs="+", default=list(METHODS))
    parser.add_argument("--reps", type=int, default=100, help="repetitions of an alternative cell")
    parser.add_argument("--null-reps", type=int, default=None, help="repetitions of a null cell (default 2×reps)")
    parser.add_argument("--cells", nargs="*", default=None, help="only these cells (by name)")
    parser.add_argument("--cache", type=Path, default=None, help="folder for the sampled data sets")
    parser.add_argument("--tag", default="", help="stored as METHOD@TAG (runs of a changed method apart)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--report", default=None)
    parser.add_argument("--figure", default=None)
    args = parser.parse_args(argv)
    if args.null_reps is None:
        args.null_reps = 2 * args.reps
    report(args) if args.report else run(args)


if __name__ == "__main__":
    sys.exit(main())

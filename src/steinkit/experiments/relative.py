"""Relative tests on perturbed RBMs, where each pair's answer is known by construction.

For each size (dx, dh) and repetition, a random RBM p (paper B.1) gives n Gibbs samples x; the
model q_σ adds σ·E to its weights B, one N(0, I) direction E per repetition shared by every σ
(as in ``rbm-power``), so a smaller σ fits better. Pairs:

* ``ordered`` (σ_a < σ_b): H0 "q_σa fits no better than q_σb" is false; the rejection rate is
  the power.
* ``equal`` (σ_a = σ_b > 0): q_σ against q'_σ, perturbed along an independent direction E'.
  The two are equally good in distribution (exchangeable), not draw by draw: each repetition
  also records the pair's truth, LSD*(a) − LSD*(b) with LSD*(q) = E‖s_q − s_p‖²/(2λ) evaluated
  on x with p's own score, so the report gives the rejection rate over all repetitions (the
  size against exchangeable models) and over those where the truth says H0 holds.
* ``mirror`` (σ_a = σ_b > 0): q_σ against p with σ·E subtracted, two perturbations of the same
  size that are equally good to first order in σ in every repetition: the rejection rate over
  all repetitions is the size, and the verdict's.

Methods, on the same x: ``lsd`` (:func:`steinkit.relative_tests`: one critic per model on 45%,
tested on the other half, paired penalised terms; all pairs of a repetition share the fits),
``optimal`` (the exact difference of the optimal critics' LSDs on all n points) and
``separate`` (the baseline: each model's :func:`steinkit.stein_discrepancy` with the same seed,
so the same split .8/.1/.1, and "A better" when (LSD_b − LSD_a)/√(se_a² + se_b²) > z_{1−α},
ignoring the pairing). Both learned methods use this reproduction's critic (``n_iters``,
``hidden``, a validation every ``n_iters``/12 steps) with :data:`~steinkit.settings.RELATIVE`'s
dropout and weight decay; each keeps its own split and selection.

Besides the sweep, ``run`` draws the critics of two wrong models of the 2-D eight-Gaussians
toy (a ring of too-wide components and a ring of too-small radius) over the data.

Example:
    steinkit reproduce relative --out runs/relative --quick

    >>> s = QUICK.replace(dims=("5:3",), sigmas=(0.0, 0.5), reps=1, n=200, burn_in=20, n_iters=20, hidden=8)
    >>> sorted({(t["kind"], t["method"]) for t in run_trial(trial_configs(s)[0])["tests"]})[:2]
    [('equal', 'lsd'), ('equal', 'optimal')]
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Any, Literal, Sequence

import torch

from .._optional import paper_module
from ..data.toy import sample_toy
from ..evaluate import compare
from ..gof.outcome import normal_sf
from ..models import GaussianBernoulliRBM
from ..relative import relative_tests
from ..settings import PAPER_ESTIMATE, RELATIVE
from ..stein import optimal_lsd
from ..witness_plots import plot_field
from ..problems.rbm_benchmark import derive_seed, rbm_problem
from .rbm_power import RBMSweep
from ._relative_flows import flow_configs, flow_pairs, flow_run_rows, flow_summary, flow_table, flow_trial, flow_witness
from .report import markdown_table
from .reproduction import Reproduction
from .runner import sweep
from .settings import RunOptions, setting, trial_device

__all__ = ["REPRODUCTION", "REL_METHODS", "PAIR_KINDS", "Settings", "FULL", "QUICK",
           "model_pairs", "flow_pairs", "trial_configs", "run_trial", "summarize", "run"]

REL_METHODS = ("lsd", "optimal", "separate")
_LAM = 0.5


@dataclasses.dataclass(frozen=True)
class Settings(RBMSweep):
    """Settings of the relative-test reproduction."""

    sigmas: tuple[float, ...] = setting((0.0, 0.01, 0.02, 0.04), "perturbation stds of B", minimum=0)
    n_iters: int = setting(300, "critic training steps (lsd and separate)", minimum=1)
    hidden: int = setting(64, "critic width (lsd and separate)", minimum=1)
    reps: int = setting(200, "repetitions", minimum=1)
    batch: int = setting(5, "repetitions per trial", minimum=1)
    methods: tuple[Literal["lsd", "optimal", "separate"], ...] = setting(REL_METHODS, "relative tests to run")
    alpha: float = setting(0.05, "test level, in (0, 1)")
    flow_run: str = setting("", "a finished flow-eval output folder whose checkpoints to compare (empty: none)")
    flow_blocks: int = setting(10, "disjoint blocks of the flow's test set, one relative test each", minimum=2)

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "methods", tuple(dict.fromkeys(self.methods)))
        if not 0 < self.alpha < 1:
            raise ValueError(f"alpha must lie in (0, 1), got {self.alpha!r}")
        if len(self.sigmas) < 2 and not any(s > 0 for s in self.sigmas):
            raise ValueError(f"sigmas must hold two values or one above 0 to make a pair, got {self.sigmas!r}")


FULL = Settings(dims=("50",))
QUICK = Settings(dims=("50",), reps=20)


PAIR_KINDS = ("ordered", "equal", "mirror")
_DIRECTION = {"ordered": 0, "equal": 1, "mirror": 2}  # model b's direction: E, an independent E', or −E


def model_pairs(sigmas: Sequence[float]) -> list[tuple[str, float, float]]:
    """(kind, σ_a, σ_b) of every pair: ``ordered`` for σ_a < σ_b, ``equal`` and ``mirror`` for
    σ_a = σ_b > 0.

    Example:
        >>> model_pairs((0.0, 0.01))
        [('ordered', 0.0, 0.01), ('equal', 0.01, 0.01), ('mirror', 0.01, 0.01)]
    """
    ordered = sorted(sigmas)
    return ([("ordered", a, b) for i, a in enumerate(ordered) for b in ordered[i + 1:]]
            + [("equal", s, s) for s in ordered if s > 0] + [("mirror", s, s) for s in ordered if s > 0])


def trial_configs(s: Settings) -> list[dict[str, Any]]:
    """One config per (dx, dh) and block of ``batch`` repetitions."""
    blocks = [list(range(r, min(r + s.batch, s.reps))) for r in range(0, s.reps, s.batch)]
    return [
        {"experiment": REPRODUCTION.name, "dx": dx, "dh": dh, "reps": block, "sigmas": list(s.sigmas),
         "pairs": list(PAIR_KINDS), "n": s.n, "burn_in": s.burn_in, "n_iters": s.n_iters, "hidden": s.hidden,
         "methods": list(s.methods), "alpha": float(s.alpha), "seed": s.seed}
        for dx, dh in s.pairs
        for block in blocks
    ]


def _models(config: dict[str, Any], rep: int) -> tuple[GaussianBernoulliRBM, torch.Tensor, dict[tuple, Any]]:
    """p, x, and the models by (σ, direction): direction 0 is rbm-power's E, 1 an independent E',
    2 is −E (p's weights moved by −σE)."""
    dx, dh, seed = config["dx"], config["dh"], config["seed"]
    p, _, x = rbm_problem(dx, dh, rep, 0.0, n=config["n"], burn_in=config["burn_in"], seed=seed)
    models = {}
    for kind, a, b in model_pairs(config["sigmas"]):
        for sigma, direction in ((a, 0), (b, _DIRECTION[kind])):
            if (sigma, direction) in models:
                continue
            if direction == 2:  # the mirror of direction 0, which its pair's model a made first
                models[sigma, 2] = type(p)(2 * p.B - models[sigma, 0].B, p.b.clone(), p.c.clone())
                continue
            key = (seed, dx, dh, rep, "perturb") if direction == 0 else (seed, dx, dh, rep, "perturb", "second")
            models[sigma, direction] = p.perturb(sigma, generator=torch.Generator().manual_seed(derive_seed(*key)))
    return p, x, models


def _separate(rows: dict[tuple, Any], a: tuple, b: tuple, alpha: float) -> dict[str, Any]:
    ra, rb = rows[a], rows[b]
    stderr = math.sqrt(ra.stderr ** 2 + rb.stderr ** 2)
    z = (rb.value - ra.value) / stderr if stderr > 0 else 0.0
    p = normal_sf(z)
    return {"difference": ra.value - rb.value, "stderr": stderr, "pvalue": p, "reject": p < alpha}


def run_trial(config: dict[str, Any]) -> dict[str, Any]:
    """Every pair and method on a block of repetitions (pure: config -> result).

    Returns ``{"tests": [{"rep", "kind", "sigma_a", "sigma_b", "method", "difference", "stderr",
    "pvalue", "reject", "truth"}, ...], "seconds"}``; ``truth`` is LSD*(a) − LSD*(b) on x.
    """
    start, device, tests = time.perf_counter(), trial_device(config), []
    critic = {"n_iters": config["n_iters"], "hidden": config["hidden"], "val_every": max(1, config["n_iters"] // 12)}
    for rep in config["reps"]:
        p, x, models = _models(config, rep)
        keys = list(models)
        pairs = [(kind, (a, 0), (b, _DIRECTION[kind])) for kind, a, b in model_pairs(config["sigmas"])]
        index = [(keys.index(ka), keys.index(kb)) for _, ka, kb in pairs]
        with torch.no_grad():
            s_p = p.score(x).double()
            truth = {k: float(optimal_lsd(m.score(x).double(), s_p, _LAM)) for k, m in models.items()}
        seed = derive_seed(config["seed"], config["dx"], config["dh"], rep, "relative")
        outcomes: dict[str, list[dict[str, Any]]] = {}
        for method in config["methods"]:
            if method == "separate":
                rows = {r.name: r for r in compare(dict(enumerate(models.values())), x, PAPER_ESTIMATE, seed=seed,
                                                   lam=_LAM,
                                                   device=device, dropout=RELATIVE.dropout,
                                                   weight_decay=RELATIVE.weight_decay, **critic)}
                outcomes[method] = [_separate(rows, a, b, config["alpha"]) for a, b in index]
            else:
                extra = critic if method == "lsd" else {}
                results = relative_tests(list(models.values()), x, index, config["alpha"], seed, method=method,
                                         lam=_LAM, device=device, **extra)
                outcomes[method] = [{"difference": r.difference, "stderr": r.stderr, "pvalue": r.pvalue,
                                     "reject": r.reject} for r in results]
        for method, rows_ in outcomes.items():
            for (kind, ka, kb), row in zip(pairs, rows_):
                tests.append({"rep": rep, "kind": kind, "sigma_a": ka[0], "sigma_b": kb[0], "method": method, **row,
                              "truth": truth[ka] - truth[kb]})
    return {"tests": tests, "seconds": time.perf_counter() - start}


def summarize(configs: Sequence[dict], results: Sequence[dict]) -> list[dict[str, Any]]:
    """Rejection rate per (dx, dh, kind, σ_a, σ_b, method) with its binomial standard error; for
    equal pairs also the rate over the repetitions where the truth says H0 holds."""
    groups: dict[tuple, list[dict]] = {}
    for cfg, res in zip(configs, results):
        for t in res["tests"]:
            groups.setdefault((cfg["dx"], cfg["dh"], t["kind"], t["sigma_a"], t["sigma_b"], t["method"]), []).append(t)
    rows = []
    for (dx, dh, kind, a, b, method), tests in groups.items():
        rate = sum(t["reject"] for t in tests) / len(tests)
        null = [t for t in tests if t["truth"] >= 0]
        rows.append({"dx": dx, "dh": dh, "kind": kind, "sigma_a": a, "sigma_b": b, "method": method,
                     "reps": len(tests), "rejection_rate": rate, "stderr": math.sqrt(rate * (1 - rate) / len(tests)),
                     "null_reps": len(null),
                     "null_rejection_rate": sum(t["reject"] for t in null) / len(null) if null else None,
                     "mean_difference": sum(t["difference"] for t in tests) / len(tests),
                     "mean_truth": sum(t["truth"] for t in tests) / len(tests),
                     "mean_stderr": sum(t["stderr"] for t in tests) / len(tests)})
    order = {m: i for i, m in enumerate(REL_METHODS)}
    return sorted(rows, key=lambda r: (r["dx"], r["kind"] != "ordered", r["sigma_a"], r["sigma_b"], order[r["method"]]))


def _tables(rows: Sequence[dict], alpha: float) -> list[tuple[str, str]]:
    tables = []
    for (dx, dh) in sorted({(r["dx"], r["dh"]) for r in rows}):
        sub = [r for r in rows if (r["dx"], r["dh"]) == (dx, dh)]
        power = [[f"σ {r['sigma_a']:g} vs {r['sigma_b']:g}", r["method"],
                  f"{r['rejection_rate']:.2f} ± {r['stderr']:.2f}",
                  f"{r['mean_difference']:.3g}", f"{r['mean_truth']:.3g}", f"{r['mean_stderr']:.2g}", r["reps"]]
                 for r in sub if r["kind"] == "ordered"]
        label = {"equal": "independent directions", "mirror": "+E against −E"}
        size = [[f"σ {r['sigma_a']:g}, {label[r['kind']]}", r["method"],
                 f"{r['rejection_rate']:.3f} ± {r['stderr']:.3f}",
                 "n/a" if r["null_rejection_rate"] is None else f"{r['null_rejection_rate']:.3f} ({r['null_reps']})",
                 f"{r['mean_truth']:.3g}", f"{r['mean_stderr']:.2g}", r["reps"]]
                for r in sub if r["kind"] in label]
        tables.append((f"dx = {dx}, dh = {dh}: power, H0 \"the less perturbed RBM is no better\" (α = {alpha:g})",
                       markdown_table(["pair", "method", "rejection rate", "mean difference", "true difference",
                                       "mean stderr", "reps"], power)))
        if size:
            tables.append((f"dx = {dx}, dh = {dh}: size, equally perturbed pairs (α = {alpha:g})",
                           markdown_table(["pair", "method", "rejection rate", "rate where H0 holds (reps)",
                                           "mean true difference", "mean stderr", "reps"], size)))
    return tables


def _verdict(rows: Sequence[dict], alpha: float) -> str:
    """Size over the mirror pairs' repetitions (pooled over σ; without mirror pairs, over the equal
    pairs' repetitions where the truth says H0 holds), and power at the closest ordered pair above
    σ = 0, of the judged method: ``optimal`` (relative_test's default for differentiable scores)
    when it ran, else ``lsd``; any other method above the bound is named."""
    mirror = [r for r in rows if r["kind"] == "mirror"]
    equal = mirror or [r for r in rows if r["kind"] == "equal" and r["null_reps"]]
    ordered = [r for r in rows if r["kind"] == "ordered" and r["sigma_a"] > 0]
    if not equal or not ordered:
        return "no verdict: the claim needs equal pairs and ordered pairs above σ = 0"
    size, bound = {}, {}
    for m in dict.fromkeys(r["method"] for r in equal):
        cells = [(r["reps"], r["rejection_rate"]) if mirror else (r["null_reps"], r["null_rejection_rate"])
                 for r in equal if r["method"] == m]
        count = sum(k for k, _ in cells)
        size[m] = sum(k * rate for k, rate in cells) / count
        bound[m] = alpha + 2 * math.sqrt(alpha * (1 - alpha) / count)
    first = min(ordered, key=lambda r: (r["sigma_a"], r["sigma_b"]))
    power = {r["method"]: r["rejection_rate"] for r in ordered
             if (r["sigma_a"], r["sigma_b"]) == (first["sigma_a"], first["sigma_b"])}
    judged = next((m for m in ("optimal", "lsd") if m in size), None)
    if judged is None:
        return "no verdict: the claim needs the optimal or the lsd method"
    valid = size[judged] <= bound[judged]
    better = power.get(judged, 0.0) >= power.get("separate", 0.0)
    where = "the mirror pairs" if mirror else "the equal pairs where H0 holds"
    liberal = [m for m in size if m not in (judged, "separate") and size[m] > bound[m]]
    return (f"{'holds' if valid and better else 'does not hold'} for {judged}: size over {where} "
            + ", ".join(f"{m} {v:.3f}" for m, v in size.items())
            + f" (α + 2 binomial stderr = {max(bound.values()):.3f}); power at σ {first['sigma_a']:g} vs "
            f"{first['sigma_b']:g}: " + ", ".join(f"{m} {v:.2f}" for m, v in power.items())
            + (f"; above the bound: {', '.join(liberal)}" if liberal else ""))


def _figure(path: Path, rows: Sequence[dict], alpha: float) -> Path:
    Figure = paper_module("matplotlib.figure", "the relative figure").Figure

    labels = list(dict.fromkeys(
        (r["kind"], r["sigma_a"], r["sigma_b"]) for r in rows if r["dx"] == rows[0]["dx"]))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    fig = Figure(figsize=(1.1 * len(labels) + 2, 3.6), layout="constrained")
    ax = fig.subplots()
    width = 0.8 / len(methods)
    for k, method in enumerate(methods):
        cells = {(r["kind"], r["sigma_a"], r["sigma_b"]): r for r in rows
                 if r["method"] == method and r["dx"] == rows[0]["dx"]}
        xs = [i + k * width for i, lab in enumerate(labels) if lab in cells]
        ys = [cells[lab]["rejection_rate"] for lab in labels if lab in cells]
        es = [cells[lab]["stderr"] for lab in labels if lab in cells]
        ax.bar(xs, ys, width, yerr=es, capsize=2, label=method, color=f"C{k}")
    ax.axhline(alpha, color="gray", ls="--", lw=0.8)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(labels))],
                  [f"{a:g} vs {b:g}" + ("" if kind == "ordered" else f"\n({kind})") for kind, a, b in labels],
                  fontsize=8)
    ax.set(ylabel=f"rejection rate (α = {alpha:g})", xlabel="σ_a vs σ_b", ylim=(0, 1.05),
           title=f"relative tests, dx = {rows[0]['dx']}, dh = {rows[0]['dh']}")
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=120)
    return path


def _toy_witness(path: Path, settings: Settings, device: torch.device) -> tuple[Path, list[dict[str, Any]]]:
    """The critics of two wrong models of the eight-Gaussians toy over its data, and their
    ranking with the pairwise p-value."""
    x = sample_toy("8gaussians", 2000, generator=torch.Generator().manual_seed(derive_seed(settings.seed, "toy")))
    angles = torch.arange(8) * (math.pi / 4)
    ring = torch.stack([torch.cos(angles), torch.sin(angles)], 1) * 4 / math.sqrt(2)
    mix = torch.distributions.Categorical(torch.ones(8))

    def mixture(radius: float, std: float) -> torch.distributions.Distribution:
        normal = torch.distributions.Normal(ring * radius, torch.full((8, 2), std / math.sqrt(2)))
        return torch.distributions.MixtureSameFamily(mix, torch.distributions.Independent(normal, 1))

    models = {"too wide (std × 1.6)": mixture(1.0, 0.8), "ring too small (radius × 0.85)": mixture(0.85, 0.5)}
    table = compare(models, x, PAPER_ESTIMATE, seed=settings.seed, pairwise=True, return_critic=True, lam=_LAM,
                    device=device,
                    n_iters=settings.n_iters, hidden=settings.hidden, val_every=max(1, settings.n_iters // 6))
    plot_field({r.name: r.estimate.critic for r in table}, x, path)
    rows = [{"model": r.name, "value": r.value, "stderr": r.stderr} for r in table]
    rows += [{"better": p.better, "worse": p.worse, "pvalue": p.pvalue, "adjusted": p.adjusted} for p in table.pairwise]
    return path, rows


def run(settings: Settings, out: str | Path, options: RunOptions = RunOptions()) -> dict[str, Any]:
    """Run (or resume) the sweep; write the report, relative.png and witness_toy.png into ``out``
    (with ``flow_run``: also the flow-checkpoint pairs and witness_flow.png)."""
    out, start = Path(out), time.perf_counter()
    flow_cfgs = options.with_device(flow_configs(settings.flow_run, settings.flow_blocks, n_iters=settings.n_iters,
                                                 hidden=settings.hidden, alpha=settings.alpha, seed=settings.seed)
                                    ) if settings.flow_run else []
    configs = options.with_device(trial_configs(settings))
    rows = summarize(configs, sweep(run_trial, configs, out, options))
    toy_path, toy = _toy_witness(out / "witness_toy.png", settings, trial_device(configs[0]))
    tables, figures, flows = _tables(rows, settings.alpha), [], []
    if flow_cfgs:
        flows = flow_summary(sweep(flow_trial, flow_cfgs, out, options), flow_run_rows(settings.flow_run)[1])
        tables.append((f"Flow checkpoints of {settings.flow_run}: H0 \"the later checkpoint fits no better\" "
                       f"(α = {settings.alpha:g}), one test per block of the test set", flow_table(flows)))
        figures.append(flow_witness(flow_cfgs[0], out / "witness_flow.png"))
        tables.append(("Witness of the first and last flow checkpoints (figure witness_flow.png)",
                       "Each row is one checkpoint's critic, fitted on block 0 of the test set and evaluated on "
                       "block 1: on the left the mean of the 16 block-1 images with the largest Stein terms (the "
                       "worst fitted; critic coordinates), on the right the critic's mean there, pixel by pixel, "
                       "which points where the model's score departs from the data's.\n"))
    tables.append(("Witness: the eight-Gaussians toy against two wrong mixtures (figure witness_toy.png: arrows "
                   "are the critic f ≈ (s_q − s_p)/(2λ), colour its magnitude)",
                   markdown_table(["model", "LSD ± stderr"],
                                  [[r["model"], f"{r['value']:.3g} ± {r['stderr']:.2g}"] for r in toy if "model" in r])
                   + "\n" + "".join(f"{r['better']} better than {r['worse']}: p = {r['pvalue']:.3g}\n"
                                   for r in toy if "better" in r)))
    return REPRODUCTION.write_report(
        out, settings, seconds=time.perf_counter() - start, verdict=_verdict(rows, settings.alpha),
        numbers={"rows": rows, "toy_witness": toy, "n_trials": len(configs), "flow_pairs": flows}, tables=tables,
        figures=[_figure(out / "relative.png", rows, settings.alpha), toy_path, *figures],
    )


REPRODUCTION = Reproduction(
    name="relative",
    description="Relative tests: is the less perturbed RBM better? Power, and the size for equally perturbed pairs",
    paper_claim=("Not a claim of the paper (issue 15): a relative test scored on shared points tells which of "
                 "two models fits better with a valid p-value, more often than comparing two estimates' error "
                 "bars. The verdict judges relative_test's default for differentiable scores (optimal: the exact "
                 "optimal-critic terms) and names the learned critic (lsd) when its size is above the bound."),
    verdict_rule=("holds when the judged method's size over the mirror pairs (or the equal pairs where H0 holds) "
                  "is at most α + 2 binomial standard errors and its power at the closest ordered pair above "
                  "σ = 0 is at least that of comparing two separate estimates"),
    full=FULL,
    quick=QUICK,
    run=run,
    setup_note=("the flow-checkpoint pairs need a finished flow-eval run: `steinkit reproduce flow-eval "
                "--out DIR` first, then `--flow-run DIR` here"),
)

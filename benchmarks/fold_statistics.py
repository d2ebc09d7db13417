"""How the default test's members combine their folds: each fold's t summed, skew-corrected, or once.

Every member of the witness-family test (``steinkit.gof.witnesses``) scores fold k + 1 with a
witness of folds 1..k and combines its folds as z = Σ_k w_k t_k/‖w‖, t_k the fold's own
studentised mean. With skewed terms each t_k is biased, and the biases add up over the folds. Two
alternatives are measured: each t_k replaced by Hall's skew-corrected cubic of it
(:func:`skew_corrected`), or one studentisation over all folds, z = Σ_k w_k Σ_i h_ki /
√(Σ_k w_k² Σ_i (h_ki − h̄_k)²). Three commands:

* ``save CELL LO HI``: every member's fold terms for repetitions LO..HI−1 of a power-panel cell
  (the panel's data, seeds and settings; one ``.pt`` file per repetition under ``--terms``);
* ``score CELL ...``: the default test's rejection rate with each combination of
  :data:`COMBINATIONS`, and the trained member's mean z;
* ``gaussian-null``: the closed-form members' z under H0 on Gaussian data (mean, sd, rate at 1.645).

Results: docs/default-test.md ("Studentising once over the folds"). Example::

    python benchmarks/fold_statistics.py save banana 0 100 --terms /tmp/terms
    python benchmarks/fold_statistics.py score banana --terms /tmp/terms
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import torch
from torch import Tensor

import power_panel as PP
from steinkit.gof import witnesses as W
from steinkit.gof.aggregate import max_normal_pvalue
from steinkit.gof.lsd import FEATURE_FOLDS, _contributions, _fold_statistics, _weighted
from steinkit.scores import as_score
from steinkit.settings import LEARNED_TEST

CLOSED_FORM = ("features", "linear", "coordinate", "pooled", "kernel")
ALL = ("trained",) + CLOSED_FORM
COMBINATIONS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "each fold's t (the default)": ((), ()), "trained once": (("trained",), ()),
    "closed forms once": (CLOSED_FORM, ()), "all once": (ALL, ()),
    "trained skew-corrected": ((), ("trained",)), "all skew-corrected": ((), ALL)}
"""Name -> (members studentised once over their folds, members whose fold t's are skew-corrected)."""


def summed(terms: Tensor) -> Tensor:
    """z = Σ_k w_k Σ_i h_ki / √(Σ_k w_k² Σ_i (h_ki − h̄_k)²), w_k = √k, for (folds, m) terms."""
    h = terms.double()
    w = torch.arange(1, h.shape[0] + 1, dtype=torch.float64).sqrt()
    return (w * h.sum(1)).sum() / ((w**2) * ((h - h.mean(1, keepdim=True)) ** 2).sum(1)).sum().sqrt()


def summed_shares(terms: Tensor, n: int) -> Tensor:
    """Unit vector of each point's share of :func:`summed`'s z, laid out on n points."""
    h = terms.double()
    folds, m = h.shape
    w = torch.arange(1, folds + 1, dtype=torch.float64).sqrt()
    out = torch.zeros(n, dtype=torch.float64)
    out[m:(folds + 1) * m] = (w[:, None] * (h - h.mean(1, keepdim=True))).reshape(-1)
    return out / out.norm()


def skew_corrected(t: Tensor, skewness: Tensor, m: int) -> Tensor:
    """Hall's (1992) monotone cubic t + c(2t² + 1) + (4/3)c²t³, c = γ/(6√m), of a studentised
    mean t of m terms with skewness γ: N(0, 1) to order 1/√m, where t's law is off by
    γ(2t² + 1)φ(t)/(6√m) (terms skewed to the left make a one-sided t liberal). An infinite t
    (equal terms) stays as it is.

    Example:
        >>> skew_corrected(torch.tensor([1.645]), torch.tensor([-1.0]), 250)   # doctest: +ELLIPSIS
        tensor([1.5781...], dtype=torch.float64)
    """
    c = skewness.double() / (6 * math.sqrt(m))
    t = t.double()
    return torch.where(t.isfinite(), t + c * (2 * t**2 + 1) + 4 / 3 * c**2 * t**3, t)


def fold_t(terms: Tensor, skew_correction: bool) -> Tensor:
    """Each fold's t (``lsd._fold_statistics``), skew-corrected by :func:`skew_corrected` if asked."""
    t = _fold_statistics(terms)
    if not skew_correction:
        return t
    h = terms.double()
    std = h.std(1)
    skew = torch.where(std > 0, ((h - h.mean(1, keepdim=True)) ** 3).mean(1) / std.clamp(min=1e-300) ** 3, 0.0)
    return skew_corrected(t, skew, h.shape[1])


def member_terms(cell: PP.Cell, rep: int, cache: Path | None) -> dict[str, Tensor]:
    """Every default member's fold terms on repetition ``rep`` of ``cell`` (what witness_tests computes)."""
    prob, x = PP.data(cell, rep, cache=cache)
    out = W.member_terms([(as_score(prob.model), x, rep)], LEARNED_TEST, W.DEFAULT_MEMBERS,
                         W.as_kernel(W.DEFAULT_KERNEL), W.KERNEL_BASIS, W.KERNEL_POINTS)[0]
    return {k: v.detach().cpu() for k, v in out.items()}


def combined_pvalue(members: dict[str, Tensor], n: int, seed: int, once: tuple[str, ...],
                    hall: tuple[str, ...] = ()) -> tuple[float, float]:
    """(the default test's p-value, the trained member's z) with the members in ``once`` studentised once
    and those in ``hall`` skew-corrected fold by fold (:func:`skew_corrected`); with both empty this is
    ``witnesses._outcome`` exactly (the same draws)."""
    names = list(members)
    one = [name.split(" ")[0] in once for name in names]
    z = torch.stack([summed(members[k]) if o else
                     _weighted(fold_t(members[k], k.split(" ")[0] in hall))
                     for k, o in zip(names, one)])
    shares = torch.stack([summed_shares(members[k], n) if o else _contributions(members[k], n)
                          for k, o in zip(names, one)])
    nu = W.statistic_weights(names, W.DEFAULT_WEIGHTS)
    _, p = max_normal_pvalue(z, shares @ shares.T, weights=nu, generator=torch.Generator().manual_seed(seed + 3))
    return p, float(z[names.index("trained")])


def save(args: argparse.Namespace) -> None:
    cell = _cell(args.cell)
    folder = args.terms / cell.name
    folder.mkdir(parents=True, exist_ok=True)
    for rep in range(args.lo, args.hi):
        path = folder / f"{rep}.pt"
        if not path.exists():   # resumable: a finished repetition is never redone
            torch.save(member_terms(cell, rep, args.cache), path)


def score(args: argparse.Namespace) -> None:
    for name in args.cells:
        cell = _cell(name)
        files = sorted((args.terms / name).glob("*.pt"), key=lambda p: int(p.stem))
        if not files:
            raise SystemExit(f"no stored terms for {name} under {args.terms}: run `save` first")
        rejected = {c: 0 for c in COMBINATIONS}
        z_trained: dict[str, list[float]] = {c: [] for c in COMBINATIONS}
        for path in files:
            members = torch.load(path)
            for c, (once, hall) in COMBINATIONS.items():
                p, z = combined_pvalue(members, cell.n, int(path.stem), once, hall)
                rejected[c] += p < 0.05
                z_trained[c].append(z)
        rates = "; ".join(f"{c}: {rejected[c] / len(files):.3f} (trained z {sum(z_trained[c]) / len(files):+.2f})"
                          for c in COMBINATIONS)
        print(f"{name} ({len(files)} repetitions) {rates}", flush=True)


def gaussian_null(args: argparse.Namespace) -> None:
    """N(μ, σ²I) data against their own model (d = 4, n = 400, 8 folds), one z per data set and member."""
    g = torch.Generator().manual_seed(args.seed)
    z: dict[str, list[float]] = {}
    for _ in range(args.reps):
        x = torch.randn(400, 4, generator=g, dtype=torch.float64) * 2.0 + 1.0
        s = -(x - 1.0) / 4.0
        terms = W._coordinate_terms(x, s, FEATURE_FOLDS, which=("coordinate", "pooled"))
        terms["linear"] = W._linear_terms(x, s, FEATURE_FOLDS)
        for name, h in terms.items():
            z.setdefault(f"{name}, each fold's t", []).append(float(_weighted(_fold_statistics(h))))
            z.setdefault(f"{name}, once", []).append(float(summed(h)))
            z.setdefault(f"{name}, skew-corrected", []).append(float(_weighted(fold_t(h, True))))
    for name, values in z.items():
        v = torch.tensor(values)
        print(f"{name}: mean {float(v.mean()):+.3f} sd {float(v.std()):.3f} "
              f"rate at 1.645 {float((v > 1.645).double().mean()):.3f} ({args.reps} data sets)")


def _cell(name: str) -> PP.Cell:
    cells = {c.name: c for c in PP.HALVES["all"]}
    if name not in cells:
        raise SystemExit(f"unknown cell {name!r}; one of {sorted(cells)}")
    return cells[name]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--terms", type=Path, default=Path("fold-terms"), help="folder of stored member terms")
    parser.add_argument("--cache", type=Path, default=None, help="the power panel's data cache")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("save", help="store every member's fold terms for a cell's repetitions")
    p.add_argument("cell")
    p.add_argument("lo", type=int)
    p.add_argument("hi", type=int)
    p.set_defaults(run=save)
    p = sub.add_parser("score", help="the default test's rate with each combination of folds")
    p.add_argument("cells", nargs="+")
    p.set_defaults(run=score)
    p = sub.add_parser("gaussian-null", help="the closed-form members' z under H0")
    p.add_argument("--reps", type=int, default=300)
    p.add_argument("--seed", type=int, default=6)
    p.set_defaults(run=gaussian_null)
    args = parser.parse_args()
    torch.set_num_threads(1)
    args.run(args)


if __name__ == "__main__":
    main()

"""benchmarks/power_panel.py: the panel's shape (issue 25), and a tiny run that resumes and reports."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
import power_panel as pp  # noqa: E402

ISSUE_EXAMPLES = {("laplace", 10, 400), ("student-t", 20, 1000), ("banana", 10, 1000), ("gaussian-scale", 50, 1000),
                  ("rbm", 50, 1000)}


def test_the_panel_has_the_issues_shape():
    cells = pp.HALVES["all"]
    alternatives = [c for c in cells if not c.null]
    assert len({c.family for c in alternatives}) >= 10
    assert min(c.d for c in cells) == 2 and max(c.d for c in cells) == 100
    assert min(c.n for c in cells) == 200 and max(c.n for c in cells) == 5000
    assert len({c.name for c in cells}) == len(cells)
    nulls = [c for c in cells if c.null]
    assert len([c for c in nulls if c.family != "rbm"]) >= 3
    assert {c.d for c in nulls if c.family == "rbm" and c.params["sigma"] == 0} == {50, 100}
    assert {(c.d, c.params["hidden"]) for c in alternatives if c.family == "rbm"} == {(50, 40), (100, 80)}
    for c in cells:                              # a cell marked null is a null problem, and only then
        assert c.problem(0).null == c.null, c.name
    tuning = {(c.family, c.d, c.n) for c in pp.TUNING}
    assert ISSUE_EXAMPLES <= tuning
    families = {half: {c.family for c in pp.HALVES[half] if not c.null} for half in ("tuning", "heldout")}
    assert not families["tuning"] & families["heldout"]
    for half in ("tuning", "heldout"):           # both halves mix the kinds of misfit
        assert {"tails", "dependence", "mixture"} <= {c.kind for c in pp.HALVES[half]}
        assert sum(c.null for c in pp.HALVES[half]) >= 3


def test_methods_pass_through_with_their_protocol():
    assert pp.split_method("lsd:sequential") == ("lsd", {"protocol": "sequential"})
    assert pp.split_method("default") == ("default", {})
    with pytest.raises(ValueError, match="methods"):
        pp.split_method(":x")


def test_data_are_the_same_for_every_method_and_cached(tmp_path):
    cell = pp.TUNING[0]
    _, x1 = pp.data(cell, 3, tmp_path)
    _, x2 = pp.data(cell, 3, tmp_path)           # from the cache
    _, x3 = pp.data(cell, 3)                     # drawn again
    assert (x1 == x2).all() and (x1 == x3).all() and x1.shape == (cell.n, cell.d)
    assert not (pp.data(cell, 4)[1] == x1).all()


def _run(*args: str) -> subprocess.CompletedProcess:
    path = os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))
    cmd = [sys.executable, str(ROOT / "benchmarks" / "power_panel.py"), *args]
    proc = subprocess.run(cmd, cwd=ROOT, env={**os.environ, "PYTHONPATH": path}, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def test_a_tiny_run_resumes_and_reports(tmp_path):
    store = tmp_path / "panel.jsonl"
    args = [str(store), "--cells", "laplace", "null-ar1", "--methods", "ksd-seq", "lksd", "--reps", "2",
            "--null-reps", "3", "--cache", str(tmp_path / "cache")]
    _run(*args)
    rows = [json.loads(line) for line in store.read_text().splitlines()]
    assert len(rows) == 2 * 2 + 3 * 2
    assert {r["method"] for r in rows} == {"ksd-seq", "lksd"}
    assert all(0 <= r["pvalue"] <= 1 and r["reject"] == (r["pvalue"] < 0.05) and r["cpu_seconds"] >= 0 for r in rows)
    assert _run(*args).stdout == ""              # resumed: nothing left to do
    assert len(store.read_text().splitlines()) == len(rows)
    report, figure = tmp_path / "panel.md", tmp_path / "panel.png"
    out = _run(str(store), "--report", str(report), "--figure", str(figure)).stdout
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["halves"]["tuning"]["null-ar1"]["lksd"]["reps"] == 3
    assert summary["halves"]["tuning"]["null-ar1"]["null"] is True
    text = report.read_text()
    assert "| laplace |" in text and "*null*" in text and "CPU seconds per test" in text
    assert figure.stat().st_size > 0


def test_member_scoring_reproduces_the_witness_test_from_a_stored_row():
    # a row keeps the members' statistics and correlation: the default's p-value, and that of any
    # subset or weighting, is recomputed from it exactly (power_panel_members.py)
    from types import SimpleNamespace

    import torch

    import steinkit as sk
    from power_panel_members import member_groups, subset_pvalue, weighted_pvalue
    from steinkit.gof.witnesses import DEFAULT_WEIGHTS

    x = torch.randn(400, 3, generator=torch.Generator().manual_seed(0)) * 1.1
    model = sk.models.Gaussian(torch.zeros(3), torch.eye(3))
    row = {**pp.run_test(SimpleNamespace(model=model), x, "witnesses", 4), "rep": 4}
    names = list(row["members"]["statistics"])
    assert set(member_groups(names)) == set(DEFAULT_WEIGHTS)
    assert weighted_pvalue(row, dict(DEFAULT_WEIGHTS)) == row["pvalue"]
    even = {f: float(len(ids)) for f, ids in member_groups(names).items()}   # one per statistic
    assert weighted_pvalue(row, even) == subset_pvalue(row, tuple(even))
    alone = sk.gof_test(model, x, method="witnesses", seed=4, members=["linear", "kernel"],
                        weights={"linear": 1.0, "kernel": 6.0}, n_iters=1)
    assert subset_pvalue(row, ("linear", "kernel")) == alone.pvalue


def test_stored_member_terms_reproduce_the_witness_test():
    # fold_statistics.py rescoring stored terms: with each fold's own t it is the default test exactly
    from types import SimpleNamespace

    import fold_statistics as fs

    cell = pp.Cell("tiny-scale", "scale", "gaussian-scale", 3, 400, {"factor": 1.1})
    prob, x = pp.data(cell, 2)
    members = fs.member_terms(cell, 2, None)
    stored = pp.run_test(SimpleNamespace(model=prob.model), x, "witnesses", 2)
    assert fs.combined_pvalue(members, cell.n, 2, ())[0] == stored["pvalue"]
    once, _ = fs.combined_pvalue(members, cell.n, 2, fs.CLOSED_FORM)
    assert 0 < once <= 1 and once != stored["pvalue"]
    hall, _ = fs.combined_pvalue(members, cell.n, 2, (), fs.ALL)
    assert 0 < hall <= 1 and hall != stored["pvalue"]


def test_skew_corrected_t_holds_the_level_that_a_left_skewed_t_exceeds():
    # 20000 folds of m = 250 centred, negated exponential terms (skewness −2): the one-sided t
    # rejects about .063 at 1.645; Hall's cubic brings it to .05 (binomial se .0015)
    import fold_statistics as fs

    h = -(torch.empty(20000, 250, dtype=torch.float64).exponential_(generator=torch.Generator().manual_seed(3)) - 1)
    t = 250**0.5 * h.mean(1) / h.std(1)
    skew = ((h - h.mean(1, keepdim=True)) ** 3).mean(1) / h.std(1) ** 3
    corrected = fs.skew_corrected(t, skew, 250)
    assert float((t > 1.645).double().mean()) > 0.058
    assert abs(float((corrected > 1.645).double().mean()) - 0.05) < 0.005
    grid = torch.linspace(-30, 30, 601, dtype=torch.float64)   # monotone: its derivative is (1 + 2ct)² ≥ 0
    assert bool((fs.skew_corrected(grid, torch.full_like(grid, -2.0), 250).diff() >= 0).all())
    assert torch.equal(fs.fold_t(torch.ones(2, 5), True), torch.full((2,), math.inf, dtype=torch.float64))
    even = torch.randn(3, 100, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    symmetric = torch.cat([even, -even], 1)   # zero sample skewness: the correction changes nothing
    assert torch.allclose(fs.fold_t(symmetric, True), fs.fold_t(symmetric, False))

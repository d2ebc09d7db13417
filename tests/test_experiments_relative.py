"""The 'relative' reproduction on tiny settings: pairs, trials equal to the public API, files, resume."""

from __future__ import annotations

import json

import pytest
import torch

import steinkit as sk
from steinkit.cli import build_parser, main
from steinkit.experiments import get_experiment, relative
from steinkit.experiments.settings import RunOptions, settings_from_args

TINY = relative.QUICK.replace(dims=("5:3",), sigmas=(0.0, 0.5), reps=2, batch=1, n=200, burn_in=20, n_iters=24,
                              hidden=8)


def test_registered_with_generated_options():
    assert get_experiment("relative") is relative
    assert relative.REPRODUCTION.paper_claim and relative.REPRODUCTION.setup_note
    args = build_parser().parse_args(["reproduce", "relative", "--out", "x", "--quick", "--sigmas", "0", "0.02"])
    s = settings_from_args(args, relative.FULL, relative.QUICK)
    assert s.sigmas == (0.0, 0.02) and s.reps == relative.QUICK.reps and s.dims == ("50:40",)
    assert relative.FULL.reps == 200 and relative.FULL.sigmas == (0.0, 0.01, 0.02, 0.04)


def test_pairs_cover_ordered_equal_and_mirror():
    assert relative.model_pairs((0.02, 0.0, 0.01)) == [
        ("ordered", 0.0, 0.01), ("ordered", 0.0, 0.02), ("ordered", 0.01, 0.02),
        ("equal", 0.01, 0.01), ("equal", 0.02, 0.02), ("mirror", 0.01, 0.01), ("mirror", 0.02, 0.02)]
    with pytest.raises(ValueError, match="sigmas"):
        relative.QUICK.replace(sigmas=(0.0,))
    with pytest.raises(ValueError, match="alpha"):
        relative.QUICK.replace(alpha=1.0)


def test_trial_equals_the_public_relative_test():
    """The trial fits every model's critic once; each pair's result is relative_test's."""
    config = relative.trial_configs(TINY)[0]
    tests = relative.run_trial(config)["tests"]
    kinds = {(k, m) for k in relative.PAIR_KINDS for m in relative.REL_METHODS}
    assert {(t["kind"], t["method"]) for t in tests} == kinds
    p, x, models = relative._models(config, 0)
    seed = relative.derive_seed(config["seed"], 5, 3, 0, "relative")
    for method, extra in (("lsd", {"n_iters": 24, "hidden": 8, "val_every": 2}), ("optimal", {})):
        ordered = next(t for t in tests if t["method"] == method and t["kind"] == "ordered" and t["rep"] == 0)
        res = sk.relative_test(models[0.0, 0], models[0.5, 0], x, seed=seed, method=method, **extra)
        assert ordered["difference"] == pytest.approx(res.difference, rel=1e-5, abs=1e-7)
    equal = next(t for t in tests if t["kind"] == "equal" and t["rep"] == 0)
    with torch.no_grad():  # the truth is the optimal critics' LSD difference on x, with p's score
        s_p = p.score(x).double()
        truth = [float(sk.optimal_lsd(models[k].score(x).double(), s_p, 0.5)) for k in ((0.5, 0), (0.5, 1))]
    assert equal["truth"] == pytest.approx(truth[0] - truth[1])
    # the mirror model moves p's weights by −σE where the first moves them by +σE
    torch.testing.assert_close(models[0.5, 2].B - p.B, -(models[0.5, 0].B - p.B))
    mirror = next(t for t in tests if t["kind"] == "mirror" and t["method"] == "optimal" and t["rep"] == 0)
    res = sk.relative_test(models[0.5, 0], models[0.5, 2], x, seed=seed, method="optimal")
    assert mirror["difference"] == pytest.approx(res.difference, rel=1e-5, abs=1e-7)


def test_run_writes_the_report_and_resumes(tmp_path, monkeypatch):
    quiet = RunOptions(progress=False)
    report = relative.run(TINY, tmp_path, quiet)
    assert (tmp_path / "relative.png").stat().st_size > 0 and (tmp_path / "witness_toy.png").stat().st_size > 0
    rows = report["results"]["rows"]
    assert {(r["kind"], r["method"]) for r in rows} >= {("ordered", "optimal"), ("equal", "lsd")}
    assert all(r["reps"] == 2 for r in rows) and report["verdict"].startswith("no verdict")
    assert "witness_toy.png" in (tmp_path / "results.md").read_text()
    monkeypatch.setattr(relative, "run_trial", lambda config: pytest.fail("a stored trial ran again"))
    assert relative.run(TINY, tmp_path, quiet)["results"]["rows"] == rows
    assert json.loads((tmp_path / "results.json").read_text())["experiment"] == "relative"


def test_cli_runs_it(tmp_path):
    assert main(["reproduce", "relative", "--out", str(tmp_path), "--dims", "4:2", "--sigmas", "0.3", "--reps", "1",
                 "--n", "100", "--burn-in", "5", "--n-iters", "12", "--hidden", "4", "--methods", "optimal",
                 "--no-progress"]) == 0
    rows = json.loads((tmp_path / "results.json").read_text())["results"]["rows"]
    assert [(r["kind"], r["method"]) for r in rows] == [("equal", "optimal"), ("mirror", "optimal")]


@pytest.fixture(scope="module")
def tiny_flow_run(tmp_path_factory):
    from steinkit.experiments import flow_eval

    tiny = flow_eval.QUICK.replace(dataset="digits", n_stages=2, n_blocks=1, hidden_channels=4, batch_size=32,
                                   checkpoint_steps=(2, 20, 60), critic_hidden=16, critic_passes=2,
                                   critic_batch_size=64, sm_probes=1, chunk_size=200)
    out = tmp_path_factory.mktemp("flow_eval")
    flow_eval.run(tiny, out, RunOptions(progress=False))
    return out


def test_flow_pairs_are_consecutive_and_first_to_last():
    assert relative.flow_pairs([5, 6]) == [(1, 0)]
    assert relative.flow_pairs([1, 2, 3, 4]) == [(1, 0), (2, 1), (3, 2), (3, 0)]


def test_flow_trial_equals_the_public_relative_test(tiny_flow_run):
    """A block's test of (later, earlier) is relative_test on that block's points, in flow-eval's coordinates."""
    from steinkit.experiments import _relative_flows as rf

    configs = rf.flow_configs(tiny_flow_run, 3, n_iters=24, hidden=8, alpha=0.05, seed=0)
    assert [c["block"] for c in configs] == [0, 1, 2] and configs[0]["steps"] == [2, 20, 60]
    out = rf.flow_trial(configs[1])
    assert [(t["later"], t["earlier"]) for t in out["tests"]] == [(20, 2), (60, 20), (60, 2)]
    scores, (x,) = rf._problem(configs[1], 1)
    n_images = sk.data.load_image_dataset("digits", split="test")[0].shape[0]
    assert x.shape == (n_images // 3, 64) and out["n_test"] == x.shape[0] - round(0.5 * x.shape[0])
    res = sk.relative_test(scores[2], scores[0], x, seed=1, lam=0.5, n_iters=24, hidden=8, val_every=2)
    assert out["tests"][2]["difference"] == pytest.approx(res.difference, rel=1e-5, abs=1e-7)
    blocks = rf._problem(configs[0], 0, 1, 2)[1]  # disjoint blocks
    rows = {tuple(r.tolist()) for b in blocks for r in b}
    assert len(rows) == 3 * x.shape[0]


def test_flow_part_in_the_report(tiny_flow_run, tmp_path):
    s = TINY.replace(flow_run=str(tiny_flow_run), flow_blocks=2)
    report = relative.run(s, tmp_path, RunOptions(progress=False))
    flows = report["results"]["flow_pairs"]
    assert {(r["later"], r["earlier"]) for r in flows} == {(20, 2), (60, 20), (60, 2)}
    assert all(r["blocks"] == 2 and 0 <= r["rejection_rate"] <= 1 for r in flows)
    bpd = json.loads((tiny_flow_run / "results.json").read_text())["results"]["rows"]
    truth = {r["step"]: r["bits_per_dim"] for r in bpd}
    assert all(r["later_is_better"] == (truth[r["later"]] < truth[r["earlier"]]) for r in flows)
    assert (tmp_path / "witness_flow.png").stat().st_size > 0
    assert "Flow checkpoints" in (tmp_path / "results.md").read_text()


def test_flow_run_must_be_a_finished_flow_eval(tmp_path):
    with pytest.raises(ValueError, match="flow_run"):
        relative.run(TINY.replace(flow_run=str(tmp_path)), tmp_path, RunOptions(progress=False))


def test_verdict_takes_the_size_from_the_mirror_pairs_when_there_are_any():
    def row(kind, method, rate, null_rate=None, a=0.01, b=0.01):
        return {"kind": kind, "method": method, "sigma_a": a, "sigma_b": b, "reps": 200, "rejection_rate": rate,
                "null_reps": 100, "null_rejection_rate": rate if null_rate is None else null_rate}

    ordered = [row("ordered", "lsd", 0.9, a=0.01, b=0.02), row("ordered", "separate", 0.1, a=0.01, b=0.02)]
    equal = [row("equal", "lsd", 0.2, null_rate=0.05)]
    text = relative._verdict(ordered + equal, 0.05)
    assert text.startswith("holds for lsd: size over the equal pairs where H0 holds lsd 0.050")
    mirror = [row("mirror", "lsd", 0.13), row("mirror", "optimal", 0.06)]
    text = relative._verdict(ordered + equal + mirror, 0.05)
    assert text.startswith("does not hold for optimal: size over the mirror pairs lsd 0.130, optimal 0.060")
    assert "power at σ 0.01 vs 0.02: lsd 0.90, separate 0.10" in text  # optimal has no power row here
    with_optimal = ordered + [row("ordered", "optimal", 1.0, a=0.01, b=0.02)] + mirror
    text = relative._verdict(with_optimal, 0.05)
    assert text.startswith("holds for optimal: size over the mirror pairs lsd 0.130, optimal 0.060")
    assert text.endswith("; above the bound: lsd")
    text = relative._verdict(ordered + [row("ordered", "optimal", 1.0, a=0.01, b=0.02)]
                             + [row("mirror", "optimal", 0.2)], 0.05)
    assert text.startswith("does not hold for optimal")

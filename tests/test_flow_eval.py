"""Tests of the flow-evaluation experiment (Figure 7) on tiny settings (8x8 digits)."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch

from steinkit.experiments import flow_eval
from steinkit.experiments.flow_eval import FlowScore, score_matching_terms
from steinkit.experiments.runner import trial_folder
from steinkit.experiments.settings import RunOptions
from steinkit.models.flows import GlowFlow

TINY = flow_eval.QUICK.replace(
    dataset="digits",
    n_stages=2,
    n_blocks=1,
    hidden_channels=4,
    batch_size=32,
    checkpoint_steps=(2, 4, 6),
    critic_hidden=16,
    critic_passes=2,
    critic_batch_size=64,
    sm_probes=1,
    chunk_size=200,
)
QUIET = RunOptions(progress=False)
ROW_KEYS = {"checkpoint", "step", "bits_per_dim", "lsd", "lsd_stderr", "score_matching"}


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _tiny_flow() -> tuple[GlowFlow, torch.Tensor]:
    flow = GlowFlow((1, 4, 4), n_stages=2, n_blocks=1, hidden_channels=4, generator=_gen(0))
    x = torch.randn(6, 16, generator=_gen(1), dtype=torch.float64)
    flow = flow.double()
    flow(torch.randn(64, 16, generator=_gen(2), dtype=torch.float64))  # initialise actnorm
    with torch.no_grad():  # make the couplings non-trivial
        for p in flow.parameters():
            p.add_(0.3 * torch.randn(p.shape, generator=_gen(3), dtype=p.dtype))
    return flow, x


def _train_dir(out: Path, settings: flow_eval.Settings) -> Path:
    return trial_folder(out / "trials", flow_eval._train_config(settings))


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("flow_eval")
    return out, flow_eval.run(TINY, out, QUIET)


def test_run_writes_results_of_the_documented_shape(tiny_run: tuple[Path, dict]) -> None:
    out, report = tiny_run
    on_disk = json.loads((out / "results.json").read_text())
    res = report["results"]
    assert on_disk["results"]["rows"] == res["rows"] and on_disk["experiment"] == "flow-eval"
    rows = res["rows"]
    assert [r["checkpoint"] for r in rows] == [1, 2, 3]
    assert [r["step"] for r in rows] == [2, 4, 6]
    for r in rows:
        assert ROW_KEYS <= set(r)
        for key in ("bits_per_dim", "lsd", "lsd_stderr", "score_matching"):
            assert math.isfinite(r[key])
        assert r["lsd_stderr"] > 0
        assert 0 < r["bits_per_dim"] < 16
    for key in ("lsd", "score_matching"):
        assert set(res["spearman"][key]) == {"rho", "pvalue"}
        assert -1.0 <= res["spearman"][key]["rho"] <= 1.0
    for key in ("claim_holds", "lsd_rho_at_least_0.9", "lsd_rho_above_score_matching"):
        assert isinstance(res[key], bool)
    assert ("does not replicate" in report["verdict"]) != res["claim_holds"]
    assert res["seconds"]["total"] > 0 and res["seconds"]["cpu_total"] > 0
    assert (out / "flow_eval.png").stat().st_size > 0
    assert (out / "samples.png").stat().st_size > 0
    assert report["figures"] == ["flow_eval.png", "samples.png"] and "| checkpoint |" in (out / "results.md").read_text()
    assert sorted(p.name for p in _train_dir(out, TINY).glob("*.pt")) == [
        "step-0000002.pt", "step-0000004.pt", "step-0000006.pt"
    ]


def test_rerun_reuses_checkpoints_and_evaluations(
    tiny_run: tuple[Path, dict], monkeypatch: pytest.MonkeyPatch
) -> None:
    out, report = tiny_run

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("the flow must not be trained when its trial is stored")

    def no_lsd(*args: object, **kwargs: object) -> None:
        raise AssertionError("a stored evaluation must be reused")

    monkeypatch.setattr(flow_eval, "_fit_flow", no_training)
    monkeypatch.setattr(flow_eval, "stein_discrepancy", no_lsd)
    again = flow_eval.run(TINY, out, QUIET)
    assert again["results"]["rows"] == report["results"]["rows"]


def test_interrupted_training_resumes_from_the_last_checkpoint(
    tiny_run: tuple[Path, dict], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out, _ = tiny_run
    settings = TINY.replace(critic_passes=1)
    ckpt = _train_dir(tmp_path, settings)
    ckpt.mkdir(parents=True)
    for step in (2, 4):  # as if the training trial had been killed after step 4
        (ckpt / f"step-{step:07d}.pt").write_bytes((_train_dir(out, TINY) / f"step-{step:07d}.pt").read_bytes())
    calls: list[tuple[int, list[int]]] = []
    real = flow_eval._fit_flow

    def recording(*args: object, **kwargs: object) -> None:
        calls.append((kwargs["done"], kwargs["todo"]))  # type: ignore[arg-type]
        real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(flow_eval, "_fit_flow", recording)
    res = flow_eval.run(settings, tmp_path, QUIET)["results"]
    assert calls == [(4, [6])]  # only steps 5..6 were trained
    assert [r["step"] for r in res["rows"]] == [2, 4, 6] and res["resumed_from"] == 4
    # with the saved Adam state and batch order, the resumed flow equals the uninterrupted one
    resumed = torch.load(ckpt / "step-0000006.pt", weights_only=True)["state_dict"]
    straight = torch.load(_train_dir(out, TINY) / "step-0000006.pt", weights_only=True)["state_dict"]
    assert resumed.keys() == straight.keys()
    # Equal up to float32 rounding (separate conv calls may round differently in the last bit);
    # fresh Adam moments, as before, would move every weight by ~lr = 1e-3 in these two steps.
    for k in straight:
        torch.testing.assert_close(resumed[k], straight[k], rtol=1e-5, atol=1e-7)


def test_a_changed_setting_never_reuses_a_stale_result(
    tiny_run: tuple[Path, dict], monkeypatch: pytest.MonkeyPatch
) -> None:
    out, report = tiny_run
    calls: list[int] = []
    real = flow_eval._fit_flow

    def recording(*args: object, **kwargs: object) -> None:
        calls.append(int(kwargs["done"]))  # type: ignore[call-overload]
        real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(flow_eval, "_fit_flow", recording)
    other_flow = flow_eval.run(TINY.replace(hidden_channels=8), out, QUIET)["results"]
    assert calls == [0] and other_flow["rows"] != report["results"]["rows"]  # trained afresh in its own folder
    other_eval = flow_eval.run(TINY.replace(sm_probes=2), out, QUIET)["results"]
    assert calls == [0]  # an evaluation setting reuses the trained flow but not the evaluations
    rows, first = other_eval["rows"], report["results"]["rows"]
    assert [r["bits_per_dim"] for r in rows] == [r["bits_per_dim"] for r in first]
    assert [r["score_matching"] for r in rows] != [r["score_matching"] for r in first]


def test_training_trial_key_holds_only_training_settings() -> None:
    training = {f.name for f in dataclasses.fields(flow_eval.FlowTraining)}
    assert set(flow_eval._train_config(TINY)) == training | {"trial"}
    assert training < {f.name for f in dataclasses.fields(flow_eval.Settings)}
    assert flow_eval._train_config(TINY) == flow_eval._train_config(TINY.replace(lam=2.0, sm_probes=3))


def test_presets_are_valid_and_follow_the_paper_where_stated() -> None:
    full, quick = flow_eval.FULL, flow_eval.QUICK
    assert (full.n_stages, full.n_blocks, full.hidden_channels, full.lr) == (3, 4, 128, 1e-4)
    assert full.checkpoint_steps == tuple(1000 * k for k in range(1, 11))
    assert (full.critic_hidden, full.critic_layers, full.critic_passes) == (1000, 2, 100)
    assert full.critic_batch_size == 128 and full.split == (0.8, 0.1, 0.1)
    assert len(quick.checkpoint_steps) == 10 and quick.critic_hidden == 1000


@pytest.mark.parametrize(
    "options, error, match",
    [
        ({"nonsense": 1}, TypeError, "unknown setting"),
        ({"checkpoint_steps": (4, 2)}, ValueError, "checkpoint_steps"),
        ({"checkpoint_steps": (3,)}, ValueError, "checkpoint_steps"),
        ({"critic_passes": 0}, ValueError, "critic_passes"),
        ({"lr": -1.0}, ValueError, "lr"),
        ({"alpha": 0.5}, ValueError, "alpha"),
        ({"split": (0.8, 0.2)}, ValueError, "split"),
        ({"critic_standardize": "yes"}, TypeError, "critic_standardize"),
    ],
)
def test_bad_options_are_rejected(options: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        TINY.replace(**options)


def test_bad_run_options_are_rejected() -> None:
    with pytest.raises(ValueError, match="threads"):
        RunOptions(threads=-1)


def test_flow_score_matches_the_flow_in_chunks() -> None:
    flow, x = _tiny_flow()
    assert torch.allclose(FlowScore(flow, chunk_size=4).score(x), flow.score(x))
    with pytest.raises(ValueError, match="chunk_size"):
        FlowScore(flow, chunk_size=0)


def test_flow_score_in_standardized_coordinates_is_the_transformed_models_score() -> None:
    flow, x = _tiny_flow()
    shift = torch.randn(16, generator=_gen(4), dtype=x.dtype)
    scale = torch.rand(16, generator=_gen(5), dtype=x.dtype) + 0.5
    u = x.clone().requires_grad_(True)
    log_q_u = flow.log_prob(shift + scale * u) + scale.log().sum()
    (want,) = torch.autograd.grad(log_q_u.sum(), u)
    got = FlowScore(flow, chunk_size=4, shift=shift, scale=scale).score(x)
    assert torch.allclose(got, want, atol=1e-10)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"shift": torch.zeros(3, dtype=torch.float64)}, "shift"),
        ({"scale": torch.zeros(16, dtype=torch.float64)}, "scale"),
        ({"scale": [1.0] * 16}, "scale"),
    ],
)
def test_flow_score_rejects_bad_standardization(kwargs: dict, match: str) -> None:
    flow, _ = _tiny_flow()
    with pytest.raises(ValueError, match=match):
        FlowScore(flow, **kwargs)


def test_score_matching_terms_equal_the_hessian_formula_for_the_same_probes() -> None:
    flow, x = _tiny_flow()
    n_probes = 3
    got = score_matching_terms(flow, x, n_probes=n_probes, chunk_size=100, generator=_gen(7))
    eps = torch.randn(n_probes, x.shape[0], x.shape[1], generator=_gen(7), dtype=x.dtype)
    s = flow.score(x)
    want = []
    for i in range(x.shape[0]):
        hess = torch.autograd.functional.hessian(lambda v: flow.log_prob(v[None])[0], x[i])
        quad = torch.stack([e @ hess @ e for e in eps[:, i]]).mean()
        want.append(0.5 * s[i].pow(2).sum() + quad)
    assert torch.allclose(got, torch.stack(want), atol=1e-8, rtol=1e-8)


def test_score_matching_trace_is_unbiased_for_the_exact_trace() -> None:
    flow, x = _tiny_flow()
    x = x[:2]
    many = 4000
    est = score_matching_terms(flow, x.repeat(many, 1), n_probes=1, chunk_size=4000, generator=_gen(9))
    est = est.reshape(many, 2)
    s = flow.score(x)
    for i in range(2):
        hess = torch.autograd.functional.hessian(lambda v: flow.log_prob(v[None])[0], x[i])
        exact = 0.5 * s[i].pow(2).sum() + torch.trace(hess)
        se = est[:, i].std() / math.sqrt(many)
        assert abs(float(est[:, i].mean() - exact.detach())) < 4 * float(se)


def test_score_matching_terms_reject_bad_arguments() -> None:
    flow, x = _tiny_flow()
    with pytest.raises(ValueError, match="n_probes"):
        score_matching_terms(flow, x, n_probes=0)
    with pytest.raises(ValueError, match="chunk_size"):
        score_matching_terms(flow, x, chunk_size=0)


def test_cli_runs_a_tiny_reproduction_and_its_results_page(tmp_path: Path) -> None:
    from steinkit.cli import main

    out = tmp_path / "run"
    argv = ["reproduce", "flow-eval", "--quick", "--out", str(out), "--dataset", "digits", "--n-stages", "2",
            "--n-blocks", "1", "--hidden-channels", "4", "--checkpoint-steps", "2", "4", "--critic-hidden", "16",
            "--critic-passes", "1", "--sm-probes", "1"]
    assert main(argv) == 0
    saved = json.loads((out / "results.json").read_text())
    assert saved["command"].startswith(f"steinkit reproduce flow-eval --out {out} --quick")
    assert "--checkpoint-steps 2 4" in saved["command"] and saved["settings"]["critic_standardize"] is True
    page = tmp_path / "docs" / "results.md"
    assert main(["results", str(out), "--out", str(page)]) == 0
    assert "**Paper:** Figure 7" in page.read_text() and (page.parent / "figures" / "run" / "flow_eval.png").exists()

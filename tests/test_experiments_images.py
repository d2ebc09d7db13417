"""The image experiment (Sec. 8.2, App. B.6 / C) end to end on 8x8 digits, and its building blocks."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from helpers import gen
from steinkit.cli import main
from steinkit.experiments import images
from steinkit.train import load_checkpoint
from steinkit.experiments._images_common import (
    snapshot_path,
    make_space,
    summarize_history,
    train_in_segments,
)
from steinkit.experiments.runner import trial_folder
from steinkit.experiments.settings import RunOptions
from steinkit.models import MLPEnergy

TINY = images.FULL.replace(
    dataset="digits",
    ebm_steps=6,
    rbm_steps=6,
    ebm_hidden=16,
    critic_hidden=16,
    rbm_critic_hidden=16,
    rbm_hidden=8,
    n_train=300,
    n_test=50,
    n_samples=9,
    sgld_steps=31,
    gibbs_steps=20,
    segment_epochs=1.0,
    n_quality=100,
    classifier_epochs=2,
)
QUIET = RunOptions(progress=False)


def _stage_dir(out, settings, stage):
    return trial_folder(out / "trials", images._stage_config(settings, stage))


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("images")
    return out, images.run(TINY, out, QUIET)


def test_end_to_end_results_and_pngs(tiny_run):
    out, report = tiny_run
    saved = json.loads((out / "results.json").read_text())
    assert saved["experiment"] == "images" and "--quick" not in saved["command"]
    res = saved["results"]
    assert res["dataset"] == {"name": "digits", "n_train": 300, "n_test": 50, "shape": [8, 8]}
    s = saved["settings"]
    assert (s["lam"], s["critic_steps"], s["lr"], s["rbm_lr"], s["sgld_step_size"], s["sgld_noise"]) == (
        10.0, 5, 1e-4, 1e-3, 1.0, 0.01)
    for name in ("ebm", "rbm"):
        st = res["stages"][name]
        assert st["steps"] == 6 and st["diverged_at"] is None and st["resumed_from"] == 0
        assert st["train_seconds_total"] > 0 and st["sampling_seconds"] >= 0
        assert math.isfinite(st["final"]["loss"]) and math.isfinite(st["final"]["lsd"])
        assert math.isfinite(st["held_out_lsd"]["mean"]) and st["held_out_lsd"]["n"] == 50
        for png in st["grids"].values():
            assert (out / png).stat().st_size > 0 and (_stage_dir(out, TINY, name) / png).exists()
    grids = res["stages"]["ebm"]["grids"]
    for sigma in ("0.01", "0.1"):
        for t in (30, 31):
            assert f"sigma={sigma}, {t} steps" in grids
    assert res["stages"]["ebm"]["sgld"]["fraction_finite"] == {"0.01": 1.0, "0.1": 1.0}
    assert set(res["stages"]["rbm"]["grids"]) == {"samples", "means"}
    assert {"data.png", "training_curves.png", "ebm_samples.png", "rbm_samples.png",
            "ebm_sampler_study.png"} <= set(res["pngs"])
    assert all((out / p).exists() for p in res["pngs"]) and all((out / p).exists() for p in saved["figures"])
    assert report["settings"] == saved["settings"] and "EBM finished after 6" in saved["verdict"]
    assert "| ebm | 6 |" in (out / "results.md").read_text()


def test_end_to_end_quality_figures(tiny_run):
    out, report = tiny_run
    quality = report["results"]["quality"]
    assert quality["classifier"]["n_train"] == 300 and 0 <= quality["classifier"]["accuracy"] <= 1
    rows = quality["rows"]
    study = [f"EBM σ={s}, {t} steps" for s in ("0.01", "0.1") for t in (30, 31)]  # in table order
    assert list(rows) == ["real held-out", "Gaussian base", *study, "RBM Gibbs samples", "RBM sample means"]
    for q in rows.values():
        assert q["n"] == 100 and sum(q["histogram"]) == 100 and 0 <= q["covered"] <= 10
        assert 0 <= q["entropy"] <= math.log(10) + 1e-12 and q["frechet"] >= 0 and q["nn_median"] > 0
        assert 0 <= q["saturated"] <= 1
    models = [k for k in rows if k.startswith(("EBM", "RBM"))]
    assert all(math.isfinite(rows[k]["log_q_gap"]) for k in models) and "log_q_gap" not in rows["real held-out"]
    assert all(rows[k]["log_q_nonfinite"] == 0.0 for k in models)
    assert all(math.isfinite(q["log_q_gap"]) for q in quality["curve"].values())
    assert all(rows[k]["step_bound"] > TINY.sgld_step_size for k in models if k.startswith("EBM"))
    assert list(quality["differences"]) == ["σ=0.1 − σ=0.01 at 30 steps", "σ=0.1 − σ=0.01 at 31 steps",
                                            "31 − 30 steps at σ=0.01", "31 − 30 steps at σ=0.1"]
    assert quality["fraction_finite"] == {"0.01": 1.0, "0.1": 1.0}
    clf_dir = trial_folder(out / "trials", images._classifier_config(TINY))
    assert (clf_dir / "classifier.pt").exists()
    md = (out / "results.md").read_text()
    assert "## Sample quality" in md and "## Sampler study (C.2)" in md and "| real held-out | 100 |" in md
    assert "## Where the model's mass is" in md
    verdict = report["verdict"]
    assert "beats the Gaussian base on" in verdict and "sampler study: σ (0.01 vs 0.1 at 31 steps)" in verdict


def test_rerun_reuses_the_stored_stages(tiny_run, monkeypatch):
    out, first = tiny_run
    monkeypatch.setattr(images, "_fit", lambda *a, **k: pytest.fail("a stored stage must not train again"))
    monkeypatch.setattr(images, "train_classifier", lambda *a, **k: pytest.fail("the classifier is cached"))
    again = images.run(TINY, out, QUIET)
    assert again["results"]["stages"] == first["results"]["stages"]
    assert again["results"]["quality"] == first["results"]["quality"]


def test_new_quality_settings_measure_again_without_training(tiny_run, monkeypatch):
    out, first = tiny_run
    monkeypatch.setattr(images, "_fit", lambda *a, **k: pytest.fail("a quality setting must not retrain a stage"))
    monkeypatch.setattr(images, "train_classifier", lambda *a, **k: pytest.fail("the classifier is cached"))
    other = images.run(TINY.replace(n_quality=50), out, QUIET)["results"]
    assert other["stages"] == first["results"]["stages"]
    assert {q["n"] for q in other["quality"]["rows"].values()} == {50}


def test_quality_trial_reports_a_missing_stage_checkpoint(tiny_run, tmp_path):
    out, _ = tiny_run
    config = images._quality_config(TINY, "ebm")
    lonely = tmp_path / "trials"
    clf = trial_folder(lonely, images._classifier_config(TINY))
    clf.mkdir(parents=True)
    (clf / "classifier.pt").write_bytes((trial_folder(out / "trials", images._classifier_config(TINY))
                                         / "classifier.pt").read_bytes())
    with pytest.raises(FileNotFoundError, match="ebm stage's checkpoint"):
        images.quality_trial(config, trial_folder(lonely, config))


def test_a_killed_stage_resumes_from_its_checkpoint(tiny_run):
    out, first = tiny_run
    for name in ("ebm", "rbm"):  # the trial ran to its end but was not stored: it resumes at its last step
        config = images._stage_config(TINY, name)
        st = images.stage_trial(config, _stage_dir(out, TINY, name))
        assert st["resumed_from"] == 6 and st["steps"] == 6
        assert st["final"] == first["results"]["stages"][name]["final"]


def test_a_changed_setting_never_reuses_a_stale_result(tiny_run):
    out, first = tiny_run
    other = images.run(TINY.replace(lam=1.0, stages=("ebm",)), out, QUIET)["results"]["stages"]
    assert set(other) == {"ebm"} and other["ebm"]["resumed_from"] == 0
    assert other["ebm"]["final"] != first["results"]["stages"]["ebm"]["final"]
    # each stage's key holds every setting but the other stage's own
    for name, foreign in (("ebm", images._RBM_ONLY), ("rbm", images._EBM_ONLY)):
        key = images._stage_config(TINY, name)
        fields = {f.name for f in dataclasses.fields(images.Settings)}
        assert set(key) == fields - set(foreign) - set(images._QUALITY_ONLY) - {"stages"} | {"stage", "device"}
    assert images._stage_config(TINY, "rbm") == images._stage_config(TINY.replace(sgld_steps=5), "rbm")


def test_ebm_stage_is_reproducible(tmp_path):
    small = TINY.replace(ebm_steps=2, n_train=100, n_test=10, n_samples=4, sgld_steps=3)
    config = images._stage_config(small, "ebm")
    a = images.stage_trial(config, tmp_path / "a")
    torch.rand(5)  # the global generator's state must not matter
    b = images.stage_trial(config, tmp_path / "b")
    assert a["final"] == b["final"] and a["held_out_lsd"] == b["held_out_lsd"]


def test_cli_rbm_stage_standardized(tmp_path):
    argv = ["reproduce", "images", "--dataset", "digits", "--out", str(tmp_path), "--stages", "rbm",
            "--rbm-steps", "3", "--rbm-hidden", "4", "--rbm-critic-hidden", "8", "--rbm-critic-steps", "1",
            "--n-train", "200", "--n-test", "20", "--n-samples", "4", "--gibbs-steps", "5",
            "--rbm-space", "standardized", "--threads", "1", "--n-quality", "50", "--classifier-epochs", "1"]
    assert main(argv) == 0
    saved = json.loads((tmp_path / "results.json").read_text())["results"]
    assert set(saved["stages"]) == {"rbm"}
    assert "standardization" in saved["stages"]["rbm"]["space"]
    assert (tmp_path / "rbm_samples.png").exists()


def test_cli_uses_one_thread_by_default():
    from steinkit.cli import build_parser
    from steinkit.experiments.settings import settings_from_args

    args = build_parser().parse_args(["reproduce", "images", "--out", "x"])
    settings = settings_from_args(args, images.FULL, images.QUICK)
    assert args.threads == 1 and settings.dataset == "fashion-mnist" and args.quick is False
    assert args.device == "cpu" and settings == images.FULL
    assert build_parser().parse_args(["reproduce", "images", "--out", "x", "--threads", "2"]).threads == 2
    args = build_parser().parse_args(["reproduce", "images", "--out", "x", "--device", "cuda", "--quick"])
    assert args.device == "cuda" and settings_from_args(args, images.FULL, images.QUICK) == images.QUICK


def test_quick_preset_is_the_documented_cpu_preset():
    assert images.QUICK == images.FULL.replace(ebm_steps=600, lr=3e-4, rbm_steps=1500, rbm_critic_hidden=300,
                                               n_test=500, n_samples=64, n_quality=200)
    assert (images.FULL.n_quality, images.FULL.classifier_epochs) == (1000, 5)
    assert (images.FULL.epochs, images.FULL.ebm_steps, images.FULL.rbm_epochs, images.FULL.rbm_steps) == (100, 0, 100, 0)


@pytest.mark.parametrize(
    "options, match",
    [
        ({"dataset": "cifar"}, "dataset"),
        ({"stages": ("gan",)}, "stages"),
        ({"batch_size": 0}, "batch_size"),
        ({"lam": -1.0}, "lam"),
        ({"sgld_noise": -0.1}, "sgld_noise"),
        ({"alpha": 0.5}, "alpha"),
        ({"rbm_space": "pixels"}, "rbm_space"),
        ({"ebm_steps": 0, "epochs": 0.0}, "epochs"),
        ({"n_train": 1}, "n_train"),
    ],
)
def test_bad_options_name_the_argument(options, match):
    with pytest.raises(ValueError, match=match):
        TINY.replace(**options)


def test_unknown_option_is_a_type_error():
    with pytest.raises(TypeError, match="bogus"):
        TINY.replace(bogus=1)


# --------------------------------------------------------------------------- building blocks
@pytest.mark.parametrize("name", ["logit", "standardized"])
def test_space_round_trip_recovers_the_pixels(name):
    pixels = torch.randint(0, 256, (200, 6), generator=gen(0), dtype=torch.uint8)
    space = make_space(name, pixels)
    y = space.encode(pixels, generator=gen(1))
    assert y.dtype == torch.float32 and torch.isfinite(y).all()
    x = space.decode(y)
    levels = torch.floor(x * 256).clamp(0, 255)
    diff = (levels - pixels.float()).abs()
    assert diff.max() <= 1 and (diff == 0).float().mean() > 0.99  # float32 rounding at level edges
    u = space.uniform(1000, 6, generator=gen(2))
    assert torch.isfinite(u).all() and space.decode(u).min() >= 0 and space.decode(u).max() <= 1


def test_standardized_space_has_unit_moments():
    pixels = torch.randint(0, 256, (5000, 3), generator=gen(0), dtype=torch.uint8)
    y = make_space("standardized", pixels).encode(pixels, generator=gen(1))
    # mean 0 / std 1 up to the dequantization noise's sampling error (tiny relative to 4 SE)
    assert y.mean(0).abs().max() < 4 / math.sqrt(5000)
    assert (y.std(0) - 1).abs().max() < 0.05


def test_make_space_rejects_unknown_name():
    with pytest.raises(ValueError, match="space"):
        make_space("pixels", torch.zeros(2, 2, dtype=torch.uint8))


# a tiny segmented LSD training: 60 4-pixel images, segments of 2 updates
_SEGMENTED = dict(segment=2, seed=3, device=torch.device("cpu"), progress=False, method="lsd", batch_size=10,
                  lr=1e-3, critic_steps=1, lam=10.0, log_every=1)


def _tiny_images():
    pixels = torch.randint(0, 256, (60, 4), generator=gen(0), dtype=torch.uint8)
    return pixels, make_space("logit", pixels)


def _fresh_energy():
    torch.manual_seed(0)
    return MLPEnergy(4, hidden=8)


def test_segmented_training_resumes_exactly(tmp_path):
    pixels, space = _tiny_images()
    fresh, kw = _fresh_energy, _SEGMENTED
    a, b = fresh(), fresh()
    res_a, start_a, _ = train_in_segments(a, pixels, space, steps=5, checkpoint=tmp_path / "a.pt", **kw)
    train_in_segments(b, pixels, space, steps=3, checkpoint=tmp_path / "b.pt", **kw)
    b2 = fresh()  # a new process: parameters come from the checkpoint
    res_b, start_b, _ = train_in_segments(b2, pixels, space, steps=5, checkpoint=tmp_path / "b.pt", **kw)
    assert res_a.steps == res_b.steps == 5 and (start_a, start_b) == (0, 3)
    for pa, pb in zip(a.parameters(), b2.parameters()):
        torch.testing.assert_close(pa, pb, rtol=0, atol=0)
    assert [r["loss"] for r in res_a.history] == [r["loss"] for r in res_b.history]


def test_summarize_history_averages_the_tail():
    hist = [{"step": i, "loss": float(i)} for i in range(10)]
    out = summarize_history(hist, keys=("loss", "lsd"), last=4)
    assert out["loss"] == 7.5 and math.isnan(out["lsd"])


def test_segmented_training_keeps_the_asked_snapshots(tmp_path):
    """A snapshot holds the weights of a run stopped at that step, at the end of the segment reaching it."""
    pixels, space = _tiny_images()
    fresh, kw = _fresh_energy, _SEGMENTED
    train_in_segments(fresh(), pixels, space, steps=5, checkpoint=tmp_path / "a" / "c.pt", keep_steps=[2, 3], **kw)
    kept = sorted(p.name for p in (tmp_path / "a").glob("model-step*.pt"))
    assert kept == ["model-step0000002.pt", "model-step0000004.pt"]
    short = fresh()
    train_in_segments(short, pixels, space, steps=4, checkpoint=tmp_path / "b" / "c.pt", **kw)
    snap = load_checkpoint(snapshot_path(tmp_path / "a", 4))
    assert snap["step"] == 4
    for name, p in short.state_dict().items():
        torch.testing.assert_close(snap["model"][name], p, rtol=0, atol=0)


def test_a_step_above_the_base_bound_is_named_and_rerun_at_a_stable_step(tiny_run, tmp_path):
    _, report = tiny_run
    main = images.row_name(TINY.sgld_noise, TINY.sgld_steps)
    bound = report["results"]["quality"]["rows"][main]["step_bound"]
    unstable = TINY.replace(stages=("ebm",), sgld_step_size=1.05 * bound)
    again = images.run(unstable, tmp_path, QUIET)
    rows = again["results"]["quality"]["rows"]
    stable = rows[images.stable_row_name(TINY.sgld_noise, TINY.sgld_steps)]
    assert rows[main]["step_bound"] == pytest.approx(bound) == stable["step_bound"]  # the same weights
    assert stable["step_size"] == pytest.approx(images.STABLE_MARGIN * bound)
    assert stable["n"] == TINY.n_quality and stable["log_q_nonfinite"] == 0.0
    assert "at or above the stability bound" in again["verdict"] and "at a stable step ε" in again["verdict"]
    md = (tmp_path / "results.md").read_text()
    assert "| EBM σ=0.01, 31 steps, stable step | 100 |" in md and "stable SGLD steps" in md
    assert (tmp_path / "ebm_samples_stable.png").stat().st_size > 0 and "ebm_samples_stable.png" in md


def test_quality_curve_along_training(tiny_run):
    out, report = tiny_run
    quality = report["results"]["quality"]
    curve = quality["curve"]
    assert images.curve_steps(TINY, 300) == [3]  # 3 updates per epoch; the end (6) is the main row
    assert list(curve) == [images.curve_name(1), images.curve_name(2)]
    assert [q["epochs"] for q in curve.values()] == [1, 2]
    main = quality["rows"][images.row_name(TINY.sgld_noise, TINY.sgld_steps)]
    assert {k: v for k, v in curve[images.curve_name(2)].items() if k != "epochs"} == main
    assert curve[images.curve_name(1)] != curve[images.curve_name(2)]
    assert (out / "quality_curve.png").stat().st_size > 0
    assert "Sample quality along training" in (out / "results.md").read_text()

"""The steinkit command: test/evaluate a user's model file, reproductions, errors."""

import json

import numpy as np
import pytest

from steinkit.cli import build_parser, main
from steinkit.experiments import model_selection
from steinkit.experiments.settings import settings_from_args

MODEL_FILE = """
import torch
import steinkit as sk

model = sk.models.Gaussian(torch.zeros(2), torch.eye(2))

class Shifted:
    dim = 2
    def score(self, x):
        return -(x - 1.0)
"""


@pytest.fixture
def files(tmp_path):
    (tmp_path / "mymodel.py").write_text(MODEL_FILE)
    rng = np.random.default_rng(0)
    np.save(tmp_path / "samples.npy", rng.standard_normal((300, 2)).astype(np.float32))
    np.savetxt(tmp_path / "samples.csv", rng.standard_normal((300, 2)), delimiter=",")
    return tmp_path


@pytest.mark.parametrize("data", ["samples.npy", "samples.csv"])
def test_test_command_prints_json(files, capsys, data):
    code = main(["test", "--model", f"{files}/mymodel.py:model", "--data", f"{files}/{data}",
                 "--method", "ksd", "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["method"] == "ksd" and 0 <= out["pvalue"] <= 1 and out["reject"] is False


def test_test_command_lsd_with_options_and_class(files, capsys):
    code = main(["test", "--model", f"{files}/mymodel.py:Shifted", "--data", f"{files}/samples.npy", "--method", "lsd",
                 "--option", "n_iters=60", "--option", "hidden=16", "--option", "val_every=20"])
    assert code == 0
    assert "LSD test" in capsys.readouterr().out


def test_test_command_default_with_witness_options(files, capsys):
    """The default (witness) test takes its own options and the critic's beside them."""
    code = main(["test", "--model", f"{files}/mymodel.py:Shifted", "--data", f"{files}/samples.npy", "--json",
                 "--option", "kernel_points=100", "--option", "members=[\"kernel\", \"trained\"]",
                 "--option", "n_iters=30", "--option", "hidden=8"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    names = out["details"]["members"]  # the trained critic, then one statistic per kernel bandwidth
    assert out["method"] == "witnesses" and names[0] == "trained"
    assert len(names) == 7 and all(name.startswith("kernel ") for name in names[1:])


def test_evaluate_command(files, capsys):
    code = main(["evaluate", "--model", f"{files}/mymodel.py:Shifted", "--data", f"{files}/samples.npy",
                 "--option", "n_iters=60", "--option", "hidden=16", "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["value"] > 0 and out["stderr"] > 0
    assert set(out["bounds"]) == {"critic", "linear", "coordinate", "pooled", "interaction"}
    assert out["bounds"][out["source"]] == {"value": out["value"], "stderr": out["stderr"]}  # which one it reports


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "nofile.py:model"], "does not exist"),
        (["--model", "{d}/mymodel.py:missing"], "no attribute"),
        (["--model", "{d}/mymodel.py"], "must look like"),
        (["--data", "{d}/nothing.npy"], "does not exist"),
        (["--option", "oops"], "must look like name=value"),
        (["--alpha", "2"], "alpha must lie in"),
    ],
)
def test_errors_are_reported_cleanly(files, capsys, args, message):
    base = {"--model": f"{files}/mymodel.py:model", "--data": f"{files}/samples.npy"}
    extra = []
    for flag, value in zip(args[::2], args[1::2]):
        if flag in base:
            base[flag] = value.format(d=files)
        else:
            extra += [flag, value]
    argv = ["test", "--method", "ksd"] + [v for kv in base.items() for v in kv] + extra
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_reproduce_gaussian_critic_tiny(tmp_path):
    assert main(["reproduce", "gaussian-critic", "--out", str(tmp_path), "--dim", "5", "--iters", "40",
                 "--batch-size", "64", "--n-eval", "500"]) == 0
    res = json.loads((tmp_path / "results.json").read_text())
    assert set(res["results"]["pairs"]) == {"mean", "scale"} and (tmp_path / "figure3.png").exists()
    assert res["command"].startswith("steinkit reproduce gaussian-critic --out") and "--iters 40" in res["command"]
    assert res["settings"]["dim"] == 5 and "figure3.png" in (tmp_path / "results.md").read_text()
    page = tmp_path / "docs" / "results.md"
    assert main(["results", str(tmp_path), "--out", str(page)]) == 0
    text = page.read_text()
    assert "**Paper:** Figure 3" in text and (page.parent / "figures" / tmp_path.name / "figure3.png").exists()
    assert f"figures/{tmp_path.name}/figure3.png" in text


def test_reproduce_settings_are_checked_before_any_work(tmp_path, capsys):
    assert main(["reproduce", "gaussian-critic", "--out", str(tmp_path), "--dim", "0"]) == 2
    assert "dim must be finite and >= 1" in capsys.readouterr().err
    assert not (tmp_path / "trials.sqlite").exists()


def test_reproduce_model_selection_tiny(tmp_path):
    assert main(["reproduce", "model-selection", "--out", str(tmp_path), "--iters", "60",
                 "--n-fresh", "1000"]) == 0
    res = json.loads((tmp_path / "results.json").read_text())["results"]
    assert res["selected_by_mean_minus_std"]["iteration"] in [h["iteration"] for h in res["history"]]
    assert (tmp_path / "figure10.png").exists() and "figure10.png" in (tmp_path / "results.md").read_text()


def test_reproduce_model_selection_quick_preset_applies():
    args = build_parser().parse_args(["reproduce", "model-selection", "--out", "x", "--quick"])
    quick = settings_from_args(args, model_selection.FULL, model_selection.QUICK)
    assert quick.iters == 1000 and model_selection.FULL.iters == 3000  # the old --iters default hid the preset


def test_demo_tiny(tmp_path, capsys):
    from steinkit.demo import run_demo

    res = run_demo(tmp_path, dx=6, dh=4, n=400, n_iters=30, batch_size=100, progress=False)
    assert len(res["ranking"]) == 4 and (tmp_path / "demo.png").exists()
    assert "rank" in capsys.readouterr().out


def test_every_registered_experiment_has_a_reproduce_command(capsys):
    from steinkit.experiments import EXPERIMENTS, get_experiment

    for name in EXPERIMENTS:
        module = get_experiment(name)
        declared = module.REPRODUCTION
        assert declared.name == name and declared.description
        assert (declared.full, declared.quick, declared.run) == (module.FULL, module.QUICK, module.run)
        with pytest.raises(SystemExit) as exc:
            main(["reproduce", name, "--help"])
        assert exc.value.code == 0
        assert "--quick" in capsys.readouterr().out


def test_float_settings_given_as_ints_share_the_store_key():
    from steinkit.experiments import gaussian_critic

    assert gaussian_critic.FULL.replace(lam=1).to_dict() == gaussian_critic.FULL.replace(lam=1.0).to_dict()
    assert isinstance(gaussian_critic.FULL.replace(lam=1).lam, float)


def _estimate(err: str) -> float:
    """The seconds of the 'about N s here' line on stderr."""
    import re

    match = re.search(r"steinkit: the (?:LSD test|LSD estimate|witness-family test) fits "
                      r"(?:a \d+x\d+ critic|\d+ \d+x\d+ critics \([^)]*\)) for (?:up to )?\d+ steps: "
                      r"about ([\d.]+) (s|min) here", err)
    assert match, err
    return float(match.group(1)) * (60 if match.group(2) == "min" else 1)


def test_lsd_test_states_its_expected_time_and_how_to_shorten_it(files, capsys, monkeypatch):
    """A test that trains its critic (the default does) says, before starting, about how long it
    takes and which options shorten it (the fit itself is replaced by a tiny one here); the
    features protocol, which trains nothing, says nothing."""
    import steinkit.gof
    from steinkit.gof import gof_test

    calls = []

    def tiny(*args, **kwargs):
        calls.append(kwargs)
        return gof_test(*args, **{**kwargs, "n_iters": 20, "hidden": 8})

    monkeypatch.setattr(steinkit.gof, "gof_test", tiny)
    argv = ["test", "--model", f"{files}/mymodel.py:model", "--data", f"{files}/samples.npy", "--json"]
    monkeypatch.setattr(steinkit.gof, "gof_test", lambda *a, **k: calls.append(k) or gof_test(*a, **k))
    assert main(argv + ["--option", "protocol=features", "--option", "hidden=8"]) == 0 and len(calls) == 1
    out, err = capsys.readouterr()
    assert json.loads(out)["method"] == "lsd" and "steinkit: the LSD test fits" not in err
    monkeypatch.setattr(steinkit.gof, "gof_test", tiny)
    assert main(argv) == 0 and len(calls) == 2
    out, err = capsys.readouterr()
    assert json.loads(out)["method"] == "witnesses"  # the default; stdout holds the JSON only
    assert "2x64 critic for 300 steps" in err and "--option n_iters=200 shortens it to about" in err
    assert _estimate(err) > 0
    assert main(argv + ["--option", "protocol=paper"]) == 0 and calls[-1]["protocol"] == "paper"
    err = capsys.readouterr().err
    assert "2x300 critic for 1000 steps" in err and "--option n_iters=200 --option hidden=64 shortens it" in err


def test_lsd_time_estimate_is_of_the_right_size(files, capsys):
    import time

    argv = ["test", "--model", f"{files}/mymodel.py:Shifted", "--data", f"{files}/samples.npy", "--json",
            "--option", "n_iters=100", "--option", "hidden=32", "--option", "protocol=sequential"]
    start = time.perf_counter()
    assert main(argv) == 0
    seconds = time.perf_counter() - start
    err = capsys.readouterr().err
    assert "shortens" not in err  # nothing to suggest below 200 steps of 64 units
    assert seconds / 10 < _estimate(err) < 10 * seconds
    argv = ["evaluate", *argv[1:-2]]  # without the protocol
    assert main(argv) == 0
    err = capsys.readouterr().err  # cross-fitted over 5 folds, with early stopping
    assert "the LSD estimate fits 5 2x32 critics (one per fold) for up to 100 steps" in err and _estimate(err) > 0


COMPARE_FAST = ["--option", "n_iters=60", "--option", "hidden=16", "--option", "val_every=20"]


def test_compare_command_prints_the_ranking_and_pairwise_table(files, capsys):
    argv = ["compare", "--model", f"{files}/mymodel.py:model", "--model", f"{files}/mymodel.py:Shifted",
            "--data", f"{files}/samples.npy", *COMPARE_FAST]
    assert main(argv + ["--json"]) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert [r["name"] for r in out["ranking"]] == [f"{files}/mymodel.py:model", f"{files}/mymodel.py:Shifted"]
    (pair,) = out["pairwise"]
    assert pair["better"] == out["ranking"][0]["name"] and pair["adjusted"] < 0.05 and out["correction"] == "holm"
    assert out["method"] == "optimal"  # both scores differentiable: the pairs by the exact method
    assert "fits 10 2x16 critics (one per model and fold) for up to 60 steps" in captured.err  # 5 folds each
    assert main(argv + ["--witness", str(files / "pics" / "where.png")]) == 0
    assert "holm-adjusted p" in capsys.readouterr().out and (files / "pics" / "where.png").stat().st_size > 0


def test_compare_witness_of_images(tmp_path, capsys):
    (tmp_path / "m.py").write_text("import torch, steinkit as sk\n"
                                   "a = sk.models.Gaussian(torch.zeros(16), torch.eye(16))\n"
                                   "b = sk.models.Gaussian(torch.ones(16), torch.eye(16))\n")
    np.save(tmp_path / "img.npy", np.random.default_rng(0).standard_normal((200, 16)).astype(np.float32))
    argv = ["compare", "--model", f"{tmp_path}/m.py:a", "--model", f"{tmp_path}/m.py:b", "--data",
            f"{tmp_path}/img.npy", "--witness", str(tmp_path / "w.png"), *COMPARE_FAST]
    assert main(argv) == 0 and (tmp_path / "w.png").stat().st_size > 0


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--model", "{d}/mymodel.py:model"], "at least two different models"),
        (["--model", "{d}/mymodel.py:model", "--model", "{d}/mymodel.py:model"], "at least two different models"),
        (["--model", "{d}/mymodel.py:model", "--model", "{d}/mymodel.py:Shifted", "--lam", "0"], "--lam"),
        (["--model", "{d}/mymodel.py:model", "--model", "{d}/mymodel.py:Shifted", "--witness", "{d}/w.png",
          "--data", "{d}/three.npy"], "--witness draws 2-D data"),
    ],
)
def test_compare_errors_come_before_any_fit(files, capsys, extra, message):
    np.save(files / "three.npy", np.zeros((50, 3), dtype=np.float32))
    extra = [e.format(d=files) for e in extra]
    data = [] if "--data" in extra else ["--data", f"{files}/samples.npy"]
    assert main(["compare", *data, *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("steinkit: error:") and message in err and "fits" not in err

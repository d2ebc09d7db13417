"""The command line never prints a traceback for a user's mistake: one line naming the
option or file and a non-zero exit; its JSON is always strictly valid."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np
import pytest

from steinkit.cli import main

MODEL = "import torch, steinkit as sk\nmodel = sk.models.Gaussian(torch.zeros(2), torch.eye(2))\n"


@pytest.fixture
def d(tmp_path):
    (tmp_path / "m.py").write_text(MODEL)
    (tmp_path / "broken.py").write_text("raise RuntimeError('boom')\n")
    (tmp_path / "badclass.py").write_text("class M:\n    def __init__(self):\n        raise KeyError('k')\n")
    np.save(tmp_path / "x.npy", np.random.default_rng(0).standard_normal((50, 2)))
    (tmp_path / "empty.npy").write_bytes(b"")
    (tmp_path / "text.csv").write_text("a,b\n1,x\n")
    np.savez(tmp_path / "two.npz", a=np.zeros((5, 2)), b=np.ones((5, 2)))
    np.save(tmp_path / "nan.npy", np.array([[0.0, np.nan], [1.0, 2.0]]))
    np.save(tmp_path / "three.npy", np.zeros((4, 3)))
    (tmp_path / "x.json").write_text("[]")
    (tmp_path / "afile").write_text("")
    (tmp_path / "numpy_score.py").write_text("def model(x):\n    return -x.numpy()\n")
    return tmp_path


def _test(d, data="x.npy", model="m.py:model", *extra):
    return ["test", "--model", model if model.startswith("/") or ":" not in model or not model.split(":")[0].endswith(".py")
            else f"{d}/{model}", "--data", f"{d}/{data}", "--method", "ksd", *extra]


CASES = {
    "empty npy": (lambda d: _test(d, "empty.npy"), "empty.npy"),
    "text in csv": (lambda d: _test(d, "text.csv"), "text.csv"),
    "several npz arrays": (lambda d: _test(d, "two.npz"), "pick one as"),
    "missing npz key": (lambda d: _test(d, "two.npz:c"), "has no array 'c'"),
    "unknown suffix": (lambda d: _test(d, "x.json"), "must end in one of"),
    "missing data file": (lambda d: _test(d, "nope.npy"), "nope.npy does not exist"),
    "NaN in data": (lambda d: _test(d, "nan.npy"), "NaN"),
    "wrong dimension": (lambda d: _test(d, "three.npy"), "dimension"),
    "no such module": (lambda d: _test(d, model="nosuchmodule:x"), "cannot import module 'nosuchmodule'"),
    "model file raises": (lambda d: _test(d, model="broken.py:model"), "broken.py failed: RuntimeError: boom"),
    "model class raises": (lambda d: _test(d, model="badclass.py:M"), "M() in"),
    "no colon": (lambda d: ["test", "--model", "m.py", "--data", f"{d}/x.npy"], "must look like"),
    "bad option value": (lambda d: _test(d, "x.npy", "m.py:model", "--option", "n_bootstrap=0"), "n_bootstrap"),
    "unknown option": (lambda d: _test(d, "x.npy", "m.py:model", "--option", "nosuch=1"), "nosuch"),
    "alpha outside (0, 1)": (lambda d: _test(d, "x.npy", "m.py:model", "--alpha", "1.5"), "alpha"),
    "out under a file": (lambda d: ["demo", "--out", f"{d}/afile/sub", "--n", "50", "--iters", "5"], "afile"),
    "demo bad iters, before any sampling": (lambda d: ["demo", "--out", f"{d}/demo", "--iters", "-1"], "--iters must be >= 1"),
    "reproduce bad setting": (lambda d: ["reproduce", "gaussian-critic", "--out", f"{d}/r", "--dim", "0"], "dim"),
    # every demo and reproduction flag is checked before any work, in the flag's own name
    "demo bad n": (lambda d: ["demo", "--out", f"{d}/demo", "--n", "0"], "--n must be >= 1"),
    "demo n too small to split": (lambda d: ["demo", "--out", f"{d}/demo", "--n", "5"], "--n is too small"),
    "demo out under a file, named": (lambda d: ["demo", "--out", f"{d}/afile/sub"], "--out '"),
    "reproduce out under a file": (lambda d: ["reproduce", "gaussian-critic", "--out", f"{d}/afile/r"],
                                   "--out '"),
    "reproduce flag name": (lambda d: ["reproduce", "gaussian-critic", "--out", f"{d}/r", "--n-eval", "1"],
                            "--n-eval must be finite and >= 2"),
    "ica dims 0, before the pool": (lambda d: ["reproduce", "ica", "--out", f"{d}/r", "--dims", "0"],
                                    "--dims must be finite and >= 1"),
    "rbm-power dims": (lambda d: ["reproduce", "rbm-power", "--out", f"{d}/r", "--dims", "50:0"],
                       "--dims must list dx or dx:dh"),
    "reproduce jobs 0": (lambda d: ["reproduce", "gaussian-critic", "--out", f"{d}/r", "--jobs", "0"],
                         "--jobs must be a nonzero int"),
    "reproduce threads": (lambda d: ["reproduce", "gaussian-critic", "--out", f"{d}/r", "--threads", "-1"],
                          "--threads must be an int >= 0"),
    "evaluate lam inf": (lambda d: ["evaluate", "--model", f"{d}/m.py:model", "--data", f"{d}/x.npy", "--lam", "inf"],
                         "--lam must be a finite number > 0"),
    "evaluate lam nan": (lambda d: ["evaluate", "--model", f"{d}/m.py:model", "--data", f"{d}/x.npy", "--lam", "nan"],
                         "--lam must be a finite number > 0"),
    "test lam option inf": (lambda d: _test(d, "x.npy", "m.py:model", "--method", "lsd", "--option", "lam=Infinity"),
                            "lam must be a finite number > 0"),
    "score returns a numpy array": (lambda d: _test(d, "x.npy", "numpy_score.py:model"), "numpy"),
    "dask backend without the extra": (lambda d: ["reproduce", "gaussian-critic", "--out", f"{d}/r", "--dim", "2",
                                                  "--iters", "1", "--n-eval", "4", "--batch-size", "4",
                                                  "--backend", "dask", "--jobs", "2"], "pip install steinkit[dask]"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_user_mistake_gives_one_line_naming_it(d, capsys, monkeypatch, case):
    argv, needle = CASES[case]
    if "dask" in case:
        for name in ("dask", "dask.distributed"):
            monkeypatch.setitem(sys.modules, name, None)  # importing a None entry raises ImportError
    assert main(argv(d)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("steinkit: error:") and needle in err and "\n" not in err and "Traceback" not in err


def test_demo_flags_fail_before_any_sampling_or_output(d, capsys):
    """``demo --iters -1`` used to sample for a minute, then name ``n_iters``."""
    start = time.perf_counter()
    assert main(["demo", "--out", f"{d}/demo", "--iters", "-1"]) == 2
    err = capsys.readouterr().err
    assert "--iters must be >= 1, got -1" in err and "n_iters" not in err and "Sampling" not in err
    assert not (d / "demo").exists() and time.perf_counter() - start < 5


def test_reproduce_flags_fail_before_any_work(d):
    assert main(["reproduce", "ica", "--out", f"{d}/ica", "--dims", "0"]) == 2
    assert main(["reproduce", "gaussian-critic", "--out", f"{d}/gc", "--jobs", "0"]) == 2
    assert not (d / "ica").exists() and not (d / "gc").exists()


def test_debug_shows_the_traceback(d):
    with pytest.raises(ValueError):
        main(["--debug", *_test(d, "empty.npy")])


def test_no_traceback_from_the_installed_command(d):
    out = subprocess.run([sys.executable, "-m", "steinkit", *_test(d, "empty.npy")], capture_output=True, text=True)
    assert out.returncode == 2 and "Traceback" not in out.stderr and "empty.npy" in out.stderr


def test_version():
    out = subprocess.run([sys.executable, "-m", "steinkit", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("steinkit ")


def test_json_is_trimmed_and_names_its_inputs(d, capsys):
    assert main(_test(d, "x.npy", "m.py:model", "--json")) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["n"], out["d"], out["method"]) == (50, 2, "ksd") and out["data"].endswith("x.npy")
    assert "bootstrap_statistics" not in out["details"]
    assert main(_test(d, "x.npy", "m.py:model", "--json", "--verbose")) == 0
    assert len(json.loads(capsys.readouterr().out)["details"]["bootstrap_statistics"]) == 1000


def test_evaluate_json_names_its_method_inputs_and_sizes(d, capsys):
    argv = ["evaluate", "--model", f"{d}/m.py:model", "--data", f"{d}/x.npy", "--json",
            "--option", "n_iters=5", "--option", "hidden=4"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["method"], out["n"], out["d"], out["seed"]) == ("lsd", 50, 2, 0) and out["data"].endswith("x.npy")
    assert out["model"].endswith("m.py:model") and out["lam"] == 0.5


def test_csv_header_and_npz_key_are_read(d, capsys):
    (d / "h.csv").write_text("u,v\n" + "\n".join(f"{i % 3},{i % 5}" for i in range(40)))
    assert main(_test(d, "h.csv", "m.py:model", "--json")) == 0
    assert json.loads(capsys.readouterr().out)["n"] == 40
    np.savez(d / "k.npz", x=np.random.default_rng(1).standard_normal((30, 2)), y=np.zeros(3))
    assert main(_test(d, "k.npz:x", "m.py:model", "--json")) == 0
    assert json.loads(capsys.readouterr().out)["n"] == 30


def test_json_output_is_strict_even_with_non_finite_numbers():
    from steinkit._io import json_text

    text = json_text({"statistic": float("nan"), "values": [float("inf"), 1.0]})
    assert json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard token {c}")) == {
        "statistic": None, "values": [None, 1.0]}


def test_a_diverged_critic_is_an_error_never_a_verdict(d, capsys):
    """Data shifted by 0.5 from the model, critic rate 1e6: the test used to print t = 0,
    p = .5, 'do not reject'."""
    np.save(d / "shifted.npy", np.random.default_rng(0).standard_normal((300, 2)) + 0.5)
    argv = ["test", "--model", f"{d}/m.py:model", "--data", f"{d}/shifted.npy", "--method", "lsd", "--json",
            "--option", "lr=1e6", "--option", "n_iters=50"]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "not finite" in captured.err and "lower lr" in captured.err


def test_a_model_file_with_a_dataclass_and_postponed_annotations_loads(d, capsys):
    (d / "dc.py").write_text(
        "from __future__ import annotations\nimport dataclasses, torch\n\n"
        "@dataclasses.dataclass\nclass Model:\n    mu: float = 0.0\n    def score(self, x):\n        return -(x - self.mu)\n\n"
        "model = Model()\n")
    assert main(_test(d, "x.npy", "dc.py:model", "--json")) == 0
    assert json.loads(capsys.readouterr().out)["method"] == "ksd"


def test_a_failed_json_write_leaves_no_temp_file(tmp_path):
    from steinkit._io import write_json

    with pytest.raises(TypeError):
        write_json(tmp_path / "r.json", {(1, 2): 3})
    assert list(tmp_path.iterdir()) == []

"""Core and paper apart: ``import steinkit`` and the ``steinkit`` command's help and tests work
without the paper extra (matplotlib, joblib); what needs it says how to install it."""

import json
import os
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]

# Makes matplotlib and joblib unimportable, as in an install without the paper extra.
BLOCK = """
import importlib.abc, sys
class _NoPaperExtra(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("matplotlib", "joblib"):
            raise ModuleNotFoundError(f"No module named {name!r}")
sys.meta_path.insert(0, _NoPaperExtra())
"""


def _without_paper_extra(code: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-c", BLOCK + textwrap.dedent(code)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)


def test_core_needs_no_paper_extra(tmp_path):
    (tmp_path / "mymodel.py").write_text("import torch, steinkit as sk\n"
                                         "model = sk.models.Gaussian(torch.zeros(2), torch.eye(2))\n")
    np.save(tmp_path / "x.npy", np.random.default_rng(0).standard_normal((200, 2)).astype(np.float32))
    run = _without_paper_extra("""
        import contextlib, io, json, sys
        import steinkit
        print(json.dumps(["matplotlib" in sys.modules, "joblib" in sys.modules]))
        from steinkit.cli import main
        for argv in (["--help"], ["test", "--help"], ["reproduce", "rbm-power", "--help"]):
            with contextlib.redirect_stdout(io.StringIO()) as out:
                try:
                    main(argv)
                except SystemExit as stop:
                    assert stop.code == 0, (argv, stop.code)
            assert "usage: steinkit" in out.getvalue(), argv
        assert main(["test", "--model", "mymodel.py:model", "--data", "x.npy", "--method", "ksd", "--json"]) == 0
        assert main(["reproduce", "toy", "--out", "runs", "--quick"]) == 2
        from steinkit._io import pyplot
        try:
            pyplot()
        except ImportError as err:
            print("pyplot:", err)
        print(json.dumps(["matplotlib" in sys.modules, "joblib" in sys.modules]))
        """, tmp_path)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert json.loads(lines[0]) == [False, False]
    assert json.loads(lines[-1]) == [False, False]
    assert json.loads("\n".join(lines[1:-2]))["method"] == "ksd"
    assert "pip install 'steinkit[paper]'" in lines[-2]
    assert "steinkit reproduce toy needs matplotlib" in run.stderr and "pip install 'steinkit[paper]'" in run.stderr
    assert not (tmp_path / "runs").exists()


def test_paper_extra_holds_the_plotting_and_sweep_packages():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = lambda reqs: {r.split(">")[0].split("=")[0].split("[")[0].split("~")[0].strip() for r in reqs}  # noqa: E731
    assert names(project["dependencies"]) <= {"torch", "numpy", "scipy", "tqdm"}
    extras = project["optional-dependencies"]
    assert names(extras["paper"]) == {"matplotlib", "joblib"}
    assert "steinkit[paper]" in extras["test"]


def test_missing_paper_module_names_the_extra():
    from steinkit._optional import paper_module

    with pytest.raises(ImportError, match=r"plotting needs no_such_plotter, .*pip install 'steinkit\[paper\]'"):
        paper_module("no_such_plotter.pyplot", "plotting")

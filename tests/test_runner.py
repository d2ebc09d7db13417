"""Trial runner: SQLite store round trip, resume after a crash or a kill, backend checks."""

from __future__ import annotations

import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from steinkit.experiments.runner import BACKENDS, TrialStore, canonical_key, run_trials, trial_folder

from helpers import counted, not_a_dict, slow, square, where

SRC = str(Path(__file__).resolve().parents[1] / "src")
TESTS = str(Path(__file__).resolve().parent)


def _executions(log: Path) -> list[int]:
    return [int(line) for line in log.read_text().split()] if log.exists() else []


# --- the store --------------------------------------------------------------------------

def test_canonical_key_ignores_order_and_rejects_non_json():
    assert canonical_key({"a": 1, "b": [1, 2]}) == canonical_key({"b": [1, 2], "a": 1})
    with pytest.raises(TypeError, match="config must be JSON-serializable"):
        canonical_key({"a": object()})
    with pytest.raises(TypeError, match="config must be JSON-serializable"):
        canonical_key({"a": math.nan})
    with pytest.raises(TypeError, match="config must be a dict"):
        canonical_key([1, 2])


def test_store_round_trip(tmp_path):
    path = tmp_path / "sub" / "t.sqlite"
    store = TrialStore(path)
    assert len(store) == 0 and store.get({"a": 1}) is None
    result = {"v": 1.5, "t": math.inf, "nested": {"list": [1, "x", None]}}
    store.put({"a": 1, "b": "x"}, result, started=10.0, finished=12.5)
    store.put({"b": "x", "a": 1}, {"v": 99.0}, started=20.0, finished=21.0)  # same key: first row kept
    again = TrialStore(path)  # reopen
    assert len(again) == 1
    assert again.get({"b": "x", "a": 1}) == result
    assert {"a": 1, "b": "x"} in again and {"a": 2} not in again
    (row,) = again.rows()
    assert row["config"] == {"a": 1, "b": "x"}
    assert (row["started"], row["finished"], row["seconds"]) == (10.0, 12.5, 2.5)
    with sqlite3.connect(path) as con:  # plain SQLite: one row per trial, JSON text
        key, value = con.execute("SELECT key, result FROM trials").fetchone()
    assert json.loads(key) == {"a": 1, "b": "x"} and json.loads(value)["v"] == 1.5


def test_store_rejects_bad_input(tmp_path):
    with pytest.raises(TypeError, match="db_path"):
        TrialStore(3)  # type: ignore[arg-type]
    store = TrialStore(tmp_path / "t.sqlite")
    with pytest.raises(TypeError, match="trial_fn must return a dict"):
        store.put({"a": 1}, [1], started=0.0, finished=1.0)  # type: ignore[arg-type]


# --- running and resuming ---------------------------------------------------------------

def test_run_trials_returns_results_in_config_order_and_skips_stored(tmp_path):
    db = tmp_path / "t.sqlite"
    configs = [{"x": x} for x in (3, 1, 2, 1)]  # duplicate runs once
    assert run_trials(square, configs, db_path=db, progress=False) == [{"y": 9}, {"y": 1}, {"y": 4}, {"y": 1}]
    assert len(TrialStore(db)) == 3
    finished = {json.dumps(r["config"]): r["finished"] for r in TrialStore(db).rows()}
    assert run_trials(square, configs + [{"x": 5}], db_path=db, progress=False)[-1] == {"y": 25}
    after = {json.dumps(r["config"]): r["finished"] for r in TrialStore(db).rows()}
    assert {k: after[k] for k in finished} == finished  # stored rows untouched


def test_crash_keeps_finished_trials_and_rerun_repeats_none(tmp_path):
    db, log, flag = tmp_path / "t.sqlite", tmp_path / "log.txt", tmp_path / "flag"
    flag.touch()
    configs = [{"x": x, "fail_at": 3, "log": str(log), "flag": str(flag)} for x in range(6)]
    with pytest.raises(RuntimeError, match="trial 3 crashed"):
        run_trials(counted, configs, db_path=db, jobs=1, progress=False)
    assert _executions(log) == [0, 1, 2]
    assert sorted(r["config"]["x"] for r in TrialStore(db).rows()) == [0, 1, 2]
    flag.unlink()
    out = run_trials(counted, configs, db_path=db, jobs=1, progress=False)
    assert out == [{"y": 10 * x} for x in range(6)]
    assert sorted(_executions(log)) == list(range(6))  # each trial executed exactly once overall


_SWEEP = textwrap.dedent(
    """
    import sys
    from steinkit.experiments.runner import run_trials
    from helpers import slow

    db, log, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    run_trials(slow, [{"x": x, "log": log} for x in range(n)], db_path=db, jobs=2, progress=False)
    """
)


def _stored(db: Path) -> set[int]:
    if not db.exists():
        return set()
    try:
        with sqlite3.connect(db, timeout=5) as con:
            return {json.loads(k)["x"] for (k,) in con.execute("SELECT key FROM trials")}
    except sqlite3.OperationalError:  # table not created yet
        return set()


def test_killed_sweep_resumes_without_repeating(tmp_path):
    script, db, log, n = tmp_path / "sweep.py", tmp_path / "t.sqlite", tmp_path / "log.txt", 10
    script.write_text(_SWEEP)
    path = os.pathsep.join([SRC, TESTS, os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path}
    cmd = [sys.executable, str(script), str(db), str(log), str(n)]
    proc = subprocess.Popen(cmd, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while len(_stored(db)) < 3:
            assert proc.poll() is None, "sweep ended before it could be killed"
            assert time.monotonic() < deadline, "sweep made no progress"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the sweep and its workers
        proc.wait()
    kept = _stored(db)
    assert 3 <= len(kept) < n
    before = {r["config"]["x"]: r for r in TrialStore(db).rows()}

    configs = [{"x": x, "log": str(log)} for x in range(n)]
    assert run_trials(slow, configs, db_path=db, jobs=1, progress=False) == [{"x": x} for x in range(n)]
    runs = _executions(log)
    assert _stored(db) == set(range(n))
    for x in kept:  # finished before the kill: kept as is, never run again
        assert runs.count(x) == 1
        assert TrialStore(db).get({"x": x, "log": str(log)}) == before[x]["result"]
    for x in set(range(n)) - kept:  # in flight at the kill at most once more
        assert 1 <= runs.count(x) <= 2


def test_workers_use_one_torch_thread_and_parent_is_restored(tmp_path):
    torch.set_num_threads(2)
    (inproc,) = run_trials(where, [{"i": 0}], db_path=tmp_path / "a.sqlite", jobs=1, progress=False)
    assert inproc == {"pid": os.getpid(), "threads": 1}
    assert torch.get_num_threads() == 2
    out = run_trials(where, [{"i": i} for i in range(4)], db_path=tmp_path / "b.sqlite", jobs=2, progress=False)
    assert all(r["threads"] == 1 and r["pid"] != os.getpid() for r in out)


# --- argument checks --------------------------------------------------------------------

@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(backend="spark"), ValueError, "backend must be one of"),
        (dict(jobs=0), ValueError, "jobs must be a nonzero int"),
        (dict(jobs=1.5), TypeError, "jobs must be a nonzero int, got type float"),
        (dict(jobs=True), TypeError, "jobs must be a nonzero int, got type bool"),
        (dict(threads=-1), ValueError, "threads must be an int >= 0"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, error, match):
    with pytest.raises(error, match=match):
        run_trials(square, [{"x": 1}], db_path=tmp_path / "t.sqlite", progress=False, **kwargs)


def test_bad_trial_fn_and_configs(tmp_path):
    db = tmp_path / "t.sqlite"
    with pytest.raises(TypeError, match="trial_fn must be callable"):
        run_trials(3, [{"x": 1}], db_path=db)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="configs must be a sequence of dicts"):
        run_trials(square, {"x": 1}, db_path=db)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="config must be a dict"):
        run_trials(square, [3], db_path=db)  # type: ignore[list-item]
    with pytest.raises(TypeError, match="trial_fn must return a dict"):
        run_trials(not_a_dict, [{"x": 1}], db_path=db, progress=False)  # type: ignore[arg-type]
    assert len(TrialStore(db)) == 0


@pytest.mark.parametrize("backend, modules", [("dask", ["dask", "dask.distributed"]), ("ray", ["ray", "ray.util.joblib"])])
def test_missing_optional_backend_says_what_to_install(tmp_path, monkeypatch, backend, modules):
    for name in modules:
        monkeypatch.setitem(sys.modules, name, None)  # import of a None entry raises ImportError
    with pytest.raises(ImportError, match=rf"pip install steinkit\[{backend}\]"):
        run_trials(square, [{"x": 1}], db_path=tmp_path / "t.sqlite", backend=backend, progress=False)
    assert len(TrialStore(tmp_path / "t.sqlite")) == 0


def test_nothing_pending_needs_no_backend(tmp_path, monkeypatch):
    db = tmp_path / "t.sqlite"
    run_trials(square, [{"x": 2}], db_path=db, progress=False)
    monkeypatch.setitem(sys.modules, "dask", None)
    assert run_trials(square, [{"x": 2}], db_path=db, backend="dask", progress=False) == [{"y": 4}]


@pytest.mark.parametrize("backend", ["dask", "ray"])
def test_optional_backend_runs_and_resumes(tmp_path, backend):
    if backend == "ray":  # optional; dask comes with the test extra, so its run never skips
        pytest.importorskip("ray", reason="ray is not installed")
    db = tmp_path / "t.sqlite"
    out = run_trials(square, [{"x": x} for x in range(4)], db_path=db, jobs=2, backend=backend, progress=False)
    assert out == [{"y": x * x} for x in range(4)]
    assert len(TrialStore(db)) == 4


def test_backends_listed():
    assert BACKENDS == ("loky", "dask", "ray")


def _write_marker(config: dict, folder) -> dict:
    (folder / "marker.txt").write_text(str(config["x"]))
    return {"folder": folder.name}


def test_artifact_folders_are_per_trial_and_keyed_by_config(tmp_path):
    configs = [{"x": 1}, {"x": 2}]
    out = run_trials(_write_marker, configs, db_path=tmp_path / "t.sqlite", artifacts=tmp_path / "trials",
                     progress=False)
    folders = [trial_folder(tmp_path / "trials", c) for c in configs]
    assert [r["folder"] for r in out] == [f.name for f in folders]
    assert [(f / "marker.txt").read_text() for f in folders] == ["1", "2"]
    assert trial_folder(tmp_path, {"x": 1}) != trial_folder(tmp_path, {"x": 1.5})


def test_rerun_says_how_many_trials_were_stored(tmp_path, capsys):
    run_trials(dict, [{"a": 1}], db_path=tmp_path / "t.sqlite", progress=False)
    run_trials(dict, [{"a": 1}, {"a": 2}], db_path=tmp_path / "t.sqlite", progress=True)
    assert "1 of 2 trials already stored" in capsys.readouterr().err

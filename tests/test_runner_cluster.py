"""Sweeps against a separately started cluster: a real ``dask scheduler`` with two ``dask worker``
processes on 127.0.0.1 (one killed mid-sweep), an unreachable address, and a local
``ray start --head`` when ray is installed.

The scheduler and workers run as subprocesses of the venv's Python; the workers import the
trial functions from ``helpers.py`` and steinkit from ``src/`` through their PYTHONPATH.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from steinkit.experiments.runner import TrialStore, canonical_key, resolve_address, run_trials
from steinkit.experiments.settings import RunOptions, add_run_arguments, run_options_from_args

from helpers import napping, refuse, square

SRC = str(Path(__file__).resolve().parents[1] / "src")
TESTS = str(Path(__file__).resolve().parent)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([SRC, TESTS] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.pop("DASK_SCHEDULER_ADDRESS", None)
    env["OMP_NUM_THREADS"] = "1"
    return env


def _stop(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
    for proc in procs:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover
            pass


@pytest.fixture
def dask_cluster(tmp_path):
    """(address, [worker processes]): a scheduler and two one-thread workers (no nanny), stopped after the test."""
    from distributed import Client  # the test extra installs it: never skipped

    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = _worker_env()
    procs: list[subprocess.Popen] = []
    log = open(tmp_path / "cluster.log", "w")
    try:
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", str(port),
             "--no-dashboard"], env=env, stdout=log, stderr=subprocess.STDOUT))
        workers = [
            subprocess.Popen(
                [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1", "--no-nanny",
                 "--no-dashboard", "--memory-limit", "0", "--name", f"w{i}", "--host", "127.0.0.1",
                 "--death-timeout", "60", "--local-directory", str(tmp_path / f"w{i}")], env=env, stdout=log, stderr=subprocess.STDOUT)
            for i in range(2)
        ]
        procs += workers
        with Client(address, timeout=30) as client:
            client.wait_for_workers(2, timeout=60)
        yield address, workers
    finally:
        _stop(procs)
        log.close()


def test_sweep_on_a_running_dask_cluster_survives_a_killed_worker(tmp_path, dask_cluster):
    address, workers = dask_cluster
    db = tmp_path / "trials.sqlite"
    log = tmp_path / "starts.log"
    configs = [{"i": i, "sleep": 0.3, "log": str(log)} for i in range(12)]
    killed: dict[str, int] = {}

    def kill_one_worker_mid_sweep() -> None:
        """Once 3 trials are stored, SIGKILL a worker while it runs a trial (started, not stored)."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            stored = TrialStore(db).rows() if db.exists() else []
            if len(stored) >= 3:
                starts = [line.split() for line in log.read_text().splitlines()]
                done = {r["config"]["i"] for r in stored}
                for worker in workers:
                    running = [int(i) for i, pid in starts if int(pid) == worker.pid and int(i) not in done]
                    if running:
                        worker.send_signal(signal.SIGKILL)
                        killed.update(pid=worker.pid, stored=len(stored), in_flight=running[-1])
                        return
            time.sleep(0.01)

    killer = threading.Thread(target=kill_one_worker_mid_sweep, daemon=True)
    killer.start()
    start = time.monotonic()
    try:
        results = run_trials(napping, configs, db_path=db, backend="dask", address=address, progress=False)
    except RuntimeError as err:  # the cluster gave up on a trial: the message says to rerun
        print(f"first run stopped: {err}")
        assert "rerun" in str(err) and address in str(err)
        results = run_trials(napping, configs, db_path=db, backend="dask", address=address, progress=False)
    elapsed = time.monotonic() - start
    killer.join(timeout=5)
    print(f"cluster sweep: {elapsed:.2f} s; killed worker {killed}")

    assert killed and 3 <= killed["stored"] < len(configs), "the worker was not killed mid-sweep"
    assert workers[0].poll() is not None or workers[1].poll() is not None
    assert [r["config"] for r in results] == configs  # every result, in config order, none lost
    store = TrialStore(db)
    rows = store.rows()
    assert len(rows) == len(configs)  # every trial stored exactly once
    assert sorted(canonical_key(r["config"]) for r in rows) == sorted(canonical_key(c) for c in configs)
    assert all(r["result"]["config"] == r["config"] for r in rows)
    survivor = next(w for w in workers if w.pid != killed["pid"])
    by_trial = {r["config"]["i"]: r["result"]["pid"] for r in rows}
    assert by_trial[killed["in_flight"]] == survivor.pid  # the killed worker's trial in flight ran again

    # a rerun (against the cluster, or locally: the address is not part of the key) runs nothing
    assert run_trials(refuse, configs, db_path=db, backend="dask", address=address, progress=False) == results
    assert run_trials(refuse, configs, db_path=db, progress=False) == results
    assert len(TrialStore(db)) == len(configs)


def test_unreachable_dask_address_fails_fast_naming_it(tmp_path):
    address = f"tcp://127.0.0.1:{_free_port()}"  # nothing listens there
    start = time.monotonic()
    with pytest.raises(ConnectionError, match=re.escape(address)):
        run_trials(square, [{"x": 1}], db_path=tmp_path / "t.sqlite", backend="dask", address=address,
                   progress=False)
    elapsed = time.monotonic() - start
    print(f"unreachable address failed after {elapsed:.2f} s")
    assert elapsed < 30
    assert len(TrialStore(tmp_path / "t.sqlite")) == 0
    with pytest.raises(ValueError, match="invalid dask scheduler address 'nonsense'"):
        run_trials(square, [{"x": 1}], db_path=tmp_path / "t.sqlite", backend="dask", address="nonsense",
                   progress=False)


def test_a_silent_listener_is_not_a_scheduler(tmp_path, monkeypatch):
    """A port that accepts connections and never answers (the dashboard's port, another
    service) fails after the connect timeout instead of hanging."""
    import steinkit.experiments.runner as runner

    monkeypatch.setattr(runner, "CONNECT_TIMEOUT", 2.0)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # the kernel completes the TCP handshake; nobody ever reads or writes
        address = f"tcp://127.0.0.1:{silent.getsockname()[1]}"
        start = time.monotonic()
        with pytest.raises(ConnectionError, match=re.escape(address)):
            run_trials(square, [{"x": 1}], db_path=tmp_path / "t.sqlite", backend="dask", address=address,
                       progress=False)
    assert time.monotonic() - start < 10


def test_address_comes_from_the_option_or_the_environment(monkeypatch):
    import argparse

    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", "tcp://env-host:8786")
    monkeypatch.setenv("RAY_ADDRESS", "env-host:6379")
    assert resolve_address("dask") == "tcp://env-host:8786"
    assert resolve_address("ray") == "env-host:6379"
    assert resolve_address("dask", "tcp://given:1") == "tcp://given:1"
    assert resolve_address("loky") is None  # the environment is read for the cluster backends only
    parser = argparse.ArgumentParser()
    add_run_arguments(parser)
    options = run_options_from_args(parser.parse_args(["--backend", "dask", "--address", "tcp://h:8786"]))
    assert options == RunOptions(backend="dask", address="tcp://h:8786")
    assert run_options_from_args(parser.parse_args([])).address is None
    with pytest.raises(ValueError, match="needs backend 'dask' or 'ray'"):
        RunOptions(address="tcp://h:8786")
    with pytest.raises(ValueError, match="address must be a non-empty string"):
        RunOptions(backend="dask", address=" ")


def test_ray_sweep_on_a_running_local_ray_cluster(tmp_path):
    pytest.importorskip("ray", reason="ray is optional (pip install steinkit[ray])")
    port = _free_port()
    env = _worker_env()
    beside = Path(sys.executable).parent / "ray"  # the environment's own CLI, on PATH or not
    cli = str(beside) if beside.exists() else "ray"
    head = subprocess.Popen(
        [cli, "start", "--head", "--block", "--port", str(port), "--num-cpus", "2", "--include-dashboard=false",
         "--node-ip-address", "127.0.0.1"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        address = f"127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.5)
        configs = [{"i": i, "sleep": 0.1, "log": str(tmp_path / "log")} for i in range(4)]
        db = tmp_path / "t.sqlite"
        results = run_trials(napping, configs, db_path=db, backend="ray", address=address, jobs=2, progress=False)
        assert [r["config"] for r in results] == configs and len(TrialStore(db)) == 4
        assert all(r["in_ray"] and r["pid"] != os.getpid() for r in results)  # on the cluster's workers
        assert run_trials(refuse, configs, db_path=db, progress=False) == results
    finally:
        os.killpg(head.pid, signal.SIGTERM)  # the head's own process group: its raylet, GCS and workers
        try:
            head.wait(timeout=30)
        except subprocess.TimeoutExpired:  # pragma: no cover
            os.killpg(head.pid, signal.SIGKILL)

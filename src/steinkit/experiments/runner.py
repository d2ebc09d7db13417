"""Scale-out of independent trials with a resumable SQLite results store.

An experiment is a list of JSON configs and one pure function ``trial_fn(config) -> dict``.
:func:`run_trials` stores every finished trial as one row of an embedded SQLite file (key: the
config's canonical JSON; value: the result's JSON; plus start/finish timestamps), skips the
configs already stored, and runs the rest through joblib. Rows are written by the parent
process as each trial finishes, so a killed sweep loses only the trials in flight and a rerun
repeats nothing that was stored.

Backends: ``"loky"`` (local processes, the default), ``"dask"`` (a ``distributed.Client``,
``pip install steinkit[dask]``) and ``"ray"`` (``pip install steinkit[ray]``), the last two
through their joblib backends and imported only when selected. Every trial runs with
``torch.set_num_threads(threads)`` (1 by default): the parallelism comes from ``jobs``.

Example:
    >>> import tempfile, os
    >>> def square(config):
    ...     return {"y": config["x"] ** 2}
    >>> db = os.path.join(tempfile.mkdtemp(), "trials.sqlite")
    >>> run_trials(square, [{"x": 1}, {"x": 2}], db_path=db, progress=False)
    [{'y': 1}, {'y': 4}]
    >>> len(TrialStore(db))
    2
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sqlite3
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Mapping, Sequence

if TYPE_CHECKING:
    from .settings import RunOptions

__all__ = ["BACKENDS", "TrialStore", "canonical_key", "trial_folder", "run_trials", "sweep", "check_execution"]

BACKENDS = ("loky", "dask", "ray")

TrialFn = Callable[..., dict]


def canonical_key(config: Mapping[str, Any]) -> str:
    """The canonical JSON of a config: sorted keys, no spaces; the store's primary key.

    Example:
        >>> canonical_key({"b": 1, "a": [1.5, "x"]})
        '{"a":[1.5,"x"],"b":1}'
    """
    if not isinstance(config, Mapping):
        raise TypeError(f"config must be a dict, got {type(config).__name__}")
    try:
        return json.dumps(config, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as err:
        raise TypeError(f"config must be JSON-serializable (finite numbers, str, lists, dicts): {err}") from None


def trial_folder(root: str | os.PathLike, config: Mapping[str, Any] | str) -> Path:
    """The artifact folder of one trial: ``root / <first 16 hex digits of the key's SHA-256>``.

    A trial keeps its checkpoints and arrays there, so a changed setting (a new key) never
    reads another trial's files, and a killed trial finds its own on the rerun.

    Example:
        >>> trial_folder("runs/x/trials", {"a": 1}).name
        '015abd7f5cc57a2d'
    """
    key = config if isinstance(config, str) else canonical_key(config)
    return Path(root) / hashlib.sha256(key.encode()).hexdigest()[:16]


class TrialStore:
    """One SQLite table of finished trials: ``key`` (canonical config JSON) -> result JSON.

    Columns: ``key`` (primary key), ``result`` (JSON), ``started`` and ``finished`` (Unix
    times), ``seconds`` (wall time of the trial in its worker). A key is written once: a
    second :meth:`put` of the same key keeps the first row.

    Arguments:
        path: the SQLite file (created with its parent folder if missing).

    Example:
        >>> import tempfile, os
        >>> store = TrialStore(os.path.join(tempfile.mkdtemp(), "t.sqlite"))
        >>> store.put({"a": 1}, {"v": 2.0}, started=0.0, finished=1.0)
        >>> store.get({"a": 1}), {"a": 1} in store, len(store)
        ({'v': 2.0}, True, 1)
    """

    def __init__(self, path: str | os.PathLike) -> None:
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"db_path must be a str or os.PathLike, got {type(path).__name__}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as con:
            con.execute("PRAGMA journal_mode=WAL")  # readers never block the one writer
            con.execute(
                "CREATE TABLE IF NOT EXISTS trials ("
                " key TEXT PRIMARY KEY, result TEXT NOT NULL,"
                " started REAL NOT NULL, finished REAL NOT NULL, seconds REAL NOT NULL)"
            )

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        con = sqlite3.connect(self.path, timeout=60.0)
        try:
            with con:  # commits on success
                yield con
        finally:
            con.close()

    def put(
        self,
        config: Mapping[str, Any] | str,
        result: Mapping[str, Any] | str,
        *,
        started: float,
        finished: float,
    ) -> None:
        """Store one finished trial (a config or its key; a result dict or its JSON); committed at once."""
        key = config if isinstance(config, str) else canonical_key(config)
        value = result if isinstance(result, str) else _result_json(result)
        with self._connect() as con:
            con.execute(
                "INSERT OR IGNORE INTO trials (key, result, started, finished, seconds) VALUES (?, ?, ?, ?, ?)",
                (key, value, float(started), float(finished), float(finished) - float(started)),
            )

    def get(self, config: Mapping[str, Any] | str) -> dict | None:
        """The stored result of a config (or key), or None."""
        key = config if isinstance(config, str) else canonical_key(config)
        with self._connect() as con:
            row = con.execute("SELECT result FROM trials WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def get_many(self, keys: Iterable[str]) -> dict[str, dict]:
        """Stored results of the given keys (missing keys are left out)."""
        wanted = set(keys)
        with self._connect() as con:
            return {k: json.loads(r) for k, r in con.execute("SELECT key, result FROM trials") if k in wanted}

    def keys(self) -> set[str]:
        """Keys of all stored trials."""
        with self._connect() as con:
            return {k for (k,) in con.execute("SELECT key FROM trials")}

    def rows(self) -> list[dict[str, Any]]:
        """Every stored trial as ``{"config", "result", "started", "finished", "seconds"}``, oldest first."""
        with self._connect() as con:
            cur = con.execute("SELECT key, result, started, finished, seconds FROM trials ORDER BY finished, key")
            return [
                {"config": json.loads(k), "result": json.loads(r), "started": s, "finished": f, "seconds": sec}
                for k, r, s, f, sec in cur
            ]

    def __contains__(self, config: object) -> bool:
        if not isinstance(config, (str, Mapping)):
            return False
        return self.get(config) is not None

    def __len__(self) -> int:
        with self._connect() as con:
            return int(con.execute("SELECT COUNT(*) FROM trials").fetchone()[0])


def _result_json(result: Any) -> str:
    if not isinstance(result, Mapping):
        raise TypeError(f"trial_fn must return a dict, got {type(result).__name__}")
    try:
        return json.dumps(result, sort_keys=True)
    except (TypeError, ValueError) as err:
        raise TypeError(f"trial_fn must return a JSON-serializable dict: {err}") from None


def _execute(
    trial_fn: TrialFn, key: str, threads: int, artifacts: str | None
) -> tuple[str, str, float, float]:
    """Run one trial in a worker: (key, result JSON, started, finished)."""
    import torch

    previous = torch.get_num_threads()
    if threads > 0:
        torch.set_num_threads(threads)
    try:
        started = time.time()
        config = json.loads(key)
        if artifacts is None:
            result = trial_fn(config)
        else:
            folder = trial_folder(artifacts, key)
            folder.mkdir(parents=True, exist_ok=True)
            result = trial_fn(config, folder)
        finished = time.time()
        return key, _result_json(result), started, finished
    finally:
        torch.set_num_threads(previous)


def check_execution(jobs: Any, backend: Any, threads: Any) -> None:
    """Check how trials run: ``jobs`` a nonzero int, ``backend`` in :data:`BACKENDS`, ``threads`` >= 0.

    Example:
        >>> check_execution(2, "loky", 1)
    """
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs == 0:
        raise ValueError(f"jobs must be a nonzero int (negative counts back from the CPU count, as in joblib), got {jobs!r}")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 0:
        raise ValueError(f"threads must be an int >= 0 (0: leave torch's choice), got {threads!r}")


def _check_args(trial_fn: Any, configs: Any, jobs: Any, backend: Any, threads: Any) -> None:
    if not callable(trial_fn):
        raise TypeError(f"trial_fn must be callable, got {type(trial_fn).__name__}")
    if isinstance(configs, (str, bytes, Mapping)) or not isinstance(configs, Iterable):
        raise TypeError(f"configs must be a sequence of dicts, got {type(configs).__name__}")
    check_execution(jobs, backend, threads)


def _missing_extra(backend: str, err: ImportError) -> ImportError:
    return ImportError(
        f"backend={backend!r} needs the optional {backend} dependencies: pip install steinkit[{backend}] "
        f"(import failed: {err})"
    )


@contextlib.contextmanager
def _backend_context(backend: str, jobs: int) -> Iterator[tuple[str, bool]]:
    """Activate a joblib backend; yields (name, whether it streams results as a generator)."""
    import joblib

    if backend == "loky":
        yield "loky", True
        return
    if backend == "dask":
        try:
            from dask.distributed import Client
        except ImportError as err:
            raise _missing_extra("dask", err) from None
        workers = jobs if jobs > 0 else max(1, (os.cpu_count() or 1) + 1 + jobs)
        client = Client(processes=True, n_workers=workers, threads_per_worker=1, dashboard_address=None)
        try:
            with joblib.parallel_config(backend="dask"):
                yield "dask", True
        finally:
            client.close()
        return
    try:
        import ray
        from ray.util.joblib import register_ray
    except ImportError as err:
        raise _missing_extra("ray", err) from None
    register_ray()
    started_here = not ray.is_initialized()
    try:
        with joblib.parallel_config(backend="ray"):
            yield "ray", False  # ray's joblib backend returns whole batches
    finally:
        if started_here:
            ray.shutdown()


def _batches(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def run_trials(
    trial_fn: TrialFn,
    configs: Iterable[Mapping[str, Any]],
    *,
    db_path: str | os.PathLike,
    jobs: int = 1,
    backend: str = "loky",
    progress: bool = True,
    threads: int = 1,
    artifacts: str | os.PathLike | None = None,
) -> list[dict]:
    """Run ``trial_fn`` on every config not yet in the store at ``db_path``; return all results.

    Each config is a JSON-serializable dict identified by its :func:`canonical_key`; configs
    already stored are not run again (duplicates in ``configs`` run once). The others run
    through ``joblib.Parallel(n_jobs=jobs)`` on ``backend`` and each result is committed to
    the SQLite file by this (parent) process as soon as its trial finishes. If a trial
    raises, the error propagates after the trials finished so far are stored; rerunning the
    same call resumes.

    Arguments:
        trial_fn: a pure module-level function ``config -> dict`` (JSON-serializable result);
            it receives a fresh copy of the config decoded from its key.
        configs: the trials to run.
        db_path: SQLite file of the store (created if missing).
        jobs: parallel workers (joblib's ``n_jobs``; 1 runs in this process).
        backend: ``"loky"``, ``"dask"`` (starts a local ``distributed.Client`` with ``jobs``
            one-thread workers) or ``"ray"`` (``ray.util.joblib``; ``ray.init`` on first use).
        progress: show a tqdm bar on stderr.
        threads: torch threads inside each trial (0: leave torch's choice).
        artifacts: a folder for the trials' files; when given, ``trial_fn`` is called as
            ``trial_fn(config, folder)`` with the trial's own :func:`trial_folder` (created).

    Returns:
        The results in the order of ``configs``.

    Example:
        >>> import tempfile, os
        >>> db = os.path.join(tempfile.mkdtemp(), "t.sqlite")
        >>> run_trials(dict, [{"a": 1}], db_path=db, progress=False)
        [{'a': 1}]
    """
    _check_args(trial_fn, configs, jobs, backend, threads)
    keys = [canonical_key(c) for c in configs]
    store = TrialStore(db_path)
    done = store.keys()
    unique = list(dict.fromkeys(keys))
    pending = [k for k in unique if k not in done]
    if progress and len(pending) < len(unique):
        print(f"{len(unique) - len(pending)} of {len(unique)} trials already stored in {store.path}", file=sys.stderr)
    if pending:
        folder = None if artifacts is None else os.fspath(artifacts)
        _run_pending(trial_fn, pending, store, jobs=jobs, backend=backend, progress=progress, threads=threads,
                     artifacts=folder)
    results = store.get_many(keys)
    missing = [k for k in keys if k not in results]
    if missing:  # pragma: no cover - every pending key was stored or an error was raised
        raise RuntimeError(f"trial {missing[0]} has no stored result")
    return [results[k] for k in keys]


def _run_pending(
    trial_fn: TrialFn, pending: list[str], store: TrialStore, *, jobs: int, backend: str, progress: bool,
    threads: int, artifacts: str | None,
) -> None:
    import joblib
    from tqdm.auto import tqdm

    bar = tqdm(total=len(pending), desc="trials", disable=not progress, file=sys.stderr, dynamic_ncols=True)
    try:
        with _backend_context(backend, jobs) as (_, streams):
            if streams:
                # batch_size=1: every trial comes back (and is stored) on its own
                parallel = joblib.Parallel(n_jobs=jobs, return_as="generator_unordered", batch_size=1)
                chunks: Iterable[Sequence[str]] = [pending]
            else:
                width = jobs if jobs > 0 else max(1, (os.cpu_count() or 1) + 1 + jobs)
                parallel = joblib.Parallel(n_jobs=jobs)
                chunks = _batches(pending, 2 * width)
            for chunk in chunks:
                for key, value, started, finished in parallel(
                    joblib.delayed(_execute)(trial_fn, k, threads, artifacts) for k in chunk
                ):
                    store.put(key, value, started=started, finished=finished)
                    bar.update(1)
    finally:
        bar.close()



def sweep(
    trial_fn: TrialFn,
    configs: Iterable[Mapping[str, Any]],
    out: str | os.PathLike,
    options: RunOptions,
    *,
    artifacts: bool = False,
) -> list[dict]:
    """A reproduction's sweep: :func:`run_trials` with the store ``out/trials.sqlite``, the
    trials' folders under ``out/trials/`` when ``artifacts`` is set, and the run options.

    Example:
        >>> import tempfile
        >>> from steinkit.experiments.settings import RunOptions
        >>> sweep(dict, [{"a": 1}], tempfile.mkdtemp(), RunOptions(progress=False))
        [{'a': 1}]
    """
    out = Path(out)
    return run_trials(
        trial_fn,
        configs,
        db_path=out / "trials.sqlite",
        jobs=options.jobs,
        backend=options.backend,
        progress=options.progress,
        threads=options.threads,
        artifacts=out / "trials" if artifacts else None,
    )

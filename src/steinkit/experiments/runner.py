"""Scale-out of independent trials with a resumable SQLite results store.

An experiment is a list of JSON configs and one pure function ``trial_fn(config) -> dict``.
:func:`run_trials` stores every finished trial as one row of an embedded SQLite file (key: the
config's canonical JSON; value: the result's JSON; plus start/finish timestamps), skips the
configs already stored, and runs the rest through joblib. Rows are written by the parent
process as each trial finishes, so a killed sweep loses only the trials in flight and a rerun
repeats nothing that was stored.

Backends: ``"loky"`` (local processes, the default), ``"dask"`` (a ``distributed.Client``,
``pip install steinkit[dask]``) and ``"ray"`` (``pip install steinkit[ray]``), the last two
imported only when selected. Without an ``address`` dask starts a private local cluster and
ray a local instance; with one (or ``DASK_SCHEDULER_ADDRESS`` / ``RAY_ADDRESS`` in the
environment) the sweep goes to that running cluster: its workers only compute, and this
process keeps the store. Every trial runs with ``torch.set_num_threads(threads)`` (1 by
default): the parallelism comes from ``jobs`` (or from the cluster's workers).

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
import importlib
import json
import os
import sqlite3
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Mapping, Sequence

from .._optional import paper_module
from ..validation import wrong_type

if TYPE_CHECKING:
    from .settings import RunOptions

__all__ = [
    "BACKENDS", "ADDRESS_ENV", "TrialStore", "canonical_key", "trial_folder", "run_trials", "sweep", "check_execution",
    "resolve_address",
]

BACKENDS = ("loky", "dask", "ray")

#: The environment variable read for each cluster backend's address when none is given.
ADDRESS_ENV = {"dask": "DASK_SCHEDULER_ADDRESS", "ray": "RAY_ADDRESS"}

#: Seconds allowed to reach a cluster's scheduler before the sweep fails.
CONNECT_TIMEOUT = 10.0

TrialFn = Callable[..., dict]


def canonical_key(config: Mapping[str, Any]) -> str:
    """The canonical JSON of a config: sorted keys, no spaces; the store's primary key.

    Example:
        >>> canonical_key({"b": 1, "a": [1.5, "x"]})
        '{"a":[1.5,"x"],"b":1}'
    """
    if not isinstance(config, Mapping):
        raise wrong_type("config", "a dict", config)
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
            raise wrong_type("db_path", "a str or os.PathLike", path)
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
        raise TypeError(f"trial_fn must return a dict, got type {type(result).__name__}")
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


def check_execution(jobs: Any, backend: Any, threads: Any, address: Any = None) -> None:
    """Check how trials run: ``jobs`` a nonzero int, ``backend`` in :data:`BACKENDS`, ``threads`` >= 0,
    ``address`` None or a non-empty string, given only with the ``"dask"`` or ``"ray"`` backend.

    Example:
        >>> check_execution(2, "loky", 1)
        >>> check_execution(1, "loky", 1, "tcp://10.0.0.1:8786")
        Traceback (most recent call last):
        ...
        ValueError: address 'tcp://10.0.0.1:8786' needs backend 'dask' or 'ray' (a running cluster), got backend 'loky'
    """
    if isinstance(jobs, bool) or not isinstance(jobs, int):
        raise wrong_type("jobs", "a nonzero int", jobs)
    if jobs == 0:
        raise ValueError(
            f"jobs must be a nonzero int (negative counts back from the CPU count, as in joblib), got {jobs!r}")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if isinstance(threads, bool) or not isinstance(threads, int):
        raise wrong_type("threads", "an int >= 0", threads)
    if threads < 0:
        raise ValueError(f"threads must be an int >= 0 (0: leave torch's choice), got {threads!r}")
    if address is not None:
        if not isinstance(address, str):
            raise wrong_type("address", "a string such as 'tcp://HOST:8786'", address)
        if not address.strip():
            raise ValueError(f"address must be a non-empty string such as 'tcp://HOST:8786', got {address!r}")
        if backend not in ADDRESS_ENV:
            raise ValueError(
                f"address {address!r} needs backend 'dask' or 'ray' (a running cluster), got backend {backend!r}")


def resolve_address(backend: str, address: str | None = None) -> str | None:
    """The cluster address a sweep uses: ``address`` if given, else the backend's
    environment variable (:data:`ADDRESS_ENV`) if set, else None (a local cluster).

    Example:
        >>> resolve_address("loky") is None, resolve_address("dask", "tcp://h:8786")
        (True, 'tcp://h:8786')
    """
    if address is not None:
        return address.strip()
    env = ADDRESS_ENV.get(backend)
    value = os.environ.get(env, "").strip() if env else ""
    return value or None


def _workers(jobs: int) -> int:
    """joblib's reading of ``jobs``: a count, or, when negative, counted back from the CPU count."""
    return jobs if jobs > 0 else max(1, (os.cpu_count() or 1) + 1 + jobs)


def _check_args(trial_fn: Any, configs: Any, jobs: Any, backend: Any, threads: Any, address: Any) -> None:
    if not callable(trial_fn):
        raise wrong_type("trial_fn", "callable", trial_fn)
    if isinstance(configs, (str, bytes, Mapping)) or not isinstance(configs, Iterable):
        raise wrong_type("configs", "a sequence of dicts", configs)
    check_execution(jobs, backend, threads, address)


#: The optional modules each backend imports.
_EXTRA_MODULES: dict[str, tuple[str, ...]] = {"dask": ("dask.distributed",), "ray": ("ray", "ray.util.joblib")}


def _require_backend(backend: str) -> None:
    """Import the optional modules ``backend`` needs, so a missing extra fails before any trial
    starts (or progress bar shows) with an ``ImportError`` saying what to install."""
    if backend != "dask":
        paper_module("joblib", f"the sweep engine's {backend} backend")
    for module in _EXTRA_MODULES.get(backend, ()):
        try:
            importlib.import_module(module)
        except ImportError as err:
            raise _missing_extra(backend, err) from None


def _missing_extra(backend: str, err: ImportError) -> ImportError:
    return ImportError(
        f"backend={backend!r} needs the optional {backend} dependencies: pip install steinkit[{backend}] "
        f"(import failed: {err})"
    )


def _unreachable(kind: str, address: str, err: BaseException) -> ConnectionError:
    return ConnectionError(
        f"could not connect to the {kind} at {address!r}: {err} (waited at most {CONNECT_TIMEOUT:g} s). "
        f"Is the cluster running and reachable from this machine? (drop --address and "
        f"{ADDRESS_ENV['dask' if kind.startswith('dask') else 'ray']} for a local cluster)"
    )


def _tcp_endpoint(address: str) -> tuple[str, int] | None:
    """(host, port) of ``[scheme://]host:port``, or None when the address has another form."""
    rest = address.split("://", 1)[-1].rstrip("/")
    host, sep, port = rest.rpartition(":")
    if not sep or not host or not port.isdigit():
        return None
    return host.strip("[]"), int(port)


def _probe(kind: str, address: str) -> None:
    """Fail fast (a TCP connect, :data:`CONNECT_TIMEOUT`) when nothing listens at ``address``."""
    import socket

    endpoint = _tcp_endpoint(address)
    if endpoint is None:
        return
    try:
        socket.create_connection(endpoint, timeout=CONNECT_TIMEOUT).close()
    except OSError as err:
        raise _unreachable(kind, address, err) from None


def _connect_dask(client_class: Any, address: str) -> Any:
    """``Client(address)``, failing within about :data:`CONNECT_TIMEOUT` even when something that
    is not a dask scheduler accepts the connection and never answers (the client's own timeout
    does not cover that case): the client is built in a thread that is waited for."""
    import threading

    box: dict[str, Any] = {}

    def connect() -> None:
        try:
            box["client"] = client_class(address, timeout=CONNECT_TIMEOUT, set_as_default=False)
        except BaseException as err:  # handed to the caller below
            box["error"] = err

    thread = threading.Thread(target=connect, name=f"steinkit-connect-{address}", daemon=True)
    thread.start()
    thread.join(CONNECT_TIMEOUT + 2.0)
    if thread.is_alive():
        raise _unreachable("dask scheduler", address, TimeoutError("no dask handshake"))
    err = box.get("error")
    if isinstance(err, (ValueError, TypeError)):
        raise ValueError(f"invalid dask scheduler address {address!r}: {err}") from None
    if err is not None:  # OSError, TimeoutError, CommClosedError: nothing answered there
        raise _unreachable("dask scheduler", address, err) from None
    return box["client"]


@contextlib.contextmanager
def _dask_client(jobs: int, address: str | None) -> Iterator[Any]:
    """A ``distributed.Client``: connected to the scheduler at ``address``, or a private local cluster."""
    try:
        from dask.distributed import Client
    except ImportError as err:
        raise _missing_extra("dask", err) from None
    if address is None:
        workers = _workers(jobs)
        client = Client(processes=True, n_workers=workers, threads_per_worker=1, dashboard_address=None)
    else:
        if _tcp_endpoint(address) is None and "://" not in address:
            raise ValueError(f"invalid dask scheduler address {address!r}: expected tcp://HOST:PORT")
        _probe("dask scheduler", address)  # a closed port fails at once, not after the client's timeout
        client = _connect_dask(Client, address)
    try:
        yield client
    finally:
        client.close()


@contextlib.contextmanager
def _ray_context(address: str | None) -> Iterator[None]:
    """Activate ray's joblib backend: ``ray.init(address=...)`` on a running cluster, else a local instance."""
    joblib = paper_module("joblib", "the sweep engine")

    try:
        import ray
        from ray.util.joblib import register_ray
    except ImportError as err:
        raise _missing_extra("ray", err) from None
    register_ray()
    started_here = not ray.is_initialized()
    if started_here and address is not None:
        _probe("ray cluster", address)
        try:
            ray.init(address=address)
        except Exception as err:
            raise _unreachable("ray cluster", address, err) from None
    try:
        with joblib.parallel_config(backend="ray"):
            yield  # ray's joblib backend returns whole batches
    finally:
        if started_here:
            ray.shutdown()  # on a running cluster: disconnects this driver only


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
    address: str | None = None,
) -> list[dict]:
    """Run ``trial_fn`` on every config not yet in the store at ``db_path``; return all results.

    Each config is a JSON-serializable dict identified by its :func:`canonical_key`; configs
    already stored are not run again (duplicates in ``configs`` run once). The others run
    on ``backend`` and each result is committed to the SQLite file by this (parent) process
    as soon as its trial finishes. If a trial raises, the error propagates after the trials
    finished so far are stored; rerunning the same call resumes. On a cluster, the trials in
    flight on a worker that dies are run again elsewhere by the scheduler; if the cluster
    gives up (or the scheduler goes away) the sweep stops with a ``RuntimeError`` saying how
    many trials are stored, and a rerun finishes the rest.

    Arguments:
        trial_fn: a pure module-level function ``config -> dict`` (JSON-serializable result);
            it receives a fresh copy of the config decoded from its key. On a cluster the
            workers must be able to import it (and steinkit).
        configs: the trials to run.
        db_path: SQLite file of the store (created if missing; only this process writes it).
        jobs: parallel workers (joblib's ``n_jobs``; 1 runs in this process). Not used on a
            running cluster, whose workers decide.
        backend: ``"loky"`` (joblib), ``"dask"`` (``distributed``: without an address a
            private local cluster of ``jobs`` one-thread workers) or ``"ray"``
            (``ray.util.joblib``; without an address ``ray.init`` of a local instance).
        progress: show a tqdm bar on stderr.
        threads: torch threads inside each trial (0: leave torch's choice).
        artifacts: a folder for the trials' files; when given, ``trial_fn`` is called as
            ``trial_fn(config, folder)`` with the trial's own :func:`trial_folder` (created).
            On a cluster it must be a folder the workers share with this machine.
        address: a running cluster to send the trials to, ``tcp://HOST:8786`` (dask
            scheduler) or ``HOST:6379`` (ray); default: ``DASK_SCHEDULER_ADDRESS`` /
            ``RAY_ADDRESS`` when set, else a local cluster. Not part of any trial's key.
            An address nothing answers at fails within ``CONNECT_TIMEOUT`` (10 s) with a
            ``ConnectionError`` naming it.

    Returns:
        The results in the order of ``configs``.

    Example:
        >>> import tempfile, os
        >>> db = os.path.join(tempfile.mkdtemp(), "t.sqlite")
        >>> run_trials(dict, [{"a": 1}], db_path=db, progress=False)
        [{'a': 1}]
    """
    _check_args(trial_fn, configs, jobs, backend, threads, address)
    address = resolve_address(backend, address)
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
                     artifacts=folder, address=address)
    results = store.get_many(keys)
    missing = [k for k in keys if k not in results]
    if missing:  # pragma: no cover - every pending key was stored or an error was raised
        raise RuntimeError(f"trial {missing[0]} has no stored result")
    return [results[k] for k in keys]


def _run_pending(
    trial_fn: TrialFn, pending: list[str], store: TrialStore, *, jobs: int, backend: str, progress: bool,
    threads: int, artifacts: str | None, address: str | None,
) -> None:
    from tqdm.auto import tqdm

    _require_backend(backend)
    bar = tqdm(total=len(pending), desc="trials", disable=not progress, file=sys.stderr, dynamic_ncols=True)
    try:
        if backend == "dask":
            _run_dask(trial_fn, pending, store, bar, jobs=jobs, threads=threads, artifacts=artifacts, address=address)
        else:
            _run_joblib(trial_fn, pending, store, bar, jobs=jobs, backend=backend, threads=threads,
                        artifacts=artifacts, address=address)
    finally:
        bar.close()


def _run_joblib(
    trial_fn: TrialFn, pending: list[str], store: TrialStore, bar: Any, *, jobs: int, backend: str, threads: int,
    artifacts: str | None, address: str | None,
) -> None:
    joblib = paper_module("joblib", "the sweep engine")

    if backend == "loky":
        # batch_size=1: every trial comes back (and is stored) on its own
        options: dict[str, Any] = {"return_as": "generator_unordered", "batch_size": 1}
        chunks: Iterable[Sequence[str]] = [pending]
        context: contextlib.AbstractContextManager = contextlib.nullcontext()
    else:  # ray's joblib backend returns whole batches: store one batch at a time
        options = {}
        chunks = _batches(pending, 2 * _workers(jobs))
        context = _ray_context(address)
    with context:  # joblib picks its backend when Parallel is made, so it is made inside ray's context
        parallel = joblib.Parallel(n_jobs=jobs, **options)
        for chunk in chunks:
            for key, value, started, finished in parallel(
                joblib.delayed(_execute)(trial_fn, k, threads, artifacts) for k in chunk
            ):
                store.put(key, value, started=started, finished=finished)
                bar.update(1)


def _run_dask(
    trial_fn: TrialFn, pending: list[str], store: TrialStore, bar: Any, *, jobs: int, threads: int,
    artifacts: str | None, address: str | None,
) -> None:
    """Submit every pending trial to a dask client; store each result as it comes back."""
    with _dask_client(jobs, address) as client:
        from dask.distributed import as_completed

        where = f"the dask scheduler at {address!r}" if address else "the local dask cluster"
        futures = {client.submit(_execute, trial_fn, k, threads, artifacts, pure=False) for k in pending}
        stored = 0
        try:
            for future in as_completed(list(futures), loop=client.loop):
                try:
                    key, value, started, finished = future.result()
                except Exception as err:
                    if future.status == "error" and type(err).__name__ != "KilledWorker":
                        raise  # the trial itself raised
                    raise RuntimeError(
                        f"{where} lost a trial ({type(err).__name__}: {err}); {len(store)} trials are stored in "
                        f"{store.path} and {len(pending) - stored} of this run's {len(pending)} are not: "
                        f"rerun the same command to finish them"
                    ) from err
                store.put(key, value, started=started, finished=finished)
                # dropped once stored: a worker that dies later holds nothing the scheduler would recompute
                futures.discard(future)
                future.release()
                stored += 1
                bar.update(1)
        finally:
            with contextlib.suppress(Exception):  # the scheduler may be gone already
                client.cancel(list(futures))


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
        address=options.address,
    )

"""Reproduction settings: one frozen dataclass per reproduction, with its full and quick presets.

Every setting that changes a reproduction's numbers is a field of its ``Settings`` dataclass,
declared once with :func:`setting` (default and help text). The module's ``FULL`` and
``QUICK`` values are the two presets, and the command-line options are generated from the
dataclass by :func:`add_setting_arguments`, so no default is written twice. Options that only
change how a run executes (workers, backend, threads, progress bars, the device) are the
:class:`RunOptions` common to every reproduction and never enter a trial's store key, but for
one exception: trials run off the CPU carry their device in the key (:func:`keyed_on`), as
their random draws come from another stream.

Field types map to options as follows: ``int``, ``float``, ``str`` take one value; ``bool``
gives ``--name/--no-name``; ``tuple[T, ...]`` takes one or more values (``--dims 50 100``);
``Literal[...]`` (or a tuple of them) restricts the values to its members, and so does
``setting(..., choices=f)`` with a function ``f`` giving the allowed values when asked (a
registry's names, say, which may grow after the settings class is defined).

Example:
    >>> import argparse
    >>> @dataclasses.dataclass(frozen=True)
    ... class Demo(ReproductionSettings):
    ...     steps: int = setting(100, "training steps")
    ...     dims: tuple[int, ...] = setting((5, 10), "data dimensions")
    >>> parser = argparse.ArgumentParser()
    >>> add_setting_arguments(parser, Demo(), Demo(steps=10))
    >>> args = parser.parse_args(["--quick", "--dims", "3"])
    >>> settings_from_args(args, Demo(), Demo(steps=10))
    Demo(seed=0, steps=10, dims=(3,))
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
import typing
from typing import Any, Callable, Iterable, Iterator, Literal, Mapping, TypeVar, get_args, get_origin

import torch

from .._argtypes import typed
from ..validation import as_device, parse_device
from .runner import BACKENDS, check_execution, resolve_address

__all__ = [
    "BACKENDS",
    "ReproductionSettings",
    "RunOptions",
    "setting",
    "add_setting_arguments",
    "add_run_arguments",
    "settings_from_args",
    "run_options_from_args",
    "describe_quick",
    "command_line",
    "field_names",
    "keyed_on",
    "trial_device",
]

S = TypeVar("S", bound="ReproductionSettings")


def setting(default: Any, help: str, *, minimum: float | None = None,  # noqa: A002
            choices: Callable[[], Iterable[Any]] | None = None) -> Any:
    """A settings field: its default (the full preset's value), help text, optional lower bound
    and optional allowed values.

    Numbers (and every member of a tuple of numbers) must be finite and at least ``minimum``
    when one is given; values (or members) must be among ``choices()`` when it is given, read
    each time a settings object is built or a parser made. The checks run whenever a settings
    object is built.
    """
    return dataclasses.field(default=default, metadata={"help": help, "minimum": minimum, "choices": choices})


def _type_hints(cls: type) -> dict[str, Any]:
    """The field types of a settings class, each base's annotations read in that base's own module
    (a group of settings may come from another module)."""
    return typing.get_type_hints(cls)


def _element(annotation: Any) -> tuple[Any, bool]:
    """(element type, is a tuple) of a field annotation."""
    if get_origin(annotation) is tuple:
        return get_args(annotation)[0], True
    return annotation, False


def _choices(kind: Any, f: dataclasses.Field | None = None) -> tuple[Any, ...] | None:
    """The allowed values of a field: its ``Literal`` type's members, else its ``choices()``, else None."""
    if get_origin(kind) is Literal:
        return get_args(kind)
    allowed = f.metadata.get("choices") if f is not None else None
    return tuple(allowed()) if allowed is not None else None


def _base_type(kind: Any) -> type:
    choices = _choices(kind)
    return type(choices[0]) if choices else kind


@dataclasses.dataclass(frozen=True)
class ReproductionSettings:
    """Base of every reproduction's settings: a seed, validation of every field, ``replace``."""

    seed: int = setting(0, "seed of every random choice", minimum=0)

    def __post_init__(self) -> None:
        hints = _type_hints(type(self))
        for f in dataclasses.fields(self):
            _check_field(f, hints[f.name], getattr(self, f.name))
            if _base_type(_element(hints[f.name])[0]) is float:  # 1 and 1.0 give one store key
                value = getattr(self, f.name)
                object.__setattr__(self, f.name, tuple(map(float, value)) if isinstance(value, tuple) else float(value))

    def replace(self: S, **changes: Any) -> S:
        """A copy with ``changes``; unknown names raise a ``TypeError`` listing the valid ones."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise TypeError(f"unknown setting(s) {unknown} for {type(self).__name__}; valid: {sorted(names)}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The settings as a JSON-friendly dict (tuples become lists)."""
        return {f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}


def field_names(group: type) -> tuple[str, ...]:
    """The names of the fields a settings class or group of settings declares, its bases' included.

    A reproduction whose trials are keyed on part of its settings declares that part as a group
    (a dataclass its ``Settings`` derives from) and keys the trials on the group's names.

    Example:
        >>> field_names(ReproductionSettings)
        ('seed',)
    """
    return tuple(f.name for f in dataclasses.fields(group))


def _jsonable(value: Any) -> Any:
    return [_jsonable(v) for v in value] if isinstance(value, tuple) else value


def _check_field(f: dataclasses.Field, annotation: Any, value: Any) -> None:
    kind, many = _element(annotation)
    values = value if many else (value,)
    if many and (not isinstance(value, tuple) or not value):
        raise ValueError(f"{f.name} must be a non-empty tuple, got {value!r}")
    base, choices = _base_type(kind), _choices(kind, f)
    for v in values:
        ok = isinstance(v, base) and not (base is not bool and isinstance(v, bool))
        if base is float and isinstance(v, int) and not isinstance(v, bool):
            ok = True
        if not ok:
            raise TypeError(f"{f.name} must be of type {base.__name__}, got {type(v).__name__} ({v!r})")
        if choices is not None and v not in choices:
            raise ValueError(f"{f.name} must be one of {choices}, got {v!r}")
        minimum = f.metadata.get("minimum")
        if base in (int, float) and (not math.isfinite(v) or (minimum is not None and v < minimum)):
            bound = f" and >= {minimum}" if minimum is not None else ""
            raise ValueError(f"{f.name} must be finite{bound}, got {v!r}")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _show(value: Any) -> str:
    return " ".join(map(str, value)) if isinstance(value, tuple) else str(value)


def describe_quick(full: ReproductionSettings, quick: ReproductionSettings) -> str:
    """One line naming every setting the quick preset changes, e.g. ``steps 2000 (full 10000)``.

    Example:
        >>> describe_quick(ReproductionSettings(), ReproductionSettings(seed=1))
        'seed 1 (full 0)'
    """
    changed = [
        f"{f.name} {_show(getattr(quick, f.name))} (full {_show(getattr(full, f.name))})"
        for f in dataclasses.fields(full)
        if getattr(quick, f.name) != getattr(full, f.name)
    ]
    return "; ".join(changed) if changed else "the same settings as the full preset"


def command_line(name: str, settings: ReproductionSettings, full: ReproductionSettings,
                 quick: ReproductionSettings, out: str = "OUT") -> str:
    """The ``steinkit reproduce`` command that gives ``settings``: the nearer preset plus the changes.

    Example:
        >>> command_line("demo", ReproductionSettings(seed=3), ReproductionSettings(), ReproductionSettings())
        'steinkit reproduce demo --out OUT --seed 3'
    """
    base, flag = (quick, " --quick") if settings == quick or (settings != full and quick != full and
                                                            _distance(settings, quick) < _distance(settings, full)) \
        else (full, "")
    changes = "".join(
        _option(f.name, getattr(settings, f.name))
        for f in dataclasses.fields(settings)
        if getattr(settings, f.name) != getattr(base, f.name)
    )
    return f"steinkit reproduce {name} --out {out}{flag}{changes}"


def _option(name: str, value: Any) -> str:
    if isinstance(value, bool):
        return f" {_flag(name if value else 'no_' + name)}"
    return f" {_flag(name)} {_show(value)}"


def _distance(a: ReproductionSettings, b: ReproductionSettings) -> int:
    return sum(getattr(a, f.name) != getattr(b, f.name) for f in dataclasses.fields(a))


def add_setting_arguments(
    parser: argparse.ArgumentParser, full: ReproductionSettings, quick: ReproductionSettings
) -> None:
    """Add ``--quick`` and one option per settings field; each option's default is "the preset's"."""
    parser.add_argument("--quick", action="store_true", help=f"the quick preset: {describe_quick(full, quick)}")
    hints = _type_hints(type(full))
    for f in dataclasses.fields(full):
        kind, many = _element(hints[f.name])
        base, choices = _base_type(kind), _choices(kind, f)
        full_value, quick_value = getattr(full, f.name), getattr(quick, f.name)
        preset = f"full: {_show(full_value)}" + (
            f"; quick: {_show(quick_value)}" if quick_value != full_value else ""
        )
        help_text = f"{f.metadata.get('help', '')} ({preset})".replace("%", "%%")
        if base is bool:
            parser.add_argument(_flag(f.name), action=argparse.BooleanOptionalAction, default=None, help=help_text)
            continue
        parser.add_argument(
            _flag(f.name),
            type=typed(base),
            nargs="+" if many else None,
            choices=choices,
            default=None,
            metavar=None if choices else f.name.upper(),
            help=help_text,
        )


def settings_from_args(args: argparse.Namespace, full: S, quick: S) -> S:
    """The chosen preset (``args.quick``) with every option given on the command line applied.

    A bad value fails here, before any work, naming its flag (``--dims must be ...``).
    """
    preset = quick if getattr(args, "quick", False) else full
    changes = {}
    for f in dataclasses.fields(preset):
        value = getattr(args, f.name, None)
        if value is not None:
            changes[f.name] = tuple(value) if isinstance(value, list) else value
    with _flag_names(f.name for f in dataclasses.fields(preset)):
        return preset.replace(**changes)


@contextlib.contextmanager
def _flag_names(names: Iterable[str]) -> Iterator[None]:
    """Re-raise a ``TypeError``/``ValueError`` whose message starts with one of ``names`` (a
    setting's own check) with that name written as its command-line flag.

    Example:
        >>> with _flag_names(["n_eval"]):
        ...     raise ValueError("n_eval must be >= 2, got 1")
        Traceback (most recent call last):
        ...
        ValueError: --n-eval must be >= 2, got 1
    """
    try:
        yield
    except (TypeError, ValueError) as err:
        text = str(err)
        name = next((n for n in sorted(names, key=len, reverse=True) if text.startswith(n + " ")), None)
        if name is None:
            raise
        raise type(err)(_flag(name) + text[len(name):]) from None


@dataclasses.dataclass(frozen=True)
class RunOptions:
    """How a reproduction executes; none of these change its numbers.

    Attributes:
        jobs: parallel trial workers (joblib's ``n_jobs``; 1 runs in this process).
        backend: ``"loky"`` (local processes), ``"dask"`` or ``"ray"``.
        threads: torch threads per trial (0: leave torch's choice).
        progress: show progress bars on stderr.
        address: a running cluster for backend ``"dask"`` (``tcp://HOST:8786``) or ``"ray"``
            (``HOST:6379``); None: ``DASK_SCHEDULER_ADDRESS`` / ``RAY_ADDRESS`` when set, else a
            local cluster. Never part of a trial's store key.
        device: the torch device every trial computes on (``"cpu"``, ``"cuda"``, ``"cuda:1"``).
            Checked to exist here when the trials run here; on a cluster the workers check it.
            Part of a trial's key when it is not the CPU (:meth:`with_device`).
    """

    jobs: int = 1
    backend: str = "loky"
    threads: int = 1
    progress: bool = True
    address: str | None = None
    device: str = "cpu"

    def __post_init__(self) -> None:
        check_execution(self.jobs, self.backend, self.threads, self.address)
        if not isinstance(self.device, str):
            raise TypeError(f"device must be a str such as 'cuda', got {type(self.device).__name__}")
        if resolve_address(self.backend, self.address) is None:
            as_device(self.device)
        else:  # a cluster's workers may have devices this machine lacks: they check it
            parse_device(self.device)

    def with_device(self, configs: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """The trial configs as the store keys them on this run's device (:func:`keyed_on`).

        Example:
            >>> RunOptions().with_device([{"a": 1}])
            [{'a': 1}]
        """
        return [keyed_on(c, self.device) for c in configs]


def keyed_on(config: Mapping[str, Any], device: str) -> dict[str, Any]:
    """A trial's config as the store keys it when it runs on ``device``: with ``"device"`` added
    unless that is the CPU. A GPU's random draws are another stream than the CPU's, so its
    results are kept apart; CPU keys stay those of runs made before devices were an option.

    Example:
        >>> keyed_on({"a": 1}, "cpu"), keyed_on({"a": 1}, "cuda")
        ({'a': 1}, {'a': 1, 'device': 'cuda'})
    """
    return dict(config) if torch.device(device).type == "cpu" else {**config, "device": device}


def trial_device(config: Mapping[str, Any]) -> torch.device:
    """The device a trial runs on: its config's ``"device"`` (:func:`keyed_on`), else the CPU;
    checked to exist on the machine running the trial.

    Example:
        >>> trial_device({"a": 1})
        device(type='cpu')
    """
    return as_device(config.get("device", "cpu"))


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The execution options every reproduction takes: ``--jobs``, ``--backend``, ``--threads``,
    ``--progress``, ``--device``, ``--address``."""
    parser.add_argument("--jobs", type=typed(int), default=1, help="parallel trial workers (default 1)")
    parser.add_argument("--backend", choices=BACKENDS, default="loky",
                        help="loky (local processes, default), dask or ray (optional extras)")
    parser.add_argument("--threads", type=typed(int), default=1,
                        help="torch threads per trial (default 1; 0: torch's choice)")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True,
                        help="show progress bars on stderr (default on)")
    parser.add_argument("--device", default="cpu",
                        help="torch device every trial computes on, e.g. cuda or cuda:1 (default cpu); trials run "
                             "off the CPU are stored apart from CPU ones")
    parser.add_argument("--address", default=None, metavar="ADDRESS",
                        help="a running cluster for --backend dask (tcp://HOST:8786) or ray (HOST:6379) instead of a "
                             "local one; default: $DASK_SCHEDULER_ADDRESS / $RAY_ADDRESS when set. This machine "
                             "keeps the results store; the cluster's workers only compute")


def run_options_from_args(args: argparse.Namespace) -> RunOptions:
    """The :class:`RunOptions` of parsed command-line arguments (a bad value names its flag)."""
    with _flag_names(("jobs", "backend", "threads", "address", "device")):
        return RunOptions(jobs=args.jobs, backend=args.backend, threads=args.threads,
                          progress=args.progress, address=getattr(args, "address", None), device=args.device)

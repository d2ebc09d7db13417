"""A test's options as a dataclass: names, defaults and help texts, in one place.

A registered goodness-of-fit method (:mod:`steinkit.gof.registry`) describes its keyword
options by a dataclass whose fields carry a help text in ``metadata["help"]`` (as
:class:`~steinkit.settings.CriticSettings` does). A test function's dataclass is read off its
signature by :func:`options_from`, so its defaults are never written twice: the keyword-only
parameters (but ``generator``) with their defaults, and each one's help from the ``Arguments:``
section of its docstring.

Example:
    >>> def shift_test(x, s, *, shift: float = 0.0, generator=None):
    ...     '''Arguments:
    ...         shift: added to the scores
    ...             before testing.
    ...     '''
    >>> Options = options_from(shift_test)
    >>> Options()
    ShiftTestOptions(shift=0.0)
    >>> option_help(Options)
    {'shift': 'added to the scores before testing.'}
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import re
from typing import Any, Callable

__all__ = ["options_from", "option_names", "option_help", "is_options", "SettingsDefault", "with_settings_fields"]

_SKIPPED = ("generator",)  # given by the front end from seed=, never an option


def is_options(cls: Any) -> bool:
    """Whether ``cls`` is a dataclass type (what a method's ``options`` must be)."""
    return isinstance(cls, type) and dataclasses.is_dataclass(cls)


def option_names(cls: type) -> tuple[str, ...]:
    """The options' names, in declaration order."""
    return tuple(f.name for f in dataclasses.fields(cls))


def option_help(cls: type) -> dict[str, str]:
    """Each option's help text (``""`` where none is given)."""
    return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(cls)}


def _argument_help(doc: str | None) -> dict[str, str]:
    """``name: text`` entries of a docstring's ``Arguments:`` section, continuation lines joined."""
    found: dict[str, str] = {}
    lines = inspect.cleandoc(doc or "").splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == "Arguments:"), None)
    if start is None:
        return found
    indent, current = None, []
    for line in lines[start + 1:]:
        if not line.strip():
            continue
        depth = len(line) - len(line.lstrip())
        indent = depth if indent is None else indent
        if depth < indent:
            break
        entry = re.match(r"(\w+(?:, \w+)*):\s*(.*)", line.strip()) if depth == indent else None
        if entry:
            current = entry.group(1).split(", ")
            found.update({name: entry.group(2) for name in current})
        else:
            found.update({name: f"{found[name]} {line.strip()}" for name in current})
    return found


def _target(fn: Callable) -> Callable:
    return fn.func if isinstance(fn, functools.partial) else fn


def options_from(fn: Callable, name: str | None = None) -> type:
    """A frozen dataclass of ``fn``'s keyword-only parameters (but ``generator``): their
    defaults (a ``functools.partial``'s keywords included) and help texts.

    Arguments:
        fn: a test function ``fn(x, s, *, option=default, ..., generator=None)``.
        name: the class's name; default the function's name in CamelCase + ``"Options"``.
    """
    params = inspect.signature(fn).parameters.values()
    helps = _argument_help(_target(fn).__doc__)
    specs = []
    for p in params:
        if p.kind is not p.KEYWORD_ONLY or p.name in _SKIPPED:
            continue
        default = p.default
        if default is inspect.Parameter.empty:
            spec = dataclasses.field(metadata={"help": helps.get(p.name, "")})
        elif getattr(type(default), "__hash__", None) is None:  # a mutable default: copied per instance
            spec = dataclasses.field(default_factory=lambda v=default: type(v)(v),
                                     metadata={"help": helps.get(p.name, "")})
        else:
            spec = dataclasses.field(default=default, metadata={"help": helps.get(p.name, "")})
        specs.append((p.name, Any if p.annotation is p.empty else p.annotation, spec))
    cls_name = name or "".join(w.capitalize() for w in _target(fn).__name__.split("_")) + "Options"
    return dataclasses.make_dataclass(cls_name, specs, frozen=True)


class SettingsDefault:
    """The default of a settings field among a method's options: the method's settings decide it.

    Example:
        >>> SettingsDefault("the protocol's")
        <the protocol's>
    """

    def __init__(self, whose: str) -> None:
        self.whose = whose

    def __repr__(self) -> str:
        return f"<{self.whose}>"


def with_settings_fields(name: str, base: type, settings: type, default: SettingsDefault, module: str) -> type:
    """A frozen dataclass ``name`` with ``base``'s fields and every field of the dataclass
    ``settings`` (help texts kept), each of the latter defaulting to ``default``.

    Example:
        >>> @dataclasses.dataclass(frozen=True)
        ... class Call:
        ...     progress: bool = False
        >>> @dataclasses.dataclass(frozen=True)
        ... class Fit:
        ...     lr: float = dataclasses.field(default=1e-3, metadata={"help": "step size"})
        >>> Options = with_settings_fields("Options", Call, Fit, SettingsDefault("the fit's"), __name__)
        >>> Options(lr=0.1), option_help(Options)["lr"]
        (Options(progress=False, lr=0.1), 'step size')
    """
    fields = [(f.name, f.type, dataclasses.field(default=default, metadata={"help": f.metadata.get("help", "")}))
              for f in dataclasses.fields(settings)]
    return dataclasses.make_dataclass(name, fields, bases=(base,), frozen=True, namespace={"__module__": module})

"""The registry of goodness-of-fit methods: one :class:`GofMethod` per method, in one place.

:func:`steinkit.gof_test`, :func:`steinkit.gof_tests`, ``steinkit test --method``, the contract
tests and the reproductions read the methods from here. Adding a method is one module (its test
function) and one line, ``register(GofMethod(...))``; the built-in methods are registered in
:mod:`steinkit.gof.methods`. :data:`DEFAULT_METHOD` names the method that runs when none is
given.

A method's ``run`` is called in one of two ways:

* ``batched=False``: ``run(x, s, generator=g, **options) -> TestOutcome`` per problem, with the
  data ``x`` (n, d), the model's scores ``s`` at x and a generator seeded from the problem's seed
  (the kernel tests' signature);
* ``batched=True``: ``run(problems, **options) -> list[TestOutcome]`` for every problem at once,
  each a ``(score, x, seed)`` triple (the LSD tests train their critics as one ensemble).

Only the options the caller gave are passed; the rest take ``run``'s own defaults, which the
``options`` dataclass documents (constructing it with the given options checks them first).

Example:
    >>> import torch
    >>> from steinkit.gof.outcome import TestOutcome
    >>> def sign_test(x, s, *, generator=None):
    ...     '''Fraction of positive first scores (a toy).'''
    ...     return TestOutcome(statistic=float((s[:, 0] > 0).double().mean()), pvalue=0.5)
    >>> toy = register(GofMethod("sign", "fraction of positive first scores (a toy)", sign_test))
    >>> "sign" in METHODS, get_method("sign").option_names()
    (True, ())
    >>> unregister("sign") is toy, "sign" in METHODS
    (True, False)
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping, Sequence

from .options import is_options, option_help, option_names, options_from

__all__ = ["GofMethod", "DEFAULT_METHOD", "METHODS", "register", "unregister", "get_method", "registered",
           "describe_methods"]

DEFAULT_METHOD = "witnesses"
"""The method :func:`steinkit.gof_test` runs when ``method`` is None (and ``steinkit test``
without ``--method``); the one place that decides it."""


@dataclass(frozen=True)
class GofMethod:
    """A goodness-of-fit method as the registry holds it.

    Attributes:
        name: what ``method=`` takes (lower case, no spaces).
        description: one line for the command line's help and the tables.
        run: the test (see the module docstring for its two signatures).
        options: a dataclass type of its keyword options (defaults, and help texts in
            ``metadata["help"]``); None: read off ``run``'s signature and docstring
            (:func:`~steinkit.gof.options.options_from`; needs ``batched=False``).
        batched: whether ``run`` takes every problem at once.
        statistic: one line saying what the statistic is and which way is evidence against H0.
    """

    name: str
    description: str
    run: Callable[..., Any]
    options: type | None = None
    batched: bool = False
    statistic: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or self.name != self.name.strip().lower() \
                or " " in self.name:
            raise ValueError(f"name must be a non-empty lower-case str without spaces, got {self.name!r}")
        for key in ("description", "statistic"):
            text = getattr(self, key)
            if not isinstance(text, str) or "\n" in text:
                raise TypeError(f"{key} must be one line of text (a str without newlines), got {text!r}")
        if not self.description:
            raise ValueError("description must say in one line what the test does")
        if not callable(self.run):
            raise TypeError(f"run must be callable, got type {type(self.run).__name__}")
        if not isinstance(self.batched, bool):
            raise TypeError(f"batched must be a bool, got type {type(self.batched).__name__}")
        if self.options is None:
            if self.batched:
                raise TypeError("options must be given (a dataclass type) for a batched method")
            name = "".join(part.capitalize() for part in self.name.replace("_", "-").split("-")) + "Options"
            object.__setattr__(self, "options", options_from(self.run, name))
        elif not is_options(self.options):
            raise TypeError(f"options must be a dataclass type, got {self.options!r}")

    def option_names(self) -> tuple[str, ...]:
        """The names ``gof_test`` accepts as this method's options."""
        return option_names(self.options)  # type: ignore[arg-type]

    def option_help(self) -> dict[str, str]:
        """Each option's help text."""
        return option_help(self.options)  # type: ignore[arg-type]

    def check_options(self, given: Mapping[str, Any]) -> None:
        """Raise a TypeError naming unknown options (with this method's valid ones), then
        construct the options dataclass from ``given`` (its own checks run)."""
        unknown = set(given) - set(self.option_names())
        if unknown:
            raise TypeError(f"unknown option(s) {sorted(unknown)} for method {self.name!r}; "
                            f"valid: {sorted(self.option_names())}")
        self.options(**given)  # type: ignore[misc]


_REGISTRY: dict[str, GofMethod] = {}


def register(method: GofMethod, *, replace: bool = False) -> GofMethod:
    """Add ``method`` to the registry (last in :data:`METHODS`) and return it; a name already
    taken raises a ValueError unless ``replace=True``."""
    if not isinstance(method, GofMethod):
        raise TypeError(f"method must be a GofMethod, got type {type(method).__name__}")
    if method.name in _REGISTRY and not replace:
        raise ValueError(f"a method named {method.name!r} is already registered; pass replace=True to replace it")
    _REGISTRY[method.name] = method
    return method


def unregister(name: str) -> GofMethod:
    """Remove the method ``name`` and return it (a test's toy method, say)."""
    method = get_method(name)
    del _REGISTRY[method.name]
    return method


def get_method(name: str | None = None) -> GofMethod:
    """The registered method ``name``; None gives :data:`DEFAULT_METHOD`. An unknown name
    raises a ValueError listing the registered ones.

    Example:
        >>> get_method().name == DEFAULT_METHOD
        True
    """
    name = DEFAULT_METHOD if name is None else name
    if not isinstance(name, str) or name not in _REGISTRY:
        raise ValueError(f"method must be one of {tuple(_REGISTRY)}, got {name!r}")
    return _REGISTRY[name]


def registered() -> Mapping[str, GofMethod]:
    """A copy of the registry, name to method, in registration order (changing it changes nothing)."""
    return dict(_REGISTRY)


class _Names(Sequence[str]):
    """The registered methods' names, read from the registry at every use (so a method
    registered later is in it)."""

    def __getitem__(self, index: Any) -> Any:
        return tuple(_REGISTRY)[index]

    def __len__(self) -> int:
        return len(_REGISTRY)

    def __iter__(self) -> Iterator[str]:
        return iter(tuple(_REGISTRY))

    def __contains__(self, name: object) -> bool:
        return name in _REGISTRY

    def __eq__(self, other: object) -> bool:
        return tuple(self) == (tuple(other) if isinstance(other, (tuple, list, _Names)) else other)

    def __hash__(self) -> int:
        return id(self)

    def __repr__(self) -> str:
        return repr(tuple(_REGISTRY))


METHODS: Sequence[str] = _Names()
"""The registered methods' names, in registration order (a live view of the registry)."""


def describe_methods(width: int = 79) -> str:
    """The registered methods for a help text: per method its name (``*``: the default) and
    description, then its options, wrapped to ``width`` columns.

    Example:
        >>> print(describe_methods().splitlines()[0])  # doctest: +ELLIPSIS
        lsd: learned Stein discrepancy test...
    """
    lines = []
    for m in _REGISTRY.values():
        star = "*" if m.name == DEFAULT_METHOD else ""
        lines += textwrap.wrap(f"{m.name}{star}: {m.description}", width, subsequent_indent="    ")
        if m.option_names():
            lines += textwrap.wrap("options: " + ", ".join(m.option_names()), width, initial_indent="    ",
                                   subsequent_indent="      ")
    return "\n".join(lines)

"""Command-line value types whose errors say "type": ``--seed a`` gives ``argument --seed:
must be of type int, got 'a'`` instead of argparse's ``invalid int value: 'a'``.

Example:
    >>> import argparse
    >>> parser = argparse.ArgumentParser(prog="demo", exit_on_error=False)
    >>> _ = parser.add_argument("--seed", type=typed(int))
    >>> parser.parse_args(["--seed", "3"]).seed
    3
    >>> parser.parse_args(["--seed", "a"])
    Traceback (most recent call last):
    ...
    argparse.ArgumentError: argument --seed: must be of type int, got 'a'
"""

from __future__ import annotations

import argparse
from typing import Any, Callable

__all__ = ["typed"]


def typed(kind: type) -> Callable[[str], Any]:
    """An argparse ``type=`` that converts with ``kind`` (int, float, str) and reports a value
    it cannot convert as ``must be of type KIND, got 'TEXT'``."""

    def convert(text: str) -> Any:
        try:
            return kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be of type {kind.__name__}, got {text!r}") from None

    convert.__name__ = kind.__name__
    return convert

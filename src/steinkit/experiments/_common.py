"""Small helpers shared by the experiment modules: output folders, JSON, figures."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["prepare_out", "preset", "positive_numbers", "write_json", "pyplot", "markdown_table"]


def prepare_out(out: str | os.PathLike) -> Path:
    """Create the output folder and return it as a Path."""
    path = Path(out)
    path.mkdir(parents=True, exist_ok=True)
    return path


def preset(
    full: dict[str, Any], quick_preset: dict[str, Any], quick: bool, overrides: dict[str, Any]
) -> dict[str, Any]:
    """A copy of the chosen preset with ``overrides`` applied; unknown keys raise.

    Example:
        >>> preset({"a": 1, "b": 2}, {"a": 0, "b": 2}, True, {"b": 3})
        {'a': 0, 'b': 3}
    """
    settings = dict(quick_preset if quick else full)
    unknown = set(overrides) - set(settings)
    if unknown:
        raise ValueError(f"unknown options {sorted(unknown)}; known: {sorted(settings)}")
    settings.update(overrides)
    return settings


def positive_numbers(values: Any, name: str) -> list[float]:
    """A preset's non-empty list of positive finite numbers as floats; anything else raises,
    naming the setting.

    Example:
        >>> positive_numbers([1, 0.5], "gains")
        [1.0, 0.5]
    """
    ok = isinstance(values, (list, tuple)) and len(values) > 0 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0 for v in values
    )
    if not ok:
        raise ValueError(f"{name} must be positive finite numbers, got {values!r}")
    return [float(v) for v in values]


def _clean(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (a unique temp file beside it, then rename); non-finite floats
    become null. Safe when several processes write different files in one folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        json.dump(_clean(data), fh, indent=1)
    os.replace(tmp, path)


def pyplot():
    """matplotlib.pyplot on the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def markdown_table(header: list[str], rows: list[list[Any]]) -> str:
    """A GitHub-style markdown table."""
    fmt = lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"

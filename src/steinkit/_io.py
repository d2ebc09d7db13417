"""Small output helpers shared by the library's runnable parts (demo, experiments): output
folders, atomic JSON, markdown tables, and matplotlib on a non-interactive backend.

Example:
    >>> print(markdown_table(["model", "LSD"], [["a", 0.5]]), end="")
    | model | LSD |
    |---|---|
    | a | 0.5 |
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Mapping

from ._optional import paper_module

__all__ = ["prepare_out", "write_json", "json_text", "pyplot", "save_figure", "markdown_table"]


def prepare_out(out: str | os.PathLike, name: str = "out") -> Path:
    """Create the output folder and return it as a Path; a folder that cannot be created
    raises ``ValueError`` naming the argument (``name``, e.g. ``"--out"``), the path and why.

    Example:
        >>> import tempfile
        >>> file = tempfile.mkstemp()[1]
        >>> prepare_out(file + "/sub", "--out")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: --out '.../sub' cannot be created as a folder: '...' is a file, not a folder
    """
    path = Path(out)
    blocking = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), None)
    if blocking is not None:
        raise ValueError(
            f"{name} {str(path)!r} cannot be created as a folder: {str(blocking)!r} is a file, not a folder"
        )
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"{name} {str(path)!r} cannot be created as a folder: {exc.strerror or exc}") from None
    return path


def _clean(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Mapping):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def json_text(data: Any, *, indent: int = 2) -> str:
    """Strictly valid JSON text: non-finite floats become null (never NaN or Infinity tokens).

    Example:
        >>> json_text({"p": float("nan"), "n": [1, 2.5]}, indent=0).replace("\\n", "")
        '{"p": null, "n": [1, 2.5]}'
    """
    return json.dumps(_clean(data), indent=indent or None, allow_nan=False, default=str)


def write_json(path: Path, data: Any) -> None:
    """Write :func:`json_text` atomically (a unique temp file beside it, then rename). Safe
    when several processes write different files in one folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(json_text(data, indent=1))
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def pyplot():
    """matplotlib.pyplot on the non-interactive Agg backend (an ``ImportError`` naming the paper
    extra when matplotlib is missing)."""
    paper_module("matplotlib", "plotting").use("Agg")
    return paper_module("matplotlib.pyplot", "plotting")


def markdown_table(header: list[str], rows: list[list[Any]]) -> str:
    """A GitHub-style markdown table (floats with 4 significant digits)."""
    fmt = lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def save_figure(fig: Any, path: Any, dpi: int = 120) -> None:
    """Lay out ``fig``, write it to ``path`` and close it (matplotlib keeps open figures)."""
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    pyplot().close(fig)

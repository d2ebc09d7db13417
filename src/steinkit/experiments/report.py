"""Reports of reproductions: ``results.json``, ``results.md`` and figures, and the results page.

Every reproduction ends with :func:`write_report`, which writes into its output folder

* ``results.json``: the experiment's name, the command that reproduces it, its settings, the
  wall time, a one-line verdict against the paper's claim and every recorded number;
* ``results.md``: the same as markdown (command, verdict, tables, figures).

:func:`build_results_page` gathers the reports of several run folders into one markdown page
(``docs/results.md``), in the paper's order, each beside the paper's claim, copying the
figures next to it. ``steinkit results RUN_DIR ... --out docs/results.md`` runs it.

Example:
    >>> import tempfile
    >>> out = Path(tempfile.mkdtemp())
    >>> _ = write_report(out, name="gaussian-critic", command="steinkit reproduce gaussian-critic --quick",
    ...                  settings={"seed": 0}, seconds=1.0, verdict="matches", numbers={"x": 1.0},
    ...                  tables=[("Numbers", markdown_table(["x"], [[1.0]]))])
    >>> sorted(p.name for p in out.iterdir())
    ['results.json', 'results.md']
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

__all__ = ["pyplot", "write_json", "markdown_table", "write_report", "build_results_page"]


def pyplot():
    """matplotlib.pyplot on the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _clean(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, Mapping):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (a unique temp file beside it, then rename); non-finite floats
    become null, so the file is always valid JSON. Safe when several processes write
    different files in one folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        json.dump(_clean(data), fh, indent=1, allow_nan=False)
    os.replace(tmp, path)


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A GitHub-style markdown table; floats with 4 significant digits.

    Example:
        >>> print(markdown_table(["a", "b"], [[1, 0.123456]]), end="")
        | a | b |
        |---|---|
        | 1 | 0.1235 |
    """
    fmt = lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_report(
    out: Path,
    *,
    name: str,
    command: str,
    settings: Mapping[str, Any],
    seconds: float,
    verdict: str,
    numbers: Mapping[str, Any],
    tables: Sequence[tuple[str, str]] = (),
    figures: Sequence[Path] = (),
) -> dict[str, Any]:
    """Write ``results.json`` and ``results.md`` into ``out`` and return the JSON's content.

    Arguments:
        out: the run folder.
        name: the experiment's command name.
        command: the command line that reproduces the run.
        settings: the settings the run used (JSON-friendly).
        seconds: wall time of the run.
        verdict: one line: what the numbers say about the paper's claim.
        numbers: every recorded number (JSON-friendly), stored under ``"results"``.
        tables: (title, markdown table) pairs for ``results.md``.
        figures: image files inside ``out`` to show in ``results.md``.
    """
    out.mkdir(parents=True, exist_ok=True)
    report = {
        "experiment": name,
        "command": command,
        "settings": dict(settings),
        "seconds": seconds,
        "verdict": verdict,
        "figures": [Path(f).name for f in figures],
        "results": dict(numbers),
    }
    write_json(out / "results.json", report)
    (out / "results.md").write_text(_markdown(report, tables), encoding="utf-8")
    return report


def _markdown(report: Mapping[str, Any], tables: Sequence[tuple[str, str]], *, figure_dir: str = "",
              heading: str = "#") -> str:
    lines = [f"{heading} {report['experiment']}", "", f"`{report['command']}` ({_duration(report['seconds'])})", ""]
    lines += [f"**Verdict:** {report['verdict']}", ""]
    for title, table in tables:
        lines += [f"{heading}# {title}", "", table.rstrip("\n"), ""]
    lines += [f"![{Path(f).stem}]({figure_dir}{f})" for f in report["figures"]]
    return "\n".join(lines).rstrip("\n") + "\n"


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def build_results_page(run_dirs: Sequence[Path], out: Path) -> str:
    """Gather the reports of ``run_dirs`` into the markdown page ``out`` and return its text.

    Reports appear in the order of :data:`steinkit.experiments.EXPERIMENTS` (the paper's
    figures), each under the paper's claim (the experiment module's ``PAPER_CLAIM``); their
    figures are copied to ``out.parent / "figures" / <run folder name>``. A folder without a
    ``results.json`` raises a ``ValueError`` naming it.
    """
    from . import EXPERIMENTS, get_experiment

    reports = []
    for run_dir in run_dirs:
        path = Path(run_dir) / "results.json"
        if not path.is_file():
            raise ValueError(f"{run_dir} holds no results.json: run a reproduction into it first")
        reports.append((Path(run_dir), json.loads(path.read_text(encoding="utf-8"))))
    order = list(EXPERIMENTS)
    reports.sort(key=lambda item: (order.index(item[1]["experiment"]) if item[1]["experiment"] in order else 99))
    sections = [
        "# Results",
        "",
        "Generated by `steinkit results " + " ".join(str(d) for d, _ in reports) + f" --out {out}` from the "
        "runs' `results.json` and `results.md`; do not edit by hand. Each section gives the paper's claim, "
        "the command that produced our numbers, and a one-line verdict.",
        "",
    ]
    for run_dir, report in reports:
        module = get_experiment(report["experiment"])
        figure_dir = out.parent / "figures" / run_dir.name
        figure_dir.mkdir(parents=True, exist_ok=True)
        for fig in report.get("figures", []):
            shutil.copyfile(run_dir / fig, figure_dir / fig)
        body = (run_dir / "results.md").read_text(encoding="utf-8")
        body = body.replace("](", f"](figures/{run_dir.name}/") if report.get("figures") else body
        first, _, rest = body.partition("\n")
        sections += [f"#{first}", "", f"**Paper:** {module.PAPER_CLAIM}", "", rest.strip("\n").replace("\n#", "\n##"), ""]
    text = "\n".join(sections).rstrip("\n") + "\n"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    return text

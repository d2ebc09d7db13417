"""Reports of reproductions: ``results.json``, ``results.md`` and figures, and the results page.

Every reproduction ends with :func:`write_report`, which writes into its output folder

* ``results.json``: the experiment's name, the command that reproduces it, its settings, the
  wall time, a one-line verdict against the paper's claim and every recorded number;
* ``results.md``: the same as markdown (command, verdict, tables, figures).

Each report says which budget ran (:func:`budget`: the quick or the full preset, and any setting
changed from it) and states the rule its verdict applies (its declaration's ``verdict_rule``). A run
whose rejection rates rest on too few repetitions to tell a test's size from twice its level
(:func:`too_few_repetitions`) gets no verdict, only its numbers.

:func:`build_results_page` gathers the reports of several run folders into one markdown page
(``docs/results.md``), in the paper's order, each beside the paper's claim, copying the
figures next to it. ``steinkit results RUN_DIR ... --out docs/results.md`` runs it. The page
names no path of the machine it was made on: every command shows its run folder as a relative
path (as given, relative to the current folder, or else ``runs/<folder name>``).

Example:
    >>> import tempfile
    >>> out = Path(tempfile.mkdtemp())
    >>> _ = write_report(out, name="gaussian-critic", command="steinkit reproduce gaussian-critic --quick",
    ...                  settings={"seed": 0}, seconds=1.0, verdict="matches", numbers={"x": 1.0},
    ...                  tables=[("Numbers", markdown_table(["x"], [[1.0]]))])
    >>> sorted(p.name for p in out.iterdir())
    ['results.json', 'results.md']
    >>> print(too_few_repetitions(5, 0.05))
    no verdict: 5 repetitions are too few to judge a rejection rate at α = 0.05 (at least 76 are needed for its binomial standard error to fall below α/2, so that a size of α can be told from 2α)
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from .._io import markdown_table, pyplot, write_json

if TYPE_CHECKING:
    from .reproduction import Reproduction

__all__ = ["pyplot", "write_json", "markdown_table", "write_report", "build_results_page", "budget",
           "too_few_repetitions", "verdict_rule", "portable_path"]


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

    The report also records the run's ``budget`` and the ``verdict_rule`` of the experiment; when
    the settings have ``reps`` and ``alpha`` and the repetitions are too few to judge a rejection
    rate (:func:`too_few_repetitions`), the verdict is replaced by that "no verdict" line.
    """
    out.mkdir(parents=True, exist_ok=True)
    verdict = _judged(verdict, settings)
    report = {
        "experiment": name,
        "command": command,
        "settings": dict(settings),
        "seconds": seconds,
        "budget": budget(name, settings),
        "verdict_rule": verdict_rule(name),
        "verdict": verdict,
        "figures": [Path(f).name for f in figures],
        "results": dict(numbers),
    }
    write_json(out / "results.json", report)
    (out / "results.md").write_text(_markdown(report, tables), encoding="utf-8")
    return report


def _markdown(report: Mapping[str, Any], tables: Sequence[tuple[str, str]], *, figure_dir: str = "",
              heading: str = "#") -> str:
    lines = [f"{heading} {report['experiment']}", "", *_header(report, report["command"])]
    for title, table in tables:
        lines += [f"{heading}# {title}", "", table.rstrip("\n"), ""]
    lines += [f"![{Path(f).stem}]({figure_dir}{f})" for f in report["figures"]]
    return "\n".join(lines).rstrip("\n") + "\n"


def _header(report: Mapping[str, Any], command: str) -> list[str]:
    """The command with its time and budget, and the verdict with its rule."""
    name, settings = report["experiment"], report.get("settings", {})
    spent = budget(name, settings) if settings else report.get("budget", "")
    lines = [f"`{command}` ({_duration(report['seconds'])}{'; ' + spent if spent else ''})", ""]
    rule = verdict_rule(name) or report.get("verdict_rule", "")
    lines += [f"**Verdict:** {_judged(report['verdict'], settings)}", ""]
    lines += [f"*Rule:* {rule}.", ""] if rule else []
    return lines


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _reproduction(name: str) -> Reproduction | None:
    """The declaration of reproduction ``name`` (:mod:`.reproduction`), None for a name not registered."""
    from . import EXPERIMENTS, get_reproduction

    return get_reproduction(name) if name in EXPERIMENTS else None


def verdict_rule(name: str) -> str:
    """The rule a reproduction's verdict applies, with its threshold (its declaration's ``verdict_rule``).

    Example:
        >>> verdict_rule("gaussian-critic")
        'replicates when the learned LSD is within 5% of the closed form for both pairs (|relative error| < 0.05)'
    """
    return getattr(_reproduction(name), "verdict_rule", "")


def budget(name: str, settings: Mapping[str, Any]) -> str:
    """Which budget a run of reproduction ``name`` had: ``"quick preset"`` or ``"full preset"``, or the
    nearer of the two and the settings changed from it.

    Example:
        >>> from steinkit.experiments import rbm_power
        >>> budget("rbm-power", rbm_power.QUICK.to_dict())
        'quick preset'
        >>> budget("rbm-power", rbm_power.FULL.replace(reps=50).to_dict())
        'full preset, changed: reps 50'
    """
    reproduction = _reproduction(name)
    if reproduction is None:
        return ""
    settings = dict(settings)
    presets = {"quick": reproduction.quick.to_dict(), "full": reproduction.full.to_dict()}

    def changed(preset: Mapping[str, Any]) -> list[str]:
        keys = list(dict.fromkeys([*preset, *settings]))
        return [k for k in keys if preset.get(k, _MISSING) != settings.get(k, _MISSING)]

    diffs = {kind: changed(preset) for kind, preset in presets.items()}
    kind = "quick" if len(diffs["quick"]) < len(diffs["full"]) or not diffs["quick"] else "full"
    if not diffs[kind]:
        return f"{kind} preset"
    shown = ", ".join(f"{k} {_shown(settings[k])}" if k in settings else f"{k} (not recorded)" for k in diffs[kind])
    return f"{kind} preset, changed: {shown}"


_MISSING = object()


def _shown(value: Any) -> str:
    return " ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def too_few_repetitions(reps: int, alpha: float) -> str | None:
    """``"no verdict: ..."`` when ``reps`` repetitions cannot judge a rejection rate at level
    ``alpha``, else None.

    A rate from N repetitions has binomial standard error √(α(1 − α)/N) at the level α; below
    N = 4(1 − α)/α (76 at α = 0.05) that is above α/2, so a test's size of α cannot be told from
    2α (one rejection in 5 repetitions is a rate of 0.20), and power differences of a few tenths
    are within noise.
    """
    needed = math.ceil(4 * (1 - alpha) / alpha - 1e-9)
    if reps >= needed:
        return None
    return (f"no verdict: {reps} repetitions are too few to judge a rejection rate at α = {alpha:g} (at least "
            f"{needed} are needed for its binomial standard error to fall below α/2, so that a size of α can be "
            f"told from 2α)")


def _judged(verdict: str, settings: Mapping[str, Any]) -> str:
    """The verdict, or the "no verdict" line of a run whose repetitions are too few."""
    reps, alpha = settings.get("reps"), settings.get("alpha")
    if isinstance(reps, int) and isinstance(alpha, (int, float)) and 0 < alpha < 1:
        return too_few_repetitions(reps, float(alpha)) or verdict
    return verdict


def portable_path(path: str | os.PathLike, *, cwd: Path | None = None) -> str:
    """A run folder as the page shows it: a relative path as given, an absolute one relative to
    ``cwd`` (default: the current folder) when inside it, else ``runs/<folder name>``.

    Example:
        >>> portable_path("runs/fig3"), portable_path("/somewhere/else/fig5", cwd=Path("/home/me"))
        ('runs/fig3', 'runs/fig5')
    """
    p = Path(path)
    if not p.is_absolute():
        return p.as_posix()
    base = (cwd or Path.cwd()).resolve()
    try:
        return p.resolve().relative_to(base).as_posix() or "."
    except ValueError:
        return f"runs/{p.name}"


_PATH_OPTIONS = ("--out", "--flow-run")   # options whose value is a run folder
_ABSOLUTE = re.compile(r"(?<![\w.~/-])(?:/[^\s`'\"()\[\]]+|[A-Za-z]:\\[^\s`'\"]+)")


def _portable_command(command: str, run_dir: Path) -> str:
    """The command with every absolute path made portable: a run folder as :func:`portable_path`
    shows it, the run's own folder as the page names it, any other path as ``DIR``."""
    tokens = command.split(" ")
    for k, token in enumerate(tokens):
        if not _ABSOLUTE.fullmatch(token):
            continue
        option = tokens[k - 1] if k else ""
        if option == "--out":
            tokens[k] = portable_path(run_dir)
        elif option in _PATH_OPTIONS:
            tokens[k] = portable_path(token)
        else:
            shown = portable_path(token)
            tokens[k] = shown if not shown.startswith("runs/") else "DIR"
    return " ".join(tokens)


def build_results_page(run_dirs: Sequence[Path], out: Path) -> str:
    """Gather the reports of ``run_dirs`` into the markdown page ``out`` and return its text.

    Reports appear in the order of :data:`steinkit.experiments.EXPERIMENTS` (the paper's
    figures), each under the paper's claim (its declaration's ``paper_claim``); their figures are
    copied to ``out.parent / "figures" / <run folder name>``; a declaration's ``setup_note``, when
    it has one, says how our set-up differs from the paper's. Each section gives the command
    with the run folder as :func:`portable_path` shows it, the run's budget, its verdict and the
    rule the verdict applies; a run with too few repetitions to judge gets no verdict. A folder
    without a ``results.json`` raises a ``ValueError`` naming it.
    """
    from . import EXPERIMENTS, get_reproduction

    reports = []
    for run_dir in run_dirs:
        path = Path(run_dir) / "results.json"
        if not path.is_file():
            raise ValueError(f"{run_dir} holds no results.json: run a reproduction into it first")
        reports.append((Path(run_dir), json.loads(path.read_text(encoding="utf-8"))))
    order = list(EXPERIMENTS)
    reports.sort(key=lambda item: (order.index(item[1]["experiment"]) if item[1]["experiment"] in order else 99))
    shown_out = portable_path(out)
    sections = [
        "# Results",
        "",
        "Generated by `steinkit results " + " ".join(portable_path(d) for d, _ in reports) + f" --out {shown_out}` "
        "from the runs' `results.json` and `results.md`; do not edit by hand. Each section gives the paper's claim, "
        "the command that produced our numbers (with its budget: the quick or the full preset), a one-line verdict "
        "and the rule the verdict applies. A run with too few repetitions to judge a rejection rate gets no verdict.",
        "",
    ]
    for run_dir, report in reports:
        reproduction = get_reproduction(report["experiment"])
        figure_dir = out.parent / "figures" / run_dir.name
        figure_dir.mkdir(parents=True, exist_ok=True)
        for fig in report.get("figures", []):
            shutil.copyfile(run_dir / fig, figure_dir / fig)
        body = (run_dir / "results.md").read_text(encoding="utf-8")
        body = re.sub(r"(!\[[^\]]*\]\()", rf"\1figures/{run_dir.name}/", body)  # image links only
        sections += [f"## {report['experiment']}", "", f"**Paper:** {reproduction.paper_claim}", ""]
        sections += [f"**Here:** {reproduction.setup_note}", ""] if reproduction.setup_note else []
        sections += _header(report, _portable_command(report["command"], run_dir))
        sections += [("\n" + _tables_and_figures(body)).replace("\n#", "\n##").strip("\n"), ""]
    text = "\n".join(sections).rstrip("\n") + "\n"
    text = _without_machine_paths(text, [d for d, _ in reports])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    return text


def _tables_and_figures(body: str) -> str:
    """A run's ``results.md`` after its heading, command, verdict and rule lines."""
    lines = body.split("\n")
    start = next((k for k, line in enumerate(lines) if line.startswith("## ") or line.startswith("![")), len(lines))
    return "\n".join(lines[start:]).strip("\n")


def _without_machine_paths(text: str, run_dirs: Sequence[Path]) -> str:
    """Replace any remaining mention of a run folder's absolute path by its portable form."""
    for run_dir in run_dirs:
        absolute = str(Path(run_dir).resolve())
        text = text.replace(absolute + "/", portable_path(run_dir) + "/").replace(absolute, portable_path(run_dir))
    return text

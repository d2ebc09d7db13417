"""What a reproduction declares: one :class:`Reproduction`, read by the registry, the command line
and the results page.

Each reproduction module ends with its ``REPRODUCTION``: its command name, the line ``steinkit
reproduce --help`` shows for it, the claim of the paper it checks (shown beside our numbers in
``docs/results.md``), the rule its one-line verdict applies, its two presets, the function that
runs it, and an optional note on how our set-up differs from the paper's. That ``run`` writes its
report through :meth:`Reproduction.write_report`, which records the command that gives the run's
settings.

Example:
    >>> from steinkit.experiments.settings import ReproductionSettings
    >>> demo = Reproduction(name="demo", description="a demo", paper_claim="it works",
    ...                     verdict_rule="replicates when it works", full=ReproductionSettings(),
    ...                     quick=ReproductionSettings(seed=1), run=lambda settings, out, options: {})
    >>> demo.command_line(ReproductionSettings(seed=1), out="runs/demo")
    'steinkit reproduce demo --out runs/demo --quick'
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from .report import write_report
from .settings import ReproductionSettings, RunOptions, command_line

__all__ = ["Reproduction"]


@dataclasses.dataclass(frozen=True)
class Reproduction:
    """One reproduction: what it is called and checks, its presets and how it runs.

    Attributes:
        name: the command name (``steinkit reproduce NAME``), also the ``experiment`` of its reports.
        description: one line for ``steinkit reproduce --help``.
        paper_claim: the claim of the paper it checks.
        verdict_rule: the rule, with its threshold, that its verdict applies.
        full: the full preset (the paper's budget).
        quick: the quick preset (``--quick``), of the same settings class.
        run: ``run(settings, out, options)`` runs it into the folder ``out`` and returns its report
            (the content of ``results.json``).
        setup_note: how our set-up differs from the paper's ("" when it does not).
    """

    name: str
    description: str
    paper_claim: str
    verdict_rule: str
    full: ReproductionSettings
    quick: ReproductionSettings
    run: Callable[[Any, Path, RunOptions], dict[str, Any]]
    setup_note: str = ""

    def __post_init__(self) -> None:
        if type(self.quick) is not type(self.full):
            raise TypeError(f"the quick preset of {self.name!r} is a {type(self.quick).__name__}, "
                            f"its full preset a {type(self.full).__name__}")

    def command_line(self, settings: ReproductionSettings, out: str = "OUT") -> str:
        """The ``steinkit reproduce`` command that gives ``settings`` (:func:`.settings.command_line`)."""
        return command_line(self.name, settings, self.full, self.quick, out=out)

    def write_report(self, out: Path, settings: ReproductionSettings, *, seconds: float, verdict: str,
                     numbers: Mapping[str, Any], tables: Sequence[tuple[str, str]] = (),
                     figures: Sequence[Path] = ()) -> dict[str, Any]:
        """:func:`.report.write_report` for a run of this reproduction with ``settings``: its name,
        the command that gives the settings, and the settings themselves are filled in."""
        return write_report(out, name=self.name, command=self.command_line(settings, out=str(out)),
                            settings=settings.to_dict(), seconds=seconds, verdict=verdict, numbers=numbers,
                            tables=tables, figures=figures)

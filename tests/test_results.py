"""Every public result with a statistic and a p-value unpacks as ``(statistic, pvalue)``."""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil

import steinkit


def _results_with_statistic_and_pvalue() -> list[type]:
    found = {}
    for info in pkgutil.walk_packages(steinkit.__path__, "steinkit."):
        if info.name.endswith("__main__"):  # running it is the command
            continue
        module = importlib.import_module(info.name)
        for name in getattr(module, "__all__", ()):
            obj = getattr(module, name, None)
            if isinstance(obj, type) and dataclasses.is_dataclass(obj):
                fields = {f.name for f in dataclasses.fields(obj)}
                if {"statistic", "pvalue"} <= fields:
                    found[f"{obj.__module__}.{obj.__qualname__}"] = obj
    return list(found.values())


def test_every_result_with_both_unpacks_as_statistic_then_pvalue():
    classes = _results_with_statistic_and_pvalue()
    names = {c.__name__ for c in classes}
    assert {"GofResult", "RelativeResult", "TestOutcome"} <= names, names
    for cls in classes:
        result = object.__new__(cls)  # only the two fields matter here
        object.__setattr__(result, "statistic", 2.5)
        object.__setattr__(result, "pvalue", 0.01)
        statistic, pvalue = result
        assert (statistic, pvalue) == (2.5, 0.01), cls

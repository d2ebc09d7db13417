"""The paper extra's packages (matplotlib, joblib), imported only where they are used.

``import steinkit`` needs torch, numpy, scipy and tqdm; plotting, the sweep engine and the
reproductions also need matplotlib and joblib, installed with ``pip install 'steinkit[paper]'``.

Example:
    >>> paper_module("math", "this example").sqrt(4.0)
    2.0
    >>> paper_module("no_such_module", "this example")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ImportError: this example needs no_such_module, which comes with steinkit's paper extra: ...
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["PAPER_EXTRA", "paper_module", "require_paper"]

#: What installs the paper extra.
PAPER_EXTRA = "pip install 'steinkit[paper]'"

#: The paper extra's packages.
PAPER_PACKAGES = ("matplotlib", "joblib")


def paper_module(name: str, purpose: str) -> ModuleType:
    """Import ``name`` (a module of the paper extra) for ``purpose``; when it is missing, an
    ``ImportError`` that says what needs it and how to install it."""
    try:
        return importlib.import_module(name)
    except ImportError as err:
        raise ImportError(f"{purpose} needs {name.partition('.')[0]}, which comes with steinkit's paper extra: "
                          f"{PAPER_EXTRA} (import failed: {err})") from None


def require_paper(purpose: str) -> None:
    """Fail early, before any work, when a package of the paper extra is missing."""
    for name in PAPER_PACKAGES:
        paper_module(name, purpose)

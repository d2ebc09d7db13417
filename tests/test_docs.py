"""The documentation site builds with warnings as errors, documents every public name, and runs its
tutorials (issue 28). One build, into a temporary folder, serves every check here."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sphinx  # noqa: F401  (the test extra installs the docs packages: a missing one is an error, not a skip)
from sphinx.util.inventory import InventoryFile

import steinkit

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
OUR_TUTORIALS = ("ebm_2d", "compare_models", "image_model", "reproduce_figure")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = dict(os.environ, STEINKIT_DOCS_EXECUTE="force")   # run every tutorial, whatever a cache holds
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
         "-d", str(out / "doctrees"), "-D", f"nb_execution_cache_path={out / 'jupyter_cache'}",
         str(DOCS), str(out / "html")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    warnings = [line for line in done.stderr.splitlines() if "WARNING" in line or "ERROR" in line]
    assert done.returncode == 0, "\n".join(warnings) or done.stderr[-4000:]
    print(f"site built in {time.perf_counter() - start:.0f} s")
    return out / "html"


def _inventory(site: Path) -> dict[str, dict]:
    with open(site / "objects.inv", "rb") as f:
        inv = InventoryFile.load(f, "", lambda base, uri: uri)
    return {kind: dict(entries) for kind, entries in inv.data.items()} if hasattr(inv, "data") else inv


def test_every_public_name_has_an_api_entry(site):
    inventory = _inventory(site)
    documented = {name for kind, entries in inventory.items() if kind.startswith("py:") for name in entries}
    missing = [name for name in steinkit.__all__ if f"steinkit.{name}" not in documented]
    assert not missing, f"names of steinkit.__all__ without an entry in the API reference: {missing}"


def test_the_tutorials_ran_and_their_figures_are_in_the_build(site):
    executed = {}
    for page in sorted((site / "tutorials").glob("*.html")):
        html = page.read_text(encoding="utf-8")
        outputs = html.count('class="cell_output')
        images = [src for src in re.findall(r'<img[^>]+src="([^"]+)"', html) if "_images/" in src]
        files = [(page.parent / src).resolve() for src in images]
        assert all(f.is_file() and f.stat().st_size > 2000 for f in files), page.name
        assert "Traceback" not in html, page.name
        if outputs and files:
            executed[page.stem] = len(files)
    assert set(OUR_TUTORIALS) <= set(executed), executed   # their sources hold no outputs: these ran now
    assert len(executed) >= 4


def test_the_reference_pages_were_built(site):
    for page in ("index", "getting-started", "guide/concepts", "guide/choosing-a-test", "guide/findings",
                 "reproductions", "results", "changelog", "api/index"):
        assert (site / f"{page}.html").is_file(), page
    cli = (site / "guide" / "command-line.html").read_text(encoding="utf-8")
    assert "usage: steinkit" in cli   # the help texts were generated at build time


def _extra(name: str) -> set[str]:
    """The package names of one optional-dependency list of pyproject.toml (no tomllib on Python 3.10)."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    body = re.search(rf"^{name} = \[(.*?)\]\s*$", text, flags=re.S | re.M).group(1)
    return {re.split(r"[<>=~\[; ]", req, maxsplit=1)[0].lower() for req in re.findall(r'"([^"]+)"', body)}


def test_the_test_extra_installs_the_docs_packages():
    docs, test = _extra("docs"), _extra("test")
    assert {"sphinx", "furo", "myst-nb", "sphinx-copybutton", "ipykernel"} <= docs <= test

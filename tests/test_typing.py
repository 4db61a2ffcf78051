"""Core, every plugin and the example plugin type-check clean under the repository's mypy.ini (strict)."""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_mypy_is_clean_over_core_and_every_plugin():
    # A subprocess, not mypy.api.run: mypy keeps global state. Its incremental cache stays in
    # .mypy_cache (ignored by git), so a repeated run takes about a second instead of fifteen.
    result = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True)
    report = result.stdout + result.stderr
    assert result.returncode == 0, f"mypy (configured by mypy.ini) found problems:\n{report}"
    # every source file was checked: mypy.ini's `files` leaves none out
    sources = [*ROOT.glob("core/src/daskperiment/**/*.py"), *ROOT.glob("plugins/*/src/**/*.py"),
               *ROOT.glob("examples/plugins/*/src/**/*.py")]
    checked = re.search(r"Success: no issues found in (\d+) source files", report)
    assert checked is not None, report
    assert int(checked.group(1)) == len(sources), report


def test_every_package_ships_its_types():
    """A ``py.typed`` marker (PEP 561) in each package, so users' and plugin authors' type checkers
    read our annotations instead of treating daskperiment as untyped."""
    packages = [path.parent for path in ROOT.glob("*/src/*/__init__.py")]
    packages += [path.parent for path in ROOT.glob("plugins/*/src/*/__init__.py")]
    packages += [path.parent for path in ROOT.glob("examples/plugins/*/src/*/__init__.py")]
    assert len(packages) >= 10
    assert [p for p in packages if not (p / "py.typed").exists()] == []

"""The documentation site builds in strict mode: a broken link, anchor or API reference, or a
page missing from the nav, fails the build (``mkdocs.yml``)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tools.doc_examples import ROOT

pytestmark = pytest.mark.slow


def test_site_builds_strict(tmp_path):
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-6000:]
    assert (tmp_path / "site" / "reference" / "experiment" / "index.html").read_text().count("save_metric") >= 1

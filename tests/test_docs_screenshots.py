"""The docs' dashboard screenshots can be taken again (slow: runs the scikit-learn example and
a browser), and the committed ones are what the tool makes: three palette PNGs of one size.

Missing browser: a loud skip naming what to install; with ``CI=true``, a failure.
"""

from __future__ import annotations

import os

import pytest
from pytest_daskperiment import running_on_ci

from tools import dashboard_screenshots as tool
from tools.doc_examples import ROOT

NAMES = ("dashboard-runs.png", "dashboard-compare.png", "dashboard-trial.png")
MAX_BYTES = 150_000


def check_images(folder):
    from PIL import Image

    for name in NAMES:
        with Image.open(folder / name) as image:
            assert (image.format, image.mode, image.size) == ("PNG", "P", (tool.WIDTH, tool.HEIGHT)), name
            assert len(image.getcolors(maxcolors=256) or ()) <= tool.COLOURS, name
        assert (folder / name).stat().st_size < MAX_BYTES, name


def test_the_committed_screenshots_are_the_tools():
    pytest.importorskip("PIL", reason="pillow not installed (requirements/dev.txt)")
    check_images(ROOT / "docs" / "images")
    text = (ROOT / "docs" / "dashboard.md").read_text()
    assert all(f"(images/{name})" in text for name in NAMES)


@pytest.mark.slow
def test_the_tool_takes_them_again(tmp_path):
    for path in (tool.browser_path(), tool.driver_path()):
        if not os.access(path, os.X_OK):
            message = f"{path} is missing: apt-get install -y chromium chromium-driver"
            if running_on_ci():
                pytest.fail(message)
            pytest.skip(message)
    assert tool.main(["--outdir", str(tmp_path)]) == 0
    check_images(tmp_path)

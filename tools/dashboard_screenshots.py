"""The dashboard screenshots of the docs, taken again: ``python -m tools.dashboard_screenshots``.

Runs ``examples/sklearn_digits.py`` (its full grid) in a temporary directory, serves its trials
with ``ex.start_dashboard`` on a free port, and drives Debian's ``chromium`` through
``chromium-driver`` with Selenium (both from apt, as for ``tests/test_dashboard_browser.py``;
nothing is downloaded) over the pages ``docs/dashboard.md`` shows:

* ``dashboard-runs.png``: the runs table with only the varying columns, the two best and the
  worst trial of the grid ticked and their ``val_accuracy`` curves overlaid below;
* ``dashboard-compare.png``: those three compared (parameters, result, metric chart);
* ``dashboard-trial.png``: the best trial (its record and the steps with their timings).

Each PNG is reduced to a palette of at most 128 colours with Pillow: a page of text and flat
colours loses nothing visible and shrinks to about a quarter. ``--outdir`` (default
``docs/images``) is where they go.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXPERIMENT = "sklearn_digits"
WIDTH, HEIGHT = 1280, 900
COLOURS = 128
WAIT = 30
logger = logging.getLogger("tools.dashboard_screenshots")


def run_example(workdir: pathlib.Path, seed: int = 0) -> pathlib.Path:
    """The scikit-learn example's full grid run in ``workdir``; returns its experiment's store."""
    env = {**os.environ, "DASKPERIMENT_EXAMPLE_SIZE": "full"}
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "sklearn_digits.py"), "--seed", str(seed)],
                          cwd=workdir, env=env, capture_output=True, text=True, timeout=900)
    if done.returncode:
        raise SystemExit(f"examples/sklearn_digits.py failed:\n{done.stderr[-3000:]}")
    return workdir / "daskperiment_cache" / EXPERIMENT


def browser_path() -> str:
    """Debian's ``chromium`` (on PATH), or ``$DASKPERIMENT_CHROMIUM``."""
    return os.environ.get("DASKPERIMENT_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


def driver_path() -> str:
    """Debian's ``chromedriver`` (package ``chromium-driver``), or ``$DASKPERIMENT_CHROMEDRIVER``."""
    return os.environ.get("DASKPERIMENT_CHROMEDRIVER") or shutil.which("chromedriver") or "/usr/bin/chromedriver"


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """Headless Chromium at WIDTH × HEIGHT, driven through Debian's chromedriver."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    browser, driver = browser_path(), driver_path()
    for path in (browser, driver):
        if not os.access(path, os.X_OK):
            raise SystemExit(f"{path} is missing: apt-get install -y chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = browser  # with both paths given, Selenium Manager downloads nothing
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", f"--window-size={WIDTH},{HEIGHT}",
                     "--hide-scrollbars", "--force-device-scale-factor=1", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update"):
        options.add_argument(argument)
    session = webdriver.Chrome(service=Service(executable_path=driver), options=options)
    session.set_page_load_timeout(60)
    # the page itself WIDTH × HEIGHT, whatever the window's frame takes
    session.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                            {"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": False})
    try:
        yield session
    finally:
        session.quit()


def wait(driver: Any, condition: Callable[[Any], Any], message: str) -> Any:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT).until(condition, message)


def table_render(driver: Any, previous: str | None = None) -> str:
    """Wait for a render of the runs table after the one numbered ``previous``; returns its number."""
    def rendered(d: Any) -> str | None:
        count = d.find_element("tag name", "body").get_attribute("data-table-ready")
        return count if count not in (None, previous) else None

    number: str = wait(driver, rendered, "the runs table never rendered")
    return number


def chart_drawn(driver: Any, series: int) -> None:
    wait(driver, lambda d: d.find_element("id", "chart").get_attribute("data-drawn") == str(series),
         f"the chart never drew {series} series")


def save(driver: Any, path: pathlib.Path) -> None:
    """The viewport as a PNG of at most COLOURS colours."""
    from PIL import Image

    image = Image.open(io.BytesIO(driver.get_screenshot_as_png())).convert("RGB")
    image.quantize(colors=COLOURS, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
        path, optimize=True)
    logger.info("%s: %d × %d, %.0f kB", path, image.width, image.height, path.stat().st_size / 1000)


def take(store: pathlib.Path, outdir: pathlib.Path) -> list[pathlib.Path]:
    """The three screenshots of the experiment stored in ``store``, into ``outdir``."""
    from selenium.webdriver.support.ui import Select

    import daskperiment

    ex = daskperiment.Experiment(EXPERIMENT, backend=store)
    grid = ex.get_history()["Result"].iloc[:-1]  # the example's last trial reproduces the best one
    ranked = [int(t) for t in grid.sort_values(ascending=False, kind="stable").index]
    chosen = [*ranked[:2], ranked[-1]]
    server = ex.start_dashboard(port=0, blocking=False)
    shots = [outdir / f"dashboard-{name}.png" for name in ("runs", "compare", "trial")]
    try:
        with chromium() as driver:
            driver.get(f"{server.url}experiment/{EXPERIMENT}")
            render = table_render(driver)
            driver.find_element("id", "only-varying").click()
            render = table_render(driver, render)
            for trial in chosen:
                driver.find_element("css selector", f"#runs tr[data-trial='{trial}'] input[type=checkbox]").click()
            Select(driver.find_element("id", "metric-select")).select_by_visible_text("val_accuracy")
            chart_drawn(driver, len(chosen))
            save(driver, shots[0])

            driver.find_element("id", "compare-selected").click()
            wait(driver, lambda d: d.find_elements("css selector", "#compare-table tbody tr"), "no compare table")
            Select(driver.find_element("id", "metric-select")).select_by_visible_text("val_accuracy")
            chart_drawn(driver, len(chosen))
            save(driver, shots[1])

            driver.get(f"{server.url}experiment/{EXPERIMENT}/trial/{chosen[0]}")
            wait(driver, lambda d: d.find_element("id", "step-timings").text, "no step timings")
            save(driver, shots[2])
    finally:
        server.shutdown()
    return shots


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.dashboard_screenshots", description=__doc__.splitlines()[0])
    parser.add_argument("--outdir", type=pathlib.Path, default=ROOT / "docs" / "images", help="default: docs/images")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args.outdir.mkdir(parents=True, exist_ok=True)
    outdir = args.outdir.resolve()
    with tempfile.TemporaryDirectory(prefix="screenshots-") as workdir:
        store = run_example(pathlib.Path(workdir))
        here = os.getcwd()
        os.chdir(workdir)  # the pages name the store as the user who ran the example sees it
        try:
            shots = take(store.relative_to(workdir), outdir)
        finally:
            os.chdir(here)
    for shot in shots:
        print(shot)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

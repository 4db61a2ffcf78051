"""The dashboard in a real browser: Debian's ``chromium`` driven by Selenium through
``chromium-driver`` (both from apt; nothing is downloaded). One browser for the module.

Missing browser: a loud skip naming what to install; with ``CI=true``, a failure.
Screenshots of every page land in the pytest temporary directory (``screenshots/``).
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import urllib.parse

import pytest
from pytest_daskperiment import running_on_ci

import daskperiment
from daskperiment.dashboard.catalog import Catalog
from daskperiment.dashboard.report import write_report
from daskperiment.dashboard.server import serve

#: Debian's packages put them on PATH (/usr/bin); the variables point elsewhere
CHROMIUM = os.environ.get("DASKPERIMENT_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = os.environ.get("DASKPERIMENT_CHROMEDRIVER") or shutil.which("chromedriver") or "/usr/bin/chromedriver"
INSTALL = "apt-get install -y chromium chromium-driver && pip install selenium"
XSS = '<img src=x onerror="window.__xss=1">'
XSS_METRIC = '<img src=x onerror="window.__xss=2">'
WAIT = 20


def _unavailable(reason: str) -> None:
    message = f"no browser for the dashboard tests: {reason}. Install with: {INSTALL}"
    if running_on_ci():
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> pathlib.Path:
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture(scope="module")
def browser():
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _unavailable("the selenium package is not installed")
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            _unavailable(f"{path} is missing")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM  # with both paths given, Selenium Manager downloads nothing
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000",
                     "--no-first-run", "--disable-background-networking", "--disable-component-update"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    """Ten trials: two code versions, a failure, XSS payloads in values, results, errors and a metric name."""
    ex = daskperiment.Experiment("browser_pj", backend=tmp_path_factory.mktemp("store"))
    lr, layers, label, const = ex.parameter("lr"), ex.parameter("layers"), ex.parameter("label"), ex.parameter("const")

    @ex.persist
    def prepare(layers):
        return list(range(layers))

    @ex.result
    def train(data, lr, label, const):
        for epoch in range(40):
            ex.save_metric("train/loss", epoch=epoch, value=1.0 / (1 + lr * epoch))
            ex.save_metric("val loss é", epoch=epoch, value=2.0 / (1 + lr * epoch))
        ex.save_metric(XSS_METRIC, epoch=0, value=1.0)
        if label == "boom":
            raise ValueError(XSS)
        return XSS if label == "xss" else lr * len(data)

    def run(**values):
        ex.set_parameters(const=1, **values)
        try:
            train(prepare(layers), lr, label, const).compute(seed=values["layers"])
        except ValueError:
            pass

    for i in range(1, 7):
        run(lr=[0.01, 0.1, 0.5][i % 3], layers=i, label="xss" if i == 3 else "plain")
    run(lr=0.2, layers=2, label="boom")

    @ex.result
    def train(data, lr, label, const):  # noqa: F811 - the changed code the compare view must show
        for epoch in range(40):
            ex.save_metric("train/loss", epoch=epoch, value=0.5 / (1 + lr * epoch))
            ex.save_metric("val loss é", epoch=epoch, value=1.0 / (1 + lr * epoch))
        changed_line = lr * len(data) * 2
        return changed_line

    for i in range(3):
        ex.set_parameters(const=1, lr=0.3 + i / 10, layers=3, label="plain")
        train(prepare(layers), lr, label, const).compute(seed=100 + i)
    return ex


@pytest.fixture(scope="module")
def base(experiment):
    server = serve(Catalog({"browser_pj": experiment.backend.read_only()}), port=0, blocking=False)
    yield server.url.rstrip("/")
    server.shutdown()


def wait(browser, condition, message):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, WAIT).until(lambda d: condition(d), message)


def table_ready(browser, previous=None):
    """Wait for a render of the runs table after the one numbered ``previous``; returns its number."""
    def rendered(driver):
        count = driver.find_element("tag name", "body").get_attribute("data-table-ready")
        return count if count not in (None, previous) else None

    return wait(browser, rendered, "the runs table never rendered")


def cell_texts(browser, column):
    """The texts of one column, read in one script (the table may re-render between two calls)."""
    return browser.execute_script(
        "var names = Array.from(document.querySelectorAll('#runs thead th')).map(function (th) {"
        "  return th.textContent.trim(); });"
        "var k = names.indexOf(arguments[0]);"
        "return Array.from(document.querySelectorAll('#runs tbody tr')).map(function (tr) {"
        "  return tr.children[k].textContent; });", column)


def painted_pixels(browser, selector):
    return browser.execute_script(
        "var c = document.querySelector(arguments[0]); if (!c) return -1;"
        "var d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data, n = 0;"
        "for (var i = 3; i < d.length; i += 4) if (d[i]) n++; return n;", selector)


def no_injection(browser):
    assert browser.execute_script("return window.__xss === undefined"), "an injected handler ran"
    assert browser.find_elements("css selector", "img[src='x']") == [], "injected markup became an element"


def open_page(browser, url, shots, name):
    browser.get(url)
    wait(browser, lambda d: d.execute_script("return document.readyState") == "complete", f"{url} did not load")
    no_injection(browser)
    return name and browser.save_screenshot(str(shots / f"{name}.png"))


def test_runs_table_sorts_filters_and_hides_constant_columns(browser, base, shots):
    open_page(browser, base + "/experiment/browser_pj", shots, None)
    stamp = table_ready(browser)
    assert cell_texts(browser, "Trial")[:3] == ["10", "9", "8"]  # newest first
    browser.find_element("css selector", "#runs th[data-column='lr']").click()
    stamp = table_ready(browser, stamp)
    lrs = [float(t) for t in cell_texts(browser, "lr")]
    assert lrs == sorted(lrs)
    browser.find_element("css selector", "#runs th[data-column='lr']").click()
    stamp = table_ready(browser, stamp)
    lrs = [float(t) for t in cell_texts(browser, "lr")]
    assert lrs == sorted(lrs, reverse=True)

    box = browser.find_element("id", "filter")
    box.clear()
    box.send_keys("lr > 0.05 and Success")
    browser.find_element("id", "apply-filter").click()
    stamp = table_ready(browser, stamp)
    assert all(float(t) > 0.05 for t in cell_texts(browser, "lr"))
    assert set(cell_texts(browser, "Status")) == {"finished"}
    assert "matching (10 in all)" in browser.find_element("id", "runs-count").text

    box.clear()
    box.send_keys("lr >")
    browser.find_element("id", "apply-filter").click()
    wait(browser, lambda d: d.find_element("id", "filter-error").text, "a bad filter showed no error")
    assert "expected a name, a number or a quoted text" in browser.find_element("id", "filter-error").text

    box.clear()
    browser.find_element("id", "apply-filter").click()
    stamp = table_ready(browser, stamp)
    assert "const" in [th.text for th in browser.find_elements("css selector", "#runs thead th")]
    browser.find_element("id", "only-varying").click()
    wait(browser, lambda d: "const" not in [th.text for th in d.find_elements("css selector", "#runs thead th")],
         "only varying columns kept the constant column")
    assert "lr" in [th.text for th in browser.find_elements("css selector", "#runs thead th")]
    browser.find_element("id", "only-varying").click()
    wait(browser, lambda d: painted_pixels(d, "#parallel") > 500, "parallel coordinates not drawn")
    wait(browser, lambda d: painted_pixels(d, "#chart canvas") > 500, "the metric chart was not drawn")
    browser.save_screenshot(str(shots / "runs.png"))


def test_select_trials_and_compare_shows_parameter_and_code_changes(browser, base, shots):
    open_page(browser, base + "/experiment/browser_pj", shots, None)
    table_ready(browser)
    for trial in ("2", "9"):  # first code version, lr 0.5 / second version, lr 0.4
        browser.find_element("css selector", f"#runs tr[data-trial='{trial}'] input[type=checkbox]").click()
    link = browser.find_element("id", "compare-selected")
    wait(browser, lambda d: "disabled" not in link.get_attribute("class"), "Compare stayed disabled")
    assert link.text == "Compare selected (2)"
    link.click()
    wait(browser, lambda d: "/compare?" in d.current_url, "Compare did not open")
    assert urllib.parse.parse_qs(urllib.parse.urlsplit(browser.current_url).query)["trial"] == ["2", "9"]
    no_injection(browser)
    rows = {r.find_element("tag name", "th").text: r for r in browser.find_elements("css selector", "#compare-table tbody tr")}
    assert "differs" in rows["lr"].get_attribute("class")
    assert "same" in rows["const"].get_attribute("class")
    added = [e.text for e in browser.find_elements("css selector", ".diff .add")]
    removed = [e.text for e in browser.find_elements("css selector", ".diff .del")]
    assert any("changed_line = lr * len(data) * 2" in line for line in added)
    assert any("raise ValueError(XSS)" in line for line in removed)
    browser.find_element("id", "only-differences").click()
    assert not rows["const"].is_displayed() and rows["lr"].is_displayed()
    from selenium.webdriver.support.ui import Select

    Select(browser.find_element("id", "metric-select")).select_by_visible_text("train/loss")
    wait(browser, lambda d: d.find_element("id", "chart").get_attribute("data-drawn") == "2",
         "the two trials' train/loss curves were not overlaid")
    wait(browser, lambda d: painted_pixels(d, "#chart canvas") > 500, "the compare chart was not drawn")
    browser.save_screenshot(str(shots / "compare.png"))


def test_trial_page(browser, base, shots):
    open_page(browser, base + "/experiment/browser_pj", shots, None)
    table_ready(browser)
    browser.find_element("css selector", "#runs tr[data-trial='4'] td:nth-child(2) a").click()
    wait(browser, lambda d: d.current_url.endswith("/trial/4"), "the trial link did not open the trial")
    no_injection(browser)
    summary = browser.find_element("id", "trial-summary").text
    assert "finished" in summary and "Seed 4" in summary
    assert "prepare" in browser.find_element("id", "persisted").text
    timings = browser.find_element("id", "step-timings").text  # per-step records of the trial
    assert "prepare" in timings and "train" in timings
    assert "def train(data, lr, label, const):" in browser.find_element("id", "code").text
    sections = browser.find_elements("css selector", "details")
    assert sections and sections[0].get_attribute("open") is not None
    closed = [s for s in sections if s.get_attribute("open") is None]
    closed[0].find_element("tag name", "summary").click()
    assert closed[0].get_attribute("open") is not None
    wait(browser, lambda d: painted_pixels(d, "#chart canvas") > 500, "the trial's chart was not drawn")
    browser.execute_script("window.scrollTo(0, 0)")
    browser.save_screenshot(str(shots / "trial.png"))
    open_page(browser, base + "/experiment/browser_pj/trial/7", shots, "trial-failed")
    assert "ValueError" in browser.find_element("id", "traceback").text
    assert XSS in browser.find_element("id", "traceback").text  # shown as text, inert


@pytest.mark.parametrize("name", ["train/loss", "val loss é", XSS_METRIC])
def test_any_metric_name_draws(browser, base, shots, name):
    url = base + "/experiment/browser_pj/metric?" + urllib.parse.urlencode({"name": name, "trial": [1, 8, 9]}, doseq=True)
    open_page(browser, url, shots, None)
    wait(browser, lambda d: painted_pixels(d, "#chart canvas") > 200, f"metric {name!r} was not drawn")
    if name == "val loss é":
        browser.save_screenshot(str(shots / "metric.png"))


def test_every_page_is_inert_to_payloads_and_stays_on_our_server(browser, base, shots):
    pages = {"index": "/", "runs": "/experiment/browser_pj", "xss-trial": "/experiment/browser_pj/trial/3",
             "compare-xss": "/experiment/browser_pj/compare?trial=3&trial=7",
             "not-found": "/experiment/browser_pj/trial/999"}
    browser.get_log("performance")  # start a fresh record of requests
    for name, path in pages.items():
        open_page(browser, base + path, shots, name)
        for element in browser.find_elements("css selector", "[src], [href]"):
            for attribute in ("src", "href"):
                value = element.get_attribute(attribute)
                assert not value or value.startswith((base, "data:")) or value.endswith("#"), value
        if name in ("xss-trial", "compare-xss"):
            assert XSS in browser.find_element("tag name", "body").text  # the payload, shown as text
    requested = []
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            requested.append(message["params"]["request"]["url"])
    assert requested and all(url.startswith((base, "data:")) for url in requested), requested


def test_report_opens_from_disk_without_network(browser, experiment, shots, tmp_path):
    report = tmp_path / "report.html"
    write_report(Catalog({"browser_pj": experiment.backend.read_only()}).get("browser_pj"), report)
    browser.get_log("performance")  # forget what earlier tests requested and logged
    browser.get_log("browser")
    browser.get(report.as_uri())
    stamp = table_ready(browser)
    no_injection(browser)
    assert len(browser.find_elements("css selector", "#runs tbody tr")) == 10
    box = browser.find_element("id", "filter")
    box.send_keys("lr >= 0.3 and lr < 0.45 and Success")
    browser.find_element("id", "apply-filter").click()
    stamp = table_ready(browser, stamp)
    assert sorted(cell_texts(browser, "Trial")) == ["8", "9"]
    for trial in ("8", "9"):
        browser.find_element("css selector", f"#runs tr[data-trial='{trial}'] input[type=checkbox]").click()
    browser.find_element("id", "compare-selected").click()
    rows = {r.find_element("tag name", "th").text: r
            for r in browser.find_elements("css selector", "#compare-table tbody tr")}
    assert "differs" in rows["lr"].get_attribute("class") and "same" in rows["const"].get_attribute("class")
    from selenium.webdriver.support.ui import Select

    Select(browser.find_element("id", "metric-select")).select_by_visible_text("val loss é")
    wait(browser, lambda d: d.find_element("id", "chart").get_attribute("data-drawn") == "2",
         "the report did not overlay the two selected trials")
    wait(browser, lambda d: painted_pixels(d, "#chart canvas") > 500, "the report chart was not drawn")
    wait(browser, lambda d: painted_pixels(d, "#parallel") > 500, "the report's parallel coordinates not drawn")
    browser.save_screenshot(str(shots / "report.png"))
    requested = [json.loads(e["message"])["message"]["params"]["request"]["url"]
                 for e in browser.get_log("performance")
                 if json.loads(e["message"])["message"]["method"] == "Network.requestWillBeSent"]
    assert all(url.startswith(("file:", "data:")) for url in requested), requested
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == [], errors


def test_every_page_left_a_screenshot(shots):
    """Screenshots of every page, to look at after a run (the docs' own are taken by
    ``tools/dashboard_screenshots.py`` on the scikit-learn example, ``tests/test_docs_screenshots.py``)."""
    taken = sorted(p.name for p in shots.glob("*.png"))
    for name in ("runs.png", "compare.png", "trial.png", "metric.png", "index.png", "report.png", "not-found.png"):
        assert name in taken
        assert (shots / name).stat().st_size > 5000

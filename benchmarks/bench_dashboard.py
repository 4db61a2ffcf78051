"""Dashboard speed (prints numbers, asserts nothing).

Targets (issue "dashboard"): the runs page of 100,000 trials paints in ≤ 1 s in Chromium;
a metric of 1,000,000 points is drawn in ≤ 1 s; plus the history JSON of 100,000 trials
and the report of 1,000 trials (size and time). Each figure is printed next to its floor:
the bare backend read the dashboard cannot avoid (``load_history``, ``load_metrics``).

    python benchmarks/bench_dashboard.py            # full sizes (about a minute)
    python benchmarks/bench_dashboard.py --quick    # small sizes, seconds
    python benchmarks/bench_dashboard.py --json     # one JSON line instead of the table

The browser figures need Debian's ``chromium`` and ``chromium-driver`` and ``selenium``
(the tests' browser); without them they are reported as skipped.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import pathlib
import shutil
import statistics
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from typing import Any, Callable

import numpy as np

#: Debian's packages put them on PATH (/usr/bin); the variables point elsewhere
CHROMIUM = os.environ.get("DASKPERIMENT_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = os.environ.get("DASKPERIMENT_CHROMEDRIVER") or shutil.which("chromedriver") or "/usr/bin/chromedriver"


def populate(root: pathlib.Path, name: str, trials: int, metric_points: int) -> Any:
    """``trials`` finished trials (4 parameters, 2 metrics of ``metric_points`` points each),
    written through the public Backend API."""
    from daskperiment_local import LocalBackend

    backend = LocalBackend(name, root / name)
    rng = np.random.default_rng(0)
    epochs = np.arange(metric_points)
    for i in range(trials):
        lr = float(rng.choice([0.001, 0.01, 0.1]))
        trial_id = backend.start_trial({"parameters": {"lr": lr, "layers": int(i % 8), "optimizer": ["adam", "sgd"][i % 2],
                                                       "dropout": round(float(rng.random()), 3)},
                                        "seed": i, "started": 1.7e9 + i, "host": "bench", "pid": 1})
        if metric_points:
            backend.save_metrics(trial_id, "train/loss", epochs, np.exp(-lr * epochs))
            backend.save_metrics(trial_id, "val/accuracy", epochs, 1 - np.exp(-lr * epochs))
        backend.finish_trial(trial_id, {"finished": 1.7e9 + i + 1, "process_time": 0.5, "success": i % 50 != 7,
                                        "result": float(rng.random()), "result_type": "<class 'float'>"})
    return backend


def timed(function: Callable[[], Any], reps: int) -> tuple[float, Any]:
    """Median seconds over ``reps`` calls, and the last result."""
    samples, result = [], None
    for _ in range(reps):
        t0 = time.perf_counter()
        result = function()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples), result


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=600) as response:
        return response.read()


def history_json(backend: Any, reps: int) -> dict[str, Any]:
    """The runs endpoint of a fresh dashboard: the first page (answered from the newest trials
    while the whole table is built in the background), the whole table (a filtered request
    waits for it), then pages and new filters served from the built table."""
    from daskperiment.dashboard.catalog import Catalog
    from daskperiment.dashboard.server import serve
    from daskperiment.records import VERBOSE_FIELDS

    view = backend.read_only()
    floor, _ = timed(lambda: view.load_history(VERBOSE_FIELDS), reps)
    first, whole, warm, filtered = [], [], [], []
    for rep in range(reps):
        server = serve(Catalog({backend.experiment_id: backend.read_only()}), port=0, blocking=False)
        url = server.url + f"api/experiment/{backend.experiment_id}/runs"

        def ask(url: str = url, **query: Any) -> tuple[float, dict[str, Any]]:
            t0 = time.perf_counter()
            answer = json.loads(fetch(url + "?" + urllib.parse.urlencode(query)))
            return time.perf_counter() - t0, answer

        seconds, page = ask()
        first.append(seconds)
        seconds, answer = ask(filter="lr > 0.005 and Success", sort="Result")
        whole.append(seconds)
        warm.append(ask(offset=100)[0])
        filtered.append(ask(filter=f"lr > 0.005 and Success and layers != {rep}", sort="dropout")[0])
        server.shutdown()
    return {"trials": page["total"], "first_page_ms": statistics.median(first) * 1e3,
            "first_page_building": page["building"], "whole_table_ms": statistics.median(whole) * 1e3,
            "page_ms": statistics.median(warm) * 1e3, "new_filter_sort_ms": statistics.median(filtered) * 1e3,
            "matched": answer["matched"], "floor_load_history_ms": floor * 1e3}


def browser() -> Any:
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        return None
    if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
        return None
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)


def wait_attribute(driver: Any, selector: str, attribute: str) -> float:
    from selenium.webdriver.support.ui import WebDriverWait

    return float(WebDriverWait(driver, 120).until(
        lambda d: d.find_element("css selector", selector).get_attribute(attribute)))


def first_paint(driver: Any, backend: Any, reps: int) -> dict[str, Any]:
    """ms from navigation start until the runs table is on screen: cold (a fresh dashboard, the table
    still building) and warm (the table built)."""
    from daskperiment.dashboard.catalog import Catalog
    from daskperiment.dashboard.server import serve

    cold, warm = [], []
    warm_up = serve(Catalog({}), port=0, blocking=False)  # a running browser, as a user's is
    driver.get(warm_up.url + "static/dashboard.css")
    warm_up.shutdown()
    for _ in range(reps):
        server = serve(Catalog({backend.experiment_id: backend.read_only()}), port=0, blocking=False)
        page = server.url + f"experiment/{backend.experiment_id}"
        driver.get(page)
        cold.append(wait_attribute(driver, "body", "data-first-paint"))
        fetch(server.url + f"api/experiment/{backend.experiment_id}/runs?filter=Success")  # the whole table
        driver.get(page)
        warm.append(wait_attribute(driver, "body", "data-first-paint"))
        server.shutdown()
    return {"cold_ms": statistics.median(cold), "warm_ms": statistics.median(warm)}


def chart(driver: Any | None, root: pathlib.Path, points: int, reps: int) -> dict[str, Any]:
    from daskperiment.dashboard.catalog import Catalog
    from daskperiment.dashboard.server import serve
    from daskperiment_local import LocalBackend

    backend = LocalBackend("chart", root / "chart")
    trial_id = backend.start_trial({"parameters": {}})
    rng = np.random.default_rng(1)
    backend.save_metrics(trial_id, "loss", np.arange(points), np.cumsum(rng.normal(size=points)))
    floor, _ = timed(lambda: backend.read_only().load_metrics("loss", [trial_id]), reps)
    server = serve(Catalog({"chart": backend.read_only()}), port=0, blocking=False)
    url = server.url + f"api/experiment/chart/metric?name=loss&trial={trial_id}"
    data_s, body = timed(lambda: fetch(url), reps)
    figures: dict[str, Any] = {"points": points, "data_ms": data_s * 1e3, "sent_points": len(json.loads(body)["series"][0]["x"]),
                               "bytes": len(body), "floor_load_metrics_ms": floor * 1e3}
    if driver is not None:
        drawn = []
        for _ in range(reps):
            driver.get(server.url + f"experiment/chart/metric?name=loss&trial={trial_id}")
            drawn.append(wait_attribute(driver, "#chart", "data-drawn-at"))
        figures["drawn_ms"] = statistics.median(drawn)
    server.shutdown()
    return figures


def report(backend: Any, root: pathlib.Path, reps: int) -> dict[str, Any]:
    from daskperiment.dashboard.catalog import ExperimentData
    from daskperiment.dashboard.report import write_report

    out = root / "report.html"
    seconds, size = timed(lambda: write_report(ExperimentData(backend.experiment_id, backend.read_only()), out), reps)
    return {"trials": backend.last_trial_id(), "ms": seconds * 1e3, "megabytes": size / 1e6}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a smoke run)")
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    args = parser.parse_args(argv)
    logging.getLogger("daskperiment").setLevel(logging.WARNING)
    logging.getLogger("tornado.access").setLevel(logging.ERROR)
    n_history, n_points, n_report, reps = (2_000, 10_000, 100, 1) if args.quick else (100_000, 1_000_000, 1_000, 3)
    results: dict[str, Any] = {"quick": args.quick}
    with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as tmp:
        root = pathlib.Path(tmp)
        t0 = time.perf_counter()
        big = populate(root, "history", n_history, metric_points=10)
        results["populate_s"] = time.perf_counter() - t0
        results["history_json"] = history_json(big, reps)
        driver = browser()
        try:
            results["first_paint"] = first_paint(driver, big, reps) if driver else "skipped: no chromium/selenium"
            results["chart"] = chart(driver, root, n_points, reps)
        finally:
            if driver is not None:
                driver.quit()
        results["report"] = report(populate(root, "report", n_report, metric_points=100), root, reps)
    if args.json:
        print(json.dumps(results))
        return 0
    h, c, r = results["history_json"], results["chart"], results["report"]
    print(f"dashboard benchmarks{' (quick sizes)' if args.quick else ''}: median of {reps}")
    print(f"  history JSON, {h['trials']:,} trials, fresh dashboard: first page {h['first_page_ms']:.0f} ms "
          f"({'newest trials, while the table builds' if h['first_page_building'] else 'table built'}), whole table "
          f"(filtered) "
          f"{h['whole_table_ms']:.0f} ms, then a page {h['page_ms']:.0f} ms, a new filter+sort "
          f"{h['new_filter_sort_ms']:.0f} ms [floor: load_history {h['floor_load_history_ms']:.0f} ms]")
    paint = results["first_paint"]
    if isinstance(paint, dict):
        print(f"  runs page first paint in Chromium, {h['trials']:,} trials: {paint['cold_ms']:.0f} ms cold, "
              f"{paint['warm_ms']:.0f} ms warm [target ≤ 1000 ms]")
    else:
        print(f"  runs page first paint: {paint}")
    drawn = f", drawn in Chromium {c['drawn_ms']:.0f} ms after navigation" if "drawn_ms" in c else ""
    print(f"  chart data, {c['points']:,} points → {c['sent_points']:,} sent ({c['bytes'] / 1e3:.0f} kB): "
          f"{c['data_ms']:.0f} ms{drawn} [target ≤ 1000 ms; floor: load_metrics {c['floor_load_metrics_ms']:.0f} ms]")
    print(f"  report, {r['trials']:,} trials (2 metrics × 100 points): {r['ms']:.0f} ms, {r['megabytes']:.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())

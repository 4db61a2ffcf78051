"""``daskperiment report ID -o report.html``: the runs table, charts and compare view in one
offline HTML file (scripts, styles and data inlined) to attach to a CI run or an email."""

from __future__ import annotations

import os
import pathlib
import time
from typing import Any

import numpy as np

from .catalog import ExperimentData
from .handlers import STATIC_DIR
from .runs import plain, query_runs
from .series import downsample

__all__ = ["render_report", "write_report"]

#: Numbers of metric points a report holds at most (each series gets its share, ≥ 40 points).
POINT_BUDGET = 1_000_000
SCRIPTS = ("uplot/uPlot.iife.min.js", "dashboard.js")
STYLES = ("uplot/uPlot.min.css", "dashboard.css")


def _asset(name: str) -> str:
    # inlined inside <script>/<style>: an end tag in the text would close the element
    return (STATIC_DIR / name).read_text(encoding="utf-8").replace("</", "<\\/")


def _metrics(data: ExperimentData, trial_ids: list[int]) -> dict[str, dict[str, Any]]:
    keys = data.backend.metric_keys()
    if not keys or not trial_ids:
        return {}
    buckets = max(20, POINT_BUDGET // (4 * len(keys) * len(trial_ids)))
    out: dict[str, dict[str, Any]] = {}
    for key in keys:
        series = {}
        for start in range(0, len(trial_ids), 10_000):
            for trial_id, (epochs, values) in data.backend.load_metrics(key, trial_ids[start:start + 10_000]).items():
                x, y = downsample(np.asarray(epochs, dtype=float), np.asarray(values, dtype=float), buckets)
                series[str(trial_id)] = [[plain(v) for v in x], [plain(float(f"{v:.6g}")) for v in y]]
        out[key] = series
    return out


def render_report(data: ExperimentData) -> str:
    from .server import templates

    runs = data.runs()
    table = query_runs(runs, sort="Trial", descending=False, limit=1)
    table["rows"] = [[plain(v) for v in row] for row in runs.frame.itertuples(index=False, name=None)]
    table["limit"] = len(table["rows"])
    payload = {"experiment": data.id, "backend": data.backend.uri, "runs": table,
               "metrics": _metrics(data, runs.frame["Trial"].tolist()),
               "generated": time.strftime("%Y-%m-%d %H:%M:%S")}
    return templates().get_template("report.html").render(
        inline=True, title=f"Report of {data.id}", experiment=data.id, payload=payload,
        scripts=[_asset(n) for n in SCRIPTS], styles=[_asset(n) for n in STYLES])


def write_report(data: ExperimentData, path: str | os.PathLike[str]) -> int:
    """Write the report; returns its size in bytes."""
    text = render_report(data).encode("utf-8")
    pathlib.Path(path).write_bytes(text)
    return len(text)

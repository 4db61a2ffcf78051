"""The built-in pages, declared in :data:`ROUTES` and registered through the
``register_routes`` hook exactly as a plugin's pages are."""

from __future__ import annotations

import asyncio
import datetime
from typing import Any, Callable

import numpy as np

from ..comparison import compare_trials
from ..hookspecs import hookimpl
from .details import diff_lines, packages, parameter_rows, step_timings
from .handlers import Page, PageError, StaticFiles
from .query import FilterError, apply_filter
from .runs import plain, query_runs, trial_status
from .series import DEFAULT_BUCKETS, MAX_BUCKETS, downsample

__all__ = ["ROUTES", "register_routes"]

#: Trials drawn at most in the parallel-coordinates plot (evenly sampled beyond).
PARALLEL_LIMIT = 2000


def _when(timestamp: Any) -> str | None:
    if timestamp is None:
        return None
    return datetime.datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S")


class IndexPage(Page):
    def get(self) -> None:
        rows = []
        for experiment_id in self.catalog.ids():
            data = self.catalog.get(experiment_id)
            if data is not None:
                summary = data.summary()
                summary["last_activity"] = _when(summary["last_activity"])
                rows.append(summary)
        self.render_page("index.html", title="Experiments", experiments=rows)


class RunsPage(Page):
    def get(self, experiment_id: str) -> None:
        data = self.experiment(experiment_id)
        self.render_page("runs.html", title=f"Experiment {experiment_id}", experiment=experiment_id,
                         metrics=data.backend.metric_keys(), backend=data.backend.uri,
                         filter=self.get_argument("filter", ""))


class RunsAPI(Page):
    """``?filter=&sort=&desc=1&offset=0&limit=100``: one page of the runs table."""

    async def get(self, experiment_id: str) -> None:
        data = self.experiment(experiment_id)
        try:
            offset, limit = int(self.get_argument("offset", "0")), int(self.get_argument("limit", "100"))
        except ValueError:
            raise PageError(400, "offset and limit take whole numbers.") from None
        filter, sort = self.get_argument("filter", ""), self.get_argument("sort", "Trial")
        descending = self.get_argument("desc", "1") != "0"
        first_page = not filter.strip() and sort == "Trial" and descending and offset == 0 and limit <= 100
        runs = await asyncio.wrap_future(data.runs_future(first_page))
        try:
            answer = query_runs(runs, filter=filter, sort=sort, descending=descending, offset=offset, limit=limit)
        except FilterError as exc:
            raise PageError(400, str(exc)) from None
        self.write_json(answer)


class ParallelAPI(Page):
    """Parameters and result of the filtered, finished trials, for the parallel-coordinates plot."""

    async def get(self, experiment_id: str) -> None:
        runs = await asyncio.wrap_future(self.experiment(experiment_id).runs_future())
        try:
            frame = apply_filter(runs.frame, self.get_argument("filter", ""))
        except FilterError as exc:
            raise PageError(400, str(exc)) from None
        frame = frame[frame["Status"] == "finished"]
        if len(frame) > PARALLEL_LIMIT:
            frame = frame.iloc[np.linspace(0, len(frame) - 1, PARALLEL_LIMIT).astype(int)]
        columns = [c for c, kind in runs.kinds.items() if kind == "parameter"] + ["Result"]
        self.write_json({"columns": columns, "trials": [int(t) for t in frame["Trial"]],
                         "rows": [[plain(v) for v in row] for row in frame[columns].itertuples(index=False)]})


class MetricAPI(Page):
    """``?name=KEY&trial=N&trial=M&points=1000``: each trial's series, min/max-downsampled."""

    def get(self, experiment_id: str) -> None:
        data = self.experiment(experiment_id)
        name = self.get_argument("name", None)
        known = data.backend.metric_keys()
        if not name:
            raise PageError(400, f"Give the metric as ?name=KEY; metrics: {', '.join(known) or 'none'}.")
        if name not in known:
            raise PageError(404, f"No metric {name!r} in experiment {experiment_id!r}; metrics: "
                                 f"{', '.join(known) or 'none'}.")
        trials = self.int_arguments("trial")
        if not trials:
            raise PageError(400, "Give one or more trials as ?trial=N&trial=M.")
        try:
            buckets = min(max(int(self.get_argument("points", str(DEFAULT_BUCKETS))), 10), MAX_BUCKETS)
        except ValueError:
            raise PageError(400, "points takes a whole number.") from None
        found = data.backend.load_metrics(name, trials)
        series = []
        for trial_id in trials:
            if trial_id in found:
                epochs, values = found[trial_id]
                x, y = downsample(np.asarray(epochs, dtype=float), np.asarray(values, dtype=float), buckets)
                series.append({"trial": trial_id, "points": len(values), "x": [plain(v) for v in x],
                               "y": [plain(v) for v in y]})
        self.write_json({"name": name, "series": series, "missing": [t for t in trials if t not in found]})


class TrialPage(Page):
    def get(self, experiment_id: str, trial_id: str) -> None:
        data = self.experiment(experiment_id)
        record = data.trial(int(trial_id))
        if record is None:
            last = data.backend.last_trial_id()
            raise PageError(404, f"Trial {int(trial_id)} not found in experiment {experiment_id!r}; its trials "
                                 f"are 1 to {last}." if last else f"Experiment {experiment_id!r} has no trials.",
                            [(f"Runs of {experiment_id}", f"/experiment/{experiment_id}")])
        steps = data.code_steps(record)
        environment = data.environment(record)
        sections = [(name, "packages" if name == "requirements" and packages(value) else
                     "text" if isinstance(value, str) else "data", value) for name, value in environment.items()]
        self.render_page(
            "trial.html", title=f"Trial {record['trial_id']} of {experiment_id}", experiment=experiment_id,
            record=record, status=trial_status(record), started=_when(record.get("started")),
            finished=_when(record.get("finished")), code=data.code(record),
            persisted=data.backend.persisted_sizes(record["trial_id"], steps), timings=step_timings(record),
            metrics=data.backend.metric_keys(record["trial_id"]), sections=sections,
            packages=packages(environment.get("requirements")))


class ComparePage(Page):
    """``?trial=N&trial=M…``: the differences of two or more trials, the first as the baseline."""

    def get(self, experiment_id: str) -> None:
        data = self.experiment(experiment_id)
        ids = list(dict.fromkeys(self.int_arguments("trial")))
        if len(ids) < 2:
            raise PageError(400, "Compare needs two or more trials: /experiment/ID/compare?trial=N&trial=M, "
                                 "or select rows on the runs page and press Compare.",
                            [(f"Runs of {experiment_id}", f"/experiment/{experiment_id}")])
        found = {r["trial_id"]: r for r in data.trials(ids)}
        missing = [t for t in ids if t not in found]
        if missing:
            raise PageError(404, f"Trial(s) {missing} not found in experiment {experiment_id!r} "
                                 f"(its trials are 1 to {data.backend.last_trial_id()}).")
        records = [found[t] for t in ids]
        base = records[0]
        diffs = [compare_trials(data.backend, base, other) for other in records[1:]]
        metrics = sorted(set().union(*(data.backend.metric_keys(t) for t in ids)))
        self.render_page(
            "compare.html", title=f"Compare trials {', '.join(map(str, ids))} of {experiment_id}",
            experiment=experiment_id, records=records, ids=ids, parameters=parameter_rows(records),
            statuses=[trial_status(r) for r in records], metrics=metrics,
            code=[(d.b, [(step, diff_lines(text)) for step, text in d.code.items()]) for d in diffs],
            environment=[(d.b, d.environment) for d in diffs])


class MetricPage(Page):
    """``?name=KEY&trial=N…``: one metric of several trials overlaid."""

    def get(self, experiment_id: str) -> None:
        data = self.experiment(experiment_id)
        name = self.get_argument("name", None)
        known = data.backend.metric_keys()
        back = [(f"Runs of {experiment_id}", f"/experiment/{experiment_id}")]
        if not name or name not in known:
            raise PageError(404 if name else 400, (f"No metric {name!r}. " if name else "Which metric? ")
                            + f"Metrics of {experiment_id}: {', '.join(known) or 'none'}.", back)
        trials = self.int_arguments("trial")
        if not trials:
            raise PageError(400, f"Metric {name!r}: which trials? Add ?trial=N (several allowed) to the address, "
                                 "or select rows on the runs page.", back)
        self.render_page("metric.html", title=f"Metric {name} of {experiment_id}", experiment=experiment_id,
                         name=name, trials=trials)


_ID = r"(?P<experiment_id>[A-Za-z_][A-Za-z0-9_]*)"

#: Every built-in route in one place: (path pattern, handler).
ROUTES: list[tuple[str, type[Any]]] = [
    (r"/", IndexPage),
    (rf"/experiment/{_ID}", RunsPage),
    (rf"/experiment/{_ID}/trial/(?P<trial_id>[0-9]{{1,18}})", TrialPage),
    (rf"/experiment/{_ID}/compare", ComparePage),
    (rf"/experiment/{_ID}/metric", MetricPage),
    (rf"/api/experiment/{_ID}/runs", RunsAPI),
    (rf"/api/experiment/{_ID}/metric", MetricAPI),
    (rf"/api/experiment/{_ID}/parallel", ParallelAPI),
    (r"/static/(?P<path>.+)", StaticFiles),
]


@hookimpl
def register_routes(register: Callable[..., None]) -> None:
    for pattern, handler in ROUTES:
        register(pattern, handler)

"""Sacred with its FileStorageObserver on the peer workloads (CLI and JSON: README.md).

Default capture is kept: sources, host info, dependencies, stdout capture (``fd`` mode on
Linux). A trial is ``ex.run(config_updates=...)``; the per-point metric call is
``_run.log_scalar``. Sacred has no query API for the file store, so the history and metric
reads load the observer's ``run.json`` / ``config.json`` / ``metrics.json`` files, as users do.
"""

from __future__ import annotations

import json
import pathlib
import time
from collections.abc import Callable
from typing import Any, ClassVar

import _common
from _common import METRIC_KEY, Tool, calculate_score, prepare_data


class Sacred(Tool):
    name = "sacred"
    dist = "sacred"
    module = "sacred"
    variants: ClassVar[tuple[str, ...]] = ("default",)

    def _experiment(self, root: pathlib.Path, **config: Any) -> Any:
        from sacred import Experiment
        from sacred.observers import FileStorageObserver

        ex = Experiment("quickstart")
        ex.observers.append(FileStorageObserver(str(root / "runs")))
        ex.add_config(config)
        return ex

    def trials(self, root: pathlib.Path, n: int) -> Callable[[int, int], Any]:
        ex = self._experiment(root, a=0, b=1)

        @ex.main
        def quickstart(a: int, b: int) -> float:
            return calculate_score(prepare_data(a, b))

        return lambda a, b: ex.run(config_updates={"a": a, "b": b}).result

    def count_trials(self, root: pathlib.Path) -> int:
        return sum(1 for run in (root / "runs").glob("*/run.json")
                   if json.loads(run.read_text())["status"] == "COMPLETED")

    def metrics(self, root: pathlib.Path) -> Callable[[int], dict[str, float]]:
        ex = self._experiment(root, points=0)
        span: dict[str, float] = {}

        @ex.main
        def log_points(points: int, _run: Any) -> int:
            t0 = time.perf_counter()
            for i in range(points):
                _run.log_scalar(METRIC_KEY, 0.5, i)
            span["loop_s"] = time.perf_counter() - t0
            return points

        def trial(points: int) -> dict[str, float]:
            run = ex.run(config_updates={"points": points})
            # The last heartbeat writes metrics.json, but ex.run() stops waiting for it after 2 s
            # (Run._stop_heartbeat): at 1,000,000 points it is still writing then. Wait, so the
            # points are on disk when the timing stops, as for every other tool.
            if run._heartbeat is not None:
                run._heartbeat.join()
            return dict(span)

        return trial

    def read_history(self, handle: Any) -> Any:
        import pandas as pd

        rows = []
        for run_dir in (handle / "runs").iterdir():
            if not run_dir.name.isdigit():
                continue  # _sources
            run = json.loads((run_dir / "run.json").read_text())
            config = json.loads((run_dir / "config.json").read_text())
            rows.append({"run_id": int(run_dir.name), **config, "result": run["result"],
                         "status": run["status"], "start_time": run["start_time"]})
        return pd.DataFrame(rows)

    def read_metric(self, handle: Any) -> Any:
        import pandas as pd

        (run_dir,) = [d for d in (handle / "runs").iterdir() if d.name.isdigit()]
        metric = json.loads((run_dir / "metrics.json").read_text())[METRIC_KEY]
        return pd.DataFrame({"step": metric["steps"], "value": metric["values"],
                             # isoformat() drops ".000000" when the microseconds are 0: ISO8601, not one inferred format
                             "timestamp": pd.to_datetime(metric["timestamps"], format="ISO8601")})


if __name__ == "__main__":
    raise SystemExit(_common.main(Sacred))

"""MLflow on the peer workloads (see README.md for the CLI and the JSON it prints).

MLflow >= 3.7 refuses the file store (``file://``) unless ``MLFLOW_ALLOW_FILE_STORE=true``: its
idiomatic local store is now a SQLite file, which is the default variant here. ``--variant file``
measures the legacy file store (opted in), ``--variant log_batch`` the batch metric call
(``MlflowClient.log_batch``, 1,000 points per call, MLflow's per-call limit) on the SQLite store.
Telemetry is switched off (``MLFLOW_DISABLE_TELEMETRY``) so no run waits on the network.
"""

from __future__ import annotations

import os
import pathlib
import time
from collections.abc import Callable
from typing import Any, ClassVar

import _common
from _common import METRIC_KEY, Tool, calculate_score, prepare_data

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

EXPERIMENT = "quickstart"
BATCH = 1_000  # MLflow's limit of metrics per log_batch call


class MLflow(Tool):
    name = "mlflow"
    dist = "mlflow"
    module = "mlflow"
    variants: ClassVar[tuple[str, ...]] = ("sqlite", "file", "log_batch")
    # ~100 log_metric calls/s on the SQLite store (one commit each): 1,000,000 would take hours.
    # log_batch keeps its pace (~5,000 points/s) as the run grows: 200,000 points show it.
    default_cap: ClassVar[dict[str, int]] = {"sqlite": 5_000, "file": 20_000, "log_batch": 200_000}

    def _connect(self, root: pathlib.Path) -> Any:
        import mlflow

        if self.variant == "file":
            os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
            mlflow.set_tracking_uri((root / "mlruns").as_uri())
        else:
            mlflow.set_tracking_uri(f"sqlite:///{root / 'mlflow.db'}")
        mlflow.set_experiment(EXPERIMENT)
        return mlflow

    def trials(self, root: pathlib.Path, n: int) -> Callable[[int, int], Any]:
        mlflow = self._connect(root)

        def trial(a: int, b: int) -> float:
            with mlflow.start_run():
                mlflow.log_params({"a": a, "b": b})
                score = calculate_score(prepare_data(a, b))
                mlflow.log_metric("score", score)
            return score

        return trial

    def count_trials(self, root: pathlib.Path) -> int:
        import mlflow

        return len(mlflow.search_runs(experiment_names=[EXPERIMENT], max_results=1_000_000))

    def metrics(self, root: pathlib.Path) -> Callable[[int], dict[str, float]]:
        mlflow = self._connect(root)
        client = mlflow.MlflowClient()

        def log_points(points: int) -> dict[str, float]:
            with mlflow.start_run() as run:
                t0 = time.perf_counter()
                if self.variant == "log_batch":
                    _log_batch(client, run.info.run_id, points)
                else:
                    for i in range(points):
                        mlflow.log_metric(METRIC_KEY, 0.5, step=i)
                loop = time.perf_counter() - t0
            return {"loop_s": loop}

        return log_points

    def open_store(self, root: pathlib.Path) -> Any:
        import mlflow

        return mlflow.MlflowClient()

    def read_history(self, handle: Any) -> Any:
        import mlflow

        return mlflow.search_runs(experiment_names=[EXPERIMENT], max_results=1_000_000)

    def populate_metric(self, root: pathlib.Path, points: int) -> None:
        mlflow = self._connect(root)
        with mlflow.start_run() as run:
            _log_batch(mlflow.MlflowClient(), run.info.run_id, points)
        self._run_id = run.info.run_id

    def read_metric(self, handle: Any) -> Any:
        import pandas as pd

        history = handle.get_metric_history(self._run_id, METRIC_KEY)
        return pd.DataFrame({"step": [m.step for m in history], "value": [m.value for m in history],
                             "timestamp": [m.timestamp for m in history]})


def _log_batch(client: Any, run_id: str, points: int) -> None:
    from mlflow.entities import Metric

    for start in range(0, points, BATCH):
        stamp = int(time.time() * 1000)
        batch = [Metric(METRIC_KEY, 0.5, stamp, i) for i in range(start, min(start + BATCH, points))]
        client.log_batch(run_id, metrics=batch)


if __name__ == "__main__":
    raise SystemExit(_common.main(MLflow))

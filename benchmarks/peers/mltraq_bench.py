"""mltraq with a SQLite file database on the peer workloads (CLI and JSON: README.md).

A trial is a run tracked with the context manager (``with experiment.run() as run``) whose
``run.fields`` hold a, b and the result. mltraq only writes on ``experiment.persist()``, which
rewrites the experiment's whole runs table, so the default variant persists after every trial
(a crash loses nothing, like the other tools) and ``--variant persist_once`` persists once after
the last trial (mltraq's batch style; first/last windows then exclude the final persist). The
per-point metric call appends to a ``mltraq.Sequence`` field, the library's tracking type.
"""

from __future__ import annotations

import pathlib
import time
from collections.abc import Callable
from typing import Any, ClassVar

import _common
from _common import Tool, calculate_score, prepare_data

EXPERIMENT = "quickstart"


def _url(root: pathlib.Path) -> str:
    return f"sqlite:///{root / 'mltraq.db'}"


class Mltraq(Tool):
    name = "mltraq"
    dist = "mltraq"
    module = "mltraq"
    variants: ClassVar[tuple[str, ...]] = ("persist_each", "persist_once")

    def trials(self, root: pathlib.Path, n: int) -> Callable[[int, int], Any]:
        import mltraq

        session = mltraq.create_session(_url(root))
        experiment = session.create_experiment(EXPERIMENT)
        each = self.variant == "persist_each"
        self._pending = experiment

        def trial(a: int, b: int) -> float:
            with experiment.run() as run:
                run.fields.a = a
                run.fields.b = b
                run.fields.result = calculate_score(prepare_data(a, b))
            if each:
                experiment.persist(if_exists="replace")
            return run.fields.result

        return trial

    def finish_trials(self) -> float:
        if self.variant == "persist_each":
            return 0.0
        t0 = time.perf_counter()
        self._pending.persist(if_exists="replace")
        return time.perf_counter() - t0

    def count_trials(self, root: pathlib.Path) -> int:
        import mltraq

        return len(mltraq.create_session(_url(root)).load_experiment(EXPERIMENT).runs)

    def metrics(self, root: pathlib.Path) -> Callable[[int], dict[str, float]]:
        import mltraq

        experiment = mltraq.create_session(_url(root)).create_experiment(EXPERIMENT)

        def log_points(points: int) -> dict[str, float]:
            with experiment.run() as run:
                run.fields.metrics = mltraq.Sequence()
                t0 = time.perf_counter()
                for _ in range(points):
                    run.fields.metrics.append(loss=0.5)  # idx (the step) and timestamp are added
                loop = time.perf_counter() - t0
            experiment.persist(if_exists="replace")
            return {"loop_s": loop}

        return log_points

    def populate_history(self, root: pathlib.Path, n: int) -> None:
        import mltraq

        experiment = mltraq.create_session(_url(root)).create_experiment(EXPERIMENT)
        for i in range(n):
            with experiment.run() as run:
                run.fields.a, run.fields.b = i, 1
                run.fields.result = calculate_score(prepare_data(i, 1))
        experiment.persist(if_exists="replace")

    def open_store(self, root: pathlib.Path) -> Any:
        import mltraq

        return mltraq.create_session(_url(root))

    def read_history(self, handle: Any) -> Any:
        return handle.load_experiment(EXPERIMENT).runs.df()

    def read_metric(self, handle: Any) -> Any:
        return handle.load_experiment(EXPERIMENT).runs.first().fields.metrics.df()


if __name__ == "__main__":
    raise SystemExit(_common.main(Mltraq))

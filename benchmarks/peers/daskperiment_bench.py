"""daskperiment (this repository) on the peer workloads: the "ours" row every ratio is taken against.

Runs with the repository's own environment (``pip install -r requirements/dev.txt``), not the
peers venv. Variants (``--variant``):

* ``local`` (default): the local backend with full capture (code context, environment, purity
  hashes, seeding), a fresh experiment directory per repetition;
* ``floor``: the same two-step graph computed by bare ``dask.compute``, nothing recorded — the
  cost of Dask itself, so ``ours − floor`` is our tracking overhead (trials workload only);
* ``redis`` / ``mongo``: our Redis and MongoDB backends against private servers started here on
  127.0.0.1 (a free port, a temp dir) by :mod:`pytest_daskperiment.servers` (the pytest-daskperiment distribution) (workload 6);
* ``postgresql``: our SQL backend on a private PostgreSQL server started the same way
  (every experiment gets a fresh id in one database).

Same CLI and JSON as every peer (see README.md).
"""

from __future__ import annotations

import contextlib
import logging
import pathlib
from collections.abc import Callable
from typing import Any, ClassVar

import _common
from _common import METRIC_KEY, Tool, calculate_score, prepare_data, save_metric_step

EXPERIMENT = "quickstart"


class Daskperiment(Tool):
    name = "daskperiment"
    dist = "daskperiment"
    module = "daskperiment"
    variants: ClassVar[tuple[str, ...]] = ("local", "floor", "redis", "mongo", "postgresql")

    def __init__(self, variant: str) -> None:
        super().__init__(variant)
        logging.getLogger("daskperiment").setLevel(logging.WARNING)  # no per-trial INFO lines
        self._servers = contextlib.ExitStack()
        self._server_uri: str | None = None
        self._count = 0  # experiments made so far: each gets a fresh id
        self._id = ""  # the latest experiment's id and root, to load it back (history, metric_read)
        self._root = pathlib.Path()
        self._floor_trials = 0  # trials the floor variant ran (it has no store to count them in)

    # -- where the experiment lives -------------------------------------------------------------
    def _backend(self, root: pathlib.Path) -> Any:
        """A fresh store per call: a new directory, or a new experiment id on the shared server."""
        if self.variant in ("local", "floor"):
            return root / "daskperiment_cache"
        if self._server_uri is None and self.variant == "postgresql":
            from pytest_daskperiment.servers import PostgreSQLServer

            self._server_uri = self._servers.enter_context(PostgreSQLServer()).url
        if self._server_uri is None:
            from pytest_daskperiment.servers import MongoServer, RedisServer

            server_cls = RedisServer if self.variant == "redis" else MongoServer
            uri = self._servers.enter_context(server_cls()).uri
            self._server_uri = f"{uri.rstrip('/')}/daskperiment_bench" if self.variant == "mongo" else uri
        return self._server_uri

    def _tracked(self) -> None:
        if self.variant == "floor":
            raise ValueError("the floor variant records nothing: it runs the trials workload only")

    def _experiment(self, root: pathlib.Path) -> Any:
        import daskperiment

        self._tracked()
        self._count += 1
        self._id = f"{EXPERIMENT}{self._count}"
        self._root = root
        return daskperiment.Experiment(self._id, backend=self._backend(root))

    def _quickstart(self, root: pathlib.Path) -> tuple[Any, Any]:
        ex = self._experiment(root)
        a, b = ex.parameter("a"), ex.parameter("b")
        step = ex(prepare_data)
        result = ex.result(calculate_score)(step(a, b))
        return ex, result

    # -- workloads --------------------------------------------------------------------------------
    def trials(self, root: pathlib.Path, n: int) -> Callable[[int, int], Any]:
        if self.variant == "floor":
            import dask

            self._floor_trials = 0  # per repetition, like a fresh store

            def bare(a: int, b: int) -> float:
                self._floor_trials += 1
                return dask.compute(dask.delayed(calculate_score)(dask.delayed(prepare_data)(a, b)))[0]

            return bare
        ex, result = self._quickstart(root)

        def trial(a: int, b: int) -> float:
            ex.set_parameters(a=a, b=b)
            return result.compute()

        return trial

    def count_trials(self, root: pathlib.Path) -> int:
        if self.variant == "floor":
            return self._floor_trials
        return len(self._reopen().get_history())

    def metrics(self, root: pathlib.Path) -> Callable[[int], dict[str, float]]:
        ex = self._experiment(root)
        points = ex.parameter("points")
        span: dict[str, float] = {}
        result = ex.result(save_metric_step(ex, span))(points)

        def trial(n: int) -> dict[str, float]:
            ex.set_parameters(points=n)
            result.compute()  # returns once the last batch is flushed to the store
            return dict(span)

        return trial

    def _reopen(self) -> Any:
        """The experiment loaded back from its store, as a later session would see it."""
        import daskperiment

        self._tracked()
        return daskperiment.Experiment(self._id, backend=self._backend(self._root))

    def open_store(self, root: pathlib.Path) -> Any:
        return self._reopen()

    def read_history(self, handle: Any) -> Any:
        return handle.get_history()

    def read_metric(self, handle: Any) -> Any:
        return handle.load_metric(METRIC_KEY, trial_id=1)

    def close(self) -> None:
        self._servers.close()


if __name__ == "__main__":
    raise SystemExit(_common.main(Daskperiment))

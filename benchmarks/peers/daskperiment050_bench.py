"""The original daskperiment 0.5.0 (PyPI) on the peer workloads (CLI and JSON: README.md).

Same quickstart code as its documentation: ``ex.parameter``, ``@ex`` / ``@ex.result``,
``ex.set_parameters`` then ``.compute()``; metrics with ``ex.save_metric`` inside a step. Its
local backend writes ``daskperiment_cache/`` (and its logger ``daskperiment_log/``, at import)
relative to the working directory, which the driver points at a scratch dir first.

0.5.0 runs a trial by itself when a Result is built in a script (``__main__`` has a file), taking
parameters from ``sys.argv``; that would parse this benchmark's own flags, so the detected shell
is set to the interactive one, the mode its notebook examples use.
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable
from typing import Any, ClassVar

import _common
from _common import METRIC_KEY, Tool, save_metric_step

_count = 0


def _interactive() -> None:
    """Make 0.5.0 see an interactive shell: no auto-run from ``sys.argv`` (see above)."""
    from daskperiment.environment.python import PythonEnvironment

    PythonEnvironment.get_python_mode = lambda self: "Interactive Terminal"


def _experiment(label: str) -> Any:
    """A new Experiment in the current directory (ids are cached per process, so make them unique)."""
    import daskperiment

    global _count
    _count += 1
    _interactive()
    return daskperiment.Experiment(id=f"{label}{_count}")


def _reopen(ex: Any) -> Any:
    """The same experiment loaded back from disk, as a later session would see it."""
    import daskperiment

    daskperiment.Experiment._instance_cache.pop(ex.id, None)
    return daskperiment.Experiment(id=ex.id)


class Daskperiment050(Tool):
    name = "daskperiment050"
    dist = "daskperiment"
    module = "daskperiment"
    variants: ClassVar[tuple[str, ...]] = ("default",)

    def trials(self, root: pathlib.Path, n: int) -> Callable[[int, int], Any]:
        ex = _experiment("quickstart")
        a, b = ex.parameter("a"), ex.parameter("b")

        @ex
        def prepare_data(a: int, b: int) -> int:
            return a + b

        @ex.result
        def calculate_score(s: int) -> float:
            return 10 / s

        result = calculate_score(prepare_data(a, b))
        self._ex = ex

        def trial(a: int, b: int) -> float:
            ex.set_parameters(a=a, b=b)
            return result.compute()

        return trial

    def count_trials(self, root: pathlib.Path) -> int:
        return len(_reopen(self._ex).get_history())

    def metrics(self, root: pathlib.Path) -> Callable[[int], dict[str, float]]:
        ex = _experiment("metrics")
        points = ex.parameter("points")
        span: dict[str, float] = {}
        result = ex.result(save_metric_step(ex, span))(points)
        self._ex = ex

        def trial(n: int) -> dict[str, float]:
            ex.set_parameters(points=n)
            result.compute()  # the experiment (metrics included) is pickled to disk as the trial ends
            return dict(span)

        return trial

    def open_store(self, root: pathlib.Path) -> Any:
        return _reopen(self._ex)

    def read_history(self, handle: Any) -> Any:
        return handle.get_history()

    def read_metric(self, handle: Any) -> Any:
        return handle.load_metric(METRIC_KEY, trial_id=1)


if __name__ == "__main__":
    raise SystemExit(_common.main(Daskperiment050))

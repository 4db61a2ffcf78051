"""The one use of Dask internals (see daskperiment/dask_compat.py): if a Dask release moves them,
this names what broke."""

from __future__ import annotations

import dask
from dask.task_spec import GraphNode

from daskperiment.dask_compat import as_task_graph


def test_task_spec_graphs_pass_through_unchanged():
    graph = dict(dask.delayed(sum)([1, 2]).__dask_graph__())
    assert as_task_graph(graph) == graph


def test_legacy_tuple_tasks_are_converted_by_dask_private_converter():
    """dask._task_spec.convert_legacy_graph: if this fails, Dask moved or changed it."""
    converted = as_task_graph({"x": 1, "y": (sum, ["x", "x"])})
    assert all(isinstance(node, GraphNode) for node in converted.values())
    assert dask.get(converted, "y") == 2


def _graph() -> tuple[dict[object, GraphNode], str]:
    import threading

    from dask.task_spec import Task, TaskRef

    graph = {"x": Task("x", threading.get_ident), "y": Task("y", lambda t: (t, threading.get_ident()), TaskRef("x"))}
    return graph, "y"


def test_compute_graph_uses_the_scheduler_dask_compute_would_choose():
    """dask.base.get_scheduler / named_schedulers: if this fails, Dask moved the scheduler choice."""
    import threading

    from daskperiment.dask_compat import compute_graph

    graph, key = _graph()
    here = threading.get_ident()
    assert compute_graph(graph, key, {"scheduler": "sync"}) == (here, here)
    with dask.config.set(scheduler="synchronous"):
        assert compute_graph(graph, key, {}) == (here, here)
    first, second = compute_graph(graph, key, {"scheduler": "threads"})
    assert here not in (first, second)
    first, second = compute_graph(graph, key, {"scheduler": "threads", "num_workers": 1})  # scheduler keywords pass
    assert first == second != here  # one worker thread ran both tasks


def test_compute_graph_keeps_dask_computes_options_and_errors():
    """Options of dask.compute itself go through dask.compute; a failing task raises its own error
    (dask.utils.shorten_traceback: if this fails, Dask moved it)."""
    import pytest
    from dask.task_spec import Task

    from daskperiment.dask_compat import compute_graph

    graph, key = _graph()
    assert compute_graph(graph, key, {"optimize_graph": False, "scheduler": "sync"})[0] is not None
    with pytest.raises(ZeroDivisionError):
        compute_graph({"z": Task("z", lambda: 1 / 0)}, "z", {})

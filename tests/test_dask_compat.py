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

"""The one place daskperiment touches Dask internals.

Everything else uses Dask's public API (``dask.delayed``, ``dask.compute``,
``dask.task_spec``). Graphs built by ``dask.delayed`` are task-spec graphs
already; only graphs mixing in old-style tuple tasks (from a collection that still
builds them) need converting, and the converter is not public yet. When a Dask
release moves it, ``tests/test_dask_compat.py`` fails naming this function.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

from dask.task_spec import GraphNode

__all__ = ["as_task_graph", "distributed_client", "replace_local_result"]


def as_task_graph(graph: Mapping[Any, Any]) -> dict[Any, GraphNode]:
    """``graph`` with every value a :class:`dask.task_spec.GraphNode`."""
    graph = dict(graph)
    if all(isinstance(node, GraphNode) for node in graph.values()):
        return graph
    from dask._task_spec import convert_legacy_graph  # private: see the module docstring

    converted: dict[Any, GraphNode] = convert_legacy_graph(graph)  # unannotated in Dask
    return converted


def distributed_client(scheduler: Any = None) -> Any:
    """The ``distributed.Client`` that ``dask.compute(..., scheduler=scheduler)`` would run on, else ``None``.

    A sweep takes its results as futures on a cluster (to go on past failures and stop
    early) and through scheduler callbacks locally. ``scheduler`` may be a Client, a
    scheduler name, or ``None`` (then the default Client, if one is set, like dask does).
    """
    if "distributed" not in sys.modules:  # no Client can exist; do not import distributed for nothing
        return None
    from dask.base import get_scheduler
    from distributed import Client

    get = get_scheduler(scheduler=scheduler)
    client = getattr(get, "__self__", None)
    return client if isinstance(client, Client) else None


def replace_local_result(state: Any, key: Any, value: Any) -> None:
    """Make Dask's local scheduler hold ``value`` as the result of ``key`` from now on.

    A scheduler callback's ``state`` holds finished results in ``state["cache"]`` until
    their dependents ran; a sweep takes each trial's records out of its value as it
    arrives, so the scheduler need not keep them until the sweep ends (undocumented
    key: without it, the records are only held longer).
    """
    cache = state.get("cache") if isinstance(state, dict) else None
    if isinstance(cache, dict) and key in cache:
        cache[key] = value

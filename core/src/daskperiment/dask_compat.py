"""The one place daskperiment touches Dask internals.

Everything else uses Dask's public API (``dask.delayed``, ``dask.compute``,
``dask.task_spec``). Graphs built by ``dask.delayed`` are task-spec graphs
already; only graphs mixing in old-style tuple tasks (from a collection that still
builds them) need converting, and the converter is not public yet. A trial's bound
graph is run by the scheduler :func:`dask.compute` would choose, called directly
(:func:`compute_graph`). When a Dask release moves any of these,
``tests/test_dask_compat.py`` fails naming the function.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import Any

import dask
from dask.base import get_scheduler, named_schedulers
from dask.delayed import Delayed
from dask.task_spec import GraphNode
from dask.utils import shorten_traceback

__all__ = ["as_task_graph", "compute_graph", "distributed_client", "replace_local_result", "scheduler_of"]

#: ``dask.compute`` keywords that change what is computed, not where: with any of them the graph
#: goes through ``dask.compute`` itself.
_COMPUTE_OPTIONS = frozenset({"optimize_graph", "traverse", "get"})


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


#: Stands for any Delayed when asking which scheduler ``dask.compute`` would use (Delayed's default).
_ANY_DELAYED = Delayed("daskperiment-scheduler-probe", {})


def scheduler_of(dask_kwargs: Mapping[str, Any]) -> Callable[..., Any]:
    """The scheduler function ``dask.compute`` would run a Delayed on with these keywords
    (``scheduler=``, ``dask.config``, a default distributed ``Client``, or Delayed's threads).

    About 10 µs (it looks for a default ``Client``): a trial asks once and passes the answer on.
    """
    get: Callable[..., Any] = get_scheduler(scheduler=dask_kwargs.get("scheduler"), get=dask_kwargs.get("get"),
                                            collections=[_ANY_DELAYED])
    return get


def compute_graph(graph: dict[Any, GraphNode], key: Any, dask_kwargs: Mapping[str, Any],
                  get: Callable[..., Any] | None = None) -> Any:
    """``dask.compute(Delayed(key, graph), **dask_kwargs)[0]``, minus Dask's expression layer where it does nothing.

    ``dask.compute`` wraps a collection in expressions, tokenizes and optimizes them,
    then hands a plain graph to the scheduler: about 0.4 ms per call here, more than
    running a two-task trial. A trial's bound graph is already what optimizing a
    Delayed would give (only the result's dependencies; nothing to fuse unless
    ``optimization.fuse.delayed`` is set), so when the scheduler ``dask.compute``
    would choose (``get``, or :func:`scheduler_of` the keywords) is one of Dask's
    local ones (threads, processes, synchronous), it is called with the graph
    directly, with the same keywords and the same shortened tracebacks. Any other
    scheduler (a distributed ``Client``, an ``Executor``, a custom callable) and any
    option of ``dask.compute`` itself go through ``dask.compute``.
    """
    if not _COMPUTE_OPTIONS.isdisjoint(dask_kwargs) or dask.config.get("optimization.fuse.delayed", False):
        return dask.compute(Delayed(key, graph), **dask_kwargs)[0]
    if get is None:
        get = scheduler_of(dask_kwargs)
    if get not in named_schedulers.values():
        return dask.compute(Delayed(key, graph), **dask_kwargs)[0]
    kwargs = {name: value for name, value in dask_kwargs.items() if name != "scheduler"}
    with shorten_traceback():
        return get(graph, key, **kwargs)


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

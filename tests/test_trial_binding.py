"""trial.rebind: binding a trial's graph without Dask's general substitution gives the same graph."""

from __future__ import annotations

import dask
from dask.task_spec import DataNode, Task, TaskRef

from daskperiment.dask_compat import as_task_graph
from daskperiment.trial import bind_graph, rebind


def _graph() -> tuple[dict[object, object], str]:
    a = dask.delayed(lambda: 0, pure=True)(dask_key_name="param-a")  # stands for a parameter, bound below
    b = dask.delayed(lambda x, y=1: x * 10 + y)(a, y=a, dask_key_name="step-b")  # a reference and a keyword
    c = dask.delayed(lambda xs, k: sum(xs) + k)([a, b], k=3, dask_key_name="step-c")  # nested: a list of refs
    return as_task_graph(c.__dask_graph__()), "step-c"


def test_rebind_matches_dasks_substitution():
    graph, _ = _graph()
    inlined = {"param-a": DataNode(None, 4)}
    renames = {key: f"{key}-t1" for key in graph if key != "param-a"}
    for old, new in renames.items():
        ours, dasks = rebind(graph[old], new, inlined, renames), graph[old].substitute({**inlined, **renames}, key=new)
        assert ours.key == dasks.key == new
        assert ours.dependencies == dasks.dependencies
    fast = rebind(graph["step-b"], "b2", inlined, renames)
    assert type(fast) is Task and fast.dependencies == frozenset()  # the parameter inlined, nothing to wait for


def test_bound_graph_computes_with_the_bound_values():
    graph, key = _graph()
    bound, keys = bind_graph(graph, {"param-a": 4}, "-trial7")
    assert set(bound) == {"step-b-trial7", "step-c-trial7"} and keys[key] == "step-c-trial7"
    assert dask.get(bound, keys[key]) == 4 + 44 + 3  # b = 4 * 10 + 4 (keyword y=a)


def test_references_that_are_not_ours_are_kept():
    """A reference to a key neither bound nor renamed (a distributed Future, say) stays the same object."""
    outside = TaskRef("elsewhere")
    node = Task("t", lambda x, y: (x, y), outside, TaskRef("param-a"))
    bound = rebind(node, "t-1", {"param-a": DataNode(None, 1)}, {})
    assert bound.args[0] is outside and bound.dependencies == frozenset({"elsewhere"})

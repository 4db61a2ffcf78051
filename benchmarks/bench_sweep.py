"""Workload 7: parameter sweeps — ``ex.sweep`` on the threaded scheduler and on a LocalCluster.

**Threaded, quickstart graph** (issue "Sweeps"): N (10,000) trials of the two-step quickstart
graph as ONE ``ex.sweep(...).compute()`` on the local threaded scheduler, next to the same N
graphs computed untracked in ONE ``dask.compute`` (the floor) and N one-by-one tracked
``compute()`` calls. Floors: sweep ≤ 1.15× the untracked graph, and ≥ 5× faster than one by
one. Printed as ``threaded`` in the JSON and as a table on stderr.

**Cluster, CPU-bound step** (below): also timed as one graph — ``ex.sweep`` vs the untracked
steps in one ``dask.compute`` on the same cluster (floor: ≤ 1.05×), as ``one_graph``.

N trials of one step doing ~20 ms of numpy work (calibrated on this machine), computed on a
LocalCluster with 1 and then 2 worker processes (one thread each, BLAS pinned to one thread),
tracked by daskperiment (local backend, full capture) and untracked (bare ``dask.compute`` of
the same step on the same cluster). Trials are submitted from ``2 × workers`` client threads,
each holding its own :class:`daskperiment.Experiment` on the shared store, so the workers
always have a trial to run. Prints one JSON line:

* ``wall_s``: wall time per (workers, tracked/untracked);
* ``speedup``: 1-worker wall time / 2-worker wall time (tracked and untracked);
* ``overhead_share``: (tracked − untracked) / tracked wall time, per cluster size.

    python benchmarks/bench_sweep.py              # 1,000 cluster trials, 10,000 threaded (several minutes)
    python benchmarks/bench_sweep.py --quick      # 20 cluster trials, 200 threaded (seconds, plus cluster start-up)
    python benchmarks/bench_sweep.py --only threaded --threaded-n 10000   # the threaded figures alone
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import logging
import os
import pathlib
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # before numpy loads
    os.environ.setdefault(_var, "1")
os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")  # no cluster start/stop chatter on stderr

import numpy as np  # noqa: E402

log = logging.getLogger("bench_sweep")
TARGET_S = 0.020  # CPU time of one trial's step


def cpu_work(seed: int, rounds: int) -> float:
    """Deterministic numpy work: ``rounds`` products of a 200×200 matrix."""
    x = np.random.default_rng(seed).random((200, 200))
    for _ in range(rounds):
        x = np.tanh(x @ x.T / 200)
    return float(x.sum())


def calibrate(target: float = TARGET_S) -> int:
    """Rounds of :func:`cpu_work` taking about ``target`` seconds here (median of a few runs)."""
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        cpu_work(0, 10)
        times.append(time.perf_counter() - t0)
    return max(1, round(target / (statistics.median(times) / 10)))


def _run_threads(n: int, threads: int, run_one: Callable[[int, int], None]) -> float:
    """Wall time of ``run_one(thread, i)`` for i in 0..n-1 spread over ``threads`` client threads."""
    t0 = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda k: [run_one(k, i) for i in range(k, n, threads)], range(threads)))
    return time.perf_counter() - t0


def tracked(root: pathlib.Path, n: int, rounds: int, threads: int) -> float:
    """Wall time of ``n`` daskperiment trials on the current cluster; fails unless all were recorded.

    Parameters live on the Experiment, so each client thread holds its own (same id, same store).
    """
    import daskperiment

    def experiment() -> tuple[Any, Any]:
        ex = daskperiment.Experiment("sweep", backend=root)
        seed = ex.parameter("seed")

        @ex.result
        def score(seed: int) -> float:
            return cpu_work(seed, rounds)

        return ex, score(seed)

    pairs = [experiment() for _ in range(threads)]  # one Experiment (parameters) per client thread
    for ex, _ in pairs:
        ex.set_parameters(seed=0)
    pairs[0][1].compute(seed=1)  # environment collected and workers warm before timing

    def run_one(k: int, i: int) -> None:
        ex, result = pairs[k]
        ex.set_parameters(seed=i)
        result.compute(seed=1)

    wall = _run_threads(n, threads, run_one)
    history = pairs[0][0].get_history()
    if not history["Success"].all() or sorted(history["seed"]) != [0, *range(n)]:
        raise RuntimeError(f"expected {n + 1} successful trials (seeds 0, 0..{n - 1}), found {len(history)}")
    return wall


def untracked(n: int, rounds: int, threads: int) -> float:
    """Wall time of the same ``n`` steps by bare ``dask.compute``: the floor of the tracked sweep."""
    import dask

    def run_one(k: int, i: int) -> None:
        dask.compute(dask.delayed(cpu_work)(i, rounds))

    run_one(0, 0)
    return _run_threads(n, threads, run_one)


def quickstart(root: pathlib.Path) -> tuple[Any, Any]:
    """The README's quickstart experiment (two steps, parameters a and b), without metrics."""
    import daskperiment

    ex = daskperiment.Experiment("quickstart", backend=root)
    a, b = ex.parameter("a"), ex.parameter("b")

    @ex
    def prepare_data(a: int, b: int) -> int:
        return a + b

    @ex.result
    def calculate_score(s: int) -> float:
        return 10 / s

    return ex, calculate_score(prepare_data(a, b))


def _sink(*values: float) -> int:
    return len(values)


def _bare_graph(a: int, b: int) -> Any:
    import dask

    return dask.delayed(lambda s: 10 / s)(dask.delayed(lambda a, b: a + b)(a, b))


def threaded(root: pathlib.Path, n: int) -> dict[str, Any]:
    """Wall times of ``n`` quickstart trials: one sweep, one untracked graph, one-by-one tracked calls."""
    import dask
    from dask.delayed import Delayed
    from dask.task_spec import Task, TaskRef

    ex, result = quickstart(root / "threaded")
    result.with_parameters(a=0, b=1).compute(seed=1)  # environment collected, schedulers imported
    trials = [{"a": i, "b": 1} for i in range(n)]
    t0 = time.perf_counter()
    dask.compute(*[_bare_graph(**t) for t in trials], scheduler="threads")
    untracked_collections = time.perf_counter() - t0
    t0 = time.perf_counter()  # the floor: the same tasks merged into one graph, as a sweep builds it
    finals = [_bare_graph(**t) for t in trials]
    graph = {key: node for d in finals for key, node in d.dask.items()}
    graph["sink"] = Task("sink", _sink, *(TaskRef(d.key) for d in finals))
    dask.compute(Delayed("sink", graph), scheduler="threads", optimize_graph=False)
    untracked_graph = time.perf_counter() - t0
    t0 = time.perf_counter()
    frame = ex.sweep(result, trials).compute(seed=1, scheduler="threads", progress=False)
    sweep = time.perf_counter() - t0
    if len(frame) != n or not frame["Success"].all():
        raise RuntimeError(f"the sweep recorded {len(frame)} trials, {int(frame['Success'].sum())} succeeded")
    t0 = time.perf_counter()
    for t in trials:
        result.with_parameters(**t).compute(seed=1, scheduler="threads")
    one_by_one = time.perf_counter() - t0
    if len(ex.get_history()) != 2 * n + 1:
        raise RuntimeError("one-by-one trials were not all recorded")
    return {"n": n, "sweep_s": sweep, "untracked_graph_s": untracked_graph, "one_by_one_s": one_by_one,
            "sweep_ms_per_trial": sweep / n * 1e3, "untracked_ms_per_trial": untracked_graph / n * 1e3,
            "one_by_one_ms_per_trial": one_by_one / n * 1e3, "untracked_collections_s": untracked_collections,
            "sweep_over_untracked_graph": sweep / untracked_graph, "floor_sweep_over_untracked_graph": 1.15,
            "one_by_one_over_sweep": one_by_one / sweep, "floor_one_by_one_over_sweep": 5.0}


def one_graph(root: pathlib.Path, n: int, rounds: int, reps: int = 1) -> dict[str, float]:
    """On the current cluster: ``n`` CPU-bound trials as one ``ex.sweep`` vs the bare steps in one graph.

    ``reps`` pairs (untracked, then tracked, back to back): the ratio is the median of the pairs'
    ratios, so a machine whose load drifts between pairs still compares like with like.
    """
    import dask
    import daskperiment

    ex = daskperiment.Experiment("one_graph", backend=root)
    seed = ex.parameter("seed")

    @ex.result
    def score(seed: int) -> float:
        return cpu_work(seed, rounds)

    ex.sweep(score(seed), seed=[0, 1]).compute(seed=1, progress=False)  # warm: environment, workers
    bares, ours = [], []
    for _ in range(reps):
        t0 = time.perf_counter()
        dask.compute(*[dask.delayed(cpu_work)(i, rounds) for i in range(n)])
        bares.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        frame = ex.sweep(score(seed), seed=list(range(n))).compute(seed=1, progress=False)
        ours.append(time.perf_counter() - t0)
        if len(frame) != n or not frame["Success"].all():
            raise RuntimeError(f"the cluster sweep recorded {len(frame)} trials")
    return {"untracked": statistics.median(bares), "sweep": statistics.median(ours),
            "sweep_over_untracked": statistics.median(o / b for o, b in zip(ours, bares)), "reps": reps,
            "floor": 1.05}


def measure(n: int, workers: tuple[int, ...] = (1, 2), reps: int = 1) -> dict[str, Any]:
    """The sweep's JSON: untracked then tracked on a fresh LocalCluster per size in ``workers``."""
    from distributed import Client, LocalCluster

    rounds = calibrate()
    t0 = time.perf_counter()
    cpu_work(0, rounds)
    step_ms = (time.perf_counter() - t0) * 1e3
    out: dict[str, Any] = {"n": n, "rounds": rounds, "step_ms": step_ms, "wall_s": {},
                           "python": platform.python_version(), "cpu_count": os.cpu_count()}
    for count in workers:
        with tempfile.TemporaryDirectory() as tmp, \
                LocalCluster(n_workers=count, threads_per_worker=1, processes=True, dashboard_address=None,
                             silence_logs=logging.ERROR) as cluster, Client(cluster):
            threads = 2 * count
            log.info("%d worker(s): untracked", count)
            bare = untracked(n, rounds, threads)
            log.info("%d worker(s): tracked", count)
            ours = tracked(pathlib.Path(tmp) / "store", n, rounds, threads)
            out["wall_s"][str(count)] = {"untracked": bare, "tracked": ours,
                                         "overhead_share": (ours - bare) / ours}
            log.info("%d worker(s): one graph", count)
            out.setdefault("one_graph", {})[str(count)] = one_graph(pathlib.Path(tmp) / "one_graph", n, rounds, reps)
    graphs = out.get("one_graph", {})
    if "1" in graphs and "2" in graphs:
        out["one_graph_speedup"] = {kind: graphs["1"][kind] / graphs["2"][kind] for kind in ("sweep", "untracked")}
    walls = out["wall_s"]
    if "1" in walls and "2" in walls:
        out["speedup"] = {kind: walls["1"][kind] / walls["2"][kind] for kind in ("tracked", "untracked")}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, help="trials per cluster size (default 1,000; --quick 20)")
    parser.add_argument("--quick", action="store_true", help="20 trials")
    parser.add_argument("--out", type=pathlib.Path, help="also write the JSON to this file")
    parser.add_argument("--threaded-n", type=int, help="quickstart trials on threads (default 10 × --n: 10,000)")
    parser.add_argument("--only", choices=("threaded", "cluster"), help="one of the two parts")
    parser.add_argument("--reps", type=int, default=1,
                        help="cluster one-graph pairs (untracked, sweep) per cluster size; median ratio (default 1)")
    parser.add_argument("-v", "--verbose", action="store_true", help="progress on stderr")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    log.setLevel(logging.INFO if args.verbose else logging.WARNING)
    n = args.n if args.n is not None else (20 if args.quick else 1_000)
    threaded_n = args.threaded_n if args.threaded_n is not None else 10 * n  # 10,000 by default, 200 with --quick
    out: dict[str, Any] = measure(n, reps=args.reps) if args.only != "threaded" else {"n": 0, "wall_s": {}}
    if args.only != "cluster":
        with tempfile.TemporaryDirectory() as tmp:
            out["threaded"] = threaded(pathlib.Path(tmp), threaded_n)
        log.warning("%s", summary(out))
    text = json.dumps(out)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


def summary(out: dict[str, Any]) -> str:
    """The threaded figures next to their floors, for people (the JSON is for compare.py)."""
    t = out["threaded"]
    lines = [f"{t['n']:,} quickstart trials on the threaded scheduler:",
             f"  one sweep            {t['sweep_s']:8.2f} s  {t['sweep_ms_per_trial']:7.3f} ms/trial",
             f"  untracked one graph  {t['untracked_graph_s']:8.2f} s  {t['untracked_ms_per_trial']:7.3f} ms/trial",
             f"  one-by-one compute() {t['one_by_one_s']:8.2f} s  {t['one_by_one_ms_per_trial']:7.3f} ms/trial",
             f"  (untracked as dask.compute(*graphs): {t['untracked_collections_s']:.2f} s)",
             f"  sweep / untracked graph = {t['sweep_over_untracked_graph']:.2f}x (floor <= 1.15x); "
             f"one-by-one / sweep = {t['one_by_one_over_sweep']:.1f}x (floor >= 5x)"]
    for workers, g in out.get("one_graph", {}).items():
        lines.append(f"  cluster, {workers} worker(s): sweep {g['sweep']:.2f} s, untracked one graph "
                     f"{g['untracked']:.2f} s = {g['sweep_over_untracked']:.2f}x (floor <= 1.05x)")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())

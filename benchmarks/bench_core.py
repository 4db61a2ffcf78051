"""Core speed targets of daskperiment on the local backend (prints numbers, asserts nothing).

Targets (issues "Core" and "Core redesign"): per-trial overhead over bare ``dask.compute``
≤ 0.3 ms, measured with tracked and bare trials alternating one by one, and flat (trial 10,000 ≤ 1.2× trial 100);
``save_metric`` ≥ 2,000,000 points/s end-to-end; ``save_metrics`` (arrays, issue "Hardening" item 10)
≥ 50,000,000 points/s end-to-end; ``load_metric`` of 1,000,000 points
≤ 100 ms; ``get_history()`` of 100,000 trials ≤ 300 ms. Each figure is printed next
to the same work done by bare ``dask.compute`` (the floor).

    python benchmarks/bench_core.py            # full sizes
    python benchmarks/bench_core.py --quick    # small sizes, seconds
"""

from __future__ import annotations

import argparse
import json
import logging
import pathlib
import statistics
import sys
import tempfile
import time
from typing import Any

import dask


def quickstart(root: pathlib.Path, name: str = "bench"):
    import daskperiment

    ex = daskperiment.Experiment(name, backend=root / name)
    a, b = ex.parameter("a"), ex.parameter("b")

    @ex
    def prepare_data(a, b):
        return a + b

    @ex.result
    def calculate_score(s):
        return 10 / s

    return ex, calculate_score(prepare_data(a, b))


def bare_graph(a: int, b: int):
    return dask.delayed(lambda s: 10 / s)(dask.delayed(lambda a, b: a + b)(a, b))


def bare_direct(a: int, b: int) -> Any:
    """The bare graph run the way ``s.compute()`` runs a trial's graph: by the scheduler
    ``dask.compute`` would choose, called directly (``daskperiment.dask_compat.compute_graph``)."""
    from dask.base import get_scheduler

    graph = bare_graph(a, b)
    return get_scheduler(collections=[graph])(dict(graph.__dask_graph__()), graph.key)


def trials(root: pathlib.Path, n: int, window: int = 100) -> dict[str, Any]:
    """Per-trial times of ``n`` tracked trials, each followed by the same graph computed bare.

    Alternating one by one cancels the machine's drift (another process, CPU frequency):
    the overhead is the median of the per-pair differences. The bare graph is computed twice:
    by ``dask.compute`` (the floor of the target) and by the scheduler called directly, as
    ``s.compute()`` runs a trial's graph; the difference to the latter is the tracking alone
    (recording, hashing, seeding, bookkeeping).
    """
    ex, result = quickstart(root)
    result.with_parameters(a=0, b=1).compute(seed=1)  # the first compute imports dask's schedulers
    times, floor, direct = [], [], []
    for i in range(n):
        trial = result.with_parameters(a=i, b=1)
        t0 = time.perf_counter()
        trial.compute(seed=1)
        t1 = time.perf_counter()
        dask.compute(bare_graph(i, 1))
        t2 = time.perf_counter()
        bare_direct(i, 1)
        t3 = time.perf_counter()
        times.append(t1 - t0)
        floor.append(t2 - t1)
        direct.append(t3 - t2)
    first = statistics.median(times[:window]) * 1e3
    last = statistics.median(times[-window:]) * 1e3
    return {"n": n, "mean_ms": statistics.fmean(times) * 1e3, "first_ms": first, "last_ms": last,
            "last_over_first": last / first, "floor_ms": statistics.median(floor) * 1e3,
            "overhead_ms": statistics.median(t - f for t, f in zip(times, floor)) * 1e3,
            "direct_floor_ms": statistics.median(direct) * 1e3,
            "tracking_ms": statistics.median(t - d for t, d in zip(times, direct)) * 1e3}


def metrics(root: pathlib.Path, points: int) -> dict[str, Any]:
    import daskperiment

    ex = daskperiment.Experiment("metrics", backend=root / "metrics")
    span: dict[str, float] = {}

    @ex.result
    def log_points(n):
        t0 = time.perf_counter()
        for i in range(n):
            ex.save_metric("loss", epoch=i, value=0.5)
        span["loop"] = time.perf_counter() - t0
        return n

    t0 = time.perf_counter()
    log_points(points).compute(seed=1)  # includes the final flush to disk
    total = time.perf_counter() - t0
    t0 = time.perf_counter()
    frame = ex.load_metric("loss", trial_id=1)
    load = time.perf_counter() - t0
    assert len(frame) == points
    floor_t0 = time.perf_counter()
    sink = []
    for i in range(points):
        sink.append((i, 0.5))
    floor = time.perf_counter() - floor_t0
    return {"points": points, "points_per_s": points / total, "loop_points_per_s": points / span["loop"],
            "floor_points_per_s (list.append)": points / floor, "load_metric_ms": load * 1e3}


def vectorised_metrics(root: pathlib.Path, points: int, reps: int = 3) -> dict[str, Any]:
    """``ex.save_metrics(key, epochs, values)``: a trial whose step logs ``points`` at once, timed from
    ``compute()`` to the trial's end (points on disk). The floor writes the same bytes to one file
    (``ndarray.tofile``); the two alternate ``reps`` times and the medians are reported, since both
    are bound by how fast this machine's disk takes writes."""
    import numpy as np

    import daskperiment

    ex = daskperiment.Experiment("vectorised", backend=root / "vectorised")
    epochs, values = np.arange(points, dtype=np.int64), np.random.default_rng(1).random(points)

    @ex.result
    def log_arrays(n):
        ex.save_metrics("loss", epochs[:n], values[:n])
        return n

    log_arrays(1).compute(seed=1)  # warm-up: the first trial of a process pays for imports
    ours, floor = [], []
    for rep in range(reps):
        t0 = time.perf_counter()
        log_arrays(points).compute(seed=1)
        ours.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        with open(root / f"floor{rep}.bin", "wb") as out:
            epochs.tofile(out)
            values.tofile(out)
        floor.append(time.perf_counter() - t0)
    assert len(ex.load_metric("loss", trial_id=2)) == points
    return {"points": points, "points_per_s": points / statistics.median(ours),
            "floor_points_per_s (file write)": points / statistics.median(floor)}


def history(root: pathlib.Path, n: int) -> dict[str, Any]:
    """get_history() after ``n`` trials (rows written directly through the backend)."""
    import daskperiment

    ex = daskperiment.Experiment("history", backend=root / "history")
    backend = ex.backend
    db = backend._db()
    db.execute("BEGIN")
    for i in range(n):
        tid = backend.start_trial({"parameters": {"a": i, "b": 2}, "seed": 1, "started": time.time()})
        backend.finish_trial(tid, {"finished": time.time(), "process_time": 0.01, "success": True,
                                   "result": 10 / (i + 2), "result_type": "<class 'float'>"})
    db.execute("COMMIT")
    runs = []
    for _ in range(5):
        t0 = time.perf_counter()
        frame = ex.get_history()
        runs.append(time.perf_counter() - t0)
    assert len(frame) == n
    return {"n": n, "get_history_ms": statistics.median(runs) * 1e3}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (seconds)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--scratch", default=None,
                        help="directory for the stores (default: the system's temp dir); e.g. /dev/shm to "
                             "take the disk out of the figures")
    args = parser.parse_args(argv)
    logging.getLogger("daskperiment").setLevel(logging.WARNING)
    logging.basicConfig(level=logging.WARNING)
    sizes = (((200, 2_000), 100_000, 10_000, 2_000_000) if args.quick
             else ((200, 2_000, 10_000), 1_000_000, 100_000, 20_000_000))
    out: dict[str, Any] = {"python": sys.version.split()[0], "dask": dask.__version__}
    with tempfile.TemporaryDirectory(dir=args.scratch) as tmp:
        root = pathlib.Path(tmp)
        out["trials"] = [trials(root / f"t{n}", n) for n in sizes[0]]
        out["metrics"] = metrics(root, sizes[1])
        out["save_metrics"] = vectorised_metrics(root, sizes[3])
        out["history"] = history(root, sizes[2])
    if args.json:
        print(json.dumps(out, indent=1))
        return 0
    print(f"python {out['python']}, dask {out['dask']}")
    for row in out["trials"]:
        print(f"trials n={row['n']:>6}: {row['mean_ms']:.3f} ms/trial (floor bare dask.compute "
              f"{row['floor_ms']:.3f} ms, overhead {row['overhead_ms']:.3f} ms, target <= 0.3 ms); last/first "
              f"{row['last_over_first']:.2f}; tracking alone {row['tracking_ms']:.3f} ms over the bare graph on "
              f"the scheduler called directly ({row['direct_floor_ms']:.3f} ms)")
    m = out["metrics"]
    print(f"save_metric: {m['points_per_s']:,.0f} points/s end-to-end to disk ({m['points']:,} points; "
          f"loop alone {m['loop_points_per_s']:,.0f}/s; floor list.append {m['floor_points_per_s (list.append)']:,.0f}/s)")
    v = out["save_metrics"]
    print(f"save_metrics: {v['points_per_s']:,.0f} points/s end-to-end to disk ({v['points']:,} points as arrays; "
          f"target 50,000,000/s; floor raw file write {v['floor_points_per_s (file write)']:,.0f}/s)")
    print(f"load_metric: {m['load_metric_ms']:.1f} ms for {m['points']:,} points")
    print(f"get_history: {out['history']['get_history_ms']:.1f} ms for {out['history']['n']:,} trials")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

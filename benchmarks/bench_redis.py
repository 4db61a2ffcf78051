"""Redis backend speed as ratios to the local backend on the same work (prints numbers, asserts nothing).

Starts its own ``redis-server`` on 127.0.0.1 (a free port, a temporary directory, no
persistence, like a tmpfs) via :mod:`pytest_daskperiment.servers`; the local backend
writes to a temporary directory. Measured for both:

* per-trial time of the quickstart experiment (median), and its overhead over bare
  ``dask.compute`` of the same graph;
* ``save_metric`` throughput: 1,000,000 points saved inside one step, end-to-end
  (buffering, batches, the final flush), then ``load_metric`` of them;
* ``get_history()`` of N trials.

    python benchmarks/bench_redis.py            # full sizes
    python benchmarks/bench_redis.py --quick    # small sizes, seconds
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
from collections.abc import Callable
from typing import Any

import dask


def quickstart(name: str, backend: Any):
    import daskperiment

    ex = daskperiment.Experiment(name, backend=backend)
    a, b = ex.parameter("a"), ex.parameter("b")

    @ex
    def prepare_data(a, b):
        return a + b

    @ex.result
    def calculate_score(s):
        return 10 / s

    return ex, calculate_score(prepare_data(a, b))


def trials(backend: Any, n: int) -> dict[str, float]:
    ex, result = quickstart("trials", backend)
    times = []
    for i in range(n):
        ex.set_parameters(a=i, b=1)
        t0 = time.perf_counter()
        result.compute(seed=1)
        times.append(time.perf_counter() - t0)
    floor = []
    for i in range(min(n, 1_000)):
        graph = dask.delayed(lambda s: 10 / s)(dask.delayed(lambda a, b: a + b)(i, 1))
        t0 = time.perf_counter()
        dask.compute(graph)
        floor.append(time.perf_counter() - t0)
    median_ms = statistics.median(times) * 1e3
    return {"ms_per_trial": median_ms, "overhead_ms": median_ms - statistics.median(floor) * 1e3}


def metrics(backend: Any, points: int) -> dict[str, float]:
    import daskperiment

    ex = daskperiment.Experiment("metrics", backend=backend)

    @ex.result
    def log_points(n):
        for i in range(n):
            ex.save_metric("loss", epoch=i, value=0.5)
        return n

    t0 = time.perf_counter()
    log_points(points).compute(seed=1)
    total = time.perf_counter() - t0
    t0 = time.perf_counter()
    frame = ex.load_metric("loss", trial_id=1)
    load = time.perf_counter() - t0
    assert len(frame) == points
    return {"points_per_s": points / total, "load_metric_ms": load * 1e3}


def _fill_local(backend: Any, n: int) -> None:
    db = backend._db()
    db.execute("BEGIN")
    for i in range(n):
        tid = backend.start_trial({"parameters": {"a": i, "b": 2}, "seed": 1, "started": time.time()})
        backend.finish_trial(tid, {"finished": time.time(), "process_time": 0.01, "success": True,
                                   "result": 10 / (i + 2), "result_type": "<class 'float'>"})
    db.execute("COMMIT")


def _fill_redis(backend: Any, n: int) -> None:
    """The same records, written in the documented layout with a few pipelined commands."""
    from daskperiment_redis.codec import dumps

    client, keys = backend._redis(), backend.keys
    pipe = client.pipeline(transaction=False)
    for start in range(1, n + 1, 10_000):
        ids = range(start, min(start + 10_000, n + 1))
        pipe.hset(keys.trial_start, mapping={i: dumps({"parameters": {"a": i - 1, "b": 2}, "seed": 1,
                                                       "started": time.time()}) for i in ids})
        pipe.hset(keys.trial_outcome, mapping={i: dumps({"finished": time.time(), "process_time": 0.01,
                                                         "success": True, "result": 10 / (i + 1),
                                                         "result_type": "<class 'float'>"}) for i in ids})
    pipe.set(keys.counter, n)
    pipe.execute()


def history(backend: Any, n: int, fill: Callable[[Any, int], None]) -> dict[str, float]:
    import daskperiment

    ex = daskperiment.Experiment("history", backend=backend)
    fill(ex.backend, n)
    runs = []
    for _ in range(5):
        t0 = time.perf_counter()
        frame = ex.get_history()
        runs.append(time.perf_counter() - t0)
    assert len(frame) == n
    return {"get_history_ms": statistics.median(runs) * 1e3}


def measure(backend_for: Callable[[str], Any], fill: Callable[[Any, int], None],
            sizes: tuple[int, int, int]) -> dict[str, Any]:
    n_trials, n_points, n_history = sizes
    return {"trials": trials(backend_for("trials"), n_trials),
            "metrics": metrics(backend_for("metrics"), n_points),
            "history": history(backend_for("history"), n_history, fill)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (seconds)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    logging.getLogger("daskperiment").setLevel(logging.WARNING)
    logging.basicConfig(level=logging.WARNING)
    import redis
    from pytest_daskperiment.servers import RedisServer

    sizes = (200, 200_000, 10_000) if args.quick else (1_000, 1_000_000, 100_000)
    try:
        import hiredis  # noqa: F401 - only reported
        parser_name = "hiredis"
    except ImportError:
        parser_name = "pure-Python parser"
    out: dict[str, Any] = {"python": sys.version.split()[0], "dask": dask.__version__,
                           "redis-py": f"{redis.__version__} ({parser_name})",
                           "sizes": dict(zip(("trials", "metric_points", "history_trials"), sizes))}
    with tempfile.TemporaryDirectory() as tmp, RedisServer() as server:
        client = server.client()
        out["redis-server"] = client.info("server")["redis_version"]
        client.close()
        root = pathlib.Path(tmp)
        out["local"] = measure(lambda name: root / name, _fill_local, sizes)
        out["redis"] = measure(lambda name: server.uri, _fill_redis, sizes)
    rows = [("trials", "ms_per_trial", "ms per quickstart trial"),
            ("trials", "overhead_ms", "ms overhead over bare dask.compute"),
            ("metrics", "points_per_s", "save_metric points/s (higher is better)"),
            ("metrics", "load_metric_ms", "ms load_metric of all points"),
            ("history", "get_history_ms", "ms get_history()")]
    if args.json:
        print(json.dumps(out, indent=1))
        return 0
    print(f"python {out['python']}, dask {out['dask']}, redis-py {out['redis-py']}, "
          f"redis-server {out['redis-server']}; sizes {out['sizes']}")
    print(f"{'measure':<40} {'local':>14} {'redis':>14} {'redis/local':>12}")
    for group, key, text in rows:
        local, remote = out["local"][group][key], out["redis"][group][key]
        print(f"{text:<40} {local:>14,.3f} {remote:>14,.3f} {remote / local:>12.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

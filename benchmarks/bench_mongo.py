"""MongoDB backend speed as ratios to the local backend on the same work (prints numbers, asserts nothing).

Figures: per-trial time of the quickstart experiment, ``save_metric`` throughput (1,000,000
points logged in one step, end-to-end until stored) and ``load_metric``, and
``get_history()`` after N trials. The MongoDB server is a private ``nx-27017`` started here
(a wire-protocol server in Python over SQLite, so absolute MongoDB figures are pessimistic
compared to ``mongod``); set ``DASKPERIMENT_TEST_MONGO_URI=mongodb://host:port/`` to measure
a real server instead.

    python benchmarks/bench_mongo.py            # full sizes (a few minutes)
    python benchmarks/bench_mongo.py --quick    # small sizes
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import pathlib
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from typing import Any

import dask

MakeBackend = Callable[[str], Any]


def quickstart(backend: Any, name: str):
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


def trials(backend: MakeBackend, n: int) -> dict[str, float]:
    ex, result = quickstart(backend("trials"), "trials")
    times = []
    for i in range(n):
        ex.set_parameters(a=i, b=1)
        t0 = time.perf_counter()
        result.compute(seed=1)
        times.append(time.perf_counter() - t0)
    return {"median_ms": statistics.median(times) * 1e3, "mean_ms": statistics.fmean(times) * 1e3}


def metrics(backend: MakeBackend, points: int) -> dict[str, float]:
    import daskperiment

    ex = daskperiment.Experiment("metrics", backend=backend("metrics"))

    @ex.result
    def log_points(n):
        for i in range(n):
            ex.save_metric("loss", epoch=i, value=0.5)
        return n

    t0 = time.perf_counter()
    log_points(points).compute(seed=1)  # includes the final flush
    total = time.perf_counter() - t0
    t0 = time.perf_counter()
    frame = ex.load_metric("loss", trial_id=1)
    load = time.perf_counter() - t0
    assert len(frame) == points
    return {"points_per_s": points / total, "load_metric_ms": load * 1e3}


def history(backend: MakeBackend, n: int) -> dict[str, float]:
    import daskperiment

    ex = daskperiment.Experiment("history", backend=backend("history"))
    t0 = time.perf_counter()
    for i in range(n):
        tid = ex.backend.start_trial({"parameters": {"a": i, "b": 2}, "seed": 1, "started": time.time()})
        ex.backend.finish_trial(tid, {"finished": time.time(), "process_time": 0.01, "success": True,
                                      "result": 10 / (i + 2), "result_type": "<class 'float'>"})
    write = time.perf_counter() - t0
    runs = []
    for _ in range(3):
        t0 = time.perf_counter()
        frame = ex.get_history()
        runs.append(time.perf_counter() - t0)
    assert len(frame) == n
    return {"get_history_ms": statistics.median(runs) * 1e3, "write_trial_ms": write / n * 1e3}


def measure(backend: MakeBackend, sizes: tuple[int, int, int]) -> dict[str, Any]:
    return {"trials": trials(backend, sizes[0]), "metrics": metrics(backend, sizes[1]),
            "history": history(backend, sizes[2])}


def mongo_server_uri(stack: list[Any]) -> str:
    """The server to measure: DASKPERIMENT_TEST_MONGO_URI, or a private nx-27017 started here."""
    if os.environ.get("DASKPERIMENT_TEST_MONGO_URI"):
        return os.environ["DASKPERIMENT_TEST_MONGO_URI"].rstrip("/") + "/"
    from pytest_daskperiment.servers import MongoServer

    server = MongoServer().start()
    stack.append(server)
    return server.uri


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    logging.getLogger("daskperiment").setLevel(logging.WARNING)
    logging.basicConfig(level=logging.WARNING)
    sizes = (100, 200_000, 1_000) if args.quick else (500, 1_000_000, 10_000)
    out: dict[str, Any] = {"python": sys.version.split()[0], "dask": dask.__version__,
                           "sizes": {"trials": sizes[0], "metric_points": sizes[1], "history_trials": sizes[2]}}
    servers: list[Any] = []
    try:
        server_uri = mongo_server_uri(servers)
        database = f"bench_{uuid.uuid4().hex[:8]}"
        with tempfile.TemporaryDirectory() as tmp:
            out["local"] = measure(lambda name: pathlib.Path(tmp) / name, sizes)
        out["mongo"] = measure(lambda name: f"{server_uri}{database}", sizes)
        import pymongo

        with pymongo.MongoClient(server_uri) as client:
            client.drop_database(database)
    finally:
        for server in servers:
            server.close()
    out["server"] = "external" if not servers else "nx-27017 (private)"
    if args.json:
        print(json.dumps(out, indent=1))
        return 0
    local, mongo = out["local"], out["mongo"]
    print(f"python {out['python']}, dask {out['dask']}, MongoDB server: {out['server']}")
    # every ratio compares time for the same work: mongo ÷ local (throughput rows are inverted)
    rows = [
        (f"per-trial time, quickstart ({sizes[0]} trials, median)", "ms", local["trials"]["median_ms"],
         mongo["trials"]["median_ms"]),
        (f"save_metric end-to-end ({sizes[1]:,} points)", "points/s", 1 / local["metrics"]["points_per_s"],
         1 / mongo["metrics"]["points_per_s"]),
        (f"load_metric ({sizes[1]:,} points)", "ms", local["metrics"]["load_metric_ms"],
         mongo["metrics"]["load_metric_ms"]),
        (f"get_history ({sizes[2]:,} trials)", "ms", local["history"]["get_history_ms"],
         mongo["history"]["get_history_ms"]),
        ("start+finish one trial through the backend", "ms", local["history"]["write_trial_ms"],
         mongo["history"]["write_trial_ms"]),
    ]
    for label, unit, lo, mo in rows:
        shown = (1 / lo, 1 / mo) if unit == "points/s" else (lo, mo)
        print(f"{label:<52} local {shown[0]:>12,.2f} {unit:<8} mongo {shown[1]:>12,.2f} {unit:<8} "
              f"time mongo/local {mo / lo:6.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""SQL backend speed (PostgreSQL, SQLite) next to the local backend on the same work (prints numbers, asserts nothing).

PostgreSQL is a private server started here on 127.0.0.1 (a free port, a temporary
directory) by the test-server helpers; set ``DASKPERIMENT_TEST_POSTGRESQL_URL`` to
measure an existing, disposable server instead. SQLite is a file in a temporary
directory. Measured for each backend:

* per-trial time of the quickstart experiment (median), and its overhead over bare
  ``dask.compute`` of the same graph — the backends take turns trial by trial (with the bare
  graph as a fourth), so a machine shared with other work slows them all alike;
* ``save_metric`` throughput: 1,000,000 points saved inside one step, end-to-end
  (buffering, batches, the final flush), then ``load_metric`` of them;
* ``get_history()`` of N trials (written in bulk through the documented tables).

Targets (issue 16): PostgreSQL per trial ≤ 2× local; save_metric ≥ 1,000,000 points/s;
get_history() of 100,000 trials ≤ 1 s; load_metric of 1,000,000 points ≤ 300 ms.

    python benchmarks/bench_sql.py            # full sizes
    python benchmarks/bench_sql.py --quick    # small sizes, seconds
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import pathlib
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import dask

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_redis import _fill_local, history, metrics, quickstart  # noqa: E402  (the same workloads, shared)

POSTGRESQL_URL_ENV = "DASKPERIMENT_TEST_POSTGRESQL_URL"
FLOORS = {"ms_per_trial": "≤ 2× local", "points_per_s": "≥ 1,000,000", "load_metric_ms": "≤ 300",
          "get_history_ms": "≤ 1,000"}


def _fill_sql(backend: Any, n: int) -> None:
    """The same records as the local fill, written through the documented tables in bulk."""
    from daskperiment_sql import codec, schema

    pk = backend._writing_pk()
    now = time.time()

    def write(conn: Any) -> None:
        for start in range(1, n + 1, 10_000):
            ids = range(start, min(start + 10_000, n + 1))
            conn.execute(schema.trials.insert(), [
                {"experiment_pk": pk, "trial_id": i, "parameters": codec.dumps({"a": i - 1, "b": 2}), "seed": 1,
                 "started": now, "finished": now, "process_time": 0.01, "success": True,
                 "result": codec.dumps(10 / (i + 1)), "result_number": 10 / (i + 1),
                 "result_type": "<class 'float'>"} for i in ids])
            conn.execute(schema.parameters.insert(), [
                row for i in ids for row in codec.parameter_rows(pk, i, {"a": i - 1, "b": 2})])
        conn.execute(schema.experiments.update().where(schema.experiments.c.experiment_pk == pk)
                     .values(last_trial_id=n))

    backend._transaction(write)


def interleaved_trials(backends: dict[str, Any], n: int) -> dict[str, dict[str, float]]:
    """Per-trial medians of each backend, the backends (and bare dask) taking turns."""
    runs = {name: quickstart("trials", backend) for name, backend in backends.items()}
    times: dict[str, list[float]] = {name: [] for name in (*backends, "floor")}
    for i in range(n):
        for name, (ex, result) in runs.items():
            ex.set_parameters(a=i, b=1)
            t0 = time.perf_counter()
            result.compute(seed=1)
            times[name].append(time.perf_counter() - t0)
        graph = dask.delayed(lambda s: 10 / s)(dask.delayed(lambda a, b: a + b)(i, 1))
        t0 = time.perf_counter()
        dask.compute(graph)
        times["floor"].append(time.perf_counter() - t0)
    floor = statistics.median(times["floor"]) * 1e3
    return {name: {"ms_per_trial": statistics.median(times[name]) * 1e3,
                   "overhead_ms": statistics.median(times[name]) * 1e3 - floor} for name in backends}


def measure(backend_for: Callable[[str], Any], fill: Callable[[Any, int], None],
            sizes: tuple[int, int, int]) -> dict[str, Any]:
    _, n_points, n_history = sizes
    return {"metrics": metrics(backend_for("metrics"), n_points),
            "history": history(backend_for("history"), n_history, fill)}


@contextlib.contextmanager
def postgresql_server() -> Iterator[str]:
    """A server URL: the one named by the environment, else a private server started here."""
    external = os.environ.get(POSTGRESQL_URL_ENV, "").strip()
    if external:
        yield external
        return
    from pytest_daskperiment.servers import PostgreSQLServer

    with PostgreSQLServer() as server:
        yield server.uri


def fresh_database(server_url: str) -> str:
    """A new, empty database on the server (one per measured backend, so sizes do not mix)."""
    import psycopg

    base = server_url.rsplit("/", 1)[0] if server_url.count("/") > 2 else server_url
    name = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
        version = conn.execute("SHOW server_version").fetchone()[0]
    os.environ["_BENCH_PG_VERSION"] = version
    return f"{base}/{name}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (seconds)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    logging.getLogger("daskperiment").setLevel(logging.WARNING)
    logging.basicConfig(level=logging.WARNING)
    import psycopg
    import sqlalchemy

    sizes = (200, 200_000, 10_000) if args.quick else (1_000, 1_000_000, 100_000)
    out: dict[str, Any] = {"python": sys.version.split()[0], "dask": dask.__version__,
                           "sqlalchemy": sqlalchemy.__version__, "psycopg": psycopg.__version__,
                           "sizes": dict(zip(("trials", "metric_points", "history_trials"), sizes))}
    with tempfile.TemporaryDirectory() as tmp, postgresql_server() as server:
        root = pathlib.Path(tmp)
        database = fresh_database(server)
        out["postgresql-server"] = os.environ.pop("_BENCH_PG_VERSION")
        backend_for: dict[str, Callable[[str], Any]] = {
            "local": lambda name: root / name, "postgresql": lambda name: database,
            "sqlite": lambda name: f"sqlite:///{root / name}.db"}
        per_trial = interleaved_trials({kind: make("trials") for kind, make in backend_for.items()}, sizes[0])
        for kind, make in backend_for.items():
            out[kind] = {"trials": per_trial[kind],
                         **measure(make, _fill_local if kind == "local" else _fill_sql, sizes)}
    rows = [("trials", "ms_per_trial", "ms per quickstart trial"),
            ("trials", "overhead_ms", "ms overhead over bare dask.compute"),
            ("metrics", "points_per_s", "save_metric points/s (higher is better)"),
            ("metrics", "load_metric_ms", "ms load_metric of all points"),
            ("history", "get_history_ms", "ms get_history()")]
    if args.json:
        print(json.dumps(out, indent=1))
        return 0
    print(f"python {out['python']}, dask {out['dask']}, SQLAlchemy {out['sqlalchemy']}, psycopg {out['psycopg']}, "
          f"PostgreSQL {out['postgresql-server']}; sizes {out['sizes']}")
    print(f"{'measure':<40} {'local':>12} {'postgresql':>12} {'pg/local':>9} {'sqlite':>12} {'sqlite/local':>12}"
          f"  target")
    for group, key, text in rows:
        local, pg, lite = (out[name][group][key] for name in ("local", "postgresql", "sqlite"))
        print(f"{text:<40} {local:>12,.3f} {pg:>12,.3f} {pg / local:>9.2f} {lite:>12,.3f} {lite / local:>12.2f}"
              f"  {FLOORS.get(key, '')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""How fast a trial notices a dead or frozen server (prints numbers, asserts nothing).

Issue 15, item 15: with the server killed mid-trial, one clear error within about 5 s of the
first failed write; with the server frozen (SIGSTOP), within a configurable timeout of 10 s or
less by default. For Redis and MongoDB (their own servers on 127.0.0.1, started via
:mod:`pytest_daskperiment.servers`), a trial saves a metric point every millisecond; the server
is killed or frozen from inside the step, and the time until ``compute()`` raises is measured
with the backends' default timeouts (``--quick``: 1 s timeouts, a smoke run).

    python benchmarks/bench_faults.py            # default timeouts, about a minute
    python benchmarks/bench_faults.py --quick    # 1 s timeouts, seconds
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time
from typing import Any, Callable

#: The targets: seconds from the kill or freeze to the trial's error. The first failed write comes
#: at most one background flush (1 s) after the fault; then a dead server is given up after the
#: server-selection timeout (MongoDB 5 s; Redis refuses at once) and a frozen one after the call
#: timeout (8 s); the outcome write waits at most 0.5 s more.
FLOORS = {"dead": 5.0 + 1.0, "frozen": 10.0}
QUICK_OPTIONS = {"redis": "?socket_timeout=1&socket_connect_timeout=1",
                 "mongo": "?serverSelectionTimeoutMS=1000&socketTimeoutMS=1000&connectTimeoutMS=1000"}


def time_to_error(uri: str, fault: Callable[[], None]) -> dict[str, Any]:
    """Seconds from ``fault()`` (called inside a step that saves metrics) to the trial's error."""
    import daskperiment

    ex = daskperiment.Experiment("faults", backend=uri)
    when: list[float] = []

    @ex.result
    def train(n):
        for i in range(n):
            if i == 200 and not when:
                when.append(time.perf_counter())
                fault()
            ex.save_metric("loss", epoch=i, value=float(i))
            time.sleep(0.001)
        return n

    train(10).compute()  # connected, environment collected: the fault trial measures the fault only
    try:
        train(120_000).compute()
    except daskperiment.errors.BackendUnavailableError as exc:
        return {"seconds": time.perf_counter() - when[0], "error": type(exc).__name__}
    return {"seconds": float("nan"), "error": "none: the trial succeeded"}


def run(kind: str, fault: str, quick: bool) -> dict[str, Any]:
    from pytest_daskperiment.servers import MongoServer, RedisServer

    server = RedisServer() if kind == "redis" else MongoServer()
    server.start()
    try:
        base = server.uri if kind == "redis" else server.database_uri("bench")
        uri = base + (QUICK_OPTIONS[kind] if quick else "")
        pid = server.pid
        action = server.kill if fault == "dead" else (lambda: os.kill(pid, signal.SIGSTOP))
        result = time_to_error(uri, action)
    finally:
        if fault == "frozen" and server.pid is not None:
            os.kill(server.pid, signal.SIGCONT)
        server.close()
    return {"backend": kind, "fault": fault, "timeouts": "1 s (quick)" if quick else "defaults", **result,
            "floor_s": FLOORS[fault]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 s timeouts: a smoke run in seconds")
    parser.add_argument("--json", action="store_true", help="print one JSON line instead of a table")
    args = parser.parse_args(argv)
    logging.getLogger("daskperiment").setLevel(logging.CRITICAL)
    logging.getLogger("daskperiment").addHandler(logging.NullHandler())
    rows = [run(kind, fault, args.quick) for kind in ("redis", "mongo") for fault in ("dead", "frozen")]
    if args.json:
        print(json.dumps({"schema": 1, "rows": rows}))
        return 0
    print(f"{'backend':8} {'fault':7} {'timeouts':12} {'seconds to error':>17} {'target ≤':>9}  error")
    for row in rows:
        print(f"{row['backend']:8} {row['fault']:7} {row['timeouts']:12} {row['seconds']:17.2f} "
              f"{row['floor_s']:9.1f}  {row['error']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

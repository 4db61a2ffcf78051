"""Workload 7: a parameter sweep of CPU-bound trials on a ``dask.distributed`` LocalCluster.

N trials of one step doing ~20 ms of numpy work (calibrated on this machine), computed on a
LocalCluster with 1 and then 2 worker processes (one thread each, BLAS pinned to one thread),
tracked by daskperiment (local backend, full capture) and untracked (bare ``dask.compute`` of
the same step on the same cluster). Trials are submitted from ``2 × workers`` client threads,
each holding its own :class:`daskperiment.Experiment` on the shared store, so the workers
always have a trial to run. Prints one JSON line:

* ``wall_s``: wall time per (workers, tracked/untracked);
* ``speedup``: 1-worker wall time / 2-worker wall time (tracked and untracked);
* ``overhead_share``: (tracked − untracked) / tracked wall time, per cluster size.

    python benchmarks/bench_sweep.py              # 1,000 trials (a few minutes)
    python benchmarks/bench_sweep.py --quick      # 20 trials (seconds, plus cluster start-up)
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


def measure(n: int, workers: tuple[int, ...] = (1, 2)) -> dict[str, Any]:
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
    walls = out["wall_s"]
    if "1" in walls and "2" in walls:
        out["speedup"] = {kind: walls["1"][kind] / walls["2"][kind] for kind in ("tracked", "untracked")}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, help="trials per cluster size (default 1,000; --quick 20)")
    parser.add_argument("--quick", action="store_true", help="20 trials")
    parser.add_argument("--out", type=pathlib.Path, help="also write the JSON to this file")
    parser.add_argument("-v", "--verbose", action="store_true", help="progress on stderr")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    log.setLevel(logging.INFO if args.verbose else logging.WARNING)
    n = args.n if args.n is not None else (20 if args.quick else 1_000)
    text = json.dumps(measure(n))
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

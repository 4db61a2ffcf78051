"""Peak driver memory of a big sweep: N trials (10,000) saving P metric points each (1,000).

The driver must not hold every point at once: points are written as each step ends
(threaded scheduler) or as each trial's value arrives with them (a cluster, where the
workers send their records back and the driver is the only writer). Each variant runs in
a fresh process and prints the growth of its peak resident memory during the sweep
(``ru_maxrss`` after − before, the same measure for every variant), next to two floors:

* ``untracked``: the same graph of N steps making the same points, computed untracked
  in one ``dask.compute`` (what Dask alone costs; the points are dropped);
* ``raw points``: N × P × 16 bytes (int64 epoch + float64 value), what holding every
  point once would take at the very least.

    python benchmarks/bench_sweep_memory.py                  # 10,000 × 1,000, threads and a 2-worker cluster
    python benchmarks/bench_sweep_memory.py --quick          # 200 × 1,000 (seconds)
    python benchmarks/bench_sweep_memory.py --only threads   # one scheduler

Prints a table on stderr and one JSON line on stdout.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import pathlib
import resource
import subprocess
import sys
import tempfile
import time
from typing import Any

os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")

VARIANTS = ("threads", "cluster")


def _maxrss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def _points(seed: int, points: int) -> float:
    """The untracked step: the same points made, then dropped."""
    total = 0.0
    for epoch in range(points):
        total += (seed + epoch) * 0.5
    return total


def child(variant: str, tracked: bool, n: int, points: int, store: str) -> dict[str, Any]:
    """One measurement in this (fresh) process: the sweep, or the untracked graph, on ``variant``."""
    import dask

    import daskperiment

    ex = daskperiment.Experiment("memory", backend=pathlib.Path(store))
    seed = ex.parameter("seed")

    @ex.result
    def score(seed: int) -> float:
        total = 0.0
        for epoch in range(points):
            value = (seed + epoch) * 0.5
            ex.save_metric("loss", epoch=epoch, value=value)
            total += value
        return total

    result = score(seed)
    kwargs: dict[str, Any] = {"scheduler": "threads"}
    cluster = client = None
    if variant == "cluster":
        from distributed import Client, LocalCluster

        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                               silence_logs=logging.ERROR)
        client = Client(cluster)
        kwargs = {"scheduler": client}
    try:
        ex.sweep(result, seed=[0, 1]).compute(seed=1, progress=False, **kwargs)  # warm: environment, imports
        dask.compute(*[dask.delayed(_points)(i, points) for i in range(2)], **kwargs)
        before = _maxrss_bytes()
        t0 = time.perf_counter()
        if tracked:
            frame = ex.sweep(result, seed=list(range(n))).compute(seed=1, progress=False, **kwargs)
            if len(frame) != n or not frame["Success"].all():
                raise RuntimeError(f"the sweep recorded {len(frame)} trials, {int(frame['Success'].sum())} succeeded")
        else:
            dask.compute(*[dask.delayed(_points)(i, points) for i in range(n)], **kwargs)
        wall = time.perf_counter() - t0
        grown = _maxrss_bytes() - before
        if tracked:  # every point stored: the last trial's series is complete
            last = ex.load_metric("loss", trial_id=ex.trial_id)
            if len(last) != points:
                raise RuntimeError(f"trial {ex.trial_id} has {len(last)} points, expected {points}")
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
    return {"variant": variant, "tracked": tracked, "peak_growth_bytes": grown, "wall_s": wall}


def measure(n: int, points: int, variants: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {"n": n, "points": points, "raw_points_bytes": n * points * 16, "variants": {}}
    for variant in variants:
        for tracked in (False, True):
            with tempfile.TemporaryDirectory() as store:
                proc = subprocess.run([sys.executable, __file__, "--child", variant, "--tracked", str(int(tracked)),
                                       "--n", str(n), "--points", str(points), "--store", store],
                                      capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                raise RuntimeError(f"{variant} tracked={tracked} failed:\n{proc.stderr[-3000:]}")
            figures = json.loads(proc.stdout.strip().splitlines()[-1])
            out["variants"].setdefault(variant, {})["tracked" if tracked else "untracked"] = figures
    return out


def summary(out: dict[str, Any]) -> str:
    mb = 1e6
    lines = [f"peak driver memory growth, {out['n']:,} trials x {out['points']:,} metric points "
             f"(raw points: {out['raw_points_bytes'] / mb:,.0f} MB):"]
    for variant, figures in out["variants"].items():
        tracked, untracked = figures["tracked"], figures["untracked"]
        lines.append(f"  {variant:8s} sweep {tracked['peak_growth_bytes'] / mb:7.1f} MB ({tracked['wall_s']:.1f} s)"
                     f"   untracked graph {untracked['peak_growth_bytes'] / mb:7.1f} MB ({untracked['wall_s']:.1f} s)"
                     f"   sweep / raw points = {tracked['peak_growth_bytes'] / out['raw_points_bytes']:.2f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, help="trials (default 10,000; --quick 200)")
    parser.add_argument("--points", type=int, default=1_000, help="metric points per trial (default 1,000)")
    parser.add_argument("--quick", action="store_true", help="200 trials")
    parser.add_argument("--only", choices=VARIANTS, help="one scheduler")
    parser.add_argument("--child", choices=VARIANTS, help=argparse.SUPPRESS)
    parser.add_argument("--tracked", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--store", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    n = args.n if args.n is not None else (200 if args.quick else 10_000)
    if args.child:
        print(json.dumps(child(args.child, bool(args.tracked), n, args.points, args.store)))
        return 0
    out = measure(n, args.points, (args.only,) if args.only else VARIANTS)
    logging.getLogger("bench_sweep_memory").warning("%s", summary(out))
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

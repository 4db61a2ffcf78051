"""Environment collector costs: each collector, the first trial, and later trials (prints numbers, asserts nothing).

Issue "Environment collectors": collection happens once per process, so a later trial
must not pay for it again — only for the change checks (``environment_fingerprint``).
Each trial figure comes from a fresh process, because collection is cached per process:

* ``first trial``: ``Experiment(...)`` then ``compute()`` right away, which waits for
  the background collection still running (the worst case, e.g. a short script);
* ``first trial, collection done``: the same after the background collection finished;
* ``later trials``: median of the following trials;
* ``environment check``: what a later trial spends on the environment (fingerprints).

Each is measured with every collector, and with only the core collector
(``DASKPERIMENT_DISABLE_PLUGINS=cpu,numpy,conda,git,pip``) as the floor.

    python benchmarks/bench_collectors.py            # 20 later trials per process
    python benchmarks/bench_collectors.py --json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

PLUGIN_COLLECTORS = ("cpu", "numpy", "conda", "git", "pip")


def collector_costs(repeat: int) -> dict[str, dict[str, float]]:
    """Milliseconds per ``collect_environment()`` call of each registered collector, first and later calls."""
    from daskperiment.plugins import get_plugin_manager

    costs = {}
    for impl in reversed(get_plugin_manager().hook.collect_environment.get_hookimpls()):
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            impl.function()
            times.append((time.perf_counter() - t0) * 1e3)
        fingerprint = getattr(impl.plugin, "environment_fingerprint", None)
        fp_us = None
        if fingerprint is not None:
            t0 = time.perf_counter()
            for _ in range(1000):
                fingerprint()
            fp_us = (time.perf_counter() - t0) * 1e3
        costs[impl.plugin_name] = {"first_ms": times[0], "later_ms": statistics.median(times[1:] or times),
                                   "fingerprint_us": fp_us}
    return costs


def child(root: str, later: int, wait: bool) -> dict[str, Any]:
    """Runs in a fresh process: one experiment, the first trial, then ``later`` trials."""
    import daskperiment
    from daskperiment import environment

    logging.getLogger("daskperiment").setLevel(logging.WARNING)
    ex = daskperiment.Experiment("bench", backend=pathlib.Path(root))
    x = ex.parameter("x", default=1)

    @ex.result
    def double(x):
        return 2 * x

    result = double(x)
    if wait:
        environment.current()
    t1 = time.perf_counter()
    result.compute(seed=1)
    first = time.perf_counter() - t1
    times = []
    for _ in range(later):
        t2 = time.perf_counter()
        result.compute(seed=1)
        times.append(time.perf_counter() - t2)
    checks = []
    for _ in range(200):
        t3 = time.perf_counter()
        environment.current()
        checks.append(time.perf_counter() - t3)
    return {"sections": len(environment.current()[1]), "first_trial_ms": first * 1e3,
            "later_trial_ms": statistics.median(times) * 1e3, "environment_check_ms": statistics.median(checks) * 1e3}


def run_child(later: int, wait: bool, disable: tuple[str, ...]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "DASKPERIMENT_DISABLE_PLUGINS": ",".join(disable)}
        out = subprocess.run([sys.executable, __file__, "--child", tmp, str(later), str(int(wait))], env=env,
                             cwd=tmp, capture_output=True, text=True, check=True, timeout=600).stdout
    return json.loads(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--later", type=int, default=20, help="later trials per process")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        root, later, wait = args.child
        print(json.dumps(child(root, int(later), bool(int(wait)))))
        return 0
    logging.basicConfig(level=logging.WARNING)
    out: dict[str, Any] = {"python": sys.version.split()[0], "collectors": collector_costs(repeat=3), "trials": {}}
    for label, disable in (("all collectors", ()), ("core collector only", PLUGIN_COLLECTORS)):
        out["trials"][label] = {"first trial": run_child(args.later, False, disable),
                                "first trial, collection done": run_child(args.later, True, disable)}
    if args.json:
        print(json.dumps(out, indent=1))
        return 0
    print(f"python {out['python']}")
    print("collector          first call   later call   fingerprint (per call)")
    for name, row in out["collectors"].items():
        fp = f"{row['fingerprint_us']:.0f} µs" if row["fingerprint_us"] is not None else "— (collected once)"
        print(f"{name:<18} {row['first_ms']:>8.1f} ms  {row['later_ms']:>8.1f} ms   {fp}")
    for label, cases in out["trials"].items():
        for case, row in cases.items():
            print(f"{label}, {case}: first trial {row['first_trial_ms']:.1f} ms; later trials "
                  f"{row['later_trial_ms']:.2f} ms (environment check {row['environment_check_ms'] * 1e3:.0f} µs); "
                  f"{row['sections']} sections")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

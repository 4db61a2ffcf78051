"""Shared driver of the peer benchmarks: one CLI, one JSON schema, one timing method for every tool.

Stdlib only: this module is imported by scripts running in the peers virtual env, where neither
daskperiment nor the repository's dev dependencies are installed. Each ``<tool>_bench.py``
subclasses :class:`Tool` with the tool's idiomatic calls and hands it to :func:`main`.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import logging
import os
import pathlib
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from importlib import metadata
from typing import Any, ClassVar

log = logging.getLogger("peers")

SCHEMA = 1
WORKLOADS = ("trials", "metrics", "history", "metric_read", "import")
UNITS = {"trials": "ms/trial", "metrics": "points/s", "history": "ms", "metric_read": "ms", "import": "ms"}
# --quick: sizes small enough for a smoke test (seconds per tool and workload).
QUICK_N = {"trials": 5, "metrics": 1_000, "history": 5, "metric_read": 1_000, "import": 0}
DEFAULT_N = {"trials": 200, "metrics": 1_000_000, "history": 200, "metric_read": 1_000_000, "import": 0}
DEFAULT_REPS = {"trials": 3, "metrics": 3, "history": 5, "metric_read": 5, "import": 7}
QUICK_CAP = 100  # --quick: points per slow per-point call (tools with a default cap)
WINDOW = 100  # trials in the "first" and "last" windows of the flatness figure
METRIC_KEY = "loss"


# -- the quickstart experiment: the same two steps for every tool -------------------------------


def prepare_data(a: int, b: int) -> int:
    """Step 1 of the quickstart experiment."""
    return a + b


def calculate_score(s: int) -> float:
    """Step 2 (the result) of the quickstart experiment."""
    return 10 / s


def save_metric_step(ex: Any, span: dict[str, float]) -> Callable[[int], int]:
    """The metrics workload's step, ``points`` calls of ``ex.save_metric``, timed into ``span["loop_s"]``.

    Shared by daskperiment 0.5.0 and ours: same API, so the very same user code.
    """

    def log_points(points: int) -> int:
        t0 = time.perf_counter()
        for i in range(points):
            ex.save_metric(METRIC_KEY, epoch=i, value=0.5)
        span["loop_s"] = time.perf_counter() - t0
        return points

    return log_points


# -- the interface each tool implements ---------------------------------------------------------


class Tool:
    """One tracker's idiomatic calls; every method works inside its own fresh directory ``root``.

    Timed work must leave the data on disk (file store, SQLite file, pickle) before returning.
    """

    name = "tool"
    dist = "tool"  # distribution whose version is reported
    module = "tool"  # what ``import`` workload imports
    variants: ClassVar[tuple[str, ...]] = ("default",)
    # variant -> points actually logged per point by default when the per-point call is too slow
    # to do 1,000,000 of them (the rate is reported, measured on fewer points).
    default_cap: ClassVar[dict[str, int]] = {}

    def __init__(self, variant: str) -> None:
        self.variant = variant

    # trials: return a callable running one trial (a, b) -> result; setup is not timed.
    def trials(self, root: pathlib.Path, n: int) -> Callable[[int, int], Any]:
        raise NotImplementedError

    def finish_trials(self) -> float:
        """Work still owed after the last timed trial (e.g. a deferred persist); seconds spent."""
        return 0.0

    def count_trials(self, root: pathlib.Path) -> int:
        """Trials found on disk afterwards (proves the timed work really was recorded)."""
        raise NotImplementedError

    # metrics: setup (not timed), then a callable running one trial that logs ``points`` values of
    # one metric and returns optional extra figures (e.g. {"loop_s": seconds in the logging loop}).
    def metrics(self, root: pathlib.Path) -> Callable[[int], dict[str, float]]:
        raise NotImplementedError

    def populate_history(self, root: pathlib.Path, n: int) -> None:
        """Record ``n`` trials as fast as the tool allows (not timed).

        By default one by one, as in the trials workload; a tool with a batch path overrides it.
        """
        trial = self.trials(root, n)
        for i in range(n):
            trial(i, 1)

    def open_store(self, root: pathlib.Path) -> Any:
        """Handle a user would hold before querying (client, session, experiment); timed apart."""
        return root

    def read_history(self, handle: Any) -> Any:
        """All trials' parameters and results as a pandas DataFrame."""
        raise NotImplementedError

    def populate_metric(self, root: pathlib.Path, points: int) -> None:
        """One trial holding ``points`` values of one metric, written the fastest way (not timed)."""
        self.metrics(root)(points)

    def read_metric(self, handle: Any) -> Any:
        """The metric's points as a pandas DataFrame."""
        raise NotImplementedError

    def version(self) -> str:
        return metadata.version(self.dist)

    def close(self) -> None:
        """Release what the tool started for the run (e.g. a private database server)."""


# -- helpers -------------------------------------------------------------------------------------


def median_ms(seconds: list[float]) -> float:
    return statistics.median(seconds) * 1e3


@contextlib.contextmanager
def fresh_dir(base: pathlib.Path, label: str) -> Iterator[pathlib.Path]:
    """A new directory, made the working directory (some tools write relative to it)."""
    path = pathlib.Path(tempfile.mkdtemp(prefix=f"{label}-", dir=base))
    old = os.getcwd()
    os.chdir(path)
    try:
        yield path
    finally:
        os.chdir(old)


def run_trials(tool: Tool, root: pathlib.Path, n: int) -> dict[str, float]:
    t0 = time.perf_counter()
    trial = tool.trials(root, n)
    setup = time.perf_counter() - t0
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        trial(i, 1)
        times.append(time.perf_counter() - t0)
    tail = tool.finish_trials()
    found = tool.count_trials(root)
    if found != n:
        raise RuntimeError(f"{tool.name}: {found} trials on disk after {n} trials")
    window = min(WINDOW, n)
    first, last = median_ms(times[:window]), median_ms(times[-window:])
    total = sum(times) + tail
    return {"mean_ms": total / n * 1e3, "median_ms": median_ms(times), "first_ms": first, "last_ms": last,
            "last_over_first": last / first, "setup_ms": setup * 1e3, "total_s": total}


def run_metrics(tool: Tool, root: pathlib.Path, points: int) -> dict[str, float]:
    t0 = time.perf_counter()
    log_points = tool.metrics(root)
    setup = time.perf_counter() - t0
    t0 = time.perf_counter()
    extra = log_points(points)
    total = time.perf_counter() - t0
    out = {"points_per_s": points / total, "total_s": total, "setup_ms": setup * 1e3}
    if "loop_s" in extra:
        out["loop_points_per_s"] = points / extra.pop("loop_s")
    out.update(extra)
    return out


def run_read(tool: Tool, root: pathlib.Path, reps: int, reader: Callable[[Any], Any],
             expect_rows: int) -> tuple[list[float], dict[str, float]]:
    opens, reads = [], []
    for _ in range(reps):
        gc.collect()
        t0 = time.perf_counter()
        handle = tool.open_store(root)
        t1 = time.perf_counter()
        frame = reader(handle)
        t2 = time.perf_counter()
        opens.append(t1 - t0)
        reads.append(t2 - t1)
        if len(frame) != expect_rows:
            raise RuntimeError(f"{tool.name}: read {len(frame)} rows, expected {expect_rows}")
        del handle, frame
    return [r * 1e3 for r in reads], {"open_ms": median_ms(opens)}


def import_time(module: str, reps: int, cwd: pathlib.Path) -> tuple[list[float], dict[str, float]]:
    """Wall time of ``python -c "import X"`` minus bare interpreter start-up, fresh process each."""

    def wall(code: str) -> float:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True, cwd=cwd,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return time.perf_counter() - t0

    wall(f"import {module}")  # warm the OS file cache and the .pyc files first
    bare, imp = [], []
    for _ in range(reps):
        bare.append(wall("pass"))
        imp.append(wall(f"import {module}"))
    bare_ms = median_ms(bare)
    return [t * 1e3 - bare_ms for t in imp], {"bare_python_ms": bare_ms, "import_wall_ms": median_ms(imp)}


def dep_versions(names: tuple[str, ...] = ("pandas", "numpy", "dask", "sqlalchemy")) -> dict[str, str]:
    out = {}
    for name in names:
        with contextlib.suppress(metadata.PackageNotFoundError):
            out[name] = metadata.version(name)
    return out


# -- the CLI -------------------------------------------------------------------------------------


def parse_args(tool_cls: type[Tool], argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=f"{tool_cls.name}: one peer-benchmark workload, JSON out")
    p.add_argument("--workload", required=True, choices=WORKLOADS)
    p.add_argument("--n", type=int, help="trials (trials, history) or metric points (metrics, "
                   "metric_read); default 200 / 1,000,000, --quick: 5 / 1,000")
    p.add_argument("--reps", type=int, help="repetitions, the figure is their median "
                   "(default trials/metrics 3, reads 5, import 7; --quick: 2)")
    p.add_argument("--variant", default=tool_cls.variants[0], choices=tool_cls.variants,
                   help="tool-specific flavour (default: %(default)s)")
    p.add_argument("--cap", type=int, help="metrics: log at most this many points per point-call "
                   "and report the rate measured on them (0 = no cap; default per tool/variant)")
    p.add_argument("--quick", action="store_true", help="tiny sizes for a smoke test")
    p.add_argument("--tmp", type=pathlib.Path, help="parent of the scratch dirs (must be a real disk, "
                   "not tmpfs; default: the system temp dir)")
    p.add_argument("--keep", action="store_true", help="keep the scratch dirs (their path is logged)")
    p.add_argument("--out", type=pathlib.Path, help="also write the JSON to this file")
    p.add_argument("-v", "--verbose", action="store_true", help="show INFO logs of this driver")
    return p.parse_args(argv)


@contextlib.contextmanager
def stdout_reserved() -> Iterator[Any]:
    """Route fd 1 to stderr while tools run, so only our JSON ever reaches stdout."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    real = os.fdopen(saved, "w")
    old, sys.stdout = sys.stdout, sys.stderr
    try:
        yield real
    finally:
        sys.stdout = old
        os.dup2(saved, 1)
        real.close()


def measure(tool: Tool, args: argparse.Namespace, base: pathlib.Path) -> dict[str, Any]:
    w = args.workload
    n = args.n if args.n is not None else (QUICK_N if args.quick else DEFAULT_N)[w]
    reps = args.reps if args.reps is not None else (2 if args.quick else DEFAULT_REPS[w])
    result: dict[str, Any] = {"schema": SCHEMA, "tool": tool.name, "version": tool.version(),
                              "variant": tool.variant, "workload": w, "n": n, "reps": reps, "unit": UNITS[w]}
    samples: list[float]
    figures: dict[str, float] = {}
    if w == "trials":
        rows = []
        for rep in range(reps):
            with fresh_dir(base, f"trials{rep}") as root:
                rows.append(run_trials(tool, root, n))
        samples = [r["mean_ms"] for r in rows]
        figures = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    elif w == "metrics":
        cap = args.cap if args.cap is not None else tool.default_cap.get(tool.variant, 0)
        if args.quick and args.cap is None and cap:
            cap = min(cap, QUICK_CAP)
        points = min(n, cap) if cap else n
        rows = []
        for rep in range(reps):
            with fresh_dir(base, f"metrics{rep}") as root:
                rows.append(run_metrics(tool, root, points))
        samples = [r["points_per_s"] for r in rows]
        figures = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
        if points != n:
            result["measured_n"] = points
            result["note"] = f"measured on {points:,} points (rate extrapolated to {n:,})"
    elif w in ("history", "metric_read"):
        with fresh_dir(base, w) as root:
            t0 = time.perf_counter()
            if w == "history":
                tool.populate_history(root, n)
                samples, figures = run_read(tool, root, reps, tool.read_history, n)
            else:
                tool.populate_metric(root, n)
                samples, figures = run_read(tool, root, reps, tool.read_metric, n)
            figures["populate_and_read_s"] = time.perf_counter() - t0
    else:
        samples, figures = import_time(tool.module, reps, base)
        result["n"] = 0
    result["figure"] = statistics.median(samples)
    result["samples"] = samples
    result["figures"] = figures
    result["python"] = platform.python_version()
    result["deps"] = dep_versions()
    return result


def main(tool_cls: type[Tool], argv: list[str] | None = None) -> int:
    args = parse_args(tool_cls, argv)
    # Our own logger only: the root logger stays as each tool expects it (some add handlers to it).
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO if args.verbose else logging.WARNING)
    log.propagate = False
    base = pathlib.Path(tempfile.mkdtemp(prefix=f"peers-{tool_cls.name}-", dir=args.tmp))
    log.info("scratch dir %s", base)
    old = os.getcwd()
    try:
        with stdout_reserved() as out:
            os.chdir(base)  # before any tool import: some write logs relative to the cwd at import
            tool = tool_cls(args.variant)
            try:
                result = measure(tool, args, base)
            finally:
                tool.close()
            text = json.dumps(result)
            out.write(text + "\n")
    finally:
        os.chdir(old)
        if args.keep:
            log.warning("kept scratch dir %s", base)
        else:
            shutil.rmtree(base, ignore_errors=True)
    if args.out:
        args.out.write_text(text + "\n")
    return 0

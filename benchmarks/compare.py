"""daskperiment side by side with the trackers users would pick instead: one command, one table.

Builds (or reuses) the peers' virtual env, then runs every tool on every workload in this one
run, each (tool, variant, workload, N) in a fresh process (``peers/<tool>_bench.py``, one JSON
line each), plus the distributed sweep (``bench_sweep.py``), and prints one table with each
figure's **ratio to ours**: how many times faster daskperiment is (their ms / our ms, or our
points/s / theirs). Above 1 we win, below 1 we lose.

    python benchmarks/compare.py                  # full run (about half an hour on 2 cores)
    python benchmarks/compare.py --quick          # tiny sizes, under two minutes
    python benchmarks/compare.py --results benchmarks/RESULTS.md   # also write the dated section

Repetitions (:func:`reps_for`): trials 3 at N=200, 1 at larger N (one rep is already thousands
of trials); reads 5 (MLflow's metric read 2); import 7; metrics 3 (MLflow's calls are capped, see
peers/README.md). The original daskperiment 0.5.0 and mltraq (persisting after each run) get
slower with every trial (each trial rewrites the whole store), so they are not run at 10,000
trials: the table says so. A peer that fails (install, crash, timeout) is a row with its error;
the exit status is 1 only when one of our own runs failed.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import datetime
import json
import logging
import os
import pathlib
import platform
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from peers import venv as peers_venv  # noqa: E402  (benchmarks/peers/venv.py)

log = logging.getLogger("compare")

OURS = "daskperiment"
PEERS = ("daskperiment050", "mlflow", "sacred", "mltraq")
QUADRATIC = {"daskperiment050", "mltraq"}  # per-trial cost grows with the history
QUADRATIC_MAX_N = 2_000  # ... so they are run up to this many trials
TRIAL_SIZES = (200, 2_000, 10_000)
HISTORY_N = 2_000
POINTS = 1_000_000
RUN_TIMEOUT_S = 1_800
SECTION_TITLE = "## Side by side with the peers"
# what a failed run raises (see peers.venv.run_json): it becomes an error row, never an abort
FAILURES = (OSError, ValueError, RuntimeError, subprocess.SubprocessError)


@dataclass(frozen=True)
class Run:
    """One process: a tool (and variant) on one workload at one size."""

    tool: str
    workload: str
    n: int | None = None
    reps: int | None = None
    variant: str | None = None

    @property
    def label(self) -> str:
        return f"{self.tool}[{self.variant}]" if self.variant else self.tool


@dataclass
class Row:
    """One line of the table: a run's JSON result, or the error saying why it has none."""

    run: Run
    result: dict[str, Any] | None = None
    error: str | None = None
    notes: list[str] = field(default_factory=list)


def reps_for(tool: str, workload: str, n: int | None, quick: bool) -> int:
    """Repetitions of one run (its figure is their median), chosen to fit a full run in ~35 min.

    A trials rep above N=200 is already thousands of trials (minutes for the slow peers), so one
    is enough there; MLflow reads 1,000,000 metric points back in ~40 s, so it reads twice.
    """
    if quick:
        return 2
    if workload == "trials":
        return 3 if (n or 0) <= 200 else 1
    if (tool, workload) == ("mlflow", "metric_read"):
        return 2
    return {"metrics": 3, "history": 5, "metric_read": 5, "import": 7}[workload]


def plan(quick: bool, only: set[str] | None, workloads: set[str] | None) -> list[Run]:
    """Every run of a full (or quick) comparison, filtered by tool (or tool[variant]) and workload."""
    sizes = (5,) if quick else TRIAL_SIZES
    history_n, points = (5, 1_000) if quick else (HISTORY_N, POINTS)
    backend_n = sizes[0] if quick else HISTORY_N  # workload 6: a server round trip per call shows by 2,000
    sized = (("metrics", points), ("history", history_n), ("metric_read", points))
    runs: list[Run] = []
    for tool, variant in ((OURS, "local"), *((peer, None) for peer in PEERS)):
        runs += [Run(tool, "trials", n, reps_for(tool, "trials", n, quick), variant) for n in sizes
                 if not (tool in QUADRATIC and n > QUADRATIC_MAX_N)]
        runs += [Run(tool, w, n, reps_for(tool, w, n, quick), variant) for w, n in (*sized, ("import", None))]
    runs += [Run(OURS, "trials", n, reps_for(OURS, "trials", n, quick), "floor") for n in sizes]
    runs.append(Run("mlflow", "metrics", points, reps_for("mlflow", "metrics", points, quick), "log_batch"))
    for backend in ("redis", "mongo", "postgresql"):  # workload 6: our server backends, as ratios to our local one
        runs += [Run(OURS, w, n, reps_for(OURS, w, n, quick), backend) for w, n in (("trials", backend_n), *sized)]
    if only:
        runs = [r for r in runs if r.tool in only or r.label in only]
    if workloads:
        runs = [r for r in runs if r.workload in workloads]
    return runs


def not_run(runs: list[Run]) -> list[Row]:
    """Rows saying which large runs were left out, and why (instead of silently missing)."""
    largest = max((r.n or 0 for r in runs if r.workload == "trials"), default=0)
    if largest <= QUADRATIC_MAX_N:
        return []
    tools = sorted({r.tool for r in runs} & QUADRATIC)
    return [Row(Run(tool, "trials", largest), error="not run: every trial rewrites the whole store, so "
                f"{largest:,} trials would take many minutes (see N={QUADRATIC_MAX_N:,})") for tool in tools]


def _failure(exc: Exception) -> str:
    """One line for the table: the last line of what the failing process said."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return f"{type(exc).__name__}: {(lines or ['no output'])[-1][:200]}"


def execute(run: Run, quick: bool, venv_error: str | None = None, extra: tuple[str, ...] = ()) -> Row:
    """Run one workload in its own process; a failure becomes an error row, never an abort."""
    if venv_error is not None and run.tool != OURS:
        return Row(run, error=venv_error)
    t0 = time.perf_counter()
    try:
        result = peers_venv.run_peer(run.tool, run.workload, n=run.n, reps=run.reps, variant=run.variant,
                                     quick=quick, extra=extra, timeout=RUN_TIMEOUT_S)
    except FAILURES as exc:
        log.warning("%s %s n=%s failed: %s", run.label, run.workload, run.n, exc)
        return Row(run, error=_failure(exc))
    log.info("%-26s %-11s n=%-9s %.1f s", run.label, run.workload, run.n, time.perf_counter() - t0)
    return Row(run, result=result)


def warm_up(tools: list[str], extra: tuple[str, ...] = ()) -> None:
    """Run each tool's quick trials once, untimed, before the timed runs.

    Why: the first process of a run pays for cold caches (the OS page cache of the venv's
    modules, our environment cache, the CPU's clock ramp); in one full run our very first
    row came out 1.8× slower than the same row re-run a minute later. A failure here is
    left for the timed run to report.
    """
    for tool in tools:
        t0 = time.perf_counter()
        try:
            peers_venv.run_peer(tool, "trials", quick=True, reps=1, variant="local" if tool == OURS else None,
                                extra=extra, timeout=RUN_TIMEOUT_S)
        except FAILURES as exc:
            log.info("warm-up of %s failed (its runs will say why): %s", tool, _failure(exc))
        log.info("warm-up %-18s %.1f s", tool, time.perf_counter() - t0)


def execute_all(runs: list[Run], quick: bool, jobs: int, scratch: pathlib.Path | None = None) -> list[Row]:
    """Every run, ``jobs`` processes at a time, rows in plan order; the peers venv is built first
    and, for a full run, every tool warmed up (:func:`warm_up`). ``scratch``: where the tools'
    stores go (default: the system temp dir)."""
    extra = ("--tmp", str(scratch)) if scratch is not None else ()
    venv_error = None
    if any(run.tool != OURS for run in runs):
        try:
            peers_venv.ensure()  # once, up front (a minute or two the first time)
        except (OSError, subprocess.SubprocessError) as exc:
            log.error("the peers venv could not be built, every peer is reported as an error: %s", exc)
            venv_error = f"peers venv not built: {_failure(exc)}"
    if not quick:
        warm_up([tool for tool in dict.fromkeys(run.tool for run in runs) if venv_error is None or tool == OURS],
                extra)
    with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
        return list(pool.map(lambda run: execute(run, quick, venv_error, extra), runs))


def run_sweep(quick: bool) -> dict[str, Any] | str:
    """Workload 7 (``bench_sweep.py``, alone on the machine): its JSON, or the error text."""
    t0 = time.perf_counter()
    try:
        sweep = peers_venv.run_json([sys.executable, str(HERE / "bench_sweep.py"), *(["--quick"] if quick else [])],
                                    timeout=RUN_TIMEOUT_S)
    except FAILURES as exc:
        log.warning("sweep failed: %s", exc)
        return _failure(exc)
    log.info("sweep %.1f s", time.perf_counter() - t0)
    return sweep


# -- the table ---------------------------------------------------------------------------------


def _ours_for(row: Row, rows: list[Row], variant: str = "local") -> Row | None:
    """Our row with a result on ``row``'s workload and size; the local backend's is every ratio's reference."""
    wanted = (OURS, variant, row.run.workload, row.run.n)
    return next((o for o in rows if (o.run.tool, o.run.variant, o.run.workload, o.run.n) == wanted and o.result),
                None)


def ratio(row: Row, rows: list[Row]) -> float | None:
    """How many times faster ours is than this row: their ms / our ms, or our points/s / theirs."""
    ours = _ours_for(row, rows)
    if ours is None or row.result is None or ours is row:
        return None
    mine, theirs = ours.result["figure"], row.result["figure"]
    if not mine or not theirs:
        return None
    return mine / theirs if row.result["unit"] == "points/s" else theirs / mine


def annotate(rows: list[Row]) -> None:
    """Notes a reader needs next to a figure (capped measurements, overhead over the floor…)."""
    for row in rows:
        result = row.result or {}
        if result.get("note"):
            row.notes.append(result["note"])
        figures = result.get("figures", {})
        if row.run.workload == "trials" and "last_over_first" in figures:
            row.notes.append(f"median {figures['median_ms']:.2f} ms; last/first 100 {figures['last_over_first']:.2f}")
        if row.run.tool == OURS and row.run.variant == "local" and row.run.workload == "trials":
            floor = _ours_for(row, rows, "floor")
            if floor is not None:
                overhead = figures["median_ms"] - floor.result["figures"]["median_ms"]
                row.notes.append(f"overhead over bare dask.compute {overhead:.2f} ms (medians)")


def _fmt(value: float) -> str:
    """Three significant digits for small figures, thousands separators for large ones."""
    if value >= 100_000:
        return f"{value:,.0f}"
    return f"{value:,.1f}" if value >= 100 else f"{value:.3g}"


def table(rows: list[Row]) -> list[list[str]]:
    """The comparison as rows of cells, header first: by workload and N, ours first, errors included."""
    header = ["workload", "N", "tool", "version", "figure", "unit", "reps", "ours ×faster", "note"]
    order = {w: i for i, w in enumerate(("trials", "metrics", "history", "metric_read", "import"))}
    body = []
    for row in sorted(rows, key=lambda r: (order.get(r.run.workload, 9), r.run.n or 0, r.run.tool != OURS)):
        result = row.result or {}
        r = ratio(row, rows)
        body.append([row.run.workload, f"{row.run.n:,}" if row.run.n else "", row.run.label,
                     result.get("version", ""), _fmt(result["figure"]) if result else "—",
                     result.get("unit", ""), str(result.get("reps", "")), f"{r:.2f}" if r is not None else "",
                     "; ".join(row.notes) if row.result else (row.error or "")])
    return [header, *body]


def sweep_lines(sweep: dict[str, Any] | str) -> list[str]:
    """Workload 7 in a few lines under the table (its figures do not fit the table's columns)."""
    if isinstance(sweep, str):
        return [f"sweep (workload 7) failed: {sweep}"]
    lines = [(f"sweep of {sweep['n']:,} trials, one step of ~{sweep['step_ms']:.0f} ms of numpy work, "
              "LocalCluster with process workers (1 thread each):")]
    for workers, wall in sweep["wall_s"].items():
        lines.append(f"  {workers} worker(s): tracked {wall['tracked']:.2f} s, untracked {wall['untracked']:.2f} s, "
                     f"tracking share of wall time {wall['overhead_share']:.1%}")
    if "speedup" in sweep:
        lines.append(f"  speed-up 1 → 2 workers: tracked {sweep['speedup']['tracked']:.2f}×, "
                     f"untracked {sweep['speedup']['untracked']:.2f}×")
    for workers, graph in sweep.get("one_graph", {}).items():
        lines.append(f"  {workers} worker(s), as one graph: ex.sweep {graph['sweep']:.2f} s, untracked "
                     f"{graph['untracked']:.2f} s = {graph['sweep_over_untracked']:.2f}× (floor ≤ {graph['floor']}×)")
    threaded = sweep.get("threaded")
    if threaded:
        lines.append(f"{threaded['n']:,} quickstart trials on the threaded scheduler: one ex.sweep "
                     f"{threaded['sweep_s']:.2f} s, untracked one graph {threaded['untracked_graph_s']:.2f} s "
                     f"({threaded['sweep_over_untracked_graph']:.2f}×, floor ≤ 1.15×), one-by-one compute() "
                     f"{threaded['one_by_one_s']:.2f} s ({threaded['one_by_one_over_sweep']:.1f}× the sweep, floor ≥ 5×)")
    return lines


def machine_facts(rows: list[Row]) -> list[str]:
    """CPU, OS, Python, each tool's version and the libraries under ours and under the peers."""
    versions = sorted({f"{r.run.tool} {r.result['version']}" for r in rows if r.result})
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as file:
            cpu = re.search(r"model name\s*:\s*(.+)", file.read()).group(1)  # type: ignore[union-attr]
    except (OSError, AttributeError):
        pass
    machine = (f"machine: {os.cpu_count()} CPUs ({cpu}), {platform.system()} {platform.release()}, "
               f"Python {platform.python_version()}")
    facts = [machine, "tools: " + ", ".join(versions)]
    for label, ours in (("our stack", True), ("peers' stack", False)):
        deps = next((r.result["deps"] for r in rows if r.result and (r.run.tool == OURS) == ours), None)
        if deps:
            facts.append(f"{label}: " + ", ".join(f"{k} {v}" for k, v in deps.items()))
    return facts


def render_text(grid: list[list[str]]) -> str:
    widths = [max(len(line[i]) for line in grid) for i in range(len(grid[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in grid)


def render_markdown(grid: list[list[str]]) -> str:
    lines = ["| " + " | ".join(c.replace("|", "\\|") for c in line) + " |" for line in grid]
    lines.insert(1, "|" + "---|" * len(grid[0]))
    return "\n".join(lines)


def write_results(path: pathlib.Path, command: str, facts: list[str], grid: list[list[str]],
                  sweep: list[str]) -> None:
    """Replace (or append) the dated comparison section of ``path``; the rest of the file stays."""
    intro = (f"`{command}`, {datetime.date.today().isoformat()}. Ratios: how many times faster daskperiment "
             "(local backend, full capture) is; above 1 we win, below 1 we lose.")
    section = "\n".join([SECTION_TITLE, "", intro, "", *(f"- {fact}" for fact in facts), "", render_markdown(grid),
                         "", "```", *sweep, "```", ""])
    text = path.read_text() if path.exists() else "# Benchmark results\n\n"
    start = text.find(SECTION_TITLE)
    if start == -1:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        end = text.find("\n## ", start + len(SECTION_TITLE))
        text = text[:start] + section + (text[end + 1:] if end != -1 else "")
    path.write_text(text)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run in under two minutes")
    parser.add_argument("--only", help="comma-separated tools (daskperiment, daskperiment050, mlflow, sacred, "
                        "mltraq) or tool[variant] labels as in the table (e.g. daskperiment[floor])")
    parser.add_argument("--workloads", help="comma-separated: trials, metrics, history, metric_read, import, sweep")
    parser.add_argument("--jobs", type=int, help="processes at a time (default 1; --quick: 2). More than one "
                        "disturbs the figures: fine for a smoke run, not for results")
    parser.add_argument("--scratch", type=pathlib.Path, help="parent of every tool's store (a real disk, not "
                        "tmpfs; default: the system temp dir). File creation cost differs between folders of one "
                        "disk: the file-heavy peers feel it most")
    parser.add_argument("--results", type=pathlib.Path, help="write the dated section into this Markdown file")
    parser.add_argument("--json", type=pathlib.Path, help="also write every raw result to this file")
    parser.add_argument("--from-json", type=pathlib.Path, help="render the table (and --results) from a file "
                        "written by --json, without running anything")
    parser.add_argument("-v", "--verbose", action="store_true", help="progress on stderr")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s", stream=sys.stderr)
    log.setLevel(logging.INFO if args.verbose else logging.WARNING)
    if args.from_json:
        saved = json.loads(args.from_json.read_text())
        rows = [Row(Run(**item["run"]), item["result"], item["error"]) for item in saved["runs"]]
        sweep, command, facts = saved["sweep"], saved["command"], saved["facts"]
    else:
        only = set(args.only.split(",")) if args.only else None
        workloads = set(args.workloads.split(",")) if args.workloads else None
        command = "python benchmarks/compare.py" + "".join(f" {a}" for a in (sys.argv[1:] if argv is None else argv))
        runs = plan(args.quick, only, workloads)
        if args.scratch is not None:
            args.scratch.mkdir(parents=True, exist_ok=True)
        rows = execute_all(runs, args.quick, args.jobs or (2 if args.quick else 1), args.scratch) + not_run(runs)
        ours_wanted = only is None or OURS in {label.split("[")[0] for label in only}
        sweep = run_sweep(args.quick) if ours_wanted and (workloads is None or "sweep" in workloads) else None
        facts = machine_facts(rows)
    annotate(rows)
    grid = table(rows)
    sweep_text = sweep_lines(sweep) if sweep is not None else []
    print("\n".join([*facts, render_text(grid), *sweep_text]))
    if args.results:
        write_results(args.results, command, facts, grid, sweep_text)
    if args.json:
        args.json.write_text(json.dumps({"command": command, "facts": facts, "sweep": sweep, "runs": [
            {"run": r.run.__dict__, "result": r.result, "error": r.error} for r in rows]}, indent=1))
    ours_failed = isinstance(sweep, str) or any(row.error for row in rows if row.run.tool == OURS)
    return 1 if ours_failed else 0  # a peer's failure is a row; ours leaves nothing to compare with


if __name__ == "__main__":
    raise SystemExit(main())

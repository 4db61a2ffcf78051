"""daskperiment side by side with the trackers users would pick instead: one command, one table.

Builds (or reuses) the peers' virtual env, then runs every tool on every workload in this one
run, each (tool, variant, workload, N) in a fresh process (``peers/<tool>_bench.py``, one JSON
line each), plus the distributed sweep (``bench_sweep.py``), and prints one table with each
figure's **ratio to ours**: how many times faster daskperiment is (their ms / our ms, or our
points/s / theirs). Above 1 we win, below 1 we lose.

    python benchmarks/compare.py                  # full run (about half an hour on 2 cores)
    python benchmarks/compare.py --quick          # tiny sizes, under two minutes
    python benchmarks/compare.py --results benchmarks/RESULTS.md   # also write the dated section

Repetitions: trials 3 at N=200, 1 at larger N (one rep is already thousands of trials); reads 5;
import 7; metrics 3 (MLflow's per-point call is capped, see peers/README.md). The original
daskperiment 0.5.0 and mltraq (persisting after each run) get slower with every trial (each
trial rewrites the whole store), so they are not run at 10,000 trials: the table says so.
"""

from __future__ import annotations

import argparse
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
TRIAL_SIZES = (200, 2_000, 10_000)
HISTORY_N = 2_000
POINTS = 1_000_000
RUN_TIMEOUT_S = 1_800
SECTION_TITLE = "## Side by side with the peers"


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
    run: Run
    result: dict[str, Any] | None = None
    error: str | None = None
    notes: list[str] = field(default_factory=list)


def plan(quick: bool, only: set[str] | None, workloads: set[str] | None) -> list[Run]:
    """Every run of a full (or quick) comparison, ours first so peers can be compared to it."""
    sizes = (5,) if quick else TRIAL_SIZES
    history_n, points = (5, 1_000) if quick else (HISTORY_N, POINTS)
    reps_for = (lambda n: 2) if quick else (lambda n: 3 if n <= 200 else 1)
    runs: list[Run] = []
    for tool, variants in ((OURS, ("local",)), *((peer, (None,)) for peer in PEERS)):
        for variant in variants:
            for n in sizes:
                if tool in QUADRATIC and n > 2_000:
                    continue
                runs.append(Run(tool, "trials", n, reps_for(n), variant))
            runs.append(Run(tool, "metrics", points, 2 if quick else 3, variant))
            runs.append(Run(tool, "history", history_n, 2 if quick else 5, variant))
            runs.append(Run(tool, "metric_read", points, 2 if quick else 5, variant))
            runs.append(Run(tool, "import", None, 2 if quick else 7, variant))
    runs += [Run(OURS, "trials", n, reps_for(n), "floor") for n in sizes]
    runs.append(Run("mlflow", "metrics", points, 2 if quick else 1, "log_batch"))  # ~2 min per 1,000,000
    for backend in ("redis", "mongo"):  # workload 6: our server backends, as ratios to our local one
        runs.append(Run(OURS, "trials", sizes[min(1, len(sizes) - 1)], reps_for(2_000), backend))
        runs.append(Run(OURS, "metrics", points, 2 if quick else 3, backend))
        runs.append(Run(OURS, "history", history_n, 2 if quick else 5, backend))
        runs.append(Run(OURS, "metric_read", points, 2 if quick else 5, backend))
    if only:
        runs = [r for r in runs if r.tool in only]
    if workloads:
        runs = [r for r in runs if r.workload in workloads]
    return runs


def not_run(runs: list[Run]) -> list[Row]:
    """Rows saying which large runs were left out, and why (instead of silently missing)."""
    largest = max((r.n or 0 for r in runs if r.workload == "trials"), default=0)
    if largest <= 2_000:
        return []
    tools = sorted({r.tool for r in runs} & QUADRATIC)
    return [Row(Run(tool, "trials", largest), error="not run: every trial rewrites the whole store, so "
                f"{largest:,} trials would take many minutes (see N=2,000)") for tool in tools]


def execute(run: Run, quick: bool) -> Row:
    """Run one workload in its own process; a failure becomes an error row, never an abort."""
    args = [*(["--n", str(run.n)] if run.n is not None else []), *(["--reps", str(run.reps)] if run.reps else []),
            *(["--variant", run.variant] if run.variant else []), *(["--quick"] if quick else [])]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(peers_venv.command(run.tool, run.workload, *args), capture_output=True, text=True,
                              timeout=RUN_TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        return Row(run, error=f"{type(exc).__name__}: {exc}")
    log.info("%-26s %-11s n=%-9s %.1f s", run.label, run.workload, run.n, time.perf_counter() - t0)
    if proc.returncode != 0:
        lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
        return Row(run, error=f"exit {proc.returncode}: {(lines or ['no output'])[-1][:200]}")
    return Row(run, result=json.loads(proc.stdout.strip().splitlines()[-1]))


def run_sweep(quick: bool) -> dict[str, Any] | str:
    """Workload 7 (``bench_sweep.py``): its JSON, or the error text."""
    argv = [sys.executable, str(HERE / "bench_sweep.py"), *(["--quick"] if quick else [])]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"{type(exc).__name__}: {exc}"
    if proc.returncode != 0:
        return f"exit {proc.returncode}: {(proc.stderr.strip().splitlines() or ['no output'])[-1][:200]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


# -- the table ---------------------------------------------------------------------------------


def _ours_for(row: Row, rows: list[Row]) -> Row | None:
    """Our local-backend row on the same workload and size (what every ratio is taken against)."""
    for other in rows:
        r = other.run
        if (r.tool, r.variant, r.workload, r.n) == (OURS, "local", row.run.workload, row.run.n) and other.result:
            return other
    return None


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
            floor = next((o for o in rows if o.run == Run(OURS, "trials", row.run.n, row.run.reps, "floor")
                          and o.result), None)
            if floor is not None:
                overhead = figures["median_ms"] - floor.result["figures"]["median_ms"]
                row.notes.append(f"overhead over bare dask.compute {overhead:.2f} ms (medians)")


def _fmt(value: float) -> str:
    if value >= 100_000:
        return f"{value:,.0f}"
    return f"{value:,.1f}" if value >= 100 else f"{value:.3g}"


def table(rows: list[Row]) -> list[list[str]]:
    header = ["workload", "N", "tool", "version", "figure", "unit", "ours ×faster", "note"]
    order = {w: i for i, w in enumerate(("trials", "metrics", "history", "metric_read", "import"))}
    body = []
    for row in sorted(rows, key=lambda r: (order.get(r.run.workload, 9), r.run.n or 0, r.run.tool != OURS)):
        result = row.result or {}
        r = ratio(row, rows)
        body.append([row.run.workload, f"{row.run.n:,}" if row.run.n else "", row.run.label,
                     result.get("version", ""), _fmt(result["figure"]) if result else "—",
                     result.get("unit", ""), f"{r:.2f}" if r is not None else "",
                     "; ".join(row.notes) if row.result else (row.error or "")])
    return [header, *body]


def sweep_lines(sweep: dict[str, Any] | str) -> list[str]:
    if isinstance(sweep, str):
        return [f"sweep (workload 7) failed: {sweep}"]
    lines = [f"sweep of {sweep['n']:,} trials, one step of ~{sweep['step_ms']:.0f} ms of numpy work, "
             "LocalCluster with process workers (1 thread each):"]
    for workers, wall in sweep["wall_s"].items():
        lines.append(f"  {workers} worker(s): tracked {wall['tracked']:.2f} s, untracked {wall['untracked']:.2f} s, "
                     f"tracking share of wall time {wall['overhead_share']:.1%}")
    if "speedup" in sweep:
        lines.append(f"  speed-up 1 → 2 workers: tracked {sweep['speedup']['tracked']:.2f}×, "
                     f"untracked {sweep['speedup']['untracked']:.2f}×")
    return lines


def machine_facts(rows: list[Row]) -> list[str]:
    versions = sorted({f"{r.run.tool} {r.result['version']}" for r in rows if r.result})
    deps = next((r.result.get("deps", {}) for r in rows if r.result and r.run.tool == OURS), {})
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as file:
            cpu = re.search(r"model name\s*:\s*(.+)", file.read()).group(1)  # type: ignore[union-attr]
    except (OSError, AttributeError):
        pass
    return [f"machine: {os.cpu_count()} CPUs ({cpu}), {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}",
            "tools: " + ", ".join(versions),
            "our stack: " + ", ".join(f"{k} {v}" for k, v in deps.items())]


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
    section = "\n".join([
        SECTION_TITLE, "", f"`{command}`, {datetime.date.today().isoformat()}. Ratios: how many times faster "
        "daskperiment (local backend, full capture) is; above 1 we win, below 1 we lose.", "",
        *(f"- {fact}" for fact in facts), "", render_markdown(grid), "", "```", *sweep, "```", ""])
    text = path.read_text() if path.exists() else "# Benchmark results\n\n"
    start = text.find(SECTION_TITLE)
    if start == -1:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        end = text.find("\n## ", start + len(SECTION_TITLE))
        text = text[:start] + section + (text[end + 1:] if end != -1 else "")
    path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run in under two minutes")
    parser.add_argument("--only", help="comma-separated tools (daskperiment, daskperiment050, mlflow, sacred, mltraq)")
    parser.add_argument("--workloads", help="comma-separated: trials, metrics, history, metric_read, import, sweep")
    parser.add_argument("--results", type=pathlib.Path, help="write the dated section into this Markdown file")
    parser.add_argument("--json", type=pathlib.Path, help="also write every raw result to this file")
    parser.add_argument("-v", "--verbose", action="store_true", help="progress on stderr")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s", stream=sys.stderr)
    log.setLevel(logging.INFO if args.verbose else logging.WARNING)
    only = set(args.only.split(",")) if args.only else None
    workloads = set(args.workloads.split(",")) if args.workloads else None
    runs = plan(args.quick, only, workloads)
    if any(run.tool != OURS for run in runs):
        peers_venv.ensure()  # build once, up front (a minute or two the first time)
    rows = [execute(run, args.quick) for run in runs] + not_run(runs)
    annotate(rows)
    sweep = run_sweep(args.quick) if (workloads is None or "sweep" in workloads) and (only is None or OURS in only) \
        else None
    grid = table(rows)
    facts = machine_facts(rows)
    sweep_text = sweep_lines(sweep) if sweep is not None else []
    print("\n".join(facts))
    print(render_text(grid))
    if sweep_text:
        print("\n".join(sweep_text))
    command = "python benchmarks/compare.py" + "".join(f" {a}" for a in (argv if argv is not None else sys.argv[1:]))
    if args.results:
        write_results(args.results, command, facts, grid, sweep_text)
    if args.json:
        args.json.write_text(json.dumps({"runs": [{"run": r.run.__dict__, "result": r.result, "error": r.error}
                                                  for r in rows], "sweep": sweep}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

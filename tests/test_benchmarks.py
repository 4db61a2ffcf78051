"""Smoke tests of the benchmark scripts: they run with tiny sizes and produce their JSON and table.

No timing assertions (speed is measured by the scripts, not asserted here), no network and no
peers venv: only our own tool runs. The peers' drivers share its code path (``_common.py``).
"""

from __future__ import annotations

import datetime
import importlib.util
import json
import math
import pathlib
import subprocess
import sys

import pytest

BENCHMARKS = pathlib.Path(__file__).resolve().parents[1] / "benchmarks"
DRIVER = BENCHMARKS / "peers" / "daskperiment_bench.py"


def _json_line(argv: list[str], cwd: pathlib.Path) -> dict:
    proc = subprocess.run([sys.executable, *argv], capture_output=True, text=True, cwd=cwd, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1, f"stdout must hold exactly one JSON line, got: {proc.stdout[:500]}"
    return json.loads(lines[0])


@pytest.fixture
def compare(monkeypatch):
    """``benchmarks/compare.py`` as a module (it puts benchmarks/ on sys.path: undone afterwards)."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    spec = importlib.util.spec_from_file_location("bench_compare", BENCHMARKS / "compare.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_compare", module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(("workload", "variant", "unit"), [
    ("trials", "local", "ms/trial"), ("trials", "floor", "ms/trial"), ("metrics", "local", "points/s"),
    ("history", "local", "ms"), ("metric_read", "local", "ms"),
])
def test_our_driver_prints_one_result_in_the_peer_schema(tmp_path, workload, variant, unit):
    result = _json_line([str(DRIVER), "--workload", workload, "--variant", variant, "--quick",
                         "--tmp", str(tmp_path)], tmp_path)
    assert result["schema"] == 1 and result["tool"] == "daskperiment" and result["variant"] == variant
    assert result["workload"] == workload and result["unit"] == unit
    assert len(result["samples"]) == result["reps"] == 2
    assert math.isfinite(result["figure"]) and result["figure"] > 0
    if workload == "trials":
        assert result["n"] == 5 and result["figures"]["median_ms"] > 0
    assert list(tmp_path.iterdir()) == [], "scratch dirs are removed"


def test_compare_plans_every_tool_and_workload(compare):
    runs = compare.plan(quick=False, only=None, workloads=None)
    labels = {run.label for run in runs}
    assert {"daskperiment[local]", "daskperiment[floor]", "daskperiment[redis]", "daskperiment[mongo]",
            "daskperiment[postgresql]", "daskperiment050", "mlflow", "mlflow[log_batch]", "sacred", "mltraq"} == labels
    assert {run.n for run in runs if run.workload == "trials" and run.label == "mlflow"} == {200, 2_000, 10_000}
    assert max(run.n for run in runs if run.tool in compare.QUADRATIC and run.workload == "trials") == 2_000
    assert [row.run.tool for row in compare.not_run(runs)] == sorted(compare.QUADRATIC)
    assert all(run.reps >= 1 for run in runs)
    only = compare.plan(quick=True, only={"daskperiment[floor]", "sacred"}, workloads={"trials"})
    assert [run.label for run in only] == ["sacred", "daskperiment[floor]"]


def test_compare_builds_the_table_and_the_results_section(compare, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(compare.peers_venv, "ensure", None)  # ours only: the peers venv is never built
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\n## Core targets\n\nkept as is\n")
    raw = tmp_path / "raw.json"
    assert compare.main(["--quick", "--only", "daskperiment[local],daskperiment[floor]", "--workloads",
                         "trials,history", "--results", str(results), "--json", str(raw)]) == 0
    out = capsys.readouterr().out
    assert compare.main(["--from-json", str(raw)]) == 0  # re-rendered without running anything
    assert capsys.readouterr().out == out
    assert "machine: " in out and "ours ×faster" in out
    table = [line.split() for line in out.splitlines()]
    header = next(line for line in table if line[:3] == ["workload", "N", "tool"])
    assert header[3:7] == ["version", "figure", "unit", "reps"]
    rows = {tuple(line[:3]): line for line in table if line and line[0] in ("trials", "history")}
    assert set(rows) == {("trials", "5", "daskperiment[local]"), ("trials", "5", "daskperiment[floor]"),
                         ("history", "5", "daskperiment[local]")}
    for line in rows.values():
        figure = float(line[4].replace(",", ""))
        assert math.isfinite(figure) and figure > 0
    floor = rows["trials", "5", "daskperiment[floor]"]
    assert floor[6] == "2" and float(floor[7]) > 0  # its repetitions and its ratio to ours
    text = results.read_text()
    assert "kept as is" in text and text.count(compare.SECTION_TITLE) == 1
    assert "| workload | N | tool |" in text and "python benchmarks/compare.py --quick" in text
    assert f", {datetime.date.today().isoformat()}." in text
    compare.write_results(results, "again", [], compare.table([]), [])  # a later run replaces the section
    text = results.read_text()
    assert text.count(compare.SECTION_TITLE) == 1 and "`again`" in text and "kept as is" in text
    assert "--quick" not in text


def test_a_peer_that_cannot_be_installed_is_an_error_row(compare, monkeypatch):
    def no_venv(*args, **kwargs):
        raise subprocess.CalledProcessError(1, ["pip", "install"], stderr="no matching distribution")

    monkeypatch.setattr(compare.peers_venv, "ensure", no_venv)
    (row,) = compare.execute_all([compare.Run("sacred", "import", None, 1)], quick=True, jobs=1)
    assert row.result is None and row.error.startswith("peers venv not built: CalledProcessError")
    grid = compare.table([row])
    assert grid[1][2] == "sacred" and grid[1][4] == "—" and "peers venv not built" in grid[1][-1]


def test_a_full_run_warms_every_tool_up_once_untimed(compare, monkeypatch):
    calls = []

    def fake_run_peer(tool, workload, **kwargs):
        calls.append((tool, workload, kwargs.get("quick"), kwargs.get("variant")))
        if tool == "mlflow" and kwargs.get("quick"):
            raise RuntimeError("mlflow_bench.py failed (exit 1): boom")  # a failed warm-up is not fatal
        return {"tool": tool, "version": "1", "figure": 1.0, "unit": "ms", "reps": 1, "figures": {}}

    monkeypatch.setattr(compare.peers_venv, "ensure", lambda *a, **k: "python")
    monkeypatch.setattr(compare.peers_venv, "run_peer", fake_run_peer)
    runs = [compare.Run("daskperiment", "import", None, 1, "local"), compare.Run("mlflow", "import", None, 1),
            compare.Run("mlflow", "history", 5, 1)]
    rows = compare.execute_all(runs, quick=False, jobs=1)
    assert calls[:2] == [("daskperiment", "trials", True, "local"), ("mlflow", "trials", True, None)]
    assert [c[:2] for c in calls[2:]] == [("daskperiment", "import"), ("mlflow", "import"), ("mlflow", "history")]
    assert all(row.result for row in rows)
    calls.clear()
    compare.execute_all(runs[:1], quick=True, jobs=1)
    assert [c[1] for c in calls] == ["import"]  # no warm-up in a smoke run


def test_scratch_folder_reaches_every_run(compare, monkeypatch, tmp_path):
    extras = []

    def fake_run_peer(tool, workload, **kwargs):
        extras.append(kwargs.get("extra"))
        return {"tool": tool, "version": "1", "figure": 1.0, "unit": "ms", "reps": 1, "figures": {}}

    monkeypatch.setattr(compare.peers_venv, "run_peer", fake_run_peer)
    compare.execute_all([compare.Run("daskperiment", "import", None, 1, "local")], quick=False, jobs=1,
                        scratch=tmp_path)
    assert extras == [("--tmp", str(tmp_path))] * 2  # the warm-up and the run


def test_sweep_runs_on_a_local_cluster(tmp_path):
    result = _json_line([str(BENCHMARKS / "bench_sweep.py"), "--n", "4"], tmp_path)
    assert result["n"] == 4 and result["rounds"] >= 1
    for workers in ("1", "2"):
        wall = result["wall_s"][workers]
        assert wall["tracked"] > 0 and wall["untracked"] > 0 and wall["overhead_share"] < 1
    assert set(result["speedup"]) == {"tracked", "untracked"}
    for workers in ("1", "2"):  # ex.sweep as one graph next to the untracked one graph
        graph = result["one_graph"][workers]
        assert graph["sweep"] > 0 and graph["untracked"] > 0 and graph["floor"] == 1.05
    threaded = result["threaded"]  # 10 × --n quickstart trials as one sweep, one graph, one by one
    assert threaded["n"] == 40 and threaded["floor_one_by_one_over_sweep"] == 5.0
    assert threaded["sweep_s"] > 0 and threaded["untracked_graph_s"] > 0 and threaded["one_by_one_s"] > 0


def test_sweep_memory_benchmark_reports_the_peak_next_to_its_floors(tmp_path):
    result = _json_line([str(BENCHMARKS / "bench_sweep_memory.py"), "--n", "20", "--points", "10", "--only",
                         "threads"], tmp_path)
    assert result["n"] == 20 and result["raw_points_bytes"] == 20 * 10 * 16
    figures = result["variants"]["threads"]
    for kind in ("tracked", "untracked"):
        assert figures[kind]["peak_growth_bytes"] >= 0 and figures[kind]["wall_s"] > 0


def test_cache_benchmark_runs_and_reports_the_ratio(tmp_path):
    proc = subprocess.run([sys.executable, str(BENCHMARKS / "bench_cache.py"), "--quick"], capture_output=True,
                          text=True, cwd=tmp_path, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "cache=True" in proc.stdout and "faster than without (target >= 10x)" in proc.stdout


def test_core_benchmark_measures_overhead_alternating(tmp_path):
    proc = subprocess.run([sys.executable, str(BENCHMARKS / "bench_core.py"), "--quick", "--json"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    rows = out["trials"]
    assert [row["n"] for row in rows] == [200, 2_000]
    assert all(math.isfinite(row["overhead_ms"]) and row["floor_ms"] > 0 for row in rows)
    vectorised = out["save_metrics"]  # item 10 of the hardening issue: arrays of points end to end
    assert vectorised["points"] == 2_000_000 and vectorised["points_per_s"] > 0


def test_dashboard_benchmark_runs_quick(tmp_path):
    result = _json_line([str(BENCHMARKS / "bench_dashboard.py"), "--quick", "--json"], tmp_path)
    assert result["history_json"]["trials"] == 2_000 and result["history_json"]["first_page_ms"] > 0
    assert result["chart"]["points"] == 10_000 and result["chart"]["sent_points"] <= 2_000
    assert result["report"]["trials"] == 100 and result["report"]["megabytes"] > 0
    assert isinstance(result["first_paint"], (dict, str))


def test_bench_faults_quick_measures_every_backend_and_fault(tmp_path):
    """Starts its own Redis and MongoDB servers (127.0.0.1), kills and freezes them: a real error each time."""
    result = _json_line([str(BENCHMARKS / "bench_faults.py"), "--quick", "--json"], tmp_path)
    rows = {(row["backend"], row["fault"]): row for row in result["rows"]}
    assert sorted(rows) == [("mongo", "dead"), ("mongo", "frozen"), ("redis", "dead"), ("redis", "frozen")]
    assert all(row["error"] == "BackendUnavailableError" and row["seconds"] > 0 for row in rows.values())

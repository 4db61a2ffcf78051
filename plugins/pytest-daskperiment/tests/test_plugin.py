"""The plugin's packaging: fixtures arrive through the ``pytest11`` entry point (or ``pytest_plugins``),
and the core runtime ships no server launching and imports neither pytest nor mirakuru."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import subprocess
import sys

import daskperiment.testing

FIXTURES = ("redis_server", "redis_uri", "mongo_server", "mongo_uri", "postgresql_server", "postgresql_url",
            "mariadb_server", "mariadb_url")


def test_registered_as_a_pytest_plugin_by_its_entry_point():
    entry_points = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="pytest11")}
    assert entry_points.get("pytest_daskperiment") == "pytest_daskperiment"


def test_fixtures_come_without_any_conftest(run_pytest):
    result = run_pytest("def test_nothing():\n    pass\n", {}, "--fixtures")
    assert result.returncode == 0, result.stdout + result.stderr
    listed = {line.split()[0] for line in result.stdout.splitlines() if line and not line.startswith(" ")}
    assert set(FIXTURES) <= listed, sorted(listed)


def test_pytest_plugins_in_a_root_conftest_works_alongside_the_entry_point(run_pytest, tmp_path):
    (tmp_path / "inner").mkdir()
    (tmp_path / "inner" / "conftest.py").write_text('pytest_plugins = ["pytest_daskperiment"]\n')
    result = run_pytest("def test_one(redis_server):\n    assert redis_server.uri\n", {})
    assert result.returncode == 0 and "1 passed" in result.stdout, result.stdout + result.stderr
    disabled = run_pytest("def test_one(redis_server):\n    assert redis_server.uri\n",
                          {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"})
    assert disabled.returncode == 0 and "1 passed" in disabled.stdout, "the conftest alone loads it"


def test_core_testing_package_keeps_only_the_conformance_suites():
    assert importlib.util.find_spec("daskperiment.testing.servers") is None
    assert importlib.util.find_spec("daskperiment.testing.fixtures") is None
    assert importlib.util.find_spec("daskperiment.testing.backend") is not None
    assert importlib.util.find_spec("daskperiment.testing.collectors") is not None
    assert "server" not in (daskperiment.testing.__doc__ or "").split("\n")[0]


def test_importing_daskperiment_imports_neither_pytest_nor_mirakuru():
    code = ("import sys, daskperiment, daskperiment.backends; "
            "print(sorted(m for m in ('pytest', '_pytest', 'mirakuru', 'pytest_daskperiment') "
            "if m in sys.modules))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "[]"


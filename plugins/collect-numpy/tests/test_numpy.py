"""The numpy collector: the collector checks, then its content and its failure records."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest

import daskperiment_collect_numpy as plugin
from daskperiment.testing.collectors import CollectorTests
from daskperiment_collect_numpy import probe


class TestNumpyCollector(CollectorTests):
    plugin = plugin
    entry_point = "numpy"
    sections = ("numpy", "pandas")

    def test_numpy_build_configuration_and_pandas_versions(self, runs):
        result = runs["calls"][0].result
        assert "Build Dependencies" in result["numpy"]
        assert f"pandas                : {pd.__version__}" in result["pandas"]
        assert f"numpy                 : {np.__version__}" in result["pandas"]


def test_libraries_that_are_not_installed_are_left_out(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "scipy" else real(name, *a))
    sections = probe.probe()
    assert "scipy" not in sections and "numpy" in sections


def test_old_versions_give_printed_text():
    class OldLibrary:
        @staticmethod
        def show_config():
            print("blas_opt_info:\n    libraries = ['openblas']")

    assert probe._build_config(OldLibrary) == "blas_opt_info:\n    libraries = ['openblas']\n"


def test_one_broken_library_does_not_hide_the_others(monkeypatch):
    def broken(mode=None):
        raise RuntimeError("no config")

    monkeypatch.setattr(np, "show_config", broken)
    sections = probe.probe()
    assert sections["numpy"] == {"error": "RuntimeError: no config"} and "pandas" in sections


def test_failure_is_recorded(monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-python"))
    assert plugin.collect_environment() == {"numpy": {"error": "no-python: command not found"}}


@pytest.mark.skipif(sys.platform == "win32", reason="a shell script stands in for python")
def test_timeout_is_recorded(monkeypatch, tmp_path):
    slow = tmp_path / "python"
    slow.write_text("#!/bin/sh\nexec sleep 5\n")
    slow.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(slow))
    monkeypatch.setattr(plugin, "TIMEOUT", 0.2)
    assert plugin.collect_environment() == {"numpy": {"error": "python timed out after 0.2 s"}}


def test_the_answer_is_kept_until_something_is_installed(monkeypatch, tmp_path):
    monkeypatch.setenv("DASKPERIMENT_CACHE_DIR", str(tmp_path / "cache"))
    first = plugin.collect_environment()
    assert "error" not in first["numpy"]
    monkeypatch.setattr(plugin, "run_tool", lambda *a, **k: pytest.fail("collected again despite the cache"))
    assert plugin.collect_environment() == first
    installed = plugin.installed_distributions()
    monkeypatch.setattr(plugin, "installed_distributions", lambda: [*installed, "newlib-1.0.dist-info"])
    with pytest.raises(pytest.fail.Exception):
        plugin.collect_environment()

"""The CPU collector: the collector checks, then its content and its failure records."""

from __future__ import annotations

import sys

import pytest

import daskperiment_collect_cpu as plugin
from daskperiment.testing.collectors import CollectorTests


class TestCpuCollector(CollectorTests):
    plugin = plugin
    entry_point = "cpu"
    sections = ("cpu",)

    def test_records_brand_cores_and_flags_but_not_the_current_clock(self, runs):
        section = runs["calls"][0].result["cpu"]
        assert section["count"] >= 1 and section["arch"]
        assert "brand_raw" in section and isinstance(section.get("flags", []), list)
        assert not set(plugin.VOLATILE_KEYS) & set(section)


def test_failure_is_recorded(monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-python"))
    assert plugin.collect_environment() == {"cpu": {"error": "no-python: command not found"}}


@pytest.mark.skipif(sys.platform == "win32", reason="a shell script stands in for python")
def test_timeout_is_recorded(monkeypatch, tmp_path):
    slow = tmp_path / "python"
    slow.write_text("#!/bin/sh\nexec sleep 5\n")
    slow.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(slow))
    monkeypatch.setattr(plugin, "TIMEOUT", 0.2)
    assert plugin.collect_environment() == {"cpu": {"error": "python timed out after 0.2 s"}}


@pytest.mark.skipif(sys.platform == "win32", reason="a shell script stands in for python")
def test_garbage_output_is_recorded(monkeypatch, tmp_path):
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho not json\n")
    fake.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(fake))
    assert plugin.collect_environment()["cpu"]["error"].startswith("py-cpuinfo printed no JSON")


def test_the_answer_is_kept_per_boot_and_reused(monkeypatch, tmp_path):
    monkeypatch.setenv("DASKPERIMENT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(plugin, "boot_id", lambda: "boot-for-this-test")
    first = plugin.collect_environment()
    assert "error" not in first["cpu"]
    monkeypatch.setattr(plugin, "run_tool", lambda *a, **k: pytest.fail("collected again despite the cache"))
    assert plugin.collect_environment() == first
    monkeypatch.setattr(plugin, "boot_id", lambda: "after-a-reboot")
    with pytest.raises(pytest.fail.Exception):
        plugin.collect_environment()


def test_no_boot_id_means_no_caching(monkeypatch):
    monkeypatch.setattr(plugin, "boot_id", lambda: None)
    assert plugin.cache_key() is None

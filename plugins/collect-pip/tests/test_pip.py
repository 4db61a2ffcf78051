"""The pip collector: the collector checks, then lines, editable marks and change detection."""

from __future__ import annotations

import json
import os
import sys
from importlib import metadata

import pytest

import daskperiment_collect_pip as plugin
from daskperiment.testing.collectors import CollectorTests


class TestPipCollector(CollectorTests):
    plugin = plugin
    entry_point = "pip"
    sections = ("requirements",)


def fake_distribution(directory, name: str, version: str, *, editable_source=None) -> None:
    """A hand-written ``.dist-info``: what an installer leaves behind, without installing anything."""
    info = directory / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    if editable_source is not None:
        (info / "direct_url.json").write_text(json.dumps(
            {"url": editable_source.as_uri(), "dir_info": {"editable": True}}))


@pytest.fixture
def site_dir(tmp_path, monkeypatch):
    """An extra directory at the front of ``sys.path``, with an old mtime so any change shows."""
    directory = tmp_path / "site"
    directory.mkdir()
    os.utime(directory, ns=(0, 0))
    monkeypatch.syspath_prepend(str(directory))
    return directory


def test_line_is_name_version_and_location():
    dist = metadata.distribution("pandas")
    location = os.fspath(dist.locate_file(""))
    assert f"pandas {dist.version} ({location})" in plugin.requirement_lines()


def test_lines_are_sorted_by_canonical_name(site_dir):
    fake_distribution(site_dir, "Zeta_Pkg", "1.0")
    fake_distribution(site_dir, "alpha.pkg", "2.0")
    lines = plugin.requirement_lines()
    keys = [line.split(" ")[0].lower().replace("_", "-").replace(".", "-") for line in lines]
    assert keys == sorted(keys)
    assert f"alpha.pkg 2.0 ({site_dir})" in lines and f"Zeta_Pkg 1.0 ({site_dir})" in lines


def test_editable_install_is_marked_with_its_source(site_dir, tmp_path):
    source = tmp_path / "src" / "mylib"
    source.mkdir(parents=True)
    fake_distribution(site_dir, "mylib", "0.3.dev0", editable_source=source)
    assert f"mylib 0.3.dev0 ({source}, editable)" in plugin.requirement_lines()


def test_the_importable_copy_wins(site_dir, tmp_path, monkeypatch):
    behind = tmp_path / "behind"
    fake_distribution(behind, "twice", "1.0")
    monkeypatch.setattr(sys, "path", [*sys.path, str(behind)])
    fake_distribution(site_dir, "twice", "2.0")
    assert [line for line in plugin.requirement_lines() if line.startswith("twice ")] == [f"twice 2.0 ({site_dir})"]


def test_section_is_text_ending_with_newline():
    text = plugin.collect_environment()["requirements"]
    assert text.endswith("\n") and len(text.splitlines()) == len(plugin.requirement_lines())


def test_fingerprint_moves_when_a_distribution_is_installed_or_removed(site_dir):
    before = plugin.environment_fingerprint()
    fake_distribution(site_dir, "newcomer", "1.0")
    installed = plugin.environment_fingerprint()
    assert installed != before
    os.utime(site_dir, ns=(0, 0))
    for path in sorted(site_dir.rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    assert plugin.environment_fingerprint() != installed


def test_fingerprint_moves_when_sys_path_changes(tmp_path, monkeypatch):
    before = plugin.environment_fingerprint()
    monkeypatch.syspath_prepend(str(tmp_path))
    assert plugin.environment_fingerprint() != before


def test_the_script_directory_is_not_watched_unless_it_holds_distributions(tmp_path, monkeypatch):
    """Files written next to the script (results, daskperiment_cache) must not re-collect the section."""
    import daskperiment_collect_pip as pip_collector

    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(pip_collector, "_watched", {})
    before = pip_collector.environment_fingerprint()
    (tmp_path / "results.csv").write_text("x\n")
    assert pip_collector.environment_fingerprint() == before

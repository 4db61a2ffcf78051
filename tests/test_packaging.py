"""All distributions release in lockstep, and every plugin is installed for development."""

from __future__ import annotations

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]
PYPROJECTS = [ROOT / "core" / "pyproject.toml", *sorted((ROOT / "plugins").glob("*/pyproject.toml"))]


def _field(text: str, name: str) -> str:
    return re.search(rf'^{name} = "([^"]+)"', text, re.M).group(1)


def test_versions_are_in_lockstep():
    versions = {p.parent.name: _field(p.read_text(), "version") for p in PYPROJECTS}
    assert set(versions.values()) == {"1.0.0.dev0"}, versions


def test_plugins_never_pull_the_2019_release():
    for path in PYPROJECTS[1:]:
        block = re.search(r"^dependencies = \[(.*?)\]$", path.read_text(), re.M | re.S).group(1)
        deps = re.findall(r'"daskperiment(?:\[[^\]]*\])?([<>=!~][^"]*)"', block)
        assert deps and all(">=1.0.0.dev0" in d for d in deps), f"{path}: {deps}"


def test_every_plugin_is_in_the_dev_requirements():
    dev = "".join((ROOT / "requirements" / name).read_text() for name in ("dev.txt", "run.txt"))
    for path in PYPROJECTS[1:]:
        assert f"-e ./plugins/{path.parent.name}" in dev, path.parent.name


def test_core_names_every_plugin_as_dependency_or_extra():
    core = (ROOT / "core" / "pyproject.toml").read_text()
    for path in PYPROJECTS[1:]:
        assert f'"{_field(path.read_text(), "name")}==1.0.0.dev0"' in core, path.parent.name

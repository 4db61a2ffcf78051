"""All distributions release in lockstep, with complete metadata, and every plugin is installed
for development. (Building and installing them: ``tests/test_release.py``.)"""

from __future__ import annotations

import pathlib
import re
import sys

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib

ROOT = pathlib.Path(__file__).resolve().parents[1]
PYPROJECTS = [ROOT / "core" / "pyproject.toml", *sorted((ROOT / "plugins").glob("*/pyproject.toml"))]


def _field(text: str, name: str) -> str:
    return re.search(rf'^{name} = "([^"]+)"', text, re.M).group(1)


def test_versions_are_in_lockstep():
    """A final version: pip skips pre-releases without ``--pre`` and would pick the 2019 release."""
    import daskperiment

    versions = {p.parent.name: _field(p.read_text(), "version") for p in PYPROJECTS}
    assert set(versions.values()) == {daskperiment.__version__} == {"1.0.0"}, versions
    assert re.search(rf"^## {re.escape(daskperiment.__version__)} ", (ROOT / "CHANGELOG.md").read_text(), re.M)


def test_metadata_is_complete_and_shared():
    """Every distribution: licence file and expression, readme, classifiers and URLs, the same
    for all but the readme (the licence text is a copy of the repository's; a distribution may
    add classifiers of its own, like the pytest plugin's ``Framework :: Pytest``)."""
    tables = {p.parent.name: tomllib.loads(p.read_text())["project"] for p in PYPROJECTS}
    licence = (ROOT / "LICENSE").read_text()
    for name, project in tables.items():
        assert project["license"] == "BSD-3-Clause" and project["license-files"] == ["LICENSE"], name
        assert (ROOT / ("core" if name == "core" else f"plugins/{name}") / "LICENSE").read_text() == licence, name
        assert project["readme"] == "README.md" and project["description"], name
        assert project["urls"] == tables["core"]["urls"], name
        assert set(tables["core"]["classifiers"]) <= set(project["classifiers"]), name
        assert project["authors"] == tables["core"]["authors"], name


def test_urls_point_at_this_project_and_at_files_it_has():
    """We are the continuation of daskperiment 0.5.0 on its name and repository, so the project
    links are that repository's; the documentation and changelog links name a folder and a
    file of this checkout. daskperiment.readthedocs.io holds 0.5.0's documentation: a 1.0 user
    sent there would read the old API."""
    urls = tomllib.loads((ROOT / "core" / "pyproject.toml").read_text())["project"]["urls"]
    repository = "https://github.com/sinhrks/daskperiment"
    assert set(urls) == {"Homepage", "Repository", "Documentation", "Changelog", "Issues"}
    assert urls["Homepage"] == urls["Repository"] == repository
    assert urls["Issues"] == f"{repository}/issues"
    for name, kind, path in (("Documentation", "tree", "docs"), ("Changelog", "blob", "CHANGELOG.md")):
        assert urls[name] == f"{repository}/{kind}/main/{path}", name
        assert (ROOT / path).exists(), path
    assert (ROOT / "mkdocs.yml").is_file() and "docs_dir: docs" in (ROOT / "mkdocs.yml").read_text()


def test_readmes_on_the_package_index_link_absolutely():
    """A distribution's readme is its page on the package index, where a link relative to this
    checkout (``../../README.md``) leads nowhere."""
    for path in PYPROJECTS:
        readme = (path.parent / "README.md").read_text()
        relative = [target for target in re.findall(r"\]\(([^)]+)\)", readme)
                    if not target.startswith(("https://", "http://", "#"))]
        assert not relative, f"{path.parent.name}/README.md: {relative}"


def test_plugins_never_pull_the_2019_release():
    for path in PYPROJECTS[1:]:
        block = re.search(r"^dependencies = \[(.*?)\]$", path.read_text(), re.M | re.S).group(1)
        deps = re.findall(r'"daskperiment(?:\[[^\]]*\])?([<>=!~][^"]*)"', block)
        assert deps and all(">=1.0.0" in d for d in deps), f"{path}: {deps}"


def test_every_plugin_is_in_the_dev_requirements():
    dev = "".join((ROOT / "requirements" / name).read_text() for name in ("dev.txt", "run.txt"))
    for path in PYPROJECTS[1:]:
        assert f"-e ./plugins/{path.parent.name}" in dev, path.parent.name


def test_core_names_every_plugin_as_dependency_or_extra():
    core = (ROOT / "core" / "pyproject.toml").read_text()
    for path in PYPROJECTS[1:]:
        assert f'"{_field(path.read_text(), "name")}==1.0.0"' in core, path.parent.name

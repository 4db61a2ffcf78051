"""The conda collector, against a stand-in ``conda`` script (no real conda needed)."""

from __future__ import annotations

import sys
import textwrap

import pytest

import daskperiment_collect_conda as plugin
from daskperiment.testing.collectors import CollectorTests

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="a shell script stands in for conda")


def fake_conda(directory, body: str | None = None):
    """A ``conda`` executable answering ``info`` and ``list --export --prefix P``."""
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / "conda"
    script.write_text(body or textwrap.dedent("""\
        #!/bin/sh
        case "$1" in
          info) echo "     active environment : demo"; echo "          conda version : 24.1.2" ;;
          list) echo "# platform: linux-64"; echo "numpy=1.26.4=py311h64a7726_0"; echo "prefix=$4" ;;
        esac
    """))
    script.chmod(0o755)
    return script


def fake_prefix(directory):
    (directory / "conda-meta").mkdir(parents=True)
    (directory / "conda-meta" / "history").write_text("==> 2024-01-01 <==\n")
    return directory


class TestCondaCollector(CollectorTests):
    plugin = plugin
    entry_point = "conda"
    sections = ("conda",)

    @pytest.fixture(scope="class")
    @classmethod
    def collector_setup(cls, collector_dir, tmp_path_factory):
        prefix = fake_prefix(tmp_path_factory.mktemp("env"))
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("CONDA_EXE", str(fake_conda(tmp_path_factory.mktemp("bin"))))
            mp.setenv("CONDA_PREFIX", str(prefix))
            yield prefix

    def test_records_info_and_the_environment_packages(self, runs, collector_setup):
        assert runs["calls"][0].result["conda"] == (
            "$ conda info\n     active environment : demo\n          conda version : 24.1.2\n"
            f"\n$ conda list --export --prefix {collector_setup}\n"
            f"# platform: linux-64\nnumpy=1.26.4=py311h64a7726_0\nprefix={collector_setup}\n")


def test_no_conda_no_section(monkeypatch, tmp_path):
    monkeypatch.delenv("CONDA_EXE", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert plugin.collect_environment() is None


def test_conda_on_path_is_found(monkeypatch, tmp_path):
    monkeypatch.delenv("CONDA_EXE", raising=False)
    monkeypatch.delenv("CONDA_PREFIX", raising=False)
    monkeypatch.setenv("PATH", str(fake_conda(tmp_path / "bin").parent))
    assert plugin.collect_environment()["conda"].startswith("$ conda info\n     active environment : demo")


def test_timeout_is_recorded(monkeypatch, tmp_path):
    monkeypatch.setenv("CONDA_EXE", str(fake_conda(tmp_path / "bin", "#!/bin/sh\nexec sleep 5\n")))
    monkeypatch.setattr(plugin, "TIMEOUT", 0.2)
    assert plugin.collect_environment() == {"conda": {"error": "conda timed out after 0.2 s"}}


def test_failure_is_recorded(monkeypatch, tmp_path):
    monkeypatch.setenv("CONDA_EXE", str(fake_conda(tmp_path / "bin", "#!/bin/sh\necho broken >&2\nexit 3\n")))
    assert plugin.collect_environment() == {"conda": {"error": "conda info exited with status 3: broken"}}


def test_fingerprint_moves_after_a_conda_transaction(monkeypatch, tmp_path):
    prefix = fake_prefix(tmp_path / "env")
    monkeypatch.setenv("CONDA_PREFIX", str(prefix))
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "not-conda"))
    before = plugin.environment_fingerprint()
    with open(prefix / "conda-meta" / "history", "a") as history:
        history.write("+conda-forge/linux-64::scipy-1.13.0\n")
    assert plugin.environment_fingerprint() != before


def test_the_interpreter_environment_wins_over_the_activated_one(monkeypatch, tmp_path):
    own = fake_prefix(tmp_path / "own")
    monkeypatch.setattr(sys, "prefix", str(own))
    monkeypatch.setenv("CONDA_PREFIX", str(tmp_path / "activated"))
    assert plugin.environment_prefix() == str(own)

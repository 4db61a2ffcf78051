"""The git collector: the collector checks, then what it records in real temporary repositories."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

import daskperiment_collect_git as plugin
from daskperiment.testing.collectors import CollectorTests
from daskperiment_collect_git import commands, repository

GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.org", "GIT_CONFIG_NOSYSTEM": "1"}


def git(cwd, *args: str) -> str:
    return subprocess.run(["git", "-c", "init.defaultBranch=main", "-c", "commit.gpgsign=false", *args],
                          cwd=cwd, env={**os.environ, **GIT_ENV}, capture_output=True, text=True,
                          check=True, timeout=30).stdout.strip()


def make_repo(path, *, remote: str = "https://user:s3cret@example.org/team/project.git?token=abc"):
    """A repository with one commit on ``main``, a remote with credentials, and an uncommitted change."""
    path.mkdir(exist_ok=True)
    git(path, "init", "-q")
    (path / "train.py").write_text("print('v1')\n")
    git(path, "add", "train.py")
    git(path, "commit", "-q", "-m", "first")
    git(path, "remote", "add", "origin", remote)
    (path / "train.py").write_text("print('v2')\n")
    return path


class TestGitCollector(CollectorTests):
    plugin = plugin
    entry_point = "git"
    sections = ("git",)

    @pytest.fixture(scope="class")
    @classmethod
    def collector_setup(cls, collector_dir):
        make_repo(collector_dir)

    def test_records_commit_branch_dirty_remotes_and_diff(self, runs, collector_dir):
        section = runs["calls"][0].result["git"]
        assert section["repository"] == str(collector_dir)
        assert section["commit"] == git(collector_dir, "rev-parse", "HEAD")
        assert section["branch"] == "main"
        assert section["dirty"] is True
        assert section["remotes"] == {"origin": "https://example.org/team/project.git"}
        assert "-print('v1')\n+print('v2')" in section["diff"]


class TestOutsideRepository(CollectorTests):
    plugin = plugin
    entry_point = "git"
    sections = ("git",)

    def test_says_not_a_git_repository(self, runs, collector_dir):
        assert runs["calls"][0].result == {"git": {"repository": None, "status": "not a git repository",
                                                   "searched_from": str(collector_dir)}}


@pytest.mark.parametrize(("url", "expected"), [
    ("https://user:pass@host.org/a/b.git", "https://host.org/a/b.git"),
    ("https://ghp_token@github.com/a/b.git", "https://github.com/a/b.git"),
    ("https://host.org:8443/a/b.git?private_token=x#frag", "https://host.org:8443/a/b.git"),
    ("ssh://git@host.org/a/b.git", "ssh://host.org/a/b.git"),
    ("git@github.com:a/b.git", "git@github.com:a/b.git"),
    ("/srv/git/project.git", "/srv/git/project.git"),
])
def test_strip_credentials(url, expected):
    assert plugin.strip_credentials(url) == expected


def test_clean_repository_has_empty_diff(tmp_path):
    make_repo(tmp_path)
    git(tmp_path, "checkout", "--", "train.py")
    section = plugin.collect_environment()["git"]
    assert (section["dirty"], section["diff"]) == (False, "")


def test_untracked_files_do_not_make_it_dirty(tmp_path):
    make_repo(tmp_path)
    git(tmp_path, "checkout", "--", "train.py")
    (tmp_path / "scratch.txt").write_text("notes")
    assert plugin.collect_environment()["git"]["dirty"] is False


def test_staged_changes_are_in_the_diff(tmp_path):
    make_repo(tmp_path)
    git(tmp_path, "add", "train.py")
    assert "+print('v2')" in plugin.collect_environment()["git"]["diff"]


def test_repository_without_commits(tmp_path):
    git(tmp_path, "init", "-q")
    (tmp_path / "a.py").write_text("x = 1\n")
    git(tmp_path, "add", "a.py")
    section = plugin.collect_environment()["git"]
    assert (section["commit"], section["branch"], section["dirty"]) == (None, "main", True)
    assert "+x = 1" in section["diff"]


def test_detached_head_has_no_branch(tmp_path):
    make_repo(tmp_path)
    git(tmp_path, "checkout", "-q", "--detach")
    assert plugin.collect_environment()["git"]["branch"] is None


def test_subdirectory_describes_the_enclosing_repository(tmp_path, monkeypatch):
    make_repo(tmp_path)
    (tmp_path / "src").mkdir()
    monkeypatch.chdir(tmp_path / "src")
    assert plugin.collect_environment()["git"]["repository"] == str(tmp_path)


def test_huge_diff_is_truncated(tmp_path, monkeypatch):
    make_repo(tmp_path)
    monkeypatch.setattr(commands, "MAX_DIFF_CHARS", 50)
    diff = plugin.collect_environment()["git"]["diff"]
    assert diff.endswith("[diff truncated at 50 characters]\n") and len(diff) < 120


def test_missing_git_is_recorded(tmp_path, monkeypatch):
    make_repo(tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert plugin.collect_environment() == {"git": {"repository": str(tmp_path),
                                                    "error": "git: command not found"}}


@pytest.mark.skipif(sys.platform == "win32", reason="a shell script stands in for git")
def test_hanging_git_is_recorded_as_timeout(tmp_path, monkeypatch):
    make_repo(tmp_path)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "git").write_text("#!/bin/sh\nexec sleep 5\n")
    (bin_dir / "git").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setattr(commands, "TIMEOUT", 0.2)
    assert plugin.collect_environment()["git"]["error"] == "git timed out after 0.2 s"


def test_git_dir_variables_do_not_redirect_it(tmp_path, monkeypatch):
    """Tests run from git hooks have GIT_DIR set: the repository found on disk still wins."""
    make_repo(tmp_path / "a")
    other = tmp_path / "b"
    other.mkdir()
    make_repo(other)
    monkeypatch.setenv("GIT_DIR", str(other / ".git"))
    monkeypatch.chdir(tmp_path / "a")
    assert plugin.collect_environment()["git"]["commit"] == git(tmp_path / "a", "--git-dir", ".git",
                                                                "rev-parse", "HEAD")


def test_fingerprint_moves_on_commit_add_checkout_and_remote_change(tmp_path):
    make_repo(tmp_path)
    seen = [plugin.environment_fingerprint()]
    for change in (["add", "train.py"], ["commit", "-q", "-m", "second"], ["checkout", "-q", "-b", "other"],
                   ["remote", "set-url", "origin", "https://example.org/moved.git"]):
        git(tmp_path, *change)
        seen.append(plugin.environment_fingerprint())
        assert seen[-1] != seen[-2], change
    assert plugin.environment_fingerprint() == seen[-1]


def test_fingerprint_follows_the_working_directory(tmp_path, monkeypatch):
    make_repo(tmp_path)
    inside = plugin.environment_fingerprint()
    monkeypatch.chdir(tmp_path.parent)
    assert plugin.environment_fingerprint() != inside


def test_linked_work_tree(tmp_path, monkeypatch):
    main = make_repo(tmp_path / "main")
    git(main, "worktree", "add", "-q", "-b", "feature", str(tmp_path / "feature"))
    monkeypatch.chdir(tmp_path / "feature")
    before = plugin.environment_fingerprint()
    section = plugin.collect_environment()["git"]
    assert (section["repository"], section["branch"]) == (str(tmp_path / "feature"), "feature")
    (tmp_path / "feature" / "new.py").write_text("y = 2\n")
    git(tmp_path / "feature", "add", "new.py")
    git(tmp_path / "feature", "commit", "-q", "-m", "in the linked work tree")
    assert plugin.environment_fingerprint() != before


def test_the_running_script_chooses_the_repository(tmp_path):
    """``python experiment.py`` from elsewhere describes the script's repository, not the cwd."""
    repo = make_repo(tmp_path / "project")
    (repo / "experiment.py").write_text(textwrap.dedent("""
        import json
        import daskperiment_collect_git
        print(json.dumps(daskperiment_collect_git.collect_environment()))
    """))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = subprocess.run([sys.executable, str(repo / "experiment.py")], cwd=elsewhere, capture_output=True,
                         text=True, check=True, timeout=60).stdout
    assert json.loads(out)["git"]["repository"] == str(repo)


def test_python_installation_scripts_are_not_the_experiment():
    assert repository._script_directory(os.path.join(sys.prefix, "bin", "pytest")) is None

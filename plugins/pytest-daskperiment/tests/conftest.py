"""Helpers of the plugin's own tests: a clean policy environment, a broken server binary, and
inner pytest runs in a subprocess (to see the skip/fail outcome a user's session would get)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from pytest_daskperiment import policy
from pytest_daskperiment.servers.mariadb import MARIADB_BIN_ENV
from pytest_daskperiment.servers.postgresql import POSTGRESQL_BIN_ENV

_OVERRIDES = (policy.REDIS_URI_ENV, policy.MONGO_URI_ENV, policy.POSTGRES_URI_ENV, policy.MARIADB_URI_ENV,
              POSTGRESQL_BIN_ENV, MARIADB_BIN_ENV, "CI")


@pytest.fixture
def no_overrides(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """Policy tests must not pick up a developer's external-server settings or CI flag."""
    for name in _OVERRIDES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture
def failing_binary(tmp_path: Path) -> str:
    """An executable that exits at once, as a broken server install would."""
    path = tmp_path / "broken-server"
    path.write_text("#!/bin/sh\necho 'broken install: missing libssl' >&2\nexit 3\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return str(path)


@pytest.fixture
def run_pytest(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run ``source`` as a test module in a fresh pytest process (the plugin comes from its entry
    point) with ``env`` changes (``None`` removes a variable); returns the finished process."""

    def run(source: str, env: dict[str, str | None], *args: str) -> subprocess.CompletedProcess[str]:
        directory = tmp_path / "inner"
        directory.mkdir(exist_ok=True)
        (directory / "test_inner.py").write_text(textwrap.dedent(source))
        environment = {k: v for k, v in os.environ.items() if k not in _OVERRIDES}
        for name, value in env.items():
            if value is None:
                environment.pop(name, None)
            else:
                environment[name] = value
        return subprocess.run([sys.executable, "-m", "pytest", "-q", "-rsfE", "-p", "no:cacheprovider", *args,
                               "test_inner.py"], cwd=directory, env=environment, capture_output=True,
                              text=True, timeout=300, check=False)

    return run

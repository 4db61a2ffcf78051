"""Every test runs in its own temporary working directory (the collector describes the cwd)."""

import pytest


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

"""Every test runs in its own temporary working directory (trials write ``daskperiment_cache/``)."""

import pytest


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

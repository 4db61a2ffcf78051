"""Shared fixtures: every test runs in its own temporary working directory."""

from __future__ import annotations

import logging

import pytest


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path, monkeypatch):
    """Default backends write ``daskperiment_cache/`` under the cwd: keep it in tmp."""
    monkeypatch.chdir(tmp_path)
    logging.getLogger("daskperiment").setLevel(logging.INFO)
    yield


@pytest.fixture
def quickstart():
    """The documented quickstart experiment: (ex, a, b, prepare_data, calculate_score)."""
    import daskperiment

    ex = daskperiment.Experiment(id="quickstart_pj")
    a = ex.parameter("a")
    b = ex.parameter("b")

    @ex
    def prepare_data(a, b):
        return a + b

    @ex.result
    def calculate_score(s):
        return 10 / s

    return ex, a, b, prepare_data, calculate_score

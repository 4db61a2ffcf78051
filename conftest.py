"""Session-wide test settings for the whole repository (``tests/`` and every ``plugins/*/tests``)."""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile

import pytest

from daskperiment.collector_cache import ENV_CACHE_DIR
from daskperiment.payloads import KEY_ENV

_session_cache: str | None = None


def pytest_configure(config: pytest.Config) -> None:
    """Keep the environment cache out of the user's home and fresh for each session: the first
    collection in the session is a real one (the scripts tests start inherit the variable)."""
    global _session_cache
    if ENV_CACHE_DIR not in os.environ:
        _session_cache = tempfile.mkdtemp(prefix="daskperiment-test-cache-")
        os.environ[ENV_CACHE_DIR] = _session_cache
    # a pickle signing key for the session: tests never create one in the user's config directory
    # (scripts and Dask workers the tests start inherit it)
    os.environ.setdefault(KEY_ENV, secrets.token_hex(32))


def pytest_unconfigure(config: pytest.Config) -> None:
    if _session_cache is not None:
        os.environ.pop(ENV_CACHE_DIR, None)
        shutil.rmtree(_session_cache, ignore_errors=True)

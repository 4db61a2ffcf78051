"""Databases for the SQL backend tests: real ones, never mocks.

``postgresql_url`` / ``mariadb_url`` (a fresh database per test on a private server on
127.0.0.1) come from the ``pytest-daskperiment`` plugin; ``sqlite_url`` is a file per test.
``database_url`` runs a test on each dialect.
"""

from __future__ import annotations

import pytest
from daskperiment_sql.connection import _engines


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'experiments.db'}"


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def database_url(request: pytest.FixtureRequest) -> str:
    """The URL of an empty database of each dialect in turn."""
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture(autouse=True)
def _dispose_engines():
    """Close the pooled connections tests leave behind (their databases are dropped after them)."""
    yield
    for engine in list(_engines.values()):
        engine.dispose()

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


# TEMPORARY (until the servers branch is merged and rebased on): the PostgreSQL fixture by hand
@pytest.fixture
def postgresql_url():
    import os
    import uuid

    import psycopg

    server = os.environ["DEV_PG"]
    name = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield f"postgresql+psycopg://{server.split('://')[1]}/{name}"
    for engine in list(_engines.values()):
        engine.dispose()
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


@pytest.fixture
def mariadb_url():
    import os
    import uuid

    import pymysql

    port = int(os.environ["DEV_MDB_PORT"])
    name = f"test_{uuid.uuid4().hex[:12]}"
    conn = pymysql.connect(host="127.0.0.1", port=port, user="root", autocommit=True)
    conn.cursor().execute(f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
    yield f"mysql+pymysql://root@127.0.0.1:{port}/{name}"
    for engine in list(_engines.values()):
        engine.dispose()
    conn.cursor().execute(f"DROP DATABASE {name}")
    conn.close()

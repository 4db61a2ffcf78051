"""Databases for the SQL backend tests: a SQLite file per test, a fresh PostgreSQL database per test."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'experiments.db'}"


@pytest.fixture
def postgresql_database() -> Iterator[str]:
    import uuid

    import psycopg

    server = os.environ["DEV_PG"]
    name = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield f"{server}/{name}"
    from daskperiment_sql.connection import _engines

    for (pid, url), engine in list(_engines.items()):
        if url.endswith(f"/{name}"):
            engine.dispose()
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE {name} WITH (FORCE)")

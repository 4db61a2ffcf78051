"""The backend conformance suite on every dialect (real databases, never mocks)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from daskperiment.testing.backend import BackendStateMachineTests, BackendTests, ExperimentTests
from daskperiment_sql import SQLBackend


class TestSQLite(BackendTests, ExperimentTests, BackendStateMachineTests):
    @pytest.fixture
    def make_backend(self, sqlite_url: str) -> Callable[[str], SQLBackend]:
        return lambda experiment_id: SQLBackend(experiment_id, sqlite_url)


class TestPostgreSQL(BackendTests, ExperimentTests, BackendStateMachineTests):
    @pytest.fixture
    def make_backend(self, postgresql_url: str) -> Callable[[str], SQLBackend]:
        return lambda experiment_id: SQLBackend(experiment_id, postgresql_url)


class TestMariaDB(BackendTests, ExperimentTests, BackendStateMachineTests):
    @pytest.fixture
    def make_backend(self, mariadb_url: str) -> Callable[[str], SQLBackend]:
        return lambda experiment_id: SQLBackend(experiment_id, mariadb_url)

"""The backend conformance suite on every dialect (real databases, never mocks)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from daskperiment.testing.backend import BackendStateMachineTests, BackendTests, Capabilities, ExperimentTests
from daskperiment_sql import SQLBackend

#: Backend.beat needs a heartbeat column in the versioned schema: not there yet (issue 15, item 17).
CAPABILITIES = Capabilities(heartbeats=False)


class TestSQLite(BackendTests, ExperimentTests, BackendStateMachineTests):
    capabilities = CAPABILITIES

    @pytest.fixture
    def make_backend(self, sqlite_url: str) -> Callable[[str], SQLBackend]:
        return lambda experiment_id: SQLBackend(experiment_id, sqlite_url)


class TestPostgreSQL(BackendTests, ExperimentTests, BackendStateMachineTests):
    capabilities = CAPABILITIES

    @pytest.fixture
    def make_backend(self, postgresql_url: str) -> Callable[[str], SQLBackend]:
        return lambda experiment_id: SQLBackend(experiment_id, postgresql_url)


class TestMariaDB(BackendTests, ExperimentTests, BackendStateMachineTests):
    capabilities = CAPABILITIES

    @pytest.fixture
    def make_backend(self, mariadb_url: str) -> Callable[[str], SQLBackend]:
        return lambda experiment_id: SQLBackend(experiment_id, mariadb_url)

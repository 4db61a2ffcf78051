"""The local backend passes the backend conformance suite."""

import pytest

from daskperiment.testing.backend import (BackendStateMachineTests, BackendTests, ExperimentTests,
                                          SafeLoadingTests)
from daskperiment_local import LocalBackend


class TestLocalBackend(BackendTests, ExperimentTests, SafeLoadingTests, BackendStateMachineTests):
    @pytest.fixture
    def make_backend(self, tmp_path):
        return lambda experiment_id: LocalBackend(experiment_id, tmp_path / experiment_id)

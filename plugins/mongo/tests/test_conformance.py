"""The MongoDB backend passes the backend conformance suite against a real server."""

import pytest
from daskperiment.testing.backend import (BackendStateMachineTests, BackendTests, ExperimentTests,
                                          SafeLoadingTests)


class TestMongoBackend(BackendTests, ExperimentTests, SafeLoadingTests, BackendStateMachineTests):
    @pytest.fixture
    def make_backend(self, make_mongo_backend):
        return make_mongo_backend

"""The Redis backend passes the backend conformance suite against a real redis-server."""

import pytest
from daskperiment.testing.backend import BackendStateMachineTests, BackendTests, ExperimentTests
from daskperiment_redis import RedisBackend


class TestRedisBackend(BackendTests, ExperimentTests, BackendStateMachineTests):
    @pytest.fixture
    def make_backend(self, redis_uri):  # a database flushed for each test
        return lambda experiment_id: RedisBackend(experiment_id, redis_uri)

"""The Redis backend passes the backend conformance suite against a real redis-server."""

import pytest
from daskperiment.testing.backend import (BackendStateMachineTests, BackendTests, ExperimentTests,
                                          SafeLoadingTests)
from daskperiment_redis import RedisBackend


class TestRedisBackend(BackendTests, ExperimentTests, SafeLoadingTests, BackendStateMachineTests):
    @pytest.fixture
    def make_backend(self, redis_uri):  # a database flushed for each test
        def make(experiment_id: str) -> RedisBackend:
            backend = RedisBackend(experiment_id, redis_uri)
            backend.value_chunk_bytes = 1 << 20  # the suite's large values are chunked (default 16 MiB)
            return backend

        return make

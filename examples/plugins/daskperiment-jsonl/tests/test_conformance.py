"""The JSON-lines backend passes daskperiment's backend conformance suite."""

import pytest
from daskperiment import Experiment
from daskperiment.testing.backend import BackendStateMachineTests, BackendTests, ExperimentTests

from daskperiment_jsonl import JsonLinesBackend


class TestJsonLinesBackend(BackendTests, ExperimentTests, BackendStateMachineTests):
    @pytest.fixture
    def make_backend(self, tmp_path):
        return lambda experiment_id: JsonLinesBackend(experiment_id, tmp_path)


def test_the_uri_scheme_is_registered(tmp_path):
    ex = Experiment("demo", backend=f"jsonl://{tmp_path}")
    assert isinstance(ex.backend, JsonLinesBackend)
    assert ex.backend.path == tmp_path / "demo"

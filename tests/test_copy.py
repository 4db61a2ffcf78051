"""``daskperiment copy``: an experiment copied between every pair of kinds of backend, on real servers.

The source is a real experiment (successful and failed trials, a result that is not plain
data, per-epoch metrics, a persisted step, code and environment documents); each copy is
checked through the public API, repeated (nothing duplicated) and resumed after a
simulated interruption.
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable
from typing import Any

import daskperiment
import numpy as np
import pytest
from daskperiment.cli import main
from daskperiment.records import START_FIELDS
from daskperiment.transfer import CopyConflictError, copy_experiment

KINDS = ("local", "sqlite", "postgresql", "redis", "mongo")
EXPERIMENT = "copied_pj"


@pytest.fixture
def backend_of(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> Callable[[str], Any]:
    """kind → the ``backend=`` argument of a fresh, empty store of that kind (servers started on demand)."""
    made: dict[str, Any] = {}

    def make(kind: str) -> Any:
        if kind not in made:
            if kind == "local":
                made[kind] = tmp_path / f"local{len(made)}"
            elif kind == "sqlite":
                made[kind] = f"sqlite:///{tmp_path / 'copy.db'}"
            elif kind == "postgresql":
                made[kind] = request.getfixturevalue("postgresql_url")
            elif kind == "redis":
                made[kind] = request.getfixturevalue("redis_uri")
            else:
                made[kind] = request.getfixturevalue("mongo_uri")
        return made[kind]

    return make


class NotPlain:
    """A result that is not plain data: stored as a pickle plus its repr."""

    def __init__(self, value: int) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, NotPlain) and other.value == self.value


def run_source(backend: Any) -> daskperiment.Experiment:
    ex = daskperiment.Experiment(EXPERIMENT, backend=backend)
    a, b = ex.parameter("a"), ex.parameter("b")

    @ex.persist
    def prepare(a, b):
        return {"sum": a + b}

    @ex.result
    def score(data):
        for epoch in range(50):
            ex.save_metric("loss", epoch=epoch, value=1 / (epoch + 1) / data["sum"])
        ex.save_metric("lr", epoch=0.5, value=float("nan"))
        return 10 / data["sum"]

    result = score(prepare(a, b))
    for a_value, b_value in ((1, 2), (2, 3), (1, -1), (4, 4)):
        ex.set_parameters(a=a_value, b=b_value)
        try:
            result.compute(seed=1)
        except ZeroDivisionError:
            pass

    @ex.result
    def odd(x):
        return NotPlain(x)

    ex.set_parameters(a=7)
    odd(a).compute(seed=2)
    return ex


def assert_same(source: daskperiment.Experiment, copy: daskperiment.Experiment) -> None:
    """Everything a user reads back is the same."""
    import pandas.testing

    pandas.testing.assert_frame_equal(source.get_history(verbose=True), copy.get_history(verbose=True))
    ids = list(source.get_history().index)
    for key in ("loss", "lr"):
        pandas.testing.assert_frame_equal(source.load_metric(key, trial_id=[1, 2, 4]),
                                          copy.load_metric(key, trial_id=[1, 2, 4]))
    for trial_id in (1, 2, 4):
        assert copy.get_persisted("prepare", trial_id) == source.get_persisted("prepare", trial_id)
    for trial_id in ids:
        assert copy.get_code(trial_id=trial_id) == source.get_code(trial_id=trial_id)
        assert copy.get_environment(trial_id=trial_id) == source.get_environment(trial_id=trial_id)
    assert copy.backend.load_trials([5])[0]["result_pickle"] is not None
    assert copy.get_history().loc[3, "Success"] == False


PAIRS = [("local", "postgresql"), ("local", "sqlite"), ("postgresql", "local"), ("redis", "local"),
         ("local", "redis"), ("mongo", "sqlite"), ("sqlite", "mongo"), ("postgresql", "redis")]


@pytest.mark.parametrize(("source_kind", "target_kind"), PAIRS, ids=[f"{s}-to-{t}" for s, t in PAIRS])
def test_copy_between_backends(backend_of, source_kind: str, target_kind: str) -> None:
    """Ids, history, metrics, persisted results, code and environments survive; a second copy adds nothing."""
    source = run_source(backend_of(source_kind))
    report = copy_experiment(EXPERIMENT, backend_of(source_kind), backend_of(target_kind))
    assert report.trials_copied == 5 and report.verified
    copy = daskperiment.Experiment(EXPERIMENT, backend=backend_of(target_kind))
    assert_same(source, copy)
    again = copy_experiment(EXPERIMENT, backend_of(source_kind), backend_of(target_kind))
    assert (again.trials_copied, again.trials_present, again.metric_batches_copied, again.persisted_copied,
            again.documents_copied) == (0, 5, 0, 0, 0)
    assert_same(source, copy)
    assert copy.backend.last_trial_id() == 5


@pytest.mark.parametrize(("source_kind", "target_kind"), [("sqlite", "local"), ("local", "sqlite"),
                                                          ("sqlite", "redis")])
def test_interrupted_copy_resumes_without_duplicates(backend_of, source_kind: str, target_kind: str) -> None:
    """A copy stopped after two trials, an unfinished third and half a metric series completes on re-run."""
    source = run_source(backend_of(source_kind))
    target = daskperiment.Experiment(EXPERIMENT, backend=backend_of(target_kind)).backend
    records = source.backend.load_trials()
    for record in records[:2]:
        target.import_trial(record)
    target.import_trial({f: records[2].get(f) for f in ("trial_id", *START_FIELDS)})  # its process died
    loss = source.backend.load_metrics("loss", [2])[2]
    target.save_metrics(2, "loss", loss.epochs[:20], loss.values[:20])
    report = copy_experiment(EXPERIMENT, source.backend, target)
    assert report.trials_present == 2 and report.trials_copied == 3
    assert_same(source, daskperiment.Experiment(EXPERIMENT, backend=backend_of(target_kind)))
    assert len(target.load_metrics("loss", [2])[2].values) == 50


def test_copy_refuses_a_different_experiment_under_the_same_name(backend_of) -> None:
    """A target holding other trials under the name is a conflict, never overwritten."""
    run_source(backend_of("local"))
    other = daskperiment.Experiment(EXPERIMENT, backend=backend_of("sqlite"))
    x = other.parameter("x")

    @other.result
    def f(x):
        return x

    other.set_parameters(x=1)
    f(x).compute(seed=3)
    with pytest.raises(CopyConflictError, match="different trial"):
        copy_experiment(EXPERIMENT, backend_of("local"), backend_of("sqlite"))
    assert other.get_history()["x"].tolist() == [1]


def test_copy_command(backend_of, capsys) -> None:
    """``daskperiment copy <id> --from A --to B`` prints what it did; errors exit 2 with a message."""
    run_source(backend_of("local"))
    target = backend_of("sqlite")
    assert main(["copy", EXPERIMENT, "--from", str(backend_of("local")), "--to", target]) == 0
    assert "5 trial(s) copied, 0 already there" in capsys.readouterr().out
    assert main(["copy", EXPERIMENT, "--from", str(backend_of("local")), "--to", target]) == 0
    assert "0 trial(s) copied, 5 already there" in capsys.readouterr().out
    assert main(["copy", EXPERIMENT, "--from", "nosuch://x", "--to", target]) == 2
    assert "Unknown backend URI" in capsys.readouterr().err


def test_metric_series_compare_dtype_and_nan() -> None:
    """NaN values compare equal to themselves; int and float epochs do not."""
    from daskperiment.records import MetricSeries
    from daskperiment.transfer import _same_series

    ints = MetricSeries(np.arange(2), np.array([np.nan, 1.0]))
    assert _same_series(ints, MetricSeries(np.arange(2), np.array([np.nan, 1.0])))
    assert not _same_series(ints, MetricSeries(np.arange(2.0), np.array([np.nan, 1.0])))

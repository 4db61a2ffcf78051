"""Catalogue of bad input (issue 15, items 1, 5, 8–12): input → the error it gets.

Every row is one mistake a user can make, the daskperiment error class it raises and
the start of its message (the original 0.5.0's wording where it had one, then what to
do). Every class is a ``daskperiment.DaskperimentError``, hence a ``ValueError``; none
of these mistakes records a trial or loses one already stored.

The experiment every row runs against (:func:`recorded`) has two trials: trial 1
saved points of metric ``loss``, trial 2 saved none; parameter ``a`` has no default.
"""

from __future__ import annotations

import types
from typing import Any, Callable, NamedTuple

import numpy as np
import pytest

import daskperiment
from daskperiment import cli
from daskperiment.errors import (DaskperimentError, DuplicateStepError, InvalidArgumentError, MetricNotFoundError,
                                 MetricNotInTrialError, ParameterUndeclaredError, ParameterUndefinedError,
                                 ScriptArgumentError, TrialIDNotFoundError)
from daskperiment.script import parse_arguments


class Case(NamedTuple):
    input: str  #: what the user wrote (the test id)
    call: Callable[[Any], Any]
    error: type[Exception]
    message: str  #: regular expression matched at the start of the message


LAST = r"Trial ids of experiment 'catalogue' are ints from 1 to the last trial id, 2\."


def _step_saving(key: Any = "loss", value: Any = 1.0) -> Callable[[Any], Any]:
    """A trial whose step calls ``ex.save_metric(key, 0, value)``."""
    def run(r: Any) -> Any:
        @r.ex.result
        def step():
            r.ex.save_metric(key, 0, value)
            return 1

        return step().compute()
    return run


def _step_saving_arrays(epochs: Any, values: Any) -> Callable[[Any], Any]:
    def run(r: Any) -> Any:
        @r.ex.result
        def step():
            r.ex.save_metrics("loss", epochs, values)
            return 1

        return step().compute()
    return run


def _two_steps_named_prep(r: Any) -> Any:
    first = r.prep(r.a, r.b)

    @r.ex.persist
    def prep(a, b):  # a different function under the same name
        return a * b

    return r.score(first + prep(r.a, r.b)).compute()


CASES = [
    # ---- trial ids (item 1): not there, or not an int -------------------------------------------------
    Case("get_parameters(trial_id=0)", lambda r: r.ex.get_parameters(trial_id=0),
         TrialIDNotFoundError, rf"Unable to find trial id: 0\. {LAST}"),
    Case("get_parameters(trial_id=-1)", lambda r: r.ex.get_parameters(trial_id=-1),
         TrialIDNotFoundError, rf"Unable to find trial id: -1\. {LAST}"),
    Case("get_parameters(trial_id=3) beyond the last", lambda r: r.ex.get_parameters(trial_id=3),
         TrialIDNotFoundError, rf"Unable to find trial id: 3\. {LAST}"),
    Case("get_parameters(trial_id='1')", lambda r: r.ex.get_parameters(trial_id="1"),
         TrialIDNotFoundError, rf"Trial id must be integer, given: '1'<class 'str'>\. {LAST}"),
    Case("get_result(1.0)", lambda r: r.ex.get_result(1.0),
         TrialIDNotFoundError, rf"Trial id must be integer, given: 1\.0<class 'float'>\. {LAST}"),
    Case("get_result(None)", lambda r: r.ex.get_result(None),
         TrialIDNotFoundError, r"Trial id must be integer, given: None<class 'NoneType'>"),
    Case("get_result(True)", lambda r: r.ex.get_result(True),
         TrialIDNotFoundError, r"Trial id must be integer, given: True<class 'bool'>"),
    Case("get_persisted('prep', trial_id=None)", lambda r: r.ex.get_persisted("prep", trial_id=None),
         TrialIDNotFoundError, r"Trial id must be integer, given: None"),
    Case("get_persisted('prep', trial_id=5)", lambda r: r.ex.get_persisted("prep", trial_id=5),
         TrialIDNotFoundError, rf"Unable to find trial id: 5\. {LAST}"),
    Case("get_code(trial_id='1')", lambda r: r.ex.get_code(trial_id="1"),
         TrialIDNotFoundError, r"Trial id must be integer, given: '1'"),
    Case("get_environment(trial_id=0)", lambda r: r.ex.get_environment(trial_id=0),
         TrialIDNotFoundError, r"Unable to find trial id: 0\."),
    Case("get_python_packages(trial_id=[1])", lambda r: r.ex.get_python_packages(trial_id=[1]),
         TrialIDNotFoundError, r"Trial id must be integer, given: \[1\]<class 'list'>"),
    Case("load_metric('loss', trial_id=0)", lambda r: r.ex.load_metric("loss", trial_id=0),
         TrialIDNotFoundError, rf"Unable to find trial id: 0\. {LAST}"),
    Case("load_metric('loss', trial_id=[1, 9])", lambda r: r.ex.load_metric("loss", trial_id=[1, 9]),
         TrialIDNotFoundError, r"Unable to find trial id: 9\."),
    Case("load_metric('loss', trial_id=[])", lambda r: r.ex.load_metric("loss", trial_id=[]),
         TrialIDNotFoundError, r"Trial id must be integer, given: \[\]<class 'list'>"),
    Case("load_metric('loss', trial_id=None)", lambda r: r.ex.load_metric("loss", trial_id=None),
         TrialIDNotFoundError, r"Trial id must be integer, given: None"),
    Case("load_metric('loss', trial_id='1')", lambda r: r.ex.load_metric("loss", trial_id="1"),
         TrialIDNotFoundError, r"Trial id must be integer, given: '1'"),
    # ---- metrics: a trial without points, a metric never saved, bad keys and values (items 1, 5, 10) ------
    Case("load_metric('loss', trial_id=2): trial 2 saved no 'loss'", lambda r: r.ex.load_metric("loss", 2),
         MetricNotInTrialError, r"Unable to find trial id: 2 for metric 'loss': trial\(s\) 2 of experiment"),
    Case("load_metric('nope', trial_id=1): never saved", lambda r: r.ex.load_metric("nope", 1),
         MetricNotFoundError,
         r"Unable to find saved metric with specified key: 'nope'\. Metrics saved in experiment 'catalogue': 'loss'"),
    Case("load_metric(1, trial_id=1)", lambda r: r.ex.load_metric(1, 1),
         InvalidArgumentError, r"Metric name must be str, given: 1<class 'int'>"),
    Case("save_metric(1, 0, 1.0) in a step", _step_saving(key=1),
         InvalidArgumentError, r"Metric name must be str, given: 1<class 'int'>"),
    Case("save_metric(['loss'], 0, 1.0) in a step", _step_saving(key=["loss"]),
         InvalidArgumentError, r"Metric name must be str, given: \['loss'\]<class 'list'>"),
    Case("save_metric('', 0, 1.0) in a step", _step_saving(key=""),
         InvalidArgumentError, r"Metric name must be a non-empty str, given: ''"),
    Case("save_metric('loss', 0, np.arange(3)) in a step", _step_saving(value=np.arange(3)),
         InvalidArgumentError,
         r"Metric 'loss': value must be a real scalar \(int, float, bool or a numpy scalar\), given: array\(\[0, 1, "
         r"2\]\)<class 'numpy.ndarray'>\. Save arrays of points with ex.save_metrics\(key, epochs, values\)"),
    Case("save_metric('loss', 0, '0.5') in a step", _step_saving(value="0.5"),
         InvalidArgumentError, r"Metric 'loss': value must be a real scalar"),
    Case("save_metric('loss', 0, None) in a step", _step_saving(value=None),
         InvalidArgumentError, r"Metric 'loss': value must be a real scalar"),
    Case("save_metrics('loss', [0, 1], [1.0]) in a step", _step_saving_arrays([0, 1], [1.0]),
         InvalidArgumentError, r"Metric 'loss': epochs and values must be 1-d and equally long"),
    Case("save_metrics('loss', ['a'], [1.0]) in a step", _step_saving_arrays(["a"], [1.0]),
         InvalidArgumentError, r"Metric 'loss': epochs must be numbers"),
    Case("save_metric('loss', 0, 1.0) outside a trial", lambda r: r.ex.save_metric("loss", 0, 1.0),
         TrialIDNotFoundError, r"save_metric only exists during a trial execution"),
    # ---- experiment ids and seeds (items 5, 11) ---------------------------------------------------------
    Case("Experiment(1)", lambda r: daskperiment.Experiment(1),
         InvalidArgumentError, r"Experiment ID must be str, given: 1<class 'int'>"),
    Case("Experiment('aa:aa')", lambda r: daskperiment.Experiment("aa:aa"),
         InvalidArgumentError, r"Experiment ID must be valid as python identifier: 'aa:aa'"),
    Case("Experiment('aa.aa')", lambda r: daskperiment.Experiment("aa.aa"),
         InvalidArgumentError, r"Experiment ID must be valid as python identifier: 'aa.aa'"),
    Case("Experiment('a' * 300)", lambda r: daskperiment.Experiment("a" * 300),
         InvalidArgumentError, r"Experiment ID must be at most 128 bytes long, given one of 300 bytes"),
    Case("Experiment('x', seed=-1)", lambda r: daskperiment.Experiment("x", seed=-1),
         InvalidArgumentError, r"seed must be a non-negative int up to 2\*\*32 - 1 \(4294967295\), given: -1"),
    Case("Experiment('x', seed=2**32)", lambda r: daskperiment.Experiment("x", seed=2**32),
         InvalidArgumentError, r"seed must be a non-negative int up to 2\*\*32 - 1"),
    Case("Experiment('x', seed=1.5)", lambda r: daskperiment.Experiment("x", seed=1.5),
         InvalidArgumentError, r"seed must be a non-negative int .*given: 1\.5<class 'float'>"),
    Case("compute(seed=2**40)", lambda r: r.score(r.prep(r.a, r.b)).with_parameters(a=1).compute(seed=2**40),
         InvalidArgumentError, r"seed must be a non-negative int up to 2\*\*32 - 1"),
    # ---- parameters (items 4, 5) ------------------------------------------------------------------------
    Case("set_parameters(c=1), c never declared", lambda r: r.ex.set_parameters(c=1),
         ParameterUndeclaredError,
         r"Parameter is not declared\. Use Experiment\.parameter to declare: c \(experiment 'catalogue' declares: a, b"),
    Case("compute() with a parameter never set", lambda r: (r.ex.parameter("z"), r.score(r.ex.parameter("z")).compute()),
         ParameterUndefinedError, r"Parameters are not defined\. Use Experiment\.set_parameters to initialize: z\."),
    Case("set_parameters(a=object())", lambda r: r.ex.set_parameters(a=object()),
         InvalidArgumentError, r"Parameter 'a' has a value of type object, which cannot be stored in the history"),
    Case("set_parameters(a=b'raw')", lambda r: r.ex.set_parameters(a=b"raw"),
         InvalidArgumentError, r"Parameter 'a' has a value of type bytes"),
    Case("with_parameters(a=np.zeros(3))", lambda r: r.score(r.prep(r.a, r.b)).with_parameters(a=np.zeros(3)).compute(),
         InvalidArgumentError, r"Parameter 'a' has a value of type ndarray"),
    Case("parameter('1x')", lambda r: r.ex.parameter("1x"),
         InvalidArgumentError, r"Parameter name must be valid as python identifier, given: '1x'"),
    # ---- steps (item 9) -----------------------------------------------------------------------------------
    Case("two different functions named prep in one graph", _two_steps_named_prep,
         DuplicateStepError, r"Two different steps named 'prep' are in one trial's graph: .*test_bad_input\.py"),
    # ---- environment (item 6) -------------------------------------------------------------------------------
    Case("get_environment(category='nope')", lambda r: r.ex.get_environment(category="nope"),
         InvalidArgumentError, r"Category must be either .*device.*given: 'nope'"),
    # ---- script arguments (items 8, 11) ---------------------------------------------------------------------
    Case("python script.py a=", lambda r: parse_arguments(["a="]),
         ScriptArgumentError, r"empty value in 'a=': write a='' for an empty string"),
    Case("python script.py --seed 4294967296", lambda r: parse_arguments(["--seed", str(2**32)]),
         ScriptArgumentError, r"--seed must be non-negative and at most 4294967295"),
    Case("python script.py bogus", lambda r: parse_arguments(["bogus"]),
         ScriptArgumentError, r"malformed argument 'bogus': expected name=value"),
]


@pytest.fixture
def recorded() -> types.SimpleNamespace:
    ex = daskperiment.Experiment("catalogue")
    a, b = ex.parameter("a"), ex.parameter("b", default=2)

    @ex.persist
    def prep(a, b):
        return a + b

    @ex.result
    def score(s):
        if s < 10:
            ex.save_metric("loss", 0, 1 / s)
        return s

    score(prep(a, b)).with_parameters(a=1).compute()  # trial 1: saves 'loss'
    score(prep(a, b)).with_parameters(a=20).compute()  # trial 2: saves no 'loss'
    return types.SimpleNamespace(ex=ex, a=a, b=b, prep=prep, score=score)


@pytest.mark.parametrize("case", CASES, ids=[case.input for case in CASES])
def test_bad_input_fails_early_and_clearly(case: Case, recorded: types.SimpleNamespace) -> None:
    history = recorded.ex.get_history()
    with pytest.raises(case.error, match=f"^{case.message}") as info:
        case.call(recorded)
    assert isinstance(info.value, DaskperimentError) and isinstance(info.value, ValueError)
    after = recorded.ex.get_history()
    assert list(after.index[:2]) == [1, 2] and after.loc[[1, 2], "Result"].tolist() == history["Result"].tolist()
    if "in a step" in case.input:  # the step's error fails (and records) that trial, nothing else
        assert after["Success"].tolist() == [True, True, False]
    else:  # refused before any trial id was used
        assert len(after) == 2


def test_old_error_names_still_catch():
    """``TrialNotFoundError`` (the earlier name) is the same class; a trial without the metric is also a
    ``MetricNotFoundError``, as it was before."""
    assert daskperiment.TrialNotFoundError is TrialIDNotFoundError
    assert issubclass(MetricNotInTrialError, TrialIDNotFoundError) and issubclass(MetricNotInTrialError,
                                                                                  MetricNotFoundError)
    for cls in (InvalidArgumentError, DuplicateStepError, daskperiment.ExperimentNotFoundError):
        assert issubclass(cls, DaskperimentError) and issubclass(cls, ValueError)


@pytest.mark.parametrize("argv, message", [
    (["history", "nosuch"], r"No experiment 'nosuch' in daskperiment_cache/nosuch \(no trials recorded there\); "
                            r"experiments found there: catalogue\. Check --backend DIR"),
    (["code", "catalogue", "--backend", "elsewhere"],
     r"No experiment 'catalogue' in elsewhere \(no trials recorded there\); experiments found there: none\. "
     r"Check the id\."),
    (["metric", "nosuch", "loss", "--trial-id", "1"], r"No experiment 'nosuch'"),
    (["history", "bad-id"], r"Experiment ID must be valid as python identifier: 'bad-id'"),
])
def test_command_line_refuses_unknown_experiments_and_creates_nothing(argv, message, recorded, capsys, tmp_path):
    """Item 12: a reading command never creates a store; it names what exists instead."""
    import re

    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("daskperiment: error: ") and re.search(message, err), err
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before

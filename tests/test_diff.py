"""ex.diff and `daskperiment diff`: what differs between two trials."""

from __future__ import annotations

import subprocess
import sys

import daskperiment
from daskperiment.comparison import MISSING, environment_changes, package_changes


def _experiment(tmp_path, name="diffs"):
    ex = daskperiment.Experiment(name, backend=tmp_path / name)
    a = ex.parameter("a")
    return ex, a


def test_parameters_seed_result_and_code_differences(tmp_path):
    ex, a = _experiment(tmp_path)

    @ex.result
    def score(a):
        for epoch in range(3):
            ex.save_metric("loss", epoch=epoch, value=a - epoch)
        return a * 2

    s = score(a)
    s.with_parameters(a=1).compute(seed=1)

    @ex.result
    def score(a):  # noqa: F811 - a changed step, as in a notebook
        for epoch in range(3):
            ex.save_metric("loss", epoch=epoch, value=a - epoch)
        return a * 3

    score(a).with_parameters(a=2).compute(seed=2)
    diff = ex.diff(1, 2)
    assert diff.parameters == {"a": (1, 2)}
    assert diff.seed == (1, 2)
    assert diff.result == (2, 6)
    assert diff.status is None
    assert "-    return a * 2" in diff.code["score"] and "+    return a * 3" in diff.code["score"]
    assert not diff.environment
    assert (diff.metrics["loss"][0].last, diff.metrics["loss"][1].last) == (-1.0, 0.0)
    assert not diff.identical
    text = str(diff)
    assert "trial 1 vs trial 2" in text and "a: 1 -> 2" in text and "+    return a * 3" in text
    assert ex.diff(1, 1).identical


def test_a_parameter_missing_on_one_side(tmp_path):
    ex, a = _experiment(tmp_path, "missing")

    @ex.result
    def first(a):
        return a

    first(a).with_parameters(a=1).compute(seed=1)
    b = ex.parameter("b", default=5)

    @ex.result
    def second(a, b):
        return a + b

    second(a, b).with_parameters(a=1).compute(seed=1)
    diff = ex.diff(1, 2)
    assert diff.parameters == {"b": (MISSING, 5)}
    assert "b: <missing> -> 5" in str(diff)


def test_a_failed_trial_differs_in_status(tmp_path):
    ex, a = _experiment(tmp_path, "status")

    @ex.result
    def inverse(a):
        return 1 / a

    inverse(a).with_parameters(a=1).compute(seed=1)
    try:
        inverse(a).with_parameters(a=0).compute(seed=1)
    except ZeroDivisionError:
        pass
    diff = ex.diff(1, 2)
    assert diff.status == ((True, None), (False, "ZeroDivisionError(division by zero)"))


def test_environment_changes_name_packages_and_facts():
    before = {"requirements": "numpy 1.26.0 (/site)\npandas 2.1.0 (/site)\nold 1.0 (/site)\n",
              "python": {"version": "3.11.7"}, "git": {"commit": "abc", "dirty": False}}
    after = {"requirements": "numpy 2.0.0 (/site)\npandas 2.1.0 (/site)\nnew 0.1 (/site)\n",
             "python": {"version": "3.12.1"}, "git": {"commit": "def", "dirty": True}, "extra": {"x": 1}}
    changes = environment_changes(before, after)
    assert changes.packages == package_changes(before["requirements"], after["requirements"])
    assert changes.packages.added == {"new": "0.1"} and changes.packages.removed == {"old": "1.0"}
    assert changes.packages.changed == {"numpy": ("1.26.0", "2.0.0")}
    assert changes.facts == {"python.version": ("3.11.7", "3.12.1"), "git.commit": ("abc", "def"),
                             "git.dirty": (False, True)}
    assert changes.sections == ["extra"]
    assert "  ~ numpy 1.26.0 -> 2.0.0" in changes.lines()


def test_cli_diff(tmp_path):
    ex, a = _experiment(tmp_path, "cli_diff")

    @ex.result
    def same(a):
        return a

    same(a).with_parameters(a=1).compute(seed=1)
    same(a).with_parameters(a=2).compute(seed=1)
    out = subprocess.run([sys.executable, "-m", "daskperiment.cli", "diff", "cli_diff", "1", "2", "--backend",
                          str(tmp_path / "cli_diff"), "--color", "always"], capture_output=True, text=True,
                         check=True).stdout
    assert "trial 1 vs trial 2" in out and "a: 1 -> 2" in out and "result: 1 -> 2" in out

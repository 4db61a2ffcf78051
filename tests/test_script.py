"""Script mode: ``python simple_experiment.py a=1 b=2 --seed 1`` (run through subprocess)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from daskperiment.errors import ScriptArgumentError
from daskperiment.script import parse_arguments

SCRIPT = textwrap.dedent("""
    import random
    import daskperiment

    ex = daskperiment.Experiment(id='simple_experiment_pj')

    a = ex.parameter('a')
    b = ex.parameter('b')

    @ex
    def prepare_data(a, b):
        return a + b

    @ex.result
    def calculate_score(s):
        return s + 1

    d = prepare_data(a, b)
    calculate_score(d)
""")


def run(tmp_path, *args, script=SCRIPT, name="simple_experiment.py"):
    path = tmp_path / name
    path.write_text(script)
    return subprocess.run([sys.executable, str(path), *args], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)


def history(tmp_path, experiment_id="simple_experiment_pj"):
    import daskperiment

    return daskperiment.Experiment(experiment_id, backend=tmp_path / "daskperiment_cache" / experiment_id).get_history(verbose=True)


def test_script_runs_one_trial_per_invocation(tmp_path):
    first = run(tmp_path, "a=1", "b=2")
    assert first.returncode == 0, first.stderr
    assert "Initialized new experiment: Experiment(id: simple_experiment_pj, trial_id: 0" in first.stderr
    assert "Finished Experiment (trial id=1)" in first.stderr
    second = run(tmp_path, "a=3", "b=2", "--seed", "1")
    assert second.returncode == 0, second.stderr
    assert "Random seed is initialized with given seed: 1" in second.stderr
    assert "Finished Experiment (trial id=2)" in second.stderr
    frame = history(tmp_path)
    assert frame[["a", "b", "Result"]].values.tolist() == [[1, 2, 4], [3, 2, 6]]
    assert frame["Result Type"].tolist() == ["<class 'int'>", "<class 'int'>"]
    assert frame.loc[2, "Seed"] == 1


def test_values_are_python_literals_else_strings():
    args = parse_arguments(["a=1", "b=2.5", "c=[1, 2]", "d=hello", "e=None", "f='x y'", "--seed=3"])
    assert (args.parameters, args.seed, args.sweep) == (
        {"a": 1, "b": 2.5, "c": [1, 2], "d": "hello", "e": None, "f": "x y"}, 3, False)
    assert parse_arguments(["--seed", "7"]).seed == 7


def test_sweep_arguments_list_choices_at_commas():
    args = parse_arguments(["lr=0.1,0.01", "opt=adam,sgd", "depth=3", "shape=[1,2]", "pair=(1,2),(3,4)", "--sweep",
                            "--scheduler", "tcp://127.0.0.1:8786"])
    assert args.sweep and args.scheduler == "tcp://127.0.0.1:8786"
    assert args.grid == {"lr": [0.1, 0.01], "opt": ["adam", "sgd"], "depth": [3], "shape": [[1, 2]],
                         "pair": [(1, 2), (3, 4)]}
    assert parse_arguments(["lr=0.1,0.01"]).parameters == {"lr": (0.1, 0.01)}  # no --sweep: one value


def test_script_runs_a_sweep_from_the_command_line(tmp_path):
    result = run(tmp_path, "a=1,2,3", "b=10,20", "--sweep", "--seed", "4", "--scheduler", "sync")
    assert result.returncode == 0, result.stderr
    assert "6 trials: 6 succeeded, 0 failed" in result.stderr
    frame = history(tmp_path)
    assert frame[["a", "b", "Result"]].values.tolist() == [[a, b, a + b + 1] for a in (1, 2, 3) for b in (10, 20)]
    assert frame["Sweep"].nunique() == 1


def test_script_help_documents_sweeps(tmp_path):
    result = run(tmp_path, "--help")
    assert result.returncode == 0 and "--sweep" in result.stdout and "--scheduler" in result.stdout


@pytest.mark.parametrize("argv, message", [
    (["a"], "malformed argument 'a': expected name=value"),
    (["=1"], "malformed argument"),
    (["a=1", "a=2"], "given twice"),
    (["--seed"], "--seed needs an integer"),
    (["--seed", "x"], "--seed needs an integer"),
    (["--seed", "-1"], "non-negative"),
    (["--scheduler"], "--scheduler needs a name or an address"),
    (["--seed", str(2**32)], "at most 4294967295"),
    (["a="], "empty value in 'a='"),
])
def test_malformed_arguments(argv, message):
    with pytest.raises(ScriptArgumentError, match=message):
        parse_arguments(argv)


@pytest.mark.parametrize("args, message", [
    (["a=1"], "Parameters are not defined. Use Experiment.set_parameters to initialize: b"),
    (["a=1", "b=2", "c=3"], "Parameter is not declared. Use Experiment.parameter to declare: c"),
    (["a=1", "b"], "malformed argument 'b'"),
])
def test_script_errors_exit_nonzero_with_one_line(tmp_path, args, message):
    result = run(tmp_path, *args)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("simple_experiment.py: error: ") and message in last
    assert "Traceback" not in result.stderr


def test_failing_trial_in_script_is_recorded_and_exits_nonzero(tmp_path):
    result = run(tmp_path, "a=1", "b=-1", script=SCRIPT.replace("return s + 1", "return 1 / s"))
    assert result.returncode != 0 and "ZeroDivisionError" in result.stderr
    assert history(tmp_path)["Success"].tolist() == [False]


def test_assigned_result_does_not_trigger(tmp_path):
    script = SCRIPT.replace("calculate_score(d)\n", "s = calculate_score(d)\n")
    result = run(tmp_path, script=script)
    assert result.returncode == 0 and "Started Experiment" not in result.stderr
    # given arguments, a script that runs no trial says so instead of ignoring them
    result = run(tmp_path, "a=1", "b=2", script=script)
    assert result.returncode == 2 and "Started Experiment" not in result.stderr
    assert "arguments a=1 b=2 were given but the script ended without running a trial" in result.stderr


def test_imported_module_does_not_trigger(tmp_path):
    (tmp_path / "simple_experiment.py").write_text(SCRIPT)
    result = subprocess.run([sys.executable, "-c", "import simple_experiment"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "Started Experiment" not in result.stderr


def test_never_triggers_under_pytest(tmp_path):
    (tmp_path / "test_inner.py").write_text(SCRIPT + "\n\ndef test_nothing():\n    assert True\n")
    for cmd in ([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_inner.py"],):
        result = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "Started Experiment" not in result.stdout + result.stderr
    assert not (tmp_path / "daskperiment_cache" / "simple_experiment_pj" / "code").exists()


def test_script_sweeps_on_an_existing_cluster_by_address(tmp_path):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False, protocol="tcp",
                                  host="127.0.0.1", dashboard_address=None,
                                  worker_dashboard_address=None) as cluster:
        before = cluster.scheduler.transition_counter
        result = run(tmp_path, "a=1,2", "b=5", "--sweep", "--scheduler", cluster.scheduler_address)
        assert result.returncode == 0, result.stderr
        transitions = cluster.scheduler.transition_counter - before
    assert "2 trials: 2 succeeded, 0 failed" in result.stderr
    assert history(tmp_path)["Result"].tolist() == [7, 8]
    assert transitions >= 4 * 3  # the trials' four tasks ran on that cluster (released, waiting, processing …)


MAIN_SCRIPT = textwrap.dedent("""
    import daskperiment

    ex = daskperiment.Experiment(id='main_experiment_pj')
    a = ex.parameter('a')
    b = ex.parameter('b', default=2)

    @ex
    def prepare_data(a, b):
        return a + b

    @ex.result
    def calculate_score(s):
        return s + 1


    def main():
        d = prepare_data(a, b)
        calculate_score(d)


    if __name__ == "__main__":
        main()
""")


def test_main_function_layout_runs_one_trial(tmp_path):
    """Item 8: ``def main(): …`` + ``if __name__ == "__main__": main()`` is script mode too."""
    result = run(tmp_path, "a=1", "--seed", "3", script=MAIN_SCRIPT, name="main_experiment.py")
    assert result.returncode == 0, result.stderr
    frame = history(tmp_path, "main_experiment_pj")
    assert frame[["a", "b", "Result", "Seed"]].values.tolist() == [[1, 2, 4, 3]]


def test_unknown_argument_in_main_layout_is_an_error(tmp_path):
    result = run(tmp_path, "a=1", "bogus=1", script=MAIN_SCRIPT, name="main_experiment.py")
    assert result.returncode != 0 and "Parameter is not declared. Use Experiment.parameter to declare: bogus" in result.stderr


def test_help_lists_declared_parameters_and_defaults(tmp_path):
    result = run(tmp_path, "--help", script=MAIN_SCRIPT, name="main_experiment.py")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: python main_experiment.py [name=value ...] [--seed N]")
    lines = result.stdout.splitlines()
    assert any(line.split() == ["a", "required"] for line in lines), result.stdout
    assert any(line.split() == ["b", "default:", "2"] for line in lines), result.stdout
    assert "Started Experiment" not in result.stderr
    assert not (tmp_path / "daskperiment_cache" / "main_experiment_pj" / "main_experiment_pj.sqlite3").exists()


def test_empty_value_is_an_error_not_an_empty_string(tmp_path):
    result = run(tmp_path, "a=", script=MAIN_SCRIPT, name="main_experiment.py")
    assert result.returncode != 0 and "empty value in 'a='" in result.stderr

"""The command line and the dashboard read a Redis experiment like a local one."""

from __future__ import annotations

import daskperiment
from daskperiment.cli import main
from daskperiment.dashboard import DashboardApp


def recorded(uri: str, experiment_id: str) -> daskperiment.Experiment:
    ex = daskperiment.Experiment(experiment_id, backend=uri)
    a = ex.parameter("a")

    @ex.result
    def score(a):
        ex.save_metric("acc", epoch=1, value=a / 10)
        return a * 2

    for value in (3, 4):
        ex.set_parameters(a=value)
        score(a).compute(seed=1)
    return ex


def test_cli_history_code_and_metric(redis_uri, capsys):
    experiment_id = "cli"
    recorded(redis_uri, experiment_id)
    assert main(["history", experiment_id, "--backend", redis_uri, "--csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("Trial ID,a,Result") and lines[1].startswith("1,3,6") and lines[2].startswith("2,4,8")
    assert main(["code", experiment_id, "--backend", redis_uri, "--trial-id", "1"]) == 0
    assert "def score(a):" in capsys.readouterr().out
    assert main(["metric", experiment_id, "acc", "--trial-id", "1", "2", "--backend", redis_uri, "--csv"]) == 0
    assert capsys.readouterr().out.splitlines()[1] == "1,0.3,0.4"


def test_cli_error_for_a_down_server_is_one_line(capsys):
    from pytest_daskperiment import free_port

    assert main(["history", "x", "--backend", f"redis://:pw@127.0.0.1:{free_port()}/0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("daskperiment: error: RedisBackend('redis://:***@127.0.0.1:") and err.count("\n") == 1


def test_dashboard_pages(redis_uri):
    experiment_id = "board"
    ex = recorded(redis_uri, experiment_id)
    app = DashboardApp([daskperiment.Experiment(experiment_id, backend=redis_uri)])
    status, index = app.render("/", {})
    assert status == 200 and f"RedisBackend(&#x27;{redis_uri}&#x27;)".encode() in index
    status, history = app.render(f"/experiment/{experiment_id}", {})
    assert status == 200 and b"acc" in history and b"<td>8</td>" in history
    status, trial = app.render(f"/experiment/{experiment_id}/trial/2", {})
    assert status == 200 and b"def score(a):" in trial
    status, metric = app.render(f"/experiment/{experiment_id}/metric/acc", {"trial": ["1", "2"]})
    assert status == 200 and b"0.4" in metric
    assert ex.trial_id == 2

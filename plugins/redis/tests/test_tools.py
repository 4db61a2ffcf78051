"""The command line and the dashboard read a Redis experiment like a local one."""

from __future__ import annotations

import json
import urllib.request

import daskperiment
from daskperiment.cli import main
from daskperiment.dashboard.cli import open_catalog
from daskperiment.dashboard.server import serve


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


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.read().decode()


def test_dashboard_pages(redis_uri):
    experiment_id = "board"
    ex = recorded(redis_uri, experiment_id)
    server = serve(open_catalog([experiment_id], redis_uri), port=0, blocking=False)
    try:
        index = _get(server.url)
        assert f'href="/experiment/{experiment_id}"' in index and "redis://" in index
        runs = json.loads(_get(server.url + f"api/experiment/{experiment_id}/runs?desc=0"))
        names = [c["name"] for c in runs["columns"]]
        rows = [dict(zip(names, row)) for row in runs["rows"]]
        assert [(r["Trial"], r["a"], r["Result"], r["acc.last"]) for r in rows] == [(1, 3, 6, 0.3), (2, 4, 8, 0.4)]
        assert "def score(a):" in _get(server.url + f"experiment/{experiment_id}/trial/2")
        metric = json.loads(_get(server.url + f"api/experiment/{experiment_id}/metric?name=acc&trial=1&trial=2"))
        assert [s["y"] for s in metric["series"]] == [[0.3], [0.4]]
    finally:
        server.shutdown()
    assert ex.trial_id == 2

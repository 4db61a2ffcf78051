"""ex.reproduce: re-run a recorded trial and say whether it came out the same, or why not."""

from __future__ import annotations

import pathlib
import random
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import daskperiment
from daskperiment.seeding import rng


def _random_experiment(tmp_path, name="repro"):
    ex = daskperiment.Experiment(name, backend=tmp_path / name)
    n = ex.parameter("n")

    @ex
    def draw(n):
        return [random.random() for _ in range(n)] + list(np.random.rand(n)) + list(rng().random(n))

    @ex.result
    def total(values):
        return float(sum(values))

    return ex, total(draw(n))


def test_seeded_random_steps_reproduce_identically(tmp_path, caplog):
    ex, result = _random_experiment(tmp_path)
    first = result.with_parameters(n=5).compute()
    report = ex.reproduce(1)
    assert report.identical and report.result == first
    assert report.trial_id == 2 and report.first_divergent_step is None
    assert not report.code and not report.environment
    assert "reproduced identically as trial 2" in str(report)
    history = ex.get_history()
    assert len(history) == 2 and history.loc[2, "Result"] == first
    assert ex.backend.load_trials([2])[0]["reproduces"] == 1


def test_a_changed_data_file_is_the_first_divergent_step(tmp_path):
    data = tmp_path / "data.txt"
    data.write_text("1 2 3")
    ex = daskperiment.Experiment("datafile", backend=tmp_path / "datafile")
    path = ex.parameter("path")

    @ex
    def load_data(path):
        return [int(x) for x in pathlib.Path(path).read_text().split()]

    @ex
    def scale(values):
        return [2 * v for v in values]

    @ex.result
    def total(values):
        return sum(values)

    s = total(scale(load_data(path)))
    s.with_parameters(path=str(data)).compute(seed=1)
    data.write_text("1 2 4")
    report = ex.reproduce(1)
    assert not report.identical and report.result == 14
    divergence = report.first_divergent_step
    assert divergence.step == "load_data" and divergence.input[0] == divergence.input[1]
    assert "step 'load_data' returned something else with the same inputs" in str(report)


def test_changed_code_is_reported_with_a_diff(tmp_path, caplog):
    ex = daskperiment.Experiment("codechange", backend=tmp_path / "codechange")
    a = ex.parameter("a")

    @ex.result
    def double(a):
        return 2 * a

    double(a).with_parameters(a=3).compute(seed=1)

    @ex.result
    def double(a):  # noqa: F811 - the step changed since trial 1
        return 2 * a + 1

    double(a)
    report = ex.reproduce(1)
    assert not report.identical and report.result == 7
    assert "+    return 2 * a + 1" in report.code["double"]
    assert any("Code of step 'double' changed since trial 1" in r.getMessage() for r in caplog.records)


def test_unseeded_generator_is_named_by_the_determinism_audit(tmp_path):
    ex = daskperiment.Experiment("audit", backend=tmp_path / "audit")
    n = ex.parameter("n")

    @ex
    def noisy(n):
        return list(np.random.default_rng().random(n))  # not covered by the seed

    @ex
    def stable(n):
        return list(range(n))

    @ex.result
    def combine(a, b):
        return len(a) + len(b)

    combine(noisy(n), stable(n)).with_parameters(n=3).compute(seed=1)
    report = ex.reproduce(1, runs=2)
    assert report.nondeterministic_steps == ["noisy"]
    assert not report.identical and len(report.trial_ids) == 2


def test_reproduce_needs_the_graph_built_in_this_process(tmp_path):
    import gc

    def first_session():
        ex, result = _random_experiment(tmp_path, "fresh")
        result.with_parameters(n=1).compute(seed=1)

    first_session()
    gc.collect()  # the first instance is gone (the same id and store in use would give it back)
    other = daskperiment.Experiment("fresh", backend=tmp_path / "fresh")
    other.parameter("n")
    with pytest.raises(daskperiment.DaskperimentError, match="result step 'total' has not built a graph"):
        other.reproduce(1)


SCRIPT = """
import pathlib
import random
import daskperiment
ex = daskperiment.Experiment("script_repro", backend=pathlib.Path({backend!r}))
n = ex.parameter("n", default=3)

@ex.result
def draw(n):
    return sum(random.random() for _ in range(n))

draw(n)
"""


def test_cli_reproduces_a_script_trial(tmp_path):
    script = tmp_path / "experiment.py"
    script.write_text(textwrap.dedent(SCRIPT.format(backend=str(tmp_path / "cache"))))
    subprocess.run([sys.executable, str(script), "n=4", "--seed", "7"], check=True, capture_output=True)
    out = subprocess.run([sys.executable, "-m", "daskperiment.cli", "reproduce", str(script), "1"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "Trial 1 reproduced identically as trial 2" in out.stderr
    history = subprocess.run([sys.executable, "-m", "daskperiment.cli", "history", "script_repro", "--backend",
                              str(tmp_path / "cache")], capture_output=True, text=True, check=True).stdout
    assert len(history.strip().splitlines()) == 4  # header lines + two trials


def test_reproduces_identically_on_a_local_cluster_with_process_workers(tmp_path):
    distributed = pytest.importorskip("distributed")
    ex, result = _random_experiment(tmp_path, "cluster")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        first = result.with_parameters(n=4).compute(scheduler=client)
        report = ex.reproduce(1, scheduler=client)
    assert report.identical and report.result == first


def test_a_package_installed_since_the_trial_is_reported(tmp_path, monkeypatch, caplog):
    site = tmp_path / "site-packages"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    ex, result = _random_experiment(tmp_path, "envchange")
    result.with_parameters(n=2).compute(seed=3)
    info = site / "tinypkg-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tinypkg\nVersion: 1.0\n")
    report = ex.reproduce(1)
    assert report.environment.packages.added == {"tinypkg": "1.0"}
    assert report.identical  # the result did not change
    assert any("Environment changed since trial 1: packages:" in r.getMessage() for r in caplog.records)

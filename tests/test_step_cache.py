"""The step cache: a step whose code and inputs match a stored run loads that output instead."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

import daskperiment


def _pipeline(tmp_path, calls: pathlib.Path, name="cached", **options):
    ex = daskperiment.Experiment(name, backend=tmp_path / name, **options)
    size, lr = ex.parameter("size"), ex.parameter("lr")

    @ex(cache=True)
    def load_data(size):
        with calls.open("a") as f:
            f.write("load\n")
        return list(range(size))

    @ex
    def train(data, lr):
        return sum(data) * lr

    @ex.result
    def score(model):
        return model

    return ex, score(train(load_data(size), lr))


def _count(calls: pathlib.Path) -> int:
    return calls.read_text().count("load") if calls.exists() else 0


def _cache_states(ex, trial_id):
    steps = ex.backend.load_trials([trial_id])[0]["steps"]
    return {name: [call["cache"] for call in runs] for name, runs in steps.items()}


def test_hits_skip_the_step_and_the_record_says_so(tmp_path):
    calls = tmp_path / "calls.txt"
    ex, s = _pipeline(tmp_path, calls)
    assert s.with_parameters(size=10, lr=0.1).compute() == pytest.approx(4.5)
    assert s.with_parameters(size=10, lr=0.2).compute() == pytest.approx(9.0)
    assert _count(calls) == 1
    assert _cache_states(ex, 1)["load_data"] == ["miss"] and _cache_states(ex, 2)["load_data"] == ["hit"]
    assert _cache_states(ex, 2)["train"] == [None]
    s.with_parameters(size=11, lr=0.2).compute()  # other inputs: a miss
    assert _count(calls) == 2 and len(ex.backend.cached_entries()) == 2


def test_changed_code_invalidates_its_entries(tmp_path):
    calls = tmp_path / "calls.txt"
    ex, s = _pipeline(tmp_path, calls, "invalidate")
    s.with_parameters(size=5, lr=1).compute()
    size = ex.parameter("size")

    @ex(cache=True)
    def load_data(size):  # noqa: F811 - the step's code changed
        with calls.open("a") as f:
            f.write("load v2\n")
        return list(range(size + 1))

    @ex.result
    def total(data):
        return sum(data)

    assert total(load_data(size)).with_parameters(size=5).compute() == 15
    assert _count(calls) == 2 and len(ex.backend.cached_entries()) == 2


def test_pure_false_is_never_cached(tmp_path):
    ex = daskperiment.Experiment("impure", backend=tmp_path / "impure", cache=True)
    with pytest.raises(ValueError, match="pure=False is never cached"):
        @ex(pure=False, cache=True)
        def noisy():
            return 1

    calls = []

    @ex(pure=False)  # the experiment's default does not apply to impure steps
    def clock():
        calls.append(1)
        return len(calls)

    @ex.result
    def same(x):
        return x

    same(clock()).compute(scheduler="sync")
    same(clock()).compute(scheduler="sync")
    assert len(calls) == 2 and _cache_states(ex, 2)["clock"] == [None]
    assert _cache_states(ex, 2)["same"] == ["miss"]  # pure steps take the experiment's default


def test_cache_key_invalidates_by_hand(tmp_path):
    calls = tmp_path / "calls.txt"
    version = {"v": "1"}
    ex = daskperiment.Experiment("keyed", backend=tmp_path / "keyed")
    n = ex.parameter("n")

    @ex.result(cache=True, cache_key=lambda: version["v"])
    def work(n):
        with calls.open("a") as f:
            f.write("load\n")
        return n

    s = work(n)
    s.with_parameters(n=1).compute()
    s.with_parameters(n=1).compute()
    version["v"] = "2"
    s.with_parameters(n=1).compute()
    assert _count(calls) == 2


def test_eviction_at_the_size_bound_and_clear(tmp_path):
    ex = daskperiment.Experiment("bounded", backend=tmp_path / "bounded", cache=True, cache_limit="25KB")
    n = ex.parameter("n")

    @ex.result
    def blob(n):
        return bytes([n % 256]) * 10_000

    s = blob(n)
    for i in range(5):
        s.with_parameters(n=i).compute()
    s.with_parameters(n=5).compute()  # evicts before planning: at most 25 kB kept
    entries = ex.backend.cached_entries()
    assert sum(e.size for e in entries) <= 25_000 + 10_100  # the newest entry may be on top
    assert len(entries) < 6
    assert ex.clear_cache() == len(entries) and ex.backend.cached_entries() == []


SCRIPT = """
import pathlib, sys
import daskperiment
ex = daskperiment.Experiment("shared_cache", backend=pathlib.Path(sys.argv[1]), cache=True)
n = ex.parameter("n", default=3)

@ex.result
def slow(n):
    with open(sys.argv[2], "a") as f:
        f.write("load\\n")
    return n * 2

slow(n).compute()
"""


def test_hits_across_processes(tmp_path):
    calls = tmp_path / "calls.txt"
    script = tmp_path / "cached.py"
    script.write_text(textwrap.dedent(SCRIPT))
    for _ in range(2):
        subprocess.run([sys.executable, str(script), str(tmp_path / "cache"), str(calls)], check=True,
                       capture_output=True, env={**os.environ})
    assert _count(calls) == 1


def test_hits_on_process_workers(tmp_path):
    distributed = pytest.importorskip("distributed")
    calls = tmp_path / "calls.txt"
    ex, s = _pipeline(tmp_path, calls, "workers")
    with distributed.LocalCluster(n_workers=2, processes=True, dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        s.with_parameters(size=4, lr=1).compute(scheduler=client)
        assert s.with_parameters(size=4, lr=2).compute(scheduler=client) == 12
    assert _count(calls) == 1


def test_parse_size():
    from daskperiment.stepcache import parse_size

    assert parse_size("2GB") == 2 * 10**9 and parse_size("512 MiB") == 512 * 2**20 and parse_size(10) == 10
    with pytest.raises(ValueError, match="cache_limit must be"):
        parse_size("lots")

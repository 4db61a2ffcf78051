"""Seeding: every seeder per trial and per step, the per-step Generator, reproducing a recorded seed."""

from __future__ import annotations

import logging
import random
import re
import sys
import types

import numpy as np
import pytest

import daskperiment
from daskperiment import builtin_hooks
from daskperiment.seeding import rng, seed_sequence


def random_experiment(name: str = "seeding"):
    """Parallel steps drawing from every source: ``random``, numpy's global state and :func:`rng`."""
    ex = daskperiment.Experiment(name)
    n = ex.parameter("n", default=4)

    @ex
    def draw(i):
        return {"random": random.random(), "legacy": float(np.random.random()),
                "generator": rng().normal(size=3).tolist()}

    @ex.result
    def collect(draws, n):
        return draws[:n]

    return ex, collect([draw(i) for i in range(4)], n)


def generator_draws(result):
    return [draw["generator"] for draw in result]


def test_generated_seed_is_logged_recorded_and_reproduces_the_result(caplog):
    ex, result = random_experiment()
    first = result.compute(scheduler="sync")
    logged = [r.getMessage() for r in caplog.records
              if r.getMessage().startswith("Random seed is not provided, initialized with generated seed: ")]
    seed = int(re.search(r"\d+$", logged[0]).group())
    assert ex.get_history(verbose=True).loc[1, "Seed"] == seed
    assert result.compute(seed=seed, scheduler="sync") == first


def test_each_step_call_gets_its_own_stream_from_seed_step_and_inputs():
    _, result = random_experiment()
    draws = generator_draws(result.compute(seed=3, scheduler="sync"))
    assert len({tuple(d) for d in draws}) == 4  # same step, different inputs: different streams
    assert generator_draws(result.compute(seed=3, scheduler="sync")) == draws
    assert generator_draws(result.compute(seed=4, scheduler="sync")) != draws


def test_generator_draws_do_not_depend_on_the_scheduler():
    """Threads race on numpy's global state; each step's own Generator does not care."""
    _, result = random_experiment()
    sync = generator_draws(result.compute(seed=11, scheduler="sync"))
    for _ in range(3):
        assert generator_draws(result.compute(seed=11, scheduler="threads", num_workers=4)) == sync


def test_the_generator_continues_within_one_call():
    ex = daskperiment.Experiment("continues")

    @ex.result
    def twice():
        return rng() is rng(), rng().random(), rng().random()

    same, a, b = twice().compute(seed=1)
    assert same and a != b


def test_the_generator_is_derived_from_seed_step_name_and_input_hash():
    ex = daskperiment.Experiment("derived")

    @ex.result(pure=False)
    def value(x):
        return rng().random()

    from daskperiment.plugins import get_plugin_manager

    input_hash = get_plugin_manager().hook.hash_value(value=("value", (5,), {}))
    expected = np.random.default_rng(seed_sequence(9, "value", input_hash)).random()
    assert value(5).compute(seed=9) == expected


def test_rng_outside_a_step_says_where_it_works():
    with pytest.raises(daskperiment.TrialIDNotFoundError, match="only exists during a trial execution"):
        rng()


def test_seed_sequences_differ_by_each_ingredient():
    base = seed_sequence(1, "step", "abc").generate_state(4).tolist()
    for other in (seed_sequence(2, "step", "abc"), seed_sequence(1, "other", "abc"),
                  seed_sequence(1, "step", "abd"), seed_sequence(1, "step", None)):
        assert other.generate_state(4).tolist() != base


def test_largest_seed_works_and_larger_ones_are_refused():
    """Issue 15 item 11 (this test used to accept 2**40 + 5): numpy's legacy seeding keeps only 32 bits,
    so 2**40 and 2**40 + 2**32 drew the same numbers; seeds are now limited to 0 ... 2**32 - 1."""
    from daskperiment.trial import MAX_SEED

    _, result = random_experiment()
    assert MAX_SEED == 2**32 - 1
    assert result.compute(seed=MAX_SEED, scheduler="sync") == result.compute(seed=MAX_SEED, scheduler="sync")
    with pytest.raises(daskperiment.InvalidArgumentError, match="seed must be a non-negative int up to 2\\*\\*32 - 1"):
        result.compute(seed=2**40 + 5)


# ---- optional seeders ------------------------------------------------------------------------------


class FakeLibrary(types.ModuleType):
    """Stands in for torch / tensorflow / cupy: records how it was seeded."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.seeds: list[int] = []
        self.random = types.SimpleNamespace(set_seed=self.seeds.append, seed=self.seeds.append)

    def manual_seed(self, seed: int) -> None:
        self.seeds.append(seed)


def test_torch_tensorflow_and_cupy_are_seeded_when_imported(monkeypatch):
    fakes = {name: FakeLibrary(name) for name in ("torch", "tensorflow", "cupy")}
    for name, fake in fakes.items():
        monkeypatch.setitem(sys.modules, name, fake)
    builtin_hooks.seed_random_state(seed=2**32 + 7)
    assert {name: fake.seeds for name, fake in fakes.items()} == {"torch": [7], "tensorflow": [7], "cupy": [7]}


def test_libraries_that_are_not_imported_are_not_imported_to_seed_them(monkeypatch):
    for name in builtin_hooks.OPTIONAL_SEEDERS:
        monkeypatch.delitem(sys.modules, name, raising=False)
    builtin_hooks.seed_random_state(seed=1)
    assert not set(builtin_hooks.OPTIONAL_SEEDERS) & set(sys.modules)


def test_optional_seeders_run_before_each_step(monkeypatch):
    torch = FakeLibrary("torch")
    monkeypatch.setitem(sys.modules, "torch", torch)
    _, result = random_experiment()
    result.compute(seed=5, scheduler="sync")
    assert torch.seeds == [5] * 6  # the driver, then the four draws and the result step


# ---- a distributed cluster gives what a local run gives ---------------------------------------------


def test_local_cluster_with_process_workers_reproduces_local_results(caplog):
    distributed = pytest.importorskip("distributed")
    caplog.set_level(logging.INFO, logger="daskperiment")
    ex, result = random_experiment("cluster")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  worker_dashboard_address=None) as cluster, distributed.Client(cluster):
        on_cluster = result.compute(seed=21)
        unseeded = result.compute()
        pids = set(distributed.get_client().run(lambda: __import__("os").getpid()).values())
    assert len(pids) == 2
    assert on_cluster == result.compute(seed=21, scheduler="sync")
    recorded = int(ex.get_history(verbose=True).loc[2, "Seed"])
    assert unseeded == result.compute(seed=recorded, scheduler="sync")

"""Nothing lost: 4 processes × 100 real trials on one experiment get unique ids and intact records."""

from __future__ import annotations

import concurrent.futures
import multiprocessing

import daskperiment
import pytest
from daskperiment_sql import SQLBackend

PROCESSES, TRIALS = 4, 100


def _run_trials(args: tuple[str, int]) -> int:
    """One process: TRIALS full trials (parameters, metrics, a persisted step, the outcome)."""
    import logging

    logging.getLogger("daskperiment").setLevel(logging.WARNING)
    url, worker = args
    ex = daskperiment.Experiment("crowd", backend=url)
    w, i = ex.parameter("w"), ex.parameter("i")

    @ex.persist
    def pair(w, i):
        return (w, i)

    @ex.result
    def score(p):
        ex.save_metric("m", epoch=0, value=float(p[0] * 1000 + p[1]))
        return p[0] * 1000 + p[1]

    result = score(pair(w, i))
    for n in range(TRIALS):
        ex.set_parameters(w=worker, i=n)
        result.compute(seed=n, scheduler="sync")
    ex.backend.close()
    return TRIALS


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_four_processes_write_one_experiment(request: pytest.FixtureRequest, dialect: str) -> None:
    database_url = request.getfixturevalue(f"{dialect}_url")
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(PROCESSES, mp_context=ctx) as pool:
        chunks = list(pool.map(_run_trials, [(database_url, w) for w in range(PROCESSES)]))
    assert chunks == [TRIALS] * PROCESSES
    backend = SQLBackend("crowd", database_url)
    records = backend.load_trials()
    assert [r["trial_id"] for r in records] == list(range(1, PROCESSES * TRIALS + 1))
    assert sorted((r["parameters"]["w"], r["parameters"]["i"]) for r in records) == \
        [(w, n) for w in range(PROCESSES) for n in range(TRIALS)]
    for record in records:
        assert record["success"] is True
        assert record["result"] == record["parameters"]["w"] * 1000 + record["parameters"]["i"]
    metrics = backend.load_metrics("m", [r["trial_id"] for r in records])
    assert all(metrics[r["trial_id"]].values.tolist() == [float(r["result"])] for r in records)
    assert all(backend.load_persisted("pair", t) is not None for t in (1, 200, 400))
    backend.close()

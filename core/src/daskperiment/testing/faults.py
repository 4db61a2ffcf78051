"""Fault checks for backends: a server that dies or freezes during a trial, and damaged records.

The conformance suite (:mod:`daskperiment.testing.backend`) checks what a backend stores;
these check how it fails. They take the backend's URI and a way to hurt its server, so one
check serves every server backend: the servers of ``pytest-daskperiment``
(:mod:`pytest_daskperiment.servers`) have ``.kill()`` (SIGKILL) and ``.pid`` (for SIGSTOP).
The Redis and MongoDB plugins' tests use them like this::

    from daskperiment.testing.faults import check_dead_server_fails_the_trial

    def test_a_dead_server_fails_the_trial_at_once(make_server, caplog):
        server = make_server()
        check_dead_server_fails_the_trial(server.uri, server.kill, caplog,
                                          match="cannot reach the Redis server while saving metrics")

Damaged records are the backend's own business (each stores them its way), so that test
damages them itself, between :func:`doubling_experiment` and :func:`check_reported_once`.
Times are never asserted (a loaded machine would fail them): a trial must stop at its first
failed write, long before its step would have ended.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import pytest

from daskperiment.errors import BackendUnavailableError
from daskperiment.experiment import Experiment

__all__ = ["EPOCHS", "check_dead_server_fails_the_trial", "check_frozen_server_fails_the_trial",
           "check_reported_once", "doubling_experiment", "frozen", "metrics_experiment", "warnings_about"]

#: Metric points the trial of :func:`metrics_experiment` would write, one every 5 ms, if nothing stopped it.
EPOCHS = 5000
#: The point after which the server is hurt.
HURT_AT = 20
#: A trial that wrote more points than this did not stop at its first failed write.
STOPPED_BY = 1000


def metrics_experiment(backend: Any, on_step: Callable[[], None],
                       experiment_id: str = "faults") -> tuple[Experiment, Callable[[], Any], list[int]]:
    """An experiment on ``backend`` whose result step saves the metric ``loss`` every 5 ms for
    about 25 s and calls ``on_step`` after the 20th point. Returns the experiment, the result
    step (``step().compute()`` runs a trial) and the list of epochs written so far."""
    ex = Experiment(experiment_id, backend=backend)
    reached: list[int] = []

    @ex.result
    def train() -> int:
        for epoch in range(EPOCHS):
            if epoch == HURT_AT:
                on_step()
            ex.save_metric("loss", epoch=epoch, value=1 / (epoch + 1))
            reached.append(epoch)
            time.sleep(0.005)
        return 1

    return ex, train, reached


def check_dead_server_fails_the_trial(backend: Any, kill: Callable[[], None], caplog: pytest.LogCaptureFixture,
                                      match: str) -> None:
    """``kill`` the server during a trial: the trial stops at the first failed write with one
    :class:`~daskperiment.errors.BackendUnavailableError` matching ``match``; the log holds
    exactly two ERROR lines (the failed write, the failed trial) and no traceback."""
    _, train, reached = metrics_experiment(backend, kill)
    caplog.set_level(logging.INFO, logger="daskperiment")
    with pytest.raises(BackendUnavailableError, match=match):
        train().compute()
    assert reached[-1] < STOPPED_BY, reached[-1]
    errors = [r.getMessage().split(":")[0] for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == ["Writing metrics of trial 1 failed", "Failed Experiment (trial id=1)"], errors
    assert not any(r.exc_info for r in caplog.records)


@contextlib.contextmanager
def frozen(pid: int) -> Iterator[None]:
    """The server process ``pid`` stopped (SIGSTOP) inside the block and resumed (SIGCONT) after
    it, whatever happens there: a call made inside meets a server that accepts and never answers."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def check_frozen_server_fails_the_trial(backend: Any, pid: int, match: str) -> None:
    """Freeze the server (SIGSTOP to ``pid``) during a trial: the trial stops with a
    :class:`~daskperiment.errors.BackendUnavailableError` matching ``match`` within the timeout
    set in ``backend``'s URI. The server is thawed (SIGCONT) afterwards, whatever happened."""
    frozen: list[bool] = []

    def freeze() -> None:
        os.kill(pid, signal.SIGSTOP)
        frozen.append(True)

    _, train, reached = metrics_experiment(backend, freeze)
    try:
        with pytest.raises(BackendUnavailableError, match=match):
            train().compute()
    finally:
        if frozen:
            os.kill(pid, signal.SIGCONT)
    assert reached[-1] < STOPPED_BY, reached[-1]


def doubling_experiment(backend: Any, values: Sequence[int],
                        experiment_id: str = "corrupt") -> tuple[Experiment, Callable[[int], Any]]:
    """An experiment on ``backend`` with one finished trial per value of its parameter ``a``,
    in order, each returning ``2 * a``: records to damage. Returns it and a function that runs
    one more trial (``run(5)`` gives 10)."""
    ex = Experiment(experiment_id, backend=backend)
    a = ex.parameter("a")

    @ex.result
    def double(a: int) -> int:
        return a * 2

    def run(value: int) -> Any:
        ex.set_parameters(a=value)
        return double(a).compute()

    for value in values:
        run(value)
    return ex, run


def warnings_about(caplog: pytest.LogCaptureFixture, trial_id: object) -> list[str]:
    """The WARNING messages that name ``trial <trial_id>``."""
    return [r.getMessage() for r in caplog.records
            if r.levelno == logging.WARNING and f"trial {trial_id} " in r.getMessage()]


def check_reported_once(caplog: pytest.LogCaptureFixture, problems: Mapping[object, str],
                        sound: Sequence[object] = (1,)) -> None:
    """Each damaged trial of ``problems`` (trial id → words of its problem) was named by exactly
    one WARNING holding those words, however often it was read; the ``sound`` ones by none."""
    for trial_id, problem in problems.items():
        messages = warnings_about(caplog, trial_id)
        assert len(messages) == 1 and problem in messages[0], (trial_id, messages)
    for trial_id in sound:
        assert not warnings_about(caplog, trial_id), trial_id

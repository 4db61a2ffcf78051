"""What a test does when its server cannot be had: skip loudly, fail on CI, or use the one named.

* ``DASKPERIMENT_TEST_<SERVER>_URI`` set: use that server and start nothing (the per-test
  fixtures wipe or create their databases there, so point it at a disposable server). If it
  does not answer, the tests fail: a mistyped URI must not pass as a skip.
* otherwise the fixtures start a private server;
* a server that cannot be had skips the test with a loud reason saying what to install, and
  fails it when ``CI=true``: on CI a silently skipped backend suite is a broken build.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import NoReturn

import pytest

from .servers.process import ExternalServer

__all__ = [
    "MARIADB_URI_ENV",
    "MONGO_URI_ENV",
    "POSTGRES_URI_ENV",
    "REDIS_URI_ENV",
    "external_server",
    "running_on_ci",
    "server_unavailable",
]

logger = logging.getLogger(__name__)

REDIS_URI_ENV = "DASKPERIMENT_TEST_REDIS_URI"
MONGO_URI_ENV = "DASKPERIMENT_TEST_MONGO_URI"
POSTGRES_URI_ENV = "DASKPERIMENT_TEST_POSTGRES_URI"
MARIADB_URI_ENV = "DASKPERIMENT_TEST_MARIADB_URI"


def running_on_ci() -> bool:
    """``CI=true`` (GitHub Actions, GitLab, Travis, ... set it): missing servers are errors there."""
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def server_unavailable(what: str, reason: str, install: str, env_var: str) -> NoReturn:
    """Skip (locally) or fail (``CI=true``) with a message that says exactly what to do."""
    message = (f"{what} UNAVAILABLE, TESTS NOT RUN. Fix: {install} -- or set {env_var} to a disposable "
               f"server's URI. Reason: {reason}")
    if running_on_ci():
        pytest.fail(f"{message}\n(CI=true: a missing test server fails the build instead of skipping "
                    "these tests silently)", pytrace=False)
    logger.warning("%s", message)
    pytest.skip(message)


def external_server(env_var: str, what: str, ping: Callable[[str], None],
                    forms: tuple[Callable[[str], str], Callable[[str], str]] | None = None) -> ExternalServer | None:
    """The server named by ``env_var``, checked to answer; ``None`` if the variable is unset.

    ``ping`` gets the URI and raises if the server does not answer. ``forms`` turn the given
    URI into the driver-less ``uri`` and the SQLAlchemy ``url`` for SQL servers (the variable
    may hold either).
    """
    uri = os.environ.get(env_var, "").strip()
    if not uri:
        return None
    try:
        ping(uri)
    except Exception as exc:  # noqa: BLE001 - any failure: the configured server is unusable
        pytest.fail(f"{env_var}={uri!r} is set but that {what} does not answer: {exc!r}. "
                    f"Start it, or unset {env_var} to let the tests start their own.", pytrace=False)
    logger.info("using the external %s from %s", what, env_var)
    if forms is None:
        return ExternalServer(uri)
    to_uri, to_url = forms
    return ExternalServer(to_uri(uri), to_url(uri))

"""PostgreSQL: a private cluster on a free 127.0.0.1 port in a temporary directory, run as the
``postgres`` user when we are root, a fresh database per test, and the skip/fail/override policy."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest
from pytest_daskperiment import fixtures, policy
from pytest_daskperiment.servers import ExternalServer, PostgreSQLServer, ServerUnavailable, free_port
from pytest_daskperiment.servers.postgresql import POSTGRESQL_BIN_ENV, find_postgresql_bin_dir
from pytest_daskperiment.servers.process import RESERVED_PORTS

psycopg = pytest.importorskip("psycopg")


def _require_postgresql() -> None:
    if find_postgresql_bin_dir() is None:
        policy.server_unavailable("POSTGRESQL SERVER", "no initdb/postgres binaries", "apt-get install postgresql",
                                  policy.POSTGRES_URI_ENV)


def _down(uri: str) -> bool:
    try:
        psycopg.connect(uri, connect_timeout=1).close()
    except psycopg.OperationalError:
        return True
    return False


def _all_dead(processes: list[psutil.Process], timeout: float = 5.0) -> bool:
    """Every process gone or a zombie (dead, not yet reaped by whoever inherited it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if all(not p.is_running() or p.status() == psutil.STATUS_ZOMBIE for p in processes):
                return True
        except psutil.NoSuchProcess:
            continue
        time.sleep(0.05)
    return False


def _scalar(uri: str, sql: str) -> object:
    with psycopg.connect(uri, connect_timeout=5) as connection:
        row = connection.execute(sql).fetchone()
    assert row is not None
    return row[0]


def test_starts_on_a_free_local_port_in_a_temporary_directory():
    _require_postgresql()
    with PostgreSQLServer() as server:
        assert server.port not in RESERVED_PORTS and server.host == "127.0.0.1"
        assert server.uri == f"postgresql://postgres@127.0.0.1:{server.port}/postgres"
        assert server.url == f"postgresql+psycopg://postgres@127.0.0.1:{server.port}/postgres"
        assert server.data_dir.parent == Path(tempfile.gettempdir())
        assert _scalar(server.uri, "SHOW listen_addresses") == "127.0.0.1"
        assert _scalar(server.uri, "SHOW port") == str(server.port)
        assert Path(str(_scalar(server.uri, "SHOW data_directory"))) == server.cluster_dir
        assert Path(str(_scalar(server.uri, "SHOW unix_socket_directories"))) == server.data_dir
        data_dir, pid = server.data_dir, server.pid
    assert not data_dir.exists(), "close() removes the temporary directory it created"
    assert not psutil.pid_exists(pid) and _down(server.uri)


@pytest.mark.skipif(os.geteuid() != 0, reason="runs as root only: checks the switch to the postgres user")
def test_as_root_initdb_and_the_server_run_as_the_postgres_user():
    _require_postgresql()
    with PostgreSQLServer() as server:
        assert psutil.Process(server.pid).username() == "postgres"
        assert server.cluster_dir.owner() == "postgres" and server.data_dir.owner() == "postgres"
        assert "root" not in {psutil.Process(c.pid).username() for c in psutil.Process(server.pid).children()}


def test_restart_keeps_data_and_port_and_a_kill_is_a_crash_it_recovers_from():
    _require_postgresql()
    with PostgreSQLServer() as server:
        with psycopg.connect(server.uri, autocommit=True) as connection:
            connection.execute("CREATE TABLE t (n int)")
            connection.execute("INSERT INTO t VALUES (1)")
        port, pid = server.port, server.pid
        server.restart()
        assert (server.port, server.is_running) == (port, True) and server.pid != pid
        with psycopg.connect(server.uri, autocommit=True) as connection:
            connection.execute("INSERT INTO t VALUES (2)")
        children = psutil.Process(server.pid).children(recursive=True)
        server.kill()
        assert not server.is_running and _down(server.uri)
        assert _all_dead(children), "a kill takes the backends with it (they hold shared memory)"
        server.start()
        assert _scalar(server.uri, "SELECT count(*) FROM t") == 2


def test_stop_is_not_held_up_by_an_open_connection():
    _require_postgresql()
    with PostgreSQLServer() as server:
        connection = psycopg.connect(server.uri)
        connection.execute("SELECT 1")  # an open transaction, too
        server.stop()
        assert not server.is_running and _down(server.uri)
        connection.close()


def test_busy_port_is_an_error_for_a_fixed_port(tmp_path):
    _require_postgresql()
    with PostgreSQLServer() as first:
        second = PostgreSQLServer(port=first.port)
        try:
            with pytest.raises(ServerUnavailable, match=f"port {first.port} is already answered"):
                second.start()
        finally:
            second.close()


def test_interpreter_exit_without_close_leaves_no_server_behind():
    _require_postgresql()
    script = ("from pytest_daskperiment.servers import PostgreSQLServer\n"
              "server = PostgreSQLServer().start()\n"
              "print(server.pid, server.uri, server.data_dir)\n")
    output = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                            timeout=120).stdout.split()
    pid, uri, data_dir = int(output[0]), output[1], Path(output[2])
    try:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        assert _down(uri)
    finally:
        subprocess.run(["rm", "-rf", str(data_dir)], check=True)


# -- fixtures and policy ------------------------------------------------------------------------


@pytest.mark.parametrize("run", [1, 2])
def test_postgresql_url_is_a_fresh_database_of_its_own(postgresql_url, run):
    assert postgresql_url.startswith("postgresql+psycopg://") and "/test_" in postgresql_url
    uri = fixtures.with_scheme(postgresql_url, "postgresql")
    with psycopg.connect(uri, autocommit=True) as connection:
        tables = connection.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()
        assert tables == (0,)
        connection.execute("CREATE TABLE left_over (run int)")


@pytest.mark.parametrize("ci", ["true", None])
def test_missing_binaries_fail_on_ci_and_skip_locally(no_overrides, tmp_path, ci):
    no_overrides.setenv(POSTGRESQL_BIN_ENV, str(tmp_path))  # a directory without initdb/postgres
    if ci:
        no_overrides.setenv("CI", ci)
    expected = pytest.fail.Exception if ci else pytest.skip.Exception
    with pytest.raises(expected) as info:
        fixtures.postgresql_server_or_skip()
    message = str(info.value)
    assert "POSTGRESQL SERVER UNAVAILABLE" in message and "apt-get install postgresql" in message
    assert f"no PostgreSQL 'initdb' binary in {tmp_path}" in message and policy.POSTGRES_URI_ENV in message
    assert ("CI=true" in message) == bool(ci)


def test_failing_initdb_is_reported_with_its_output(no_overrides, failing_binary):
    bin_dir = Path(tempfile.mkdtemp(prefix="fake-postgresql-"))  # reachable by the postgres user, if root
    try:
        bin_dir.chmod(0o755)
        for name in ("initdb", "postgres"):
            shutil.copy(failing_binary, bin_dir / name)
            (bin_dir / name).chmod(0o755)
        no_overrides.setenv(POSTGRESQL_BIN_ENV, str(bin_dir))
        no_overrides.setenv("CI", "true")
        with pytest.raises(pytest.fail.Exception) as info:
            fixtures.postgresql_server_or_skip()
    finally:
        shutil.rmtree(bin_dir)
    assert "initdb" in str(info.value) and "failed with code 3" in str(info.value)
    assert "missing libssl" in str(info.value)


SESSION_TEST = """
    def test_uses_the_server(postgresql_server, postgresql_url):
        print("SERVER", type(postgresql_server).__name__, postgresql_server.uri, postgresql_url)
"""


def test_a_session_without_binaries_fails_with_ci_and_skips_loudly_without(run_pytest, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {POSTGRESQL_BIN_ENV: str(empty), "PATH": f"{empty}{os.pathsep}{os.environ['PATH']}"}
    on_ci = run_pytest(SESSION_TEST, {**env, "CI": "true"})
    assert on_ci.returncode == 1 and "1 error" in on_ci.stdout, on_ci.stdout
    assert "POSTGRESQL SERVER UNAVAILABLE" in on_ci.stdout and "CI=true" in on_ci.stdout
    locally = run_pytest(SESSION_TEST, {**env, "CI": None})
    assert locally.returncode == 0 and "1 skipped" in locally.stdout, locally.stdout
    assert "SKIPPED" in locally.stdout and "POSTGRESQL SERVER UNAVAILABLE" in locally.stdout


def test_the_environment_names_an_external_server_instead(run_pytest, postgresql_server):
    if isinstance(postgresql_server, ExternalServer):
        pytest.skip("the session itself runs on an external server")
    env = {policy.POSTGRES_URI_ENV: postgresql_server.url, POSTGRESQL_BIN_ENV: "/nonexistent", "CI": "true"}
    result = run_pytest(SESSION_TEST, env, "-s")
    assert result.returncode == 0, result.stdout
    line = next(line for line in result.stdout.splitlines() if line.startswith("SERVER"))
    kind, uri, url = line.split()[1:]
    assert (kind, uri) == ("ExternalServer", postgresql_server.uri)
    assert url.startswith(postgresql_server.url.rsplit("/", 1)[0] + "/test_")
    database = url.rsplit("/", 1)[1]
    assert _scalar(postgresql_server.uri, f"SELECT count(*) FROM pg_database WHERE datname = '{database}'") == 0, \
        "the per-test database is dropped after the test"


def test_unreachable_external_server_fails_even_locally(no_overrides):
    no_overrides.setenv(policy.POSTGRES_URI_ENV, f"postgresql://postgres@127.0.0.1:{free_port()}/postgres")
    with pytest.raises(pytest.fail.Exception, match="does not answer"):
        fixtures.postgresql_server_or_skip()

"""MariaDB: a private server on a free 127.0.0.1 port in a temporary directory, run as the ``mysql``
user when we are root, a fresh database per test; absent binaries skip loudly, even on CI."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import psutil
import pytest
from pytest_daskperiment import fixtures, policy
from pytest_daskperiment.servers import MariaDBServer
from pytest_daskperiment.servers.mariadb import MARIADB_BIN_ENV, connect, find_mariadb_binaries
from pytest_daskperiment.servers.process import RESERVED_PORTS, ServiceAccount

pymysql = pytest.importorskip("pymysql")


def _require_mariadb() -> None:
    if find_mariadb_binaries() is None:
        pytest.skip("MARIADB SERVER UNAVAILABLE: MariaDB binaries are absent (apt-get install mariadb-server); "
                    "MariaDB is optional")


def _rows(uri: str, sql: str) -> tuple[tuple[object, ...], ...]:
    connection = connect(uri)
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql)
            return tuple(cursor.fetchall())
    finally:
        connection.close()


def _down(uri: str) -> bool:
    try:
        connect(uri, connect_timeout=1).close()
    except pymysql.err.OperationalError:
        return True
    return False


def test_starts_on_a_free_local_port_in_a_temporary_directory_and_keeps_data_across_a_kill():
    _require_mariadb()
    with MariaDBServer() as server:
        assert server.port not in RESERVED_PORTS and server.data_dir.parent == Path(tempfile.gettempdir())
        assert server.url == f"mysql+pymysql://root@127.0.0.1:{server.port}/"
        assert _rows(server.uri, "SELECT @@port, @@bind_address, @@character_set_server") == \
            ((server.port, "127.0.0.1", "utf8mb4"),)
        assert Path(str(_rows(server.uri, "SELECT @@datadir")[0][0])) == server.db_dir
        if os.geteuid() == 0:
            assert psutil.Process(server.pid).username() == "mysql"
        _rows(server.uri, "CREATE DATABASE d")
        _rows(server.uri, "CREATE TABLE d.t (n int) ENGINE=InnoDB")
        _rows(server.uri, "INSERT INTO d.t VALUES (1)")
        server.kill()
        assert _down(server.uri)
        server.start()
        assert _rows(server.uri, "SELECT n FROM d.t") == ((1,),)
        data_dir = server.data_dir
    assert not data_dir.exists() and _down(server.uri)


@pytest.mark.skipif(os.geteuid() != 0, reason="runs as root only: the fallback when there is no mysql user")
def test_as_root_without_a_mysql_user_it_runs_as_root_by_consent(monkeypatch):
    _require_mariadb()
    monkeypatch.setattr(ServiceAccount, "lookup", classmethod(lambda cls, name: None))  # mariadb-server-core alone
    with MariaDBServer() as server:
        assert psutil.Process(server.pid).username() == "root" and "--user=root" in psutil.Process(server.pid).cmdline()
        assert _rows(server.uri, "SELECT 1") == ((1,),)


@pytest.mark.parametrize("run", [1, 2])
def test_mariadb_url_is_a_fresh_database_of_its_own(mariadb_url, run):
    assert mariadb_url.startswith("mysql+pymysql://root@127.0.0.1:") and "/test_" in mariadb_url
    assert _rows(mariadb_url, "SHOW TABLES") == ()
    assert _rows(mariadb_url, "SELECT @@character_set_database") == (("utf8mb4",),)
    _rows(mariadb_url, "CREATE TABLE left_over (run int)")


def test_a_database_is_dropped_even_with_a_transaction_left_open_on_it(mariadb_server):
    if mariadb_server.external:
        pytest.skip("checks the private server's process list")
    _rows(mariadb_server.uri, "CREATE DATABASE left_open")
    _rows(mariadb_server.uri, "CREATE TABLE left_open.t (n int) ENGINE=InnoDB")
    holder = connect(fixtures.with_database(mariadb_server.uri, "left_open"), autocommit=False)
    with holder.cursor() as cursor:
        cursor.execute("INSERT INTO t VALUES (1)")  # holds a metadata lock on t until commit
    fixtures._drop_mariadb_database(mariadb_server.uri, "left_open")
    assert _rows(mariadb_server.uri, "SHOW DATABASES LIKE 'left_open'") == ()
    with pytest.raises(pymysql.err.OperationalError):
        with holder.cursor() as cursor:
            cursor.execute("SELECT 1")
    holder.close()


def test_absent_binaries_skip_loudly_even_on_ci(no_overrides, tmp_path):
    no_overrides.setenv(MARIADB_BIN_ENV, str(tmp_path))  # no mariadbd there
    no_overrides.setenv("CI", "true")
    with pytest.raises(pytest.skip.Exception) as info:
        fixtures.mariadb_server_or_skip()
    message = str(info.value)
    assert "MARIADB SERVER UNAVAILABLE" in message and "binaries are absent" in message
    assert "apt-get install mariadb-server" in message and "skips even with CI=true" in message


def test_binaries_that_fail_to_start_fail_on_ci(no_overrides, failing_binary):
    bin_dir = Path(tempfile.mkdtemp(prefix="fake-mariadb-"))  # reachable by the mysql user, if root
    try:
        bin_dir.chmod(0o755)
        for name in ("mariadbd", "mariadb-install-db"):
            (bin_dir / name).write_bytes(Path(failing_binary).read_bytes())
            (bin_dir / name).chmod(0o755)
        no_overrides.setenv(MARIADB_BIN_ENV, str(bin_dir))
        no_overrides.setenv("CI", "true")
        with pytest.raises(pytest.fail.Exception) as info:
            fixtures.mariadb_server_or_skip()
    finally:
        for child in bin_dir.iterdir():
            child.unlink()
        bin_dir.rmdir()
    assert "MARIADB SERVER UNAVAILABLE" in str(info.value) and "failed with code 3" in str(info.value)
    assert "missing libssl" in str(info.value)


def test_the_environment_names_an_external_server_instead(no_overrides, mariadb_server):
    no_overrides.setenv(policy.MARIADB_URI_ENV, mariadb_server.url)
    no_overrides.setenv(MARIADB_BIN_ENV, "/nonexistent")
    server = fixtures.mariadb_server_or_skip()
    assert server.external and (server.uri, server.url) == (mariadb_server.uri, mariadb_server.url)

"""The forms ``backend=`` takes (URLs of each scheme, engines), masking, and lazy SQLAlchemy import."""

from __future__ import annotations

import pickle
import socket
import subprocess
import sys
import textwrap
import time

import daskperiment
import pytest
import sqlalchemy
from daskperiment.errors import BackendError, BackendUnavailableError
from daskperiment.plugins import get_backend_registry
from daskperiment_sql import SCHEMES, SQLBackend
from daskperiment_sql.connection import ConnectionSpec


def test_every_scheme_is_registered() -> None:
    schemes = get_backend_registry().schemes
    assert set(SCHEMES) <= set(schemes)
    assert {"postgresql", "postgresql+psycopg", "postgres", "sqlite", "mysql+pymysql", "mariadb+pymysql", "mysql",
            "mariadb"} <= set(schemes)
    assert get_backend_registry().get("sqlite") is SQLBackend


def test_sqlite_url_through_experiment(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'e.db'}"
    ex = daskperiment.Experiment("forms", backend=url)
    assert isinstance(ex.backend, SQLBackend) and repr(ex.backend) == f"SQLBackend({url!r})"


@pytest.mark.parametrize(("given", "driver"), [
    ("postgres://u:secret@db/x", "postgresql+psycopg://u:secret@db/x"),
    ("postgresql://u:secret@db:5433/x", "postgresql+psycopg://u:secret@db:5433/x"),
    ("postgresql+psycopg://u:secret@db/x", "postgresql+psycopg://u:secret@db/x"),
    ("mysql://u:secret@db/x", "mysql+pymysql://u:secret@db/x"),
    ("mariadb://u:secret@db/x", "mariadb+pymysql://u:secret@db/x"),
    ("mariadb+pymysql://u:secret@db/x?charset=utf8mb4", "mariadb+pymysql://u:secret@db/x?charset=utf8mb4"),
])
def test_urls_get_our_driver_and_a_masked_display(given: str, driver: str) -> None:
    spec = ConnectionSpec.from_uri(given)
    assert spec.url == driver
    assert "secret" not in spec.display and "u:***@" in spec.display
    backend = SQLBackend("x", given)
    assert "secret" not in repr(backend) and "secret" not in repr(pickle.loads(pickle.dumps(backend)))


def test_in_memory_sqlite_is_refused_with_the_fix() -> None:
    with pytest.raises(BackendError, match="in-memory SQLite.*sqlite:///experiments.db"):
        SQLBackend("x", "sqlite://")


def test_an_engine_is_accepted_and_workers_rebuild_it(tmp_path) -> None:
    engine = sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'engine.db'}")
    ex = daskperiment.Experiment("engine", backend=engine)
    assert isinstance(ex.backend, SQLBackend)
    trial_id = ex.backend.start_trial({"parameters": {"a": 1}})
    clone = pickle.loads(pickle.dumps(ex.backend))
    assert clone.load_trials()[0]["trial_id"] == trial_id
    engine.dispose()


def test_unreachable_server_is_a_clear_error_within_seconds() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    backend = SQLBackend("x", f"postgresql://u:hunter2@127.0.0.1:{port}/db")
    t0 = time.monotonic()
    with pytest.raises(BackendUnavailableError, match="cannot reach the database") as info:
        backend.last_trial_id()
    assert time.monotonic() - t0 < 10
    assert "hunter2" not in str(info.value) and "u:***@127.0.0.1" in str(info.value)


def test_importing_daskperiment_does_not_import_sqlalchemy() -> None:
    """Import time does not grow: listing plugins and schemes loads the plugin, not SQLAlchemy."""
    code = textwrap.dedent("""
        import sys
        import daskperiment
        from daskperiment.plugins import get_backend_registry
        from daskperiment.plugins import list_plugins
        assert 'sql' in [row['name'] for row in list_plugins()]
        assert 'sqlite' in get_backend_registry().schemes
        assert 'sqlalchemy' not in sys.modules, 'sqlalchemy imported'
        assert 'psycopg' not in sys.modules and 'pymysql' not in sys.modules
        print('ok')
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"

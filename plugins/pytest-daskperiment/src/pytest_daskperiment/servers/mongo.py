"""A private MongoDB wire-protocol server for tests: ``nx-27017``, SQLite underneath.

Chosen over ``mongod`` because it installs from PyPI (``pip install nx-27017``) on any
machine CI may get; ``DASKPERIMENT_TEST_MONGO_URI`` points the tests at a real ``mongod``.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Sequence
from typing import Any, ClassVar

from .process import DEFAULT_STARTUP_TIMEOUT, ManagedServer, ServerUnavailable

__all__ = ["NX_27017_REQUIREMENTS", "MongoServer"]

#: the tested ``nx-27017`` / ``neosqlite`` pair (named in install hints)
NX_27017_REQUIREMENTS = "nx-27017==0.8.1 neosqlite==1.17.2"


class MongoServer(ManagedServer):
    """A private ``nx-27017`` MongoDB wire-protocol server (SQLite files in ``data_dir/data``).

    Runs ``nx_27017.nx_27017.main`` with the current interpreter, one SQLite file per
    logical database (``--data-dir``), its log and pid files in the data directory. Data
    survives :meth:`restart` and :meth:`kill` (SQLite, WAL journal).

    Not MongoDB. Probed with nx-27017 0.8.1 / neosqlite 1.17.2, these differ (a backend
    that must also run here avoids them): transactions are one SQLite transaction per
    database shared by all clients (abort also undoes other clients' writes); collection
    names must match ``[A-Za-z_][A-Za-z0-9_]*`` and not be SQL keywords (``order``,
    ``group``, ``values``, ...); ``$set`` on an existing document stores ``True`` as ``1`` and
    datetimes as strings; ``find_one_and_update`` ignores ``$setOnInsert``; ``$addToSet`` does
    nothing; ``count_documents`` with an ObjectId in the filter counts 0; NaN/inf floats are
    rejected; ``w=0`` writes are lost and break the connection.
    """

    name: ClassVar[str] = "mongo"

    def __init__(self, *, launcher: Sequence[str] | None = None, port: int | None = None,
                 data_dir: str | os.PathLike[str] | None = None,
                 startup_timeout: float = DEFAULT_STARTUP_TIMEOUT, verbose: bool = False) -> None:
        super().__init__(port=port, data_dir=data_dir, startup_timeout=startup_timeout)
        #: argv prefix that runs the server; default: this interpreter running ``nx_27017.nx_27017.main``
        self.launcher = list(launcher) if launcher is not None else None
        self.verbose = verbose
        self.db_dir = self.data_dir / "data"
        self.server_log_path = self.data_dir / "nx-27017.log"
        self.pid_path = self.data_dir / "nx-27017.pid"

    @property
    def uri(self) -> str:
        """``mongodb://127.0.0.1:PORT/``"""
        return f"mongodb://{self.host}:{self.port}/"

    def database_uri(self, database: str) -> str:
        """``mongodb://127.0.0.1:PORT/<database>``"""
        return f"{self.uri}{database}"

    def _check_available(self) -> None:
        missing = [module for module in (["nx_27017"] if self.launcher is None else []) + ["pymongo"]
                   if importlib.util.find_spec(module) is None]
        if missing:
            raise ServerUnavailable(f"Python package(s) missing: {', '.join(missing)}",
                                    hint=f"pip install {NX_27017_REQUIREMENTS} pymongo")

    def _command(self) -> list[str]:
        # not "-m nx_27017.nx_27017": the package imports that module itself, and runpy warns about it
        launcher = self.launcher if self.launcher is not None else [
            sys.executable, "-c", "import sys; from nx_27017.nx_27017 import main; sys.exit(main())"]
        self.db_dir.mkdir(parents=True, exist_ok=True)
        # after a kill the pid file stays; should its pid be reused, nx-27017 would refuse to start
        self.pid_path.unlink(missing_ok=True)
        command = [*launcher, "--host", self.host, "--port", str(self.port), "--data-dir", str(self.db_dir),
                   "--log-file", str(self.server_log_path), "--pid-file", str(self.pid_path)]
        if self.verbose:
            command.append("--verbose")
        return command

    def client(self, **kwargs: Any) -> Any:
        """A ``pymongo.MongoClient`` (short server selection timeout: a dead server fails fast)."""
        import pymongo

        kwargs.setdefault("serverSelectionTimeoutMS", 2000)
        kwargs.setdefault("connectTimeoutMS", 2000)
        return pymongo.MongoClient(self.uri, **kwargs)

    def _ping(self) -> None:
        client = self.client(serverSelectionTimeoutMS=500, connectTimeoutMS=500)
        try:
            client.admin.command("ping")
        finally:
            client.close()

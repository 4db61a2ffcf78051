"""Build the tornado application from the registered routes and run it: in a background
thread (``ex.start_dashboard()`` in a notebook) or in the foreground (``daskperimentboard``)."""

from __future__ import annotations

import asyncio
import errno
import logging
import re
import socket
import threading
from typing import Any, Callable
from urllib.parse import urlencode

import jinja2
import pluggy
import tornado.httpserver
import tornado.netutil
import tornado.web

from ..errors import DaskperimentError
from .catalog import Catalog
from .handlers import NotFound, Page, StaticFiles

__all__ = ["LOOPBACK", "DashboardError", "DashboardServer", "collect_routes", "make_app", "templates"]

logger = logging.getLogger("daskperiment.dashboard")

LOOPBACK = ("127.0.0.1", "localhost", "::1")
BUILTIN_PAGES = "dashboard"


class DashboardError(DaskperimentError):
    """The dashboard cannot start (port taken, invalid port, route conflict); the message names the fix."""


def templates() -> jinja2.Environment:
    """The page templates, autoescaped (every value shown is escaped unless marked safe)."""
    env = jinja2.Environment(loader=jinja2.PackageLoader("daskperiment.dashboard", "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True)
    env.filters["query"] = lambda params: urlencode(params, doseq=True)
    return env


def collect_routes(pm: pluggy.PluginManager | None = None) -> list[tuple[str, type[tornado.web.RequestHandler]]]:
    """Every ``register_routes`` implementation's routes; the built-in pages are registered as the
    plugin ``dashboard`` when the manager does not have them yet (unless that name is blocked)."""
    from ..plugins import PluginHost, get_plugin_host
    from . import pages

    host = get_plugin_host() if pm is None else PluginHost(pm)
    if host.pm.get_plugin(BUILTIN_PAGES) is None and not host.pm.is_blocked(BUILTIN_PAGES):
        host.pm.register(pages, name=BUILTIN_PAGES)
    routes: dict[str, tuple[type[tornado.web.RequestHandler], str]] = {}

    def register(plugin: str, pattern: str, handler: Any) -> None:
        if not (isinstance(handler, type) and issubclass(handler, (Page, StaticFiles))):
            raise DashboardError(f"Plugin {plugin!r} registered {handler!r} for {pattern!r}: a route's "
                                 "handler must subclass daskperiment.dashboard.Page.")
        re.compile(pattern)
        if pattern in routes:
            raise DashboardError(f"Dashboard route {pattern!r} is registered twice: by plugin "
                                 f"{routes[pattern][1]!r} and by plugin {plugin!r}. Block one with "
                                 "DASKPERIMENT_DISABLE_PLUGINS=<name>.")
        routes[pattern] = (handler, plugin)

    host.register_routes(register)
    return [(pattern, handler) for pattern, (handler, _) in routes.items()]


def make_app(catalog: Catalog, *, loopback_only: bool = True,
             pm: pluggy.PluginManager | None = None) -> tornado.web.Application:
    return tornado.web.Application(
        collect_routes(pm), default_handler_class=NotFound, catalog=catalog, templates=templates(),
        allowed_hosts=set(LOOPBACK) if loopback_only else None, compress_response=True)


def bind(host: str, port: Any) -> list[socket.socket]:
    """Listening sockets, or a :class:`DashboardError` that says what to change."""
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port <= 65535:
        raise DashboardError(f"Invalid port {port!r}: use a number from 1 to 65535 (0 picks a free one), "
                             "e.g. --port 8050.")
    try:
        return tornado.netutil.bind_sockets(port, address=host, family=socket.AF_UNSPEC)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise DashboardError(f"Port {port} on {host} is already in use: pass another one, e.g. --port "
                                 f"{port + 1 if port < 65535 else 8050} (or --port 0 for a free one).") from None
        if exc.errno == errno.EACCES:
            raise DashboardError(f"Port {port} needs privileges: use a port above 1023, e.g. --port 8050.") from None
        raise DashboardError(f"Cannot listen on {host}:{port}: {exc.strerror or exc}. "
                             "Check --host (127.0.0.1 by default).") from None


class DashboardServer:
    """A dashboard listening on ``url``; :meth:`serve_forever` or :meth:`start` (a daemon thread)."""

    def __init__(self, app: tornado.web.Application, sockets: list[socket.socket]) -> None:
        self.app = app
        self.sockets = sockets
        self.server_address: tuple[str, int] = sockets[0].getsockname()[:2]
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()

    @property
    def url(self) -> str:
        host, port = self.server_address
        return f"http://{f'[{host}]' if ':' in host else host}:{port}/"

    def _run(self, ready: Callable[[], None]) -> None:
        loop = self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        server: tornado.httpserver.HTTPServer | None = None

        async def start() -> None:
            nonlocal server
            server = tornado.httpserver.HTTPServer(self.app)
            server.add_sockets(self.sockets)

        try:
            loop.run_until_complete(start())
            ready()
            loop.run_forever()
        finally:
            if server is not None:
                server.stop()
                loop.run_until_complete(server.close_all_connections())
            loop.close()
            self._stopped.set()

    def serve_forever(self) -> None:
        """Serve in this thread until Ctrl-C or :meth:`shutdown`."""
        logger.info("Dashboard on %s (read-only; Ctrl-C stops it)", self.url)
        try:
            self._run(lambda: None)
        except KeyboardInterrupt:
            logger.info("Dashboard stopped")

    def start(self) -> DashboardServer:
        """Serve from a daemon thread; returns once the server accepts connections."""
        started = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(started.set,), name="daskperiment-dashboard",
                                        daemon=True)
        self._thread.start()
        started.wait(30)
        logger.info("Dashboard on %s (read-only)", self.url)
        return self

    def shutdown(self) -> None:
        """Stop serving and close the sockets (idempotent)."""
        loop = self._loop
        if loop is not None and not self._stopped.is_set():
            loop.call_soon_threadsafe(loop.stop)
            self._stopped.wait(30)
        if self._thread is not None:
            self._thread.join(30)

    server_close = shutdown  # the name http.server used, kept for existing callers


def serve(catalog: Catalog, host: str = "127.0.0.1", port: int = 5000, blocking: bool = True,
          pm: pluggy.PluginManager | None = None) -> DashboardServer:
    """Listen on ``host:port`` (raises :class:`DashboardError` with the fix when it cannot)."""
    loopback = host in LOOPBACK
    if not loopback:
        logger.warning("Dashboard bound to %s: anyone who can reach this address can read the history", host)
    server = DashboardServer(make_app(catalog, loopback_only=loopback, pm=pm), bind(host, port))
    if blocking:
        server.serve_forever()
    else:
        server.start()
    return server

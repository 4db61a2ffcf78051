"""The read-only dashboard: ``daskperimentboard`` / ``ex.start_dashboard()``, and static reports.

A leaf of the package: it reads experiments through :meth:`Backend.read_only` and
nothing in the core imports it (``Experiment.start_dashboard`` and the CLI import it
lazily). Safe by default: it binds to 127.0.0.1, answers GET and HEAD only, sends a
strict Content-Security-Policy (no inline script, nothing from another origin),
escapes everything (autoescaped Jinja2 templates; the browser code builds the DOM
with ``textContent``) and never unpickles. Pages are routes registered through the
``register_routes`` hook (:mod:`.pages` holds the built-in ones).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..experiment import Experiment
    from .handlers import Page
    from .server import DashboardServer

__all__ = ["Page", "main", "serve_experiment"]


def __getattr__(name: str) -> Any:
    """``Page`` for plugin authors without importing tornado when only ``main`` is wanted."""
    if name == "Page":
        from .handlers import Page

        return Page
    raise AttributeError(name)


def serve_experiment(experiment: Experiment, host: str = "127.0.0.1", port: int = 5000,
                     blocking: bool | None = None) -> DashboardServer:
    """The dashboard of one :class:`~daskperiment.Experiment` (``ex.start_dashboard``): blocking when
    run as a script, in a background thread in an interactive session."""
    from ..script import _interactive
    from .catalog import Catalog
    from .server import serve

    if blocking is None:
        blocking = not _interactive()
    return serve(Catalog({experiment.id: experiment.backend.read_only()}), host=host, port=port, blocking=blocking)


def main(argv: Any = None) -> int:
    from .cli import main as run

    return run(argv)

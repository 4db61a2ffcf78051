"""``daskperimentboard [ID …] [--backend URI|DIR] [--host] [--port]`` and ``daskperiment report``."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any, Sequence

from ..backends import Backend, backend_argument
from ..errors import DaskperimentError
from ..plugins import make_backend
from .catalog import Catalog

__all__ = ["main", "open_catalog", "report_main"]

#: The id under which a store is scanned for experiments (never written: the scan is read-only).
SCAN_ID = "daskperiment_index"


def open_catalog(ids: Sequence[str], backend: str | None) -> Catalog:
    """The experiments ``ids`` (every experiment found when empty) in ``backend``, read-only.

    Raises a :class:`DaskperimentError` that lists the experiments found when one of
    ``ids`` has no trials or when there is none at all.
    """
    target = backend_argument(backend)

    def opener(experiment_id: str) -> Backend:
        return make_backend(experiment_id, target).read_only()

    scanner = opener(ids[0] if ids else SCAN_ID)
    found = scanner.experiment_ids()
    where = backend or "daskperiment_cache/"
    unknown = [i for i in ids if i not in found and not opener(i).last_trial_id()]
    if unknown:
        raise DaskperimentError(f"No experiment {', '.join(map(repr, unknown))} in {where}; found: "
                                f"{', '.join(found) or 'none'}. Check the id, or pass --backend URI|DIR.")
    if not ids and not found:
        raise DaskperimentError(f"No experiments found in {where}: run one first, or pass the ids and "
                                "--backend URI|DIR where they are stored.")
    return Catalog({i: opener(i) for i in ids}, opener=opener, scanner=scanner)


def _quiet() -> None:
    if not logging.getLogger().handlers and not logging.getLogger("daskperiment").handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s [%(levelname)s] %(message)s")
    logging.getLogger("tornado.access").setLevel(logging.WARNING)


def main(argv: Sequence[str] | None = None) -> int:
    from .server import serve

    parser = argparse.ArgumentParser(prog="daskperimentboard", description="Read-only dashboard of experiments.")
    parser.add_argument("experiment_ids", nargs="*", help="ids to show first (default: every experiment found)")
    parser.add_argument("--backend", help="URI (redis://…) or directory (default: daskperiment_cache/<id>)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    args = parser.parse_args(argv)
    _quiet()
    try:
        catalog = open_catalog(args.experiment_ids, args.backend)
        serve(catalog, host=args.host, port=args.port, blocking=True)
    except (DaskperimentError, ImportError) as exc:
        print(f"daskperimentboard: error: {exc}", file=sys.stderr)
        return 2
    return 0


def report_main(args: Any) -> int:
    """``daskperiment report ID -o report.html``: one self-contained offline HTML file."""
    from .report import write_report

    catalog = open_catalog([args.experiment_id], args.backend)
    data = catalog.get(args.experiment_id)
    assert data is not None
    size = write_report(data, args.output)
    print(f"Wrote {args.output} ({size / 1e6:.1f} MB): open it in a browser, no server or network needed.")
    return 0

"""The ``daskperiment`` command: list plugins, show history, code and metrics."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import stat
import subprocess
import sys
from typing import TYPE_CHECKING, Callable, Sequence

from . import __version__
from .backends import backend_argument
from .errors import ExperimentNotFoundError

if TYPE_CHECKING:
    from .experiment import Experiment


def _experiment(args: argparse.Namespace) -> Experiment:
    """The experiment the command reads; it must exist (a reading command never creates a store)."""
    from .experiment import Experiment, validate_id
    from .plugins import make_backend

    logging.getLogger("daskperiment").setLevel(logging.WARNING)
    experiment_id = validate_id(args.experiment_id)
    backend = make_backend(experiment_id, backend_argument(args.backend))
    view = backend.read_only()  # looking must not create the store it does not find
    if view.last_trial_id() == 0:
        existing = ", ".join(view.experiment_ids()) or "none"
        where = "--backend DIR (the directory holding ID.sqlite3) or URI" if args.backend is None else "the id"
        raise ExperimentNotFoundError(
            f"No experiment {experiment_id!r} in {backend.uri} (no trials recorded there); experiments found "
            f"there: {existing}. Check {where}.")
    return Experiment(experiment_id, backend=backend)


def cmd_plugins(args: argparse.Namespace) -> int:
    from .plugins import list_plugins

    rows = list_plugins()
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        dist = f"{row['distribution']} {row['version']}" if row["distribution"] else "(not installed)"
        print(f"{row['name']:<14} {dist:<36} {', '.join(row['hooks'])}")
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    frame = _experiment(args).get_history(verbose=args.verbose)
    print(frame.to_csv() if args.csv else frame.to_string())
    return 0


def cmd_code(args: argparse.Namespace) -> int:
    ex = _experiment(args)
    print(ex.get_code(trial_id=ex.trial_id if args.trial_id is None else args.trial_id), end="")
    return 0


def cmd_metric(args: argparse.Namespace) -> int:
    frame = _experiment(args).load_metric(args.key, trial_id=args.trial_id)
    print(frame.to_csv() if args.csv else frame.to_string())
    return 0


#: ANSI colours for ``daskperiment diff`` on a terminal, by the first character of a line.
_COLOURS = {"+": "\033[32m", "-": "\033[31m", "~": "\033[33m", "@": "\033[36m"}


def _coloured(line: str) -> str:
    colour = _COLOURS.get(line.lstrip()[:1])
    return f"{colour}{line}\033[0m" if colour else line


def cmd_diff(args: argparse.Namespace) -> int:
    text = str(_experiment(args).diff(args.a, args.b))
    colour = args.color == "always" or (args.color == "auto" and sys.stdout.isatty())
    print("\n".join(map(_coloured, text.splitlines())) if colour else text)
    return 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    """Run the script in a child process whose script-mode trial re-runs the recorded one."""
    from .script import ENV_REPRODUCE

    env = {**os.environ, ENV_REPRODUCE: str(args.trial_id)}
    return subprocess.run([sys.executable, args.script], env=env, check=False).returncode


def cmd_report(args: argparse.Namespace) -> int:
    from .dashboard.cli import report_main  # the dashboard is a leaf package, loaded only for this

    logging.getLogger("daskperiment").setLevel(logging.WARNING)
    return report_main(args)


def cmd_copy(args: argparse.Namespace) -> int:
    from .transfer import copy_experiment

    logging.getLogger("daskperiment").setLevel(logging.WARNING)
    report = copy_experiment(args.experiment_id, backend_argument(args.source), backend_argument(args.target))
    print(f"{args.experiment_id}: {report}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="daskperiment", description="Reproducible experiments on Dask.")
    parser.add_argument("--version", action="version", version=f"daskperiment {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    plugins = sub.add_parser("plugins", help="list installed plugins, versions and hooks")
    plugins.add_argument("--json", action="store_true", help="print JSON")
    plugins.set_defaults(func=cmd_plugins)

    def experiment_parser(name: str, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help)
        p.add_argument("experiment_id")
        p.add_argument("--backend", help="URI (redis://…) or directory (default: daskperiment_cache/<id>)")
        return p

    history = experiment_parser("history", "print the trial history")
    history.add_argument("--verbose", action="store_true", help="add Seed, Result Type and Sweep")
    history.add_argument("--csv", action="store_true", help="print CSV")
    history.set_defaults(func=cmd_history)
    code = experiment_parser("code", "print the code context of a trial")
    code.add_argument("--trial-id", type=int, default=None, help="default: the last trial")
    code.set_defaults(func=cmd_code)
    metric = experiment_parser("metric", "print a metric of one or more trials")
    metric.add_argument("key")
    metric.add_argument("--trial-id", type=int, nargs="+", required=True)
    metric.add_argument("--csv", action="store_true", help="print CSV")
    metric.set_defaults(func=cmd_metric)

    diff = experiment_parser("diff", "what differs between two trials (parameters, code, environment, …)")
    diff.add_argument("a", type=int, help="trial id")
    diff.add_argument("b", type=int, help="trial id")
    diff.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                      help="colour the diff (default: on a terminal)")
    diff.set_defaults(func=cmd_diff)

    reproduce = sub.add_parser("reproduce", help="re-run a script's recorded trial and say whether it is the same")
    reproduce.add_argument("script", help="the experiment script (run as `python SCRIPT`)")
    reproduce.add_argument("trial_id", type=int)
    reproduce.set_defaults(func=cmd_reproduce)
    report = experiment_parser("report", "write a self-contained offline HTML report (runs, charts, compare)")
    report.add_argument("-o", "--output", default="report.html", help="file to write (default: report.html)")
    report.set_defaults(func=cmd_report)

    copy = sub.add_parser("copy", help="copy an experiment between backends (ids kept; resumable; verified)")
    copy.add_argument("experiment_id")
    copy.add_argument("--from", dest="source", required=True, help="URI or directory to copy from")
    copy.add_argument("--to", dest="target", required=True, help="URI or directory to copy to")
    copy.set_defaults(func=cmd_copy)
    return parser


def _stdout_is_a_pipe() -> bool:
    try:
        return stat.S_ISFIFO(os.fstat(sys.stdout.fileno()).st_mode)
    except (OSError, ValueError):  # no file descriptor (a replaced sys.stdout)
        return False


def _reader_went_away() -> int:
    """``daskperiment plugins | head -1``: the reader closed the pipe. Stop quietly with the
    status of a command ended by SIGPIPE, as ``cat`` or ``git`` would; stdout now points at
    /dev/null so that Python's flush at exit does not fail a second time, noisily."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 128 + signal.SIGPIPE


def main(argv: Sequence[str] | None = None) -> int:
    try:
        try:
            args = build_parser().parse_args(argv)
        finally:  # --help and --version print, then exit: a closed pipe fails here, not at exit
            sys.stdout.flush()
        command: Callable[[argparse.Namespace], int] = args.func
        status = command(args)
        sys.stdout.flush()  # a closed pipe fails here, where it is handled, not at exit
        return status
    except BrokenPipeError:
        if not _stdout_is_a_pipe():  # a socket's, not our reader's: not ours to hide
            raise
        return _reader_went_away()
    except (ValueError, ImportError) as exc:  # our errors are ValueErrors that name the fix
        print(f"daskperiment: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())

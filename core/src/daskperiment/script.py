"""Script mode: ``python my_experiment.py a=1 b=2 --seed 1`` runs one trial, ``... a=1,2 b=3,4 --sweep`` a sweep.

A trial runs when an ``@ex.result`` step is called as a bare expression
statement (its value discarded, as in ``calculate_score(d)``) in the script being
executed as ``__main__``: at module level, or inside one of its functions such as
the usual ``def main(): …`` + ``if __name__ == "__main__": main()``.
``s = calculate_score(d)`` keeps the Delayed for explicit ``s.compute()`` calls
instead. It never triggers under pytest, IPython or Jupyter, nor when the module
is imported.

``--help`` prints the usage with the declared parameters and their defaults. A
script given ``name=value`` arguments that ends without running any trial exits
with status 2 and says so, rather than silently ignoring them.
"""

from __future__ import annotations

import ast
import atexit
import contextlib
import dis
import logging
import os
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from .errors import DaskperimentError, ScriptArgumentError
from .sweep import Sweep, expand_trials
from .trial import MAX_SEED, TrialResult

logger = logging.getLogger("daskperiment")

#: Set by ``daskperiment reproduce SCRIPT ID``: the script's trial re-runs that recorded trial instead.
ENV_REPRODUCE = "DASKPERIMENT_REPRODUCE"

USAGE = """\
usage: python SCRIPT.py [name=value ...] [--seed N] [--sweep] [--scheduler NAME|ADDRESS]

  name=value           a parameter value: a Python literal (1, 0.5, [1, 2], None, 'x y'), else a string
  --seed N             the trial's seed (with --sweep: the sweep's seed, each trial's is drawn from it)
  --sweep              run a sweep: every combination of comma-separated values, all in one Dask graph,
                       e.g. lr=0.1,0.01 depth=3,5 runs 4 trials (a value that is a tuple literal lists
                       the choices; a list literal such as [1,2] is one value)
  --scheduler S        threads, processes or sync, or a distributed scheduler's address
                       (tcp://host:8786) to run on an existing cluster
  -h, --help           show this message"""
USAGE_LINE = USAGE.splitlines()[0]
HELP_FLAGS = ("-h", "--help")
#: Exit status of a script whose arguments were not used by any trial (argparse's for usage errors).
UNUSED_ARGUMENTS_STATUS = 2


@dataclass(frozen=True)
class ScriptArguments:
    """What the command line asks for."""

    parameters: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    sweep: bool = False
    scheduler: str | None = None
    help: bool = False

    @property
    def grid(self) -> dict[str, list[Any]]:
        """The parameters as sweep choices: a tuple value lists its choices, anything else is one."""
        return {name: list(value) if isinstance(value, tuple) else [value] for name, value in self.parameters.items()}


def _literal(raw: str) -> Any:
    try:
        return ast.literal_eval(raw)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return raw


def _choices(raw: str) -> Any:
    """With ``--sweep``: ``adam,sgd`` (not a literal) is split at commas like ``0.1,0.01`` (a tuple)."""
    value = _literal(raw)
    if isinstance(value, str) and value == raw and "," in raw:
        return tuple(_literal(part) for part in raw.split(","))
    return value


def parse_arguments(argv: list[str]) -> ScriptArguments:
    """``key=value`` pairs (values as Python literals, else strings), ``--seed N``, ``--sweep``,
    ``--scheduler S``, ``--help``."""
    params: dict[str, str] = {}
    seed: int | None = None
    scheduler: str | None = None
    sweep = False
    args = list(argv)
    while args:
        arg = args.pop(0)
        if arg in HELP_FLAGS:
            return ScriptArguments(help=True)
        if arg == "--sweep":
            sweep = True
            continue
        option = next((o for o in ("--seed", "--scheduler") if arg == o or arg.startswith(o + "=")), None)
        if option is not None:
            raw = arg.partition("=")[2] if "=" in arg else (args.pop(0) if args else "")
            if option == "--scheduler":
                if not raw:
                    raise ScriptArgumentError(f"--scheduler needs a name or an address. {USAGE_LINE}")
                scheduler = raw
                continue
            try:
                seed = int(raw)
            except ValueError:
                raise ScriptArgumentError(f"--seed needs an integer, got {raw!r}. {USAGE_LINE}") from None
            if not 0 <= seed <= MAX_SEED:
                raise ScriptArgumentError(
                    f"--seed must be non-negative and at most {MAX_SEED}, got {seed}. {USAGE_LINE}")
            continue
        name, sep, raw = arg.partition("=")
        if not sep or not name.isidentifier():
            raise ScriptArgumentError(f"malformed argument {arg!r}: expected name=value. {USAGE_LINE}")
        if name in params:
            raise ScriptArgumentError(f"parameter {name!r} given twice. {USAGE_LINE}")
        if not raw:
            raise ScriptArgumentError(f"empty value in {arg!r}: write {name}=\'\' for an empty string. {USAGE_LINE}")
        params[name] = raw
    parse = _choices if sweep else _literal
    return ScriptArguments({name: parse(raw) for name, raw in params.items()}, seed, sweep, scheduler)


def _interactive() -> bool:
    if hasattr(sys, "ps1") or sys.flags.interactive:
        return True
    ipython = sys.modules.get("IPython")
    return bool(ipython is not None and getattr(ipython, "get_ipython", lambda: None)())


def _main_file() -> str | None:
    """The file of the script run as ``__main__``, or ``None`` when script mode cannot apply."""
    if "pytest" in sys.modules or "_pytest" in sys.modules or _interactive():
        return None
    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    if not main_file or not sys.argv or not sys.argv[0]:
        return None
    return os.path.abspath(str(main_file))


def is_script_call(frame: FrameType | None) -> bool:
    """True when ``frame`` (the caller of a result step) is code of the script run as ``__main__``
    (module level or any of its functions) that discards the call's value."""
    main_file = _main_file() if frame is not None else None
    if frame is None or main_file is None or frame.f_globals.get("__name__") != "__main__":
        return False
    if os.path.abspath(frame.f_code.co_filename) != main_file:
        return False
    return _result_discarded(frame)


def _result_discarded(frame: FrameType) -> bool:
    """True when the instruction after the current call pops its value (``f(x)`` as a statement)."""
    instructions = list(dis.get_instructions(frame.f_code))
    for i, ins in enumerate(instructions[:-1]):
        if ins.offset == frame.f_lasti:
            return instructions[i + 1].opname == "POP_TOP"
    return False


def _scheduler(name: str | None, stack: contextlib.ExitStack) -> dict[str, Any]:
    """``dask.compute`` keywords for ``--scheduler``: a name, or a Client connected to an address."""
    if name is None:
        return {}
    if "://" not in name:
        return {"scheduler": name}
    from distributed import Client

    return {"scheduler": stack.enter_context(Client(name))}


def usage(experiment_id: str, declared: Mapping[str, Any], undefined: Any) -> str:
    """``--help`` text: the usage, then the declared parameters with their current values or defaults."""
    script = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "SCRIPT.py"
    width = max([len(name) for name in declared] + [19])
    lines = [USAGE.replace("SCRIPT.py", script), "",
             f"parameters of experiment {experiment_id!r} (each run is a recorded trial):"]
    for name, value in declared.items():
        lines.append(f"  {name:<{width}}  {'required' if value is undefined else f'default: {value!r}'}")
    if not declared:
        lines.append("  (none declared)")
    return "\n".join(lines) + "\n"


class _ArgumentWatch:
    """Remembers whether command-line ``name=value`` arguments were used by a trial, and makes a
    script that ends without running any trial exit non-zero instead of ignoring them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.registered = False
        self.consumed = False
        self.trials = 0

    def start(self) -> None:
        """Watch this process when it is a script given ``name=value`` (or ``--help``) arguments."""
        with self._lock:
            if self.registered or _main_file() is None or not _watched_arguments(sys.argv[1:]):
                return
            self.registered = True
        atexit.register(self._check_at_exit)

    def _check_at_exit(self) -> None:
        if self.consumed or getattr(sys, "last_value", None) is not None:  # used, or the script failed anyway
            return
        arguments = " ".join(_watched_arguments(sys.argv[1:]))
        if self.trials:
            logger.warning("Command-line arguments %s were not used: the trials of this script ran with "
                           "explicit compute() calls, which take no command-line values.", arguments)
            return
        sys.stderr.write(
            f"{os.path.basename(sys.argv[0])}: error: arguments {arguments} were given but the script ended "
            "without running a trial. Call the @ex.result step as a statement, e.g. calculate_score(d), at "
            "module level or inside a function of this script such as main(); s = calculate_score(d) keeps a "
            "Delayed that runs only with s.compute().\n")
        sys.stdout.flush()
        sys.stderr.flush()
        logging.shutdown()
        # An exit handler cannot change the exit status except by ending the process here.
        os._exit(UNUSED_ARGUMENTS_STATUS)


def _watched_arguments(argv: list[str]) -> list[str]:
    return [arg for arg in argv if arg in HELP_FLAGS or arg.partition("=")[0].isidentifier() and "=" in arg]


arguments = _ArgumentWatch()


def run_script(result: TrialResult, experiment_id: str, declared: Mapping[str, Any], undefined: Any) -> None:
    """Run one trial (or a sweep) of ``result`` with the command-line arguments; exit on bad arguments."""
    arguments.consumed = True
    try:
        args = parse_arguments(sys.argv[1:])
        if args.help:
            sys.stdout.write(usage(experiment_id, declared, undefined))
            sys.exit(0)
        with contextlib.ExitStack() as stack:
            dask_kwargs = _scheduler(args.scheduler, stack)
            if args.sweep:
                frame = Sweep(result, expand_trials(None, args.grid)).compute(seed=args.seed, **dask_kwargs)
                logger.info("Sweep results:\n%s", frame.to_string())
                if not frame["Success"].all():
                    sys.exit(1)
                return
            value = result.with_parameters(**args.parameters).compute(seed=args.seed, **dask_kwargs)
    except DaskperimentError as exc:
        logger.debug("script argument error", exc_info=True)
        sys.exit(f"{os.path.basename(sys.argv[0])}: error: {exc}")
    logger.info("Result: %r", value)

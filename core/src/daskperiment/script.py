"""Script mode: ``python my_experiment.py a=1 b=2 --seed 1`` runs one trial.

A trial runs when an ``@ex.result`` step is called as a bare expression
statement (its value discarded, as in ``calculate_score(d)``) at module level of
the script being executed as ``__main__``. ``s = calculate_score(d)`` keeps the
Delayed for explicit ``s.compute()`` calls instead. It never triggers under
pytest, IPython or Jupyter, nor when the module is imported.
"""

from __future__ import annotations

import ast
import dis
import logging
import os
import sys
from types import FrameType
from typing import Any

from .errors import DaskperimentError, ScriptArgumentError
from .trial import TrialResult

logger = logging.getLogger("daskperiment")

#: Set by ``daskperiment reproduce SCRIPT ID``: the script's trial re-runs that recorded trial instead.
ENV_REPRODUCE = "DASKPERIMENT_REPRODUCE"

USAGE = "usage: python SCRIPT.py [name=value ...] [--seed N]"


def parse_arguments(argv: list[str]) -> tuple[dict[str, Any], int | None]:
    """``key=value`` pairs (values as Python literals, else strings) and ``--seed N``."""
    params: dict[str, Any] = {}
    seed: int | None = None
    args = list(argv)
    while args:
        arg = args.pop(0)
        if arg == "--seed" or arg.startswith("--seed="):
            raw = arg.partition("=")[2] if "=" in arg else (args.pop(0) if args else "")
            try:
                seed = int(raw)
            except ValueError:
                raise ScriptArgumentError(f"--seed needs an integer, got {raw!r}. {USAGE}") from None
            if seed < 0:
                raise ScriptArgumentError(f"--seed must be non-negative, got {seed}. {USAGE}")
            continue
        name, sep, raw = arg.partition("=")
        if not sep or not name.isidentifier():
            raise ScriptArgumentError(f"malformed argument {arg!r}: expected name=value. {USAGE}")
        if name in params:
            raise ScriptArgumentError(f"parameter {name!r} given twice. {USAGE}")
        try:
            params[name] = ast.literal_eval(raw)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            params[name] = raw
    return params, seed


def _interactive() -> bool:
    if hasattr(sys, "ps1") or sys.flags.interactive:
        return True
    ipython = sys.modules.get("IPython")
    return bool(ipython is not None and getattr(ipython, "get_ipython", lambda: None)())


def is_script_call(frame: FrameType | None) -> bool:
    """True when ``frame`` (the caller of a result step) is the module-level code of the script
    run as ``__main__``."""
    if frame is None or "pytest" in sys.modules or "_pytest" in sys.modules or _interactive():
        return False
    main = sys.modules.get("__main__")
    main_file = getattr(main, "__file__", None)
    if not main_file or not sys.argv or not sys.argv[0]:
        return False
    if frame.f_code.co_name != "<module>" or frame.f_globals.get("__name__") != "__main__":
        return False
    if os.path.abspath(frame.f_code.co_filename) != os.path.abspath(main_file):
        return False
    return _result_discarded(frame)


def _result_discarded(frame: FrameType) -> bool:
    """True when the instruction after the current call pops its value (``f(x)`` as a statement)."""
    instructions = list(dis.get_instructions(frame.f_code))
    for i, ins in enumerate(instructions[:-1]):
        if ins.offset == frame.f_lasti:
            return instructions[i + 1].opname == "POP_TOP"
    return False


def run_script(result: TrialResult) -> None:
    """Run one trial of ``result`` with the command-line parameters and seed; exit on bad arguments."""
    try:
        params, seed = parse_arguments(sys.argv[1:])
        value = result.with_parameters(**params).compute(seed=seed)
    except DaskperimentError as exc:
        logger.debug("script argument error", exc_info=True)
        sys.exit(f"{os.path.basename(sys.argv[0])}: error: {exc}")
    logger.info("Result: %r", value)

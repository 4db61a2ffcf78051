"""Create or reuse the virtual env the peer benchmarks run in, and run peer scripts in it.

The peers (MLflow, Sacred, mltraq, daskperiment 0.5.0) pin their own pandas/dask/numpy, so
they live in a venv under a cache dir, never in the developer's environment or the repository.
Idempotent: a marker records the hash of the requirements file and the interpreter; when both
match, :func:`ensure` returns at once.

    python benchmarks/peers/venv.py              # create/reuse, print the venv's python
    python benchmarks/peers/venv.py --recreate   # rebuild from scratch

From the orchestrator (importable with the dev environment's python)::

    from peers.venv import run_peer
    result = run_peer("mlflow", "trials", n=200)   # dict in the README's JSON schema
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import os
import pathlib
import shutil
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

log = logging.getLogger("peers.venv")

HERE = pathlib.Path(__file__).resolve().parent
BENCHMARKS = HERE.parent
# venv name -> requirements file under benchmarks/. Split a tool into its own venv here if its
# pins ever conflict with the others'.
VENVS = {"peers": BENCHMARKS / "requirements-peers.txt"}
# tool -> (venv, script); venv None: this interpreter (our own tool runs in the dev environment)
TOOLS: dict[str, tuple[str | None, pathlib.Path]] = {
    "daskperiment": (None, HERE / "daskperiment_bench.py"),
    "mlflow": ("peers", HERE / "mlflow_bench.py"),
    "sacred": ("peers", HERE / "sacred_bench.py"),
    "mltraq": ("peers", HERE / "mltraq_bench.py"),
    "daskperiment050": ("peers", HERE / "daskperiment050_bench.py"),
}
MARKER = ".daskperiment-bench.json"


def cache_dir() -> pathlib.Path:
    """``$DASKPERIMENT_BENCH_CACHE``, else ``$XDG_CACHE_HOME/daskperiment-bench`` (~/.cache)."""
    if os.environ.get("DASKPERIMENT_BENCH_CACHE"):
        return pathlib.Path(os.environ["DASKPERIMENT_BENCH_CACHE"])
    xdg = os.environ.get("XDG_CACHE_HOME") or pathlib.Path.home() / ".cache"
    return pathlib.Path(xdg) / "daskperiment-bench"


def _exe(venv_dir: pathlib.Path) -> pathlib.Path:
    return venv_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _key(requirements: pathlib.Path, python: str) -> str:
    if pathlib.Path(python).resolve() == pathlib.Path(sys.executable).resolve():
        version = sys.version
    else:
        version = subprocess.run([python, "-c", "import sys; print(sys.version)"], check=True,
                                 capture_output=True, text=True).stdout
    return hashlib.sha256(requirements.read_bytes() + version.encode()).hexdigest()


@contextlib.contextmanager
def _locked(path: pathlib.Path) -> Iterator[None]:
    """Serialise concurrent builders of the same venv (POSIX; a no-op elsewhere)."""
    try:
        import fcntl
    except ImportError:
        yield
        return
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure(name: str = "peers", *, python: str = sys.executable, recreate: bool = False) -> pathlib.Path:
    """Python executable of venv ``name``, building it (≈1–2 min) only when missing or stale."""
    requirements = VENVS[name]
    root = cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    venv_dir = root / f"{name}-venv"
    exe = _exe(venv_dir)
    key = _key(requirements, python)
    with _locked(root / f"{name}-venv.lock"):
        marker = venv_dir / MARKER
        if not recreate and exe.exists() and marker.exists():
            with contextlib.suppress(ValueError):
                if json.loads(marker.read_text()).get("key") == key:
                    return exe
        log.warning("building %s from %s (a minute or two)", venv_dir, requirements.name)
        shutil.rmtree(venv_dir, ignore_errors=True)
        subprocess.run([python, "-m", "venv", str(venv_dir)], check=True)
        subprocess.run([str(exe), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                        "-r", str(requirements)], check=True)
        marker.write_text(json.dumps({"key": key, "requirements": str(requirements), "python": python}))
    return exe


def python_for(tool: str, **kwargs: Any) -> pathlib.Path:
    venv = TOOLS[tool][0]
    return pathlib.Path(sys.executable) if venv is None else ensure(venv, **kwargs)


def command(tool: str, workload: str, *args: str) -> list[str]:
    """argv running one workload of one peer (see README.md for the options)."""
    return [str(python_for(tool)), str(TOOLS[tool][1]), "--workload", workload, *args]


def run_json(argv: list[str], *, timeout: float | None = None) -> dict[str, Any]:
    """Run a benchmark script that prints one JSON line; its result, or RuntimeError with stderr's tail."""
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{pathlib.Path(argv[1]).name} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1])


def run_peer(tool: str, workload: str, *, n: int | None = None, reps: int | None = None,
             variant: str | None = None, quick: bool = False, extra: tuple[str, ...] = (),
             timeout: float | None = None) -> dict[str, Any]:
    """Run one workload in a fresh process of the peers venv; return its JSON result."""
    args = [*(["--n", str(n)] if n is not None else []), *(["--reps", str(reps)] if reps is not None else []),
            *(["--variant", variant] if variant else []), *(["--quick"] if quick else []), *extra]
    return run_json(command(tool, workload, *args), timeout=timeout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="create/reuse the peers venv; print its python")
    parser.add_argument("--venv", default="peers", choices=sorted(VENVS))
    parser.add_argument("--python", default=sys.executable, help="interpreter to base the venv on")
    parser.add_argument("--recreate", action="store_true", help="rebuild even if up to date")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    print(ensure(args.venv, python=args.python, recreate=args.recreate))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

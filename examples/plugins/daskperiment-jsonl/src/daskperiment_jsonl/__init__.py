"""daskperiment-jsonl: experiments stored as JSON-lines files, ``backend="jsonl://<directory>"``."""

from daskperiment import hookimpl
from daskperiment.hookspecs import RegisterBackend

from .backend import JsonLinesBackend

__all__ = ["JsonLinesBackend", "register_backends"]


@hookimpl
def register_backends(register: RegisterBackend) -> None:
    register("jsonl", JsonLinesBackend)

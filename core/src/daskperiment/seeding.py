"""Random state for the running step: a numpy Generator derived from the trial seed.

Seeder plugins (``seed_random_state``) reset *global* generators — ``random``,
numpy's legacy ``np.random.*`` functions, torch … — to the trial seed in the
driver and before every step. Global state is shared by every step running in
the same process, so when the threaded scheduler runs steps in parallel their
draws interleave in whatever order the threads happen to run.

:func:`rng` avoids that: each step call gets its own
:class:`numpy.random.Generator`, seeded from the trial seed, the step's name and
the hash of its inputs. Its draws depend on nothing else — not the scheduler, the
worker, the number of threads or the order in which parallel steps run — so a
trial computed on a cluster gives the same numbers as computed locally, and
re-running with the recorded seed reproduces them::

    from daskperiment.seeding import rng

    @ex
    def bootstrap(data, i):
        return data[rng().integers(0, len(data), len(data))].mean()

Two calls of the same step with equal inputs get equal streams (that is what
makes the step pure); pass something distinguishing, like ``i`` above, when
parallel calls must draw differently.
"""

from __future__ import annotations

import contextvars
import hashlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np


class StepCall:
    """The step running in this context: what its generator is derived from."""

    __slots__ = ("_generator", "_hasher", "args", "input_hash", "kwargs", "name", "seed")

    def __init__(self, name: str, seed: int, args: tuple[Any, ...], kwargs: dict[str, Any],
                 hasher: Callable[[Any], str | None], input_hash: str | None = None) -> None:
        self.name = name
        self.seed = seed
        self.args = args
        self.kwargs = kwargs
        self.input_hash = input_hash
        self._hasher = hasher
        self._generator: np.random.Generator | None = None

    def generator(self) -> np.random.Generator:
        if self._generator is None:
            import numpy as np

            if self.input_hash is None:  # impure steps hash their inputs only when asked
                self.input_hash = self._hasher((self.name, self.args, self.kwargs))
            self._generator = np.random.default_rng(seed_sequence(self.seed, self.name, self.input_hash))
        return self._generator


current_step: contextvars.ContextVar[StepCall | None] = contextvars.ContextVar(
    "daskperiment_current_step", default=None)


def seed_sequence(seed: int, step: str, input_hash: str | None) -> np.random.SeedSequence:
    """``SeedSequence`` entropy: the trial seed, then 128 bits of BLAKE2 over step name and input hash.

    ``input_hash`` is ``None`` when the inputs cannot be hashed deterministically;
    the stream then depends on the step name only.
    """
    import numpy as np

    digest = hashlib.blake2b(f"{step}\0{input_hash or ''}".encode(), digest_size=16).digest()
    words = [int.from_bytes(digest[i:i + 4], "little") for i in range(0, 16, 4)]
    return np.random.SeedSequence([seed, *words])


def rng() -> np.random.Generator:
    """The :class:`numpy.random.Generator` of the running step (the same object for the whole call).

    :raises TrialIDNotFoundError: outside a step of a running trial.
    """
    step = current_step.get()
    if step is None:
        from .errors import TrialIDNotFoundError

        raise TrialIDNotFoundError(
            "daskperiment.seeding.rng() only exists during a trial execution: call it inside a step "
            "(a function decorated with @ex, @ex.result or @ex.persist).")
    return step.generator()


__all__ = ["StepCall", "current_step", "rng", "seed_sequence"]

"""Step cache: a 3-step pipeline whose first step takes ~1 s and does not change.

Target (issue "Reproduce, step cache, diff"): the second trial ≥ 10× faster with
``cache=True`` than without. Prints both, next to the floor (the same three functions
called plainly), and asserts nothing.

    python benchmarks/bench_cache.py            # first step 1 s
    python benchmarks/bench_cache.py --quick    # first step 0.1 s
"""

from __future__ import annotations

import argparse
import logging
import pathlib
import tempfile
import time

import numpy as np


def pipeline(root: pathlib.Path, name: str, seconds: float, cache: bool):
    import daskperiment

    ex = daskperiment.Experiment(name, backend=root / name)
    n, lr = ex.parameter("n"), ex.parameter("lr")

    @ex(cache=cache)
    def load(n):
        time.sleep(seconds)  # stands for reading and parsing a large file
        return np.arange(n, dtype=float)

    @ex
    def fit(data, lr):
        return float((data * lr).sum())

    @ex.result
    def score(model):
        return model / 2

    return score(fit(load(n), lr))


def timed(result, **values) -> float:
    t0 = time.perf_counter()
    result.with_parameters(**values).compute(seed=1)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("daskperiment").setLevel(logging.WARNING)
    seconds = 0.1 if args.quick else 1.0
    with tempfile.TemporaryDirectory() as tmp:
        root = pathlib.Path(tmp)
        rows = {}
        for cache in (False, True):
            result = pipeline(root, f"cache_{cache}", seconds, cache)
            first = timed(result, n=1_000_000, lr=0.1)
            second = timed(result, n=1_000_000, lr=0.2)  # only lr changed: load is a cache hit
            rows[cache] = (first, second)
        t0 = time.perf_counter()
        time.sleep(seconds)
        float((np.arange(1_000_000, dtype=float) * 0.2).sum()) / 2
        floor = time.perf_counter() - t0
    print(f"first step {seconds:g} s; floor (plain calls, no tracking): {floor * 1e3:.0f} ms")
    for cache, (first, second) in rows.items():
        print(f"cache={cache!s:<5}: first trial {first * 1e3:7.1f} ms, second trial {second * 1e3:7.1f} ms")
    print(f"second trial with the cache: {rows[False][1] / rows[True][1]:.1f}x faster than without (target >= 10x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

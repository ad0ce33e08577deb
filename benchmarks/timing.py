"""Wall-clock timing with adaptive repeat counts."""

import gc
import math
import statistics
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Budget:
    """How long to time one case: about ``seconds`` of calls, but never fewer
    than ``min_reps`` nor more than ``max_reps``, after ``warmup`` untimed
    calls.  The first timed call sizes the run and counts as a sample."""

    seconds: float
    min_reps: int
    max_reps: int
    warmup: int = 0


def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(fn, budget):
    """Times ``fn`` (already warmed up by the caller unless ``budget.warmup``)
    and returns the samples in milliseconds."""
    for _ in range(budget.warmup):
        fn()
    gc.collect()
    gc.disable()
    try:
        samples = [timed(fn)]
        reps = math.ceil(budget.seconds / max(samples[0], 1e-9))
        reps = max(budget.min_reps, min(budget.max_reps, reps))
        samples += [timed(fn) for _ in range(reps - 1)]
    finally:
        gc.enable()
    return [s * 1e3 for s in samples]


def summarize(samples_ms):
    q1, median, q3 = (
        statistics.quantiles(samples_ms, n=4, method="inclusive")
        if len(samples_ms) > 1
        else (samples_ms[0],) * 3
    )
    return {
        "median_ms": median,
        "q1_ms": q1,
        "q3_ms": q3,
        "min_ms": min(samples_ms),
        "max_ms": max(samples_ms),
        "reps": len(samples_ms),
    }

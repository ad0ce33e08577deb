"""Several Python threads calling rnncore at once: does BLAS oversubscribe?

Each rnncore call releases the GIL, so the threads of a pipeline run their
calls in parallel; each call's GEMMs may in turn use several BLAS threads.
This script runs k Python threads that each call ``rnncore.loss_and_grads``
(or ``rnncore.rnn_forward``) in a loop and prints the total throughput
(calls per second over all threads) in four settings:

- ``default``: rnncore's default: SciPy's BLAS keeps its threads while one
  call runs and is limited to one thread while calls overlap;
- ``auto off``: that limit switched off (``rnncore.set_auto_threads(False)``),
  so every call runs on BLAS's default threads;
- ``serialized``: BLAS's default threads (limit off), but one rnncore call
  at a time (a lock around each call): what a library-side lock would give;
- ``blas1``: BLAS limited to one thread (``rnncore.threads(1)``).

    python benchmarks/concurrency.py                  # all shapes, 1/2/4 threads
    python benchmarks/concurrency.py --op forward --threads 1 2

Needs threadpoolctl. The numbers are wall-clock throughput on a shared
machine: compare columns of one run, not runs of different days.
"""

import argparse
import os
import threading
import time

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

import rnncore

SHAPES = {  # T, B, D, H, C
    "tiny": (25, 1, 65, 100, 65),
    "small": (50, 32, 64, 128, 64),
    "medium": (100, 64, 128, 256, 128),
}


def make_problem(T, B, D, H, C, dtype, seed=0):
    rng = np.random.default_rng(seed)
    bound = 1 / np.sqrt(H)
    shapes = {"W_xh": (H, D), "W_hh": (H, H), "b_h": (H,), "W_hy": (C, H), "b_y": (C,)}
    params = {k: rng.uniform(-bound, bound, s).astype(dtype) for k, s in shapes.items()}
    x = rng.standard_normal((T, B, D)).astype(dtype)
    targets = rng.integers(0, C, (T, B))
    return params, x, targets


def make_call(op, params, x, targets):
    if op == "train":
        return lambda: rnncore.loss_and_grads(params, x, targets)
    return lambda: rnncore.rnn_forward(x, params["W_xh"], params["W_hh"], params["b_h"])


def throughput(call, n_threads, seconds):
    """Calls per second over all threads, each thread looping for `seconds`."""
    counts = [0] * n_threads
    start = threading.Barrier(n_threads + 1)
    stop = threading.Event()

    def work(i):
        start.wait()
        while not stop.is_set():
            call()
            counts[i] += 1

    workers = [threading.Thread(target=work, args=(i,)) for i in range(n_threads)]
    for w in workers:
        w.start()
    start.wait()
    t0 = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for w in workers:
        w.join()
    return sum(counts) / (time.perf_counter() - t0)


SETTINGS = ("default", "auto off", "serialized", "blas1")


def measure(op, shape, dtype, thread_counts, seconds, repeats):
    """[(shape, k, {setting: calls per second})], median of `repeats`."""
    call = make_call(op, *make_problem(*SHAPES[shape], dtype))
    call()  # warm-up
    lock = threading.Lock()

    def serialized():
        with lock:
            call()

    rows = []
    for k in thread_counts:
        # Interleave the settings so that machine noise hits all alike.
        samples = {name: [] for name in SETTINGS}
        for _ in range(repeats):
            samples["default"].append(throughput(call, k, seconds))
            rnncore.set_auto_threads(False)
            try:
                samples["auto off"].append(throughput(call, k, seconds))
                samples["serialized"].append(throughput(serialized, k, seconds))
            finally:
                rnncore.set_auto_threads(True)
            with threadpool_limits(1, user_api="blas"):
                samples["blas1"].append(throughput(call, k, seconds))
        rows.append((shape, k, {n: float(np.median(v)) for n, v in samples.items()}))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--op", choices=["train", "forward"], default="train")
    parser.add_argument(
        "--shapes", nargs="+", choices=list(SHAPES), default=list(SHAPES)
    )
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2, 4])
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    blas = [p for p in threadpool_info() if p["user_api"] == "blas"]
    if hasattr(os, "sched_getaffinity"):
        print(f"cores available: {len(os.sched_getaffinity(0))}")
    for p in blas:
        print(
            f"BLAS pool: {p['prefix']} {p['version']} {p['architecture']}, "
            f"{p['num_threads']} threads ({os.path.basename(p['filepath'])})"
        )
    print(
        f"op={args.op} dtype={args.dtype}; "
        f"median of {args.repeats} x {args.seconds} s\n"
    )
    print(
        "| shape (T, B, D, H, C) | Python threads | default, calls/s "
        "| auto off, calls/s | serialized, calls/s | BLAS limited to 1, calls/s "
        "| default / limited |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for shape in args.shapes:
        for name, k, rate in measure(
            args.op,
            shape,
            np.dtype(args.dtype),
            args.threads,
            args.seconds,
            args.repeats,
        ):
            print(
                f"| {name} {SHAPES[name]} | {k} | {rate['default']:.1f} "
                f"| {rate['auto off']:.1f} | {rate['serialized']:.1f} "
                f"| {rate['blas1']:.1f} "
                f"| {rate['default'] / rate['blas1']:.2f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()

"""Do rnncore calls in two threads run in parallel?

Every rnncore call releases the GIL for its whole computation.  This times
2·n independent calls (forward passes, then training steps) run one after
the other in one thread, and as n calls in each of two threads at once, and
reports the speed-up (2.0 is perfect on two free cores).  BLAS is limited to
one thread (threadpoolctl when installed, and the usual environment
variables, set before NumPy loads), so the parallelism measured is the
threads' own.

    python benchmarks/gil_release.py [--workloads tiny small medium]

Only the Python-level validation holds the GIL, so the smallest problems
(tiny: 0.1 ms a call) gain less than larger ones.  The first row is a
calibration: SHA-256 of a large buffer, which releases the GIL too, shows
how much of a second core the machine really gives at the moment (on a
shared machine, often much less than all of it).  Serial and threaded runs
alternate; the median and the best of the repeats are reported.
"""
import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import hashlib  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

import rnncore  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from workloads import WORKLOADS, make_problem  # noqa: E402

OPERATIONS = {
    "forward": lambda p: rnncore.rnn_forward(
        p["x"], p["params"]["W_xh"], p["params"]["W_hh"], p["params"]["b_h"]),
    "training step": lambda p: rnncore.loss_and_grads(
        p["params"], p["x"], p["targets"]["seq"]),
}


def blas_limit():
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


def calibration_problems():
    """Two buffers whose hashing is the calibration 'operation'."""
    return [os.urandom(2**24), os.urandom(2**24)]


def sha256(buffer):
    hashlib.sha256(buffer).digest()


def serial(op, problems, calls):
    start = time.perf_counter()
    for p in problems:
        for _ in range(calls):
            op(p)
    return time.perf_counter() - start


def threaded(op, problems, calls):
    barrier = threading.Barrier(len(problems) + 1)

    def work(p):
        barrier.wait()
        for _ in range(calls):
            op(p)

    threads = [threading.Thread(target=work, args=(p,)) for p in problems]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    return time.perf_counter() - start


def speedup_row(label, op, problems, calls, repeats):
    op(problems[0])  # warm-up
    one, two = [], []
    for _ in range(repeats):
        one.append(serial(op, problems, calls))
        two.append(threaded(op, problems, calls))
    ratios = [a / b for a, b in zip(one, two, strict=True)]
    print(f"| {label} | {statistics.median(one) * 1e3:.1f} "
          f"| {statistics.median(two) * 1e3:.1f} "
          f"| {statistics.median(ratios):.2f} | {max(ratios):.2f} |", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workloads", nargs="+", default=["tiny", "small", "medium"],
                        choices=sorted(WORKLOADS))
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--seconds", type=float, default=0.3,
                        help="about how long one serial run of a row takes")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)

    if hasattr(os, "sched_getaffinity"):
        cpus = len(os.sched_getaffinity(0))
    else:
        cpus = os.cpu_count()
    print(f"rnncore {rnncore.__version__}, {args.dtype}, {cpus} CPUs available, "
          f"BLAS limited to 1 thread; {args.repeats} repeats of 2n calls in one "
          f"thread and of n calls in each of two threads")
    print()
    print("| operation | one thread (ms) | two threads (ms) | speed-up, median "
          "| best |")
    print("|---|---:|---:|---:|---:|")

    def calls_for(op, problem):
        start = time.perf_counter()
        op(problem)
        once = max(time.perf_counter() - start, 1e-6)
        return max(1, round(args.seconds / (2 * once)))

    with blas_limit():
        buffers = calibration_problems()
        speedup_row("calibration: SHA-256 of 16 MiB", sha256, buffers,
                    calls_for(sha256, buffers[0]), args.repeats)
        for name in args.workloads:
            problem = make_problem(name, args.dtype)
            # two independent problems with their own arrays
            twin = {"params": {k: v.copy() for k, v in problem["params"].items()},
                    "x": problem["x"].copy(),
                    "targets": {k: v.copy() for k, v in problem["targets"].items()}}
            shape = "×".join(map(str, WORKLOADS[name]))
            for label, op in OPERATIONS.items():
                speedup_row(f"{label}, {name} ({shape})", op, [problem, twin],
                            calls_for(op, problem), args.repeats)


if __name__ == "__main__":
    main()

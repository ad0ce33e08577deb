"""Fuzz rnncore's public functions with random valid and invalid calls.

    python tools/fuzz.py --calls 10000 [--seed 0] [--start 0]

Valid calls must agree with the NumPy reference (tests/reference.py) and
leave their inputs unchanged; invalid ones must raise ValueError or
TypeError naming the broken argument.  The calls are drawn by tests/calls.py
(the generator of the property tests), call i from the seed (seed, i), so
``--start i --calls 1`` replays call i alone.

The calls run in a child process, so that a crash (a segfault, an abort)
is reported with the call that caused it instead of taking this process
down; the child's address space is limited (--memory-limit) so that a
regression that copies a huge zero-stride input fails fast instead of
filling the machine.  Exit status: 0 when every call passed, 1 otherwise.

It tests the rnncore that ``import rnncore`` finds: the installed package,
or an in-place build with PYTHONPATH=. from the source tree.
"""
import argparse
import faulthandler
import json
import os
import signal
import subprocess
import sys
import time
import traceback
from collections import Counter

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.join(os.path.dirname(HERE), "tests")
MAX_REPORTED = 20  # failures printed in full


def run_worker(args):
    """Make the calls; print one line per call before making it (so the
    parent knows the culprit of a crash) and a JSON summary at the end."""
    faulthandler.enable()
    # (AddressSanitizer reserves terabytes of address space for its shadow
    # memory: no limit under it)
    if args.memory_limit and "asan" not in os.environ.get("LD_PRELOAD", ""):
        import resource
        limit = int(args.memory_limit * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    sys.path.insert(0, TESTS)
    import numpy as np

    import calls
    import rnncore

    counts = Counter()
    failures = []
    for i in range(args.start, args.start + args.calls):
        choose = calls.RandomChooser(np.random.default_rng([args.seed, i]))
        fn = choose.choice(calls.FUNCTIONS)
        valid = choose.integer(0, 99) < args.valid_percent
        try:
            if valid:
                call = calls.draw_valid(fn, choose)
            else:
                call, names = calls.draw_invalid(fn, choose)
            print(f"CALL {i} {call.describe()}", flush=True)
            if valid:
                calls.run_valid(call)
            else:
                calls.run_invalid(call, names)
        except Exception as exc:
            detail = "".join(traceback.format_exception_only(exc)).strip()
            failures.append({"call": i, "fn": fn, "valid": valid,
                             "error": detail[:2000]})
        counts["valid" if valid else "invalid"] += 1
        counts[fn] += 1
    summary = {"rnncore": rnncore.__file__, "version": rnncore.__version__,
               "counts": dict(counts), "failures": failures}
    print("SUMMARY " + json.dumps(summary), flush=True)


def run_parent(args):
    cmd = [sys.executable, os.path.abspath(__file__), "--worker",
           "--calls", str(args.calls), "--seed", str(args.seed),
           "--start", str(args.start), "--valid-percent", str(args.valid_percent),
           "--memory-limit", str(args.memory_limit)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    last_call, summary = None, None
    for line in proc.stdout:
        if line.startswith("CALL "):
            last_call = line[5:].rstrip("\n")
        elif line.startswith("SUMMARY "):
            summary = json.loads(line[8:])
        else:
            sys.stdout.write(line)
    status = proc.wait()
    elapsed = time.perf_counter() - t0

    if status != 0 or summary is None:
        how = (f"killed by {signal.Signals(-status).name}" if status < 0
               else f"exit status {status}")
        print(f"fuzz: the worker died ({how}) during call {last_call}")
        print(f"replay: python tools/fuzz.py --seed {args.seed} "
              f"--start {last_call.split()[0] if last_call else args.start} "
              f"--calls 1")
        return 1

    counts, failures = summary["counts"], summary["failures"]
    print(f"rnncore {summary['version']} from {summary['rnncore']}")
    print(f"seed {args.seed}, calls {args.start}..{args.start + args.calls - 1}")
    for fn in sorted(k for k in counts if k not in ("valid", "invalid")):
        print(f"  {fn:24s} {counts[fn]:6d}")
    for f in failures[:MAX_REPORTED]:
        kind = "valid" if f["valid"] else "invalid"
        print(f"FAILED call {f['call']} ({kind} {f['fn']}): {f['error']}")
    if len(failures) > MAX_REPORTED:
        print(f"... and {len(failures) - MAX_REPORTED} more failures")
    print(f"calls: {args.calls}  valid: {counts.get('valid', 0)}  "
          f"invalid: {counts.get('invalid', 0)}  failures: {len(failures)}  "
          f"time: {elapsed:.1f} s")
    return 1 if failures else 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--start", type=int, default=0,
                        help="index of the first call (to replay one)")
    parser.add_argument("--valid-percent", type=int, default=50,
                        help="share of valid calls, in percent")
    parser.add_argument("--memory-limit", type=float, default=8.0,
                        help="the worker's address-space limit in GiB "
                             "(0: none)")
    parser.add_argument("--worker", action="store_true",
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        run_worker(args)
        return 0
    return run_parent(args)


if __name__ == "__main__":
    sys.exit(main())

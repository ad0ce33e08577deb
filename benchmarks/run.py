"""Benchmark rnncore against NumPy, PyTorch and JAX.

    python benchmarks/run.py            # full suite (< 10 minutes on 2 cores)
    python benchmarks/run.py --quick    # small workload, float32, 1 thread

Each (peer, thread count) runs in its own subprocess (worker.py) with the
thread count fixed before any numerical library is imported; the peers and
thread counts are interleaved case by case, so that all of a case's timings
are close in time.
Results go to benchmarks/results/ (results.md, results.json, speedup.png);
see README.md in this folder for what is measured and how to read the tables.
"""

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import select
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import report  # noqa: E402  (stdlib-only at import time)
import timing  # noqa: E402
import worker  # noqa: E402
from peers import PEERS, REFERENCE, is_installed  # noqa: E402
from workloads import DTYPES, MODES, OPERATIONS, WORKLOADS  # noqa: E402

FLOAT64_WORKLOADS = (
    "tiny",
    "small",
    "medium",
)  # float64 on "large" would double the run time
# max_reps leaves the fast cases their whole 0.5 s too: capped at 300 calls,
# a tiny case had 3 rounds of about 10 ms each, and one slow spell of the
# shared machine covering them made 1 thread look 1.4x slower than 2.
FULL_BUDGET = {"seconds": 0.5, "min_reps": 3, "max_reps": 5000}
QUICK_BUDGET = {"seconds": 0.2, "min_reps": 5, "max_reps": 100}
# per GEMM routine and dtype, in each of the two measurements of a thread
# count (before and after its cases)
PEAK_SECONDS = {"full": 0.3, "quick": 0.1}
MEMORY_PEERS = ("rnncore", "numpy")  # whose allocations tracemalloc can see
VERSIONED = (
    "rnncore",
    "numpy",
    "scipy",
    "torch",
    "jax",
    "jaxlib",
    "threadpoolctl",
    "matplotlib",
)
WORKER_TIMEOUT_S = 900
# Pause before and after timing a worker with more than one thread, so that
# the previous process's idle BLAS / OpenMP threads (which spin for a while
# after their last task) have gone to sleep before the next one is timed.
SETTLE_S = 0.2
# Rounds of timing per case (see run_case).
ROUNDS = 3
# A round after the first begins with an untimed call when the rounds
# before it timed fewer calls than this each (the large workload's 0.3-3 s
# calls: one per round).  Otherwise its one timed call is the first since
# the other peers ran, whose first calls on this machine were up to 30%
# slower than the next (memory freed by them is faulted in again), while
# a round of many calls has its median among the later ones.
WARM_ROUND_MAX_CALLS = 3


def env_item(text):
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, value


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small workload, float32, 1 thread, training 'seq' and forward "
        "'seq' only; rnncore and NumPy unless --peers says otherwise",
    )
    parser.add_argument(
        "--peers", nargs="+", choices=PEERS, help="peers to run (rnncore always)"
    )
    parser.add_argument("--workloads", nargs="+", choices=list(WORKLOADS))
    parser.add_argument("--threads", nargs="+", type=int)
    parser.add_argument(
        "--env",
        nargs="+",
        type=env_item,
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for every worker, e.g. OPENBLAS_CORETYPE=SkylakeX",
    )
    parser.add_argument(
        "--out",
        help="output folder (default: benchmarks/results for the "
        "full suite; --quick writes files only when given)",
    )
    return parser.parse_args(argv)


def plan(args):
    """The peers, thread counts, cases and timing budget of this run."""
    if args.quick:
        peers = args.peers or ["rnncore", "numpy"]
        threads = args.threads or [1]
        workloads = args.workloads or ["small"]
        cases = [(w, "float32", op, "seq") for w in workloads for op in OPERATIONS]
        budget = QUICK_BUDGET
    else:
        peers = args.peers or list(PEERS)
        threads = args.threads or [1, 2]
        workloads = args.workloads or list(WORKLOADS)
        cases = [
            (w, dtype, op, mode)
            for dtype in DTYPES
            for w in workloads
            if dtype == "float32" or w in FLOAT64_WORKLOADS
            for op in OPERATIONS
            for mode in MODES
        ]
        budget = FULL_BUDGET
    peers = [REFERENCE] + [p for p in peers if p != REFERENCE]
    extra_env = dict(args.env)
    return {
        "peers": peers,
        "threads": threads,
        "cases": cases,
        "budget": budget,
        "warm_round_max_calls": WARM_ROUND_MAX_CALLS,
        "quick": args.quick,
        "env": extra_env,
    }


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_gib():
    try:
        with open("/proc/meminfo") as f:
            kib = int(
                next(line for line in f if line.startswith("MemTotal")).split()[1]
            )
        return round(kib / 2**20, 1)
    except (OSError, StopIteration, ValueError):
        return None


def versions():
    found = {}
    for name in VERSIONED:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def machine_info():
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime(
            "%Y-%m-%d %H:%M UTC"
        ),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "memory_gib": memory_gib(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": versions(),
        "load_average_start": os.getloadavg(),
    }


class Worker:
    """A worker.py subprocess for one peer (or none: GEMM peak only) at one
    thread count, answering one JSON request per line."""

    def __init__(self, threads, peer, extra_env):
        env = worker.thread_environment(threads)
        env.update(extra_env)
        cmd = [sys.executable, os.path.join(HERE, "worker.py"), str(threads)]
        self.proc = subprocess.Popen(
            cmd + ([peer] if peer else []),
            env=env,
            text=True,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self.hello = self._reply()

    def _reply(self):
        ready, _, _ = select.select([self.proc.stdout], [], [], WORKER_TIMEOUT_S)
        line = self.proc.stdout.readline() if ready else ""
        if not line:
            self.close()
            return {
                "ok": False,
                "error": "no answer (timed out)"
                if not ready
                else f"worker exited with status {self.proc.returncode}",
            }
        return json.loads(line)

    def request(self, **message):
        if self.proc.poll() is not None:
            return {"error": f"worker exited with status {self.proc.returncode}"}
        self.proc.stdin.write(json.dumps(message) + "\n")
        self.proc.stdin.flush()
        reply = self._reply()
        return {"error": reply["error"]} if reply.get("ok") is False else reply

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def measure_peak(the_plan, threads):
    peak_worker = Worker(threads, None, the_plan["env"])
    try:
        return peak_worker.request(
            cmd="peak",
            dtypes=sorted({c[1] for c in the_plan["cases"]}),
            frameworks=not the_plan["quick"],
            seconds=PEAK_SECONDS["quick" if the_plan["quick"] else "full"],
        )
    finally:
        peak_worker.close()


def noted_peak(the_plan, threads, when, results):
    """measure_peak, or None with a note in results when it failed."""
    print(f"== {threads} thread(s): GEMM peak ({when})", file=sys.stderr, flush=True)
    got = measure_peak(the_plan, threads)
    if "error" in got:
        results["notes"].append(
            f"GEMM peak at {threads} thread(s) ({when}) failed: {got['error']}"
        )
        return None
    return got


def best_peak(measurements):
    """Per dtype and library, the best of several peak measurements; the
    machine's rate drifts during a run (other tenants, clocks), so one
    measurement at the start can sit below what the cases then reach."""
    best = {}
    for m in measurements:
        for dtype, rates in m.items():
            kept = best.setdefault(dtype, {})
            for lib, rate in rates.items():
                kept[lib] = max(rate, kept.get(lib, 0.0))
    return best


def start_peers(the_plan, results):
    """{(threads, peer): Worker} for the installed peers that started, at
    every thread count; notes the others."""
    workers = {}
    for threads in the_plan["threads"]:
        for peer in the_plan["peers"]:
            if not is_installed(peer):
                note = f"{peer}: not installed, skipped"
                if note not in results["notes"]:
                    results["notes"].append(note)
                continue
            w = Worker(threads, peer, the_plan["env"])
            run = {"peer": peer, "threads": threads, "cases": []}
            if w.hello.get("ok"):
                run.update({k: v for k, v in w.hello.items() if k != "ok"})
                workers[threads, peer] = (w, run)
            else:
                error = w.hello.get("error")
                results["notes"].append(
                    f"{peer} at {threads} thread(s) failed to start: {error}"
                )
                run["error"] = error
            results["runs"].append(run)
    return workers


def run_case(the_plan, case, workers):
    """One case on every (thread count, peer): a cross-check and a first
    round of timing, then ROUNDS - 1 more rounds, all of them in turn in
    every round, each round a ROUNDS-th of the budget (and one untimed call
    first where rounds time few calls: WARM_ROUND_MAX_CALLS).  A slow spell of a
    shared machine then falls on several peers' and thread counts' samples
    instead of all of one's, so that 1 and 2 threads compare as fairly as
    two peers do."""
    budget = the_plan["budget"]
    share = dict(budget, seconds=budget["seconds"] / ROUNDS,
                 min_reps=max(1, -(-budget["min_reps"] // ROUNDS)))
    records = {}
    previous_threads = 1
    for rnd in range(ROUNDS):
        for key, (w, _) in workers.items():
            threads, peer = key
            if rnd and "error" in records[key]:
                continue
            if max(threads, previous_threads) > 1:
                time.sleep(SETTLE_S)
            previous_threads = threads
            if rnd == 0:
                record = w.request(
                    cmd="case",
                    case=case,
                    budget=share,
                    memory=peer in MEMORY_PEERS and threads == the_plan["threads"][0],
                )
                if set(record) == {"error"}:  # the worker itself failed
                    record = dict(zip(worker.CASE_FIELDS, case, strict=True), **record)
                records[key] = record
            else:
                calls = len(records[key].get("samples_ms", ())) / rnd
                warm = calls < the_plan["warm_round_max_calls"]
                again = dict(share, warmup=1) if warm else share
                reply = w.request(cmd="again", budget=again)
                if "error" in reply:
                    records[key]["error"] = reply["error"]
                else:
                    records[key]["samples_ms"] += reply["samples_ms"]
    for (threads, peer), (_, run) in workers.items():
        record = records[threads, peer]
        samples = record.pop("samples_ms", None)
        if samples and "error" not in record:
            record["timing"] = dict(timing.summarize(samples), rounds=ROUNDS)
        print(worker.describe_case(peer, threads, record), file=sys.stderr, flush=True)
        run["cases"].append(record)


def peaks_at_every_count(the_plan, when, results, measured):
    """noted_peak at each thread count, appended to measured[threads]."""
    for threads in the_plan["threads"]:
        got = noted_peak(the_plan, threads, when, results)
        if got is not None:
            measured.setdefault(threads, []).append(got)


def run_all(the_plan):
    """The GEMM peak at every thread count, every case on every peer at
    every thread count (interleaved case by case, each (peer, thread count)
    in its own process), then the GEMM peaks again; the best of the two
    counts."""
    results = {
        "meta": machine_info(),
        "plan": the_plan,
        "peaks": {},
        "peak_measurements": {},
        "runs": [],
        "notes": [],
    }
    started = time.perf_counter()
    measured = {}
    peaks_at_every_count(the_plan, "before the cases", results, measured)
    print("== peers", file=sys.stderr, flush=True)
    workers = start_peers(the_plan, results)
    try:
        for case in the_plan["cases"]:
            run_case(the_plan, case, workers)
    finally:
        for w, _ in workers.values():
            w.close()
    peaks_at_every_count(the_plan, "after the cases", results, measured)
    for threads, peaks in measured.items():
        results["peaks"][str(threads)] = best_peak(peaks)
        results["peak_measurements"][str(threads)] = peaks
    results["meta"]["load_average_end"] = os.getloadavg()
    results["meta"]["elapsed_s"] = round(time.perf_counter() - started, 1)
    return results


def main(argv=None):
    args = parse_args(argv)
    the_plan = plan(args)
    results = run_all(the_plan)
    out = args.out or (None if args.quick else os.path.join(HERE, "results"))
    if out:
        text, written = report.write_all(results, out, with_chart=not args.quick)
        for path in written:
            print(f"wrote {path}", file=sys.stderr)
    else:
        text = report.markdown(results)
    print(text)
    problems = report.problems(results)
    for line in problems:
        print(f"!! {line}", file=sys.stderr)
    print(f"finished in {results['meta']['elapsed_s']} s", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

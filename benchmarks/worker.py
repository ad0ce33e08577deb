"""One benchmark subprocess: one peer (or the GEMM peak) at one thread count.

Started by run.py as ``python worker.py THREADS [PEER]``, it answers
requests, one JSON object per line on stdin, with one JSON line each on its
stdout (the libraries' own output is sent to stderr):

- ``{"cmd": "peak", "dtypes": [...], "frameworks": bool, "seconds": s}``
  measures the GEMM peak (gemm_peak.py);
- ``{"cmd": "case", "case": [workload, dtype, op, mode], "budget": {...},
  "memory": bool}`` cross-checks and times one case of PEER;
- ``{"cmd": "again", "budget": {...}}`` times the last case once more (a
  further round: run.py alternates the peers in rounds, so that a slow
  spell of a shared machine does not fall on one peer only).

The process stays alive between requests, so run.py can interleave the
peers case by case while each keeps its own process and thread pools.  The
thread count is fixed before NumPy, SciPy, PyTorch or JAX is imported:
run.py puts it in the environment (``thread_environment``), and the worker
restricts itself to that many CPUs and applies threadpoolctl (and the
peer's own call, e.g. ``torch.set_num_threads``) once the libraries are
loaded.  That is why this module imports only the standard library at the
top.
"""

import json
import os
import sys
import traceback

THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)
CASE_FIELDS = ("workload", "dtype", "op", "mode")


def thread_environment(threads, base=None):
    """A copy of ``base`` (default os.environ) fixing every library's thread
    count to ``threads``, including XLA's."""
    env = dict(os.environ if base is None else base)
    for name in THREAD_VARIABLES:
        env[name] = str(threads)
    multi = "true" if threads > 1 else "false"
    xla = f"--xla_cpu_multi_thread_eigen={multi} intra_op_parallelism_threads={threads}"
    env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} {xla}".strip()
    return env


def pin_to_cpus(threads):
    """Restricts this process to ``threads`` CPUs; returns them."""
    cpus = sorted(os.sched_getaffinity(0))[:threads]
    os.sched_setaffinity(0, cpus)
    return cpus


def log(message):
    print(message, file=sys.stderr, flush=True)


def traced_peak_bytes(fn):
    """Peak bytes allocated (as tracemalloc sees them: NumPy registers its
    array buffers) during one call of ``fn``, above what was live before.

    The call runs on a new thread, so that scratch space a library keeps
    per thread from one call to the next (rnncore's functions do) is
    allocated during the call and counted."""
    import threading
    import tracemalloc

    result = {}

    def traced():
        tracemalloc.start()
        try:
            before, _ = tracemalloc.get_traced_memory()
            fn()
            _, peak = tracemalloc.get_traced_memory()
            result["bytes"] = peak - before
        except BaseException as exc:  # raised again on the caller's thread
            result["error"] = exc
        finally:
            tracemalloc.stop()

    thread = threading.Thread(target=traced)
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result["bytes"]


def describe_case(peer_name, threads, record):
    text = f"  {peer_name:8s} {threads}t " + " ".join(
        f"{record[k]:{w}s}" for k, w in zip(CASE_FIELDS, (6, 7, 7, 4), strict=True)
    )
    if "error" in record:
        return f"{text}  FAILED: {record['error']}"
    t = record["timing"]
    text += f" {t['median_ms']:10.3f} ms (n={t['reps']})"
    if "check" in record:
        c = record["check"]
        text += f"  check {c['worst']:.1e} {'ok' if c['ok'] else 'MISMATCH'}"
    return text


class PeerRunner:
    """One peer at one thread count; builds each problem once and keeps only
    the current one alive."""

    def __init__(self, name, threads):
        from threadpoolctl import threadpool_info, threadpool_limits

        from peers import REFERENCE, load

        self.name, self.threads = name, threads
        self.module = load(name)
        self.reference_module = load(REFERENCE)
        self.is_reference = name == REFERENCE
        self._limits = threadpool_limits(threads)  # kept for the process's life
        self._threadpool_limits = threadpool_limits
        self.module.limit_threads(threads)
        self.info = {
            "describe": self.module.describe()
            if hasattr(self.module, "describe")
            else None,
            "threadpools": [
                {
                    k: p.get(k)
                    for k in (
                        "internal_api",
                        "prefix",
                        "version",
                        "num_threads",
                        "architecture",
                    )
                }
                for p in threadpool_info()
            ],
        }
        self._key, self._peer, self._reference = None, None, None

    def _peers_for(self, workload, dtype):
        import workloads

        if self._key != (workload, dtype):
            self._peer = self._reference = None  # free the previous problem first
            problem = workloads.make_problem(workload, dtype)
            self._peer = self.module.Peer(problem)
            self._reference = (
                None if self.is_reference else self.reference_module.Peer(problem)
            )
            self._key = (workload, dtype)
        return self._peer, self._reference

    def run_case(self, case, budget, memory):
        """Cross-check, then time one case; returns its record."""
        import crosscheck
        import timing

        workload, dtype, op, mode = case
        record = dict(zip(CASE_FIELDS, case, strict=True))
        try:
            peer, reference = self._peers_for(workload, dtype)
            if reference is not None:
                # one thread: the reference's BLAS threads must not be left
                # spinning while the peer is timed
                with self._threadpool_limits(1):
                    ref = reference.to_numpy(op, getattr(reference, op)(mode)())
            fn = getattr(peer, op)(mode)
            out = peer.to_numpy(
                op, fn()
            )  # first call: also compiles (JAX) and warms up
            if reference is not None:
                record["check"] = crosscheck.compare(out, ref, dtype)
                del ref
            del out
            record["samples_ms"] = timing.measure(fn, timing.Budget(**budget))
            self._last = fn
            if memory and op == "train":
                record["traced_peak_bytes"] = traced_peak_bytes(fn)
        except Exception as exc:  # one failing case must not end the run
            traceback.print_exc()
            record["error"] = f"{type(exc).__name__}: {exc}"
        if "error" in record:  # run.py reports the others once timed
            log(describe_case(self.name, self.threads, record))
        return record


    def run_again(self, budget):
        """Time the last case that ran once more; its samples."""
        import timing

        if getattr(self, "_last", None) is None:
            return {"error": "no case to time again"}
        try:
            return {"samples_ms": timing.measure(self._last, timing.Budget(**budget))}
        except Exception as exc:
            traceback.print_exc()
            return {"error": f"{type(exc).__name__}: {exc}"}


def measure_peak(threads, request):
    from threadpoolctl import threadpool_limits

    import gemm_peak

    with threadpool_limits(threads):
        return gemm_peak.measure(
            threads,
            request["dtypes"],
            request["frameworks"],
            seconds=request["seconds"],
        )


def serve(threads, peer_name):
    """Answers requests until stdin closes."""
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "w")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())  # stray prints go to stderr
    cpus = pin_to_cpus(threads)
    runner = None
    if peer_name:
        try:
            runner = PeerRunner(peer_name, threads)
            hello = {"ok": True, "cpus": cpus, **runner.info}
        except Exception as exc:
            traceback.print_exc()
            hello = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
    else:
        hello = {"ok": True, "cpus": cpus}
    print(json.dumps(hello), file=replies, flush=True)
    if not hello["ok"]:
        return
    for line in sys.stdin:
        request = json.loads(line)
        if request["cmd"] == "peak":
            reply = measure_peak(threads, request)
        elif request["cmd"] == "again":
            reply = runner.run_again(request["budget"])
        else:
            reply = runner.run_case(
                request["case"], request["budget"], request["memory"]
            )
        print(json.dumps(reply), file=replies, flush=True)


if __name__ == "__main__":
    serve(int(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else None)

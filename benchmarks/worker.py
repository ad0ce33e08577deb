"""One benchmark subprocess: one peer (or the GEMM peak) at one thread count.

Run by run.py as ``python worker.py SPEC.json OUT.json``.  The thread count
is fixed before NumPy, SciPy, PyTorch or JAX is imported: run.py puts it in
the environment (``thread_environment``), and the worker restricts itself
to that many CPUs and applies threadpoolctl (and the peer's own call, e.g.
``torch.set_num_threads``) once the libraries are loaded.  That is why this
module imports only the standard library at the top.

Spec: ``{"task": "peak", "threads": n, "dtypes": [...], "frameworks": bool,
"seconds": s}`` or ``{"task": "peer", "peer":
name, "threads": n, "cases": [[workload, dtype, op, mode], ...],
"budget": {...}, "memory": bool}``.
"""
import json
import os
import sys
import traceback

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


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
    allowed = sorted(os.sched_getaffinity(0))
    cpus = allowed[:threads]
    os.sched_setaffinity(0, cpus)
    return cpus


def log(message):
    print(message, file=sys.stderr, flush=True)


def run_peak(spec):
    import gemm_peak
    from threadpoolctl import threadpool_limits
    with threadpool_limits(spec["threads"]):
        return {"gemm": gemm_peak.measure(spec["threads"], spec["dtypes"],
                                          spec["frameworks"], seconds=spec["seconds"])}


def traced_peak_bytes(fn):
    """Peak bytes allocated (as tracemalloc sees them: NumPy registers its
    array buffers) during one call of ``fn``, above what was live before."""
    import tracemalloc
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before, _ = tracemalloc.get_traced_memory()
        fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak - before


def run_case(peer, reference, case, budget, memory):
    """Cross-check, then time one case; returns its record."""
    import crosscheck
    import timing
    workload, dtype, op, mode = case
    record = {"workload": workload, "dtype": dtype, "op": op, "mode": mode}
    fn = getattr(peer, op)(mode)
    out = peer.to_numpy(op, fn())  # first call: also compiles (JAX) and warms up
    if reference is not peer:
        ref = reference.to_numpy(op, getattr(reference, op)(mode)())
        record["check"] = crosscheck.compare(out, ref, dtype)
        del ref
    del out
    record["timing"] = timing.measure(fn, timing.Budget(**budget))
    if memory and op == "train":
        record["traced_peak_bytes"] = traced_peak_bytes(fn)
    return record


def describe_case(peer_name, threads, record):
    workload, dtype, op, mode = (record[k] for k in ("workload", "dtype", "op", "mode"))
    text = f"  {peer_name:8s} {threads}t {workload:6s} {dtype} {op:7s} {mode:4s}"
    if "error" in record:
        return f"{text}  FAILED: {record['error']}"
    t = record["timing"]
    text += f" {t['median_ms']:10.3f} ms (n={t['reps']})"
    if "check" in record:
        c = record["check"]
        text += f"  check {c['worst']:.1e} {'ok' if c['ok'] else 'MISMATCH'}"
    return text


def run_peer(spec):
    from peers import REFERENCE, load
    import workloads
    from threadpoolctl import threadpool_info, threadpool_limits

    name, threads = spec["peer"], spec["threads"]
    module = load(name)
    reference_module = load(REFERENCE)
    limiter = threadpool_limits(threads)  # noqa: F841  (kept for the whole run)
    module.limit_threads(threads)
    result = {
        "describe": module.describe() if hasattr(module, "describe") else None,
        "threadpools": [{k: p.get(k) for k in ("internal_api", "prefix", "version",
                                                "num_threads", "architecture")}
                        for p in threadpool_info()],
        "cases": [],
    }
    problems = {}
    for case in spec["cases"]:
        workload, dtype = case[0], case[1]
        if (workload, dtype) not in problems:
            problems.clear()  # one problem alive at a time
            problem = workloads.make_problem(workload, dtype)
            peer = module.Peer(problem)
            reference = peer if name == REFERENCE else reference_module.Peer(problem)
            problems[(workload, dtype)] = (peer, reference)
        peer, reference = problems[(workload, dtype)]
        try:
            record = run_case(peer, reference, case, spec["budget"], spec.get("memory", False))
        except Exception as exc:  # one failing case must not end the run
            record = dict(zip(("workload", "dtype", "op", "mode"), case),
                          error=f"{type(exc).__name__}: {exc}")
            traceback.print_exc()
        log(describe_case(name, threads, record))
        result["cases"].append(record)
    return result


def main(spec_path, out_path):
    with open(spec_path) as f:
        spec = json.load(f)
    cpus = pin_to_cpus(spec["threads"])
    result = run_peak(spec) if spec["task"] == "peak" else run_peer(spec)
    result.update(task=spec["task"], peer=spec.get("peer"), threads=spec["threads"],
                  cpus=cpus)
    with open(out_path, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main(*sys.argv[1:3])

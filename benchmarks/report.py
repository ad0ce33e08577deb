"""Turns the raw results of run.py into results.md, results.json and a chart.

Imports only the standard library at the top (matplotlib lazily), so the
orchestrating process never loads a numerical library.
"""

import json
import os
import sys

from peers import PEERS, REFERENCE
from workloads import (
    OPERATION_TITLES,
    WORKLOADS,
    all_logits_training_bytes,
    flops,
    minimum_training_bytes,
    parameter_bytes,
    shape_label,
)

MIB = 2**20


# ---------------------------------------------------------------- indexing


def index_cases(results):
    """{(peer, threads, workload, dtype, op, mode): case record}"""
    table = {}
    for run in results["runs"]:
        for case in run.get("cases", []):
            key = (
                run["peer"],
                run["threads"],
                case["workload"],
                case["dtype"],
                case["op"],
                case["mode"],
            )
            table[key] = case
    return table


def peers_run(results):
    ran = {run["peer"] for run in results["runs"] if "error" not in run}
    return [p for p in PEERS if p in ran]


def table_keys(results):
    """The (op, mode, dtype, threads) combinations present, in report order."""
    cases = [tuple(c) for c in results["plan"]["cases"]]
    keys = []
    for op_mode in OPERATION_TITLES:
        for dtype in ("float32", "float64"):
            for threads in results["plan"]["threads"]:
                if any((c[2], c[3]) == op_mode and c[1] == dtype for c in cases):
                    keys.append((*op_mode, dtype, threads))
    return keys


def workloads_for(results, op, mode, dtype):
    present = {
        c[0] for c in results["plan"]["cases"] if tuple(c[1:]) == (dtype, op, mode)
    }
    return [w for w in WORKLOADS if w in present]


def median(case):
    if case is None or "timing" not in case:
        return None
    return case["timing"]["median_ms"]


def peak_gflops(results, threads, dtype, library="peak"):
    """The machine's GEMM peak ("peak") or one library's, in GFLOP/s."""
    try:
        return results["peaks"][str(threads)][dtype][library]
    except KeyError:
        return None


# ---------------------------------------------------------------- formatting


def fmt_ms(value):
    if value is None:
        return "–"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    if value >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def fmt_time_cell(case):
    """Median, with half the interquartile range relative to the median."""
    if case is None:
        return "–"
    if "error" in case:
        return "failed"
    t = case["timing"]
    spread = 50.0 * (t["q3_ms"] - t["q1_ms"]) / t["median_ms"]
    return f"{fmt_ms(t['median_ms'])} ±{spread:.0f}%"


def fmt_ratio(peer_ms, own_ms):
    if peer_ms is None or own_ms is None:
        return "–"
    ratio = round(peer_ms / own_ms, 2)
    text = f"{ratio:.2f}×"
    return f"**{text}**" if ratio < 1 else text  # bold: rnncore slower


def percent(part, whole):
    return f"{100 * part / whole:.0f}%" if part and whole else "–"


def md_table(header, rows, left=1):
    """A markdown table; the first ``left`` columns are left-aligned, the
    others (numbers) right-aligned."""
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" if i < left else "---:" for i in range(len(header))) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


# ---------------------------------------------------------------- sections


def header_section(results):
    meta = results["meta"]
    v = meta["versions"]
    lines = [
        "# rnncore benchmark results",
        "",
        f"- Date: {meta['date']}; run took {meta.get('elapsed_s', '?')} s"
        + (" (`--quick`)" if results["plan"]["quick"] else ""),
        f"- Machine: {meta['cpu']}, {meta['cores']} cores "
        f"({meta['usable_cores']} usable), "
        f"{meta['memory_gib']} GiB; {meta['platform']}; Python {meta['python']}",
        "- Load average (1 min) at start / end: "
        f"{meta['load_average_start'][0]:.2f} / "
        f"{meta.get('load_average_end', [float('nan')])[0]:.2f}",
        "- Versions: " + ", ".join(f"{k} {v[k]}" for k in v if v[k] is not None),
    ]
    for run in results["runs"]:
        if run.get("describe") and run["threads"] == results["plan"]["threads"][0]:
            lines.append(f"- {run['peer']}: {run['describe']}")
    blas = {}
    for run in results["runs"]:
        for pool in run.get("threadpools", []):
            blas.setdefault(
                f"{pool['prefix']} {pool['version']} ({pool['internal_api']}, "
                f"{pool['architecture'] or 'n/a'})",
                set(),
            ).add(pool["num_threads"])
    if blas:
        lines.append(
            "- Thread pools seen in the workers (threads used): "
            + "; ".join(f"{k}: {sorted(n)}" for k, n in sorted(blas.items()))
        )
    for threads, peak in sorted(results["peaks"].items()):
        measured = results.get("peak_measurements", {}).get(threads, [])
        parts = []
        for dtype, routine in (("float32", "sgemm"), ("float64", "dgemm")):
            if dtype in peak:
                libs = ", ".join(
                    f"{lib} {rate:.1f}"
                    for lib, rate in peak[dtype].items()
                    if lib != "peak"
                )
                each = " / ".join(
                    f"{m[dtype]['peak']:.1f}" for m in measured if dtype in m
                )
                when = f"; before / after the cases {each}" if len(measured) > 1 else ""
                parts.append(
                    f"{routine} **{peak[dtype]['peak']:.1f} GFLOP/s** ({libs}{when})"
                )
        lines.append(
            f"- GEMM peak (best 2048×2048 product), {threads} thread(s): "
            + "; ".join(parts)
        )
    budget = results["plan"]["budget"]
    warm = results["plan"].get("warm_round_max_calls")
    warm = (f"; where the rounds before timed fewer than {warm} calls each, a "
            f"round begins with an untimed call" if warm else "")
    lines.append(
        f"- Timing: after an untimed cross-check call (also the warm-up), calls are "
        f"repeated for about {budget['seconds']} s ({budget['min_reps']}–"
        f"{budget['max_reps']} calls) in 3 rounds, the peers in turn in each "
        f"round of a case{warm}; "
        f"cells show the median in ms ±half the interquartile range. "
        f"Ratio = peer time / rnncore time (> 1: rnncore faster; "
        f"**bold** < 1: rnncore slower). See benchmarks/README.md."
    )
    if results["plan"].get("env"):
        lines.append(
            "- Extra environment of the workers: "
            + ", ".join(f"`{k}={v}`" for k, v in results["plan"]["env"].items())
        )
    for note in results["notes"]:
        lines.append(f"- Note: {note}")
    return "\n".join(lines)


def timing_section(results, op, mode, dtype, threads):
    cases = index_cases(results)
    peers = peers_run(results)
    others = [p for p in peers if p != REFERENCE]
    peak = peak_gflops(results, threads, dtype)
    blas_peak = peak_gflops(results, threads, dtype, "scipy")
    header = (
        ["workload", "T×B×D×H×C"]
        + [f"{p} ms" for p in peers]
        + [f"vs {p}" for p in others]
        + [f"{REFERENCE} GFLOP/s", "% of peak", "% of SciPy BLAS"]
    )
    rows = []
    for w in workloads_for(results, op, mode, dtype):
        got = {p: cases.get((p, threads, w, dtype, op, mode)) for p in peers}
        own = median(got.get(REFERENCE))
        rate = flops(w, op, mode) / own / 1e6 if own else None
        rows.append(
            [w, shape_label(w)]
            + [fmt_time_cell(got[p]) for p in peers]
            + [fmt_ratio(median(got[p]), own) for p in others]
            + [
                f"{rate:.1f}" if rate else "–",
                percent(rate, peak),
                percent(rate, blas_peak),
            ]
        )
    title = f"### {OPERATION_TITLES[(op, mode)]} — {dtype}, {threads} thread" + (
        "s" if threads > 1 else ""
    )
    return f"{title}\n\n{md_table(header, rows)}"


def check_section(results):
    """Worst relative error of each peer against rnncore, per dtype and operation."""
    worst = {}
    for run in results["runs"]:
        for case in run.get("cases", []):
            if "check" not in case:
                continue
            key = (run["peer"], case["dtype"], case["op"], case["mode"])
            err_name, err = max(case["check"]["errors"].items(), key=lambda kv: kv[1])
            entry = worst.setdefault(key, {"n": 0, "err": -1.0, "ok": True})
            entry["n"] += 1
            entry["ok"] &= case["check"]["ok"]
            entry["tol"] = case["check"]["tolerance"]
            if err > entry["err"]:
                entry.update(
                    err=err, where=f"{err_name}, {case['workload']}, {run['threads']}t"
                )
    rows = []
    for peer in PEERS:
        for (p, dtype, op, mode), e in sorted(worst.items()):
            if p == peer:
                rows.append(
                    [
                        peer,
                        dtype,
                        f"{op} {mode}",
                        str(e["n"]),
                        f"{e['err']:.1e}",
                        e["where"],
                        f"{e['tol']:.0e}",
                        "ok" if e["ok"] else "**MISMATCH**",
                    ]
                )
    text = (
        "## Correctness cross-check against rnncore\n\n"
        "Before timing, each peer's loss and gradients (training step) or hidden "
        "states and logits (forward) are compared with rnncore's on the same "
        "weights: norm-wise relative error ‖peer − rnncore‖ / ‖rnncore‖, the worst "
        "array over all workloads and thread counts.\n\n"
    )
    if not rows:
        return text + "No peer other than rnncore ran."
    return text + md_table(
        [
            "peer",
            "dtype",
            "operation",
            "cases",
            "worst rel. error",
            "worst at (array, workload, threads)",
            "tolerance",
            "result",
        ],
        rows,
        left=3,
    )


def memory_section(results):
    cases = index_cases(results)
    threads = results["plan"]["threads"][0]
    rows = []
    for (peer, t, w, dtype, op, mode), case in cases.items():
        if peer != REFERENCE or t != threads or "traced_peak_bytes" not in case:
            continue
        numpy_case = cases.get(("numpy", t, w, dtype, op, mode), {})
        need = minimum_training_bytes(w, dtype, mode)
        with_logits = all_logits_training_bytes(w, dtype, mode)
        own = case["traced_peak_bytes"]
        other = numpy_case.get("traced_peak_bytes")
        rows.append(
            [
                w,
                dtype,
                mode,
                f"{own / MIB:.2f}",
                f"{other / MIB:.2f}" if other is not None else "–",
                f"{need / MIB:.2f}",
                f"{own / need:.2f}",
                f"{own / with_logits:.2f}",
                f"{parameter_bytes(w, dtype) / MIB:.2f}",
            ]
        )
    if not rows:
        return ""
    return (
        "## Peak memory of a training step\n\n"
        "Bytes allocated during one call (tracemalloc, which sees NumPy's array "
        "buffers), above what was live before it, on a thread of its own (so the "
        "scratch space rnncore keeps per thread between calls is counted); "
        "inputs and parameters are not "
        'included. "Must hold" is what any implementation has to allocate: hidden '
        "states T·B·H (kept for the backward pass), the logits of one step (B·C; "
        "in mode seq the output layer can run as the backward pass reaches each "
        "step) and one gradient per parameter. The column after the ratio "
        "divides by that plus every other step's logits (T·B·C in all in mode "
        "seq), what a step holds that keeps them all.\n\n"
        + md_table(
            [
                "workload",
                "dtype",
                "mode",
                "rnncore MiB",
                "numpy peer MiB",
                "must hold MiB",
                "rnncore / must hold",
                "rnncore / with all logits",
                "parameters MiB",
            ],
            rows,
            left=3,
        )
    )


def threads_section(results):
    """rnncore's time at 1 thread over its time at each larger thread count,
    per case (the thread counts are interleaved case by case, as the peers
    are, so these compare like the peer ratios do); None with one count."""
    counts = results["plan"]["threads"]
    if len(counts) < 2:
        return None
    cases = index_cases(results)
    base, more = counts[0], counts[1:]
    header = ["operation", "mode", "dtype", "workload", f"{base} thread ms"]
    header += [f"{t} threads ms" for t in more] + [f"{base}t / {t}t" for t in more]
    rows = []
    for op, mode in OPERATION_TITLES:
        for dtype in ("float32", "float64"):
            for w in workloads_for(results, op, mode, dtype):
                got = [cases.get((REFERENCE, t, w, dtype, op, mode)) for t in counts]
                if all(c is None for c in got):
                    continue
                rows.append(
                    [op, mode, dtype, w]
                    + [fmt_time_cell(c) for c in got]
                    + [fmt_ratio(median(got[0]), median(c)) for c in got[1:]]
                )
    title = f"## {REFERENCE} at {', '.join(map(str, more))} threads against {base}"
    return (
        f"{title}\n\n"
        f"Ratio = time at {base} thread / time at more threads (> 1: more threads "
        "faster; **bold** < 1: slower).\n\n" + md_table(header, rows, left=4)
    )


def markdown(results):
    parts = [header_section(results), check_section(results), "## Timings"]
    parts += [timing_section(results, *key) for key in table_keys(results)]
    scaling = threads_section(results)
    if scaling:
        parts.append(scaling)
    memory = memory_section(results)
    if memory:
        parts.append(memory)
    return "\n\n".join(parts) + "\n"


def problems(results):
    """Lines describing mismatches and failures (empty when all is well)."""
    found = list(n for n in results["notes"] if "failed" in n)
    for run in results["runs"]:
        for case in run.get("cases", []):
            label = (
                f"{run['peer']} {run['threads']}t {case['workload']} {case['dtype']} "
                f"{case['op']} {case['mode']}"
            )
            if "error" in case:
                found.append(f"{label}: {case['error']}")
            elif "check" in case and not case["check"]["ok"]:
                found.append(
                    f"{label}: MISMATCH, relative error {case['check']['worst']:.2e} "
                    f"> {case['check']['tolerance']:.0e}"
                )
    return found


# ---------------------------------------------------------------- chart


def tick_label(workload):
    T, B, D, H, C = WORKLOADS[workload]
    return f"{workload}\nT={T} B={B}\nD={D} H={H} C={C}"


def chart(results, path, threads=1, dtype="float32"):
    """Grouped bars: rnncore's speed-up over each peer per workload, training
    (seq) and forward (seq).  Returns False (with a note) without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator
    except ImportError:
        results["notes"].append("matplotlib not installed: no chart")
        return False
    cases = index_cases(results)
    others = [p for p in peers_run(results) if p != REFERENCE]
    if not others:
        results["notes"].append("no peer besides rnncore ran: no chart")
        return False
    panels = [("train", "seq"), ("forward", "seq")]
    fig, axes = plt.subplots(1, len(panels), figsize=(12, 4.5), sharey=True)
    width = 0.8 / max(len(others), 1)
    for ax, (op, mode) in zip(axes, panels, strict=True):
        names = workloads_for(results, op, mode, dtype)
        for i, peer in enumerate(others):
            ratios = []
            for w in names:
                own = median(cases.get((REFERENCE, threads, w, dtype, op, mode)))
                theirs = median(cases.get((peer, threads, w, dtype, op, mode)))
                ratios.append(theirs / own if own and theirs else 0.0)
            xs = [j + (i - (len(others) - 1) / 2) * width for j in range(len(names))]
            bars = ax.bar(xs, ratios, width, label=f"vs {peer}")
            ax.bar_label(
                bars,
                labels=[f"{r:.2f}" if r else "" for r in ratios],
                fontsize=7,
                padding=1,
            )
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_xticks(range(len(names)), [tick_label(w) for w in names], fontsize=8)
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(FixedLocator([0.125, 0.25, 0.5, 1, 2, 4, 8, 16, 32]))
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}×"))
        ax.yaxis.set_minor_locator(NullLocator())
        ax.set_title(
            f"{OPERATION_TITLES[(op, mode)]}\n{dtype}, {threads} thread", fontsize=10
        )
    axes[0].set_ylabel("rnncore speed-up (peer time / rnncore time)")
    axes[-1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def write_all(results, out_dir, with_chart=True):
    """Writes speedup.png (optionally), results.md and results.json; returns
    the markdown text and the paths written."""
    os.makedirs(out_dir, exist_ok=True)
    written = []
    png = os.path.join(out_dir, "speedup.png")
    if with_chart and chart(results, png):
        written.append(png)
    text = markdown(results)  # after the chart, which may add a note
    for name, content in (
        ("results.md", text),
        ("results.json", json.dumps(results, indent=1)),
    ):
        path = os.path.join(out_dir, name)
        with open(path, "w") as f:
            f.write(content)
        written.append(path)
    return text, written


if __name__ == "__main__":
    # Re-renders the report from saved raw results: report.py RESULTS.json [OUT_DIR]
    with open(sys.argv[1]) as f:
        saved = json.load(f)
    target = (
        sys.argv[2]
        if len(sys.argv) > 2
        else os.path.dirname(os.path.abspath(sys.argv[1]))
    )
    for written_path in write_all(saved, target)[1]:
        print(written_path)

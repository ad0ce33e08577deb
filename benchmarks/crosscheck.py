"""Correctness cross-check of a peer against rnncore on the same problem.

Each array is compared by its norm-wise relative error
``‖peer - rnncore‖ / ‖rnncore‖`` (the loss by ``|Δ| / |loss|``); a case
passes when the largest of them is within the dtype's tolerance.
"""

import numpy as np

TOLERANCE = {"float32": 1e-3, "float64": 1e-8}


def relative_error(got, want):
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        return float("inf")
    scale = np.linalg.norm(want)
    diff = np.linalg.norm(got - want)
    return float(diff / scale) if scale > 0 else float(diff)


def compare(peer_out, reference_out, dtype):
    """{"errors": {name: rel. error}, "worst": ..., "tolerance": ..., "ok": ...}"""
    errors = {
        name: relative_error(peer_out.get(name, np.nan), want)
        for name, want in reference_out.items()
    }
    worst = max(errors.values())
    tol = TOLERANCE[dtype]
    return {
        "errors": errors,
        "worst": worst,
        "tolerance": tol,
        "ok": bool(np.isfinite(worst) and worst <= tol),
    }

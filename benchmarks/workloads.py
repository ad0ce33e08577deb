"""Workloads, operations and the problems every peer is timed on.

A *case* is one (workload, dtype, operation, mode) combination.  Every peer
gets the same problem for a case: parameters, inputs and targets drawn from
a fixed seed in float64 and rounded to the case's dtype.
"""

import zlib

# name: (T steps, B batch, D inputs, H hidden, C classes)
WORKLOADS = {
    "tiny": (25, 1, 65, 100, 65),
    "small": (50, 32, 64, 128, 64),
    "medium": (100, 64, 128, 256, 128),
    "large": (100, 128, 512, 1024, 512),
}

OPERATIONS = ("train", "forward")
MODES = ("seq", "last")
DTYPES = ("float32", "float64")

OPERATION_TITLES = {
    ("train", "seq"): "Training step, many-to-many (loss at every step)",
    ("train", "last"): "Training step, many-to-one (loss on the final state)",
    ("forward", "seq"): "Forward (inference), logits at every step",
    ("forward", "last"): "Forward (inference), logits at the final step",
}

PARAM_KEYS = ("W_xh", "W_hh", "b_h", "W_hy", "b_y")
ITEMSIZE = {"float32": 4, "float64": 8}


def shape_label(workload):
    return "×".join(str(n) for n in WORKLOADS[workload])


def flops(workload, op, mode):
    """Floating-point operations of one call, counting GEMMs only.

    forward = 2·T·B·(D·H + H·H) + 2·N·H·C with N = T·B ("seq") or B ("last");
    a training step counts as three forwards (forward + two products per
    weight in the backward pass).
    """
    T, B, D, H, C = WORKLOADS[workload]
    rows_out = T * B if mode == "seq" else B
    fwd = 2 * T * B * (D * H + H * H) + 2 * rows_out * H * C
    return 3 * fwd if op == "train" else fwd


def make_problem(workload, dtype):
    """Parameters (PyTorch layout and init scale), inputs and both targets."""
    import numpy as np  # here, not at the top: run.py must not load NumPy

    T, B, D, H, C = WORKLOADS[workload]
    rng = np.random.default_rng(zlib.crc32(workload.encode()))
    bound = 1.0 / H**0.5
    shapes = {"W_xh": (H, D), "W_hh": (H, H), "b_h": (H,), "W_hy": (C, H), "b_y": (C,)}
    params = {k: rng.uniform(-bound, bound, s).astype(dtype) for k, s in shapes.items()}
    return {
        "dims": (T, B, D, H, C),
        "params": params,
        "x": rng.standard_normal((T, B, D)).astype(dtype),
        "targets": {
            "seq": rng.integers(0, C, (T, B), dtype=np.int64),
            "last": rng.integers(0, C, B, dtype=np.int64),
        },
    }


def minimum_training_bytes(workload, dtype, mode):
    """Bytes a training step must allocate at the least: the hidden states
    (T·B·H, kept for the backward pass), the logits of one step (B·C: in
    mode "seq" the output layer can run step by step as the backward pass
    reaches it, so no step needs all T·B·C at once) and one gradient per
    parameter: the same for both modes."""
    T, B, D, H, C = WORKLOADS[workload]
    n_params = H * D + H * H + H + C * H + C
    return (T * B * H + B * C + n_params) * ITEMSIZE[dtype]


def all_logits_training_bytes(workload, dtype, mode):
    """minimum_training_bytes plus the logits of every other step (in mode
    "seq"): what a step holds that keeps all T·B·C logits, as the NumPy peer
    does."""
    T, B, _D, _H, C = WORKLOADS[workload]
    extra = (T - 1) * B * C if mode == "seq" else 0
    return minimum_training_bytes(workload, dtype, mode) + extra * ITEMSIZE[dtype]


def parameter_bytes(workload, dtype):
    _T, _B, D, H, C = WORKLOADS[workload]
    return (H * D + H * H + H + C * H + C) * ITEMSIZE[dtype]

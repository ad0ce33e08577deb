"""rnncore itself: ``loss_and_grads`` for a training step; ``rnn_forward``
plus the output layer for inference.

The output layer's GEMM calls SciPy's BLAS, the library rnncore's own
kernels call, so that a whole inference pass uses one BLAS thread pool.
(NumPy ships a second OpenBLAS with its own threads; alternating calls
between the two pools with more than one thread makes each pool's
spinning idle threads compete with the other's work.)
"""

import numpy as np
from scipy.linalg import blas

import rnncore

LIBRARY = "rnncore"

_GEMM = {np.dtype(np.float32): blas.sgemm, np.dtype(np.float64): blas.dgemm}


def limit_threads(n):
    """rnncore's BLAS is SciPy's OpenBLAS: limited by the environment and
    by threadpoolctl in the worker."""


def output_layer(rows, W_hy, b_y):
    """``rows @ W_hyᵀ + b_y`` for C-contiguous rows (N, H), as one GEMM on
    SciPy's BLAS (column-major: logitsᵀ = W_hy · rowsᵀ, no copies)."""
    logits = _GEMM[rows.dtype](1.0, W_hy.T, rows.T, trans_a=True).T
    logits += b_y
    return logits


class Peer:
    def __init__(self, problem):
        self.params = problem["params"]
        self.x = problem["x"]
        self.targets = problem["targets"]

    def train(self, mode):
        params, x, targets = self.params, self.x, self.targets[mode]

        def step():
            loss, grads, _ = rnncore.loss_and_grads(params, x, targets, mode=mode)
            return loss, grads

        return step

    def forward(self, mode):
        p, x = self.params, self.x

        def run():
            hs = rnncore.rnn_forward(x, p["W_xh"], p["W_hh"], p["b_h"])
            T, B, H = hs.shape
            if mode == "seq":
                logits = output_layer(hs.reshape(T * B, H), p["W_hy"], p["b_y"])
                return hs, logits.reshape(T, B, -1)
            return hs, output_layer(hs[-1], p["W_hy"], p["b_y"])

        return run

    def to_numpy(self, op, out):
        if op == "train":
            loss, grads = out
            return {"loss": float(loss), **grads}
        hs, logits = out
        return {"hs": hs, "logits": logits}

"""rnncore itself: ``loss_and_grads`` for a training step; ``rnn_forward``
plus the output layer as one NumPy GEMM for inference."""
import numpy as np

import rnncore

LIBRARY = "rnncore"


def limit_threads(n):
    """rnncore's BLAS is SciPy's OpenBLAS: limited by the environment and
    by threadpoolctl in the worker."""


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
        W_hyT, b_y = p["W_hy"].T, p["b_y"]

        def run():
            hs = rnncore.rnn_forward(x, p["W_xh"], p["W_hh"], p["b_h"])
            if mode == "seq":
                T, B, H = hs.shape
                logits = (hs.reshape(T * B, H) @ W_hyT).reshape(T, B, -1)
            else:
                logits = hs[-1] @ W_hyT
            logits += b_y
            return hs, logits
        return run

    def to_numpy(self, op, out):
        if op == "train":
            loss, grads = out
            return {"loss": float(loss), **grads}
        hs, logits = out
        return {"hs": hs, "logits": logits}

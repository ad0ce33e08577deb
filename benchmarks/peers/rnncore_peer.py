"""rnncore itself: ``loss_and_grads`` for a training step; ``rnn_forward``
then ``output_layer`` for inference, so that the whole inference pass runs
on rnncore's own threads.
"""

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

        def run():
            hs = rnncore.rnn_forward(x, p["W_xh"], p["W_hh"], p["b_h"])
            last = hs if mode == "seq" else hs[-1]
            return hs, rnncore.output_layer(last, p["W_hy"], p["b_y"])

        return run

    def to_numpy(self, op, out):
        if op == "train":
            loss, grads = out
            return {"loss": float(loss), **grads}
        hs, logits = out
        return {"hs": hs, "logits": logits}

"""A careful pure-NumPy Elman RNN: the baseline a NumPy user would write.

- Forward: the input projection of all steps is one GEMM; per step only
  ``h_{t-1} @ W_hhᵀ`` is added in place into the preallocated ``hs[t]``,
  then tanh in place.
- Output layer: one GEMM over all steps ("seq") or the final states
  ("last").
- Loss: log-softmax shifted by the row maximum (never overflows), mean
  negative log-likelihood accumulated in float64.
- Backward: BPTT keeps only ``δ_t @ W_hh`` per step; ``dW_xh``, ``dW_hh``
  and ``db_h`` are one GEMM / one reduction each after the recursion.
"""

import numpy as np

LIBRARY = "numpy"


def limit_threads(n):
    """NumPy's OpenBLAS: limited by the environment and threadpoolctl."""


def hidden_states(x, W_xh, W_hh, b_h):
    T, B, D = x.shape
    H = W_hh.shape[0]
    hs = (x.reshape(T * B, D) @ W_xh.T).reshape(T, B, H)
    hs += b_h
    np.tanh(hs[0], out=hs[0])
    W_hhT = W_hh.T
    buf = np.empty((B, H), dtype=x.dtype)
    for t in range(1, T):
        np.matmul(hs[t - 1], W_hhT, out=buf)
        hs[t] += buf
        np.tanh(hs[t], out=hs[t])
    return hs


def output_layer(hs, W_hy, b_y, mode):
    """Logits as 2-D rows: (T·B, C) for "seq", (B, C) for "last"."""
    T, B, H = hs.shape
    rows = hs.reshape(T * B, H) if mode == "seq" else hs[-1]
    logits = rows @ W_hy.T
    logits += b_y
    return rows, logits


def softmax_cross_entropy(logits, targets):
    """Mean cross-entropy and its gradient ``(softmax - onehot) / N``."""
    n = logits.shape[0]
    idx = np.arange(n)
    shifted = logits - logits.max(axis=1, keepdims=True)
    probs = np.exp(shifted)
    sums = probs.sum(axis=1, keepdims=True)
    nll = np.log(sums[:, 0]) - shifted[idx, targets]
    loss = float(nll.mean(dtype=np.float64))
    probs /= sums
    probs[idx, targets] -= 1.0
    probs *= 1.0 / n
    return loss, probs


def backward_through_time(dh, hs, W_hh, mode):
    """Turns ``dh`` (∂L/∂h_t from the output layer, (T, B, H); for "last"
    only ``dh[-1]`` is set) into ``δ_t = ∂L/∂(pre-activation)`` in place."""
    T = hs.shape[0]
    deriv = hs * hs
    np.subtract(1.0, deriv, out=deriv)  # tanh' = 1 - h², all steps at once
    carry = np.empty_like(hs[0])
    for t in range(T - 1, -1, -1):
        dh[t] *= deriv[t]
        if t == 0:
            break
        if mode == "seq":
            np.matmul(dh[t], W_hh, out=carry)
            dh[t - 1] += carry
        else:
            np.matmul(dh[t], W_hh, out=dh[t - 1])
    return dh


def loss_and_grads(params, x, targets, mode):
    W_xh, W_hh, b_h, W_hy, b_y = (
        params[k] for k in ("W_xh", "W_hh", "b_h", "W_hy", "b_y")
    )
    T, B, D = x.shape
    H = W_hh.shape[0]
    hs = hidden_states(x, W_xh, W_hh, b_h)
    rows, logits = output_layer(hs, W_hy, b_y, mode)
    loss, dlogits = softmax_cross_entropy(logits, targets.reshape(-1))

    grads = {"W_hy": dlogits.T @ rows, "b_y": dlogits.sum(axis=0)}
    if mode == "seq":
        dh = (dlogits @ W_hy).reshape(T, B, H)
    else:
        dh = np.empty_like(hs)
        np.matmul(dlogits, W_hy, out=dh[-1])
    delta = backward_through_time(dh, hs, W_hh, mode).reshape(T * B, H)
    grads["W_xh"] = delta.T @ x.reshape(T * B, D)
    grads["W_hh"] = delta[B:].T @ hs[:-1].reshape((T - 1) * B, H)
    grads["b_h"] = delta.sum(axis=0)
    return loss, grads


class Peer:
    def __init__(self, problem):
        self.params = problem["params"]
        self.x = problem["x"]
        self.targets = problem["targets"]

    def train(self, mode):
        params, x, targets = self.params, self.x, self.targets[mode]
        return lambda: loss_and_grads(params, x, targets, mode)

    def forward(self, mode):
        p, x = self.params, self.x

        def run():
            hs = hidden_states(x, p["W_xh"], p["W_hh"], p["b_h"])
            _, logits = output_layer(hs, p["W_hy"], p["b_y"], mode)
            if mode == "seq":
                logits = logits.reshape(hs.shape[0], hs.shape[1], -1)
            return hs, logits

        return run

    def to_numpy(self, op, out):
        if op == "train":
            loss, grads = out
            return {"loss": float(loss), **grads}
        hs, logits = out
        return {"hs": hs, "logits": logits}

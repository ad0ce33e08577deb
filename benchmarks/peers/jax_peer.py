"""JAX on the CPU: ``jax.jit`` of a ``lax.scan`` recurrence.

The input projection of all steps is one einsum before the scan; each scan
step adds ``h @ W_hhᵀ`` and applies tanh.  The training step is
``jit(value_and_grad(loss))`` with ``jax.nn.log_softmax`` cross-entropy.
Calls block until their results are ready; compilation happens in the
untimed first call.
"""

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

jax.config.update("jax_enable_x64", True)  # float64 cases; float32 stays float32
jax.config.update("jax_platforms", "cpu")

LIBRARY = "jax"


def limit_threads(n):
    """XLA sizes its thread pool from the CPUs this process may run on
    (set by the worker) and from XLA_FLAGS (set in its environment)."""


def hidden_states(p, x):
    xp = jnp.einsum("tbd,hd->tbh", x, p["W_xh"]) + p["b_h"]
    h0 = jnp.zeros(xp.shape[1:], xp.dtype)
    W_hhT = p["W_hh"].T

    def step(h, xp_t):
        h = jnp.tanh(xp_t + h @ W_hhT)
        return h, h

    _, hs = lax.scan(step, h0, xp)
    return hs


def forward(p, x, mode):
    hs = hidden_states(p, x)
    out = hs if mode == "seq" else hs[-1]
    return hs, out @ p["W_hy"].T + p["b_y"]


def loss(p, x, targets, mode):
    _, logits = forward(p, x, mode)
    logp = jax.nn.log_softmax(logits, axis=-1)
    nll = -jnp.take_along_axis(logp, targets[..., None], axis=-1)
    return jnp.mean(nll)


_train_step = jax.jit(jax.value_and_grad(loss), static_argnames="mode")
_forward = jax.jit(forward, static_argnames="mode")


class Peer:
    def __init__(self, problem):
        self.params = {k: jnp.asarray(v) for k, v in problem["params"].items()}
        self.x = jnp.asarray(problem["x"])
        self.targets = {m: jnp.asarray(t) for m, t in problem["targets"].items()}

    def train(self, mode):
        run = partial(_train_step, self.params, self.x, self.targets[mode], mode=mode)
        return lambda: jax.block_until_ready(run())

    def forward(self, mode):
        run = partial(_forward, self.params, self.x, mode=mode)
        return lambda: jax.block_until_ready(run())

    def to_numpy(self, op, out):
        if op == "train":
            value, grads = out
            return {
                "loss": float(value),
                **{k: np.asarray(g) for k, g in grads.items()},
            }
        hs, logits = out
        return {"hs": np.asarray(hs), "logits": np.asarray(logits)}


def describe():
    return f"jax {jax.__version__}, backend {jax.default_backend()}"

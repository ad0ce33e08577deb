"""rnncore: fast, exact Elman RNNs on NumPy arrays.

The tanh recurrence, a numerically stable softmax cross-entropy and
backpropagation through time, compiled with Cython and run on BLAS.
"""
from rnncore._version import __version__
from rnncore.functional import (
    RNNGrads,
    log_softmax,
    loss_and_grads,
    rnn_backward,
    rnn_forward,
    softmax,
    softmax_cross_entropy,
)

__all__ = [
    "__version__",
    "RNNGrads",
    "rnn_forward",
    "rnn_backward",
    "softmax_cross_entropy",
    "softmax",
    "log_softmax",
    "loss_and_grads",
]

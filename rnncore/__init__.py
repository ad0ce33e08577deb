"""rnncore: fast, exact Elman RNNs on NumPy arrays.

The tanh recurrence, a numerically stable softmax cross-entropy and
backpropagation through time, compiled with Cython and run on BLAS.
"""
from rnncore._version import __version__

try:
    from rnncore import _recurrence  # noqa: F401  (the compiled kernels)
except ImportError as exc:  # pragma: no cover
    raise ImportError(
        "rnncore's compiled modules could not be imported. If this is the "
        "rnncore source tree, install it (python -m pip install .) and run "
        "from another directory, or use the `rnncore` command."
    ) from exc

from rnncore import optim
from rnncore._config import show_config
from rnncore._threads import set_auto_threads, share_thread_count, threads
from rnncore.functional import (
    RNNGrads,
    log_softmax,
    loss_and_grads,
    output_layer,
    rnn_backward,
    rnn_forward,
    softmax,
    softmax_cross_entropy,
)
from rnncore.model import RNN
from rnncore.optim import (
    SGD,
    Adagrad,
    Adam,
    AdamW,
    clip_grad_norm,
    clip_grad_value,
)
from rnncore.serialization import ModelFileError, load, save
from rnncore.torch_interop import (
    from_torch,
    to_torch,
    to_torch_state_dict,
)

__all__ = [
    "__version__",
    "RNN",
    "RNNGrads",
    "rnn_forward",
    "rnn_backward",
    "output_layer",
    "softmax_cross_entropy",
    "softmax",
    "log_softmax",
    "loss_and_grads",
    "optim",
    "SGD",
    "Adagrad",
    "Adam",
    "AdamW",
    "clip_grad_norm",
    "clip_grad_value",
    "save",
    "load",
    "ModelFileError",
    "from_torch",
    "to_torch",
    "to_torch_state_dict",
    "show_config",
    "threads",
    "set_auto_threads",
]

# the kernels read SciPy's BLAS thread count to choose a per-step kernel
share_thread_count()
del share_thread_count

# Types of rnncore's public functions (documented in functional.py).
# Arrays of float32 give float32 results and float64 give float64; other
# array-likes are accepted as NumPy would convert them.
from collections.abc import Mapping
from typing import Any, Generic, Literal, NamedTuple, TypeVar, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

_Float = TypeVar("_Float", np.float32, np.float64)
_AnyFloat = NDArray[np.floating[Any]]

__all__ = [
    "RNNGrads",
    "rnn_forward",
    "rnn_backward",
    "output_layer",
    "softmax_cross_entropy",
    "softmax",
    "log_softmax",
    "loss_and_grads",
]

PARAM_SHAPES: dict[str, tuple[str, ...]]

class RNNGrads(NamedTuple, Generic[_Float]):
    dx: NDArray[_Float]
    dh0: NDArray[_Float]
    dW_xh: NDArray[_Float]
    dW_hh: NDArray[_Float]
    db_h: NDArray[_Float]

@overload
def rnn_forward(
    x: NDArray[_Float],
    W_xh: NDArray[_Float],
    W_hh: NDArray[_Float],
    b_h: NDArray[_Float],
    h0: NDArray[_Float] | None = None,
    lengths: ArrayLike | None = None,
) -> NDArray[_Float]: ...
@overload
def rnn_forward(
    x: ArrayLike,
    W_xh: ArrayLike,
    W_hh: ArrayLike,
    b_h: ArrayLike,
    h0: ArrayLike | None = None,
    lengths: ArrayLike | None = None,
) -> _AnyFloat: ...
@overload
def rnn_backward(
    dhs: NDArray[_Float] | None,
    hs: NDArray[_Float],
    x: NDArray[_Float],
    W_xh: NDArray[_Float],
    W_hh: NDArray[_Float],
    h0: NDArray[_Float] | None = None,
    lengths: ArrayLike | None = None,
    dh_last: NDArray[_Float] | None = None,
) -> RNNGrads[_Float]: ...
@overload
def rnn_backward(
    dhs: ArrayLike | None,
    hs: ArrayLike,
    x: ArrayLike,
    W_xh: ArrayLike,
    W_hh: ArrayLike,
    h0: ArrayLike | None = None,
    lengths: ArrayLike | None = None,
    dh_last: ArrayLike | None = None,
) -> RNNGrads[Any]: ...
@overload
def output_layer(
    hs: NDArray[_Float], W_hy: NDArray[_Float], b_y: NDArray[_Float]
) -> NDArray[_Float]: ...
@overload
def output_layer(hs: ArrayLike, W_hy: ArrayLike, b_y: ArrayLike) -> _AnyFloat: ...
@overload
def softmax_cross_entropy(
    logits: NDArray[_Float], targets: ArrayLike, ignore_index: int = -100
) -> tuple[float, NDArray[_Float]]: ...
@overload
def softmax_cross_entropy(
    logits: ArrayLike, targets: ArrayLike, ignore_index: int = -100
) -> tuple[float, _AnyFloat]: ...
@overload
def softmax(x: NDArray[_Float], axis: int = -1) -> NDArray[_Float]: ...
@overload
def softmax(x: ArrayLike, axis: int = -1) -> _AnyFloat: ...
@overload
def log_softmax(x: NDArray[_Float], axis: int = -1) -> NDArray[_Float]: ...
@overload
def log_softmax(x: ArrayLike, axis: int = -1) -> _AnyFloat: ...
@overload
def loss_and_grads(
    params: Mapping[str, NDArray[_Float]],
    x: NDArray[_Float],
    targets: ArrayLike,
    *,
    mode: Literal["seq", "last"] = "seq",
    h0: NDArray[_Float] | None = None,
    lengths: ArrayLike | None = None,
    ignore_index: int = -100,
) -> tuple[float, dict[str, NDArray[_Float]], NDArray[_Float]]: ...
@overload
def loss_and_grads(
    params: Mapping[str, ArrayLike],
    x: ArrayLike,
    targets: ArrayLike,
    *,
    mode: Literal["seq", "last"] = "seq",
    h0: ArrayLike | None = None,
    lengths: ArrayLike | None = None,
    ignore_index: int = -100,
) -> tuple[float, dict[str, _AnyFloat], _AnyFloat]: ...

# rnncore.model's path for the common call of a one-layer model
def _plain_train_step(
    seq: bool,
    x: object,
    W_xh: object,
    W_hh: object,
    b_h: object,
    W_hy: object,
    b_y: object,
    targets: object,
    ignore_index: int,
    sizes: tuple[int, int, int] | None = None,
) -> tuple[float, dict[str, _AnyFloat], _AnyFloat] | None: ...

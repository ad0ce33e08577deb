# The fused training step, and a stack's top layer in mode seq; the arrays
# are validated by rnncore.functional and rnncore.model.
from typing import TypeVar

import numpy as np
from numpy.typing import NDArray

_Float = TypeVar("_Float", np.float32, np.float64)

def train_step(
    seq: bool,
    x: NDArray[_Float],
    targets: NDArray[np.intp],
    ignore_index: int,
    W_xh: NDArray[_Float],
    W_hh: NDArray[_Float],
    b_h: NDArray[_Float],
    W_hy: NDArray[_Float],
    b_y: NDArray[_Float],
    h0: NDArray[_Float],
    lengths: NDArray[np.intp],
    dW_xh: NDArray[_Float],
    dW_hh: NDArray[_Float],
    db_h: NDArray[_Float],
    dW_hy: NDArray[_Float],
    db_y: NDArray[_Float],
    h_last: NDArray[_Float],
    hs: NDArray[_Float],
    work: NDArray[_Float],
    wbuf: NDArray[_Float],
    logits: NDArray[_Float],
    dh_last: NDArray[_Float],
    dh0: NDArray[_Float],
) -> float: ...
def top_backward(
    x: NDArray[_Float],
    targets: NDArray[np.intp],
    ignore_index: int,
    W_xh: NDArray[_Float],
    W_hh: NDArray[_Float],
    W_hy: NDArray[_Float],
    b_y: NDArray[_Float],
    h0: NDArray[_Float],
    lengths: NDArray[np.intp],
    hs: NDArray[_Float],
    dx: NDArray[_Float],
    dW_xh: NDArray[_Float],
    dW_hh: NDArray[_Float],
    db_h: NDArray[_Float],
    dW_hy: NDArray[_Float],
    db_y: NDArray[_Float],
    work: NDArray[_Float],
    wbuf: NDArray[_Float],
    logits: NDArray[_Float],
    dh0: NDArray[_Float],
) -> float: ...

# Kernels of the Elman recurrence; the arrays are validated by
# rnncore.functional (C-contiguous, one float dtype, lengths as np.intp).
from typing import TypeVar

import numpy as np
from numpy.typing import NDArray

_Float = TypeVar("_Float", np.float32, np.float64)

def forward(
    x: NDArray[_Float],
    W_xh: NDArray[_Float],
    W_hh: NDArray[_Float],
    b_h: NDArray[_Float],
    h0: NDArray[_Float],
    lengths: NDArray[np.intp],
    wbuf: NDArray[_Float],
    hs: NDArray[_Float],
) -> None: ...
def advance(
    x: NDArray[_Float],
    W_xh: NDArray[_Float],
    W_hh: NDArray[_Float],
    b_h: NDArray[_Float],
    lengths: NDArray[np.intp],
    t0: int,
    h: NDArray[_Float],
    wbuf: NDArray[_Float],
    out: NDArray[_Float],
) -> None: ...
def backward_steps(
    T: int, B: int, D: int, H: int, itemsize: int, C: int = ...
) -> int: ...
def weight_buffer_len(H: int, itemsize: int) -> int: ...
def needs_weight_buffer(B: int) -> bool: ...
def backward_weight_buffer_len(B: int, H: int, itemsize: int) -> int: ...
def backward(
    dhs: NDArray[_Float],
    dh_last: NDArray[_Float],
    hs: NDArray[_Float],
    x: NDArray[_Float],
    W_xh: NDArray[_Float],
    W_hh: NDArray[_Float],
    h0: NDArray[_Float],
    lengths: NDArray[np.intp],
    dx: NDArray[_Float],
    dh0: NDArray[_Float],
    dW_xh: NDArray[_Float],
    dW_hh: NDArray[_Float],
    db_h: NDArray[_Float],
    work: NDArray[_Float],
    wbuf: NDArray[_Float],
) -> None: ...

# The output layer and its softmax cross-entropy; the arrays are validated
# by rnncore.model (C-contiguous, one float dtype, targets as np.intp).
from typing import TypeVar

import numpy as np
from numpy.typing import NDArray

_Float = TypeVar("_Float", np.float32, np.float64)

def logits(
    feats: NDArray[_Float],
    W_hy: NDArray[_Float],
    b_y: NDArray[_Float],
    out: NDArray[_Float],
) -> None: ...
def output_workspace_rows(N: int) -> int: ...
def loss_grads(
    feats: NDArray[_Float],
    targets: NDArray[np.intp],
    ignore_index: int,
    W_hy: NDArray[_Float],
    b_y: NDArray[_Float],
    logits: NDArray[_Float],
    dW_hy: NDArray[_Float],
    db_y: NDArray[_Float],
    dfeats: NDArray[_Float],
) -> float: ...

# Softmax kernels; the arrays are validated by rnncore.functional.
from typing import TypeVar

import numpy as np
from numpy.typing import NDArray

_Float = TypeVar("_Float", np.float32, np.float64)

def cross_entropy(
    logits: NDArray[_Float],
    targets: NDArray[np.intp],
    ignore_index: int,
    dlogits: NDArray[_Float],
) -> float: ...
def softmax(z: NDArray[_Float], out: NDArray[_Float], log: bool) -> None: ...
def targets_in_range(targets: NDArray[np.intp], C: int, ignore_index: int) -> bool: ...

# Element-wise optimiser updates and gradient clipping; the arrays are
# validated and the step's scalars computed by rnncore.optim.
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray
from typing_extensions import Self, disjoint_base

_Arrays = Sequence[NDArray[np.float32]] | Sequence[NDArray[np.float64]]
_Grads = list[NDArray[np.float32]] | list[NDArray[np.float64]]

@disjoint_base
class Arrays:
    @property
    def count(self) -> int: ...
    @property
    def is_double(self) -> bool: ...
    def __new__(cls, arrays: _Arrays, is_double: bool) -> Self: ...
    def overlap(self) -> tuple[int, int] | None: ...

def sgd(
    params: Arrays,
    grads: _Grads,
    bufs: Arrays | None,
    neg_lr: float,
    l2: float,
    momentum: float,
    keep: float,
    first: bool,
    nesterov: bool,
) -> None: ...
def adagrad(
    params: Arrays,
    grads: _Grads,
    sums: Arrays,
    neg_clr: float,
    l2: float,
    eps: float,
) -> None: ...
def adam(
    params: Arrays,
    grads: _Grads,
    exp_avg: Arrays,
    exp_avg_sq: Arrays,
    decay: float,
    l2: float,
    w1: float,
    beta2: float,
    c2: float,
    neg_step: float,
    eps: float,
) -> None: ...
def pow_sum(arrays: Arrays, p: float) -> float: ...
def scale(arrays: Arrays, factor: float) -> None: ...
def clamp(arrays: Arrays, low: float, high: float) -> None: ...

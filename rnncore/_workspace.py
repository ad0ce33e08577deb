"""Named scratch arrays reused from one call to the next.

A training loop passes the same Workspace to every step: once the shapes
settle, the buffers taken from it are not allocated again (a stacked or
bidirectional step still allocates some arrays of its own each step).  A
Workspace belongs to one
caller at a time (it is not shared between threads).

The functions of rnncore.functional take their scratch arrays from
:func:`scratch`: the arrays of their last call, per thread.  Allocating and
freeing them at every call cost more than the arithmetic of small calls:
glibc returns large freed blocks to the system, and unmapping memory of a
process whose second thread (BLAS's) is running interrupts that thread's
core to flush its TLB.  The small training step ran 12% slower on 2
threads than on 1 that way.
"""
import math
import threading

import numpy as np

from rnncore import _recurrence

# The most a thread keeps for each function.  Larger calls allocate afresh:
# their arithmetic outweighs the allocation, and a cache would hold on to
# memory the size of their inputs.
SCRATCH_MAX_BYTES = 16 * 2**20

_threads = threading.local()


class Workspace:
    def __init__(self):
        self._arrays = {}

    def get(self, name, shape, dtype):
        """The array called `name`, uninitialised, reused while its shape and
        dtype stay the same."""
        arr = self._arrays.get(name)
        if arr is None or arr.shape != shape or arr.dtype != dtype:
            arr = self._arrays[name] = np.empty(shape, dtype=dtype)
        return arr


def scratch(owner, shapes, dtype, empty):
    """Uninitialised arrays of `shapes` and `dtype` for one call of the
    function `owner`, which must not let them escape: the calling thread's
    arrays of `owner`'s last call while they fit SCRATCH_MAX_BYTES in all
    (each one reused while its shape and dtype stay the same), else new ones
    from ``empty(*shape)``."""
    shapes = tuple(shapes)
    last = _threads.__dict__.get(owner)
    # the common case, a loop's calls of one shape, without the sums below:
    # they cost a microsecond, as much as a small step's arithmetic
    if last is not None and last[0] == shapes and last[1] == dtype:
        return last[2]
    nbytes = sum(math.prod(shape) for shape in shapes) * dtype.itemsize
    if nbytes > SCRATCH_MAX_BYTES:
        return tuple(empty(*shape) for shape in shapes)
    kept = () if last is None or last[1] != dtype else last[2]
    arrays = tuple(
        kept[i] if i < len(kept) and kept[i].shape == shape
        else np.empty(shape, dtype=dtype)
        for i, shape in enumerate(shapes))
    _threads.__dict__[owner] = (shapes, dtype, arrays)
    return arrays


def train_step_shapes(seq, T, B, D, H, C, itemsize):
    """The shapes of the fused training step's workspace
    (rnncore/_training.pyx): hs, δ of a chunk of K steps, W_hh packed,
    logits (of one chunk's rows in mode "seq", whose output layer runs chunk
    by chunk), ∂L/∂h_last (mode "last" only: empty in "seq"), carry."""
    K = _recurrence.backward_steps(T, B, D, H, itemsize, C if seq else 0)
    return ((T, B, H), (K, B, H),
            (_recurrence.backward_weight_buffer_len(B, H, itemsize),),
            (K * B if seq else B, C), (0 if seq else B, H), (B, H))

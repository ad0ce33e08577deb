"""Named scratch arrays reused from one call to the next.

A training loop passes the same Workspace to every step: once the shapes
settle, the buffers taken from it are not allocated again (a stacked or
bidirectional step still allocates some arrays of its own each step).  A
Workspace belongs to one
caller at a time (it is not shared between threads).
"""
import numpy as np


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

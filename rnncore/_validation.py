"""Input checking for the public functions: every bad argument becomes a
ValueError or TypeError naming it, before any compiled code runs.

The compiled kernels then receive C-contiguous arrays of one float dtype
(float32 or float64) and np.intp integer arrays, and trust them.
"""
import numbers

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
BLAS_INT_MAX = 2**31 - 1  # scipy.linalg.cython_blas takes 32-bit ints


class Arguments:
    """Collects the arrays of one call, binding named dimensions (T, B, ...)
    and the float dtype to the first argument that carries them."""

    def __init__(self):
        self.dims = {}
        self._dim_source = {}
        self.dtype = None
        self._dtype_source = None

    def floats(self, name, value, symbols):
        """A float array of shape `symbols`, as a C-contiguous array."""
        if value is None:
            raise TypeError(f"{name} must be a float32 or float64 array, got None")
        arr = np.asarray(value)
        if arr.dtype.kind == "f" and not arr.dtype.isnative:
            arr = arr.astype(arr.dtype.newbyteorder("="))
        if arr.dtype not in FLOAT_DTYPES:
            raise TypeError(
                f"{name} must be a float32 or float64 array, got dtype {arr.dtype}"
            )
        if self.dtype is None:
            self.dtype, self._dtype_source = arr.dtype, name
        elif arr.dtype != self.dtype:
            raise TypeError(
                f"{name} has dtype {arr.dtype} but {self._dtype_source} has dtype "
                f"{self.dtype}; all float arrays of one call must share one dtype"
            )
        self._bind(name, arr, symbols)
        return np.ascontiguousarray(arr)

    def ints(self, name, value, symbols):
        """An integer array of shape `symbols`, as a C-contiguous np.intp array
        (range checks are the caller's)."""
        if value is None:
            raise TypeError(f"{name} must be an integer array, got None")
        arr = np.asarray(value)
        if arr.dtype.kind not in "iu":
            raise TypeError(f"{name} must be an integer array, got dtype {arr.dtype}")
        self._bind(name, arr, symbols)
        return arr

    def _bind(self, name, arr, symbols):
        expected = "(" + ", ".join(symbols) + ("," if len(symbols) == 1 else "") + ")"
        if arr.ndim != len(symbols):
            raise ValueError(
                f"{name} must be {len(symbols)}-D with shape {expected}, "
                f"got shape {arr.shape}"
            )
        for axis, (sym, size) in enumerate(zip(symbols, arr.shape, strict=True)):
            if sym not in self.dims:
                self.dims[sym] = size
                self._dim_source[sym] = f"{name}.shape[{axis}]"
            elif self.dims[sym] != size:
                raise ValueError(
                    f"{name} must have shape {expected} with {sym} = {self.dims[sym]} "
                    f"(from {self._dim_source[sym]}), got shape {arr.shape}"
                )

    def empty(self, *shape):
        """A new C-contiguous array of the call's dtype."""
        return np.empty(shape, dtype=self.dtype)

    def check_sizes(self):
        """T >= 1, C >= 1, and every BLAS dimension fits a 32-bit int."""
        dims = self.dims
        if dims.get("T", 1) < 1:
            raise ValueError(
                f"{self._dim_source['T']} (T, the number of time steps) must be >= 1"
            )
        if dims.get("C", 1) < 1:
            raise ValueError(
                f"{self._dim_source['C']} (C, the number of classes) must be >= 1"
            )
        rows = dims.get("T", 1) * dims.get("B", 1)
        if rows > BLAS_INT_MAX:
            raise ValueError(
                f"T * B = {rows} rows exceeds the BLAS integer limit {BLAS_INT_MAX}"
            )
        for sym in ("B", "D", "H", "C", "N"):
            if dims.get(sym, 0) > BLAS_INT_MAX:
                raise ValueError(
                    f"{self._dim_source[sym]} ({sym} = {dims[sym]}) exceeds the "
                    f"BLAS integer limit {BLAS_INT_MAX}"
                )


def check_index(name, value):
    """A Python or NumPy integer (not bool)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    return int(value)


def check_lengths(lengths, T):
    """lengths (B,) in [1, T] as np.intp."""
    if lengths.size and (lengths.min() < 1 or lengths.max() > T):
        raise ValueError(
            f"lengths must lie in [1, T] = [1, {T}], got values in "
            f"[{lengths.min()}, {lengths.max()}]"
        )
    return np.ascontiguousarray(lengths, dtype=np.intp)


def check_targets(targets, C, ignore_index):
    """targets in [0, C) or equal to ignore_index, as a flat np.intp array."""
    flat = targets.reshape(-1)
    bad = (flat != ignore_index) & ((flat < 0) | (flat >= C))
    if bad.any():
        value = flat[np.argmax(bad)]
        raise ValueError(
            f"targets must lie in [0, C) = [0, {C}) or equal ignore_index="
            f"{ignore_index}, got {value}"
        )
    return np.ascontiguousarray(flat, dtype=np.intp)

"""Input checking for the public functions: every bad argument becomes a
ValueError or TypeError naming it, before any compiled code runs.

The compiled kernels then receive C-contiguous arrays of one float dtype
(float32 or float64) and np.intp integer arrays, and trust them.
"""
import math
import numbers
from collections.abc import Mapping

import numpy as np

from rnncore._softmax import targets_in_range

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
BLAS_INT_MAX = 2**31 - 1  # scipy.linalg.cython_blas takes 32-bit ints
INDEX_MIN, INDEX_MAX = int(np.iinfo(np.intp).min), int(np.iinfo(np.intp).max)


def as_array(name, value):
    """np.asarray(value), with any failure naming the argument.

    Masked arrays are refused: np.asarray would drop the mask and the masked
    entries would silently take part in the computation.
    """
    if isinstance(value, np.ma.MaskedArray):
        raise TypeError(
            f"{name} must not be a masked array (its mask would be ignored); "
            f"pass np.ma.filled({name}) or drop the masked entries"
        )
    try:
        return np.asarray(value)
    except (ValueError, TypeError) as exc:
        kind = ValueError if isinstance(exc, ValueError) else TypeError
        raise kind(f"{name} could not be converted to an array: {exc}") from exc


class Arguments:
    """Collects the arrays of one call, binding named dimensions (T, B, ...)
    and the float dtype to the first argument that carries them."""

    def __init__(self, dtype=None, dtype_source=None):
        self.dims = {}
        self._dim_source = {}
        self.dtype = None if dtype is None else np.dtype(dtype)
        self._dtype_source = dtype_source

    def fix(self, symbol, size, source):
        """Bind dimension `symbol` to `size` before any array does (e.g. from a
        model's configuration); `source` names it in error messages."""
        self.dims[symbol] = size
        self._dim_source[symbol] = source

    def floats(self, name, value, symbols):
        """A float array of shape `symbols`, as a C-contiguous array."""
        if value is None:
            raise TypeError(f"{name} must be a float32 or float64 array, got None")
        # a plain ndarray needs no conversion (nor the masked-array check)
        arr = value if type(value) is np.ndarray else as_array(name, value)
        dtype = arr.dtype
        if dtype is not self.dtype:  # the call's dtype (a singleton) is checked
            if dtype.kind == "f" and not dtype.isnative:
                arr = arr.astype(dtype.newbyteorder("="))
                dtype = arr.dtype
            if dtype not in FLOAT_DTYPES:
                raise TypeError(
                    f"{name} must be a float32 or float64 array, got dtype {dtype}"
                )
            if self.dtype is None:
                self.dtype, self._dtype_source = dtype, name
            elif dtype != self.dtype:
                raise TypeError(
                    f"{name} has dtype {dtype} but {self._dtype_source} has dtype "
                    f"{self.dtype}; all float arrays of one call must share one "
                    f"dtype"
                )
        self._bind(name, arr, symbols)
        return arr if arr.flags.c_contiguous else np.ascontiguousarray(arr)

    def ints(self, name, value, symbols):
        """An integer array of shape `symbols`, as a C-contiguous np.intp array
        (range checks are the caller's)."""
        if value is None:
            raise TypeError(f"{name} must be an integer array, got None")
        arr = as_array(name, value)
        if arr.size == 0 and arr.dtype.kind == "f":
            arr = arr.astype(np.intp)  # an empty list: no value to check
        if arr.dtype.kind not in "iu":
            raise TypeError(f"{name} must be an integer array, got dtype {arr.dtype}")
        self._bind(name, arr, symbols)
        return arr

    def _bind(self, name, arr, symbols):
        if arr.ndim != len(symbols):
            raise ValueError(
                f"{name} must be {len(symbols)}-D with shape {_spelled(symbols)}, "
                f"got shape {arr.shape}"
            )
        dims = self.dims
        for axis, (sym, size) in enumerate(zip(symbols, arr.shape, strict=True)):
            bound = dims.get(sym)
            if bound is None:
                dims[sym] = size
                self._dim_source[sym] = (name, axis)
                self._check_limit(sym)
            elif bound != size:
                raise ValueError(
                    f"{name} must have shape {_spelled(symbols)} with {sym} = "
                    f"{bound} (from {self._source(sym)}), got shape {arr.shape}"
                )

    def _source(self, sym):
        """Where dimension `sym` was bound, for error messages."""
        source = self._dim_source[sym]
        if isinstance(source, tuple):  # (argument, axis): spelled out lazily
            return f"{source[0]}.shape[{source[1]}]"
        return source

    def empty(self, *shape):
        """A new C-contiguous array of the call's dtype."""
        if math.prod(shape) * self.dtype.itemsize > INDEX_MAX:
            dims = ", ".join(f"{sym} = {size} (from {self._source(sym)})"
                             for sym, size in self.dims.items())
            check_nbytes(f"the dimensions {dims}", shape, self.dtype)
        return np.empty(shape, dtype=self.dtype)

    def _check_limit(self, sym):
        """Every BLAS dimension, and the T * B rows of the time-batched
        products, must fit a 32-bit int.  Checked as soon as a dimension is
        bound, so that an argument is never copied for a call that fails."""
        dims, source = self.dims, self._source
        if sym in ("B", "D", "H", "C", "N") and dims[sym] > BLAS_INT_MAX:
            raise ValueError(
                f"{source(sym)} ({sym} = {dims[sym]}) exceeds the "
                f"BLAS integer limit {BLAS_INT_MAX}"
            )
        if sym in ("T", "B") and "T" in dims and "B" in dims:
            rows = dims["T"] * dims["B"]
            if rows > BLAS_INT_MAX:
                raise ValueError(
                    f"T * B = {rows} rows (T from {source('T')}, B from "
                    f"{source('B')}) exceeds the BLAS integer limit {BLAS_INT_MAX}"
                )

    def check_sizes(self):
        """T >= 1 and C >= 1 (the BLAS limits are checked on binding)."""
        dims = self.dims
        if dims.get("T", 1) < 1:
            raise ValueError(
                f"{self._source('T')} (T, the number of time steps) must be >= 1"
            )
        if dims.get("C", 1) < 1:
            raise ValueError(
                f"{self._source('C')} (C, the number of classes) must be >= 1"
            )


def _spelled(symbols):
    """("T", "B") -> "(T, B)"; ("H",) -> "(H,)"."""
    return "(" + ", ".join(symbols) + ("," if len(symbols) == 1 else "") + ")"


def check_nbytes(what, shape, dtype):
    """Refuses an array larger than the address space before NumPy is asked
    for it; one that merely exceeds the memory raises NumPy's MemoryError.
    (Inputs need no such check: NumPy never creates an array, nor a view,
    beyond the address space, so their copies at most run out of memory.)"""
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes > INDEX_MAX:
        raise ValueError(
            f"{what} would need an array of shape {shape} and dtype {dtype}: "
            f"{nbytes} bytes, more than the address space"
        )


def check_index(name, value):
    """A Python or NumPy integer (not bool) that fits the kernels' Py_ssize_t."""
    if type(value) is int and INDEX_MIN <= value <= INDEX_MAX:
        return value  # the common case, without the slow check of an ABC
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    value = int(value)
    if not INDEX_MIN <= value <= INDEX_MAX:
        raise ValueError(
            f"{name} must lie in [{INDEX_MIN}, {INDEX_MAX}], got {value}"
        )
    return value


def check_axis(axis, ndim):
    """axis as an index into the ndim axes of x, in [0, ndim)."""
    axis = check_index("axis", axis)
    if not -ndim <= axis < ndim:
        raise ValueError(
            f"axis {axis} is out of bounds for x with {ndim} dimension(s)"
        )
    return axis % ndim


def check_mode(mode):
    """The loss mode of loss_and_grads: "seq" or "last"."""
    if not isinstance(mode, str) or mode not in ("seq", "last"):
        raise ValueError(f"mode must be 'seq' or 'last', got {mode!r}")
    return mode


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
    if flat.dtype == np.intp:  # the kernels' dtype: checked in one compiled pass
        flat = np.ascontiguousarray(flat)
        if targets_in_range(flat, C, ignore_index):
            return flat
    elif not flat.size or (flat.min() >= 0 and flat.max() < C):
        # other integer dtypes are range-checked before the cast, which
        # could wrap a huge unsigned value onto ignore_index
        return np.ascontiguousarray(flat, dtype=np.intp)
    bad = (flat != ignore_index) & ((flat < 0) | (flat >= C))
    if bad.any():
        value = flat[np.argmax(bad)]
        raise ValueError(
            f"targets must lie in [0, C) = [0, {C}) or equal ignore_index="
            f"{ignore_index}, got {value}"
        )
    return np.ascontiguousarray(flat, dtype=np.intp)


def check_real(name, value, low=-math.inf, high=math.inf, *, low_open=False,
               high_open=False, finite=True):
    """A real number (not bool) in the interval from low to high, as a float.

    NaN is always rejected; so are infinities when ``finite``.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    above = value > low if low_open else value >= low
    below = value < high if high_open else value <= high
    if not (above and below and (math.isfinite(value) or not finite)):
        if high == math.inf:
            expected = f"{'>' if low_open else '>='} {low:g}"
        else:
            expected = (f"in {'(' if low_open else '['}{low:g}, {high:g}"
                        f"{')' if high_open else ']'}")
        kind = "a finite number" if finite else "a number"
        raise ValueError(f"{name} must be {kind} {expected}, got {value!r}")
    return value


def check_inplace_arrays(name, arrays):
    """A mapping of str keys to NumPy arrays that will be modified in place:
    each C-contiguous and writeable, all of one native float dtype (float32
    or float64).  Nothing is copied (a copy would not reach the caller's
    arrays).  Returns (keys, arrays, dtype); dtype is None when empty."""
    if not isinstance(arrays, Mapping):
        raise TypeError(f"{name} must be a mapping of names to arrays, got "
                        f"{type(arrays).__name__}")
    keys, values, dtype = [], [], None
    for key, arr in arrays.items():
        where = f"{name}[{key!r}]"
        if not isinstance(key, str):
            raise TypeError(f"{name} keys must be strings, got {key!r}")
        if not isinstance(arr, np.ndarray):
            raise TypeError(f"{where} must be a NumPy array (it is updated in "
                            f"place), got {type(arr).__name__}")
        if arr.dtype not in FLOAT_DTYPES:
            raise TypeError(f"{where} must have dtype float32 or float64 (native "
                            f"byte order), got {arr.dtype}")
        if dtype is None:
            dtype, first = arr.dtype, where
        elif arr.dtype != dtype:
            raise TypeError(f"{where} has dtype {arr.dtype} but {first} has dtype "
                            f"{dtype}; all arrays must share one dtype")
        if not arr.flags.c_contiguous:
            raise ValueError(f"{where} must be C-contiguous (it is updated in "
                             f"place, so it cannot be copied)")
        if not arr.flags.writeable:
            raise ValueError(f"{where} must be writeable (it is updated in place)")
        keys.append(key)
        values.append(arr)
    return keys, values, dtype

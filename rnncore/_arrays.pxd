"""NumPy arrays at the kernels' Python entry points, read through NumPy's C
API instead of typed memoryviews.

Acquiring a memoryview costs about 130 ns an array: 3 µs of the 65 µs
training step of a tiny network, whose entry point takes 22 arrays.  The
entry points of rnncore/_recurrence.pyx, _output.pyx and _training.pyx take
ndarrays instead, and check each for what its memoryview would (an ndarray
of the dtype and number of dimensions, C-contiguous, in native byte order,
writeable when written) in a few nanoseconds.  Their callers in rnncore have
validated the arrays' shapes.  A module that cimports this one calls
cnp.import_array() when imported.
"""
cimport numpy as cnp
from cython cimport floating


cdef inline int float_type(object a) except -1:
    """NPY_FLOAT32 or NPY_FLOAT64, the dtype of the ndarray `a`."""
    cdef int t = -1
    if cnp.PyArray_Check(a):
        t = cnp.PyArray_TYPE(<cnp.ndarray>a)
    if t != cnp.NPY_FLOAT32 and t != cnp.NPY_FLOAT64:
        raise TypeError(f"expected a float32 or float64 ndarray, got "
                        f"{type(a).__name__} {getattr(a, 'dtype', '')}")
    return t


cdef inline void *data_of(object a, str name, int typenum, int ndim,
                          bint write) except? NULL:
    """The data of `a`, an ndarray of typenum with ndim dimensions, in native
    byte order, C-contiguous and, if `write`, writeable."""
    cdef cnp.ndarray arr
    if cnp.PyArray_Check(a):
        arr = <cnp.ndarray>a
        if (cnp.PyArray_TYPE(arr) == typenum and cnp.PyArray_NDIM(arr) == ndim
                and cnp.PyArray_IS_C_CONTIGUOUS(arr)
                and cnp.PyArray_ISNOTSWAPPED(arr)
                and (not write or cnp.PyArray_ISWRITEABLE(arr))):
            return cnp.PyArray_DATA(arr)
    raise ValueError(
        f"{name} must be a C-contiguous{' writeable' if write else ''} "
        f"{ndim}-D ndarray of {cnp.PyArray_DescrFromType(typenum)}, got "
        f"{type(a).__name__} {getattr(a, 'dtype', '')} "
        f"{getattr(a, 'shape', '')}")


cdef inline const floating *reads(floating kind, object a, str name,
                                  int ndim) except? NULL:
    """data_of for an array the kernel reads, of the dtype of `kind` (whose
    value is unused)."""
    return <const floating *>data_of(
        a, name, cnp.NPY_FLOAT32 if floating is float else cnp.NPY_FLOAT64, ndim,
        False)


cdef inline floating *writes(floating kind, object a, str name,
                             int ndim) except? NULL:
    """data_of for an array the kernel writes, of the dtype of `kind`."""
    return <floating *>data_of(
        a, name, cnp.NPY_FLOAT32 if floating is float else cnp.NPY_FLOAT64, ndim,
        True)


cdef inline const Py_ssize_t *reads_index(object a, str name) except? NULL:
    """data_of for a 1-D np.intp array the kernel reads."""
    return <const Py_ssize_t *>data_of(a, name, cnp.NPY_INTP, 1, False)


cdef inline Py_ssize_t dim(object a, int axis) noexcept:
    """The size of an axis of an ndarray that data_of accepted."""
    return cnp.PyArray_DIMS(<cnp.ndarray>a)[axis]


# An optional array the caller leaves out is passed empty (its first axis of
# size 0): these give NULL for it, the kernels' sign of an absent array.

cdef inline const floating *optional_reads(floating kind, object a, str name,
                                           int ndim) except? NULL:
    """reads, or NULL for an absent array."""
    cdef const floating *p = reads(kind, a, name, ndim)
    if dim(a, 0) == 0:
        p = NULL
    return p


cdef inline floating *optional_writes(floating kind, object a, str name,
                                      int ndim) except? NULL:
    """writes, or NULL for an absent array."""
    cdef floating *p = writes(kind, a, name, ndim)
    if dim(a, 0) == 0:
        p = NULL
    return p


cdef inline const Py_ssize_t *optional_index(object a, str name) except? NULL:
    """reads_index, or NULL for an absent array (lengths)."""
    cdef const Py_ssize_t *p = reads_index(a, name)
    if dim(a, 0) == 0:
        p = NULL
    return p

"""The checks of the common call, compiled: arguments that are aligned,
C-contiguous ndarrays of float32 or float64 in native byte order, all of one
dtype, with consistent shapes, every size >= 1, within BLAS's limits.  The
public functions (rnncore.functional) pass such arguments to the kernels as
they are.  Each check returns None for any other call, which then takes the
full checks of rnncore._validation: those convert the arguments or name the
problem, and accept every call accepted here, with the same result.

In Python these checks cost more than the arithmetic of a small call
(1.4 µs of a 7 µs one-step forward pass); here, tens of nanoseconds.
"""
cimport numpy as cnp

from rnncore._validation import BLAS_INT_MAX as _BLAS_INT_MAX
from rnncore._validation import INDEX_MAX as _INDEX_MAX

cnp.import_array()

cdef Py_ssize_t BLAS_INT_MAX = _BLAS_INT_MAX, INDEX_MAX = _INDEX_MAX


cdef inline int plain_type(object a, int typenum):
    """a's type number if a is an aligned, C-contiguous ndarray (not a
    subclass) of float32 or float64 in native byte order, and of typenum
    unless that is -1; else -1."""
    if not cnp.PyArray_CheckExact(a):
        return -1
    cdef cnp.ndarray arr = <cnp.ndarray>a
    cdef int t = cnp.PyArray_TYPE(arr)
    if ((t != cnp.NPY_FLOAT32 and t != cnp.NPY_FLOAT64)
            or (typenum != -1 and t != typenum)
            or not cnp.PyArray_IS_C_CONTIGUOUS(arr)
            or not cnp.PyArray_ISALIGNED(arr)
            or not cnp.PyArray_ISNOTSWAPPED(arr)):
        return -1
    return t


cdef inline bint fits(Py_ssize_t a, Py_ssize_t b, Py_ssize_t c,
                      Py_ssize_t d) noexcept:
    """a·b·c·d <= INDEX_MAX for sizes >= 1, without overflow."""
    return (a <= INDEX_MAX // b and a * b <= INDEX_MAX // c
            and a * b * c <= INDEX_MAX // d)


cdef inline bint has_shape(cnp.ndarray a, Py_ssize_t n0, Py_ssize_t n1) noexcept:
    """a is 1-D of n0 elements (n1 < 0) or 2-D of n0 × n1."""
    cdef cnp.npy_intp *s = cnp.PyArray_DIMS(a)
    if n1 < 0:
        return cnp.PyArray_NDIM(a) == 1 and s[0] == n0
    return cnp.PyArray_NDIM(a) == 2 and s[0] == n0 and s[1] == n1


cdef tuple recurrence_dims(object x, object W_xh, object W_hh, object b_h):
    """(T, B, D, H, type number) of the recurrence's arguments, or None."""
    cdef int t = plain_type(x, -1)
    if (t < 0 or plain_type(W_xh, t) < 0 or plain_type(W_hh, t) < 0
            or plain_type(b_h, t) < 0):
        return None
    cdef cnp.ndarray xa = <cnp.ndarray>x, Ua = <cnp.ndarray>W_hh
    if cnp.PyArray_NDIM(xa) != 3 or cnp.PyArray_NDIM(Ua) != 2:
        return None
    cdef cnp.npy_intp *s = cnp.PyArray_DIMS(xa)
    cdef Py_ssize_t T = s[0], B = s[1], D = s[2], H = cnp.PyArray_DIMS(Ua)[0]
    cdef Py_ssize_t itemsize = cnp.PyArray_ITEMSIZE(xa)
    if (min(T, B, D, H) < 1 or not has_shape(Ua, H, H)
            or not has_shape(<cnp.ndarray>W_xh, H, D)
            or not has_shape(<cnp.ndarray>b_h, H, -1)
            or not fits(T, B, 1, 1) or T * B > BLAS_INT_MAX
            or not fits(T, B, max(D, H), itemsize)):
        return None
    return T, B, D, H, t


def plain_recurrence_dims(x, W_xh, W_hh, b_h):
    """(T, B, D, H) for x (T, B, D), W_xh (H, D), W_hh (H, H) and b_h (H,)
    that need no conversion; None otherwise."""
    dims = recurrence_dims(x, W_xh, W_hh, b_h)
    return None if dims is None else dims[:4]


def plain_train_dims(x, W_xh, W_hh, b_h, W_hy, b_y, targets, bint seq):
    """(T, B, D, H, C) for the recurrence's arguments, W_hy (C, H), b_y (C,)
    and targets, an np.intp ndarray of shape (T, B) (seq) or (B,), that need
    no conversion; None otherwise."""
    dims = recurrence_dims(x, W_xh, W_hh, b_h)
    if dims is None:
        return None
    cdef Py_ssize_t T = dims[0], B = dims[1], H = dims[3]
    cdef int t = dims[4]
    if (plain_type(W_hy, t) < 0 or plain_type(b_y, t) < 0
            or not cnp.PyArray_CheckExact(targets)):
        return None
    cdef cnp.ndarray Va = <cnp.ndarray>W_hy, ta = <cnp.ndarray>targets
    if cnp.PyArray_NDIM(Va) != 2:
        return None
    cdef Py_ssize_t C = cnp.PyArray_DIMS(Va)[0]
    if (C < 1 or not has_shape(Va, C, H) or not has_shape(<cnp.ndarray>b_y, C, -1)
            or cnp.PyArray_TYPE(ta) != cnp.NPY_INTP
            or not cnp.PyArray_IS_C_CONTIGUOUS(ta)
            or not cnp.PyArray_ISALIGNED(ta) or not cnp.PyArray_ISNOTSWAPPED(ta)
            or not (has_shape(ta, T, B) if seq else has_shape(ta, B, -1))
            or not fits(T, B, C, cnp.PyArray_ITEMSIZE(Va))):
        return None
    return T, B, dims[2], H, C


def plain_output_dims(hs, W_hy, b_y):
    """(N, H, C) for hs (..., H) (N rows: the product of its leading
    dimensions), W_hy (C, H) and b_y (C,) that need no conversion; None
    otherwise."""
    cdef int t = plain_type(hs, -1)
    if t < 0 or plain_type(W_hy, t) < 0 or plain_type(b_y, t) < 0:
        return None
    cdef cnp.ndarray ha = <cnp.ndarray>hs, Va = <cnp.ndarray>W_hy
    cdef int nd = cnp.PyArray_NDIM(ha)
    if nd == 0 or cnp.PyArray_NDIM(Va) != 2:
        return None
    cdef Py_ssize_t H = cnp.PyArray_DIMS(ha)[nd - 1], C = cnp.PyArray_DIMS(Va)[0]
    cdef Py_ssize_t N = cnp.PyArray_SIZE(ha) // H if H else 0
    if (min(N, H, C) < 1 or not has_shape(Va, C, H)
            or not has_shape(<cnp.ndarray>b_y, C, -1) or N > BLAS_INT_MAX
            or not fits(N, max(H, C), cnp.PyArray_ITEMSIZE(ha), 1)):
        return None
    return N, H, C

# The one place rnncore calls BLAS: scipy's LAPACK/BLAS (the OpenBLAS SciPy
# ships), through scipy.linalg.cython_blas, so there is no link step.
#
# All rnncore arrays are C-contiguous (row-major); BLAS is column-major.  A
# row-major m×n matrix is the column-major n×m transpose, so
#     C = op(A)·op(B)   (row-major)   is computed as   Cᵀ = op(B)ᵀ·op(A)ᵀ,
# i.e. the column-major routine with the operands swapped.
from cython cimport floating
from libc.string cimport memset
from scipy.linalg.cython_blas cimport sgemm, dgemm

from rnncore._simd cimport small_gemm_acc

# Row counts up to which the per-step product h·W (h: rows × H) runs in
# rnncore's own kernel (_step_gemm.h) instead of BLAS.  Measured one
# product at a time, float32, one thread (benchmarks/step_product.c,
# docs/performance-notes.md): the own kernel is as fast as SciPy's OpenBLAS
# or faster up to 32 rows for H from 100 to 512 (up to 5x at H = 512 and
# 4-8 rows, where BLAS pays its fixed costs), and slower past 32 rows.
cdef enum:
    SMALL_GEMM_MAX_ROWS = 32


cdef inline void gemm(bint trans_a, bint trans_b, Py_ssize_t m, Py_ssize_t n,
                      Py_ssize_t k, floating alpha, const floating *a,
                      Py_ssize_t lda, const floating *b, Py_ssize_t ldb,
                      floating beta, floating *c, Py_ssize_t ldc) noexcept nogil:
    """C (m×n) <- alpha·op(A)·op(B) + beta·C, row-major; op(A) is m×k.

    The callers check in Python that every size fits BLAS's 32-bit int.
    """
    cdef Py_ssize_t i
    if m == 0 or n == 0:
        return
    if k == 0:  # no product: C <- beta·C (BLAS rejects lda = 0)
        for i in range(m * n):
            c[i] = 0 if beta == 0 else beta * c[i]
        return
    cdef char ta = b'T' if trans_a else b'N'
    cdef char tb = b'T' if trans_b else b'N'
    cdef int im = <int>m, in_ = <int>n, ik = <int>k
    cdef int ilda = <int>lda, ildb = <int>ldb, ildc = <int>ldc
    # scipy's signatures lack const; BLAS does not write to A or B.
    if floating is float:
        sgemm(&tb, &ta, &in_, &im, &ik, &alpha, <float *>b, &ildb,
              <float *>a, &ilda, &beta, c, &ildc)
    else:
        dgemm(&tb, &ta, &in_, &im, &ik, &alpha, <double *>b, &ildb,
              <double *>a, &ilda, &beta, c, &ildc)


cdef inline void step_gemm(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                           const floating *a, const floating *b, bint accumulate,
                           floating *c) noexcept nogil:
    """C (m×n) <- A (m×k)·B (k×n) (+ C if accumulate), all contiguous.

    The product of one time step: BLAS for large batches, rnncore's own
    kernel for small ones.
    """
    if m <= SMALL_GEMM_MAX_ROWS:
        if not accumulate:
            memset(c, 0, m * n * sizeof(floating))
        small_gemm_acc(m, n, k, a, b, c)
    else:
        gemm(False, False, m, n, k, 1, a, k, b, n, 1 if accumulate else 0, c, n)

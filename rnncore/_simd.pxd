# Element-wise kernels from _simd.h and the per-step products from
# _step_gemm.h and _packed_gemm.h, with one fused entry point per kernel.
from cython cimport floating


cdef extern from "_simd.h" nogil:
    void rnc_tanh_inplace_f32(float *x, Py_ssize_t n)
    void rnc_tanh_inplace_f64(double *x, Py_ssize_t n)
    void rnc_tanh_backward_f32(float *delta, const float *h, const float *carry,
                               Py_ssize_t n)
    void rnc_tanh_backward_f64(double *delta, const double *h, const double *carry,
                               Py_ssize_t n)
    double rnc_softmax_row_f32(const float *z, float *p, Py_ssize_t n, float scale,
                               float *zmax)
    double rnc_softmax_row_f64(const double *z, double *p, Py_ssize_t n,
                               double scale, double *zmax)
    void rnc_adam_f32(Py_ssize_t n, float *p, const float *g, float *m,
                      float *v, float decay, float l2, float w1, float beta2,
                      float c2, float neg_step, float eps)
    void rnc_adam_f64(Py_ssize_t n, double *p, const double *g, double *m,
                      double *v, double decay, double l2, double w1,
                      double beta2, double c2, double neg_step, double eps)
    void rnc_adagrad_f32(Py_ssize_t n, float *p, const float *g, float *s,
                         float neg_clr, float l2, float eps)
    void rnc_adagrad_f64(Py_ssize_t n, double *p, const double *g, double *s,
                         double neg_clr, double l2, double eps)
    double rnc_sum_squares_f32(Py_ssize_t n, const float *g)
    double rnc_sum_squares_f64(Py_ssize_t n, const double *g)
    const char *rnc_simd_isa()
    bint rnc_half_rate_avx512()


cdef extern from "_step_gemm.h" nogil:
    void rnc_step_gemm_acc_f32(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                               const float *A, const float *B, float *C)
    void rnc_step_gemm_acc_f64(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                               const double *A, const double *B, double *C)
    void rnc_small_gemm_acc_f32(int ta, Py_ssize_t m, Py_ssize_t n,
                                Py_ssize_t k, const float *A, Py_ssize_t lda,
                                const float *B, Py_ssize_t ldb, float *C,
                                Py_ssize_t ldc)
    void rnc_small_gemm_acc_f64(int ta, Py_ssize_t m, Py_ssize_t n,
                                Py_ssize_t k, const double *A, Py_ssize_t lda,
                                const double *B, Py_ssize_t ldb, double *C,
                                Py_ssize_t ldc)
    void rnc_transpose_f32(Py_ssize_t r, Py_ssize_t c, const float *W,
                           Py_ssize_t ldw, float *WT, Py_ssize_t ldt)
    void rnc_transpose_f64(Py_ssize_t r, Py_ssize_t c, const double *W,
                           Py_ssize_t ldw, double *WT, Py_ssize_t ldt)


cdef extern from "_packed_gemm.h" nogil:
    Py_ssize_t rnc_packed_len_f32(Py_ssize_t k, Py_ssize_t n)
    Py_ssize_t rnc_packed_len_f64(Py_ssize_t k, Py_ssize_t n)
    void rnc_pack_f32(Py_ssize_t k, Py_ssize_t n, const float *M, int trans, float *P)
    void rnc_pack_f64(Py_ssize_t k, Py_ssize_t n, const double *M, int trans,
                      double *P)
    void rnc_packed_gemm_f32(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const float *A,
                             const float *P, int accumulate, float *C,
                             Py_ssize_t ldc)
    void rnc_packed_gemm_f64(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                             const double *A, const double *P, int accumulate,
                             double *C, Py_ssize_t ldc)
    int rnc_gemm_tn_f32(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const float *A,
                        Py_ssize_t lda, const float *B, Py_ssize_t ldb,
                        int accumulate, float *C, Py_ssize_t ldc)
    ctypedef struct rnc_split_step:
        Py_ssize_t m, n, k
        const void *A
        const void *P
        void *C
        int accumulate, apply_tanh
        void *delta
        const void *h
    void rnc_split_part_f32(void *arg, int part, int parts)
    void rnc_split_part_f64(void *arg, int part, int parts)


cdef inline void tanh_inplace(floating *x, Py_ssize_t n) noexcept nogil:
    """x <- tanh(x)"""
    if floating is float:
        rnc_tanh_inplace_f32(x, n)
    else:
        rnc_tanh_inplace_f64(x, n)


cdef inline void tanh_backward(floating *delta, const floating *h,
                               const floating *carry, Py_ssize_t n) noexcept nogil:
    """delta <- (1 - h²) ⊙ (delta + carry)"""
    if floating is float:
        rnc_tanh_backward_f32(delta, h, carry, n)
    else:
        rnc_tanh_backward_f64(delta, h, carry, n)


cdef inline double softmax_row(const floating *z, floating *p, Py_ssize_t n,
                               floating scale, floating *zmax) noexcept nogil:
    """p <- scale · softmax(z), zmax <- max(z); returns log Σ exp(z - zmax).

    logsumexp(z) = zmax + the result; the two are kept apart so that
    z - logsumexp(z) = (z - zmax) - result stays exact for huge logits.
    p may alias z.
    """
    if floating is float:
        return rnc_softmax_row_f32(z, p, n, scale, zmax)
    else:
        return rnc_softmax_row_f64(z, p, n, scale, zmax)


cdef inline void small_gemm_acc(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                                const floating *A, const floating *B,
                                floating *C) noexcept nogil:
    """C (m×n) += A (m×k)·B (k×n), contiguous row-major, C not aliasing."""
    if floating is float:
        rnc_step_gemm_acc_f32(m, n, k, A, B, C)
    else:
        rnc_step_gemm_acc_f64(m, n, k, A, B, C)


cdef inline void small_gemm_strided_acc(bint trans_a, Py_ssize_t m, Py_ssize_t n,
                                        Py_ssize_t k, const floating *A,
                                        Py_ssize_t lda, const floating *B,
                                        Py_ssize_t ldb, floating *C,
                                        Py_ssize_t ldc) noexcept nogil:
    """C (m×n) += op(A)·B, row-major with leading dimensions, C not
    aliasing."""
    if floating is float:
        rnc_small_gemm_acc_f32(trans_a, m, n, k, A, lda, B, ldb, C, ldc)
    else:
        rnc_small_gemm_acc_f64(trans_a, m, n, k, A, lda, B, ldb, C, ldc)


cdef inline void transpose(Py_ssize_t r, Py_ssize_t c, const floating *W,
                           Py_ssize_t ldw, floating *WT,
                           Py_ssize_t ldt) noexcept nogil:
    """WT (c×r, leading dimension ldt) <- Wᵀ, W r×c (leading dimension ldw)"""
    if floating is float:
        rnc_transpose_f32(r, c, W, ldw, WT, ldt)
    else:
        rnc_transpose_f64(r, c, W, ldw, WT, ldt)


cdef inline void pack(Py_ssize_t k, Py_ssize_t n, const floating *M, bint trans,
                      floating *P) noexcept nogil:
    """P <- the k×n matrix M (or Mᵀ for an n×k M when trans) in the panel
    layout packed_gemm reads (_packed_gemm.h)."""
    if floating is float:
        rnc_pack_f32(k, n, M, trans, P)
    else:
        rnc_pack_f64(k, n, M, trans, P)


cdef inline void packed_gemm(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k,
                             const floating *A, const floating *P, bint accumulate,
                             floating *C) noexcept nogil:
    """C (m×n) <- A (m×k)·B (+ C if accumulate), B packed in P by pack."""
    if floating is float:
        rnc_packed_gemm_f32(m, n, k, A, P, accumulate, C, n)
    else:
        rnc_packed_gemm_f64(m, n, k, A, P, accumulate, C, n)

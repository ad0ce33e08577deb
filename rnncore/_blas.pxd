# The one place rnncore calls BLAS: scipy's LAPACK/BLAS (the OpenBLAS SciPy
# ships), through scipy.linalg.cython_blas, so there is no link step.
#
# All rnncore arrays are C-contiguous (row-major); BLAS is column-major.  A
# row-major m×n matrix is the column-major n×m transpose, so
#     C = op(A)·op(B)   (row-major)   is computed as   Cᵀ = op(B)ᵀ·op(A)ᵀ,
# i.e. the column-major routine with the operands swapped.
from cython cimport floating
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy, memset
from scipy.linalg.cython_blas cimport sgemm, dgemm

from rnncore._parallel cimport blas_threads, claim_team, team_split
from rnncore._simd cimport (pack, packed_gemm, rnc_gemm_tn_f32, rnc_half_rate_avx512,
                            rnc_packed_len_f32,
                            rnc_packed_len_f64,
                            rnc_split_part_f32, rnc_split_part_f64, rnc_split_step,
                            small_gemm_acc, small_gemm_strided_acc, tanh_backward,
                            tanh_inplace, transpose)

# The per-step product h·W (h: rows × H, W: H × H) runs in one of four
# kernels, chosen once per call by step_kind (measured one product at a
# time, float32, one thread: benchmarks/step_product.c, table in
# docs/performance-notes.md):
# - in a call that holds the team of helper threads (rnncore/_parallel.pyx:
#   team_for_steps), the packed kernel shared by the team, each thread a share
#   of the rows;
# - _packed_gemm.h on W packed once per call: 1.2-1.4x faster than SciPy's
#   OpenBLAS (which repacks W at every step) and than the small kernel, from
#   8 rows at H = 128, 4 at 256, 2 at 512, 1 at 1024.  Only where the
#   padding of W's columns to whole panels wastes at most 1/8 (H = 100 pads
#   to 128 and loses), and only with a buffer to pack into.  Where AVX-512
#   runs at half rate (AMD Zen 4), the small kernel instead from
#   HALF_RATE_STEP_MIN_ROWS rows;
# - otherwise, up to SMALL_GEMM_MAX_ROWS rows, _step_gemm.h on W as it is
#   (BLAS's fixed costs exceed the arithmetic there: up to 5x faster);
# - otherwise BLAS, and also when BLAS runs several threads and the product
#   has at least THREADED_STEP_MIN_FMAS multiply-adds, enough to gain from
#   them (the own kernels run on the calling thread).
cdef enum:
    SMALL_GEMM_MAX_ROWS = 32
    PACKED_MIN_ROW_ELEMENTS = 1024
    PACKED_MIN_H = 128
    THREADED_STEP_MIN_FMAS = 1 << 24
    # A call takes the team of helper threads when BLAS may run several
    # threads, W packs and each per-step product has at least this many
    # multiply-adds.  Two threads then gained 1.45x at 32 × 128 × 128 and
    # 1.8x at 64 × 256 × 256 per step (tanh included).
    SPLIT_STEP_MIN_FMAS = 1 << 19
    # The call's other products split over the team from this many
    # multiply-adds (a task costs about 0.4 µs).
    SPLIT_GEMM_MIN_FMAS = 1 << 17
    # Below this many multiply-adds gemm runs _step_gemm.h's kernel on op(A)·B
    # instead of BLAS, whose fixed cost per call (packing both operands, a
    # few µs) then exceeds the arithmetic: 1.2-2x faster there (a transposed
    # B would need a dot-product kernel, which lost to BLAS; float32 copies
    # Bᵀ instead, see TRANSPOSED_B_MAX_BYTES).  See docs/performance-notes.md.
    SMALL_GEMM_MAX_FMAS = 1 << 18
    # Larger float32 products op(A)·B go to the same kernel too when B's
    # rows are narrow (at most SMALL_GEMM_MAX_ROW_BYTES: 128 columns) and
    # both operands together fit in SMALL_GEMM_MAX_BYTES, well inside L2,
    # from where the kernel reads B once per 4 (AVX-512: 6) rows of C: a
    # backward chunk's weight gradients δᵀ·x, δᵀ·h and its ∂L/∂h =
    # dlogits·W_hy at small hidden sizes.  One product at a time that was
    # 1.0-2x faster than BLAS, which packs both operands at every call
    # (benchmarks/chunk_products.c);
    # past these limits BLAS won, and float64 was mixed, so it stays on BLAS.
    SMALL_GEMM_MAX_ROW_BYTES = 512
    SMALL_GEMM_MAX_BYTES = 1 << 18
    # A float32 product A·Bᵀ of at most SMALL_GEMM_MAX_FMAS multiply-adds
    # and at least TRANSPOSED_B_MIN_ROWS rows (the input projection x·W_xhᵀ
    # and the logits h·W_hyᵀ of short calls) runs in the same kernel on a
    # copy of Bᵀ, when that copy takes at most TRANSPOSED_B_MAX_BYTES (malloc
    # serves it from the heap, without a system call).  On an AVX2 Zen 3,
    # copy included, 1.2-1.7x faster than SciPy's OpenBLAS from 16 rows (25
    # × 100 × 65: 5.2 against 8.0 µs); fewer rows amortise the copy less,
    # and on an AVX-512 Zen 4 a single row lost 4x to OpenBLAS's gemv.
    # float64 lost or broke even: it stays on BLAS
    # (benchmarks/chunk_products.c).
    TRANSPOSED_B_MIN_ROWS = 16
    TRANSPOSED_B_MAX_BYTES = 1 << 16
    # On CPUs that run AVX-512 at half rate (rnc_half_rate_avx512: AMD Zen
    # 4) the kernel beat SciPy's OpenBLAS on every such product measured
    # with rows of up to 256 columns, float32 and float64 alike, 1.03-1.55x,
    # up to 6400 × 256 × 128: there it takes every op(A)·B with rows of at
    # most HALF_RATE_MAX_ROW_BYTES whose B (k × n) fits in
    # HALF_RATE_MAX_B_BYTES, half of L2, from where it is read once per 6
    # rows of C.  (With rows of 1024 columns, the large workload's
    # dlogitsᵀ·h, C no longer stays in L2 beside B: its training step lost
    # up to 1.3x.)
    HALF_RATE_MAX_ROW_BYTES = 1024
    HALF_RATE_MAX_B_BYTES = 1 << 19
    # There too the per-step products of at least HALF_RATE_STEP_MIN_ROWS
    # rows that would run packed on one thread run in the small kernel up
    # to H = HALF_RATE_STEP_MAX_H: 1.0-1.12x faster at 16-256 rows (slower
    # at 2 and 8), even at H = 1024, whose W no longer fits in L2.
    HALF_RATE_STEP_MIN_ROWS = 16
    HALF_RATE_STEP_MAX_H = 512
    # The other float32 products Aᵀ·B (trans_a: a backward chunk's weight
    # gradients, above the small kernel's limits) with C of at most
    # TN_MAX_DIM rows and columns run in _packed_gemm.h's rnc_gemm_tn_f32,
    # which copies both operands row by row instead of transposing them:
    # on an AVX2 Zen 3, 1.04-1.15x faster than SciPy's OpenBLAS at 100-256
    # rows and columns (the medium workload's 256 × 256 × 384: 574 against
    # 595 µs), even at 256 × 512, slower from 512 rows, and slower in
    # float64, which stays on BLAS (benchmarks/chunk_products.c, table in
    # docs/performance-notes.md).  It runs only where it was measured, on
    # CPUs with AVX2 and without AVX-512, and only where BLAS would run the
    # product on one thread too (a call that splits its products over the
    # team runs BLAS on one; otherwise BLAS may thread it).
    TN_MAX_DIM = 256

cdef enum StepKind:
    STEP_SMALL
    STEP_PACKED
    STEP_SPLIT
    STEP_BLAS


ctypedef struct GemmTask:
    bint trans_a, trans_b, single, serial
    Py_ssize_t m, n, k, lda, ldb, ldc
    double alpha, beta
    const void *a
    const void *b
    void *c
    const void *bias


cdef inline bint blas_serial(int parts) noexcept nogil:
    """Whether BLAS runs a product of a call holding `parts` (claim_team)
    on one thread: the team holds BLAS at one, or BLAS has one."""
    return abs(parts) >= 2 or blas_threads() < 2


cdef inline void gemm(bint trans_a, bint trans_b, Py_ssize_t m, Py_ssize_t n,
                      Py_ssize_t k, floating alpha, const floating *a,
                      Py_ssize_t lda, const floating *b, Py_ssize_t ldb,
                      floating beta, floating *c, Py_ssize_t ldc,
                      bint serial) noexcept nogil:
    """C (m×n) <- alpha·op(A)·op(B) + beta·C, row-major; op(A) is m×k.
    serial: BLAS would run it on one thread (blas_serial), so an own
    single-threaded kernel loses nothing.

    The callers check in Python that every size fits BLAS's 32-bit int.
    """
    cdef Py_ssize_t i
    cdef floating *bt = NULL
    if m == 0 or n == 0:
        return
    if k == 0:  # no product: C <- beta·C (BLAS rejects lda = 0)
        for i in range(m * n):
            c[i] = 0 if beta == 0 else beta * c[i]
        return
    if (floating is float and trans_b and alpha == 1 and (beta == 0 or beta == 1)
            and m >= TRANSPOSED_B_MIN_ROWS and m * n * k <= SMALL_GEMM_MAX_FMAS
            and n * k * sizeof(float) <= TRANSPOSED_B_MAX_BYTES):
        bt = <floating *>malloc(n * k * sizeof(floating))
        if bt != NULL:  # else BLAS, below
            transpose(n, k, b, ldb, bt, n)
            b, ldb = bt, n  # op(B) as stored: the kernel below reads it
    if bt != NULL or (
            not trans_b and alpha == 1 and (beta == 0 or beta == 1)
            and (m * n * k <= SMALL_GEMM_MAX_FMAS
                 or (floating is float
                     and n * sizeof(float) <= SMALL_GEMM_MAX_ROW_BYTES
                     and k * (m + n) * sizeof(float) <= SMALL_GEMM_MAX_BYTES)
                 or (n * sizeof(floating) <= HALF_RATE_MAX_ROW_BYTES
                     and k * n * sizeof(floating) <= HALF_RATE_MAX_B_BYTES
                     and rnc_half_rate_avx512()))):
        if beta == 0:
            for i in range(m):
                memset(c + i * ldc, 0, n * sizeof(floating))
        small_gemm_strided_acc(trans_a, m, n, k, a, lda, b, ldb, c, ldc)
        free(bt)
        return
    if (floating is float and trans_a and not trans_b and alpha == 1
            and (beta == 0 or beta == 1) and m <= TN_MAX_DIM and n <= TN_MAX_DIM
            and serial
            and rnc_gemm_tn_f32(m, n, k, <const float *>a, lda, <const float *>b,
                                ldb, beta == 1, <float *>c, ldc)):
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


cdef inline void gemm_part(void *arg, int part, int parts) noexcept nogil:
    """Rows [m·part/parts, m·(part+1)/parts) of a GemmTask's C."""
    cdef GemmTask *g = <GemmTask *>arg
    cdef Py_ssize_t r0 = g.m * part // parts, r1 = g.m * (part + 1) // parts
    cdef Py_ssize_t a0 = r0 if g.trans_a else r0 * g.lda, r
    cdef size_t item = sizeof(float) if g.single else sizeof(double)
    if r1 <= r0:
        return
    if g.bias != NULL:
        for r in range(r0, r1):
            memcpy(<char *>g.c + r * g.ldc * item, g.bias, g.n * item)
    if g.single:
        gemm(g.trans_a, g.trans_b, r1 - r0, g.n, g.k, <float>g.alpha,
             <const float *>g.a + a0, g.lda, <const float *>g.b, g.ldb,
             <float>g.beta, <float *>g.c + r0 * g.ldc, g.ldc, g.serial)
    else:
        gemm(g.trans_a, g.trans_b, r1 - r0, g.n, g.k, g.alpha,
             <const double *>g.a + a0, g.lda, <const double *>g.b, g.ldb,
             g.beta, <double *>g.c + r0 * g.ldc, g.ldc, g.serial)


cdef inline void pgemm(int parts, bint trans_a, bint trans_b, Py_ssize_t m,
                       Py_ssize_t n, Py_ssize_t k, floating alpha,
                       const floating *a, Py_ssize_t lda, const floating *b,
                       Py_ssize_t ldb, floating beta, floating *c,
                       Py_ssize_t ldc) noexcept nogil:
    """gemm, split by rows of C into |parts| (from claim_team: over the
    team when positive, one by one on this thread when negative; 1: gemm
    itself)."""
    pgemm_bias(parts, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta,
               <const floating *>NULL, c, ldc)


cdef inline void pgemm_bias(int parts, bint trans_a, bint trans_b, Py_ssize_t m,
                            Py_ssize_t n, Py_ssize_t k, floating alpha,
                            const floating *a, Py_ssize_t lda, const floating *b,
                            Py_ssize_t ldb, floating beta, const floating *bias,
                            floating *c, Py_ssize_t ldc) noexcept nogil:
    """pgemm, with every row of C first set to bias (n,) unless bias is
    NULL: each thread fills its own rows (beta applies after)."""
    cdef GemmTask g
    g.trans_a, g.trans_b, g.single = trans_a, trans_b, floating is float
    g.m, g.n, g.k, g.lda, g.ldb, g.ldc = m, n, k, lda, ldb, ldc
    g.alpha, g.beta, g.a, g.b, g.c, g.bias = alpha, beta, a, b, c, bias
    g.serial = blas_serial(parts)
    if abs(parts) < 2 or m < abs(parts) or m * n * k < SPLIT_GEMM_MIN_FMAS:
        gemm_part(&g, 0, 1)
    else:
        team_split(parts, gemm_part, &g)


cdef inline Py_ssize_t packed_len(Py_ssize_t H, const floating *w) noexcept nogil:
    """Length of W (H × H) packed (w only selects the dtype)."""
    if floating is float:
        return rnc_packed_len_f32(H, H)
    else:
        return rnc_packed_len_f64(H, H)


cdef inline bint packs(Py_ssize_t H, const floating *buf,
                       Py_ssize_t buf_len) noexcept nogil:
    """Whether the per-step products take W packed: a buffer for it, and
    padding of at most 1/8 of W in the layout of the widest panels
    (packed_len, enough for every instruction set's narrower ones), so the
    choice is the same on every CPU."""
    cdef Py_ssize_t plen = packed_len(H, buf)
    return H >= PACKED_MIN_H and buf_len >= plen and 8 * plen <= 9 * H * H


cdef inline int team_for_product(Py_ssize_t m, Py_ssize_t n,
                                 Py_ssize_t k) noexcept nogil:
    """The parts for a call whose products have m rows and m·n·k
    multiply-adds (the per-step product, or the output layer's): the team
    claimed (claim_team; release_team(parts) when done) when BLAS may run
    several threads and the product is worth sharing by rows, else 1.  A
    call of the output layer alone takes it too, so that SciPy's BLAS does
    not wake its threads, which would then spin into the next call."""
    if m >= 2 and m * n * k >= SPLIT_STEP_MIN_FMAS and blas_threads() > 1:
        return claim_team()
    return 1


cdef inline int team_for_steps(Py_ssize_t m, Py_ssize_t H, const floating *buf,
                               Py_ssize_t buf_len) noexcept nogil:
    """team_for_product for per-step products of m rows, given the buffer
    the forward steps pack W into: only packed steps are shared."""
    return team_for_product(m, H, H) if packs(H, buf, buf_len) else 1


cdef inline StepKind step_kind(Py_ssize_t m, Py_ssize_t H, const floating *buf,
                               Py_ssize_t buf_len, int parts) noexcept nogil:
    """The kernel for a call's per-step products of m rows, given a buffer
    of buf_len elements for W's copy and the parts of the team the call
    holds (see above)."""
    cdef bint packed = packs(H, buf, buf_len)
    if packed and abs(parts) > 1:
        return STEP_SPLIT
    if (packed and HALF_RATE_STEP_MIN_ROWS <= m and H <= HALF_RATE_STEP_MAX_H
            and rnc_half_rate_avx512()):
        return STEP_SMALL
    if m <= SMALL_GEMM_MAX_ROWS:
        if packed and m * H >= PACKED_MIN_ROW_ELEMENTS:
            return STEP_PACKED
        return STEP_SMALL
    if packed and not (m * H * H >= THREADED_STEP_MIN_FMAS and blas_threads() > 1):
        return STEP_PACKED
    return STEP_BLAS


cdef inline const floating *step_weights(StepKind kind, Py_ssize_t H,
                                         const floating *W, bint transposed,
                                         floating *buf) noexcept nogil:
    """The right operand of the per-step products, W (H × H) or, when
    transposed, Wᵀ, in the layout the kernel `kind` reads: W itself when it
    is already that, else a copy in buf (step_kind chose `kind` for its
    length)."""
    if kind == STEP_PACKED or kind == STEP_SPLIT:
        pack(H, H, W, transposed, buf)
        return buf
    if transposed:
        transpose(H, H, W, H, buf, H)
        return buf
    return W


cdef inline void split_step(int parts, Py_ssize_t m, Py_ssize_t H,
                            const floating *a, const floating *w, bint accumulate,
                            bint apply_tanh, floating *c, floating *delta,
                            const floating *h) noexcept nogil:
    """The packed per-step product over the team, by rows, with tanh or a
    tanh_backward into delta after it (rnc_split_step, _packed_gemm.h)."""
    cdef rnc_split_step s
    s.m, s.n, s.k, s.A, s.P, s.C = m, H, H, a, w, c
    s.accumulate, s.apply_tanh, s.delta, s.h = accumulate, apply_tanh, delta, h
    if floating is float:
        team_split(parts, rnc_split_part_f32, &s)
    else:
        team_split(parts, rnc_split_part_f64, &s)


cdef inline void step_gemm(StepKind kind, int parts, Py_ssize_t m, Py_ssize_t H,
                           const floating *a, const floating *w, bint accumulate,
                           floating *c) noexcept nogil:
    """C (m×H) <- A (m×H)·W (+ C if accumulate), A and C contiguous, W from
    step_weights for the same kind."""
    if kind == STEP_PACKED:
        packed_gemm(m, H, H, a, w, accumulate, c)
    elif kind == STEP_SPLIT:
        split_step(parts, m, H, a, w, accumulate, False, c, NULL, NULL)
    elif kind == STEP_SMALL:
        if not accumulate:
            memset(c, 0, m * H * sizeof(floating))
        small_gemm_acc(m, H, H, a, w, c)
    else:
        gemm(False, False, m, H, H, 1, a, H, w, H, 1 if accumulate else 0, c, H,
             blas_serial(parts))


cdef inline void step_tanh(StepKind kind, int parts, Py_ssize_t m, Py_ssize_t H,
                           const floating *a, const floating *w,
                           floating *c) noexcept nogil:
    """C <- tanh(C + A·W), the forward step (arguments as step_gemm)."""
    if kind == STEP_SPLIT:
        split_step(parts, m, H, a, w, True, True, c, NULL, NULL)
    else:
        step_gemm(kind, parts, m, H, a, w, True, c)
        tanh_inplace(c, m * H)


cdef inline void step_carry(StepKind kind, int parts, Py_ssize_t m, Py_ssize_t H,
                            const floating *d, const floating *w, floating *carry,
                            floating *d_prev, const floating *h_prev) noexcept nogil:
    """The backward step: carry <- d·W (m×H, W from step_weights); then,
    unless d_prev is NULL, the step before's d_prev <- (1 - h_prev²) ⊙
    (d_prev + carry), which the team does for its own rows."""
    if kind == STEP_SPLIT:
        split_step(parts, m, H, d, w, False, False, carry, d_prev, h_prev)
        return
    step_gemm(kind, parts, m, H, d, w, False, carry)
    if d_prev != NULL:
        tanh_backward(d_prev, h_prev, carry, m * H)

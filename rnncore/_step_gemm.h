/*
 * The per-step product of the recurrence for small batches:
 *     C (m×n) += A (m×k)·B (k×n),   row-major, contiguous, C not aliasing.
 * m is the batch (a few rows), n = k = H.  A BLAS call costs a few
 * microseconds of fixed overhead, more than the arithmetic of such a product,
 * so rnncore runs it here.
 *
 * Register blocking: a block of up to 4 rows of C (6 with AVX-512) by
 * several vectors of columns stays in registers for the whole k loop; each
 * step of that loop loads the block's vectors of one row of B and
 * broadcasts one element of A per row, so every load of B serves up to 4
 * (6) rows and C is read and written once.  Blocks of 1 or 2 rows take
 * twice as many vectors, so that enough independent FMA chains hide the FMA
 * latency.  When n is not a multiple of the vector width, the last vector
 * of columns is loaded from n - W (it overlaps columns already done) into
 * an accumulator of its own, and only its new lanes are stored to C: one
 * vector op per k step instead of a scalar loop over the left-over columns.
 *
 * The vectors are GCC/clang vector extensions, so one source compiles to
 * AVX-512, AVX2 or SSE2/NEON code.  On x86-64 Linux with GCC >= 12 (the
 * builds that dispatch, see _simd.h) there are three copies, chosen per call
 * by the CPU's features; elsewhere one copy for the build's baseline, and a
 * plain loop where the compiler has no vector extensions (MSVC).
 */
#ifndef RNNCORE_STEP_GEMM_H
#define RNNCORE_STEP_GEMM_H

#include "_simd.h"

#if defined(__GNUC__) || defined(__clang__)

/* The block update: R rows (1 to 6) by nv vectors of W lanes, plus, when
   `tail`, the vector at column offset toff whose lanes from `skip` on are
   stored to C.  Every element of C is its own chain of multiply-adds that
   starts from C and runs over i in order, as in _packed_gemm.h, so that
   both kernels round alike.  R, nv and tail are compile-time constants at
   every call site (always_inline), so the accumulators and loads become
   registers.  The unroll pragmas make that so: without them GCC kept the
   loops over rows and vectors of the 1- and 2-row blocks, and with them
   the accumulators, in memory (6x slower for one row of H=100 on AVX2). */
#define RNC_SG_ROWS_LOOP RNC_PRAGMA(GCC unroll 8) for (int r = 0; r < R; r++)
#define RNC_SG_VECS_LOOP RNC_PRAGMA(GCC unroll 8) for (int v = 0; v < nv; v++)
#define RNC_SG_BLOCK(NAME, T, V, W, ATTR)                                     \
ATTR RNC_INLINE void NAME(const int R, const int nv, const int tail,          \
                          ptrdiff_t k, const T *A, ptrdiff_t a_rs,            \
                          ptrdiff_t a_is, const T *B, ptrdiff_t ldb, T *C,    \
                          ptrdiff_t ldc, ptrdiff_t toff, int skip)            \
{                                                                             \
    V acc[6][8], at[6], b[8], bt, zero;                                       \
    memset(&zero, 0, sizeof zero);                                            \
    RNC_SG_ROWS_LOOP {                                                        \
        RNC_SG_VECS_LOOP memcpy(&acc[r][v], C + r * ldc + v * W, sizeof(V));  \
        if (tail) memcpy(&at[r], C + r * ldc + toff, sizeof(V));              \
    }                                                                         \
    bt = zero;                                                                \
    for (ptrdiff_t i = 0; i < k; i++) {                                       \
        RNC_SG_VECS_LOOP memcpy(&b[v], B + i * ldb + v * W, sizeof(V));       \
        if (tail) memcpy(&bt, B + i * ldb + toff, sizeof(V));                 \
        RNC_SG_ROWS_LOOP {                                                    \
            const T a = A[r * a_rs + i * a_is]; /* to every lane */           \
            RNC_SG_VECS_LOOP acc[r][v] += a * b[v];                           \
            if (tail) at[r] += a * bt;                                        \
        }                                                                     \
    }                                                                         \
    RNC_SG_ROWS_LOOP {                                                        \
        RNC_SG_VECS_LOOP memcpy(C + r * ldc + v * W, &acc[r][v], sizeof(V));  \
        if (tail) {                                                           \
            T lanes[W];                                                       \
            memcpy(lanes, &at[r], sizeof(V));                                 \
            for (int l = skip; l < W; l++) C[r * ldc + toff + l] = lanes[l];  \
        }                                                                     \
    }                                                                         \
}

/* nv (0 to 7) as a constant */
#define RNC_SG_NV(FN, R, nv, tail, ...)                                       \
    switch (nv) {                                                             \
    case 0: FN(R, 0, tail, __VA_ARGS__); break;                               \
    case 1: FN(R, 1, tail, __VA_ARGS__); break;                               \
    case 2: FN(R, 2, tail, __VA_ARGS__); break;                               \
    case 3: FN(R, 3, tail, __VA_ARGS__); break;                               \
    case 4: FN(R, 4, tail, __VA_ARGS__); break;                               \
    case 5: FN(R, 5, tail, __VA_ARGS__); break;                               \
    case 6: FN(R, 6, tail, __VA_ARGS__); break;                               \
    default: FN(R, 7, tail, __VA_ARGS__); break;                              \
    }

/* R rows of C (a constant): full blocks, then the rest of the columns in
   one block with the overlapping tail vector; n < W goes in half vectors
   and single columns. */
#define RNC_SG_ROWS(NAME, BLOCK, HALF, T, W, WH, NV, ATTR)                    \
ATTR RNC_INLINE void NAME(const int R, ptrdiff_t n, ptrdiff_t k, const T *a,  \
                          ptrdiff_t a_rs, ptrdiff_t a_is, const T *B,         \
                          ptrdiff_t ldb, T *c, ptrdiff_t ldc)                 \
{                                                                             \
    const int nvr = R <= 2 ? 2 * NV : NV;                                     \
    ptrdiff_t j = 0;                                                          \
    for (; j + nvr * W <= n; j += nvr * W)                                    \
        BLOCK(R, nvr, 0, k, a, a_rs, a_is, B + j, ldb, c + j, ldc, 0, 0);     \
    const int nv = (int)((n - j) / W), rem = (int)((n - j) % W);              \
    if (n >= W) {                                                             \
        if (rem) {                                                            \
            RNC_SG_NV(BLOCK, R, nv, 1, k, a, a_rs, a_is, B + j, ldb, c + j,   \
                      ldc, n - W - j, W - rem)                                \
        } else if (nv) {                                                      \
            RNC_SG_NV(BLOCK, R, nv, 0, k, a, a_rs, a_is, B + j, ldb, c + j,   \
                      ldc, 0, 0)                                              \
        }                                                                     \
        return;                                                               \
    }                                                                         \
    if (n - j >= WH) {                                                        \
        HALF(R, 1, 0, k, a, a_rs, a_is, B + j, ldb, c + j, ldc, 0, 0);        \
        j += WH;                                                              \
    }                                                                         \
    for (; j < n; j++)                                                        \
        for (int r = 0; r < R; r++) {                                         \
            T s = c[r * ldc + j];                                             \
            for (ptrdiff_t i = 0; i < k; i++)                                 \
                s += a[r * a_rs + i * a_is] * B[i * ldb + j];                 \
            c[r * ldc + j] = s;                                               \
        }                                                                     \
}

/* C (m×n) += A·B for B k×n with row stride ldb, and A m×k read as
   A[r·a_rs + i·a_is] (a_is = 1: A as it is; a_rs = 1: A stored k×m, i.e.
   the product Aᵀ·B), in blocks of RB rows (4, or 6 where 32 registers hold
   6 × 4 accumulators), then one block of the rows left. */
#define RNC_SG_GEMM(NAME, ROWS, T, RB, ATTR)                                  \
ATTR RNC_INLINE void NAME(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const T *A,  \
                          ptrdiff_t a_rs, ptrdiff_t a_is, const T *B,         \
                          ptrdiff_t ldb, T *C, ptrdiff_t ldc)                 \
{                                                                             \
    ptrdiff_t r = 0;                                                          \
    for (; r + RB <= m; r += RB)                                              \
        ROWS(RB, n, k, A + r * a_rs, a_rs, a_is, B, ldb, C + r * ldc, ldc);   \
    const T *a = A + r * a_rs;                                                \
    T *c = C + r * ldc;                                                       \
    switch (m - r) {                                                          \
    case 5: ROWS(5, n, k, a, a_rs, a_is, B, ldb, c, ldc); break;              \
    case 4: ROWS(4, n, k, a, a_rs, a_is, B, ldb, c, ldc); break;              \
    case 3: ROWS(3, n, k, a, a_rs, a_is, B, ldb, c, ldc); break;              \
    case 2: ROWS(2, n, k, a, a_rs, a_is, B, ldb, c, ldc); break;              \
    case 1: ROWS(1, n, k, a, a_rs, a_is, B, ldb, c, ldc); break;              \
    default: break;                                                           \
    }                                                                         \
}

/* One kernel: T the scalar, V/W the full vector and its lanes, VH/WH the
   half-width vector, NV (<= 4) the vectors per block of 3 or more rows, RB
   the rows of a block, ATTR its target.  rnc_step_gemm: the per-step
   product, all contiguous; rnc_small_gemm: C (m×n) += op(A)·B for small
   products of the rest of a step, row-major with leading dimensions. */
#define RNC_DEFINE_STEP_GEMM(SUF, T, V, W, VH, WH, NV, RB, ATTR)              \
RNC_SG_BLOCK(rnc_sg_block_##SUF, T, V, W, ATTR)                               \
RNC_SG_BLOCK(rnc_sg_half_##SUF, T, VH, WH, ATTR)                              \
RNC_SG_ROWS(rnc_sg_rows_##SUF, rnc_sg_block_##SUF, rnc_sg_half_##SUF, T, W,   \
            WH, NV, ATTR)                                                     \
RNC_SG_GEMM(rnc_sg_gemm_##SUF, rnc_sg_rows_##SUF, T, RB, ATTR)                \
ATTR RNC_UNUSED static void rnc_step_gemm_##SUF(                              \
    ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const T *A, const T *B, T *C)      \
{                                                                             \
    rnc_sg_gemm_##SUF(m, n, k, A, k, 1, B, n, C, n);                          \
}                                                                             \
ATTR RNC_UNUSED static void rnc_small_gemm_##SUF(                             \
    int trans_a, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const T *A,           \
    ptrdiff_t lda, const T *B, ptrdiff_t ldb, T *C, ptrdiff_t ldc)            \
{                                                                             \
    if (trans_a)                                                              \
        rnc_sg_gemm_##SUF(m, n, k, A, 1, lda, B, ldb, C, ldc);                \
    else                                                                      \
        rnc_sg_gemm_##SUF(m, n, k, A, lda, 1, B, ldb, C, ldc);                \
}

typedef float rnc_f32x16 __attribute__((vector_size(64)));
typedef float rnc_f32x8 __attribute__((vector_size(32)));
typedef float rnc_f32x4 __attribute__((vector_size(16)));
typedef float rnc_f32x2 __attribute__((vector_size(8)));
typedef double rnc_f64x8 __attribute__((vector_size(64)));
typedef double rnc_f64x4 __attribute__((vector_size(32)));
typedef double rnc_f64x2 __attribute__((vector_size(16)));
typedef double rnc_f64x1 __attribute__((vector_size(8)));

/* The build's baseline: 16-byte vectors (SSE2, NEON), 2 per block (4 rows
   x 2 accumulators + 2 loads fit 16 registers). */
RNC_DEFINE_STEP_GEMM(f32_base, float, rnc_f32x4, 4, rnc_f32x2, 2, 2, 4, )
RNC_DEFINE_STEP_GEMM(f64_base, double, rnc_f64x2, 2, rnc_f64x1, 1, 2, 4, )

#if RNC_HAVE_DISPATCH
/* AVX2: 16 ymm registers, 2 vectors per block of 4 rows; AVX-512: 32 zmm
   registers, 4 vectors per block of 6 rows (24 accumulators + 4 loads + 1
   broadcast).  Against blocks of 4 rows, the 6 rows read B from L2 a third
   less often: the small workload's float32 chunk products δᵀ·x and δᵀ·h
   took 10-28% less time (benchmarks/chunk_products.c), its training step
   5-6%; blocks of 8 rows by 3 vectors gained nothing more. */
#define RNC_V3 __attribute__((target("arch=x86-64-v3")))
#define RNC_V4 __attribute__((target("arch=x86-64-v4")))
RNC_DEFINE_STEP_GEMM(f32_v3, float, rnc_f32x8, 8, rnc_f32x4, 4, 2, 4, RNC_V3)
RNC_DEFINE_STEP_GEMM(f64_v3, double, rnc_f64x4, 4, rnc_f64x2, 2, 2, 4, RNC_V3)
/* AVX2, float32 op(A)·B with k >= RNC_WIDE_MIN_K and whole vectors of
   columns: 3 vectors per block of 4 rows (12 accumulators), so each row of
   B loaded serves 12 multiply-adds instead of 8.  On AMD Zen 3, one
   product at a time pinned to one CPU, those shapes took 1.02-1.32x less
   time (the small workload's δᵀ·h, 128 × 128 × 128: 56 against 69-75 µs)
   and its training step 1.06-1.07x less; with short k (24-25, the tiny
   workload's chunks) or columns left over (n = 65, 100) 3 vectors lost up
   to 1.25x, hence the rule.  Which block a product runs in changes no bit
   (each element is one chain of multiply-adds over k in order).
   They run RNC_WIDE_KC steps of k at a time over the whole of C: with the
   leading dimensions of 128 floats of the small workload's chunks, every
   row of A and B falls in the same 8 of L1's 64 sets, so a pass over all
   of k evicted the rows that the next block of C reads again; 32 rows of
   B (16 KiB at n = 128) and of A stay.  On AMD Zen 3 the small
   workload's float32 training step took 4.0-4.2 ms against 4.2-4.6 (mode
   seq) and 2.9-3.0 against 3.3 (mode last), fresh processes in turn,
   pinned; blocks of columns as well gained nothing more.  C holds each
   chain between the blocks of k exactly, so no bit changes. */
#define RNC_WIDE_MIN_K 128
#define RNC_WIDE_KC 32
RNC_DEFINE_STEP_GEMM(f32_v3w, float, rnc_f32x8, 8, rnc_f32x4, 4, 3, 4, RNC_V3)
RNC_V3 RNC_UNUSED static void rnc_small_gemm_f32_v3k(
    int ta, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const float *A,
    ptrdiff_t lda, const float *B, ptrdiff_t ldb, float *C, ptrdiff_t ldc)
{
    const ptrdiff_t a_is = ta ? lda : 1; /* A's step along k */
    for (ptrdiff_t i = 0; i < k; i += RNC_WIDE_KC) {
        const ptrdiff_t kc = k - i < RNC_WIDE_KC ? k - i : RNC_WIDE_KC;
        rnc_small_gemm_f32_v3w(ta, m, n, kc, A + i * a_is, lda, B + i * ldb,
                               ldb, C, ldc);
    }
}
RNC_DEFINE_STEP_GEMM(f32_v4, float, rnc_f32x16, 16, rnc_f32x8, 8, 4, 6, RNC_V4)
RNC_DEFINE_STEP_GEMM(f64_v4, double, rnc_f64x8, 8, rnc_f64x4, 4, 4, 6, RNC_V4)

#define RNC_SMALL_GEMM_V3_f32(ta, m, n, k, ...)                               \
    do {                                                                      \
        if ((k) >= RNC_WIDE_MIN_K && (n) % 8 == 0)                            \
            rnc_small_gemm_f32_v3k(ta, m, n, k, __VA_ARGS__);                 \
        else                                                                  \
            rnc_small_gemm_f32_v3(ta, m, n, k, __VA_ARGS__);                  \
    } while (0)
#define RNC_SMALL_GEMM_V3_f64 rnc_small_gemm_f64_v3

#define RNC_STEP_GEMM_DISPATCH(SUF, T)                                        \
RNC_UNUSED static void rnc_step_gemm_acc_##SUF(                               \
    ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const T *A, const T *B, T *C)      \
{                                                                             \
    /* __builtin_cpu_supports reads flags set once at load time */            \
    if (__builtin_cpu_supports("x86-64-v4"))                                  \
        rnc_step_gemm_##SUF##_v4(m, n, k, A, B, C);                           \
    else if (__builtin_cpu_supports("x86-64-v3"))                             \
        rnc_step_gemm_##SUF##_v3(m, n, k, A, B, C);                           \
    else                                                                      \
        rnc_step_gemm_##SUF##_base(m, n, k, A, B, C);                         \
}                                                                             \
RNC_UNUSED static void rnc_small_gemm_acc_##SUF(                              \
    int ta, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const T *A, ptrdiff_t lda, \
    const T *B, ptrdiff_t ldb, T *C, ptrdiff_t ldc)                           \
{                                                                             \
    if (__builtin_cpu_supports("x86-64-v4"))                                  \
        rnc_small_gemm_##SUF##_v4(ta, m, n, k, A, lda, B, ldb, C, ldc);       \
    else if (__builtin_cpu_supports("x86-64-v3"))                             \
        RNC_SMALL_GEMM_V3_##SUF(ta, m, n, k, A, lda, B, ldb, C, ldc);         \
    else                                                                      \
        rnc_small_gemm_##SUF##_base(ta, m, n, k, A, lda, B, ldb, C, ldc);     \
}
#else
#define RNC_STEP_GEMM_DISPATCH(SUF, T)                                        \
RNC_UNUSED static void rnc_step_gemm_acc_##SUF(                               \
    ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const T *A, const T *B, T *C)      \
{                                                                             \
    rnc_step_gemm_##SUF##_base(m, n, k, A, B, C);                             \
}                                                                             \
RNC_UNUSED static void rnc_small_gemm_acc_##SUF(                              \
    int ta, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const T *A, ptrdiff_t lda, \
    const T *B, ptrdiff_t ldb, T *C, ptrdiff_t ldc)                           \
{                                                                             \
    rnc_small_gemm_##SUF##_base(ta, m, n, k, A, lda, B, ldb, C, ldc);         \
}
#endif /* RNC_HAVE_DISPATCH */

RNC_STEP_GEMM_DISPATCH(f32, float)
RNC_STEP_GEMM_DISPATCH(f64, double)

#else /* no vector extensions: the plain loop, which compilers vectorise */

#define RNC_DEFINE_STEP_GEMM_PLAIN(SUF, T)                                    \
static void rnc_step_gemm_acc_##SUF(                                          \
    ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const T *A, const T *B, T *C)      \
{                                                                             \
    for (ptrdiff_t r = 0; r < m; r++)                                         \
        for (ptrdiff_t i = 0; i < k; i++) {                                   \
            const T ai = A[r * k + i];                                        \
            for (ptrdiff_t j = 0; j < n; j++) C[r * n + j] += ai * B[i * n + j]; \
        }                                                                     \
}                                                                             \
static void rnc_small_gemm_acc_##SUF(                                         \
    int ta, ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const T *A, ptrdiff_t lda, \
    const T *B, ptrdiff_t ldb, T *C, ptrdiff_t ldc)                           \
{                                                                             \
    for (ptrdiff_t r = 0; r < m; r++)                                         \
        for (ptrdiff_t i = 0; i < k; i++) {                                   \
            const T ai = ta ? A[i * lda + r] : A[r * lda + i];                \
            for (ptrdiff_t j = 0; j < n; j++)                                 \
                C[r * ldc + j] += ai * B[i * ldb + j];                        \
        }                                                                     \
}
RNC_DEFINE_STEP_GEMM_PLAIN(f32, float)
RNC_DEFINE_STEP_GEMM_PLAIN(f64, double)

#endif /* vector extensions */

/* WT (c×r, leading dimension ldt) <- Wᵀ for W (r×c, leading dimension ldw),
   in 8×8 tiles so that reads and writes both stay in a few cache lines:
   the baseline, moving one element at a time.  Whole tiles have constant
   bounds, so they unroll into plain loads and stores. */
#define RNC_DEFINE_TRANSPOSE_PLAIN(NAME, T)                                   \
RNC_UNUSED static void NAME(ptrdiff_t r, ptrdiff_t c, const T *W,             \
                            ptrdiff_t ldw, T *WT, ptrdiff_t ldt)              \
{                                                                             \
    const ptrdiff_t fr = r - r % 8, fc = c - c % 8;                           \
    for (ptrdiff_t r0 = 0; r0 < fr; r0 += 8)                                  \
        for (ptrdiff_t c0 = 0; c0 < fc; c0 += 8)                              \
            for (int i = 0; i < 8; i++)                                       \
                for (int j = 0; j < 8; j++)                                   \
                    WT[(c0 + j) * ldt + r0 + i] = W[(r0 + i) * ldw + c0 + j]; \
    RNC_TRANSPOSE_EDGES(r, c, fr, fc, W, ldw, WT, ldt)                        \
}
/* the rows and columns past the last whole tile, one element at a time */
#define RNC_TRANSPOSE_EDGES(r, c, fr, fc, W, ldw, WT, ldt)                    \
    for (ptrdiff_t i = 0; i < r; i++)                                         \
        for (ptrdiff_t j = i < fr ? fc : 0; j < c; j++)                       \
            WT[j * ldt + i] = W[i * ldw + j];

#if RNC_HAVE_DISPATCH
/* With AVX2 or AVX-512 each whole tile is transposed in registers: three
   rounds of interleaving rows i and i + 4 (a perfect shuffle each) turn its
   8 row vectors into its 8 columns (one vpermt2ps per interleave on
   AVX-512).  2x faster than the baseline for H = 100 (1.4 against 3.0 µs);
   on SSE2 the 8-lane shuffles cost more than they save, so the baseline
   stays element by element. */
#define RNC_ZIP(a, b, M, lo)                                                  \
    ((lo) ? __builtin_shuffle(a, b, (M){0, 8, 1, 9, 2, 10, 3, 11})            \
          : __builtin_shuffle(a, b, (M){4, 12, 5, 13, 6, 14, 7, 15}))
#define RNC_ZIP_ROUND(dst, src, M)                                            \
    RNC_PRAGMA(GCC unroll 4) for (int i = 0; i < 4; i++) {                    \
        dst[2 * i] = RNC_ZIP(src[i], src[i + 4], M, 1);                       \
        dst[2 * i + 1] = RNC_ZIP(src[i], src[i + 4], M, 0);                   \
    }
typedef int rnc_i32x8 __attribute__((vector_size(32)));
typedef long long rnc_i64x8 __attribute__((vector_size(64)));
#define RNC_DEFINE_TRANSPOSE_SIMD(SUF, T, V, M, ATTR)                         \
ATTR RNC_UNUSED static void rnc_transpose_##SUF(ptrdiff_t r, ptrdiff_t c,     \
                                                const T *W, ptrdiff_t ldw,    \
                                                T *WT, ptrdiff_t ldt)         \
{                                                                             \
    const ptrdiff_t fr = r - r % 8, fc = c - c % 8;                           \
    for (ptrdiff_t r0 = 0; r0 < fr; r0 += 8)                                  \
        for (ptrdiff_t c0 = 0; c0 < fc; c0 += 8) {                            \
            V a[8], b[8];                                                     \
            RNC_PRAGMA(GCC unroll 8) for (int i = 0; i < 8; i++)              \
                memcpy(&a[i], W + (r0 + i) * ldw + c0, sizeof(V));            \
            RNC_ZIP_ROUND(b, a, M)                                            \
            RNC_ZIP_ROUND(a, b, M)                                            \
            RNC_ZIP_ROUND(b, a, M)                                            \
            RNC_PRAGMA(GCC unroll 8) for (int j = 0; j < 8; j++)              \
                memcpy(WT + (c0 + j) * ldt + r0, &b[j], sizeof(V));           \
        }                                                                     \
    RNC_TRANSPOSE_EDGES(r, c, fr, fc, W, ldw, WT, ldt)                        \
}
/* AVX2 keeps the baseline for float64: its 8-lane tiles span two registers,
   and GCC moved their shuffles through memory (100 × 100: 25 µs against
   3.8 µs element by element). */
#define RNC_TRANSPOSE_DISPATCH(SUF, T, V3)                                    \
RNC_UNUSED static void rnc_transpose_##SUF(ptrdiff_t r, ptrdiff_t c,          \
                                           const T *W, ptrdiff_t ldw, T *WT,  \
                                           ptrdiff_t ldt)                     \
{                                                                             \
    if (__builtin_cpu_supports("x86-64-v4"))                                  \
        rnc_transpose_##SUF##_v4(r, c, W, ldw, WT, ldt);                      \
    else if (__builtin_cpu_supports("x86-64-v3"))                             \
        V3(r, c, W, ldw, WT, ldt);                                            \
    else                                                                      \
        rnc_transpose_##SUF##_base(r, c, W, ldw, WT, ldt);                    \
}
RNC_DEFINE_TRANSPOSE_PLAIN(rnc_transpose_f32_base, float)
RNC_DEFINE_TRANSPOSE_PLAIN(rnc_transpose_f64_base, double)
RNC_DEFINE_TRANSPOSE_SIMD(f32_v3, float, rnc_f32x8, rnc_i32x8, RNC_V3)
RNC_DEFINE_TRANSPOSE_SIMD(f32_v4, float, rnc_f32x8, rnc_i32x8, RNC_V4)
RNC_DEFINE_TRANSPOSE_SIMD(f64_v4, double, rnc_f64x8, rnc_i64x8, RNC_V4)
RNC_TRANSPOSE_DISPATCH(f32, float, rnc_transpose_f32_v3)
RNC_TRANSPOSE_DISPATCH(f64, double, rnc_transpose_f64_base)
#else
RNC_DEFINE_TRANSPOSE_PLAIN(rnc_transpose_f32, float)
RNC_DEFINE_TRANSPOSE_PLAIN(rnc_transpose_f64, double)
#endif /* RNC_HAVE_DISPATCH */

#endif /* RNNCORE_STEP_GEMM_H */

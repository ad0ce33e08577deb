/*
 * The per-step product of the recurrence for large batches, with the weight
 * matrix packed once per call:
 *     C (m×n) (+)= A (m×k)·B (k×n),   row-major, A and C contiguous.
 *
 * A BLAS GEMM packs both operands into its own layout on every call.  The
 * recurrence multiplies by the same H×H matrix at every time step, so
 * rnncore packs it once (rnc_pack_*) and each step packs only the small A
 * block.  (SciPy's OpenBLAS spent about 15% of a large training step
 * repacking W_hh; see docs/performance-notes.md.)
 *
 * Packed layout: B's columns in panels as wide as the kernel's block of
 * columns (NV vectors: 128 bytes with AVX-512, 64 with AVX2, 32 in the
 * baseline); panel p is a k × panel block, row i of it at
 * P + (p·k + i)·panel, so each kernel call streams one contiguous block.
 * Columns past n are zero, so the kernel never reads past a panel.
 * rnc_pack_* packs for the kernel the CPU runs; rnc_packed_len_* gives the
 * length of P for the widest panels, enough for every layout.
 *
 * Blocking: for each slab of KC rows of B, a block of MR rows × KC of A
 * stays in L1 while the kernel runs over every panel.  The kernel keeps an
 * MR × NV-vector block of C in registers, loads NV vectors of one packed row
 * per step of the k loop and broadcasts MR elements of A.  With AVX2 it
 * reads those rows of A where they are, as long as they lie less than 8 KiB
 * apart (RNC_DIRECT_A_BYTES), in slabs of up to RNC_DIRECT_KC rows;
 * otherwise, and with AVX-512 and the baseline, the block is first copied
 * interleaved (row i of the copy holds A[r][i] for the MR rows r) to the
 * stack, in slabs of RNC_KC rows.  On a Zen 3 the copy cost the AVX2 kernel
 * 6-11% at H = 100-256, and slabs of 256 rows where k is 512 or 1024 cost it
 * 6-10% against one slab (each slab loads and stores every block of C
 * again; docs/performance-notes.md).
 *
 * The kernel body is one source compiled per instruction set (AVX-512,
 * AVX2, the baseline), as in _step_gemm.h.
 */
#ifndef RNNCORE_PACKED_GEMM_H
#define RNNCORE_PACKED_GEMM_H

#include <stdlib.h>

#include "_step_gemm.h"

/* the widest panel, for rnc_packed_len_* */
#define RNC_PANEL_BYTES 128
#define RNC_KC 256
/* rows of A closer than this are read in place by the kernels that may,
   in slabs of up to RNC_DIRECT_KC rows of B (no copy to hold on the stack) */
#define RNC_DIRECT_A_BYTES 8192
#define RNC_DIRECT_KC 1024
#ifndef RNC_PF
#define RNC_PF 16
#endif

/* dst <- `rows` rows of `w` elements (row stride lds), each padded with
   zeros to `width` (dst contiguous); width is a constant once inlined, so
   a full row is one fixed-size copy. */
RNC_INLINE void rnc_copy_rows(ptrdiff_t rows, ptrdiff_t w, ptrdiff_t width,
                              size_t item, const void *src, ptrdiff_t lds,
                              void *dst)
{
    const char *s = (const char *)src;
    char *d = (char *)dst;
    if (w == width) {
        for (ptrdiff_t i = 0; i < rows; i++)
            memcpy(d + i * width * item, s + i * lds * item, width * item);
        return;
    }
    for (ptrdiff_t i = 0; i < rows; i++) {
        memcpy(d + i * width * item, s + i * lds * item, w * item);
        memset(d + (i * width + w) * item, 0, (width - w) * item);
    }
}

#define RNC_DEFINE_PACK(SUF, T)                                               \
RNC_UNUSED static ptrdiff_t rnc_packed_len_##SUF(ptrdiff_t k, ptrdiff_t n)    \
{                                                                             \
    const ptrdiff_t np = RNC_PANEL_BYTES / sizeof(T);                         \
    return k * ((n + np - 1) / np) * np;                                      \
}                                                                             \
/* P <- B packed in panels of np columns; B is k×n (trans = 0) or, when      \
   trans, Bᵀ is: B[i][j] is M[j·k + i] for the n×k matrix M. */              \
RNC_UNUSED static void rnc_pack_np_##SUF(ptrdiff_t np, ptrdiff_t k,           \
                                         ptrdiff_t n, const T *M, int trans,  \
                                         T *P)                                \
{                                                                             \
    for (ptrdiff_t j0 = 0; j0 < n; j0 += np) {                                \
        const ptrdiff_t w = n - j0 < np ? n - j0 : np;                        \
        T *panel = P + j0 * k;                                                \
        if (!trans) {                                                         \
            rnc_copy_rows(k, w, np, sizeof(T), M + j0, n, panel);             \
            continue;                                                         \
        }                                                                     \
        for (ptrdiff_t i = 0; i < k; i++) {                                   \
            T *row = panel + i * np;                                          \
            for (ptrdiff_t j = 0; j < w; j++) row[j] = M[(j0 + j) * k + i];   \
            for (ptrdiff_t j = w; j < np; j++) row[j] = 0;                    \
        }                                                                     \
    }                                                                         \
}
RNC_DEFINE_PACK(f32, float)
RNC_DEFINE_PACK(f64, double)

#if defined(__GNUC__) || defined(__clang__)

/* The micro-kernel: R (1..MR) rows by NV vectors of W lanes, one panel of
   np columns (a row of it every np elements from Pp), `cols` of them valid
   (the rest are padding and are not stored).  A[r][i] is Ap[r·a_rs +
   i·a_is]: rows of A in place, or their interleaved copy.
   R is a constant at every call site, so acc is registers.  The
   accumulators start from C (when load_c) and take the slab's rows in
   order, and C between slabs holds them exactly, so each element of C is
   one chain of multiply-adds over k in order, as in _step_gemm.h: the two
   kernels give the same bits, whichever a product runs in. */
#define RNC_PG_MICRO(NAME, T, V, W, MR, NV, ATTR)                             \
ATTR RNC_INLINE void NAME(const int R, ptrdiff_t kc, const T *Ap,             \
                          ptrdiff_t a_rs, ptrdiff_t a_is, const T *Pp,        \
                          ptrdiff_t np, T *C, ptrdiff_t ldc, ptrdiff_t cols,  \
                          int load_c)                                         \
{                                                                             \
    V acc[MR][NV], b[NV];                                                     \
    T tile[MR][NV * W];                                                       \
    const int full = cols == NV * W;                                          \
    if (!load_c)                                                              \
        memset(acc, 0, sizeof(V) * NV * R);                                   \
    else if (full)                                                            \
        for (int r = 0; r < R; r++)                                           \
            for (int v = 0; v < NV; v++)                                      \
                memcpy(&acc[r][v], C + r * ldc + v * W, sizeof(V));           \
    else {                                                                    \
        memset(tile, 0, sizeof(V) * NV * R);                                  \
        for (int r = 0; r < R; r++)                                           \
            memcpy(tile[r], C + r * ldc, sizeof(T) * cols);                   \
        memcpy(acc, tile, sizeof(V) * NV * R);                                \
    }                                                                         \
    RNC_PRAGMA(GCC unroll 4)                                                  \
    for (ptrdiff_t i = 0; i < kc; i++) {                                      \
        /* the panel streams from L2: fetch a few rows ahead, each of its  \
           cache lines (np is a constant once inlined) */                     \
        for (ptrdiff_t l = 0; l < np; l += 64 / (ptrdiff_t)sizeof(T))         \
            __builtin_prefetch(Pp + (i + RNC_PF) * np + l);                   \
        for (int v = 0; v < NV; v++)                                          \
            memcpy(&b[v], Pp + i * np + v * W, sizeof(V));                    \
        for (int r = 0; r < R; r++) {                                         \
            const T a = Ap[r * a_rs + i * a_is];                              \
            for (int v = 0; v < NV; v++) acc[r][v] += a * b[v];               \
        }                                                                     \
    }                                                                         \
    if (full) {                                                               \
        for (int r = 0; r < R; r++)                                           \
            for (int v = 0; v < NV; v++)                                      \
                memcpy(C + r * ldc + v * W, &acc[r][v], sizeof(V));           \
        return;                                                               \
    }                                                                         \
    memcpy(tile, acc, sizeof(V) * NV * R);                                    \
    for (int r = 0; r < R; r++)                                               \
        memcpy(C + r * ldc, tile[r], sizeof(T) * cols);                       \
}

/* R (1..MR, MR <= 12) as a constant */
#define RNC_PG_R(FN, R, MR, ...)                                                  \
    switch (R) {                                                              \
    case 1: FN(1 < MR ? 1 : MR, __VA_ARGS__); break;                          \
    case 2: FN(2 < MR ? 2 : MR, __VA_ARGS__); break;                          \
    case 3: FN(3 < MR ? 3 : MR, __VA_ARGS__); break;                          \
    case 4: FN(4 < MR ? 4 : MR, __VA_ARGS__); break;                          \
    case 5: FN(5 < MR ? 5 : MR, __VA_ARGS__); break;                          \
    case 6: FN(6 < MR ? 6 : MR, __VA_ARGS__); break;                          \
    case 7: FN(7 < MR ? 7 : MR, __VA_ARGS__); break;                          \
    case 8: FN(8 < MR ? 8 : MR, __VA_ARGS__); break;                          \
    case 9: FN(9 < MR ? 9 : MR, __VA_ARGS__); break;                          \
    case 10: FN(10 < MR ? 10 : MR, __VA_ARGS__); break;                       \
    case 11: FN(11 < MR ? 11 : MR, __VA_ARGS__); break;                       \
    default: FN(MR, __VA_ARGS__); break;                                      \
    }

/* The rows of the next block when `left` rows remain: MR, except that the
   last MR + r rows with r < MR/2 go in two blocks of about half each, whose
   accumulators still keep both FMA pipes busy, instead of a full block and
   a block of r rows, which cannot (32 rows with AVX2, 6 + 6 + 6 + 6 + 4 +
   4 instead of 5 × 6 + 2: 83-84 GFLOP/s instead of 79-80 at 32 × 128 ×
   128 on a Zen 3). */
RNC_INLINE ptrdiff_t rnc_pg_rows(ptrdiff_t left, int MR)
{
    if (left <= MR) return left;
    if (left < 2 * MR && 2 * (left - MR) < MR) return (left + 1) / 2;
    return MR;
}

/* C (m×n) (+)= A (m×k)·B, B packed in P; MR rows per block (rnc_pg_rows),
   NV vectors of W lanes per kernel call, which is one panel.  DIRECT: the
   kernel may read A in place (a constant, so that the copy's strides stay
   constants where it may not). */
#define RNC_DEFINE_PACKED_GEMM(SUF, T, V, W, MR, NV, DIRECT, ATTR)            \
enum { rnc_panel_##SUF = NV * W };                                            \
RNC_PG_MICRO(rnc_pg_micro_##SUF, T, V, W, MR, NV, ATTR)                       \
RNC_PG_MICRO(rnc_pg_micro1_##SUF, T, V, W, MR, 1, ATTR)                       \
ATTR RNC_UNUSED static void rnc_packed_gemm_##SUF(                            \
    ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const T *A, const T *P,            \
    int accumulate, T *C, ptrdiff_t ldc)                                      \
{                                                                             \
    const ptrdiff_t np = NV * W; /* a panel: one call of the micro-kernel */ \
    const int direct = DIRECT && k * (ptrdiff_t)sizeof(T) < RNC_DIRECT_A_BYTES; \
    const ptrdiff_t KC = direct ? RNC_DIRECT_KC : RNC_KC;                     \
    T Ap[RNC_KC * MR] __attribute__((aligned(64)));                           \
    if (k == 0) {                                                             \
        if (!accumulate)                                                      \
            for (ptrdiff_t r = 0; r < m; r++) memset(C + r * ldc, 0, sizeof(T) * n); \
        return;                                                               \
    }                                                                         \
    for (ptrdiff_t k0 = 0; k0 < k; k0 += KC) {                                \
        const ptrdiff_t kc = k - k0 < KC ? k - k0 : KC;                       \
        const int load_c = accumulate || k0 > 0;                              \
        for (ptrdiff_t r0 = 0, R; r0 < m; r0 += R) {                          \
            const T *a = A + r0 * k + k0;                                     \
            ptrdiff_t a_rs = k, a_is = 1;                                     \
            R = rnc_pg_rows(m - r0, MR);                                      \
            if (!direct) {                                                    \
                for (int r = 0; r < R; r++)                                   \
                    for (ptrdiff_t i = 0; i < kc; i++)                        \
                        Ap[i * MR + r] = a[r * k + i];                        \
                a = Ap, a_rs = 1, a_is = MR;                                  \
            }                                                                 \
            for (ptrdiff_t j0 = 0; j0 < n; j0 += np) {                        \
                const ptrdiff_t cols = n - j0 < np ? n - j0 : np;             \
                const T *Pp = P + (j0 * k + k0 * np);                         \
                if (cols <= W) /* the last columns fit one vector */          \
                    RNC_PG_R(rnc_pg_micro1_##SUF, R, MR, kc, a, a_rs, a_is,   \
                             Pp, np, C + r0 * ldc + j0, ldc, cols, load_c)    \
                else                                                          \
                    RNC_PG_R(rnc_pg_micro_##SUF, R, MR, kc, a, a_rs, a_is,    \
                             Pp, np, C + r0 * ldc + j0, ldc, cols, load_c)    \
            }                                                                 \
        }                                                                     \
    }                                                                         \
}

/* C (m×n) (+)= Aᵀ·B, A (k×m) and B (k×n) row-major with row strides lda
   and ldb: a backward chunk's weight gradients (δᵀ·x, δᵀ·h_{t-1},
   dlogitsᵀ·h), whose k is the chunk's rows.  The same kernel as above,
   with both operands copied row by row instead of transposed: for each
   slab of KC rows, A's slab goes in groups of 4·MR columns to a buffer
   (each row of a group one contiguous copy; the kernel reads MR of its
   columns with a stride of 4·MR), then for each panel of B's columns the
   panel goes to the stack, where it stays in L1 while every block of MR
   columns of A runs over it.  Returns 0, having done nothing, when the
   buffer cannot be allocated. */
#define RNC_DEFINE_GEMM_TN(SUF, T, W, MR, ATTR)                               \
ATTR RNC_UNUSED static int rnc_gemm_tn_##SUF(                                 \
    ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const T *A, ptrdiff_t lda,         \
    const T *B, ptrdiff_t ldb, int accumulate, T *C, ptrdiff_t ldc)           \
{                                                                             \
    enum { G = 4 * MR, NP = rnc_panel_##SUF };                                \
    const ptrdiff_t groups = (m + G - 1) / G;                                 \
    T bp[RNC_KC * NP] __attribute__((aligned(64)));                           \
    T *ap;                                                                    \
    if (k == 0) {                                                             \
        if (!accumulate)                                                      \
            for (ptrdiff_t r = 0; r < m; r++) memset(C + r * ldc, 0, sizeof(T) * n); \
        return 1;                                                             \
    }                                                                         \
    ap = (T *)malloc(sizeof(T) * (k < RNC_KC ? k : RNC_KC) * groups * G);     \
    if (ap == NULL) return 0;                                                 \
    for (ptrdiff_t k0 = 0; k0 < k; k0 += RNC_KC) {                            \
        const ptrdiff_t kc = k - k0 < RNC_KC ? k - k0 : RNC_KC;               \
        const int load_c = accumulate || k0 > 0;                              \
        for (ptrdiff_t g = 0; g < groups; g++)                                \
            rnc_copy_rows(kc, m - g * G < G ? m - g * G : G, G, sizeof(T),    \
                          A + k0 * lda + g * G, lda, ap + g * G * kc);        \
        for (ptrdiff_t j0 = 0; j0 < n; j0 += NP) {                            \
            const ptrdiff_t cols = n - j0 < NP ? n - j0 : NP;                 \
            rnc_copy_rows(kc, cols, NP, sizeof(T), B + k0 * ldb + j0, ldb, bp); \
            for (ptrdiff_t r0 = 0; r0 < m; r0 += MR) {                        \
                const ptrdiff_t R = m - r0 < MR ? m - r0 : MR;                \
                const T *a = ap + (r0 / G) * G * kc + r0 % G;                 \
                if (cols <= W) /* the last columns fit one vector */          \
                    RNC_PG_R(rnc_pg_micro1_##SUF, R, MR, kc, a, 1, G, bp, NP, \
                             C + r0 * ldc + j0, ldc, cols, load_c)            \
                else                                                          \
                    RNC_PG_R(rnc_pg_micro_##SUF, R, MR, kc, a, 1, G, bp, NP,  \
                             C + r0 * ldc + j0, ldc, cols, load_c)            \
            }                                                                 \
        }                                                                     \
    }                                                                         \
    free(ap);                                                                 \
    return 1;                                                                 \
}

/* The baseline: 16-byte vectors, 4 rows × 2 vectors (8 accumulators). */
RNC_DEFINE_PACKED_GEMM(f32_base, float, rnc_f32x4, 4, 4, 2, 0, )
RNC_DEFINE_PACKED_GEMM(f64_base, double, rnc_f64x2, 2, 4, 2, 0, )

#if RNC_HAVE_DISPATCH
/* AVX2 (16 registers): 6 rows × 2 vectors, A read in place; AVX-512 (32
   registers): 12 rows × 2 vectors (24 accumulators, 2 loads, the
   broadcast), A copied (its 12 rows were not measured in place). */
RNC_DEFINE_PACKED_GEMM(f32_v3, float, rnc_f32x8, 8, 6, 2, 1, RNC_V3)
RNC_DEFINE_PACKED_GEMM(f64_v3, double, rnc_f64x4, 4, 6, 2, 1, RNC_V3)
RNC_DEFINE_PACKED_GEMM(f32_v4, float, rnc_f32x16, 16, 12, 2, 0, RNC_V4)
RNC_DEFINE_PACKED_GEMM(f64_v4, double, rnc_f64x8, 8, 12, 2, 0, RNC_V4)
/* Aᵀ·B in float32 with AVX2 alone: the one case measured faster than
   SciPy's OpenBLAS (rnc_gemm_tn_f32 below). */
RNC_DEFINE_GEMM_TN(f32_v3, float, 8, 6, RNC_V3)

#define RNC_PACKED_GEMM_DISPATCH(SUF, T)                                      \
RNC_UNUSED static void rnc_pack_##SUF(ptrdiff_t k, ptrdiff_t n, const T *M,   \
                                      int trans, T *P)                        \
{                                                                             \
    if (__builtin_cpu_supports("x86-64-v4"))                                  \
        rnc_pack_np_##SUF(rnc_panel_##SUF##_v4, k, n, M, trans, P);           \
    else if (__builtin_cpu_supports("x86-64-v3"))                             \
        rnc_pack_np_##SUF(rnc_panel_##SUF##_v3, k, n, M, trans, P);           \
    else                                                                      \
        rnc_pack_np_##SUF(rnc_panel_##SUF##_base, k, n, M, trans, P);         \
}                                                                             \
RNC_UNUSED static void rnc_packed_gemm_##SUF(                                 \
    ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const T *A, const T *P,            \
    int accumulate, T *C, ptrdiff_t ldc)                                      \
{                                                                             \
    if (__builtin_cpu_supports("x86-64-v4"))                                  \
        rnc_packed_gemm_##SUF##_v4(m, n, k, A, P, accumulate, C, ldc);        \
    else if (__builtin_cpu_supports("x86-64-v3"))                             \
        rnc_packed_gemm_##SUF##_v3(m, n, k, A, P, accumulate, C, ldc);        \
    else                                                                      \
        rnc_packed_gemm_##SUF##_base(m, n, k, A, P, accumulate, C, ldc);      \
}
#else
#define RNC_PACKED_GEMM_DISPATCH(SUF, T)                                      \
RNC_UNUSED static void rnc_pack_##SUF(ptrdiff_t k, ptrdiff_t n, const T *M,   \
                                      int trans, T *P)                        \
{                                                                             \
    rnc_pack_np_##SUF(rnc_panel_##SUF##_base, k, n, M, trans, P);             \
}                                                                             \
RNC_UNUSED static void rnc_packed_gemm_##SUF(                                 \
    ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const T *A, const T *P,            \
    int accumulate, T *C, ptrdiff_t ldc)                                      \
{                                                                             \
    rnc_packed_gemm_##SUF##_base(m, n, k, A, P, accumulate, C, ldc);          \
}
#endif /* RNC_HAVE_DISPATCH */

RNC_PACKED_GEMM_DISPATCH(f32, float)
RNC_PACKED_GEMM_DISPATCH(f64, double)

#else /* no vector extensions (MSVC): the plain loop over the packed panels */

#define RNC_DEFINE_PACKED_GEMM_PLAIN(SUF, T)                                  \
static void rnc_pack_##SUF(ptrdiff_t k, ptrdiff_t n, const T *M, int trans,   \
                           T *P)                                              \
{                                                                             \
    rnc_pack_np_##SUF(RNC_PANEL_BYTES / sizeof(T), k, n, M, trans, P);        \
}                                                                             \
static void rnc_packed_gemm_##SUF(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,      \
                                  const T *A, const T *P, int accumulate,     \
                                  T *C, ptrdiff_t ldc)                        \
{                                                                             \
    const ptrdiff_t np = RNC_PANEL_BYTES / sizeof(T);                         \
    for (ptrdiff_t r = 0; r < m; r++) {                                       \
        if (!accumulate) memset(C + r * ldc, 0, sizeof(T) * n);               \
        for (ptrdiff_t i = 0; i < k; i++) {                                   \
            const T a = A[r * k + i];                                         \
            for (ptrdiff_t j = 0; j < n; j++)                                 \
                C[r * ldc + j] += a * P[((j / np) * k + i) * np + j % np];    \
        }                                                                     \
    }                                                                         \
}
RNC_DEFINE_PACKED_GEMM_PLAIN(f32, float)
RNC_DEFINE_PACKED_GEMM_PLAIN(f64, double)

#endif /* vector extensions */

/* C (m×n) (+)= Aᵀ·B in float32 (RNC_DEFINE_GEMM_TN) on CPUs with AVX2
   and without AVX-512, where it was measured; elsewhere, or without memory
   for its buffer, it returns 0 and the caller runs BLAS. */
#if RNC_HAVE_DISPATCH
RNC_UNUSED static int rnc_gemm_tn_f32(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
                                      const float *A, ptrdiff_t lda,
                                      const float *B, ptrdiff_t ldb,
                                      int accumulate, float *C, ptrdiff_t ldc)
{
    if (__builtin_cpu_supports("x86-64-v3")
            && !__builtin_cpu_supports("avx512f"))
        return rnc_gemm_tn_f32_v3(m, n, k, A, lda, B, ldb, accumulate, C, ldc);
    return 0;
}
#else
RNC_UNUSED static int rnc_gemm_tn_f32(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k,
                                      const float *A, ptrdiff_t lda,
                                      const float *B, ptrdiff_t ldb,
                                      int accumulate, float *C, ptrdiff_t ldc)
{
    return 0;
}
#endif

/* One per-step product shared by `parts` threads (rnncore/_parallel.pyx):
       C (m×n) <- A (m×k)·B (+ C if accumulate), then C <- tanh(C) when
   apply_tanh; C row-major with n columns.  rnc_split_part_* does part
   `part` of `parts`: a run of rows.  In the recurrence, the rows of A a
   thread reads are the rows of C it wrote at the step before, still in its
   own cache.  (Splitting B's columns instead made every thread read the
   other's half of A from the other core at every step: no faster than one
   thread at B = 64, H = 256.)  Each part applies tanh to its own rows; or,
   in the backward pass, when `delta` is set, the step before's
   delta <- (1 - h²) ⊙ (delta + C) (delta and h m×n, as C). */
typedef struct {
    ptrdiff_t m, n, k;
    const void *A, *P;
    void *C;
    int accumulate, apply_tanh;
    void *delta;
    const void *h;
} rnc_split_step;

#define RNC_DEFINE_SPLIT_PART(SUF, T)                                         \
RNC_UNUSED static void rnc_split_part_##SUF(void *arg, int part, int parts)   \
{                                                                             \
    const rnc_split_step *s = (const rnc_split_step *)arg;                    \
    const ptrdiff_t r0 = s->m * part / parts, r1 = s->m * (part + 1) / parts; \
    T *C = (T *)s->C + r0 * s->n;                                             \
    if (r1 <= r0) return;                                                     \
    rnc_packed_gemm_##SUF(r1 - r0, s->n, s->k, (const T *)s->A + r0 * s->k,   \
                          (const T *)s->P, s->accumulate, C, s->n);           \
    if (s->apply_tanh) rnc_tanh_inplace_##SUF(C, (r1 - r0) * s->n);           \
    if (s->delta)                                                             \
        rnc_tanh_backward_##SUF((T *)s->delta + r0 * s->n,                    \
                                (const T *)s->h + r0 * s->n, C,               \
                                (r1 - r0) * s->n);                            \
}
RNC_DEFINE_SPLIT_PART(f32, float)
RNC_DEFINE_SPLIT_PART(f64, double)

#endif /* RNNCORE_PACKED_GEMM_H */

/*
 * The products of a backward chunk and of the output layer that go to
 * rnncore's small kernel (rnncore/_step_gemm.h) instead of BLAS, by the rule
 * in gemm (rnncore/_blas.pxd): row-major C (m×n) += op(A)·B, with op(A) =
 * Aᵀ for the weight gradients δᵀ·x and δᵀ·h (A stored k×m) and A itself for
 * ∂L/∂h = dlogits·W_hy.  One thread, C, A and B warm in cache, best of 11.
 * A second table times C = A·Bᵀ (the input projection x·W_xhᵀ and the
 * logits h·W_hyᵀ) as gemm runs it in float32 for small products: a copy of
 * Bᵀ (malloc, rnc_transpose_*, free at every call) and the same kernel.
 * A third times the larger weight gradients C += Aᵀ·B in float32 as gemm
 * runs them with AVX2 and without AVX-512: rnc_gemm_tn_f32
 * (rnncore/_packed_gemm.h), which copies both operands row by row.
 *
 * Build and run from the repository root (the library path is SciPy's):
 *
 *   LIB=$(python -c "import glob, os, scipy; print(glob.glob(os.path.join(
 *       os.path.dirname(scipy.__file__), '..', 'scipy.libs',
 *       'libscipy_openblas*.so'))[0])")
 *   gcc -O3 -fopenmp-simd -fno-trapping-math -I rnncore \
 *       benchmarks/chunk_products.c -o /tmp/chunk_products "$LIB" \
 *       -Wl,-rpath,"$(dirname "$LIB")"
 *   /tmp/chunk_products
 */
#include <stdio.h>
#include <stdlib.h>

#include "_packed_gemm.h"
#include "scipy_blas.h"

/* One row of the table: the small kernel, then BLAS on the same operands
   (row-major C += op(A)·B is column-major Cᵀ += Bᵀ·op(A)ᵀ). */
#define DEFINE_BENCH(T, SUF, BLAS)                                            \
static void bench_##SUF(int ta, int m, int n, int k)                          \
{                                                                             \
    T *A = malloc(sizeof(T) * k * m), *B = malloc(sizeof(T) * k * n);         \
    T *C = calloc((size_t)m * n, sizeof(T));                                  \
    const T one = 1;                                                          \
    const int lda = ta ? m : k;                                               \
    for (long i = 0; i < (long)k * m; i++) A[i] = (T)(i % 7) * 0.01;          \
    for (long i = 0; i < (long)k * n; i++) B[i] = (T)(i % 5) * 0.01;          \
    const long reps = 100000000L / ((long)m * n * k) + 5;                     \
    double own = 1e9, blas = 1e9;                                             \
    for (int rep = 0; rep < 11; rep++) {                                      \
        double t = now();                                                     \
        for (long i = 0; i < reps; i++)                                       \
            rnc_small_gemm_acc_##SUF(ta, m, n, k, A, lda, B, n, C, n);        \
        t = (now() - t) / reps;                                               \
        own = t < own ? t : own;                                              \
        t = now();                                                            \
        for (long i = 0; i < reps; i++)                                       \
            BLAS("N", ta ? "T" : "N", &n, &m, &k, &one, B, &n, A, &lda, &one, \
                 C, &n);                                                      \
        t = (now() - t) / reps;                                               \
        blas = t < blas ? t : blas;                                           \
    }                                                                         \
    printf("| %s | %s | %d | %d | %d | %.0f | %.2f | %.2f | %.2f |\n", #SUF,  \
           ta ? "Aᵀ·B" : "A·B", m, n, k,                                      \
           (double)k * (m + n) * sizeof(T) / 1024, own * 1e6, blas * 1e6,     \
           blas / own);                                                       \
    free(A);                                                                  \
    free(B);                                                                  \
    free(C);                                                                  \
}

DEFINE_BENCH(float, f32, scipy_sgemm_)
DEFINE_BENCH(double, f64, scipy_dgemm_)

/* C (m×n) = A (m×k)·Bᵀ, B n×k: the copy of Bᵀ and the kernel, then BLAS. */
#define DEFINE_BENCH_TB(T, SUF, BLAS)                                         \
static void bench_tb_##SUF(int m, int n, int k)                               \
{                                                                             \
    T *A = malloc(sizeof(T) * m * k), *B = malloc(sizeof(T) * n * k);         \
    T *C = calloc((size_t)m * n, sizeof(T));                                  \
    const T one = 1, zero = 0;                                                \
    for (long i = 0; i < (long)k * m; i++) A[i] = (T)(i % 7) * 0.01;          \
    for (long i = 0; i < (long)k * n; i++) B[i] = (T)(i % 5) * 0.01;          \
    const long reps = 20000000L / ((long)m * n * k) + 10;                     \
    double own = 1e9, blas = 1e9;                                             \
    for (int rep = 0; rep < 11; rep++) {                                      \
        double t = now();                                                     \
        for (long i = 0; i < reps; i++) {                                     \
            T *Bt = malloc(sizeof(T) * n * k);                                \
            rnc_transpose_##SUF(n, k, B, k, Bt, n);                           \
            memset(C, 0, sizeof(T) * m * n);                                  \
            rnc_small_gemm_acc_##SUF(0, m, n, k, A, k, Bt, n, C, n);          \
            free(Bt);                                                         \
        }                                                                     \
        t = (now() - t) / reps;                                               \
        own = t < own ? t : own;                                              \
        t = now();                                                            \
        for (long i = 0; i < reps; i++)                                       \
            BLAS("T", "N", &n, &m, &k, &one, B, &k, A, &k, &zero, C, &n);     \
        t = (now() - t) / reps;                                               \
        blas = t < blas ? t : blas;                                           \
    }                                                                         \
    printf("| %s | A·Bᵀ | %d | %d | %d | %.2f | %.2f | %.2f |\n", #SUF, m, n,  \
           k, own * 1e6, blas * 1e6, blas / own);                             \
    free(A);                                                                  \
    free(B);                                                                  \
    free(C);                                                                  \
}

DEFINE_BENCH_TB(float, f32, scipy_sgemm_)
DEFINE_BENCH_TB(double, f64, scipy_dgemm_)

/* C (m×n) += Aᵀ·B, A k×m, B k×n: rnc_gemm_tn_f32, then BLAS. */
static void bench_tn(int m, int n, int k)
{
    float *A = malloc(sizeof(float) * k * m), *B = malloc(sizeof(float) * k * n);
    float *C = calloc((size_t)m * n, sizeof(float));
    const float one = 1;
    for (long i = 0; i < (long)k * m; i++) A[i] = (float)(i % 7) * 0.01f;
    for (long i = 0; i < (long)k * n; i++) B[i] = (float)(i % 5) * 0.01f;
    const long reps = 200000000L / ((long)m * n * k) + 3;
    double own = 1e9, blas = 1e9;
    if (!rnc_gemm_tn_f32(m, n, k, A, m, B, n, 1, C, n)) {
        printf("| f32 | Aᵀ·B | %d | %d | %d | – | – | – | – | (not on this CPU) |\n",
               m, n, k);
        free(A);
        free(B);
        free(C);
        return;
    }
    for (int rep = 0; rep < 11; rep++) {
        double t = now();
        for (long i = 0; i < reps; i++)
            rnc_gemm_tn_f32(m, n, k, A, m, B, n, 1, C, n);
        t = (now() - t) / reps;
        own = t < own ? t : own;
        t = now();
        for (long i = 0; i < reps; i++)
            scipy_sgemm_("N", "T", &n, &m, &k, &one, B, &n, A, &m, &one, C, &n);
        t = (now() - t) / reps;
        blas = t < blas ? t : blas;
    }
    const double flop = 2.0 * m * n * k * 1e-9;
    printf("| f32 | Aᵀ·B | %d | %d | %d | %.1f | %.1f | %.1f | %.1f | %.2f |\n",
           m, n, k, own * 1e6, blas * 1e6, flop / own, flop / blas, blas / own);
    free(A);
    free(B);
    free(C);
}

int main(void)
{
    /* {Aᵀ?, m, n, k}: the small and medium workloads' chunk products
       (δᵀ·h, δᵀ·x, dlogits·W_hy), their output layer's dlogitsᵀ·hs, and
       shapes around the rule's limits */
    static const int shapes[][4] = {
        {1, 128, 128, 192}, {1, 128, 64, 192}, {0, 192, 128, 64},
        {0, 224, 128, 64}, {1, 64, 64, 512}, {1, 128, 128, 1024},
        {1, 64, 128, 1600}, {1, 128, 64, 1600}, {1, 256, 128, 832},
        {1, 256, 256, 832}, {0, 832, 256, 128}, {1, 64, 256, 1600},
        {1, 128, 256, 6400}, {0, 1600, 128, 64},
    };
    const size_t count = sizeof shapes / sizeof *shapes;
    scipy_openblas_set_num_threads(1);
    printf("| dtype | product | m | n | k | operands KiB | kernel µs "
           "| BLAS µs | speed-up |\n");
    printf("|---|---|---:|---:|---:|---:|---:|---:|---:|\n");
    for (size_t s = 0; s < count; s++)
        bench_f32(shapes[s][0], shapes[s][1], shapes[s][2], shapes[s][3]);
    for (size_t s = 0; s < count; s++)
        bench_f64(shapes[s][0], shapes[s][1], shapes[s][2], shapes[s][3]);

    /* {m, n, k} of A·Bᵀ: the tiny workload's projection and logits, fewer
       rows, and shapes at the 2^18 multiply-add limit */
    static const int tb_shapes[][3] = {
        {1, 100, 65}, {4, 100, 65}, {8, 100, 65}, {16, 100, 65},
        {25, 100, 65}, {25, 65, 100}, {40, 65, 100}, {16, 128, 128},
        {50, 64, 64}, {32, 64, 128},
    };
    printf("\n| dtype | product | m | n | k | copy + kernel µs | BLAS µs "
           "| speed-up |\n");
    printf("|---|---|---:|---:|---:|---:|---:|---:|\n");
    for (size_t s = 0; s < sizeof tb_shapes / sizeof *tb_shapes; s++)
        bench_tb_f32(tb_shapes[s][0], tb_shapes[s][1], tb_shapes[s][2]);
    for (size_t s = 0; s < sizeof tb_shapes / sizeof *tb_shapes; s++)
        bench_tb_f64(tb_shapes[s][0], tb_shapes[s][1], tb_shapes[s][2]);

    /* {m, n, k} of Aᵀ·B: the medium workload's chunk of 384 rows (δᵀ·h,
       δᵀ·x, dlogitsᵀ·h), other hidden sizes, and past TN_MAX_DIM */
    static const int tn_shapes[][3] = {
        {256, 256, 384}, {256, 128, 384}, {128, 256, 384}, {256, 256, 192},
        {128, 128, 1024}, {100, 100, 800}, {256, 256, 64}, {256, 512, 256},
        {512, 256, 256}, {512, 512, 256}, {1024, 512, 256}, {1024, 1024, 256},
    };
    printf("\n| dtype | product | m | n | k | kernel µs | BLAS µs "
           "| kernel GFLOP/s | BLAS GFLOP/s | speed-up |\n");
    printf("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (size_t s = 0; s < sizeof tn_shapes / sizeof *tn_shapes; s++)
        bench_tn(tn_shapes[s][0], tn_shapes[s][1], tn_shapes[s][2]);
    return 0;
}

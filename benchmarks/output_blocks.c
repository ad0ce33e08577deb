/*
 * The output layer of a training step in mode "seq", float32, one thread:
 * logits = hs·W_hyᵀ, their softmax row by row (rnncore/_simd.h), then
 * dW_hy = dlogitsᵀ·hs on SciPy's OpenBLAS, over all T·B rows at once
 * ("whole") or in blocks of rows, each block's three steps while its rows
 * are in cache (output_rows in rnncore/_output.pyx, OUTPUT_BLOCK_ROWS).
 * Best of the repeats, the variants in turn in each.
 *
 * Build and run from the repository root (the library path is SciPy's):
 *
 *   LIB=$(python -c "import glob, os, scipy; print(glob.glob(os.path.join(
 *       os.path.dirname(scipy.__file__), '..', 'scipy.libs',
 *       'libscipy_openblas*.so'))[0])")
 *   gcc -O3 -fopenmp-simd -fno-trapping-math -I rnncore \
 *       benchmarks/output_blocks.c -o /tmp/output_blocks "$LIB" \
 *       -Wl,-rpath,"$(dirname "$LIB")" -lm
 *   /tmp/output_blocks
 */
#include <stdio.h>
#include <stdlib.h>

#include "_simd.h"
#include "scipy_blas.h"

/* row-major C (m×n) = op(A)·op(B) + beta·C: column-major Cᵀ = op(B)ᵀ·op(A)ᵀ */
static void gemm(int ta, int tb, int m, int n, int k, const float *A, int lda,
                 const float *B, int ldb, float beta, float *C, int ldc)
{
    const float one = 1;
    scipy_sgemm_(tb ? "T" : "N", ta ? "T" : "N", &n, &m, &k, &one, B, &ldb, A,
                 &lda, &beta, C, &ldc);
}

static double output_layer(int N, int H, int C, int block, const float *hs,
                           const float *W, float *z, float *dW)
{
    double t = now();
    for (int r0 = 0; r0 < N; r0 += block) {
        const int n = N - r0 < block ? N - r0 : block;
        float *zb = z + (long)r0 * C, zmax;
        gemm(0, 1, n, C, H, hs + (long)r0 * H, H, W, H, 0, zb, C);
        for (int r = 0; r < n; r++)
            rnc_softmax_row_f32(zb + (long)r * C, zb + (long)r * C, C, 1, &zmax);
        gemm(1, 0, C, H, n, zb, C, hs + (long)r0 * H, H, r0 ? 1 : 0, dW, H);
    }
    return now() - t;
}

int main(void)
{
    /* the small, medium and large workloads: T·B rows, H, C */
    static const int shapes[][3] = {{1600, 128, 64}, {6400, 256, 128},
                                    {12800, 1024, 512}};
    static const int blocks[] = {0, 128, 256, 512, 1024, 2048};
    enum { NB = sizeof blocks / sizeof *blocks };
    scipy_openblas_set_num_threads(1);
    printf("| rows | H | C | whole ms |");
    for (int b = 1; b < NB; b++) printf(" %d rows |", blocks[b]);
    printf("\n|---:|---:|---:|---:|");
    for (int b = 1; b < NB; b++) printf("---:|");
    printf("\n");
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        const int N = shapes[s][0], H = shapes[s][1], C = shapes[s][2];
        float *hs = malloc(sizeof(float) * N * H), *W = malloc(sizeof(float) * C * H);
        float *z = malloc(sizeof(float) * N * C), *dW = malloc(sizeof(float) * C * H);
        for (long i = 0; i < (long)N * H; i++) hs[i] = (float)(i % 7) * 0.1f - 0.3f;
        for (long i = 0; i < (long)C * H; i++) W[i] = (float)(i % 5) * 0.01f;
        const int reps = (int)(4e9 / ((double)N * H * C)) + 3;
        double best[NB];
        for (int b = 0; b < NB; b++) best[b] = 1e9;
        for (int rep = 0; rep < reps; rep++)
            for (int b = 0; b < NB; b++) {
                const double t = output_layer(N, H, C, blocks[b] ? blocks[b] : N,
                                              hs, W, z, dW);
                best[b] = t < best[b] ? t : best[b];
            }
        printf("| %d | %d | %d | %.3f |", N, H, C, best[0] * 1e3);
        for (int b = 1; b < NB; b++) printf(" %.2fx |", best[0] / best[b]);
        printf("\n");
        free(hs);
        free(W);
        free(z);
        free(dW);
    }
    return 0;
}

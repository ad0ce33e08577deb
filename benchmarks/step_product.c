/*
 * The per-step product of the recurrence, C (m×H) += A (m×H)·B (H×H) in
 * float32, on one thread: rnncore's kernel for small batches
 * (rnncore/_step_gemm.h, up to SMALL_GEMM_MAX_ROWS in rnncore/_blas.pxd),
 * its kernel on B packed once (rnncore/_packed_gemm.h, larger batches; the
 * packing is not timed, as the recurrence packs once per call) and SciPy's
 * OpenBLAS.  Best of 15 repeats.
 *
 * Build and run from the repository root (the library path is SciPy's):
 *
 *   LIB=$(python -c "import glob, os, scipy; print(glob.glob(os.path.join(
 *       os.path.dirname(scipy.__file__), '..', 'scipy.libs',
 *       'libscipy_openblas*.so'))[0])")
 *   gcc -O3 -fopenmp-simd -fno-trapping-math -I rnncore \
 *       benchmarks/step_product.c -o /tmp/step_product "$LIB" \
 *       -Wl,-rpath,"$(dirname "$LIB")"
 *   /tmp/step_product
 */
#include <stdio.h>
#include <stdlib.h>

#include "_packed_gemm.h"
#include "scipy_blas.h"

int main(void)
{
    static const int rows[] = {1, 2, 4, 8, 16, 32, 33, 64, 128, 256};
    static const int hidden[] = {100, 128, 256, 512, 1024};
    const float one = 1;
    scipy_openblas_set_num_threads(1);
    printf("| H | m | small µs | packed µs | BLAS µs | small GFLOP/s "
           "| packed GFLOP/s | BLAS GFLOP/s |\n");
    printf("|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for (size_t h = 0; h < sizeof hidden / sizeof *hidden; h++) {
        const int H = hidden[h];
        float *A = malloc(sizeof(float) * 256 * H);
        float *B = malloc(sizeof(float) * H * H);
        float *P = malloc(sizeof(float) * rnc_packed_len_f32(H, H));
        float *C = calloc((size_t)256 * H, sizeof(float));
        for (int i = 0; i < 256 * H; i++) A[i] = (float)(i % 7) * 0.01f;
        for (int i = 0; i < H * H; i++) B[i] = (float)(i % 5) * 0.01f;
        rnc_pack_f32(H, H, B, 0, P);
        for (size_t r = 0; r < sizeof rows / sizeof *rows; r++) {
            const int m = rows[r];
            const long reps = 20000000L / ((long)m * H * H / 100 + 1) + 10;
            double own = 1e9, packed = 1e9, blas = 1e9;
            for (int rep = 0; rep < 15; rep++) {
                double t = now();
                for (long i = 0; i < reps; i++)
                    rnc_step_gemm_acc_f32(m, H, H, A, B, C);
                t = (now() - t) / reps;
                own = t < own ? t : own;
                t = now();
                for (long i = 0; i < reps; i++)
                    rnc_packed_gemm_f32(m, H, H, A, P, 1, C, H);
                t = (now() - t) / reps;
                packed = t < packed ? t : packed;
                t = now();
                /* row-major C += A·B is column-major Cᵀ += Bᵀ·Aᵀ */
                for (long i = 0; i < reps; i++)
                    scipy_sgemm_("N", "N", &H, &m, &H, &one, B, &H, A, &H,
                                 &one, C, &H);
                t = (now() - t) / reps;
                blas = t < blas ? t : blas;
            }
            const double flops = 2.0 * m * H * H;
            printf("| %d | %d | %.2f | %.2f | %.2f | %.0f | %.0f | %.0f |\n", H,
                   m, own * 1e6, packed * 1e6, blas * 1e6, flops / own / 1e9,
                   flops / packed / 1e9, flops / blas / 1e9);
        }
        free(A);
        free(B);
        free(P);
        free(C);
    }
    return 0;
}

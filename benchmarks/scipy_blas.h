/*
 * What the C benchmarks call in SciPy's OpenBLAS (libscipy_openblas, whose
 * symbols carry a scipy_ prefix), and their clock.
 */
#ifndef RNNCORE_BENCH_SCIPY_BLAS_H
#define RNNCORE_BENCH_SCIPY_BLAS_H

#include <time.h>

void scipy_sgemm_(const char *, const char *, const int *, const int *,
                  const int *, const float *, const float *, const int *,
                  const float *, const int *, const float *, float *,
                  const int *);
void scipy_dgemm_(const char *, const char *, const int *, const int *,
                  const int *, const double *, const double *, const int *,
                  const double *, const int *, const double *, double *,
                  const int *);
void scipy_openblas_set_num_threads(int);

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

#endif

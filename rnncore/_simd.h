/*
 * Element-wise kernels of rnncore: tanh, its backward step, exp and the
 * softmax of one row.  (The per-step product is in _step_gemm.h.)
 *
 * Every scalar function is branch-free straight-line arithmetic so that the
 * array loops below vectorise at the full SIMD width without -ffast-math
 * (a libm call per element would not vectorise).  NaN propagates through
 * every function: each clamp is written so that a NaN fails the comparison
 * and passes through unchanged.
 *
 * On x86-64 Linux (glibc) with GCC >= 12 the array kernels are compiled three
 * times (x86-64-v4: AVX-512; x86-64-v3: AVX2 + FMA; baseline) and the clone is
 * chosen at load time by the CPU's features, so a portable wheel still runs
 * at the machine's width.  (Clones named after a CPU model, such as
 * arch=haswell, are chosen by model and would fall back to the baseline on
 * other vendors' CPUs.)
 */
#ifndef RNNCORE_SIMD_H
#define RNNCORE_SIMD_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* target_clones resolves through a glibc ifunc: __GLIBC__ (defined by
   <math.h>'s <features.h>) keeps it off musl (Alpine), macOS and Windows,
   and __x86_64__ off arm64, where the kernels build for the baseline. */
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12 && \
    defined(__x86_64__) && defined(__GLIBC__) && !defined(RNNCORE_NO_DISPATCH)
#define RNC_DISPATCH \
    __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#define RNC_HAVE_DISPATCH 1
#else
#define RNC_DISPATCH
#define RNC_HAVE_DISPATCH 0
#endif

#if defined(__GNUC__) || defined(__clang__)
/* "omp simd" needs only -fopenmp-simd: no OpenMP runtime, no threads. */
#define RNC_PRAGMA(x) _Pragma(#x)
#define RNC_UNUSED __attribute__((unused))
/* always_inline: GCC does not inline a default-target function into a
   target clone otherwise, and a call per element defeats vectorisation. */
#define RNC_INLINE static inline __attribute__((always_inline))
#elif defined(_MSC_VER)
/* MSVC's C compiler has long spelled C99's inline as __inline. */
#define RNC_PRAGMA(x)
#define RNC_UNUSED
#define RNC_INLINE static __inline
#else
#define RNC_PRAGMA(x)
#define RNC_UNUSED
#define RNC_INLINE static inline
#endif
#define RNC_SIMD RNC_PRAGMA(omp simd)

/* ---- exp ------------------------------------------------------------ */
/*
 * exp(x) = 2^k e^r with k = round(x / ln 2), r = x - k ln 2 (ln 2 split in
 * two so that k * LN2_HI is exact), |r| <= ln2 / 2, e^r by its Taylor
 * polynomial (degree 7 for float: < 1e-9 truncation; degree 13 for double:
 * < 5e-18).  k is read from the bits of x/ln2 + 1.5 * 2^p (round to nearest
 * without a float-to-int conversion, which would be undefined for NaN).
 * Domain: x <= 80 (float) / 700 (double), which is all the callers need;
 * below -87.3 / -708.3 the result is 0 (no denormals).
 */
RNC_INLINE float rnc_expf(float x)
{
    const float magic = 12582912.0f; /* 1.5 * 2^23 */
    float xc = x < -87.3f ? -87.3f : x;
    float t = xc * 1.44269504088896341f + magic;
    float k = t - magic;
    float r = (xc - k * 0.693115234375f) - k * 3.19461849e-05f;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    int32_t ti, mi;
    memcpy(&ti, &t, sizeof ti);
    memcpy(&mi, &magic, sizeof mi);
    int32_t bits = (int32_t)((uint32_t)(ti - mi + 127) << 23);
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    float y = p * scale;
    return x < -87.3f ? 0.0f : y;
}

RNC_INLINE double rnc_exp(double x)
{
    const double magic = 6755399441055744.0; /* 1.5 * 2^52 */
    double xc = x < -708.3 ? -708.3 : x;
    double t = xc * 1.4426950408889634 + magic;
    double k = t - magic;
    double r = (xc - k * 0.6931471803691238) - k * 1.9082149292705877e-10;
    double p = 1.0 / 6227020800.0;
    p = p * r + 1.0 / 479001600.0;
    p = p * r + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    int64_t ti, mi;
    memcpy(&ti, &t, sizeof ti);
    memcpy(&mi, &magic, sizeof mi);
    int64_t bits = (int64_t)((uint64_t)(ti - mi + 1023) << 52);
    double scale;
    memcpy(&scale, &bits, sizeof scale);
    double y = p * scale;
    return x < -708.3 ? 0.0 : y;
}

/* ---- tanh ----------------------------------------------------------- */
/*
 * a = |x|.  For a >= 0.625: tanh(a) = (e^{2a} - 1) / (e^{2a} + 1), where
 * e^{2a} >= 3.4, so the subtraction loses less than one bit.  For a <
 * 0.625: the Taylor series of tanh at u = a/4 (< 0.16, so few terms reach
 * full precision), then twice the doubling formula tanh(2u) = 2 tanh(u) /
 * (1 + tanh(u)^2), the two written as one fraction: with s = tanh(u),
 * tanh(a/2) = n1/d1 = 2s / (1 + s^2) and tanh(a) = 2 n1 d1 / (d1^2 + n1^2).
 * Both branches are computed and their numerators and denominators
 * selected, so the loop stays branch-free with one division per element
 * (it had three; a division is the slowest vector instruction here).
 * Beyond 9 (float) / 19.5 (double) tanh rounds to 1.  Error: a few ulp.
 */
RNC_INLINE float rnc_tanhf(float x)
{
    float a = fabsf(x);
    a = a > 9.0f ? 9.0f : a;
    float e = rnc_expf(2.0f * a);
    float u = 0.25f * a, u2 = u * u;
    float s = -17.0f / 315.0f;
    s = s * u2 + 2.0f / 15.0f;
    s = s * u2 - 1.0f / 3.0f;
    s = u + u * u2 * s;
    float n1 = 2.0f * s, d1 = 1.0f + s * s; /* tanh(a/2) = n1 / d1 */
    int small = a < 0.625f;
    float num = small ? 2.0f * n1 * d1 : e - 1.0f;
    float den = small ? d1 * d1 + n1 * n1 : e + 1.0f;
    return copysignf(num / den, x);
}

RNC_INLINE double rnc_tanh(double x)
{
    double a = fabs(x);
    a = a > 19.5 ? 19.5 : a;
    double e = rnc_exp(2.0 * a);
    double u = 0.25 * a, u2 = u * u;
    double s = -929569.0 / 638512875.0;
    s = s * u2 + 21844.0 / 6081075.0;
    s = s * u2 - 1382.0 / 155925.0;
    s = s * u2 + 62.0 / 2835.0;
    s = s * u2 - 17.0 / 315.0;
    s = s * u2 + 2.0 / 15.0;
    s = s * u2 - 1.0 / 3.0;
    s = u + u * u2 * s;
    double n1 = 2.0 * s, d1 = 1.0 + s * s; /* tanh(a/2) = n1 / d1 */
    int small = a < 0.625;
    double num = small ? 2.0 * n1 * d1 : e - 1.0;
    double den = small ? d1 * d1 + n1 * n1 : e + 1.0;
    return copysign(num / den, x);
}

/* ---- array kernels, one pair per dtype -------------------------------- */

#define RNC_DEFINE_KERNELS(T, SUFFIX, TANH, EXP, LOG)                         \
/* x <- tanh(x) */                                                           \
RNC_DISPATCH RNC_UNUSED static void rnc_tanh_inplace_##SUFFIX(T *x, ptrdiff_t n)        \
{                                                                            \
    RNC_SIMD                                                                 \
    for (ptrdiff_t i = 0; i < n; i++) x[i] = TANH(x[i]);                     \
}                                                                            \
                                                                             \
/* delta <- (1 - h^2) * (delta + carry): one backward step through tanh */   \
RNC_DISPATCH RNC_UNUSED static void rnc_tanh_backward_##SUFFIX(                         \
    T *delta, const T *h, const T *carry, ptrdiff_t n)                       \
{                                                                            \
    RNC_SIMD                                                                 \
    for (ptrdiff_t i = 0; i < n; i++)                                        \
        delta[i] = (1 - h[i] * h[i]) * (delta[i] + carry[i]);                \
}                                                                            \
                                                                             \
/* p <- scale * softmax(z); *zmax <- max(z); returns log(sum(exp(z - max))) */\
/* (logsumexp(z) = *zmax + the result, kept apart for precision).          */\
/* p may alias z.                                                           */\
RNC_DISPATCH RNC_UNUSED static double rnc_softmax_row_##SUFFIX(             \
    const T *z, T *p, ptrdiff_t n, T scale, T *zmax)                         \
{                                                                            \
    T m = z[0];                                                              \
    RNC_PRAGMA(omp simd reduction(max:m))                                    \
    for (ptrdiff_t i = 1; i < n; i++) m = z[i] > m ? z[i] : m;               \
    T s = 0;                                                                 \
    RNC_PRAGMA(omp simd reduction(+:s))                                      \
    for (ptrdiff_t i = 0; i < n; i++) {                                      \
        T e = EXP(z[i] - m);                                                 \
        p[i] = e;                                                            \
        s += e;                                                              \
    }                                                                        \
    T inv = scale / s;                                                       \
    RNC_SIMD                                                                 \
    for (ptrdiff_t i = 0; i < n; i++) p[i] *= inv;                           \
    *zmax = m;                                                               \
    return LOG((double)s);                                                   \
}

RNC_DEFINE_KERNELS(float, f32, rnc_tanhf, rnc_expf, log)
RNC_DEFINE_KERNELS(double, f64, rnc_tanh, rnc_exp, log)

/* The instruction set the dispatched kernels run with on this CPU. */
RNC_UNUSED static const char *rnc_simd_isa(void)
{
#if RNC_HAVE_DISPATCH
    __builtin_cpu_init();
    if (__builtin_cpu_supports("x86-64-v4"))
        return "x86-64-v4 (AVX-512)";
    if (__builtin_cpu_supports("x86-64-v3"))
        return "x86-64-v3 (AVX2, FMA)";
    return "x86-64 (SSE2)";
#elif defined(__aarch64__) || defined(_M_ARM64)
    return "neon";
#else
    return "baseline";
#endif
}

/* Whether the CPU issues one AVX-512 multiply-add per cycle, each 512-bit
   operation running as two 256-bit halves: AMD family 19h (Zen 4; its Zen 3
   members have no AVX-512).  There the register-blocked kernel of
   _step_gemm.h runs at 96% of the FMA peak and outruns both the packed
   kernel, whose copy of A then costs more than it saves, and SciPy's
   OpenBLAS (docs/performance-notes.md).  __builtin_cpu_is reads the model
   libgcc identified once at load time. */
RNC_UNUSED static int rnc_half_rate_avx512(void)
{
#if RNC_HAVE_DISPATCH
    return __builtin_cpu_is("amdfam19h") && __builtin_cpu_supports("avx512f");
#else
    return 0;
#endif
}

#endif /* RNNCORE_SIMD_H */

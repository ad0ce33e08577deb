/*
 * Element-wise kernels of rnncore: tanh, its backward step, exp, the
 * softmax of one row, and the optimisers' loops that take square roots,
 * divisions or long sums (Adam, Adagrad, the 2-norm of gradient
 * clipping).  (The per-step product is in _step_gemm.h.)
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
 * Half-angle rational approximation with one division.  s = a / Q ~=
 * 2 tanh(x/2), a = x P(t), t = x^2, P = 1 + u, Q = 1 + v (u, v kept without
 * the 1 so that small x loses nothing), and then the double-angle formula
 * tanh(x) = s / (1 + s^2/4) = a Q / (Q^2 + a^2/4).  Since
 * d log tanh / d log s = sech(x), rounding and approximation errors in P, Q
 * and a are damped by sech(x) for large |x|, so a low degree suffices: P, Q
 * are a relative-minimax fit of 2 tanh(x/2)/x weighted by sech(x)
 * (tools/tanh_fit.py).  Clamping x to +-9.0115 (float) / +-19.5 (double),
 * past which tanh is within an ulp of 1, keeps the polynomials in range;
 * a NaN fails both comparisons and propagates, -0 and tiny x give x
 * exactly, and the result is exactly odd.  num is clamped to +-den so that
 * |y| <= 1 also in the build without FMA.
 * Error against the exact value (benchmarks/tanh_accuracy.c): float at most
 * 3.5 ulp over all floats (4.0 without FMA), double at most 3.7 ulp on
 * 1.2e7 samples (4.1 without FMA).  About 15 vector operations per element,
 * against 40 for the exp-based form it replaced: 1.8x faster in float and
 * double on AVX-512, 2.3x on AVX2.
 */
RNC_INLINE float rnc_tanhf(float x)
{
    x = x > 9.01150513f ? 9.01150513f : x;
    x = x < -9.01150513f ? -9.01150513f : x;
    float t = x * x;
    float u = 1.142529727e-04f;                 /* u = P(t) - 1 */
    u = u * t + 2.977377549e-02f;
    u = u * t;
    float v = 1.228974611e-06f;                 /* v = Q(t) - 1 */
    v = v * t + 1.206545858e-03f;
    v = v * t + 1.131070703e-01f;
    v = v * t;
    float a = x * u + x;                        /* x P */
    float num = a * v + a;                      /* a Q */
    float den = ((0.25f * a) * a + v * (v + 2.0f)) + 1.0f; /* Q^2 + a^2/4 */
    num = num > den ? den : num;
    num = num < -den ? -den : num;
    return num / den;
}

RNC_INLINE double rnc_tanh(double x)
{
    x = x > 19.5 ? 19.5 : x;
    x = x < -19.5 ? -19.5 : x;
    double t = x * x;
    double u = 1.819033452513824e-13;           /* u = P(t) - 1 */
    u = u * t + 8.072497327764174e-10;
    u = u * t + 8.529365470104715e-07;
    u = u * t + 0.00030329548345771313;
    u = u * t + 0.036023808565060864;
    u = u * t;
    double v = 5.220887294625967e-16;           /* v = Q(t) - 1 */
    v = v * t + 7.600382701435533e-12;
    v = v * t + 1.5185502376433715e-08;
    v = v * t + 9.163275785534819e-06;
    v = v * t + 0.001916390641657777;
    v = v * t + 0.11935714189839386;
    v = v * t;
    double a = x * u + x;                       /* x P */
    double num = a * v + a;                     /* a Q */
    double den = ((0.25 * a) * a + v * (v + 2.0)) + 1.0; /* Q^2 + a^2/4 */
    num = num > den ? den : num;
    num = num < -den ? -den : num;
    return num / den;
}

/* ---- array kernels, one pair per dtype -------------------------------- */

#define RNC_DEFINE_KERNELS(T, SUFFIX, TANH, EXP, LOG, SQRT)                   \
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
}                                                                            \
                                                                             \
/* One Adam step over n elements (rnncore/_optim.pyx): d = g + l2·p (g when \
   l2 is 0, so that an infinite p does not make NaN); m <- torch's          \
   lerp(m, d, w1); v <- β₂·v + c2·d²; p <- decay·p + neg_step·m / (√v +     \
   eps).  Here rather than in Cython for the clones: sqrt and division     \
   dominate, and AVX2 does twice as many per instruction as SSE2. */        \
RNC_DISPATCH RNC_UNUSED static void rnc_adam_##SUFFIX(                      \
    ptrdiff_t n, T *p, const T *g, T *m, T *v, T decay, T l2, T w1,          \
    T beta2, T c2, T neg_step, T eps)                                        \
{                                                                            \
    /* torch's lerp: m + w (d - m) for w < 0.5, else d - (1 - w)(d - m) */  \
    const int small = w1 < (T)0.5;                                           \
    const T w1c = 1 - w1;                                                    \
    RNC_SIMD                                                                 \
    for (ptrdiff_t i = 0; i < n; i++) {                                      \
        const T d = l2 != 0 ? g[i] + l2 * p[i] : g[i];                       \
        const T diff = d - m[i];                                             \
        const T mi = small ? m[i] + w1 * diff : d - diff * w1c;              \
        const T vi = v[i] * beta2 + c2 * d * d;                              \
        m[i] = mi;                                                           \
        v[i] = vi;                                                           \
        p[i] = p[i] * decay + neg_step * mi / (SQRT(vi) + eps);              \
    }                                                                        \
}                                                                            \
                                                                             \
/* One Adagrad step: d = g + l2·p (g when l2 is 0); s <- s + d²;            \
   p <- p + neg_clr·d / (√s + eps). */                                       \
RNC_DISPATCH RNC_UNUSED static void rnc_adagrad_##SUFFIX(                   \
    ptrdiff_t n, T *p, const T *g, T *s, T neg_clr, T l2, T eps)             \
{                                                                            \
    RNC_SIMD                                                                 \
    for (ptrdiff_t i = 0; i < n; i++) {                                      \
        const T d = l2 != 0 ? g[i] + l2 * p[i] : g[i];                       \
        const T si = s[i] + d * d;                                           \
        s[i] = si;                                                           \
        p[i] = p[i] + neg_clr * d / (SQRT(si) + eps);                        \
    }                                                                        \
}                                                                            \
                                                                             \
/* Σ g² in double (gradient clipping's 2-norm); NaN propagates.  Sixteen    \
   partial sums, lane j taking the elements j mod 16: several independent   \
   vector chains (one reduction vector would wait on the latency of each    \
   add), in the same order whatever the vector width. */                    \
RNC_DISPATCH RNC_UNUSED static double rnc_sum_squares_##SUFFIX(             \
    ptrdiff_t n, const T *g)                                                 \
{                                                                            \
    double acc[16] = {0}, s = 0;                                             \
    ptrdiff_t i = 0;                                                         \
    for (; i + 16 <= n; i += 16) {                                           \
        RNC_SIMD                                                             \
        for (int j = 0; j < 16; j++)                                         \
            acc[j] += (double)g[i + j] * (double)g[i + j];                   \
    }                                                                        \
    for (; i < n; i++) s += (double)g[i] * (double)g[i];                     \
    for (int j = 0; j < 16; j++) s += acc[j];                                \
    return s;                                                                \
}

RNC_DEFINE_KERNELS(float, f32, rnc_tanhf, rnc_expf, log, sqrtf)
RNC_DEFINE_KERNELS(double, f64, rnc_tanh, rnc_exp, log, sqrt)

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

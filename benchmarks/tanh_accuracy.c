/*
 * Accuracy of rnncore's tanh (rnc_tanhf, rnc_tanh in rnncore/_simd.h) as
 * the library runs it: through the array kernels rnc_tanh_inplace_f32 and
 * _f64, chunk by chunk, in the clone dispatched for this CPU.
 *
 * float32: every float from 0 to +inf, against (float)tanh((double)x) (the
 * correctly rounded value, but for rare double roundings) as a distance in
 * ulps, and against tanh((double)x) itself in ulps of its binade; |y| > 1;
 * odd symmetry (f(-x) must be -f(x) bit for bit, for every negative float).
 * float64: a fixed pseudo-random sample of 1.21e7 points (xorshift64, so the
 * same points on every run), the same two errors against tanhl (long double:
 * x87 extended precision on x86-64, 11 bits more than double).  Both: the
 * special values.  Prints markdown tables.
 *
 * Build and run from the repository root (under half a minute on one core):
 *
 *   gcc -O3 -Wall -fopenmp-simd -fno-trapping-math -I rnncore \
 *       benchmarks/tanh_accuracy.c -o /tmp/tanh_accuracy -lm
 *   /tmp/tanh_accuracy
 *
 * Add -DRNNCORE_NO_DISPATCH to measure the baseline build alone (on x86-64:
 * SSE2, no FMA, which rounds differently).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "_simd.h"

#define CHUNK 16384

static float f32_of(uint32_t b) { float f; memcpy(&f, &b, 4); return f; }
static uint32_t bits32(float f) { uint32_t b; memcpy(&b, &f, 4); return b; }
static double f64_of(uint64_t b) { double d; memcpy(&d, &b, 8); return d; }
static uint64_t bits64(double d) { uint64_t b; memcpy(&b, &d, 8); return b; }

/* ulp of float32 at v >= 0, from v's binade (2^-149 below the normals),
   built from v's exponent bits: no libm call in the loop over 2^31 floats */
static double ulp32(double v)
{
    int e = (int)(bits64(v) >> 52) - 1023;
    e = e < -126 ? -126 : e;
    return f64_of((uint64_t)(e - 23 + 1023) << 52);
}

/* ulp of float64 at r >= 0 (2^-1074 below the normals) */
static long double ulp64(long double r)
{
    int e;
    frexpl(r, &e);
    return ldexpl(1.0L, (e < -1021 ? -1021 : e) - 53);
}

struct result {
    long long ulps;        /* largest distance to the rounded reference */
    double ulps_at;
    double err;            /* largest error against the exact value, ulps */
    double err_at;
    long long above_one;   /* |y| > 1 or NaN */
    long long asymmetric;  /* f(-x) != -f(x) */
};

static void update(struct result *r, double x, long long d, double e)
{
    if (d > r->ulps) { r->ulps = d; r->ulps_at = x; }
    if (e > r->err) { r->err = e; r->err_at = x; }
}

static void test_f32(struct result *r)
{
    static float x[CHUNK], y[CHUNK], yneg[CHUNK];
    const uint64_t end = 0x7f800001u;  /* one past +inf */
    for (uint64_t b0 = 0; b0 < end; b0 += CHUNK) {
        const int n = end - b0 < CHUNK ? (int)(end - b0) : CHUNK;
        for (int i = 0; i < n; i++) {
            x[i] = y[i] = f32_of((uint32_t)(b0 + i));
            yneg[i] = -x[i];
        }
        rnc_tanh_inplace_f32(y, n);
        rnc_tanh_inplace_f32(yneg, n);
        for (int i = 0; i < n; i++) {
            const double exact = tanh((double)x[i]);
            const float rounded = (float)exact;
            long long d = (long long)bits32(y[i]) - bits32(rounded);
            update(r, x[i], d < 0 ? -d : d, fabs(y[i] - exact) / ulp32(exact));
            r->above_one += !(fabsf(y[i]) <= 1);
            r->asymmetric += bits32(yneg[i]) != (bits32(y[i]) ^ 0x80000000u);
        }
    }
}

/* xorshift64 (Marsaglia), a uniform double in [0, 1) */
static uint64_t rng = 88172645463325252u;
static double uniform(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) * 0x1p-53;
}

/* The sample, by index: 10^7 log-uniform in [2^-40, 32], 10^6 uniform in
   [0, 1], 10^6 uniform in [17, 21] (across the clamp at 19.5 and the point
   19.06 beyond which tanh rounds to 1), 10^5 log-uniform in [2^-1074,
   2^-40] (down through the subnormals). */
#define N64 12100000L
static double sample(long i)
{
    const double u = uniform();
    if (i < 10000000L) return exp2(-40 + 45 * u);
    if (i < 11000000L) return u;
    if (i < 12000000L) return 17 + 4 * u;
    return exp2(-1074 + 1034 * u);
}

static void test_f64(struct result *r)
{
    static double x[CHUNK], y[CHUNK], yneg[CHUNK];
    for (long i0 = 0; i0 < N64; i0 += CHUNK) {
        const int n = N64 - i0 < CHUNK ? (int)(N64 - i0) : CHUNK;
        for (int i = 0; i < n; i++) {
            x[i] = y[i] = sample(i0 + i);
            yneg[i] = -x[i];
        }
        rnc_tanh_inplace_f64(y, n);
        rnc_tanh_inplace_f64(yneg, n);
        for (int i = 0; i < n; i++) {
            const long double exact = tanhl((long double)x[i]);
            const double rounded = (double)exact;
            long long d = (long long)(bits64(y[i]) - bits64(rounded));
            update(r, x[i], d < 0 ? -d : d,
                   (double)(fabsl(y[i] - exact) / ulp64(exact)));
            r->above_one += !(fabs(y[i]) <= 1);
            r->asymmetric += bits64(yneg[i]) != (bits64(y[i]) ^ (1ull << 63));
        }
    }
}

/* One cell: the result, and libm's where the two differ (any NaN matches
   a NaN). */
static void cell(double y, double libm, int digits)
{
    printf(" %.*g", digits, y);
    if (!(y == libm && signbit(y) == signbit(libm)) && !(isnan(y) && isnan(libm)))
        printf(" (libm %.*g)", digits, libm);
    printf(" |");
}

int main(void)
{
    struct result r32 = {0}, r64 = {0};
    test_f32(&r32);
    test_f64(&r64);

    printf("rnncore tanh through rnc_tanh_inplace_f32/_f64, kernels: %s\n\n",
           rnc_simd_isa());
    printf("| function | inputs | max ulps from rounded reference | at x "
           "| max error (ulps) | at x | \\|y\\| > 1 | f(-x) != -f(x) |\n");
    printf("|---|---|---:|---:|---:|---:|---:|---:|\n");
    printf("| rnc_tanhf | all %llu floats in [0, +inf] and their negatives "
           "| %lld | %.9g | %.3f | %.9g | %lld | %lld |\n",
           0x7f800001ull, r32.ulps, r32.ulps_at, r32.err, r32.err_at, r32.above_one,
           r32.asymmetric);
    printf("| rnc_tanh | %ld samples in [2^-1074, 32] and their negatives "
           "| %lld | %.17g | %.3f | %.17g | %lld | %lld |\n",
           N64, r64.ulps, r64.ulps_at, r64.err, r64.err_at, r64.above_one,
           r64.asymmetric);

    /* special values: float32 and float64 in two columns */
    static const char *names[] = {
        "+0", "-0", "+inf", "-inf", "NaN", "-NaN", "smallest subnormal",
        "-smallest subnormal", "largest subnormal", "smallest normal",
        "clamp", "-clamp", "1e30", "-1e30",
    };
    enum { NSPECIAL = sizeof names / sizeof *names };
    float xf[NSPECIAL] = {
        0.0f, -0.0f, INFINITY, -INFINITY, NAN, -NAN, 0x1p-149f, -0x1p-149f,
        0x1.fffffcp-127f, 0x1p-126f, 9.01150513f, -9.01150513f, 1e30f, -1e30f,
    };
    double xd[NSPECIAL] = {
        0.0, -0.0, INFINITY, -INFINITY, NAN, -NAN, 0x1p-1074, -0x1p-1074,
        0x0.fffffffffffffp-1022, 0x1p-1022, 19.5, -19.5, 1e30, -1e30,
    };
    float yf[NSPECIAL];
    double yd[NSPECIAL];
    memcpy(yf, xf, sizeof xf);
    memcpy(yd, xd, sizeof xd);
    rnc_tanh_inplace_f32(yf, NSPECIAL);
    rnc_tanh_inplace_f64(yd, NSPECIAL);
    printf("\n| x | rnc_tanhf | rnc_tanh |\n|---|---:|---:|\n");
    for (int i = 0; i < NSPECIAL; i++) {
        printf("| %s |", names[i]);
        cell(yf[i], tanhf(xf[i]), 9);
        cell(yd[i], tanh(xd[i]), 17);
        printf("\n");
    }
    return 0;
}

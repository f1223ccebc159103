/* Accuracy of the generated C's sbp_exp, sbp_log, sbp_tanh, sbp_sigmoid, sbp_erf (and their float
 * versions) against a more precise libm: long double for the double functions, double for the
 * float ones. tests/test_c_math.py builds it with sbp_math.h (the template rendered with every
 * function) and reads its output.
 *
 * usage: check N SEED SAMPLE_FILE
 * For each function: N random points (random bit patterns: NaN, inf, subnormals, huge and tiny;
 * uniform over the interesting range; log-uniform magnitudes of both signs) and the special
 * points; prints one line `name max_ulp argmax bad_specials`. Writes the first 4096 random
 * points of each function and the results as (x, y) doubles to SAMPLE_FILE for mpmath. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sbp_math.h"

static uint64_t state;
static uint64_t next(void)
{
    uint64_t z = (state += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}
static double unit(void) { return (double)(next() >> 11) * 0x1p-53; }

/* The i-th test point of a function with interesting range [lo, hi] */
static double point(long i, double lo, double hi, int single)
{
    uint64_t u = next();
    double x;
    switch (i % 4) {
    case 0: /* any bit pattern */
        if (single) {
            uint32_t b = (uint32_t)u;
            float f;
            memcpy(&f, &b, 4);
            return (double)f;
        }
        memcpy(&x, &u, 8);
        return x;
    case 1: /* the interesting range */
        return lo + (hi - lo) * unit();
    case 2: /* magnitudes 2^-60 .. 2^10, both signs */
        x = ldexp(1.0 + unit(), (int)(next() % 70) - 60);
        return u & 1 ? -x : x;
    default: /* near 0.5 .. 2 and around 0.625 */
        x = 0.5 + 1.5 * unit();
        return u & 1 ? -x : x;
    }
}

static const double SPECIALS[] = {
    0.0, -0.0, INFINITY, -INFINITY, NAN, -NAN, 0x1p-1074, -0x1p-1074, 0x1p-1022, 0x0.fffffffffffffp-1022,
    0x1.fffffffffffffp1023, -0x1.fffffffffffffp1023, 1.0, -1.0, 0.625, -0.625, 0x1.3ffffffffffffp-1,
    709.782712893384, 709.7827128933841, 709.79, -745.1332191019411, -745.1332191019412, -708.3964185322641,
    -708.4, -744.0, 88.72283, 88.7229, -103.97208, -103.98, -87.33655, 0x1p-149, 0x1p-126, 0x1p-127,
    19.0, 20.0, 9.0, 10.0, 2.5, -2.5, 0x1.3ffffffffffffp+1, 6.0, 5.9, 4.0, 3.9, 0x1.0000000000001p+0, 0x1.fffffffffffffp-1, -36.0, -37.0, 710.0, -750.0, 1e-300, 1e300, 0.5, 2.0, 0x1.6a09e667f3bcdp-1,
};

typedef double (*dfun)(double);
typedef long double (*lfun)(long double);
typedef float (*ffun)(float);

static long double ref_sigmoidl(long double x) { return 1.0L / (1.0L + expl(-x)); }
static long double ref_expl(long double x) { return expl(x); }
static long double ref_logl(long double x) { return logl(x); }
static long double ref_tanhl(long double x) { return tanhl(x); }
static long double ref_erfl(long double x) { return erfl(x); }
static double ref_sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }

/* |y - r| in units in the last place of the type (53 or 24 bits) at r */
static double ulps(long double y, long double r, int single)
{
    int e, emin = single ? -126 : -1022, bits = single ? 24 : 53;
    if (isnan(r)) return isnan(y) ? 0 : INFINITY;
    if (isnan(y)) return INFINITY;
    if (isinf(r) || isinf(y)) return y == r ? 0 : INFINITY; /* both overflow or neither */
    frexpl(r, &e);
    if (e - 1 < emin) e = emin + 1;
    return (double)(fabsl(y - r) / ldexpl(1.0L, e - bits));
}

/* The exactly rounded result overflows (inf) or the function is within half an ulp of it:
 * rounding the long double reference to the type first, as libm does */
static long double rounded(long double r, int single)
{
    return single ? (long double)(float)r : (long double)(double)r;
}

static void run(const char *name, dfun d, lfun l, ffun f, double (*fr)(double), double lo,
                double hi, long n, FILE *sample)
{
    const int single = f != NULL;
    double worst = 0, at = 0;
    long bad = 0;
    const long nspecial = (long)(sizeof SPECIALS / sizeof SPECIALS[0]);
    for (long i = -nspecial; i < n; ++i) {
        double x = i < 0 ? SPECIALS[i + nspecial] : point(i, lo, hi, single);
        double y;
        long double r;
        if (single) {
            x = (double)(float)x;
            y = (double)f((float)x);
            r = (long double)fr(x);
        } else {
            y = d(x);
            r = l((long double)x);
        }
        r = isinf(rounded(r, single)) ? rounded(r, single) : r;
        double err = ulps((long double)y, r, single);
        if (i < 0 && (err > 2 || signbit(y) != signbit((double)r))) {
            if (!(isnan(y) && isnan((double)r))) {
                ++bad;
                fprintf(stderr, "%s(%a) = %a, expected %La\n", name, x, y, r);
            }
        }
        if (err > worst || (err != err)) {
            worst = err;
            at = x;
        }
        if (i >= 0 && i < 4096) {
            fwrite(&x, sizeof x, 1, sample);
            fwrite(&y, sizeof y, 1, sample);
        }
    }
    printf("%s %.4f %a %ld\n", name, worst, at, bad);
}

int main(int argc, char **argv)
{
    if (argc != 4) return 2;
    long n = atol(argv[1]);
    state = (uint64_t)atol(argv[2]);
    FILE *sample = fopen(argv[3], "wb");
    if (!sample) return 2;
    run("exp", sbp_exp, ref_expl, NULL, NULL, -750, 715, n, sample);
    run("log", sbp_log, ref_logl, NULL, NULL, 0, 4, n, sample);
    run("tanh", sbp_tanh, ref_tanhl, NULL, NULL, -25, 25, n, sample);
    run("sigmoid", sbp_sigmoid, ref_sigmoidl, NULL, NULL, -750, 40, n, sample);
    run("erf", sbp_erf, ref_erfl, NULL, NULL, -7, 7, n, sample);
    run("expf", NULL, NULL, sbp_expf, exp, -105, 90, n, sample);
    run("logf", NULL, NULL, sbp_logf, log, 0, 4, n, sample);
    run("tanhf", NULL, NULL, sbp_tanhf, tanh, -12, 12, n, sample);
    run("sigmoidf", NULL, NULL, sbp_sigmoidf, ref_sigmoid, -105, 20, n, sample);
    run("erff", NULL, NULL, sbp_erff, erf, -5, 5, n, sample);
    return fclose(sample) != 0;
}

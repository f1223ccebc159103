/* A hand-written training step, the baseline the generated C is measured against (bench_train.py).
 *
 * relu hidden layers, softmax + cross-entropy (mean), SGD, as one writes it by hand for one net:
 * sizes are compile-time constants (-DDEPTH=2 -DN0=64 -DN1=32 -DN2=10 -DBATCH=32 -DREAL=double,
 * and MAXN / MAXW, the largest width and weight matrix),
 * weights are kept transposed (WT[in][out], so every product is an axpy over contiguous rows),
 * and with -DUSE_BLAS the products are cblas_?gemm calls, the weight gradient applied by the gemm
 * itself (alpha = -lr, beta = 1). Build with -std=c99 -O3 (no -ffast-math).
 *
 * train(params, X, T, steps, batches, lr, &seconds) runs `steps` steps, step s on batch s % batches
 * (of BATCH rows) of X and T; params holds W1, b1, W2, b2, ... in the NumPy module's layout (W[out][in]) and is
 * transposed in and out around the steps; seconds gets the time of the steps alone.
 */
#define _POSIX_C_SOURCE 199309L /* clock_gettime */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#ifdef USE_BLAS
#include <cblas.h>
#endif

typedef REAL real;

#ifndef N3
#define N3 1
#endif
static const int n[4] = {N0, N1, N2, N3};

static real WT[DEPTH][MAXW];
static real b[DEPTH][MAXN];
static real act[DEPTH + 1][BATCH * MAXN]; /* act[l]: layer l's output (act[0] unused) */
static real delta[BATCH * MAXN], da[BATCH * MAXN];
static const real *input; /* the batch's rows of X, read in place */

#define IN(l) ((l) == 0 ? input : act[l])

static void forward(void)
{
    for (int l = 0; l < DEPTH; ++l) {
        const int in = n[l], out = n[l + 1];
        real *restrict z = act[l + 1];
        const real *restrict x = IN(l);
        for (int r = 0; r < BATCH; ++r) memcpy(z + r * out, b[l], out * sizeof(real));
#ifdef USE_BLAS
        if (sizeof(real) == 8)
            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, BATCH, out, in, 1.0,
                        (const double *)x, in, (const double *)WT[l], out, 1.0, (double *)z, out);
        else
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, BATCH, out, in, 1.0f,
                        (const float *)x, in, (const float *)WT[l], out, 1.0f, (float *)z, out);
#else
        for (int r = 0; r < BATCH; ++r)
            for (int j = 0; j < in; ++j) {
                const real v = x[r * in + j];
                const real *restrict w = WT[l] + j * out;
                for (int i = 0; i < out; ++i) z[r * out + i] += v * w[i];
            }
#endif
        if (l < DEPTH - 1)
            for (int e = 0; e < BATCH * out; ++e) z[e] = z[e] > 0 ? z[e] : 0;
    }
}

/* softmax + cross-entropy: the loss, and delta = (softmax(z) - t) / BATCH */
static double loss_and_delta(const real *T)
{
    const int k = n[DEPTH];
    const real *z = act[DEPTH];
    double loss = 0;
    for (int r = 0; r < BATCH; ++r) {
        real top = z[r * k], total = 0;
        for (int i = 1; i < k; ++i) top = z[r * k + i] > top ? z[r * k + i] : top;
        for (int i = 0; i < k; ++i) total += (delta[r * k + i] = exp(z[r * k + i] - top));
        for (int i = 0; i < k; ++i) {
            loss += T[r * k + i] * (log(total) + top - z[r * k + i]);
            delta[r * k + i] = (delta[r * k + i] / total - T[r * k + i]) / BATCH;
        }
    }
    return loss / BATCH;
}

static void backward(real lr)
{
    for (int l = DEPTH - 1; l >= 0; --l) {
        const int in = n[l], out = n[l + 1];
        const real *restrict x = IN(l);
        for (int r = 0; r < BATCH; ++r)
            for (int i = 0; i < out; ++i) b[l][i] -= lr * delta[r * out + i];
        if (l > 0) { /* da = delta W, with W^T stored: da[r][j] = sum_i delta[r][i] WT[j][i] */
#ifdef USE_BLAS
            if (sizeof(real) == 8)
                cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, BATCH, in, out, 1.0,
                            (const double *)delta, out, (const double *)WT[l], out, 0.0,
                            (double *)da, in);
            else
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, BATCH, in, out, 1.0f,
                            (const float *)delta, out, (const float *)WT[l], out, 0.0f,
                            (float *)da, in);
#else
            for (int r = 0; r < BATCH; ++r)
                for (int j = 0; j < in; ++j) {
                    const real *restrict w = WT[l] + j * out, *restrict d = delta + r * out;
                    real s = 0;
                    for (int i = 0; i < out; ++i) s += d[i] * w[i];
                    da[r * in + j] = s;
                }
#endif
        }
        /* WT -= lr x^T delta */
#ifdef USE_BLAS
        if (sizeof(real) == 8)
            cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, in, out, BATCH, -(double)lr,
                        (const double *)x, in, (const double *)delta, out, 1.0,
                        (double *)WT[l], out);
        else
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, in, out, BATCH, -(float)lr,
                        (const float *)x, in, (const float *)delta, out, 1.0f, (float *)WT[l],
                        out);
#else
        for (int r = 0; r < BATCH; ++r)
            for (int j = 0; j < in; ++j) {
                const real v = lr * x[r * in + j];
                const real *restrict d = delta + r * out;
                real *restrict w = WT[l] + j * out;
                for (int i = 0; i < out; ++i) w[i] -= v * d[i];
            }
#endif
        if (l > 0)
            for (int e = 0; e < BATCH * in; ++e) delta[e] = x[e] > 0 ? da[e] : 0;
    }
}

double train(real *params, const real *X, const real *T, long steps, long batches, double lr,
             double *seconds)
{
    double loss = 0;
    real *p = params;
    struct timespec begin, end;
    for (int l = 0; l < DEPTH; ++l) { /* in: W[out][in] -> WT[in][out] */
        for (int i = 0; i < n[l + 1]; ++i)
            for (int j = 0; j < n[l]; ++j) WT[l][j * n[l + 1] + i] = p[i * n[l] + j];
        p += n[l] * n[l + 1];
        memcpy(b[l], p, n[l + 1] * sizeof(real));
        p += n[l + 1];
    }
    clock_gettime(CLOCK_MONOTONIC, &begin);
    for (long s = 0; s < steps; ++s) {
        input = X + s % batches * BATCH * N0;
        forward();
        loss = loss_and_delta(T + s % batches * BATCH * n[DEPTH]);
        backward((real)lr);
    }
    clock_gettime(CLOCK_MONOTONIC, &end);
    *seconds = (double)(end.tv_sec - begin.tv_sec) + 1e-9 * (double)(end.tv_nsec - begin.tv_nsec);
    p = params;
    for (int l = 0; l < DEPTH; ++l) { /* out */
        for (int i = 0; i < n[l + 1]; ++i)
            for (int j = 0; j < n[l]; ++j) p[i * n[l] + j] = WT[l][j * n[l + 1] + i];
        p += n[l] * n[l + 1];
        memcpy(p, b[l], n[l + 1] * sizeof(real));
        p += n[l + 1];
    }
    return loss;
}

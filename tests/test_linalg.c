/* Tests for core/mf/linalg (the portable kernels of the client step) and for
 * the client step on both backends: each kernel against a double-precision
 * loop, the Cholesky solve against Gaussian elimination in double, and the
 * whole step (x_u, gradient, loss) portable vs a double reference and, in
 * builds with BLAS, portable vs OpenBLAS.
 *
 * Tolerance (stated, and what docs/client.md quotes): on a well-conditioned
 * step (3,650 items x 32 factors, Y ~ N(0, 0.1^2), lambda 0.1, 60 purchases)
 * every entry of x_u and of the gradient of the portable path is within
 * STEP_TOL * max|entry| of the OpenBLAS path, and the loss within STEP_TOL
 * relative. Float32 rounding alone explains differences of ~1e-6 here. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/mf/linalg.h"
#include "core/mf/mf.h"
#include "fedrec/fedrec.h"

#define STEP_TOL 1e-4

static uint64_t rng = 88172645463325252ull;

static float frand(float lo, float hi)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return lo + (hi - lo) * (float)((double)(rng >> 11) * 0x1p-53);
}

static float *rand_vec(size_t n, float lo, float hi)
{
    float *v = malloc(n * sizeof *v);
    assert_non_null(v);
    for (size_t i = 0; i < n; i++)
        v[i] = frand(lo, hi);
    return v;
}

/* ---- kernels against double loops ----------------------------------------- */

static void test_dot_axpy_ger_gemv(void **state)
{
    (void)state;
    /* Lengths around the lane count, including the tails. */
    const uint32_t ks[] = {1, 3, 7, 8, 9, 16, 31, 32, 33, 64};
    for (size_t t = 0; t < sizeof ks / sizeof ks[0]; t++) {
        uint32_t k = ks[t];
        size_t m = 37;
        float *y = rand_vec(m * k, -1.0f, 1.0f), *x = rand_vec(k, -1.0f, 1.0f);
        float *r = rand_vec(m, 0.0f, 0.0f), *e = rand_vec(m, -2.0f, 2.0f);
        float *g = rand_vec(m * k, -1.0f, 1.0f), *g0 = malloc(m * k * sizeof *g0);
        assert_non_null(g0);
        memcpy(g0, g, m * k * sizeof *g);
        fedreci_la_gemv(m, k, y, x, r);
        fedreci_la_ger(m, k, -2.0f, e, x, 1.0f, g);
        for (size_t i = 0; i < m; i++) {
            double ref = 0.0, mag = 0.0;
            for (uint32_t d = 0; d < k; d++) {
                ref += (double)y[i * k + d] * x[d];
                mag += fabs((double)y[i * k + d] * x[d]);
            }
            assert_true(fabs(r[i] - ref) <= 1e-6 * (mag + 1.0));
            assert_true(fabs(fedreci_la_dot(k, y + i * k, x) - ref) <= 1e-6 * (mag + 1.0));
            for (uint32_t d = 0; d < k; d++) {
                double want = (double)g0[i * k + d] - 2.0 * (double)e[i] * x[d];
                assert_true(fabs(g[i * k + d] - want) <= 1e-6 * (fabs(want) + 1.0));
            }
        }
        /* beta = 0 overwrites without reading (NaN in G is not propagated). */
        g[0] = NAN;
        fedreci_la_ger(m, k, 3.0f, e, x, 0.0f, g);
        for (size_t i = 0; i < m * k; i++)
            assert_float_equal(g[i], 3.0f * e[i / k] * x[i % k], 1e-6);
        float *v = rand_vec(k, -1.0f, 1.0f), *w = malloc(k * sizeof *w);
        assert_non_null(w);
        memcpy(w, v, k * sizeof *w);
        fedreci_la_axpy(k, 0.5f, x, v);
        for (uint32_t d = 0; d < k; d++)
            assert_float_equal(v[d], w[d] + 0.5f * x[d], 1e-6);
        free(y), free(x), free(r), free(e), free(g), free(g0), free(v), free(w);
    }
}

static void test_syrk_syr_upper_only(void **state)
{
    (void)state;
    const uint32_t k = 13;
    const size_t m = 23; /* not a multiple of 4: the single-row tail runs too */
    float *z = rand_vec(m * k, -1.0f, 1.0f);
    float *a = rand_vec((size_t)k * k, -5.0f, 5.0f);
    float *lower = malloc((size_t)k * k * sizeof *lower);
    assert_non_null(lower);
    memcpy(lower, a, (size_t)k * k * sizeof *a);
    /* beta = 0 ignores what A held, NaN included. */
    a[1] = NAN;
    fedreci_la_syrk_upper(k, m, z, 0.0f, a);
    float *x = rand_vec(k, -1.0f, 1.0f);
    fedreci_la_syr_upper(k, -0.25f, x, a);
    for (uint32_t i = 0; i < k; i++)
        for (uint32_t j = 0; j < k; j++) {
            if (j < i) { /* strict lower triangle untouched */
                assert_memory_equal(&a[i * k + j], &lower[i * k + j], sizeof(float));
                continue;
            }
            double ref = -0.25 * (double)x[i] * x[j];
            for (size_t r = 0; r < m; r++)
                ref += (double)z[r * k + i] * z[r * k + j];
            assert_true(fabs(a[i * k + j] - ref) <= 1e-5 * (fabs(ref) + 1.0));
        }
    free(z), free(a), free(lower), free(x);
}

/* Gaussian elimination with partial pivoting in double. */
static void dense_solve(double *m, double *v, uint32_t n)
{
    for (uint32_t c = 0; c < n; c++) {
        uint32_t p = c;
        for (uint32_t r = c + 1; r < n; r++)
            if (fabs(m[r * n + c]) > fabs(m[p * n + c]))
                p = r;
        for (uint32_t j = 0; j < n; j++) {
            double t = m[c * n + j];
            m[c * n + j] = m[p * n + j];
            m[p * n + j] = t;
        }
        double t = v[c];
        v[c] = v[p];
        v[p] = t;
        for (uint32_t r = c + 1; r < n; r++) {
            double f = m[r * n + c] / m[c * n + c];
            for (uint32_t j = c; j < n; j++)
                m[r * n + j] -= f * m[c * n + j];
            v[r] -= f * v[c];
        }
    }
    for (uint32_t c = n; c-- > 0;) {
        double s = v[c];
        for (uint32_t j = c + 1; j < n; j++)
            s -= m[c * n + j] * v[j];
        v[c] = s / m[c * n + c];
    }
}

static void test_posv_matches_double(void **state)
{
    (void)state;
    const uint32_t ks[] = {1, 2, 5, 9, 13, 32, 40, 64, 67};
    for (size_t t = 0; t < sizeof ks / sizeof ks[0]; t++) {
        uint32_t k = ks[t];
        size_t m = 2u * k + 3;
        float *z = rand_vec(m * k, -1.0f, 1.0f);
        float *a = calloc((size_t)k * k, sizeof *a);
        float *b = rand_vec(k, -1.0f, 1.0f);
        double *ad = malloc((size_t)k * k * sizeof *ad), *bd = malloc(k * sizeof *bd);
        assert_true(a && ad && bd);
        fedreci_la_syrk_upper(k, m, z, 0.0f, a);
        for (uint32_t d = 0; d < k; d++)
            a[d * k + d] += 0.5f;
        for (uint32_t i = 0; i < k; i++) {
            bd[i] = b[i];
            for (uint32_t j = 0; j < k; j++)
                ad[i * k + j] = j >= i ? a[i * k + j] : a[j * k + i];
        }
        /* Poison the strict lower triangle: posv must not read it. */
        for (uint32_t i = 1; i < k; i++)
            a[i * k] = NAN;
        assert_int_equal(fedreci_la_posv(k, a, b), 0);
        dense_solve(ad, bd, k);
        for (uint32_t i = 0; i < k; i++)
            assert_true(fabs(b[i] - bd[i]) <= 1e-4 * (fabs(bd[i]) + 1e-2));
        free(z), free(a), free(b), free(ad), free(bd);
    }
}

static void test_posv_reports_the_failing_minor(void **state)
{
    (void)state;
    /* Leading minors of order 1 and 2 are positive definite, order 3 is not:
     * [[4 2 0] [2 2 0] [0 0 -1]] -> info 3, as LAPACK reports it. */
    float a[9] = {4, 2, 0, 0, 2, 0, 0, 0, -1};
    float b[3] = {1, 1, 1};
    assert_int_equal(fedreci_la_posv(3, a, b), 3);
    float z[4] = {0, 0, 0, 0}, bz[2] = {1, 1};
    assert_int_equal(fedreci_la_posv(2, z, bz), 1);
    float n[1] = {NAN}, bn[1] = {1};
    assert_int_equal(fedreci_la_posv(1, n, bn), 1);
}

/* The same kernel tests on the baseline build of the kernels (SSE2 on
 * x86-64), which a CPU with AVX2 + FMA would otherwise never run here. */
static void test_kernels_on_the_baseline(void **state)
{
    int was = fedreci_la_force_baseline(1);
    assert_int_equal(was, 0);
    test_dot_axpy_ger_gemv(state);
    test_syrk_syr_upper_only(state);
    test_posv_matches_double(state);
    test_posv_reports_the_failing_minor(state);
    assert_int_equal(fedreci_la_force_baseline(was), 1);
}

/* ---- the client step ----------------------------------------------------- */

#define N_ITEMS 3650u
#define K 32u
#define N_BOUGHT 60u

typedef struct step_case {
    float *y;
    uint32_t items[N_BOUGHT];
    float conf[N_BOUGHT];
    fedreci_mf_user u;
} step_case;

static void make_case(step_case *c)
{
    c->y = malloc((size_t)N_ITEMS * K * sizeof *c->y);
    assert_non_null(c->y);
    fedreci_mf_init(c->y, N_ITEMS, K, 5, 0.1f);
    for (uint32_t j = 0; j < N_BOUGHT; j++) {
        c->items[j] = j * (N_ITEMS / N_BOUGHT) + (j % 7);
        /* c < 1 on a few rows exercises the negative-weight rank-1 update. */
        c->conf[j] = j % 10 == 3 ? 0.5f : 1.0f + 3.0f * (float)(j % 5) / 4.0f;
    }
    c->u = (fedreci_mf_user){.items = c->items, .conf = c->conf, .n = N_BOUGHT};
}

static void run_step(const step_case *c, fedreci_mf_backend be, const float *gram, float *x,
                     float *grad, double *loss)
{
    fedreci_mf_step *w = NULL;
    assert_int_equal(fedreci_mf_step_create(&w, N_ITEMS, K), FEDREC_OK);
    assert_int_equal(fedreci_mf_step_set_backend(w, be), FEDREC_OK);
    assert_int_equal(fedreci_mf_client_step(w, c->y, gram, N_ITEMS, K, 0.1f, &c->u, x, grad, loss),
                     FEDREC_OK);
    fedreci_mf_step_destroy(w);
}

/* The step in double, straight from the formulas of mf.h. */
static void reference_step(const step_case *c, double *x, double *grad, double *loss)
{
    double *a = calloc((size_t)K * K, sizeof *a);
    double *r = malloc(N_ITEMS * sizeof *r);
    assert_true(a && r);
    for (uint32_t i = 0; i < N_ITEMS; i++)
        for (uint32_t p = 0; p < K; p++)
            for (uint32_t q = 0; q < K; q++)
                a[p * K + q] += (double)c->y[i * K + p] * c->y[i * K + q];
    memset(x, 0, K * sizeof *x);
    for (uint32_t j = 0; j < N_BOUGHT; j++) {
        const float *f = c->y + (size_t)c->items[j] * K;
        for (uint32_t p = 0; p < K; p++) {
            x[p] += (double)c->conf[j] * f[p];
            for (uint32_t q = 0; q < K; q++)
                a[p * K + q] += ((double)c->conf[j] - 1.0) * f[p] * f[q];
        }
    }
    for (uint32_t p = 0; p < K; p++)
        a[p * K + p] += 0.1;
    dense_solve(a, x, K);
    double sq = 0.0;
    for (uint32_t i = 0; i < N_ITEMS; i++) {
        double ri = 0.0;
        for (uint32_t p = 0; p < K; p++)
            ri += (double)c->y[i * K + p] * x[p];
        r[i] = ri;
    }
    for (uint32_t i = 0, j = 0; i < N_ITEMS; i++) {
        double cc = 1.0, pp = 0.0;
        if (j < N_BOUGHT && c->items[j] == i) {
            cc = c->conf[j++];
            pp = 1.0;
        }
        double e = cc * (pp - r[i]);
        sq += cc * (pp - r[i]) * (pp - r[i]);
        for (uint32_t p = 0; p < K; p++)
            grad[(size_t)i * K + p] = -2.0 * e * x[p];
    }
    double xx = 0.0;
    for (uint32_t p = 0; p < K; p++)
        xx += x[p] * x[p];
    *loss = sq + 0.1 * xx;
    free(a);
    free(r);
}

static void assert_close(const float *got, const double *want, size_t n, double tol)
{
    double m = 0.0;
    for (size_t i = 0; i < n; i++)
        m = fmax(m, fabs(want[i]));
    for (size_t i = 0; i < n; i++)
        if (!(fabs(got[i] - want[i]) <= tol * m))
            fail_msg("entry %zu: %.9g vs %.9g (max %.3g, tolerance %.1e)", i, (double)got[i],
                     want[i], m, tol);
}

static void test_client_step_portable_matches_double(void **state)
{
    (void)state;
    step_case c;
    make_case(&c);
    size_t nk = (size_t)N_ITEMS * K;
    float x[K], *grad = malloc(nk * sizeof *grad);
    double xr[K], *gr = malloc(nk * sizeof *gr), loss, loss_ref;
    assert_true(grad && gr);
    run_step(&c, FEDRECI_MF_PORTABLE, NULL, x, grad, &loss);
    reference_step(&c, xr, gr, &loss_ref);
    assert_close(x, xr, K, STEP_TOL);
    assert_close(grad, gr, nk, STEP_TOL);
    assert_true(fabs(loss - loss_ref) <= STEP_TOL * loss_ref);
    /* The published gram and the one computed here give the same bits. */
    float gram[K * K], x2[K], *grad2 = malloc(nk * sizeof *grad2);
    assert_non_null(grad2);
    fedreci_mf_gram(c.y, N_ITEMS, K, gram);
    double loss2;
    run_step(&c, FEDRECI_MF_PORTABLE, gram, x2, grad2, &loss2);
    assert_memory_equal(x, x2, sizeof x);
    assert_memory_equal(grad, grad2, nk * sizeof *grad);
    free(grad), free(grad2), free(gr), free(c.y);
}

static void test_client_step_portable_matches_blas(void **state)
{
    (void)state;
    step_case c;
    make_case(&c);
    size_t nk = (size_t)N_ITEMS * K;
    float xp[K], xb[K], *gp = malloc(nk * sizeof *gp), *gb = malloc(nk * sizeof *gb);
    double lp, lb;
    assert_true(gp && gb);
    run_step(&c, FEDRECI_MF_PORTABLE, NULL, xp, gp, &lp);
#ifdef FEDREC_HAVE_BLAS
    run_step(&c, FEDRECI_MF_BLAS, NULL, xb, gb, &lb);
    double *xbd = malloc(K * sizeof *xbd), *gbd = malloc(nk * sizeof *gbd);
    assert_true(xbd && gbd);
    for (uint32_t d = 0; d < K; d++)
        xbd[d] = xb[d];
    for (size_t i = 0; i < nk; i++)
        gbd[i] = gb[i];
    assert_close(xp, xbd, K, STEP_TOL);
    assert_close(gp, gbd, nk, STEP_TOL);
    assert_true(fabs(lp - lb) <= STEP_TOL * lb);
    free(xbd), free(gbd);
#else
    /* No BLAS in this build: the backend is refused by name. */
    fedreci_mf_step *w = NULL;
    assert_int_equal(fedreci_mf_step_create(&w, N_ITEMS, K), FEDREC_OK);
    assert_int_equal(fedreci_mf_step_set_backend(w, FEDRECI_MF_BLAS), FEDREC_ERR_UNSUPPORTED);
    assert_non_null(strstr(fedrec_errmsg(), "no BLAS"));
    fedreci_mf_step_destroy(w);
    (void)xb, (void)lb;
#endif
    free(gp), free(gb), free(c.y);
}

static void test_client_step_portable_not_positive_definite(void **state)
{
    (void)state;
    /* Y = 0 and lambda = 0: singular, refused with the minor named. */
    const uint32_t n = 4, k = 3;
    float y[12] = {0}, x[3], grad[12];
    uint32_t items[1] = {2};
    float conf[1] = {2.0f};
    fedreci_mf_user u = {.items = items, .conf = conf, .n = 1};
    fedreci_mf_step *w = NULL;
    assert_int_equal(fedreci_mf_step_create(&w, n, k), FEDREC_OK);
    assert_int_equal(fedreci_mf_step_set_backend(w, FEDRECI_MF_PORTABLE), FEDREC_OK);
    assert_int_equal(fedreci_mf_client_step(w, y, NULL, n, k, 0.0f, &u, x, grad, NULL),
                     FEDREC_ERR_NUMERIC);
    assert_non_null(strstr(fedrec_errmsg(), "not positive definite"));
    assert_int_equal(fedreci_mf_step_set_backend(w, (fedreci_mf_backend)7), FEDREC_ERR_INVALID);
    fedreci_mf_step_destroy(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dot_axpy_ger_gemv),
        cmocka_unit_test(test_syrk_syr_upper_only),
        cmocka_unit_test(test_posv_matches_double),
        cmocka_unit_test(test_posv_reports_the_failing_minor),
        cmocka_unit_test(test_kernels_on_the_baseline),
        cmocka_unit_test(test_client_step_portable_matches_double),
        cmocka_unit_test(test_client_step_portable_matches_blas),
        cmocka_unit_test(test_client_step_portable_not_positive_definite),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

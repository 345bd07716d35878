/* Tests for core/mf: initialization, the client step (solve, gradient, loss),
 * top-K selection, the server optimizer and centralized ALS. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/dataset/dataset.h"
#include "core/eval/eval.h"
#include "core/mf/mf.h"
#include "core/rng.h"
#include "fedrec/fedrec.h"

/* ---- helpers --------------------------------------------------------------- */

/* splitmix64 (core/rng.h); each test reseeds it */
static fedreci_rng test_rng = {1};

static double urand(void) /* [0, 1) */
{
    return fedreci_rng_unit(&test_rng);
}

static float frand(float lo, float hi)
{
    return lo + (hi - lo) * (float)urand();
}

/* A random user: each item bought with probability `density`, confidence in [1, 4]. */
static uint32_t random_user(uint32_t n_items, double density, uint32_t *items, float *conf)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < n_items; i++)
        if (urand() < density) {
            items[n] = i;
            conf[n] = frand(1.0f, 4.0f);
            n++;
        }
    return n;
}

/* Solves the dense n x n system m z = v in place by Gaussian elimination with
 * partial pivoting, in double. */
static void dense_solve(double *m, double *v, uint32_t n)
{
    for (uint32_t c = 0; c < n; c++) {
        uint32_t piv = c;
        for (uint32_t r = c + 1; r < n; r++)
            if (fabs(m[r * n + c]) > fabs(m[piv * n + c]))
                piv = r;
        for (uint32_t j = 0; j < n; j++) {
            double t = m[c * n + j];
            m[c * n + j] = m[piv * n + j];
            m[piv * n + j] = t;
        }
        double t = v[c];
        v[c] = v[piv];
        v[piv] = t;
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

/* The user's direct solution in double: (Y^T C Y + lambda I) x = Y^T C p over all items. */
static void direct_solve(const float *y, uint32_t n_items, uint32_t k, float lambda,
                         const fedreci_mf_user *u, double *x)
{
    double *c = malloc(n_items * sizeof *c);
    double *p = calloc(n_items, sizeof *p);
    double *m = calloc((size_t)k * k, sizeof *m);
    assert_non_null(c);
    assert_non_null(p);
    assert_non_null(m);
    for (uint32_t i = 0; i < n_items; i++)
        c[i] = 1.0;
    for (uint32_t j = 0; j < u->n; j++) {
        c[u->items[j]] = u->conf[j];
        p[u->items[j]] = 1.0;
    }
    for (uint32_t a = 0; a < k; a++) {
        x[a] = 0.0;
        for (uint32_t i = 0; i < n_items; i++)
            x[a] += c[i] * p[i] * y[i * k + a];
        for (uint32_t b = 0; b < k; b++) {
            double s = a == b ? lambda : 0.0;
            for (uint32_t i = 0; i < n_items; i++)
                s += c[i] * (double)y[i * k + a] * y[i * k + b];
            m[a * k + b] = s;
        }
    }
    dense_solve(m, x, k);
    free(c);
    free(p);
    free(m);
}

/* The user's loss term at fixed x, in double:
 * sum_i c_i (p_i - y_i^T x)^2 + lambda |x|^2. */
static double user_loss(const double *y, uint32_t n_items, uint32_t k, float lambda,
                        const fedreci_mf_user *u, const float *x)
{
    double s = 0.0;
    uint32_t j = 0;
    for (uint32_t i = 0; i < n_items; i++) {
        double r = 0.0;
        for (uint32_t d = 0; d < k; d++)
            r += y[i * k + d] * x[d];
        double c = 1.0, p = 0.0;
        if (j < u->n && u->items[j] == i) {
            c = u->conf[j++];
            p = 1.0;
        }
        s += c * (p - r) * (p - r);
    }
    for (uint32_t d = 0; d < k; d++)
        s += (double)lambda * x[d] * x[d];
    return s;
}

/* ---- init and gram ---------------------------------------------------------- */

static void test_init_is_seeded_and_normal(void **state)
{
    (void)state;
    enum { N = 200000 };
    float *a = malloc(N * sizeof *a), *b = malloc(N * sizeof *b);
    assert_non_null(a);
    assert_non_null(b);
    fedreci_mf_init(a, N / 8, 8, 42, 0.5f);
    fedreci_mf_init(b, N / 8, 8, 42, 0.5f);
    assert_memory_equal(a, b, N * sizeof *a);
    fedreci_mf_init(b, N / 8, 8, 43, 0.5f);
    assert_memory_not_equal(a, b, N * sizeof *a);
    /* Moments of N(0, 0.25): mean 0, variance 0.25, fourth moment 3 * 0.0625. */
    double m1 = 0, m2 = 0, m4 = 0;
    size_t within1 = 0;
    for (size_t i = 0; i < N; i++) {
        double v = a[i];
        m1 += v;
        m2 += v * v;
        m4 += v * v * v * v;
        within1 += fabs(v) < 0.5;
    }
    m1 /= N;
    m2 /= N;
    m4 /= N;
    assert_true(fabs(m1) < 0.005);
    assert_true(fabs(m2 - 0.25) < 0.005);
    assert_true(fabs(m4 - 0.1875) < 0.01);
    assert_true(fabs((double)within1 / N - 0.6827) < 0.005); /* P(|z| < 1) */
    /* An odd count is filled completely and is a prefix of the longer stream. */
    fedreci_mf_init(b, 1, 7, 42, 0.5f);
    assert_memory_equal(a, b, 7 * sizeof *a);
    free(a);
    free(b);
}

static void test_init_known_answer(void **state)
{
    (void)state;
    /* splitmix64 + polar method, seed 42, std 1: the same bits on every
     * platform (the generator uses only IEEE basic operations and sqrt). */
    static const uint32_t expect[6] = {0x3efc6407, 0xbf31aa5b, 0xbfa3fa58,
                                       0xbf66cc74, 0xbf1a14ad, 0x3f247f50};
    float a[6];
    fedreci_mf_init(a, 2, 3, 42, 1.0f);
    for (int i = 0; i < 6; i++) {
        uint32_t bits;
        memcpy(&bits, &a[i], sizeof bits);
        assert_int_equal(bits, expect[i]);
    }
}

static void test_gram_matches_naive(void **state)
{
    (void)state;
    test_rng = fedreci_rng_seeded(7);
    const uint32_t n = 37, k = 9;
    float y[37 * 9], g[81];
    for (uint32_t i = 0; i < n * k; i++)
        y[i] = frand(-1, 1);
    fedreci_mf_gram(y, n, k, g);
    for (uint32_t a = 0; a < k; a++)
        for (uint32_t b = 0; b < k; b++) {
            double s = 0;
            for (uint32_t i = 0; i < n; i++)
                s += (double)y[i * k + a] * y[i * k + b];
            assert_true(fabs(g[a * k + b] - s) < 1e-4 * (1 + fabs(s)));
            assert_true(g[a * k + b] == g[b * k + a]);
        }
}

/* ---- the client step ---------------------------------------------------------- */

static void test_solve_user_matches_direct(void **state)
{
    (void)state;
    test_rng = fedreci_rng_seeded(11);
    for (int trial = 0; trial < 20; trial++) {
        uint32_t n_items = 5 + (uint32_t)(urand() * 40), k = 1 + (uint32_t)(urand() * 12);
        /* lambda = 0 only where Y^T Y is safely nonsingular (n_items >= 3k). */
        float lambda = trial % 5 == 0 && n_items >= 3 * k ? 0.0f : frand(0.01f, 2.0f);
        float *y = malloc((size_t)n_items * k * sizeof *y);
        uint32_t *items = malloc(n_items * sizeof *items);
        float *conf = malloc(n_items * sizeof *conf);
        float x[16], x2[16], gram[256];
        double xd[16];
        for (uint32_t i = 0; i < n_items * k; i++)
            y[i] = frand(-1, 1);
        fedreci_mf_user u = {items, conf, random_user(n_items, 0.3, items, conf)};
        if (trial == 3 && u.n > 0)
            conf[0] = 0.5f; /* a confidence below 1 takes the negative rank-1 path */
        fedreci_mf_step *w = NULL;
        assert_int_equal(fedreci_mf_step_create(&w, n_items, k), FEDREC_OK);
        assert_int_equal(fedreci_mf_solve_user(w, y, NULL, n_items, k, lambda, &u, x), FEDREC_OK);
        direct_solve(y, n_items, k, lambda, &u, xd);
        double num = 0, den = 0;
        for (uint32_t d = 0; d < k; d++) {
            num += (x[d] - xd[d]) * (x[d] - xd[d]);
            den += xd[d] * xd[d];
        }
        assert_true(sqrt(num) <= 1e-4 * sqrt(den) + 1e-6);
        /* With the published gram the result is the same, bit for bit. */
        fedreci_mf_gram(y, n_items, k, gram);
        assert_int_equal(fedreci_mf_solve_user(w, y, gram, n_items, k, lambda, &u, x2), FEDREC_OK);
        assert_memory_equal(x, x2, k * sizeof *x);
        fedreci_mf_step_destroy(w);
        free(y);
        free(items);
        free(conf);
    }
}

static void test_client_step_gradient_check(void **state)
{
    (void)state;
    test_rng = fedreci_rng_seeded(12345);
    for (int trial = 0; trial < 25; trial++) {
        uint32_t n_items = 4 + (uint32_t)(urand() * 30), k = 1 + (uint32_t)(urand() * 8);
        float lambda = frand(0.01f, 1.0f);
        size_t nk = (size_t)n_items * k;
        float *y = malloc(nk * sizeof *y), *grad = malloc(nk * sizeof *grad);
        double *yd = malloc(nk * sizeof *yd);
        uint32_t *items = malloc(n_items * sizeof *items);
        float *conf = malloc(n_items * sizeof *conf);
        float x[8], xs[8];
        for (size_t i = 0; i < nk; i++)
            yd[i] = y[i] = frand(-1, 1);
        fedreci_mf_user u = {items, conf, random_user(n_items, 0.3, items, conf)};
        if (u.n == 0) { /* at least one purchase, or x = 0 and the check is vacuous */
            items[0] = n_items / 2;
            conf[0] = 2.5f;
            u.n = 1;
        }
        fedreci_mf_step *w = NULL;
        double loss = -1;
        assert_int_equal(fedreci_mf_step_create(&w, n_items, k), FEDREC_OK);
        assert_int_equal(fedreci_mf_client_step(w, y, NULL, n_items, k, lambda, &u, x, grad, &loss),
                         FEDREC_OK);
        assert_int_equal(fedreci_mf_solve_user(w, y, NULL, n_items, k, lambda, &u, xs), FEDREC_OK);
        assert_memory_equal(x, xs, k * sizeof *x);
        /* The reported loss is the loss term at (x, Y). */
        double l0 = user_loss(yd, n_items, k, lambda, &u, x);
        assert_true(fabs(loss - l0) <= 1e-5 * fabs(l0));
        /* Central differences of the loss term w.r.t. Y at fixed x. */
        double num = 0, den = 0;
        const double h = 1e-3;
        for (size_t j = 0; j < nk; j++) {
            double save = yd[j];
            yd[j] = save + h;
            double lp = user_loss(yd, n_items, k, lambda, &u, x);
            yd[j] = save - h;
            double lm = user_loss(yd, n_items, k, lambda, &u, x);
            yd[j] = save;
            double fd = (lp - lm) / (2 * h);
            num += (grad[j] - fd) * (grad[j] - fd);
            den += fd * fd;
        }
        assert_true(den > 0);
        assert_true(sqrt(num / den) < 1e-3);
        fedreci_mf_step_destroy(w);
        free(y);
        free(grad);
        free(yd);
        free(items);
        free(conf);
    }
}

static void test_client_step_hand_computed(void **state)
{
    (void)state;
    /* k = 1, Y = [1, 2], user bought item 1 with c = 3, lambda = 1:
     * A = 1 + 4 + (3 - 1) * 4 + 1 = 14, b = 3 * 2 = 6, x = 3/7.
     * r = [3/7, 6/7]; e = [-3/7, 3 (1 - 6/7)] = [-3/7, 3/7]; grad = -2 e x.
     * loss = (3/7)^2 + 3 (1/7)^2 + (3/7)^2 = 21/49. */
    const float y[2] = {1, 2};
    const uint32_t items[1] = {1};
    const float conf[1] = {3};
    fedreci_mf_user u = {items, conf, 1};
    fedreci_mf_step *w = NULL;
    float x, grad[2];
    double loss;
    assert_int_equal(fedreci_mf_step_create(&w, 2, 1), FEDREC_OK);
    assert_int_equal(fedreci_mf_client_step(w, y, NULL, 2, 1, 1.0f, &u, &x, grad, &loss),
                     FEDREC_OK);
    assert_float_equal(x, 3.0 / 7, 1e-6);
    assert_float_equal(grad[0], 2 * (3.0 / 7) * (3.0 / 7), 1e-6);
    assert_float_equal(grad[1], -2 * (3.0 / 7) * (3.0 / 7), 1e-6);
    assert_float_equal(loss, 21.0 / 49, 1e-6);
    fedreci_mf_step_destroy(w);
}

static void test_client_step_errors(void **state)
{
    (void)state;
    float y[6] = {0}, x[2] = {7, 7}, grad[6];
    uint32_t bad_index[1] = {3}, unsorted[2] = {1, 0};
    float conf[2] = {2, 2}, bad_conf[1] = {-1};
    fedreci_mf_step *w = NULL;
    assert_int_equal(fedreci_mf_step_create(&w, 0, 2), FEDREC_ERR_INVALID);
    assert_int_equal(fedreci_mf_step_create(&w, 3, 2), FEDREC_OK);
    fedreci_mf_user u = {bad_index, conf, 1};
    assert_int_equal(fedreci_mf_solve_user(w, y, NULL, 3, 2, 0.1f, &u, x), FEDREC_ERR_INVALID);
    u = (fedreci_mf_user){unsorted, conf, 2};
    assert_int_equal(fedreci_mf_solve_user(w, y, NULL, 3, 2, 0.1f, &u, x), FEDREC_ERR_INVALID);
    u = (fedreci_mf_user){unsorted, bad_conf, 1};
    assert_int_equal(fedreci_mf_solve_user(w, y, NULL, 3, 2, 0.1f, &u, x), FEDREC_ERR_INVALID);
    u = (fedreci_mf_user){unsorted + 1, conf, 1};
    assert_int_equal(fedreci_mf_solve_user(w, y, NULL, 4, 2, 0.1f, &u, x), FEDREC_ERR_INVALID);
    assert_int_equal(fedreci_mf_solve_user(w, y, NULL, 3, 2, -1.0f, &u, x), FEDREC_ERR_INVALID);
    /* Y = 0 and lambda = 0: the system is singular; sposv refuses it. */
    assert_int_equal(fedreci_mf_client_step(w, y, NULL, 3, 2, 0.0f, &u, x, grad, NULL),
                     FEDREC_ERR_NUMERIC);
    assert_true(x[0] == 7 && x[1] == 7); /* outputs untouched on error */
    /* A user with no purchases gets x = 0 and a zero gradient. */
    u = (fedreci_mf_user){NULL, NULL, 0};
    assert_int_equal(fedreci_mf_client_step(w, y, NULL, 3, 2, 0.1f, &u, x, grad, NULL), FEDREC_OK);
    assert_true(x[0] == 0 && x[1] == 0 && grad[5] == 0);
    fedreci_mf_step_destroy(w);
    fedreci_mf_step_destroy(NULL);
}

/* ---- top-K ---------------------------------------------------------------------- */

static void test_topk_edge_cases(void **state)
{
    (void)state;
    const float y[5] = {3, 1, 3, 2, 5}; /* k = 1, x = 1: scores are y */
    const float x = 1;
    float buf[5], sc[8];
    uint32_t it[8], n = 99;
    assert_int_equal(fedreci_mf_topk(y, 5, 1, &x, NULL, 0, 3, buf, it, sc, &n), FEDREC_OK);
    assert_int_equal(n, 3);
    assert_int_equal(it[0], 4);
    assert_int_equal(it[1], 0); /* tie 3 = 3: the lower index first */
    assert_int_equal(it[2], 2);
    assert_true(sc[0] == 5 && sc[1] == 3 && sc[2] == 3);
    const uint32_t ex1[2] = {0, 1};
    assert_int_equal(fedreci_mf_topk(y, 5, 1, &x, ex1, 2, 8, buf, it, sc, &n), FEDREC_OK);
    assert_int_equal(n, 3); /* K > candidates: all candidates */
    assert_int_equal(it[0], 4);
    assert_int_equal(it[1], 2);
    assert_int_equal(it[2], 3);
    const uint32_t all[7] = {0, 1, 1, 2, 3, 4, 9}; /* duplicates and out-of-range ignored */
    assert_int_equal(fedreci_mf_topk(y, 5, 1, &x, all, 7, 3, buf, it, sc, &n), FEDREC_OK);
    assert_int_equal(n, 0);
    assert_int_equal(fedreci_mf_topk(y, 5, 1, &x, NULL, 0, 0, buf, it, sc, &n), FEDREC_OK);
    assert_int_equal(n, 0);
    const uint32_t unsorted[2] = {3, 1};
    n = 99;
    assert_int_equal(fedreci_mf_topk(y, 5, 1, &x, unsorted, 2, 3, buf, it, sc, &n),
                     FEDREC_ERR_INVALID);
    assert_int_equal(n, 99);
    /* All tied: the K lowest indices in order. */
    const float flat[5] = {1, 1, 1, 1, 1};
    assert_int_equal(fedreci_mf_topk(flat, 5, 1, &x, ex1 + 1, 1, 3, buf, it, NULL, &n), FEDREC_OK);
    assert_int_equal(n, 3);
    assert_int_equal(it[0], 0);
    assert_int_equal(it[1], 2);
    assert_int_equal(it[2], 3);
}

static void test_topk_matches_sort(void **state)
{
    (void)state;
    test_rng = fedreci_rng_seeded(99);
    enum { N = 300, K_DIM = 3 };
    float y[N * K_DIM], x[K_DIM] = {1, 0.5f, -0.25f}, buf[N], sc[N];
    uint32_t it[N], ex[N], n;
    for (int trial = 0; trial < 30; trial++) {
        for (int i = 0; i < N * K_DIM; i++)
            y[i] = (float)(int)(urand() * 4) * 0.25f; /* many ties */
        size_t n_ex = 0;
        for (uint32_t i = 0; i < N; i++)
            if (urand() < 0.2)
                ex[n_ex++] = i;
        uint32_t K = (uint32_t)(urand() * N * 1.1);
        assert_int_equal(fedreci_mf_topk(y, N, K_DIM, x, ex, n_ex, K, buf, it, sc, &n), FEDREC_OK);
        assert_int_equal(n, K < N - n_ex ? K : N - n_ex);
        /* Reference: selection by brute force over the ranking order. */
        char used[N] = {0};
        for (size_t j = 0; j < n_ex; j++)
            used[ex[j]] = 1;
        for (uint32_t r = 0; r < n; r++) {
            int best = -1;
            for (int i = 0; i < N; i++)
                if (!used[i] && (best < 0 || buf[i] > buf[best]))
                    best = i;
            used[best] = 1;
            assert_int_equal(it[r], best);
            assert_true(sc[r] == buf[best]);
        }
    }
}

/* ---- the optimizer ------------------------------------------------------------------ */

static const fedreci_opt_params adam_params = {
    FEDRECI_OPT_ADAM, 0.01f, 0.9f, 0.999f, 1e-8f, 0.1f, 10};

static void test_adam_one_step_hand_computed(void **state)
{
    (void)state;
    /* g = grad_sum / 4 + 2 (0.1 / 10) y = [1.01, 0.98, -2, 0.04]; after one
     * bias-corrected Adam step m_hat = g, v_hat = g^2, so each coordinate
     * moves by lr * g / (|g| + eps) = +-0.01 (up to eps). */
    float y[4] = {0.5f, -1.0f, 0.0f, 2.0f};
    const float gs[4] = {4.0f, 4.0f, -8.0f, 0.0f};
    fedreci_optimizer *o = NULL;
    int applied = -1;
    assert_int_equal(fedreci_optimizer_create(&o, &adam_params, 2, 2), FEDREC_OK);
    assert_int_equal(fedreci_optimizer_step(o, y, gs, 4.0, &applied), FEDREC_OK);
    assert_int_equal(applied, 1);
    assert_float_equal(y[0], 0.49, 1e-6);
    assert_float_equal(y[1], -1.01, 1e-6);
    assert_float_equal(y[2], 0.01, 1e-6);
    assert_float_equal(y[3], 1.99, 1e-6);
    /* Second step, same aggregate: g2 = gs/4 + 0.02 y1 = [1.0098, 0.9798, -1.9998, 0.0398];
     * m = 0.9 * 0.1 g1 + 0.1 g2, v = 0.999 * 0.001 g1^2 + 0.001 g2^2,
     * step = lr (m / 0.19) / sqrt(v / 0.001999). For coordinate 0:
     * m = 0.1917 (0.09*1.01 + 0.1*1.0098 = 0.0909 + 0.10098 = 0.19188),
     * v = 0.000999*1.0201 + 0.001*1.01969604 = 0.0010190799 + 0.00101969604,
     * step = 0.01 * (0.19188/0.19) / sqrt(0.00203877594/0.001999). */
    assert_int_equal(fedreci_optimizer_step(o, y, gs, 4.0, &applied), FEDREC_OK);
    double step0 = 0.01 * (0.19188 / 0.19) / sqrt((0.0010190799 + 0.00101969604) / 0.001999);
    assert_float_equal(y[0], 0.49 - step0, 1e-6);
    fedreci_optimizer_destroy(o);

    fedreci_opt_params sgd = adam_params;
    sgd.kind = FEDRECI_OPT_SGD;
    float z[4] = {0.5f, -1.0f, 0.0f, 2.0f};
    assert_int_equal(fedreci_optimizer_create(&o, &sgd, 2, 2), FEDREC_OK);
    assert_int_equal(fedreci_optimizer_step(o, z, gs, 4.0, &applied), FEDREC_OK);
    assert_float_equal(z[0], 0.5 - 0.0101, 1e-7);
    assert_float_equal(z[1], -1.0 - 0.0098, 1e-7);
    assert_float_equal(z[2], 0.02, 1e-7);
    assert_float_equal(z[3], 2.0 - 0.0004, 1e-7);
    fedreci_optimizer_destroy(o);
}

static void test_optimizer_zero_weight_and_nan(void **state)
{
    (void)state;
    float y[4] = {0.5f, -1.0f, 0.0f, 2.0f}, y0[4];
    const float gs[4] = {4.0f, 4.0f, -8.0f, 0.0f};
    float bad[4] = {1.0f, NAN, 0.0f, 0.0f};
    memcpy(y0, y, sizeof y);
    fedreci_optimizer *o = NULL;
    int applied = -1;
    assert_int_equal(fedreci_optimizer_create(&o, &adam_params, 2, 2), FEDREC_OK);
    /* Zero weight (an empty cohort with an all-zero sum): skipped, no NaN. */
    const float zeros[4] = {0};
    assert_int_equal(fedreci_optimizer_step(o, y, zeros, 0.0, &applied), FEDREC_OK);
    assert_int_equal(applied, 0);
    assert_memory_equal(y, y0, sizeof y);
    assert_int_equal(fedreci_optimizer_step(o, y, bad, 2.0, &applied), FEDREC_ERR_NUMERIC);
    assert_int_equal(fedreci_optimizer_step(o, y, gs, -1.0, &applied), FEDREC_ERR_INVALID);
    assert_int_equal(fedreci_optimizer_step(o, y, gs, NAN, &applied), FEDREC_ERR_INVALID);
    assert_memory_equal(y, y0, sizeof y);
    /* The skipped rounds left no trace: the next step is Adam's first step. */
    assert_int_equal(fedreci_optimizer_step(o, y, gs, 4.0, &applied), FEDREC_OK);
    assert_int_equal(applied, 1);
    assert_float_equal(y[0], 0.49, 1e-6);
    for (int i = 0; i < 4; i++)
        assert_true(isfinite(y[i]));
    fedreci_optimizer_destroy(o);
    fedreci_optimizer_destroy(NULL);

    fedreci_opt_params p = adam_params;
    p.lr = 0;
    assert_int_equal(fedreci_optimizer_create(&o, &p, 2, 2), FEDREC_ERR_INVALID);
    p = adam_params;
    p.n_train = 0;
    assert_int_equal(fedreci_optimizer_create(&o, &p, 2, 2), FEDREC_ERR_INVALID);
    p = adam_params;
    p.beta1 = 1.0f;
    assert_int_equal(fedreci_optimizer_create(&o, &p, 2, 2), FEDREC_ERR_INVALID);
}

static void test_optimizer_set_lr(void **state)
{
    (void)state;
    const float gs[4] = {4.0f, 4.0f, -8.0f, 0.0f};
    fedreci_optimizer *o = NULL;
    int applied = -1;
    /* SGD: the second step uses the new rate on the new gradient. After the
     * first step (lr 0.01) y0 = 0.5 - 0.0101 = 0.4899; g = 4 / 4 + 2 (0.1 /
     * 10) 0.4899 = 1.009798, so lr 0.05 gives 0.4899 - 0.0504899. */
    fedreci_opt_params sgd = adam_params;
    sgd.kind = FEDRECI_OPT_SGD;
    float z[4] = {0.5f, -1.0f, 0.0f, 2.0f};
    assert_int_equal(fedreci_optimizer_create(&o, &sgd, 2, 2), FEDREC_OK);
    assert_int_equal(fedreci_optimizer_step(o, z, gs, 4.0, &applied), FEDREC_OK);
    assert_int_equal(fedreci_optimizer_set_lr(o, 0.05f), FEDREC_OK);
    assert_int_equal(fedreci_optimizer_step(o, z, gs, 4.0, &applied), FEDREC_OK);
    assert_float_equal(z[0], 0.4899 - 0.0504899, 1e-6);
    /* Coordinate 2: 0 + 0.01 * 2 = 0.02, then 0.02 + 0.05 (2 - 0.02 * 0.02)
     * = 0.11998. Bad rates are refused and change nothing: the third step
     * still uses 0.05. */
    assert_float_equal(z[2], 0.02 + 0.05 * (2.0 - 0.0004), 1e-6);
    assert_int_equal(fedreci_optimizer_set_lr(o, 0.0f), FEDREC_ERR_INVALID);
    assert_int_equal(fedreci_optimizer_set_lr(o, -0.1f), FEDREC_ERR_INVALID);
    assert_int_equal(fedreci_optimizer_set_lr(o, NAN), FEDREC_ERR_INVALID);
    assert_int_equal(fedreci_optimizer_set_lr(o, INFINITY), FEDREC_ERR_INVALID);
    assert_int_equal(fedreci_optimizer_set_lr(NULL, 0.1f), FEDREC_ERR_INVALID);
    assert_int_equal(fedreci_optimizer_step(o, z, gs, 4.0, &applied), FEDREC_OK);
    assert_float_equal(z[2], 0.11998 + 0.05 * (2.0 - 0.02 * 0.11998), 1e-6);
    fedreci_optimizer_destroy(o);

    /* Adam keeps its moments across set_lr: the second step is the
     * hand-computed second step of test_adam_one_step_hand_computed with
     * lr 0.03 in place of 0.01 (a reset would move by 0.03 sign(g) instead). */
    float y[4] = {0.5f, -1.0f, 0.0f, 2.0f};
    assert_int_equal(fedreci_optimizer_create(&o, &adam_params, 2, 2), FEDREC_OK);
    assert_int_equal(fedreci_optimizer_step(o, y, gs, 4.0, &applied), FEDREC_OK);
    assert_float_equal(y[0], 0.49, 1e-6);
    assert_int_equal(fedreci_optimizer_set_lr(o, 0.03f), FEDREC_OK);
    assert_int_equal(fedreci_optimizer_step(o, y, gs, 4.0, &applied), FEDREC_OK);
    double step0 = 0.03 * (0.19188 / 0.19) / sqrt((0.0010190799 + 0.00101969604) / 0.001999);
    assert_float_equal(y[0], 0.49 - step0, 1e-6);
    fedreci_optimizer_destroy(o);
}

static void test_optimizer_grow_keeps_rows(void **state)
{
    (void)state;
    test_rng = fedreci_rng_seeded(5);
    float ya[6], yb[4], g1[4], g2[6];
    for (int i = 0; i < 6; i++) {
        ya[i] = frand(-1, 1);
        g2[i] = frand(-3, 3);
    }
    for (int i = 0; i < 4; i++)
        g1[i] = frand(-3, 3);
    memcpy(yb, ya, sizeof yb);
    fedreci_optimizer *a = NULL, *b = NULL;
    int applied;
    assert_int_equal(fedreci_optimizer_create(&a, &adam_params, 2, 2), FEDREC_OK);
    assert_int_equal(fedreci_optimizer_create(&b, &adam_params, 2, 2), FEDREC_OK);
    assert_int_equal(fedreci_optimizer_step(a, ya, g1, 3.0, &applied), FEDREC_OK);
    assert_int_equal(fedreci_optimizer_step(b, yb, g1, 3.0, &applied), FEDREC_OK);
    assert_int_equal(fedreci_optimizer_grow(a, 1), FEDREC_ERR_INVALID);
    assert_int_equal(fedreci_optimizer_grow(a, 3), FEDREC_OK);
    float row2 = ya[4];
    assert_int_equal(fedreci_optimizer_step(a, ya, g2, 3.0, &applied), FEDREC_OK);
    assert_int_equal(fedreci_optimizer_step(b, yb, g2, 3.0, &applied), FEDREC_OK);
    /* The old rows continued with their moments exactly as without the grow. */
    assert_memory_equal(ya, yb, sizeof yb);
    /* The new row took a first (bias-corrected) Adam step: lr * sign(g). */
    double g = g2[4] / 3.0 + 2 * (0.1 / 10) * row2;
    assert_float_equal(ya[4], row2 - 0.01 * (g > 0 ? 1 : -1), 1e-6);
    fedreci_optimizer_destroy(a);
    fedreci_optimizer_destroy(b);
}

typedef struct csr_buf {
    fedreci_mf_csr m;
    uint64_t *indptr;
    uint32_t *indices;
    float *conf;
} csr_buf;

/* ---- one federated round (plain sum) --------------------------------------------------- */

static void random_csr(csr_buf *b, uint32_t rows, uint32_t cols, double density);
static void free_csr(csr_buf *b);

static void test_fed_round_is_sum_then_step(void **state)
{
    (void)state;
    test_rng = fedreci_rng_seeded(2024);
    csr_buf b;
    const uint32_t rows = 25, cols = 30, k = 4;
    random_csr(&b, rows, cols, 0.2);
    size_t nk = (size_t)cols * k;
    float *y = malloc(nk * sizeof *y), *y2 = malloc(nk * sizeof *y2);
    float *grad = malloc(nk * sizeof *grad), *sum = malloc(nk * sizeof *sum);
    float *ref = calloc(nk, sizeof *ref);
    float gram[16], x[4];
    fedreci_mf_init(y, cols, k, 3, 0.1f);
    memcpy(y2, y, nk * sizeof *y);
    fedreci_opt_params op = adam_params;
    op.n_train = rows;
    fedreci_optimizer *o = NULL, *o2 = NULL;
    fedreci_mf_step *w = NULL;
    assert_int_equal(fedreci_mf_step_create(&w, cols, k), FEDREC_OK);
    assert_int_equal(fedreci_optimizer_create(&o, &op, cols, k), FEDREC_OK);
    assert_int_equal(fedreci_optimizer_create(&o2, &op, cols, k), FEDREC_OK);
    uint32_t count = 0;
    double loss0 = 0, loss = 0;
    assert_int_equal(
        fedreci_mf_fed_round(w, o, &b.m, NULL, 0, k, 0.1f, y, grad, sum, &count, &loss0),
        FEDREC_OK);
    /* The same by hand: every non-empty row's client step, summed in row order. */
    fedreci_mf_gram(y2, cols, k, gram);
    uint32_t n = 0;
    for (uint32_t u = 0; u < rows; u++) {
        fedreci_mf_user cu = {b.indices + b.indptr[u], b.conf + b.indptr[u],
                              (uint32_t)(b.indptr[u + 1] - b.indptr[u])};
        if (cu.n == 0)
            continue;
        assert_int_equal(fedreci_mf_client_step(w, y2, gram, cols, k, 0.1f, &cu, x, grad, NULL),
                         FEDREC_OK);
        for (size_t j = 0; j < nk; j++)
            ref[j] += grad[j];
        n++;
    }
    assert_int_equal(count, n);
    assert_memory_equal(sum, ref, nk * sizeof *sum);
    int applied = 0;
    assert_int_equal(fedreci_optimizer_step(o2, y2, ref, n, &applied), FEDREC_OK);
    assert_memory_equal(y, y2, nk * sizeof *y);
    /* Training lowers the clients' total loss. */
    for (int round = 0; round < 60; round++)
        assert_int_equal(
            fedreci_mf_fed_round(w, o, &b.m, NULL, 0, k, 0.1f, y, grad, sum, &count, &loss),
            FEDREC_OK);
    assert_true(loss < 0.8 * loss0);
    /* An explicit cohort; a bad id is refused and y is kept. */
    const uint32_t cohort[2] = {3, rows};
    memcpy(y2, y, nk * sizeof *y);
    assert_int_equal(
        fedreci_mf_fed_round(w, o, &b.m, cohort, 2, k, 0.1f, y, grad, sum, &count, &loss),
        FEDREC_ERR_INVALID);
    assert_memory_equal(y, y2, nk * sizeof *y);
    assert_int_equal(
        fedreci_mf_fed_round(w, o, &b.m, cohort, 1, k, 0.1f, y, grad, sum, &count, &loss),
        FEDREC_OK);
    assert_int_equal(count, 1);
    fedreci_mf_step_destroy(w);
    fedreci_optimizer_destroy(o);
    fedreci_optimizer_destroy(o2);
    free(y);
    free(y2);
    free(grad);
    free(sum);
    free(ref);
    free_csr(&b);
}

/* ---- centralized ALS ------------------------------------------------------------------ */

/* ---- the ALS step: the x_u x_u^T block and the preconditioned step ---------------------- */

static void test_xx_block_values_and_bound(void **state)
{
    (void)state;
    const double shrink = 1.0 - 0x1p-20;
    /* x = (3, 4), |x| = 5 under the bound: (g 9, g sqrt(2) 12, g 16) */
    const float x[2] = {3.0f, 4.0f};
    float out[3];
    int clipped = -1;
    assert_int_equal(fedreci_mf_xx_block(x, 2, 10.0, 2.0, out, &clipped), FEDREC_OK);
    assert_int_equal(clipped, 0);
    assert_float_equal(out[0], 2.0 * shrink * 9.0, 1e-5);
    assert_float_equal(out[1], 2.0 * shrink * sqrt(2.0) * 12.0, 1e-5);
    assert_float_equal(out[2], 2.0 * shrink * 16.0, 1e-5);
    /* bound 1: x is scaled to (0.6, 0.8) */
    assert_int_equal(fedreci_mf_xx_block(x, 2, 1.0, 16.0, out, &clipped), FEDREC_OK);
    assert_int_equal(clipped, 1);
    assert_float_equal(out[0], 16.0 * shrink * 0.36, 1e-6);
    assert_float_equal(out[1], 16.0 * shrink * sqrt(2.0) * 0.48, 1e-6);
    assert_float_equal(out[2], 16.0 * shrink * 0.64, 1e-6);
    /* Random vectors of every size, some far past the bound: no entry reaches
     * g B^2 (= the clip when g = fedreci_mf_xx_weight(clip, B)), and the
     * block's Euclidean norm is g |x^|^2 (the off-diagonal sqrt(2)). */
    test_rng = fedreci_rng_seeded(77);
    const double clip = 16.0, bound = 8.0, g = fedreci_mf_xx_weight(clip, bound);
    assert_float_equal(g, 0.25, 0);
    float v[64], blk[FEDRECI_MF_XX_DIM(64)];
    for (int trial = 0; trial < 200; trial++) {
        uint32_t k = 1 + (uint32_t)(urand() * 64);
        double scale = trial % 2 ? 0.5 : 20.0, n2 = 0;
        for (uint32_t a = 0; a < k; a++) {
            v[a] = frand(-1, 1) * (float)scale;
            n2 += (double)v[a] * v[a];
        }
        assert_int_equal(fedreci_mf_xx_block(v, k, bound, g, blk, &clipped), FEDREC_OK);
        assert_int_equal(clipped, n2 > bound * bound);
        double norm2 = 0, top = 0;
        for (size_t t = 0; t < FEDRECI_MF_XX_DIM(k); t++) {
            norm2 += (double)blk[t] * blk[t];
            top = fmax(top, fabs((double)blk[t]));
        }
        assert_true(top < clip);
        double want = g * fmin(n2, bound * bound);
        assert_float_equal(sqrt(norm2), want, 1e-5 * want + 1e-12);
    }
    /* bad input: named, out untouched */
    float keep[3] = {7, 7, 7};
    const float nan_x[2] = {1.0f, NAN};
    assert_int_equal(fedreci_mf_xx_block(nan_x, 2, 1.0, 1.0, keep, NULL), FEDREC_ERR_INVALID);
    assert_int_equal(fedreci_mf_xx_block(x, 2, 0.0, 1.0, keep, NULL), FEDREC_ERR_INVALID);
    assert_int_equal(fedreci_mf_xx_block(x, 2, 1.0, INFINITY, keep, NULL), FEDREC_ERR_INVALID);
    assert_int_equal(fedreci_mf_xx_block(x, 0, 1.0, 1.0, keep, NULL), FEDREC_ERR_INVALID);
    assert_true(keep[0] == 7 && keep[1] == 7 && keep[2] == 7);
    assert_true(fedreci_mf_xx_weight(0, 1) == 0 && fedreci_mf_xx_weight(1, NAN) == 0);
    assert_int_equal(fedreci_mf_update_dim(100, 32, FEDRECI_OPT_ALS), 3200 + 528);
    assert_int_equal(fedreci_mf_update_dim(100, 32, FEDRECI_OPT_ADAM), 3200);
}

/* Solves the n x n system a z = b in place by Gaussian elimination with
 * partial pivoting (double; the test's own reference). */
static void gauss_solve(double *a, double *b, uint32_t n)
{
    for (uint32_t c = 0; c < n; c++) {
        uint32_t p = c;
        for (uint32_t r = c + 1; r < n; r++)
            if (fabs(a[r * n + c]) > fabs(a[p * n + c]))
                p = r;
        for (uint32_t j = 0; j < n; j++) {
            double t = a[c * n + j];
            a[c * n + j] = a[p * n + j];
            a[p * n + j] = t;
        }
        double t = b[c];
        b[c] = b[p];
        b[p] = t;
        for (uint32_t r = c + 1; r < n; r++) {
            double f = a[r * n + c] / a[c * n + c];
            for (uint32_t j = c; j < n; j++)
                a[r * n + j] -= f * a[c * n + j];
            b[r] -= f * b[c];
        }
    }
    for (uint32_t c = n; c-- > 0;) {
        double v = b[c];
        for (uint32_t j = c + 1; j < n; j++)
            v -= a[c * n + j] * b[j];
        b[c] = v / a[c * n + c];
    }
}

/* With unit confidences, step size 1 and no momentum, one ALS step is the
 * ALS item update on the cohort: y_i = (sum_u x_u x_u^T + lambda (m / N) I)^-1
 * sum_u p_ui x_u, with x_u solved on the old Y (Hu, Koren & Volinsky 2008).
 * Checked against a brute-force solve per item. */
static void test_als_step_is_cohort_als_update(void **state)
{
    (void)state;
    test_rng = fedreci_rng_seeded(4242);
    csr_buf b;
    const uint32_t rows = 40, cols = 25, k = 5, N = 100;
    const float lambda = 0.5f;
    random_csr(&b, rows, cols, 0.25);
    for (uint64_t j = 0; j < b.indptr[rows]; j++)
        b.conf[j] = 1.0f;
    const size_t nk = (size_t)cols * k, dim = fedreci_mf_update_dim(cols, k, FEDRECI_OPT_ALS);
    float *y = malloc(nk * sizeof *y), *y0 = malloc(nk * sizeof *y0);
    float *grad = malloc(dim * sizeof *grad), *sum = malloc(dim * sizeof *sum);
    double *xs = calloc((size_t)rows * k, sizeof *xs);
    fedreci_mf_init(y, cols, k, 9, 0.3f);
    memcpy(y0, y, nk * sizeof *y);
    fedreci_opt_params op = {FEDRECI_OPT_ALS, 1.0f, 0.0f, 0.999f, 1e-8f, lambda, N};
    fedreci_optimizer *o = NULL;
    fedreci_mf_step *w = NULL;
    assert_int_equal(fedreci_mf_step_create(&w, cols, k), FEDREC_OK);
    assert_int_equal(fedreci_optimizer_create(&o, &op, cols, k), FEDREC_OK);
    assert_int_equal(fedreci_optimizer_kind(o), FEDRECI_OPT_ALS);
    /* fedreci_mf_fed_round refuses the ALS step (it has no block to sum) */
    assert_int_equal(fedreci_mf_fed_round(w, o, &b.m, NULL, 0, k, lambda, y, grad, sum, NULL, NULL),
                     FEDREC_ERR_INVALID);
    uint32_t count = 0;
    assert_int_equal(
        fedreci_mf_fed_round_xx(w, o, &b.m, NULL, 0, k, lambda, 1e6, y, grad, sum, &count, NULL),
        FEDREC_OK);
    /* the reference: the same x_u, then one ridge solve per item in double */
    float gram[25], xu[5];
    fedreci_mf_gram(y0, cols, k, gram);
    uint32_t m = 0;
    double S[25] = {0};
    for (uint32_t u = 0; u < rows; u++) {
        fedreci_mf_user cu = {b.indices + b.indptr[u], b.conf + b.indptr[u],
                              (uint32_t)(b.indptr[u + 1] - b.indptr[u])};
        if (cu.n == 0)
            continue;
        assert_int_equal(fedreci_mf_solve_user(w, y0, gram, cols, k, lambda, &cu, xu), FEDREC_OK);
        for (uint32_t a = 0; a < k; a++) {
            xs[(size_t)u * k + a] = xu[a];
            for (uint32_t c = 0; c < k; c++)
                S[a * k + c] += (double)xu[a] * xu[c];
        }
        m++;
    }
    assert_int_equal(count, m);
    double worst = 0;
    for (uint32_t i = 0; i < cols; i++) {
        double A[25], rhs[5] = {0};
        for (uint32_t a = 0; a < k * k; a++)
            A[a] = S[a] + (a % (k + 1) == 0 ? (double)lambda * m / N : 0.0);
        for (uint32_t u = 0; u < rows; u++)
            for (uint64_t j = b.indptr[u]; j < b.indptr[u + 1]; j++)
                if (b.indices[j] == i)
                    for (uint32_t a = 0; a < k; a++)
                        rhs[a] += xs[(size_t)u * k + a];
        gauss_solve(A, rhs, k);
        for (uint32_t a = 0; a < k; a++)
            worst = fmax(worst, fabs(y[(size_t)i * k + a] - rhs[a]) / (1.0 + fabs(rhs[a])));
    }
    assert_true(worst < 2e-4);
    fedreci_optimizer_destroy(o);

    /* Momentum: the first step is bias-corrected to the same step whatever
     * beta1 is; the second differs. */
    fedreci_opt_params om = op;
    om.lr = 0.3f;
    om.beta1 = 0.7f;
    fedreci_optimizer *a0 = NULL, *a7 = NULL;
    float *ya = malloc(nk * sizeof *ya), *yb = malloc(nk * sizeof *yb);
    memcpy(ya, y0, nk * sizeof *y0);
    memcpy(yb, y0, nk * sizeof *y0);
    assert_int_equal(fedreci_optimizer_create(&a7, &om, cols, k), FEDREC_OK);
    om.beta1 = 0.0f;
    assert_int_equal(fedreci_optimizer_create(&a0, &om, cols, k), FEDREC_OK);
    assert_int_equal(
        fedreci_mf_fed_round_xx(w, a7, &b.m, NULL, 0, k, lambda, 1e6, ya, grad, sum, NULL, NULL),
        FEDREC_OK);
    assert_int_equal(
        fedreci_mf_fed_round_xx(w, a0, &b.m, NULL, 0, k, lambda, 1e6, yb, grad, sum, NULL, NULL),
        FEDREC_OK);
    for (size_t j = 0; j < nk; j++)
        assert_float_equal(ya[j], yb[j], 1e-6);
    /* the same step size 0.3 of the Newton step: 0.3 of the way to y */
    for (size_t j = 0; j < nk; j++)
        assert_float_equal(yb[j], y0[j] + 0.3 * (y[j] - y0[j]), 1e-4);

    /* Errors leave y and the state unchanged: no block, a non-finite block,
     * and a singular system (lambda 0 and an all-zero block). */
    memcpy(ya, yb, nk * sizeof *yb);
    int applied = -1;
    assert_int_equal(fedreci_optimizer_step_xx(a0, yb, sum, NULL, 1.0, 4.0, &applied),
                     FEDREC_ERR_INVALID);
    assert_int_equal(fedreci_optimizer_step_xx(a0, yb, sum, sum + nk, 0.0, 4.0, &applied),
                     FEDREC_ERR_INVALID);
    sum[nk + 1] = NAN;
    assert_int_equal(fedreci_optimizer_step_xx(a0, yb, sum, sum + nk, 1.0, 4.0, &applied),
                     FEDREC_ERR_NUMERIC);
    assert_memory_equal(ya, yb, nk * sizeof *yb);
    fedreci_opt_params oz = op;
    oz.lambda = 0.0f;
    fedreci_optimizer *z = NULL;
    assert_int_equal(fedreci_optimizer_create(&z, &oz, cols, k), FEDREC_OK);
    memset(sum + nk, 0, FEDRECI_MF_XX_DIM(k) * sizeof *sum);
    assert_int_equal(fedreci_optimizer_step_xx(z, yb, sum, sum + nk, 1.0, 4.0, &applied),
                     FEDREC_ERR_NUMERIC);
    assert_memory_equal(ya, yb, nk * sizeof *yb);
    /* Adam ignores the block: step_xx is fedreci_optimizer_step */
    fedreci_optimizer *p1 = NULL, *p2 = NULL;
    fedreci_opt_params pa = adam_params;
    assert_int_equal(fedreci_optimizer_create(&p1, &pa, cols, k), FEDREC_OK);
    assert_int_equal(fedreci_optimizer_create(&p2, &pa, cols, k), FEDREC_OK);
    assert_int_equal(fedreci_optimizer_step_xx(p1, ya, sum, NULL, 0.0, 3.0, &applied), FEDREC_OK);
    assert_int_equal(fedreci_optimizer_step(p2, yb, sum, 3.0, &applied), FEDREC_OK);
    assert_memory_equal(ya, yb, nk * sizeof *yb);
    /* growing keeps the momentum of old rows and starts new rows fresh */
    assert_int_equal(fedreci_optimizer_grow(a7, cols + 3), FEDREC_OK);
    fedreci_optimizer_destroy(p1);
    fedreci_optimizer_destroy(p2);
    fedreci_optimizer_destroy(z);
    fedreci_optimizer_destroy(a0);
    fedreci_optimizer_destroy(a7);
    fedreci_mf_step_destroy(w);
    free(ya);
    free(yb);
    free(xs);
    free(y);
    free(y0);
    free(grad);
    free(sum);
    free_csr(&b);
}

static void random_csr(csr_buf *b, uint32_t rows, uint32_t cols, double density)
{
    b->indptr = malloc((rows + 1) * sizeof *b->indptr);
    b->indices = malloc((size_t)rows * cols * sizeof *b->indices);
    b->conf = malloc((size_t)rows * cols * sizeof *b->conf);
    assert_non_null(b->indptr);
    b->indptr[0] = 0;
    for (uint32_t r = 0; r < rows; r++)
        b->indptr[r + 1] = b->indptr[r] + random_user(cols, density, b->indices + b->indptr[r],
                                                      b->conf + b->indptr[r]);
    b->m = (fedreci_mf_csr){rows, cols, b->indptr, b->indices, b->conf};
}

static void free_csr(csr_buf *b)
{
    free(b->indptr);
    free(b->indices);
    free(b->conf);
}

static void assert_monotone(const double *obj, uint32_t sweeps)
{
    for (uint32_t s = 1; s < sweeps; s++) {
        /* Exact block minimization cannot increase the objective; float32
         * solves leave rounding noise of about 1e-7 relative. */
        if (obj[s] > obj[s - 1] * (1 + 1e-6)) {
            print_error("objective rose at sweep %u: %.9g -> %.9g\n", s, obj[s - 1], obj[s]);
            fail();
        }
    }
}

static void test_als_objective_never_increases(void **state)
{
    (void)state;
    test_rng = fedreci_rng_seeded(77);
    for (int trial = 0; trial < 4; trial++) {
        csr_buf b;
        uint32_t rows = 20 + trial * 15, cols = 15 + trial * 7;
        random_csr(&b, rows, cols, 0.15);
        fedreci_als_params p = {3 + trial * 3, 0.1f, 12, 1 + (trial & 1), 1000 + trial, 0.01f};
        float *x = malloc((size_t)rows * p.k * sizeof *x);
        float *y = malloc((size_t)cols * p.k * sizeof *y);
        double obj[12];
        assert_int_equal(fedreci_als_train(&b.m, &p, x, y, obj), FEDREC_OK);
        assert_monotone(obj, p.sweeps);
        assert_true(obj[p.sweeps - 1] < obj[0]);
        free(x);
        free(y);
        free_csr(&b);
    }
}

static void test_als_deterministic(void **state)
{
    (void)state;
    test_rng = fedreci_rng_seeded(31);
    csr_buf b;
    random_csr(&b, 120, 80, 0.08);
    const uint32_t k = 8;
    float *x[3], *y[3];
    for (int r = 0; r < 3; r++) {
        x[r] = malloc(120 * k * sizeof(float));
        y[r] = malloc(80 * k * sizeof(float));
    }
    for (uint32_t t = 1; t <= 2; t++) {
        fedreci_als_params p = {k, 0.1f, 5, t, 4242, 0.01f};
        for (int r = 0; r < 2; r++)
            assert_int_equal(fedreci_als_train(&b.m, &p, x[r], y[r], NULL), FEDREC_OK);
        assert_memory_equal(x[0], x[1], 120 * k * sizeof(float));
        assert_memory_equal(y[0], y[1], 80 * k * sizeof(float));
        if (t == 1) {
            memcpy(x[2], x[0], 120 * k * sizeof(float));
            memcpy(y[2], y[0], 80 * k * sizeof(float));
        }
    }
    /* Rows are solved independently, so the thread count does not change
     * the factors either. */
    assert_memory_equal(x[0], x[2], 120 * k * sizeof(float));
    assert_memory_equal(y[0], y[2], 80 * k * sizeof(float));
    /* Another seed gives other factors. */
    fedreci_als_params p = {k, 0.1f, 5, 1, 4243, 0.01f};
    assert_int_equal(fedreci_als_train(&b.m, &p, x[1], y[1], NULL), FEDREC_OK);
    assert_memory_not_equal(y[0], y[1], 80 * k * sizeof(float));
    for (int r = 0; r < 3; r++) {
        free(x[r]);
        free(y[r]);
    }
    free_csr(&b);
}

static void test_als_rejects_bad_input(void **state)
{
    (void)state;
    uint64_t indptr[3] = {0, 2, 3};
    uint32_t indices[3] = {1, 0, 5};
    float conf[3] = {1, 1, 1};
    fedreci_mf_csr r = {2, 4, indptr, indices, conf};
    fedreci_als_params p = {2, 0.1f, 2, 1, 1, 0.01f};
    float x[4] = {9, 9, 9, 9}, y[8];
    assert_int_equal(fedreci_als_train(&r, &p, x, y, NULL), FEDREC_ERR_INVALID); /* unsorted */
    indices[0] = 0;
    indices[1] = 1;
    assert_int_equal(fedreci_als_train(&r, &p, x, y, NULL), FEDREC_ERR_INVALID); /* 5 >= 4 */
    indices[2] = 3;
    p.k = 0;
    assert_int_equal(fedreci_als_train(&r, &p, x, y, NULL), FEDREC_ERR_INVALID);
    assert_true(x[0] == 9);
    p.k = 2;
    assert_int_equal(fedreci_als_train(&r, &p, x, y, NULL), FEDREC_OK);
    assert_true(isfinite(x[0]) && isfinite(y[7]));
}

/* Largest |a - b| over n floats, relative to the largest |b|. */
static double rel_max_diff(const float *a, const float *b, size_t n)
{
    double d = 0, m = 0;
    for (size_t j = 0; j < n; j++) {
        d = fmax(d, fabs((double)a[j] - b[j]));
        m = fmax(m, fabs((double)b[j]));
    }
    return d / m;
}

static void test_als_cg_matches_exact(void **state)
{
    (void)state;
    test_rng = fedreci_rng_seeded(5);
    csr_buf b;
    const uint32_t rows = 60, cols = 40, k = 6;
    random_csr(&b, rows, cols, 0.15);
    fedreci_als_params p = {k, 0.1f, 8, 1, 99, 0.1f};
    float *xe = malloc(rows * k * sizeof *xe), *ye = malloc(cols * k * sizeof *ye);
    float *xc = malloc(rows * k * sizeof *xc), *yc = malloc(cols * k * sizeof *yc);
    /* plain loss, then the Rendle et al. 2022 knobs */
    const float weights[2] = {0.0f, 0.5f}, exps[2] = {0.0f, 1.0f};
    for (int v = 0; v < 2; v++) {
        fedreci_als_options exact = {FEDRECI_ALS_CHOLESKY, 0, weights[v], exps[v] * 0.5f};
        fedreci_als_options cg = exact;
        cg.solver = FEDRECI_ALS_CG;
        /* 3 k steps per row: each row system is solved to rounding (measured
         * 5e-7 to 8e-7 relative after 8 sweeps; allowed 1e-5) */
        cg.cg_steps = 3 * k;
        assert_int_equal(fedreci_als_train_opts(&b.m, &p, &exact, xe, ye, NULL), FEDREC_OK);
        assert_int_equal(fedreci_als_train_opts(&b.m, &p, &cg, xc, yc, NULL), FEDREC_OK);
        double dx = rel_max_diff(xc, xe, rows * k), dy = rel_max_diff(yc, ye, cols * k);
        if (dx > 1e-5 || dy > 1e-5) {
            print_error("variant %d: CG differs from exact by %g (X), %g (Y)\n", v, dx, dy);
            fail();
        }
        /* with few steps it is close but not equal */
        cg.cg_steps = 1;
        assert_int_equal(fedreci_als_train_opts(&b.m, &p, &cg, xc, yc, NULL), FEDREC_OK);
        assert_true(rel_max_diff(yc, ye, cols * k) > 1e-3);
    }
    /* NULL options and zeroed options are the plain trainer, bit for bit */
    fedreci_als_options zero = {FEDRECI_ALS_CHOLESKY, 0, 0.0f, 0.0f};
    assert_int_equal(fedreci_als_train(&b.m, &p, xe, ye, NULL), FEDREC_OK);
    assert_int_equal(fedreci_als_train_opts(&b.m, &p, &zero, xc, yc, NULL), FEDREC_OK);
    assert_memory_equal(xe, xc, rows * k * sizeof *xe);
    assert_memory_equal(ye, yc, cols * k * sizeof *ye);
    /* bad options */
    fedreci_als_options bad = {(fedreci_als_solver)9, 0, 0.0f, 0.0f};
    assert_int_equal(fedreci_als_train_opts(&b.m, &p, &bad, xc, yc, NULL), FEDREC_ERR_INVALID);
    bad = (fedreci_als_options){FEDRECI_ALS_CG, 0, -1.0f, 0.0f};
    assert_int_equal(fedreci_als_train_opts(&b.m, &p, &bad, xc, yc, NULL), FEDREC_ERR_INVALID);
    bad = (fedreci_als_options){FEDRECI_ALS_CG, 0, 1.0f, 3.0f};
    assert_int_equal(fedreci_als_train_opts(&b.m, &p, &bad, xc, yc, NULL), FEDREC_ERR_INVALID);
    free(xe);
    free(ye);
    free(xc);
    free(yc);
    free_csr(&b);
}

static void test_als_options_objective_never_increases(void **state)
{
    (void)state;
    /* The objective of fedreci_als_options is the loss both solvers minimize
     * row by row: exact solves and CG steps (which lower the row's quadratic
     * from its warm start) can only lower it. */
    test_rng = fedreci_rng_seeded(91);
    csr_buf b;
    const uint32_t rows = 50, cols = 30, k = 5;
    random_csr(&b, rows, cols, 0.2);
    fedreci_als_params p = {k, 0.05f, 10, 2, 7, 0.1f};
    float *x = malloc(rows * k * sizeof *x), *y = malloc(cols * k * sizeof *y);
    double obj[10];
    const fedreci_als_options variants[4] = {
        {FEDRECI_ALS_CHOLESKY, 0, 2.0f, 1.0f},
        {FEDRECI_ALS_CHOLESKY, 0, 0.25f, 0.5f},
        {FEDRECI_ALS_CG, 0, 0.0f, 0.0f},
        {FEDRECI_ALS_CG, 2, 0.5f, 1.0f},
    };
    for (int v = 0; v < 4; v++) {
        assert_int_equal(fedreci_als_train_opts(&b.m, &p, &variants[v], x, y, obj), FEDREC_OK);
        assert_monotone(obj, p.sweeps);
        assert_true(obj[p.sweeps - 1] < obj[0]);
    }
    free(x);
    free(y);
    free_csr(&b);
}

/* ---- federated vs centralized on the December 2010 slice ------------------------------- */

/* HR@10 (and the full metrics) of item factors y on the split's test users:
 * x_u from `x_all` when given (ALS), else solved on the device from y and the
 * user's training row (federated); top 10 over the items not bought in
 * training. */
static fedreci_metrics evaluate(const fedreci_split *s, const float *y, const float *x_all,
                                uint32_t k, float lambda, fedreci_mf_step *w)
{
    const uint32_t n = s->train.n_cols;
    float *buf = malloc(n * sizeof *buf);
    float x[32];
    uint32_t top[10], got;
    fedreci_eval_acc *acc = NULL;
    assert_non_null(buf);
    assert_true(k <= 32);
    assert_int_equal(fedreci_eval_acc_create(&acc, n, 10), FEDREC_OK);
    for (uint32_t t = 0; t < s->n_test_users; t++) {
        uint32_t u = s->test_users[t], nt;
        uint64_t lo = s->train.indptr[u];
        fedreci_mf_user cu = {s->train.indices + lo, s->train.conf + lo,
                              (uint32_t)(s->train.indptr[u + 1] - lo)};
        const float *xu = x;
        if (x_all)
            xu = x_all + (size_t)u * k;
        else
            assert_int_equal(fedreci_mf_solve_user(w, y, NULL, n, k, lambda, &cu, x), FEDREC_OK);
        assert_int_equal(fedreci_mf_topk(y, n, k, xu, cu.items, cu.n, 10, buf, top, NULL, &got),
                         FEDREC_OK);
        const uint32_t *test = fedreci_split_test(s, t, &nt);
        assert_int_equal(fedreci_eval_acc_add(acc, top, got, test, nt), FEDREC_OK);
    }
    fedreci_metrics m;
    assert_int_equal(fedreci_eval_acc_finish(acc, &m), FEDREC_OK);
    fedreci_eval_acc_destroy(acc);
    free(buf);
    return m;
}

static void test_federated_matches_centralized(void **state)
{
    (void)state;
    const char *path = FEDREC_DATA_DIR "/online_retail_2010-12.csv.gz";
    fedreci_dataset *d = NULL;
    fedreci_split *s = NULL;
    fedreci_dataset_options dopt;
    fedreci_dataset_options_default(&dopt); /* alpha = 1, eps = 1 */
    assert_int_equal(fedreci_dataset_load(&d, path, &dopt, NULL), FEDREC_OK);
    assert_int_equal(fedreci_split_create(&s, d, NULL), FEDREC_OK); /* leave last basket out */
    const fedreci_mf_csr *r = &s->train;
    const uint32_t k = 32, n = r->n_cols;
    const float lambda = 0.1f;
    assert_true(s->n_test_users > 100);

    /* Centralized ALS, 15 sweeps; its objective never rises on real data either. */
    float *X = malloc((size_t)r->n_rows * k * sizeof *X);
    float *Y = malloc((size_t)n * k * sizeof *Y);
    double obj[15];
    fedreci_als_params ap = {k, lambda, 15, 2, 1, 0.01f};
    assert_int_equal(fedreci_als_train(r, &ap, X, Y, obj), FEDREC_OK);
    assert_monotone(obj, 15);
    fedreci_mf_step *w = NULL;
    assert_int_equal(fedreci_mf_step_create(&w, n, k), FEDREC_OK);
    fedreci_metrics als = evaluate(s, Y, X, k, lambda, w);
    fedreci_metrics pop;
    assert_int_equal(fedreci_eval_popularity(s, 10, &pop), FEDREC_OK);
    assert_true(als.hr_at_k > pop.hr_at_k); /* a working ALS beats popularity */

    /* Federated, secure aggregation off: every training shopper each round,
     * plain sum, g = sum / C + 2 (lambda / N) Y, Adam lr 0.02, init N(0, 0.01^2). */
    uint32_t n_train = 0;
    for (uint32_t u = 0; u < r->n_rows; u++)
        n_train += r->indptr[u + 1] > r->indptr[u];
    const fedreci_opt_params op = {FEDRECI_OPT_ADAM, 0.02f, 0.9f, 0.999f, 1e-8f, lambda, n_train};
    fedreci_optimizer *o = NULL;
    assert_int_equal(fedreci_optimizer_create(&o, &op, n, k), FEDREC_OK);
    float *y = malloc((size_t)n * k * sizeof *y), *grad = malloc((size_t)n * k * sizeof *grad);
    float *sum = malloc((size_t)n * k * sizeof *sum);
    assert_non_null(y);
    assert_non_null(grad);
    assert_non_null(sum);
    fedreci_mf_init(y, n, k, 1, 0.01f);
    const uint32_t rounds = 100;
    uint32_t first = 0, count = 0;
    fedreci_metrics fed = {0};
    for (uint32_t round = 1; round <= rounds; round++) {
        assert_int_equal(
            fedreci_mf_fed_round(w, o, r, NULL, 0, k, lambda, y, grad, sum, &count, NULL),
            FEDREC_OK);
        assert_int_equal(count, n_train);
        if (round % 5 == 0 || round == rounds) {
            fed = evaluate(s, y, NULL, k, lambda, w);
            if (!first && fed.hr_at_k >= 0.95 * als.hr_at_k)
                first = round;
        }
    }
    printf("December 2010 slice: %u shoppers (%u train), %u items, %u test users\n"
           "  popularity HR@10 %.4f; centralized ALS (k=32, 15 sweeps) HR@10 %.4f NDCG@10 %.4f\n"
           "  federated (plain sum, Adam lr 0.02): HR@10 %.4f NDCG@10 %.4f after %u rounds "
           "= %.3fx ALS; first >= 0.95x at round %u (checked every 5)\n",
           r->n_rows, n_train, n, s->n_test_users, pop.hr_at_k, als.hr_at_k, als.ndcg_at_k,
           fed.hr_at_k, fed.ndcg_at_k, rounds, fed.hr_at_k / als.hr_at_k, first);
    assert_true(fed.hr_at_k >= 0.95 * als.hr_at_k);

    fedreci_optimizer_destroy(o);
    fedreci_mf_step_destroy(w);
    free(y);
    free(grad);
    free(sum);
    free(X);
    free(Y);
    fedreci_split_destroy(s);
    fedreci_dataset_destroy(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_is_seeded_and_normal),
        cmocka_unit_test(test_init_known_answer),
        cmocka_unit_test(test_gram_matches_naive),
        cmocka_unit_test(test_solve_user_matches_direct),
        cmocka_unit_test(test_client_step_gradient_check),
        cmocka_unit_test(test_client_step_hand_computed),
        cmocka_unit_test(test_client_step_errors),
        cmocka_unit_test(test_topk_edge_cases),
        cmocka_unit_test(test_topk_matches_sort),
        cmocka_unit_test(test_adam_one_step_hand_computed),
        cmocka_unit_test(test_optimizer_zero_weight_and_nan),
        cmocka_unit_test(test_optimizer_set_lr),
        cmocka_unit_test(test_optimizer_grow_keeps_rows),
        cmocka_unit_test(test_fed_round_is_sum_then_step),
        cmocka_unit_test(test_xx_block_values_and_bound),
        cmocka_unit_test(test_als_step_is_cohort_als_update),
        cmocka_unit_test(test_als_objective_never_increases),
        cmocka_unit_test(test_als_deterministic),
        cmocka_unit_test(test_als_rejects_bad_input),
        cmocka_unit_test(test_als_cg_matches_exact),
        cmocka_unit_test(test_als_options_objective_never_increases),
        cmocka_unit_test(test_federated_matches_centralized),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

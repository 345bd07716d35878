/*
 * The server optimizer: Adam (Kingma & Ba, "Adam: A Method for Stochastic
 * Optimization", ICLR 2015, Algorithm 1 with bias correction) or plain SGD on
 * the item factors, from a cohort's aggregated gradient plus the cohort's
 * share of the regularization term (docs/design.md section 8, federated training).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/mf/mf.h"

struct fedreci_optimizer {
    fedreci_opt_params p;
    uint32_t n_items;
    uint32_t k;
    float *m;    /* n_items x k: first moment (Adam) */
    float *v;    /* n_items x k: second moment (Adam) */
    uint64_t *t; /* n_items: steps taken by each row, for its bias correction */
};

void fedreci_optimizer_destroy(fedreci_optimizer *o)
{
    if (!o)
        return;
    free(o->m);
    free(o->v);
    free(o->t);
    free(o);
}

static fedrec_err check_params(const fedreci_opt_params *p)
{
    if (!p)
        return fedreci_error(FEDREC_ERR_INVALID, "mf: optimizer: NULL parameters");
    if (p->kind != FEDRECI_OPT_ADAM && p->kind != FEDRECI_OPT_SGD && p->kind != FEDRECI_OPT_ALS)
        return fedreci_error(FEDREC_ERR_INVALID, "mf: optimizer: unknown kind %d", (int)p->kind);
    if (!(p->lr > 0.0f) || !isfinite(p->lr))
        return fedreci_error(FEDREC_ERR_INVALID, "mf: optimizer: lr %g must be > 0", (double)p->lr);
    if (!(p->lambda >= 0.0f) || !isfinite(p->lambda))
        return fedreci_error(FEDREC_ERR_INVALID, "mf: optimizer: lambda %g must be >= 0",
                             (double)p->lambda);
    if (p->n_train == 0)
        return fedreci_error(FEDREC_ERR_INVALID, "mf: optimizer: n_train must be > 0");
    if (p->kind == FEDRECI_OPT_ADAM &&
        (!(p->beta1 >= 0.0f && p->beta1 < 1.0f) || !(p->beta2 >= 0.0f && p->beta2 < 1.0f) ||
         !(p->eps > 0.0f) || !isfinite(p->eps)))
        return fedreci_error(FEDREC_ERR_INVALID,
                             "mf: optimizer: Adam needs 0 <= beta1, beta2 < 1 and eps > 0 "
                             "(got %g, %g, %g)",
                             (double)p->beta1, (double)p->beta2, (double)p->eps);
    if (p->kind == FEDRECI_OPT_ALS && !(p->beta1 >= 0.0f && p->beta1 < 1.0f))
        return fedreci_error(FEDREC_ERR_INVALID,
                             "mf: optimizer: the ALS step needs momentum 0 <= beta1 < 1 (got %g)",
                             (double)p->beta1);
    return FEDREC_OK;
}

fedrec_err fedreci_optimizer_create(fedreci_optimizer **out, const fedreci_opt_params *p,
                                    uint32_t n_items, uint32_t k)
{
    if (!out || n_items == 0 || k == 0)
        return fedreci_error(FEDREC_ERR_INVALID, "mf: optimizer: bad shape %u x %u", n_items, k);
    if ((size_t)n_items > SIZE_MAX / sizeof(float) / k)
        return fedreci_error(FEDREC_ERR_INVALID, "mf: optimizer: %u x %u is too large", n_items, k);
    fedrec_err err = check_params(p);
    if (err)
        return err;
    fedreci_optimizer *o = calloc(1, sizeof *o);
    if (!o)
        return FEDREC_ERR_NOMEM;
    o->p = *p;
    o->n_items = n_items;
    o->k = k;
    size_t nk = (size_t)n_items * k;
    o->t = calloc(n_items, sizeof *o->t);
    if (p->kind != FEDRECI_OPT_SGD)
        o->m = calloc(nk, sizeof *o->m);
    if (p->kind == FEDRECI_OPT_ADAM)
        o->v = calloc(nk, sizeof *o->v);
    if (!o->t || (p->kind != FEDRECI_OPT_SGD && !o->m) || (p->kind == FEDRECI_OPT_ADAM && !o->v)) {
        fedreci_optimizer_destroy(o);
        return fedreci_error(FEDREC_ERR_NOMEM, "mf: optimizer state for %u x %u", n_items, k);
    }
    *out = o;
    return FEDREC_OK;
}

fedrec_err fedreci_optimizer_step(fedreci_optimizer *o, float *y, const float *grad_sum,
                                  double weight, int *applied)
{
    return fedreci_optimizer_step_xx(o, y, grad_sum, NULL, 0.0, weight, applied);
}

/* In-place Cholesky factorization a = L L^T of the k x k row-major a (the
 * lower triangle gets L; the upper is not read). 0, or -1 when a is not
 * positive definite. */
static int cholesky(double *a, uint32_t k)
{
    for (uint32_t p = 0; p < k; p++)
        for (uint32_t q = 0; q <= p; q++) {
            double v = a[p * k + q];
            for (uint32_t z = 0; z < q; z++)
                v -= a[p * k + z] * a[q * k + z];
            if (p == q) {
                if (!(v > 0.0) || !isfinite(v))
                    return -1;
                a[p * k + p] = sqrt(v);
            } else {
                a[p * k + q] = v / a[q * k + q];
            }
        }
    return 0;
}

/* Solves L L^T x = b in place (b has k entries). */
static void cholesky_solve(const double *l, uint32_t k, double *b)
{
    for (uint32_t p = 0; p < k; p++) {
        double v = b[p];
        for (uint32_t z = 0; z < p; z++)
            v -= l[p * k + z] * b[z];
        b[p] = v / l[p * k + p];
    }
    for (uint32_t p = k; p-- > 0;) {
        double v = b[p];
        for (uint32_t z = p + 1; z < k; z++)
            v -= l[z * k + p] * b[z];
        b[p] = v / l[p * k + p];
    }
}

/* The ALS-like step (mf.h fedreci_optimizer_step_xx); the arguments are
 * checked and finite. */
static fedrec_err als_step(fedreci_optimizer *o, float *y, const float *grad_sum,
                           const float *xx_sum, double xx_weight, double weight)
{
    const uint32_t k = o->k;
    const double reg = (double)o->p.lambda / (double)o->p.n_train, inv_w = 1.0 / weight;
    double *s = malloc((size_t)k * k * sizeof *s), *b = malloc((size_t)k * sizeof *b);
    if (!s || !b) {
        free(s);
        free(b);
        return fedreci_error(FEDREC_ERR_NOMEM, "mf: optimizer: ALS step, %u x %u system", k, k);
    }
    const double r2 = sqrt(2.0);
    size_t t = 0;
    for (uint32_t p = 0; p < k; p++)
        for (uint32_t q = p; q < k; q++) {
            double v = (double)xx_sum[t++] / (p == q ? xx_weight : xx_weight * r2) * inv_w;
            s[p * k + q] = s[q * k + p] = v + (p == q ? reg : 0.0);
        }
    if (cholesky(s, k)) {
        free(s);
        free(b);
        return fedreci_error(FEDREC_ERR_NUMERIC,
                             "mf: optimizer: the cohort's sum of x_u x_u^T plus lambda / N is not "
                             "positive definite (weight %g, lambda %g)",
                             weight, (double)o->p.lambda);
    }
    const double b1 = o->p.beta1, lr = o->p.lr;
    double c1 = 0.0;
    uint64_t t_prev = UINT64_MAX;
    for (uint32_t i = 0; i < o->n_items; i++) {
        uint64_t ti = ++o->t[i];
        if (ti != t_prev) {
            c1 = 1.0 - pow(b1, (double)ti);
            t_prev = ti;
        }
        size_t row = (size_t)i * k;
        for (uint32_t p = 0; p < k; p++)
            b[p] = 0.5 * ((double)grad_sum[row + p] * inv_w + 2.0 * reg * y[row + p]);
        cholesky_solve(s, k, b);
        for (uint32_t p = 0; p < k; p++) {
            double m = b1 * o->m[row + p] + (1.0 - b1) * b[p];
            o->m[row + p] = (float)m;
            y[row + p] = (float)(y[row + p] - lr * m / c1);
        }
    }
    free(s);
    free(b);
    return FEDREC_OK;
}

fedrec_err fedreci_optimizer_step_xx(fedreci_optimizer *o, float *y, const float *grad_sum,
                                     const float *xx_sum, double xx_weight, double weight,
                                     int *applied)
{
    if (!o || !y || !grad_sum)
        return fedreci_error(FEDREC_ERR_INVALID, "mf: optimizer: NULL argument");
    if (o->p.kind == FEDRECI_OPT_ALS && (!xx_sum || !(xx_weight > 0.0) || !isfinite(xx_weight)))
        return fedreci_error(FEDREC_ERR_INVALID,
                             "mf: optimizer: the ALS step needs the cohort's x_u x_u^T sum and "
                             "its weight (finite, > 0; got %s, %g)",
                             xx_sum ? "a sum" : "none", xx_weight);
    if (!(weight >= 0.0) || !isfinite(weight))
        return fedreci_error(FEDREC_ERR_INVALID, "mf: optimizer: weight %g must be finite and >= 0",
                             weight);
    if (weight == 0.0) {
        if (applied)
            *applied = 0;
        return FEDREC_OK;
    }
    size_t nk = (size_t)o->n_items * o->k;
    /* Refuse a non-finite aggregate before touching anything: the model is
     * never made NaN. */
    for (size_t j = 0; j < nk; j++)
        if (!isfinite(grad_sum[j]) || !isfinite(y[j]))
            return fedreci_error(FEDREC_ERR_NUMERIC,
                                 "mf: optimizer: non-finite %s at entry %zu (row %zu)",
                                 isfinite(grad_sum[j]) ? "factor" : "gradient", j, j / o->k);
    if (o->p.kind == FEDRECI_OPT_ALS) {
        for (size_t j = 0; j < FEDRECI_MF_XX_DIM(o->k); j++)
            if (!isfinite(xx_sum[j]))
                return fedreci_error(FEDREC_ERR_NUMERIC,
                                     "mf: optimizer: non-finite x_u x_u^T sum at entry %zu", j);
        fedrec_err e = als_step(o, y, grad_sum, xx_sum, xx_weight, weight);
        if (e)
            return e;
        if (applied)
            *applied = 1;
        return FEDREC_OK;
    }

    const double inv_w = 1.0 / weight;
    const double reg = 2.0 * (double)o->p.lambda / (double)o->p.n_train;
    const double lr = o->p.lr;
    const uint32_t k = o->k;
    if (o->p.kind == FEDRECI_OPT_SGD) {
        for (size_t j = 0; j < nk; j++) {
            double g = grad_sum[j] * inv_w + reg * y[j];
            y[j] = (float)(y[j] - lr * g);
        }
        for (uint32_t i = 0; i < o->n_items; i++)
            o->t[i]++;
    } else {
        const double b1 = o->p.beta1, b2 = o->p.beta2, eps = o->p.eps;
        double c1 = 0.0, c2 = 0.0;
        uint64_t t_prev = UINT64_MAX;
        for (uint32_t i = 0; i < o->n_items; i++) {
            uint64_t t = ++o->t[i];
            if (t != t_prev) { /* rows share t except after a grow */
                c1 = 1.0 - pow(b1, (double)t);
                c2 = 1.0 - pow(b2, (double)t);
                t_prev = t;
            }
            for (uint32_t d = 0; d < k; d++) {
                size_t j = (size_t)i * k + d;
                double g = grad_sum[j] * inv_w + reg * y[j];
                double m = b1 * o->m[j] + (1.0 - b1) * g;
                double v = b2 * o->v[j] + (1.0 - b2) * g * g;
                o->m[j] = (float)m;
                o->v[j] = (float)v;
                y[j] = (float)(y[j] - lr * (m / c1) / (sqrt(v / c2) + eps));
            }
        }
    }
    if (applied)
        *applied = 1;
    return FEDREC_OK;
}

fedrec_err fedreci_optimizer_set_lr(fedreci_optimizer *o, float lr)
{
    if (!o || !(lr > 0.0f) || !isfinite(lr))
        return fedreci_error(FEDREC_ERR_INVALID, "mf: optimizer: lr %g must be finite and > 0",
                             (double)lr);
    o->p.lr = lr;
    return FEDREC_OK;
}

fedreci_opt_kind fedreci_optimizer_kind(const fedreci_optimizer *o)
{
    return o->p.kind;
}

fedrec_err fedreci_optimizer_grow(fedreci_optimizer *o, uint32_t new_n_items)
{
    if (!o)
        return fedreci_error(FEDREC_ERR_INVALID, "mf: optimizer: NULL");
    if (new_n_items < o->n_items)
        return fedreci_error(FEDREC_ERR_INVALID, "mf: optimizer: cannot shrink %u rows to %u",
                             o->n_items, new_n_items);
    if (new_n_items == o->n_items)
        return FEDREC_OK;
    if ((size_t)new_n_items > SIZE_MAX / sizeof(float) / o->k)
        return fedreci_error(FEDREC_ERR_INVALID, "mf: optimizer: %u x %u is too large", new_n_items,
                             o->k);
    size_t old = (size_t)o->n_items * o->k, nk = (size_t)new_n_items * o->k;
    /* Build the new arrays first, so a failure leaves the optimizer as it was. */
    uint64_t *t = calloc(new_n_items, sizeof *t);
    float *m = NULL, *v = NULL;
    if (o->p.kind != FEDRECI_OPT_SGD)
        m = calloc(nk, sizeof *m);
    if (o->p.kind == FEDRECI_OPT_ADAM)
        v = calloc(nk, sizeof *v);
    if (!t || (o->p.kind != FEDRECI_OPT_SGD && !m) || (o->p.kind == FEDRECI_OPT_ADAM && !v)) {
        free(t);
        free(m);
        free(v);
        return fedreci_error(FEDREC_ERR_NOMEM, "mf: optimizer: growing to %u rows", new_n_items);
    }
    memcpy(t, o->t, (size_t)o->n_items * sizeof *t);
    free(o->t);
    o->t = t;
    if (m) {
        memcpy(m, o->m, old * sizeof *m);
        free(o->m);
        o->m = m;
    }
    if (v) {
        memcpy(v, o->v, old * sizeof *v);
        free(o->v);
        o->v = v;
    }
    o->n_items = new_n_items;
    return FEDREC_OK;
}

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
    if (p->kind != FEDRECI_OPT_ADAM && p->kind != FEDRECI_OPT_SGD)
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
    if (p->kind == FEDRECI_OPT_ADAM) {
        o->m = calloc(nk, sizeof *o->m);
        o->v = calloc(nk, sizeof *o->v);
    }
    if (!o->t || (p->kind == FEDRECI_OPT_ADAM && (!o->m || !o->v))) {
        fedreci_optimizer_destroy(o);
        return fedreci_error(FEDREC_ERR_NOMEM, "mf: optimizer state for %u x %u", n_items, k);
    }
    *out = o;
    return FEDREC_OK;
}

fedrec_err fedreci_optimizer_step(fedreci_optimizer *o, float *y, const float *grad_sum,
                                  double weight, int *applied)
{
    if (!o || !y || !grad_sum)
        return fedreci_error(FEDREC_ERR_INVALID, "mf: optimizer: NULL argument");
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
    if (o->p.kind == FEDRECI_OPT_ADAM) {
        m = calloc(nk, sizeof *m);
        v = calloc(nk, sizeof *v);
    }
    if (!t || (o->p.kind == FEDRECI_OPT_ADAM && (!m || !v))) {
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
        memcpy(v, o->v, old * sizeof *v);
        free(o->m);
        free(o->v);
        o->m = m;
        o->v = v;
    }
    o->n_items = new_n_items;
    return FEDREC_OK;
}

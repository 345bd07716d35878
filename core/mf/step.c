/*
 * The client step (Ammad-ud-din et al. 2019, on the device) and the row solve
 * it shares with the centralized ALS (Hu, Koren & Volinsky 2008).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifdef FEDREC_HAVE_BLAS
#include <cblas.h>
#endif

#include "core/err.h"
#include "core/mf/linalg.h"
#include "core/mf/mf.h"
#include "core/mf/mf_internal.h"

struct fedreci_mf_step {
    uint32_t n_items;
    uint32_t k;
    fedreci_mf_backend backend;
    float *a;    /* k x k: the system matrix, factored in place by sposv */
    float *gram; /* k x k: Y^T Y when the caller passes none */
    float *x;    /* k: the solution before it is copied out */
    float *z;    /* n_items x k: the user's rows scaled by sqrt(c - 1) */
    float *r;    /* n_items: Y x */
    float *e;    /* n_items: c (p - r) */
};

fedrec_err fedreci_mf_check_row(const uint32_t *items, const float *conf, uint32_t n,
                                uint32_t n_cols, const char *what, uint64_t row)
{
    if (n > 0 && (!items || !conf))
        return fedreci_error(FEDREC_ERR_INVALID, "mf: %s %llu has %u items but no arrays", what,
                             (unsigned long long)row, n);
    for (uint32_t j = 0; j < n; j++) {
        if (items[j] >= n_cols)
            return fedreci_error(FEDREC_ERR_INVALID,
                                 "mf: %s %llu: item index %u out of range (%u items)", what,
                                 (unsigned long long)row, items[j], n_cols);
        if (j > 0 && items[j] <= items[j - 1])
            return fedreci_error(FEDREC_ERR_INVALID,
                                 "mf: %s %llu: item indices not strictly ascending (%u after %u)",
                                 what, (unsigned long long)row, items[j], items[j - 1]);
        if (!(conf[j] > 0.0f) || !isfinite(conf[j]))
            return fedreci_error(FEDREC_ERR_INVALID,
                                 "mf: %s %llu: confidence %g of item %u is not finite and > 0",
                                 what, (unsigned long long)row, (double)conf[j], items[j]);
    }
    return FEDREC_OK;
}

static fedrec_err posv_result(int info, uint32_t k)
{
    if (info > 0)
        return fedreci_error(FEDREC_ERR_NUMERIC,
                             "mf: sposv: the %u x %u system is not positive definite (minor %d)", k,
                             k, info);
    if (info < 0)
        return fedreci_error(FEDREC_ERR_INTERNAL, "mf: sposv: argument %d invalid", -info);
    return FEDREC_OK;
}

/* The same solve as solve_row_blas in portable C (core/mf/linalg): the same
 * operations in the same layout, so the two agree up to rounding. */
static fedrec_err solve_row_portable(const float *factors, const float *gram, uint32_t k,
                                     float lambda, const uint32_t *items, const float *conf,
                                     uint32_t n, float *a, float *z, float *x)
{
    size_t kk = (size_t)k * k;
    memcpy(a, gram, kk * sizeof *a);
    for (uint32_t d = 0; d < k; d++)
        a[(size_t)d * k + d] += lambda;
    memset(x, 0, (size_t)k * sizeof *x);
    uint32_t m = 0;
    for (uint32_t j = 0; j < n; j++) {
        const float *f = factors + (size_t)items[j] * k;
        float c = conf[j];
        fedreci_la_axpy(k, c, f, x);
        if (c > 1.0f) {
            float s = sqrtf(c - 1.0f);
            float *dst = z + (size_t)m * k;
            for (uint32_t d = 0; d < k; d++)
                dst[d] = s * f[d];
            m++;
        } else if (c < 1.0f) {
            fedreci_la_syr_upper(k, c - 1.0f, f, a);
        }
    }
    if (m > 0)
        fedreci_la_syrk_upper(k, m, z, 1.0f, a);
    return posv_result(fedreci_la_posv(k, a, x), k);
}

#ifdef FEDREC_HAVE_BLAS
static fedrec_err solve_row_blas(const float *factors, const float *gram, uint32_t k, float lambda,
                                 const uint32_t *items, const float *conf, uint32_t n, float *a,
                                 float *z, float *x)
{
    size_t kk = (size_t)k * k;
    memcpy(a, gram, kk * sizeof *a);
    for (uint32_t d = 0; d < k; d++)
        a[(size_t)d * k + d] += lambda;
    memset(x, 0, (size_t)k * sizeof *x);

    /* Rows with c > 1 go through one ssyrk (BLAS-3); a confidence below 1
     * (allowed, though core/dataset never makes one) is a negative-weight
     * rank-1 update. Only the row-major upper triangle is updated: it is the
     * column-major lower triangle LAPACK reads with uplo = 'L'. */
    uint32_t m = 0;
    for (uint32_t j = 0; j < n; j++) {
        const float *f = factors + (size_t)items[j] * k;
        float c = conf[j];
        cblas_saxpy((int)k, c, f, 1, x, 1);
        if (c > 1.0f) {
            float s = sqrtf(c - 1.0f);
            float *dst = z + (size_t)m * k;
            for (uint32_t d = 0; d < k; d++)
                dst[d] = s * f[d];
            m++;
        } else if (c < 1.0f) {
            cblas_ssyr(CblasRowMajor, CblasUpper, (int)k, c - 1.0f, f, 1, a, (int)k);
        }
    }
    if (m > 0)
        cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)k, (int)m, 1.0f, z, (int)k, 1.0f, a,
                    (int)k);

    int ni = (int)k, nrhs = 1, info = 0;
    sposv_("L", &ni, &nrhs, a, &ni, x, &ni, &info, 1);
    return posv_result(info, k);
}
#endif

fedrec_err fedreci_mf_solve_row(const float *factors, const float *gram, uint32_t k, float lambda,
                                const uint32_t *items, const float *conf, uint32_t n, float *a,
                                float *z, float *x)
{
#ifdef FEDREC_HAVE_BLAS
    return solve_row_blas(factors, gram, k, lambda, items, conf, n, a, z, x);
#else
    return solve_row_portable(factors, gram, k, lambda, items, conf, n, a, z, x);
#endif
}

fedrec_err fedreci_mf_step_set_backend(fedreci_mf_step *w, fedreci_mf_backend backend)
{
    if (!w)
        return fedreci_error(FEDREC_ERR_INVALID, "mf: NULL step workspace");
    if (backend == FEDRECI_MF_PORTABLE) {
        w->backend = backend;
        return FEDREC_OK;
    }
    if (backend == FEDRECI_MF_BLAS) {
#ifdef FEDREC_HAVE_BLAS
        w->backend = backend;
        return FEDREC_OK;
#else
        return fedreci_error(FEDREC_ERR_UNSUPPORTED,
                             "mf: this build has no BLAS (client-only): the portable backend only");
#endif
    }
    return fedreci_error(FEDREC_ERR_INVALID, "mf: unknown linear-algebra backend %d", (int)backend);
}

void fedreci_mf_step_destroy(fedreci_mf_step *w)
{
    if (!w)
        return;
    free(w->a);
    free(w->gram);
    free(w->x);
    free(w->z);
    free(w->r);
    free(w->e);
    free(w);
}

fedrec_err fedreci_mf_step_create(fedreci_mf_step **out, uint32_t n_items, uint32_t k)
{
    if (!out || n_items == 0 || k == 0 || k > 4096)
        return fedreci_error(FEDREC_ERR_INVALID,
                             "mf: step workspace needs n_items > 0 and 0 < k <= 4096 (got %u, %u)",
                             n_items, k);
    if ((size_t)n_items > SIZE_MAX / sizeof(float) / k)
        return fedreci_error(FEDREC_ERR_INVALID, "mf: %u items x %u factors is too large", n_items,
                             k);
    fedreci_mf_step *w = calloc(1, sizeof *w);
    if (!w)
        return FEDREC_ERR_NOMEM;
    w->n_items = n_items;
    w->k = k;
    w->backend = FEDRECI_MF_BACKEND_DEFAULT;
    size_t kk = (size_t)k * k;
    w->a = malloc(kk * sizeof(float));
    w->gram = malloc(kk * sizeof(float));
    w->x = malloc((size_t)k * sizeof(float));
    w->z = malloc((size_t)n_items * k * sizeof(float));
    w->r = malloc((size_t)n_items * sizeof(float));
    w->e = malloc((size_t)n_items * sizeof(float));
    if (!w->a || !w->gram || !w->x || !w->z || !w->r || !w->e) {
        fedreci_mf_step_destroy(w);
        return fedreci_error(FEDREC_ERR_NOMEM, "mf: step workspace for %u x %u", n_items, k);
    }
    *out = w;
    return FEDREC_OK;
}

/* Validates the arguments shared by solve_user and client_step, then solves
 * x_u into w->x. */
static fedrec_err solve_into_workspace(fedreci_mf_step *w, const float *y, const float *gram,
                                       uint32_t n_items, uint32_t k, float lambda,
                                       const fedreci_mf_user *u)
{
    if (!w || !y || !u)
        return fedreci_error(FEDREC_ERR_INVALID, "mf: NULL workspace, factors or user");
    if (n_items != w->n_items || k != w->k)
        return fedreci_error(FEDREC_ERR_INVALID,
                             "mf: shape %u x %u does not match the workspace's %u x %u", n_items, k,
                             w->n_items, w->k);
    if (!(lambda >= 0.0f) || !isfinite(lambda))
        return fedreci_error(FEDREC_ERR_INVALID, "mf: lambda %g must be finite and >= 0",
                             (double)lambda);
    fedrec_err err = fedreci_mf_check_row(u->items, u->conf, u->n, n_items, "user", 0);
    if (err)
        return err;
    if (!gram) {
        fedreci_mf_gram(y, n_items, k, w->gram);
        gram = w->gram;
    }
#ifdef FEDREC_HAVE_BLAS
    if (w->backend == FEDRECI_MF_BLAS)
        return solve_row_blas(y, gram, k, lambda, u->items, u->conf, u->n, w->a, w->z, w->x);
#endif
    return solve_row_portable(y, gram, k, lambda, u->items, u->conf, u->n, w->a, w->z, w->x);
}

fedrec_err fedreci_mf_solve_user(fedreci_mf_step *w, const float *y, const float *gram,
                                 uint32_t n_items, uint32_t k, float lambda,
                                 const fedreci_mf_user *u, float *x)
{
    if (!x)
        return fedreci_error(FEDREC_ERR_INVALID, "mf: NULL output vector");
    fedrec_err err = solve_into_workspace(w, y, gram, n_items, k, lambda, u);
    if (err)
        return err;
    memcpy(x, w->x, (size_t)k * sizeof *x);
    return FEDREC_OK;
}

fedrec_err fedreci_mf_client_step(fedreci_mf_step *w, const float *y, const float *gram,
                                  uint32_t n_items, uint32_t k, float lambda,
                                  const fedreci_mf_user *u, float *x, float *grad, double *loss)
{
    if (!x || !grad)
        return fedreci_error(FEDREC_ERR_INVALID, "mf: NULL output vector or gradient");
    fedrec_err err = solve_into_workspace(w, y, gram, n_items, k, lambda, u);
    if (err)
        return err;
    const float *xs = w->x;
    float *r = w->r, *e = w->e;

    /* r = Y x; e_i = c_ui (p_ui - r_i): -r_i for items not bought (c = 1, p = 0). */
#ifdef FEDREC_HAVE_BLAS
    if (w->backend == FEDRECI_MF_BLAS)
        cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)n_items, (int)k, 1.0f, y, (int)k, xs, 1, 0.0f,
                    r, 1);
    else
#endif
        fedreci_la_gemv(n_items, k, y, xs, r);
    double sq = 0.0;
    for (uint32_t i = 0; i < n_items; i++) {
        e[i] = -r[i];
        sq += (double)r[i] * r[i];
    }
    for (uint32_t j = 0; j < u->n; j++) {
        uint32_t i = u->items[j];
        double c = u->conf[j], ri = r[i];
        e[i] = (float)(c * (1.0 - ri));
        sq += c * (1.0 - ri) * (1.0 - ri) - ri * ri;
    }

    /* G_u = -2 e x^T, dense over the whole catalog. */
#ifdef FEDREC_HAVE_BLAS
    if (w->backend == FEDRECI_MF_BLAS) {
        memset(grad, 0, (size_t)n_items * k * sizeof *grad);
        cblas_sger(CblasRowMajor, (int)n_items, (int)k, -2.0f, e, 1, xs, 1, grad, (int)k);
    } else
#endif
        fedreci_la_ger(n_items, k, -2.0f, e, xs, 0.0f, grad);

    if (loss) {
        double xx = 0.0;
        for (uint32_t d = 0; d < k; d++)
            xx += (double)xs[d] * xs[d];
        *loss = sq + (double)lambda * xx;
    }
    memcpy(x, xs, (size_t)k * sizeof *x);
    return FEDREC_OK;
}

/* ---- the x_u x_u^T block --------------------------------------------------------- */

double fedreci_mf_xx_weight(double clip, double bound)
{
    if (!(clip > 0.0) || !isfinite(clip) || !(bound > 0.0) || !isfinite(bound))
        return 0.0;
    double g = clip / (bound * bound);
    return isfinite(g) && g > 0.0 ? g : 0.0;
}

fedrec_err fedreci_mf_xx_block(const float *x, uint32_t k, double bound, double weight, float *out,
                               int *clipped)
{
    if (!x || !out || k == 0 || k > 256)
        return fedreci_error(FEDREC_ERR_INVALID, "mf: xx block: NULL argument or k = %u (1..256)",
                             k);
    if (!(bound > 0.0) || !isfinite(bound) || !(weight > 0.0) || !isfinite(weight))
        return fedreci_error(FEDREC_ERR_INVALID,
                             "mf: xx block: bound %g and weight %g must be finite and > 0", bound,
                             weight);
    double v[256], n2 = 0.0;
    for (uint32_t a = 0; a < k; a++) {
        if (!isfinite(x[a]))
            return fedreci_error(FEDREC_ERR_INVALID, "mf: xx block: x[%u] = %g, need finite", a,
                                 (double)x[a]);
        v[a] = x[a];
        n2 += v[a] * v[a];
    }
    int cut = n2 > bound * bound;
    if (cut) {
        double f = bound / sqrt(n2);
        for (uint32_t a = 0; a < k; a++)
            v[a] *= f;
    }
    const double g = weight * (1.0 - 0x1p-20), gr = g * sqrt(2.0);
    size_t t = 0;
    for (uint32_t a = 0; a < k; a++) {
        out[t++] = (float)(g * v[a] * v[a]);
        for (uint32_t b = a + 1; b < k; b++)
            out[t++] = (float)(gr * v[a] * v[b]);
    }
    if (clipped)
        *clipped = cut;
    return FEDREC_OK;
}

size_t fedreci_mf_update_dim(uint32_t n_items, uint32_t k, fedreci_opt_kind kind)
{
    if (k != 0 && (size_t)n_items > SIZE_MAX / 2 / k)
        return 0;
    size_t d = (size_t)n_items * k;
    return kind == FEDRECI_OPT_ALS ? d + FEDRECI_MF_XX_DIM(k) : d;
}

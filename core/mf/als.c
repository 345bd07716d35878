/*
 * Centralized implicit ALS (Hu, Koren & Volinsky, ICDM 2008): each sweep
 * solves every user row against the Gram matrix of Y (computed once per
 * sweep), then every item row against the Gram matrix of X, each row
 * corrected over its own nonzeros only, either exactly (LAPACK sposv) or by a
 * few warm-started conjugate-gradient steps (Takacs, Pilaszy & Tikk 2011).
 *
 * The unobserved weight alpha0 and frequency-scaled regularization of Rendle
 * et al. 2022 enter through the row system: dividing
 *   (alpha0 G + sum_j (c_j - alpha0) f_j f_j^T + lambda_r I) x = sum_j c_j f_j
 * by alpha0 gives the plain form with confidences c_j / alpha0 and
 * regularization lambda_r / alpha0, so both solvers see only that form.
 *
 * Threads: the rows of each half-sweep are split into `threads` contiguous
 * blocks of about equal work (static partition, fixed before training). A
 * row's solution depends only on its own data and the shared Gram matrix and
 * OpenBLAS runs single-threaded inside, so the factors do not depend on the
 * schedule; the objective is summed sequentially afterwards.
 */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "core/err.h"
#include "core/mf/mf.h"
#include "core/mf/mf_internal.h"

#define ALS_MAX_THREADS 256u
#define ALS_DEFAULT_STD 0.01f

/* One side of the problem in CSR form: rows are solved, columns index `other`. */
typedef struct als_side {
    uint32_t n_rows;
    uint32_t n_other; /* rows of the other side (columns here) */
    const uint64_t *indptr;
    const uint32_t *indices;
    const float *conf;
    uint32_t *bounds; /* threads + 1 row boundaries */
} als_side;

typedef struct als_job {
    const als_side *side;
    const float *other; /* the fixed factors, rows indexed by the side's columns */
    const float *gram;  /* their k x k Gram matrix */
    float *out;         /* the side's factors, n_rows x k */
    uint32_t k;
    float lambda;
    const fedreci_als_options *o; /* with defaults filled in */
    uint32_t begin, end;
    float *a, *z; /* scratch: k x k, max_row_nnz x k */
    float *cg;    /* scratch: 4 k + max_row_nnz */
    fedrec_err err;
} als_job;

/* The row's regularization, divided by alpha0 (see the top of the file). */
static float row_lambda(float lambda, const fedreci_als_options *o, uint32_t n, uint32_t n_other)
{
    if (o->reg_exponent == 0.0f && o->unobserved_weight == 1.0f)
        return lambda;
    double w = o->unobserved_weight;
    double scale = o->reg_exponent == 0.0f ? 1.0 : pow((double)n + w * n_other, o->reg_exponent);
    return (float)((double)lambda * scale / w);
}

/* out = A v with A = gram + Z^T diag(c - 1) Z + lambda I; t is n floats of
 * scratch. Z (n x k) holds the row's factors. */
static void cg_matvec(const float *gram, const float *z, const float *conf, uint32_t n, uint32_t k,
                      float lambda, const float *v, float *t, float *out)
{
    cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)k, (int)k, 1.0f, gram, (int)k, v, 1, 0.0f, out,
                1);
    if (n > 0) {
        cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)n, (int)k, 1.0f, z, (int)k, v, 1, 0.0f, t, 1);
        for (uint32_t j = 0; j < n; j++)
            t[j] *= conf[j] - 1.0f;
        cblas_sgemv(CblasRowMajor, CblasTrans, (int)n, (int)k, 1.0f, z, (int)k, t, 1, 1.0f, out, 1);
    }
    for (uint32_t d = 0; d < k; d++)
        out[d] += lambda * v[d];
}

/* `steps` conjugate-gradient iterations on the row system of
 * fedreci_mf_solve_row, started from x (updated in place). Stops early when
 * the residual is exactly zero. Scratch: z (n x k), w (4 k + n). */
static void cg_solve_row(const float *factors, const float *gram, uint32_t k, float lambda,
                         const uint32_t *items, const float *conf, uint32_t n, uint32_t steps,
                         float *z, float *w, float *x)
{
    float *r = w, *p = w + k, *ap = w + 2 * (size_t)k, *b = w + 3 * (size_t)k;
    float *t = w + 4 * (size_t)k;
    for (uint32_t j = 0; j < n; j++)
        memcpy(z + (size_t)j * k, factors + (size_t)items[j] * k, (size_t)k * sizeof *z);
    memset(b, 0, (size_t)k * sizeof *b);
    if (n > 0)
        cblas_sgemv(CblasRowMajor, CblasTrans, (int)n, (int)k, 1.0f, z, (int)k, conf, 1, 0.0f, b,
                    1);
    cg_matvec(gram, z, conf, n, k, lambda, x, t, ap);
    double rs = 0.0;
    for (uint32_t d = 0; d < k; d++) {
        r[d] = b[d] - ap[d];
        p[d] = r[d];
        rs += (double)r[d] * r[d];
    }
    for (uint32_t it = 0; it < steps && rs > 0.0; it++) {
        cg_matvec(gram, z, conf, n, k, lambda, p, t, ap);
        double pap = 0.0;
        for (uint32_t d = 0; d < k; d++)
            pap += (double)p[d] * ap[d];
        if (!(pap > 0.0))
            break;
        float alpha = (float)(rs / pap);
        double rs_new = 0.0;
        for (uint32_t d = 0; d < k; d++) {
            x[d] += alpha * p[d];
            r[d] -= alpha * ap[d];
            rs_new += (double)r[d] * r[d];
        }
        float beta = (float)(rs_new / rs);
        for (uint32_t d = 0; d < k; d++)
            p[d] = r[d] + beta * p[d];
        rs = rs_new;
    }
}

static void *als_worker(void *arg)
{
    als_job *j = arg;
    const als_side *s = j->side;
    j->err = FEDREC_OK;
    for (uint32_t r = j->begin; r < j->end; r++) {
        uint64_t lo = s->indptr[r];
        uint32_t n = (uint32_t)(s->indptr[r + 1] - lo);
        float lambda = row_lambda(j->lambda, j->o, n, s->n_other);
        float *x = j->out + (size_t)r * j->k;
        fedrec_err err = FEDREC_OK;
        if (j->o->solver == FEDRECI_ALS_CG)
            cg_solve_row(j->other, j->gram, j->k, lambda, s->indices + lo, s->conf + lo, n,
                         j->o->cg_steps, j->z, j->cg, x);
        else
            err = fedreci_mf_solve_row(j->other, j->gram, j->k, lambda, s->indices + lo,
                                       s->conf + lo, n, j->a, j->z, x);
        if (err) {
            j->err = err;
            break;
        }
    }
    return NULL;
}

/* Splits rows into `t` contiguous blocks of about equal cost (nnz + k per row). */
static void partition(als_side *s, uint32_t t, uint32_t k)
{
    double total = (double)s->indptr[s->n_rows] + (double)s->n_rows * k;
    uint32_t r = 0;
    s->bounds[0] = 0;
    for (uint32_t b = 1; b < t; b++) {
        double target = total * b / t;
        while (r < s->n_rows && (double)s->indptr[r] + (double)r * k < target)
            r++;
        s->bounds[b] = r;
    }
    s->bounds[t] = s->n_rows;
}

/* Solves every row of one side. Worker threads that cannot be started are
 * run on the calling thread: same rows, same results. */
static fedrec_err solve_side(const als_side *s, const float *other, const float *gram, float *out,
                             uint32_t k, float lambda, const fedreci_als_options *o,
                             uint32_t threads, als_job *jobs, pthread_t *tids)
{
    int started[ALS_MAX_THREADS];
    for (uint32_t t = 0; t < threads; t++) {
        als_job *j = &jobs[t];
        j->side = s;
        j->other = other;
        j->gram = gram;
        j->out = out;
        j->k = k;
        j->lambda = lambda;
        j->o = o;
        j->begin = s->bounds[t];
        j->end = s->bounds[t + 1];
        started[t] = threads > 1 && t > 0 && pthread_create(&tids[t], NULL, als_worker, j) == 0;
    }
    for (uint32_t t = 0; t < threads; t++)
        if (!started[t])
            als_worker(&jobs[t]);
    fedrec_err err = FEDREC_OK;
    for (uint32_t t = 0; t < threads; t++) {
        if (started[t])
            pthread_join(tids[t], NULL);
        if (jobs[t].err && !err)
            err = jobs[t].err;
    }
    return err;
}

/* L = sum_u [w x_u^T G_Y x_u + sum_{i in u} (c_ui (1 - r_ui)^2 - w r_ui^2)]
 *     + sum_u lambda_u |x_u|^2 + sum_i lambda_i |y_i|^2, r_ui = x_u^T y_i,
 * w = alpha0, summed in double in row order (lambda_u = lambda when nu = 0).
 * t_indptr gives the items' counts. */
static double objective(const fedreci_mf_csr *r, const uint64_t *t_indptr, const float *x,
                        const float *y, const float *gy, uint32_t k, float lambda,
                        const fedreci_als_options *o)
{
    double total = 0.0, reg = 0.0, w = o->unobserved_weight;
    int scaled = o->reg_exponent != 0.0f;
    for (uint32_t u = 0; u < r->n_rows; u++) {
        const float *xu = x + (size_t)u * k;
        double q = 0.0, ru = 0.0;
        for (uint32_t a = 0; a < k; a++) {
            double row = 0.0;
            for (uint32_t b = 0; b < k; b++)
                row += (double)gy[(size_t)a * k + b] * xu[b];
            q += xu[a] * row;
            ru += (double)xu[a] * xu[a];
        }
        q *= w;
        for (uint64_t j = r->indptr[u]; j < r->indptr[u + 1]; j++) {
            const float *yi = y + (size_t)r->indices[j] * k;
            double ri = 0.0;
            for (uint32_t d = 0; d < k; d++)
                ri += (double)xu[d] * yi[d];
            q += (double)r->conf[j] * (1.0 - ri) * (1.0 - ri) - w * ri * ri;
        }
        total += q;
        if (scaled)
            ru *= pow((double)(r->indptr[u + 1] - r->indptr[u]) + w * r->n_cols, o->reg_exponent);
        reg += ru;
    }
    for (uint32_t i = 0; i < r->n_cols; i++) {
        double ri = 0.0;
        for (uint32_t d = 0; d < k; d++)
            ri += (double)y[(size_t)i * k + d] * y[(size_t)i * k + d];
        if (scaled)
            ri *= pow((double)(t_indptr[i + 1] - t_indptr[i]) + w * r->n_rows, o->reg_exponent);
        reg += ri;
    }
    return total + (double)lambda * reg;
}

static fedrec_err check_input(const fedreci_mf_csr *r, const fedreci_als_params *p, const float *x,
                              const float *y)
{
    if (!r || !p || !x || !y)
        return fedreci_error(FEDREC_ERR_INVALID, "mf: als: NULL argument");
    if (p->k == 0 || p->k > 4096)
        return fedreci_error(FEDREC_ERR_INVALID, "mf: als: k = %u must be in 1..4096", p->k);
    if (p->threads > ALS_MAX_THREADS)
        return fedreci_error(FEDREC_ERR_INVALID, "mf: als: %u threads (at most %u)", p->threads,
                             ALS_MAX_THREADS);
    if (!(p->lambda >= 0.0f) || !isfinite(p->lambda))
        return fedreci_error(FEDREC_ERR_INVALID, "mf: als: lambda %g must be finite and >= 0",
                             (double)p->lambda);
    if (!(p->init_std >= 0.0f) || !isfinite(p->init_std))
        return fedreci_error(FEDREC_ERR_INVALID, "mf: als: init_std %g must be finite and >= 0",
                             (double)p->init_std);
    if (r->n_rows == 0 || r->n_cols == 0 || !r->indptr)
        return fedreci_error(FEDREC_ERR_INVALID, "mf: als: empty matrix %u x %u", r->n_rows,
                             r->n_cols);
    if ((size_t)r->n_rows > SIZE_MAX / sizeof(float) / p->k ||
        (size_t)r->n_cols > SIZE_MAX / sizeof(float) / p->k)
        return fedreci_error(FEDREC_ERR_INVALID, "mf: als: %u x %u with k = %u is too large",
                             r->n_rows, r->n_cols, p->k);
    if (r->indptr[0] != 0)
        return fedreci_error(FEDREC_ERR_INVALID, "mf: als: indptr[0] = %llu, not 0",
                             (unsigned long long)r->indptr[0]);
    for (uint32_t u = 0; u < r->n_rows; u++) {
        if (r->indptr[u + 1] < r->indptr[u] || r->indptr[u + 1] - r->indptr[u] > r->n_cols)
            return fedreci_error(FEDREC_ERR_INVALID, "mf: als: indptr of row %u is not valid", u);
        uint64_t lo = r->indptr[u];
        fedrec_err err =
            fedreci_mf_check_row(r->indices ? r->indices + lo : NULL, r->conf ? r->conf + lo : NULL,
                                 (uint32_t)(r->indptr[u + 1] - lo), r->n_cols, "row", u);
        if (err)
            return err;
    }
    return FEDREC_OK;
}

fedrec_err fedreci_als_train(const fedreci_mf_csr *r, const fedreci_als_params *p, float *x,
                             float *y, double *objective_out)
{
    return fedreci_als_train_opts(r, p, NULL, x, y, objective_out);
}

fedrec_err fedreci_als_train_opts(const fedreci_mf_csr *r, const fedreci_als_params *p,
                                  const fedreci_als_options *opts, float *x, float *y,
                                  double *objective_out)
{
    fedrec_err err = check_input(r, p, x, y);
    if (err)
        return err;
    fedreci_als_options o = {FEDRECI_ALS_CHOLESKY, 0, 0.0f, 0.0f};
    if (opts)
        o = *opts;
    if (o.solver != FEDRECI_ALS_CHOLESKY && o.solver != FEDRECI_ALS_CG)
        return fedreci_error(FEDREC_ERR_INVALID, "mf: als: unknown solver %d", (int)o.solver);
    if (o.cg_steps > 4096)
        return fedreci_error(FEDREC_ERR_INVALID, "mf: als: %u CG steps (at most 4096)", o.cg_steps);
    if (!(o.unobserved_weight >= 0.0f) || !isfinite(o.unobserved_weight))
        return fedreci_error(FEDREC_ERR_INVALID,
                             "mf: als: unobserved weight %g must be finite and >= 0",
                             (double)o.unobserved_weight);
    if (!(o.reg_exponent >= 0.0f && o.reg_exponent <= 2.0f))
        return fedreci_error(FEDREC_ERR_INVALID,
                             "mf: als: regularization exponent %g not in [0, 2]",
                             (double)o.reg_exponent);
    if (o.cg_steps == 0)
        o.cg_steps = 3;
    if (o.unobserved_weight == 0.0f)
        o.unobserved_weight = 1.0f;
    const uint32_t k = p->k, nu = r->n_rows, ni = r->n_cols;
    const uint32_t threads = p->threads ? p->threads : 1;
    const float std = p->init_std > 0.0f ? p->init_std : ALS_DEFAULT_STD;
    const uint64_t nnz = r->indptr[nu];

    /* Transposed matrix (items x users); scanning users in order keeps each
     * item's user indices ascending. */
    uint64_t *t_indptr = calloc((size_t)ni + 1, sizeof *t_indptr);
    uint32_t *t_indices = malloc((size_t)(nnz ? nnz : 1) * sizeof *t_indices);
    float *t_conf = malloc((size_t)(nnz ? nnz : 1) * sizeof *t_conf);
    uint64_t *fill = calloc(ni, sizeof *fill);
    float *xs = malloc((size_t)nu * k * sizeof *xs);
    float *ys = malloc((size_t)ni * k * sizeof *ys);
    float *gram = malloc((size_t)k * k * sizeof *gram);
    uint32_t *bounds = malloc(2 * ((size_t)threads + 1) * sizeof *bounds);
    als_job *jobs = calloc(threads, sizeof *jobs);
    pthread_t *tids = calloc(threads, sizeof *tids);
    double *obj = malloc(((size_t)p->sweeps + 1) * sizeof *obj);
    /* confidences divided by alpha0 for the row solves (see the top) */
    const float w0 = o.unobserved_weight;
    float *u_conf = NULL;
    if (w0 != 1.0f) {
        u_conf = malloc((size_t)(nnz ? nnz : 1) * sizeof *u_conf);
        if (u_conf)
            for (uint64_t j = 0; j < nnz; j++)
                u_conf[j] = r->conf[j] / w0;
    }
    err = FEDREC_ERR_NOMEM;
    if (!t_indptr || !t_indices || !t_conf || !fill || !xs || !ys || !gram || !bounds || !jobs ||
        !tids || !obj || (w0 != 1.0f && !u_conf))
        goto out;
    for (uint64_t j = 0; j < nnz; j++)
        t_indptr[r->indices[j] + 1]++;
    uint32_t max_nnz = 0;
    for (uint32_t i = 0; i < ni; i++) {
        uint64_t c = t_indptr[i + 1];
        if (c > max_nnz)
            max_nnz = (uint32_t)c;
        t_indptr[i + 1] += t_indptr[i];
    }
    for (uint32_t u = 0; u < nu; u++) {
        uint64_t c = r->indptr[u + 1] - r->indptr[u];
        if (c > max_nnz)
            max_nnz = (uint32_t)c;
        for (uint64_t j = r->indptr[u]; j < r->indptr[u + 1]; j++) {
            uint32_t i = r->indices[j];
            uint64_t pos = t_indptr[i] + fill[i]++;
            t_indices[pos] = u;
            t_conf[pos] = w0 != 1.0f ? r->conf[j] / w0 : r->conf[j];
        }
    }
    for (uint32_t t = 0; t < threads; t++) {
        jobs[t].a = malloc((size_t)k * k * sizeof(float));
        jobs[t].z = malloc((size_t)(max_nnz ? max_nnz : 1) * k * sizeof(float));
        jobs[t].cg = malloc(((size_t)max_nnz + 4 * (size_t)k) * sizeof(float));
        if (!jobs[t].a || !jobs[t].z || !jobs[t].cg)
            goto out;
    }

    als_side users = {nu, ni, r->indptr, r->indices, u_conf ? u_conf : r->conf, bounds};
    als_side items = {ni, nu, t_indptr, t_indices, t_conf, bounds + threads + 1};
    partition(&users, threads, k);
    partition(&items, threads, k);

    fedreci_mf_init(ys, ni, k, p->seed, std);
    fedreci_mf_init(xs, nu, k, p->seed ^ 0x5851f42d4c957f2dULL, std);

    /* The row solves are k x k: OpenBLAS's own threads would only add
     * overhead and make results depend on its scheduling. The setting is
     * process-wide, restored on return. */
    int blas_threads = openblas_get_num_threads();
    openblas_set_num_threads(1);
    err = FEDREC_OK;
    for (uint32_t s = 0; s < p->sweeps && !err; s++) {
        fedreci_mf_gram(ys, ni, k, gram);
        err = solve_side(&users, ys, gram, xs, k, p->lambda, &o, threads, jobs, tids);
        if (err)
            break;
        fedreci_mf_gram(xs, nu, k, gram);
        err = solve_side(&items, xs, gram, ys, k, p->lambda, &o, threads, jobs, tids);
        if (err)
            break;
        if (objective_out) {
            fedreci_mf_gram(ys, ni, k, gram);
            obj[s] = objective(r, t_indptr, xs, ys, gram, k, p->lambda, &o);
        }
    }
    openblas_set_num_threads(blas_threads);
    if (!err) {
        memcpy(x, xs, (size_t)nu * k * sizeof *x);
        memcpy(y, ys, (size_t)ni * k * sizeof *y);
        if (objective_out)
            memcpy(objective_out, obj, (size_t)p->sweeps * sizeof *obj);
    }

out:
    if (jobs)
        for (uint32_t t = 0; t < threads; t++) {
            free(jobs[t].a);
            free(jobs[t].z);
            free(jobs[t].cg);
        }
    free(u_conf);
    free(jobs);
    free(tids);
    free(obj);
    free(bounds);
    free(gram);
    free(ys);
    free(xs);
    free(fill);
    free(t_conf);
    free(t_indices);
    free(t_indptr);
    if (err == FEDREC_ERR_NOMEM)
        return fedreci_error(err, "mf: als: out of memory for %u x %u, k = %u", nu, ni, k);
    return err;
}

/*
 * Centralized implicit ALS (Hu, Koren & Volinsky, ICDM 2008): each sweep
 * solves every user row exactly against the Gram matrix of Y (computed once
 * per sweep), then every item row against the Gram matrix of X, each row
 * corrected over its own nonzeros only and solved with LAPACK sposv.
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
    uint32_t begin, end;
    float *a, *z; /* scratch: k x k, max_row_nnz x k */
    fedrec_err err;
} als_job;

static void *als_worker(void *arg)
{
    als_job *j = arg;
    const als_side *s = j->side;
    j->err = FEDREC_OK;
    for (uint32_t r = j->begin; r < j->end; r++) {
        uint64_t lo = s->indptr[r];
        uint32_t n = (uint32_t)(s->indptr[r + 1] - lo);
        fedrec_err err =
            fedreci_mf_solve_row(j->other, j->gram, j->k, j->lambda, s->indices + lo, s->conf + lo,
                                 n, j->a, j->z, j->out + (size_t)r * j->k);
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
                             uint32_t k, float lambda, uint32_t threads, als_job *jobs,
                             pthread_t *tids)
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

/* L = sum_u [x_u^T G_Y x_u + sum_{i in u} (c_ui (1 - r_ui)^2 - r_ui^2)]
 *     + lambda (|X|^2 + |Y|^2), r_ui = x_u^T y_i, summed in double in row order. */
static double objective(const fedreci_mf_csr *r, const float *x, const float *y, const float *gy,
                        uint32_t k, float lambda)
{
    double total = 0.0, reg = 0.0;
    for (uint32_t u = 0; u < r->n_rows; u++) {
        const float *xu = x + (size_t)u * k;
        double q = 0.0;
        for (uint32_t a = 0; a < k; a++) {
            double row = 0.0;
            for (uint32_t b = 0; b < k; b++)
                row += (double)gy[(size_t)a * k + b] * xu[b];
            q += xu[a] * row;
            reg += (double)xu[a] * xu[a];
        }
        for (uint64_t j = r->indptr[u]; j < r->indptr[u + 1]; j++) {
            const float *yi = y + (size_t)r->indices[j] * k;
            double ri = 0.0;
            for (uint32_t d = 0; d < k; d++)
                ri += (double)xu[d] * yi[d];
            q += (double)r->conf[j] * (1.0 - ri) * (1.0 - ri) - ri * ri;
        }
        total += q;
    }
    for (size_t j = 0; j < (size_t)r->n_cols * k; j++)
        reg += (double)y[j] * y[j];
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
    fedrec_err err = check_input(r, p, x, y);
    if (err)
        return err;
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
    err = FEDREC_ERR_NOMEM;
    if (!t_indptr || !t_indices || !t_conf || !fill || !xs || !ys || !gram || !bounds || !jobs ||
        !tids || !obj)
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
            t_conf[pos] = r->conf[j];
        }
    }
    for (uint32_t t = 0; t < threads; t++) {
        jobs[t].a = malloc((size_t)k * k * sizeof(float));
        jobs[t].z = malloc((size_t)(max_nnz ? max_nnz : 1) * k * sizeof(float));
        if (!jobs[t].a || !jobs[t].z)
            goto out;
    }

    als_side users = {nu, r->indptr, r->indices, r->conf, bounds};
    als_side items = {ni, t_indptr, t_indices, t_conf, bounds + threads + 1};
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
        err = solve_side(&users, ys, gram, xs, k, p->lambda, threads, jobs, tids);
        if (err)
            break;
        fedreci_mf_gram(xs, nu, k, gram);
        err = solve_side(&items, xs, gram, ys, k, p->lambda, threads, jobs, tids);
        if (err)
            break;
        if (objective_out) {
            fedreci_mf_gram(ys, ni, k, gram);
            obj[s] = objective(r, xs, ys, gram, k, p->lambda);
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
        }
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

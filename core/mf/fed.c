/*
 * One federated round with the plain sum of the client gradients
 * (Ammad-ud-din et al. 2019 without secure aggregation): the reference that
 * the simulator's SecAgg runs and the tests compare with.
 */
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "core/err.h"
#include "core/mf/mf.h"

fedrec_err fedreci_mf_fed_round(fedreci_mf_step *w, fedreci_optimizer *o, const fedreci_mf_csr *r,
                                const uint32_t *users, uint32_t n_users, uint32_t k, float lambda,
                                float *y, float *grad, float *sum, uint32_t *participants,
                                double *loss)
{
    if (o && fedreci_optimizer_kind(o) == FEDRECI_OPT_ALS)
        return fedreci_error(FEDREC_ERR_INVALID,
                             "mf: fed round: the ALS step needs fedreci_mf_fed_round_xx");
    return fedreci_mf_fed_round_xx(w, o, r, users, n_users, k, lambda, 0.0, y, grad, sum,
                                   participants, loss);
}

fedrec_err fedreci_mf_fed_round_xx(fedreci_mf_step *w, fedreci_optimizer *o,
                                   const fedreci_mf_csr *r, const uint32_t *users, uint32_t n_users,
                                   uint32_t k, float lambda, double xx_bound, float *y, float *grad,
                                   float *sum, uint32_t *participants, double *loss)
{
    if (!w || !o || !r || !r->indptr || !y || !grad || !sum || k == 0)
        return fedreci_error(FEDREC_ERR_INVALID, "mf: fed round: NULL argument");
    const uint32_t n = r->n_cols;
    const size_t nk = (size_t)n * k;
    float gram[4096];
    float *g = gram;
    float *gbuf = NULL;
    if ((size_t)k * k > sizeof gram / sizeof *gram) {
        gbuf = malloc((size_t)k * k * sizeof *gbuf);
        if (!gbuf)
            return FEDREC_ERR_NOMEM;
        g = gbuf;
    }
    const int als = fedreci_optimizer_kind(o) == FEDRECI_OPT_ALS;
    const size_t dim = als ? nk + FEDRECI_MF_XX_DIM(k) : nk;
    if (als && (k > 256 || !(xx_bound > 0.0))) {
        free(gbuf);
        return fedreci_error(FEDREC_ERR_INVALID, "mf: fed round: ALS step with k = %u, bound %g", k,
                             xx_bound);
    }
    fedreci_mf_gram(y, n, k, g);
    memset(sum, 0, dim * sizeof *sum);
    uint32_t count = 0;
    double total = 0.0;
    fedrec_err err = FEDREC_OK;
    uint32_t m = users ? n_users : r->n_rows;
    for (uint32_t j = 0; j < m; j++) {
        uint32_t u = users ? users[j] : j;
        if (u >= r->n_rows) {
            err = fedreci_error(FEDREC_ERR_INVALID, "mf: fed round: user %u of %u rows", u,
                                r->n_rows);
            break;
        }
        uint64_t lo = r->indptr[u];
        fedreci_mf_user cu = {r->indices + lo, r->conf + lo, (uint32_t)(r->indptr[u + 1] - lo)};
        if (!users && cu.n == 0)
            continue;
        float x[4096];
        double l = 0.0;
        err = fedreci_mf_client_step(w, y, g, n, k, lambda, &cu, x, grad, &l);
        if (!err && als)
            err = fedreci_mf_xx_block(x, k, xx_bound, 1.0, grad + nk, NULL);
        if (err)
            break;
        cblas_saxpy((int)dim, 1.0f, grad, 1, sum, 1);
        total += l;
        count++;
    }
    free(gbuf);
    if (err)
        return err;
    err = fedreci_optimizer_step_xx(o, y, sum, als ? sum + nk : NULL, 1.0, (double)count, NULL);
    if (err)
        return err;
    if (participants)
        *participants = count;
    if (loss)
        *loss = total;
    return FEDREC_OK;
}

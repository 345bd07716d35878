/* The bounded DP-ALS contribution and the server's item step (see dpals.h). */
#include "core/dp/dpals.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "core/err.h"
#include "core/mf/linalg.h"

static fedrec_err check(const fedreci_dpals *p)
{
    if (!p || p->n_items == 0 || p->k == 0 || p->k > 256 || !(p->row_bound > 0) ||
        !isfinite(p->row_bound) || !(p->gram_weight > 0) || !isfinite(p->gram_weight))
        return fedreci_error(FEDREC_ERR_INVALID,
                             "dp als: need n_items >= 1, 1 <= k <= 256, finite R > 0 and g > 0 "
                             "(got %u, %u, %g, %g)",
                             p ? p->n_items : 0, p ? p->k : 0, p ? p->row_bound : 0,
                             p ? p->gram_weight : 0);
    return FEDREC_OK;
}

size_t fedreci_dpals_dim(const fedreci_dpals *p)
{
    return (size_t)p->n_items * p->k + (size_t)p->k * (p->k + 1) / 2;
}

double fedreci_dpals_l2_bound(const fedreci_dpals *p)
{
    return sqrt(p->row_bound * p->row_bound + p->gram_weight * p->gram_weight);
}

fedrec_err fedreci_dpals_encode(const fedreci_dpals *p, const float *xu, const fedreci_mf_user *u,
                                float *v)
{
    fedrec_err e = check(p);
    if (e)
        return e;
    uint32_t k = p->k;
    double x[256], n2 = 0;
    for (uint32_t j = 0; j < k; j++) {
        if (!isfinite(xu[j]))
            return fedreci_error(FEDREC_ERR_INVALID, "dp als: x_u[%u] = %g, need finite", j,
                                 (double)xu[j]);
        x[j] = xu[j];
        n2 += x[j] * x[j];
    }
    if (n2 > 1) {
        double f = 1 / sqrt(n2);
        for (uint32_t j = 0; j < k; j++)
            x[j] *= f;
    }
    for (uint32_t a = 0; a < u->n; a++)
        if (u->items[a] >= p->n_items || (a && u->items[a] <= u->items[a - 1]))
            return fedreci_error(FEDREC_ERR_INVALID,
                                 "dp als: item %u at position %u is out of range (n_items %u) "
                                 "or not ascending",
                                 u->items[a], a, p->n_items);
    size_t d = fedreci_dpals_dim(p);
    memset(v, 0, d * sizeof *v);
    double w = u->n ? p->row_bound / sqrt((double)u->n) : 0;
    if (w > 1)
        w = 1;
    /* float rounding of w x could push |v| a hair past c: scale by 1 - 2^-20 */
    w *= 1 - 0x1p-20;
    for (uint32_t a = 0; a < u->n; a++) {
        float *row = v + (size_t)u->items[a] * k;
        for (uint32_t j = 0; j < k; j++)
            row[j] = (float)(w * x[j]);
    }
    float *tri = v + (size_t)p->n_items * k;
    double g = p->gram_weight * (1 - 0x1p-20), r2 = sqrt(2.0);
    size_t t = 0;
    for (uint32_t a = 0; a < k; a++)
        for (uint32_t b = a; b < k; b++)
            tri[t++] = (float)(a == b ? g * x[a] * x[a] : g * r2 * x[a] * x[b]);
    return FEDREC_OK;
}

/* Cyclic Jacobi eigendecomposition of the symmetric k x k matrix a (row-major,
 * destroyed): eigenvalues to ev, eigenvectors to the columns of V. */
static void jacobi(double *a, uint32_t k, double *ev, double *V)
{
    for (uint32_t i = 0; i < k; i++)
        for (uint32_t j = 0; j < k; j++)
            V[i * k + j] = i == j;
    for (int sweep = 0; sweep < 100; sweep++) {
        double off = 0, tot = 0;
        for (uint32_t i = 0; i < k; i++)
            for (uint32_t j = 0; j < k; j++) {
                tot += a[i * k + j] * a[i * k + j];
                if (i != j)
                    off += a[i * k + j] * a[i * k + j];
            }
        if (off <= 1e-28 * tot || off == 0)
            break;
        for (uint32_t p = 0; p < k; p++)
            for (uint32_t q = p + 1; q < k; q++) {
                double apq = a[p * k + q];
                if (apq == 0)
                    continue;
                double theta = (a[q * k + q] - a[p * k + p]) / (2 * apq);
                double t = (theta >= 0 ? 1 : -1) / (fabs(theta) + sqrt(theta * theta + 1));
                double c = 1 / sqrt(t * t + 1), s = t * c;
                for (uint32_t r = 0; r < k; r++) { /* columns p, q */
                    double arp = a[r * k + p], arq = a[r * k + q];
                    a[r * k + p] = c * arp - s * arq;
                    a[r * k + q] = s * arp + c * arq;
                }
                for (uint32_t r = 0; r < k; r++) { /* rows p, q */
                    double apr = a[p * k + r], aqr = a[q * k + r];
                    a[p * k + r] = c * apr - s * aqr;
                    a[q * k + r] = s * apr + c * aqr;
                }
                for (uint32_t r = 0; r < k; r++) {
                    double vrp = V[r * k + p], vrq = V[r * k + q];
                    V[r * k + p] = c * vrp - s * vrq;
                    V[r * k + q] = s * vrp + c * vrq;
                }
            }
    }
    for (uint32_t i = 0; i < k; i++)
        ev[i] = a[i * k + i];
}

double fedreci_dpals_gram_floor(const fedreci_dpals *p, const double *G, double noise_std,
                                double floor_frac)
{
    uint32_t k = p->k;
    double tr = 0;
    for (uint32_t a = 0; a < k; a++)
        tr += G[a * k + a];
    double f = sqrt(2.0 * k) * noise_std / p->gram_weight, t = floor_frac * (tr > 0 ? tr : 0);
    return t > f ? t : f;
}

fedrec_err fedreci_dpals_item_step(const fedreci_dpals *p, const double *sum,
                                   const fedreci_dpals_step *o, float *y, uint32_t *shrunk)
{
    fedrec_err e = check(p);
    if (e)
        return e;
    if (!o)
        return fedreci_error(FEDREC_ERR_INVALID, "dp als: no item step options");
    double lambda = o->lambda, noise_std = o->noise_std;
    if (!(lambda >= 0) || !isfinite(lambda) || !(noise_std >= 0) || !isfinite(noise_std) ||
        !(o->floor_frac >= 0 && o->floor_frac <= 1))
        return fedreci_error(FEDREC_ERR_INVALID,
                             "dp als: lambda = %g and noise_std = %g, need finite >= 0; floor "
                             "fraction %g, need 0..1",
                             lambda, noise_std, o->floor_frac);
    uint32_t k = p->k;
    size_t d = fedreci_dpals_dim(p);
    for (size_t i = 0; i < d; i++)
        if (!isfinite(sum[i]))
            return fedreci_error(FEDREC_ERR_INVALID, "dp als: sum entry %zu is %g", i, sum[i]);
    double *G = calloc((size_t)k * k, sizeof *G), *V = malloc((size_t)k * k * sizeof *V);
    double *M = malloc((size_t)k * k * sizeof *M), *ev = malloc(k * sizeof *ev);
    if (!G || !V || !M || !ev) {
        free(G);
        free(V);
        free(M);
        free(ev);
        return fedreci_error(FEDREC_ERR_NOMEM, "dp als: %u x %u work matrices", k, k);
    }
    const double *tri = sum + (size_t)p->n_items * k;
    double g = p->gram_weight, r2 = sqrt(2.0);
    size_t t = 0;
    for (uint32_t a = 0; a < k; a++)
        for (uint32_t b = a; b < k; b++) {
            double val = a == b ? tri[t] / g : tri[t] / (g * r2);
            G[a * k + b] = G[b * k + a] = val;
            t++;
        }
    double fl = fedreci_dpals_gram_floor(p, G, noise_std, o->floor_frac);
    jacobi(G, k, ev, V);
    /* M = V diag(1 / (max(ev, fl, 0) + lambda)) V^T */
    for (uint32_t j = 0; j < k; j++) {
        double l = (ev[j] > fl ? ev[j] : fl);
        l = (l > 0 ? l : 0) + lambda;
        ev[j] = l > 0 ? 1 / l : 0;
    }
    for (uint32_t a = 0; a < k; a++)
        for (uint32_t b = 0; b < k; b++) {
            double s = 0;
            for (uint32_t j = 0; j < k; j++)
                s += V[a * k + j] * ev[j] * V[b * k + j];
            M[a * k + b] = s;
        }
    uint32_t nz = 0, kf = o->bias_apart && k >= 2 ? k - 1 : k; /* coordinates shrunk together */
    double s2 = o->shrink ? noise_std * noise_std : 0, thr = (double)kf * s2;
    double bs[257];
    for (uint32_t i = 0; i < p->n_items; i++) {
        const double *b = sum + (size_t)i * k;
        double n2 = 0;
        for (uint32_t j = 0; j < kf; j++)
            n2 += b[j] * b[j];
        double f = 1, fb = 1;
        if (thr > 0)
            f = n2 > thr ? 1 - thr / n2 : 0;
        if (kf < k && s2 > 0)
            fb = b[kf] * b[kf] > s2 ? 1 - s2 / (b[kf] * b[kf]) : 0;
        nz += f == 0;
        const double *bb = b; /* shrunk as a whole: y_i = f M b_i */
        if (kf < k) {         /* in two parts: y_i = M (f b_i[0..kf), fb b_i[kf]) */
            for (uint32_t j = 0; j < k; j++)
                bs[j] = (j < kf ? f : fb) * b[j];
            bb = bs;
            f = 1;
        }
        float *yi = y + (size_t)i * k;
        for (uint32_t a = 0; a < k; a++) {
            double s = 0;
            for (uint32_t j = 0; j < k; j++)
                s += M[a * k + j] * bb[j];
            yi[a] = (float)(f * s);
        }
    }
    if (shrunk)
        *shrunk = nz;
    free(G);
    free(V);
    free(M);
    free(ev);
    return FEDREC_OK;
}

fedrec_err fedreci_dpals_client(const fedreci_dpals *p, fedreci_mf_step *w, const float *y,
                                const float *gram, float lambda, const fedreci_mf_user *u, float *v)
{
    if (!p || p->k < 1 || p->k > 256)
        return fedreci_error(FEDREC_ERR_INVALID, "dpals client: k = %u, need 1..256", p ? p->k : 0);
    float xu[256];
    fedrec_err e = fedreci_mf_solve_user(w, y, gram, p->n_items, p->k, lambda, u, xu);
    if (!e)
        e = fedreci_dpals_encode(p, xu, u, v);
    sodium_memzero(xu, sizeof xu);
    return e;
}

fedrec_err fedreci_dpals_solve_biased(const float *y, const float *gram, uint32_t n_items,
                                      uint32_t K, double a, double lambda, const fedreci_mf_user *u,
                                      float *work, float *x)
{
    if (!y || !gram || !u || !work || !x || K < 2 || K > 257 || n_items == 0 || !(a >= 0) ||
        !(a < 1) || !(lambda >= 0) || !isfinite(lambda))
        return fedreci_error(FEDREC_ERR_INVALID,
                             "dp als: biased solve needs 2 <= K <= 257 columns (got %u), items "
                             "(%u), a bias coordinate a in [0, 1) (got %g) and a finite ridge "
                             ">= 0 (got %g)",
                             K, n_items, a, lambda);
    uint32_t k = K - 1;
    for (uint32_t j = 0; j < u->n; j++)
        if (u->items[j] >= n_items || (j && u->items[j] <= u->items[j - 1]) || !(u->conf[j] > 0) ||
            !isfinite(u->conf[j]))
            return fedreci_error(FEDREC_ERR_INVALID,
                                 "dp als: item %u (confidence %g) at position %u: out of range "
                                 "(n_items %u), not ascending or not a finite confidence > 0",
                                 u->items[j], (double)u->conf[j], j, n_items);
    float *A = work;
    for (uint32_t r = 0; r < k; r++) {
        for (uint32_t t = 0; t < k; t++)
            A[(size_t)r * k + t] = gram[(size_t)r * K + t];
        A[(size_t)r * k + r] += (float)lambda;
        x[r] = (float)(-a * gram[(size_t)r * K + k]);
    }
    for (uint32_t j = 0; j < u->n; j++) {
        const float *f = y + (size_t)u->items[j] * K;
        double c = u->conf[j], ab = a * f[k];
        fedreci_la_axpy(k, (float)(c * (1 - ab) + ab), f, x);
        if (c != 1)
            fedreci_la_syr_upper(k, (float)(c - 1), f, A);
    }
    int info = fedreci_la_posv(k, A, x);
    if (info)
        return fedreci_error(FEDREC_ERR_NUMERIC,
                             "dp als: the biased %u x %u system is not positive definite (minor "
                             "%d)",
                             k, k, info);
    return FEDREC_OK;
}

void fedreci_dpals_bias_vector(const float *x, uint32_t K, double a, float *xb)
{
    uint32_t k = K - 1;
    double n2 = 0, r = sqrt(1 - a * a);
    for (uint32_t j = 0; j < k; j++)
        n2 += (double)x[j] * x[j];
    double f = n2 > r * r ? r / sqrt(n2) : 1;
    for (uint32_t j = 0; j < k; j++)
        xb[j] = (float)(x[j] * f);
    xb[k] = (float)a;
}

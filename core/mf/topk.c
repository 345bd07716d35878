/*
 * Top-K scoring by partial selection: a K-sized heap whose root is the worst
 * kept item, O(n_items log K) after the O(n_items k) scoring (sgemv).
 */
#include <math.h>
#include <string.h>

#ifdef FEDREC_HAVE_BLAS
#include <cblas.h>
#else
#include "core/mf/linalg.h"
#endif

#include "core/err.h"
#include "core/mf/mf.h"

/* The ranking order: higher score first, ties to the lower index, NaN last. */
static int worse(const float *s, uint32_t a, uint32_t b)
{
    float sa = s[a], sb = s[b];
    int na = isnan(sa), nb = isnan(sb);
    if (na != nb)
        return na;
    if (!na && sa != sb)
        return sa < sb;
    return a > b;
}

/* Restores the heap property (root = worst) below position i of h[0..n). */
static void sift_down(uint32_t *h, uint32_t n, uint32_t i, const float *s)
{
    for (;;) {
        uint32_t l = 2 * i + 1, w = i;
        if (l < n && worse(s, h[l], h[w]))
            w = l;
        if (l + 1 < n && worse(s, h[l + 1], h[w]))
            w = l + 1;
        if (w == i)
            return;
        uint32_t t = h[i];
        h[i] = h[w];
        h[w] = t;
        i = w;
    }
}

static void sift_up(uint32_t *h, uint32_t i, const float *s)
{
    while (i > 0) {
        uint32_t p = (i - 1) / 2;
        if (!worse(s, h[i], h[p]))
            return;
        uint32_t t = h[i];
        h[i] = h[p];
        h[p] = t;
        i = p;
    }
}

/* The best K of s[0..n_items) not in exclude (sorted) into items_out, best
 * first; returns how many. */
static uint32_t select_top(const float *s, uint32_t n_items, const uint32_t *exclude,
                           size_t n_exclude, uint32_t K, uint32_t *items_out)
{

    uint32_t h = 0;
    size_t p = 0;
    for (uint32_t i = 0; i < n_items && K > 0; i++) {
        while (p < n_exclude && exclude[p] < i)
            p++;
        if (p < n_exclude && exclude[p] == i)
            continue;
        if (h < K) {
            items_out[h] = i;
            sift_up(items_out, h, s);
            h++;
        } else if (worse(s, items_out[0], i)) {
            items_out[0] = i;
            sift_down(items_out, h, 0, s);
        }
    }
    /* Heap sort in place: moving the worst to the back leaves best first. */
    for (uint32_t end = h; end > 1; end--) {
        uint32_t t = items_out[0];
        items_out[0] = items_out[end - 1];
        items_out[end - 1] = t;
        sift_down(items_out, end - 1, 0, s);
    }
    return h;
}

fedrec_err fedreci_topk_scores(const float *scores, uint32_t n_items, const uint32_t *exclude,
                               size_t n_exclude, uint32_t K, uint32_t *items_out, uint32_t *n_out)
{
    if (!scores || !n_out || (K > 0 && !items_out) || (n_exclude > 0 && !exclude))
        return fedreci_error(FEDREC_ERR_INVALID, "mf: topk: NULL argument");
    for (size_t j = 1; j < n_exclude; j++)
        if (exclude[j] < exclude[j - 1])
            return fedreci_error(FEDREC_ERR_INVALID,
                                 "mf: topk: exclude list not sorted (%u after %u at %zu)",
                                 exclude[j], exclude[j - 1], j);
    *n_out = select_top(scores, n_items, exclude, n_exclude, K, items_out);
    return FEDREC_OK;
}

fedrec_err fedreci_mf_topk(const float *y, uint32_t n_items, uint32_t k, const float *x,
                           const uint32_t *exclude, size_t n_exclude, uint32_t K, float *scores_buf,
                           uint32_t *items_out, float *scores_out, uint32_t *n_out)
{
    if (!y || !x || !scores_buf || !n_out || (K > 0 && !items_out) || (n_exclude > 0 && !exclude))
        return fedreci_error(FEDREC_ERR_INVALID, "mf: topk: NULL argument");
    if (n_items == 0 || k == 0)
        return fedreci_error(FEDREC_ERR_INVALID, "mf: topk: empty shape %u x %u", n_items, k);
    for (size_t j = 1; j < n_exclude; j++)
        if (exclude[j] < exclude[j - 1])
            return fedreci_error(FEDREC_ERR_INVALID,
                                 "mf: topk: exclude list not sorted (%u after %u at %zu)",
                                 exclude[j], exclude[j - 1], j);

#ifdef FEDREC_HAVE_BLAS
    cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)n_items, (int)k, 1.0f, y, (int)k, x, 1, 0.0f,
                scores_buf, 1);
#else
    fedreci_la_gemv(n_items, k, y, x, scores_buf);
#endif
    uint32_t h = select_top(scores_buf, n_items, exclude, n_exclude, K, items_out);
    if (scores_out)
        for (uint32_t j = 0; j < h; j++)
            scores_out[j] = scores_buf[items_out[j]];
    *n_out = h;
    return FEDREC_OK;
}

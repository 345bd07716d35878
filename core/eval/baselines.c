/* Item-to-item baselines: EASE and item-kNN; see baselines.h. */
#include "core/eval/baselines.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "core/err.h"

/* LAPACK (Fortran ABI, LP64 as in Debian's OpenBLAS; the trailing argument
 * is gfortran's hidden length of the character argument). */
extern void spotrf_(const char *uplo, const int *n, float *a, const int *lda, int *info,
                    size_t uplo_len);
extern void spotri_(const char *uplo, const int *n, float *a, const int *lda, int *info,
                    size_t uplo_len);

#define MAX_ITEMS 65535u

fedrec_err fedreci_item_cooc(const fedreci_mf_csr *r, float *g)
{
    if (!r || !g || !r->indptr || r->n_cols == 0)
        return fedreci_error(FEDREC_ERR_INVALID, "cooc: NULL argument or no items");
    if (r->n_cols > MAX_ITEMS)
        return fedreci_error(FEDREC_ERR_INVALID, "cooc: %u items (at most %u)", r->n_cols,
                             MAX_ITEMS);
    const size_t n = r->n_cols;
    for (uint64_t j = 0; j < r->indptr[r->n_rows]; j++)
        if (r->indices[j] >= n)
            return fedreci_error(FEDREC_ERR_INVALID, "cooc: item index %u out of range (%zu items)",
                                 r->indices[j], n);
    memset(g, 0, n * n * sizeof *g);
    for (uint32_t u = 0; u < r->n_rows; u++) {
        const uint32_t *it = r->indices + r->indptr[u];
        uint32_t m = (uint32_t)(r->indptr[u + 1] - r->indptr[u]);
        for (uint32_t a = 0; a < m; a++) {
            float *row = g + (size_t)it[a] * n;
            for (uint32_t b = 0; b < m; b++)
                row[it[b]] += 1.0f;
        }
    }
    return FEDREC_OK;
}

fedrec_err fedreci_ease_weights(const float *g, uint32_t n, float lambda, float *b)
{
    if (!g || !b || n == 0 || n > MAX_ITEMS)
        return fedreci_error(FEDREC_ERR_INVALID, "ease: NULL argument or %u items", n);
    if (!(lambda > 0.0f) || !isfinite(lambda))
        return fedreci_error(FEDREC_ERR_INVALID, "ease: lambda %g must be finite and > 0",
                             (double)lambda);
    const size_t nn = n;
    memcpy(b, g, nn * nn * sizeof *b);
    for (size_t i = 0; i < nn; i++)
        b[i * nn + i] += lambda;
    /* The matrix is symmetric, so row- and column-major are the same; 'L'
     * leaves the inverse in the column-major lower triangle, i.e. the
     * row-major upper one (j >= i). */
    int ni = (int)n, info = 0;
    spotrf_("L", &ni, b, &ni, &info, 1);
    if (info == 0)
        spotri_("L", &ni, b, &ni, &info, 1);
    if (info > 0)
        return fedreci_error(FEDREC_ERR_NUMERIC,
                             "ease: G + lambda I is not positive definite (minor %d)", info);
    if (info < 0)
        return fedreci_error(FEDREC_ERR_INTERNAL, "ease: LAPACK argument %d invalid", -info);
    for (size_t i = 0; i < nn; i++)
        for (size_t j = 0; j < i; j++)
            b[i * nn + j] = b[j * nn + i];
    /* B[i][j] = -P[i][j] / P[j][j]: scale column j; the diagonal becomes 0. */
    float *inv = malloc(nn * sizeof *inv);
    if (!inv)
        return fedreci_error(FEDREC_ERR_NOMEM, "ease: out of memory");
    for (size_t j = 0; j < nn; j++)
        inv[j] = -1.0f / b[j * nn + j];
    for (size_t i = 0; i < nn; i++) {
        float *row = b + i * nn;
        for (size_t j = 0; j < nn; j++)
            row[j] *= inv[j];
        row[i] = 0.0f;
    }
    free(inv);
    return FEDREC_OK;
}

typedef struct knn_entry {
    float s;
    uint32_t i;
} knn_entry;

/* Heap order: the root is the weakest kept neighbour (smaller s, then the
 * larger index). */
static int knn_weaker(const knn_entry *a, const knn_entry *b)
{
    if (a->s != b->s)
        return a->s < b->s;
    return a->i > b->i;
}

static void knn_sift_down(knn_entry *h, uint32_t n, uint32_t i)
{
    for (;;) {
        uint32_t l = 2 * i + 1, w = i;
        if (l < n && knn_weaker(&h[l], &h[w]))
            w = l;
        if (l + 1 < n && knn_weaker(&h[l + 1], &h[w]))
            w = l + 1;
        if (w == i)
            return;
        knn_entry t = h[i];
        h[i] = h[w];
        h[w] = t;
        i = w;
    }
}

static void knn_sift_up(knn_entry *h, uint32_t i)
{
    while (i > 0) {
        uint32_t p = (i - 1) / 2;
        if (!knn_weaker(&h[i], &h[p]))
            return;
        knn_entry t = h[i];
        h[i] = h[p];
        h[p] = t;
        i = p;
    }
}

fedrec_err fedreci_itemknn_weights(const float *g, uint32_t n, uint32_t neighbours, float shrink,
                                   float *w)
{
    if (!g || !w || n == 0 || n > MAX_ITEMS || neighbours == 0)
        return fedreci_error(FEDREC_ERR_INVALID,
                             "itemknn: NULL argument, %u items or %u neighbours", n, neighbours);
    if (!(shrink >= 0.0f) || !isfinite(shrink))
        return fedreci_error(FEDREC_ERR_INVALID, "itemknn: shrink %g must be finite and >= 0",
                             (double)shrink);
    const size_t nn = n;
    uint32_t keep = neighbours < n - 1 ? neighbours : n - 1;
    float *norm = malloc(nn * sizeof *norm);
    knn_entry *heap = malloc(((size_t)keep + 1) * sizeof *heap);
    if (!norm || !heap) {
        free(norm);
        free(heap);
        return fedreci_error(FEDREC_ERR_NOMEM, "itemknn: out of memory");
    }
    for (size_t i = 0; i < nn; i++)
        norm[i] = sqrtf(g[i * nn + i]);
    memset(w, 0, nn * nn * sizeof *w);
    /* G is symmetric: column j of S is row j of G scaled, so scan rows. */
    for (size_t j = 0; j < nn; j++) {
        const float *gj = g + j * nn;
        uint32_t h = 0;
        for (uint32_t i = 0; i < n && keep > 0; i++) {
            if (i == j || gj[i] == 0.0f || norm[i] == 0.0f || norm[j] == 0.0f)
                continue;
            knn_entry e = {gj[i] / (norm[i] * norm[j] + shrink), i};
            if (h < keep) {
                heap[h] = e;
                knn_sift_up(heap, h++);
            } else if (knn_weaker(&heap[0], &e)) {
                heap[0] = e;
                knn_sift_down(heap, h, 0);
            }
        }
        for (uint32_t t = 0; t < h; t++)
            w[(size_t)heap[t].i * nn + j] = heap[t].s;
    }
    free(norm);
    free(heap);
    return FEDREC_OK;
}

void fedreci_item_item_scores(const float *w, uint32_t n_items, const uint32_t *items,
                              uint32_t n_bought, float *scores)
{
    memset(scores, 0, (size_t)n_items * sizeof *scores);
    for (uint32_t t = 0; t < n_bought; t++)
        cblas_saxpy((int)n_items, 1.0f, w + (size_t)items[t] * n_items, 1, scores, 1);
}

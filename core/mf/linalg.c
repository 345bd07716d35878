/* Portable kernels of the client step; see linalg.h. */
#include "core/mf/linalg.h"

#include <math.h>
#include <string.h>

void fedreci_la_axpy(size_t n, float a, const float *restrict x, float *restrict y)
{
    for (size_t i = 0; i < n; i++)
        y[i] += a * x[i];
}

/* Sums the lanes pairwise: a fixed, short order. */
static float lanes_sum(float *acc)
{
    for (size_t w = FEDRECI_LA_LANES / 2; w > 0; w /= 2)
        for (size_t l = 0; l < w; l++)
            acc[l] += acc[l + w];
    return acc[0];
}

float fedreci_la_dot(size_t n, const float *restrict x, const float *restrict y)
{
    float acc[FEDRECI_LA_LANES] = {0};
    size_t i = 0;
    for (; i + FEDRECI_LA_LANES <= n; i += FEDRECI_LA_LANES)
        for (size_t l = 0; l < FEDRECI_LA_LANES; l++)
            acc[l] += x[i + l] * y[i + l];
    for (size_t l = 0; i < n; i++, l++)
        acc[l] += x[i] * y[i];
    return lanes_sum(acc);
}

void fedreci_la_syr_upper(uint32_t k, float alpha, const float *restrict x, float *restrict a)
{
    for (uint32_t i = 0; i < k; i++) {
        float s = alpha * x[i];
        float *row = a + (size_t)i * k;
        for (uint32_t j = i; j < k; j++)
            row[j] += s * x[j];
    }
}

void fedreci_la_syrk_upper(uint32_t k, size_t m, const float *restrict z, float beta,
                           float *restrict a)
{
    if (beta == 0.0f)
        for (uint32_t i = 0; i < k; i++)
            memset(a + (size_t)i * k + i, 0, (size_t)(k - i) * sizeof *a);
    /* Eight rows of Z per pass over A: an eighth of the traffic on A, and
     * the inner loop is still a contiguous, vectorizable update. */
    size_t r = 0;
    for (; r + 8 <= m; r += 8) {
        const float *z0 = z + r * k, *z1 = z0 + k, *z2 = z1 + k, *z3 = z2 + k;
        const float *z4 = z3 + k, *z5 = z4 + k, *z6 = z5 + k, *z7 = z6 + k;
        for (uint32_t i = 0; i < k; i++) {
            float s0 = z0[i], s1 = z1[i], s2 = z2[i], s3 = z3[i];
            float s4 = z4[i], s5 = z5[i], s6 = z6[i], s7 = z7[i];
            float *row = a + (size_t)i * k;
            for (uint32_t j = i; j < k; j++)
                row[j] += (s0 * z0[j] + s1 * z1[j] + s2 * z2[j] + s3 * z3[j]) +
                          (s4 * z4[j] + s5 * z5[j] + s6 * z6[j] + s7 * z7[j]);
        }
    }
    for (; r + 4 <= m; r += 4) {
        const float *z0 = z + r * k, *z1 = z0 + k, *z2 = z1 + k, *z3 = z2 + k;
        for (uint32_t i = 0; i < k; i++) {
            float s0 = z0[i], s1 = z1[i], s2 = z2[i], s3 = z3[i];
            float *row = a + (size_t)i * k;
            for (uint32_t j = i; j < k; j++)
                row[j] += s0 * z0[j] + s1 * z1[j] + s2 * z2[j] + s3 * z3[j];
        }
    }
    for (; r < m; r++)
        fedreci_la_syr_upper(k, 1.0f, z + r * k, a);
}

void fedreci_la_gemv(size_t m, uint32_t k, const float *restrict y, const float *restrict x,
                     float *restrict r)
{
    for (size_t i = 0; i < m; i++)
        r[i] = fedreci_la_dot(k, y + i * k, x);
}

void fedreci_la_ger(size_t m, uint32_t k, float alpha, const float *restrict e,
                    const float *restrict x, float beta, float *restrict g)
{
    for (size_t i = 0; i < m; i++) {
        float s = alpha * e[i];
        float *row = g + i * k;
        if (beta == 0.0f)
            for (uint32_t d = 0; d < k; d++)
                row[d] = s * x[d];
        else
            for (uint32_t d = 0; d < k; d++)
                row[d] += s * x[d];
    }
}

int fedreci_la_posv(uint32_t k, float *restrict a, float *restrict b)
{
    /* Right-looking Cholesky on the upper triangle: row i of U is row i of
     * the updated A divided by the pivot's square root; the rank-1 update of
     * the trailing block then runs along contiguous rows. */
    for (uint32_t i = 0; i < k; i++) {
        float *ri = a + (size_t)i * k;
        float p = ri[i];
        if (!(p > 0.0f) || !isfinite(p))
            return (int)i + 1;
        float u = sqrtf(p), inv = 1.0f / u;
        ri[i] = u;
        for (uint32_t j = i + 1; j < k; j++)
            ri[j] *= inv;
        for (uint32_t r = i + 1; r < k; r++) {
            float s = ri[r];
            float *rr = a + (size_t)r * k;
            for (uint32_t j = r; j < k; j++)
                rr[j] -= s * ri[j];
        }
    }
    /* U^T w = b (forward, column-oriented so it reads rows of U). */
    for (uint32_t i = 0; i < k; i++) {
        const float *ri = a + (size_t)i * k;
        float w = b[i] / ri[i];
        b[i] = w;
        for (uint32_t j = i + 1; j < k; j++)
            b[j] -= w * ri[j];
    }
    /* U x = w (backward, a dot product along each row of U). */
    for (uint32_t i = k; i-- > 0;) {
        const float *ri = a + (size_t)i * k;
        float s = fedreci_la_dot(k - 1 - i, ri + i + 1, b + i + 1);
        b[i] = (b[i] - s) / ri[i];
    }
    return 0;
}

/*
 * core/mf/linalg_kernels.h: the bodies of the portable kernels (linalg.h),
 * written once over a native SIMD vector of LA_W floats (the GCC/Clang
 * vector extension) and included by linalg.c once per instruction set it
 * builds: on x86-64 the baseline (SSE2, LA_W 4) and AVX2 + FMA (LA_W 8,
 * functions marked with LA_TARGET), picked per call from what the CPU has;
 * elsewhere once (ARM64: NEON, LA_W 4). Without the vector extension
 * (LA_W 1) the same loops run on scalars.
 *
 * The includer defines LA_W (1, 4 or 8), LA_TARGET (a function attribute
 * or nothing) and LA_NAME(f) (the suffixed name of kernel f). Not a public
 * header; no include guard on purpose.
 *
 * Every dot product sums 8 lanes (FEDRECI_LA_LANES) in the same order
 * whatever LA_W is, so the two x86-64 builds differ only by FMA rounding.
 */

#if LA_W > 1
typedef float LA_NAME(vf) __attribute__((vector_size(LA_W * sizeof(float))));
typedef float LA_NAME(vf4) __attribute__((vector_size(4 * sizeof(float))));
#define LA_VF LA_NAME(vf)
#else
#define LA_VF float
#endif
/* Native vectors per 8-lane group. */
#define LA_L (8 / LA_W)

LA_TARGET static inline LA_VF LA_NAME(ld)(const float *p)
{
    LA_VF v;
    memcpy(&v, p, sizeof v);
    return v;
}

LA_TARGET static inline void LA_NAME(st)(float *p, LA_VF v)
{
    memcpy(p, &v, sizeof v);
}

LA_TARGET static inline LA_VF LA_NAME(splat)(float s)
{
    LA_VF v;
    float t[LA_W];
    for (int l = 0; l < LA_W; l++)
        t[l] = s;
    memcpy(&v, t, sizeof v);
    return v;
}

/* The sum of 8 lanes held in v[0..LA_L), in lanes_sum's order (lanes
 * l and l + 4, then l and l + 2, then 0 and 1), kept in registers: storing
 * the vector and reading it back lane by lane stalls on store forwarding. */
LA_TARGET static inline float LA_NAME(hsum)(const LA_VF *v)
{
#if LA_W == 8
    LA_NAME(vf4) lo, hi;
    memcpy(&lo, &v[0], sizeof lo);
    memcpy(&hi, (const char *)&v[0] + sizeof lo, sizeof hi);
    LA_NAME(vf4) q = lo + hi;
    return (q[0] + q[2]) + (q[1] + q[3]);
#elif LA_W == 4
    LA_NAME(vf4) q = v[0] + v[1];
    return (q[0] + q[2]) + (q[1] + q[3]);
#else
    float acc[8];
    memcpy(acc, v, sizeof acc);
    return lanes_sum(acc);
#endif
}

LA_TARGET static void LA_NAME(axpy)(size_t n, float a, const float *restrict x, float *restrict y)
{
    for (size_t i = 0; i < n; i++)
        y[i] += a * x[i];
}

/* The dot product of x and y in 8 lanes (lane l sums the indices equal to
 * l mod 8), summed as lanes_sum does. */
LA_TARGET static inline float LA_NAME(dot)(size_t n, const float *restrict x,
                                           const float *restrict y)
{
    LA_VF v[LA_L];
    for (int l = 0; l < LA_L; l++)
        v[l] = LA_NAME(splat)(0.0f);
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int l = 0; l < LA_L; l++)
            v[l] += LA_NAME(ld)(x + i + l * LA_W) * LA_NAME(ld)(y + i + l * LA_W);
    if (i == n)
        return LA_NAME(hsum)(v);
    float acc[8];
    for (int l = 0; l < LA_L; l++)
        LA_NAME(st)(acc + l * LA_W, v[l]);
    for (size_t l = 0; i < n; i++, l++)
        acc[l] += x[i] * y[i];
    return lanes_sum(acc);
}

LA_TARGET static void LA_NAME(syr_upper)(uint32_t k, float alpha, const float *restrict x,
                                         float *restrict a)
{
    for (uint32_t i = 0; i < k; i++) {
        float s = alpha * x[i];
        float *row = a + (size_t)i * k;
        for (uint32_t j = i; j < k; j++)
            row[j] += s * x[j];
    }
}

/* The upper triangle of A (n x n, row stride lda) += sign Z^T Z, Z being
 * m x n with row stride ldz; sign is 1 or -1. Blocks of 4 rows x 8 columns
 * of A accumulate in registers over all m rows of Z and are added to A
 * once; the blocks on the diagonal write only their upper part; the ragged
 * right and bottom edges run entry by entry (a dot product down a pair of
 * columns of Z). */
LA_TARGET static void LA_NAME(rank_update)(uint32_t n, size_t m, const float *restrict z,
                                           size_t ldz, float sign, float *restrict a, size_t lda)
{
    uint32_t i = 0;
    for (; i + 4 <= n; i += 4) {
        uint32_t j = i;
        for (; j + 8 <= n; j += 8) {
            LA_VF acc[4][LA_L];
            for (int ii = 0; ii < 4; ii++)
                for (int l = 0; l < LA_L; l++)
                    acc[ii][l] = LA_NAME(splat)(0.0f);
            for (size_t r = 0; r < m; r++) {
                const float *zr = z + r * ldz;
                LA_VF zj[LA_L];
                for (int l = 0; l < LA_L; l++)
                    zj[l] = LA_NAME(ld)(zr + j + l * LA_W);
                for (int ii = 0; ii < 4; ii++) {
                    LA_VF s = LA_NAME(splat)(zr[i + ii]);
                    for (int l = 0; l < LA_L; l++)
                        acc[ii][l] += s * zj[l];
                }
            }
            for (uint32_t ii = 0; ii < 4; ii++) {
                float *row = a + (size_t)(i + ii) * lda + j;
                if (j == i) { /* the diagonal block: its upper part only */
                    float t[8];
                    for (int l = 0; l < LA_L; l++)
                        LA_NAME(st)(t + l * LA_W, acc[ii][l]);
                    for (uint32_t jj = ii; jj < 8; jj++)
                        row[jj] += sign * t[jj];
                } else {
                    LA_VF sv = LA_NAME(splat)(sign);
                    for (int l = 0; l < LA_L; l++)
                        LA_NAME(st)(row + l * LA_W, LA_NAME(ld)(row + l * LA_W) + sv * acc[ii][l]);
                }
            }
        }
        /* The last n - j < 8 columns of these rows (upper part only). */
        for (uint32_t ii = 0; ii < 4; ii++)
            for (uint32_t jj = j > i + ii ? j : i + ii; jj < n; jj++) {
                float s = 0.0f;
                for (size_t r = 0; r < m; r++)
                    s += z[r * ldz + i + ii] * z[r * ldz + jj];
                a[(size_t)(i + ii) * lda + jj] += sign * s;
            }
    }
    /* The last n - i < 4 rows. */
    for (; i < n; i++)
        for (uint32_t jj = i; jj < n; jj++) {
            float s = 0.0f;
            for (size_t r = 0; r < m; r++)
                s += z[r * ldz + i] * z[r * ldz + jj];
            a[(size_t)i * lda + jj] += sign * s;
        }
}

LA_TARGET static void LA_NAME(syrk_upper)(uint32_t k, size_t m, const float *restrict z, float beta,
                                          float *restrict a)
{
    if (beta == 0.0f)
        for (uint32_t i = 0; i < k; i++)
            memset(a + (size_t)i * k + i, 0, (size_t)(k - i) * sizeof *a);
    LA_NAME(rank_update)(k, m, z, k, 1.0f, a, k);
}

/* The dot product of row y (k floats) and x, adding the products after the
 * last full 8-lane group to v's lanes first (gemv's rows with k % 8 != 0). */
LA_TARGET static inline float LA_NAME(finish_row)(const LA_VF *v, uint32_t d, uint32_t k,
                                                  const float *restrict y, const float *restrict x)
{
    if (d == k)
        return LA_NAME(hsum)(v);
    float acc[8];
    for (int l = 0; l < LA_L; l++)
        LA_NAME(st)(acc + l * LA_W, v[l]);
    for (uint32_t l = 0; d < k; d++, l++)
        acc[l] += y[d] * x[d];
    return lanes_sum(acc);
}

/* Four rows per pass share the loads of x; each row keeps 8 lanes, summed
 * as LA_NAME(dot) sums them. The four rows are four named variables (an
 * array indexed by row would live in memory). */
LA_TARGET static void LA_NAME(gemv)(size_t m, uint32_t k, const float *restrict y,
                                    const float *restrict x, float *restrict r)
{
    size_t i = 0;
    for (; i + 4 <= m; i += 4) {
        const float *y0 = y + i * k, *y1 = y0 + k, *y2 = y1 + k, *y3 = y2 + k;
        LA_VF v0[LA_L], v1[LA_L], v2[LA_L], v3[LA_L];
        for (int l = 0; l < LA_L; l++)
            v0[l] = v1[l] = v2[l] = v3[l] = LA_NAME(splat)(0.0f);
        uint32_t d = 0;
        for (; d + 8 <= k; d += 8)
            for (int l = 0; l < LA_L; l++) {
                LA_VF xv = LA_NAME(ld)(x + d + l * LA_W);
                v0[l] += LA_NAME(ld)(y0 + d + l * LA_W) * xv;
                v1[l] += LA_NAME(ld)(y1 + d + l * LA_W) * xv;
                v2[l] += LA_NAME(ld)(y2 + d + l * LA_W) * xv;
                v3[l] += LA_NAME(ld)(y3 + d + l * LA_W) * xv;
            }
        r[i] = LA_NAME(finish_row)(v0, d, k, y0, x);
        r[i + 1] = LA_NAME(finish_row)(v1, d, k, y1, x);
        r[i + 2] = LA_NAME(finish_row)(v2, d, k, y2, x);
        r[i + 3] = LA_NAME(finish_row)(v3, d, k, y3, x);
    }
    for (; i < m; i++)
        r[i] = LA_NAME(dot)(k, y + i * k, x);
}

LA_TARGET static void LA_NAME(ger)(size_t m, uint32_t k, float alpha, const float *restrict e,
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

/* Blocked right-looking Cholesky on the upper triangle, A = U^T U, 8 rows
 * (a panel) at a time: within the panel, row i of U is row i of the updated
 * A divided by the pivot's square root, followed by a rank-1 update of the
 * panel's later rows (contiguous rows); then the trailing block takes the
 * panel's rank-8 update through the register blocks of rank_update. The
 * pivots are met in order, so the failing minor is the one the unblocked
 * algorithm reports. */
LA_TARGET static int LA_NAME(posv)(uint32_t k, float *restrict a, float *restrict b)
{
    for (uint32_t p = 0; p < k; p += 8) {
        uint32_t pe = p + 8 < k ? p + 8 : k;
        for (uint32_t i = p; i < pe; i++) {
            float *ri = a + (size_t)i * k;
            float piv = ri[i];
            if (!(piv > 0.0f) || !isfinite(piv))
                return (int)i + 1;
            float u = sqrtf(piv), inv = 1.0f / u;
            ri[i] = u;
            for (uint32_t j = i + 1; j < k; j++)
                ri[j] *= inv;
            for (uint32_t r = i + 1; r < pe; r++) {
                float s = ri[r];
                float *rr = a + (size_t)r * k;
                for (uint32_t j = r; j < k; j++)
                    rr[j] -= s * ri[j];
            }
        }
        if (pe < k)
            LA_NAME(rank_update)
        (k - pe, pe - p, a + (size_t)p * k + pe, k, -1.0f, a + (size_t)pe * k + pe, k);
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
        float s = LA_NAME(dot)(k - 1 - i, ri + i + 1, b + i + 1);
        b[i] = (b[i] - s) / ri[i];
    }
    return 0;
}

#undef LA_VF
#undef LA_L

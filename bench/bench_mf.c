/*
 * fedrec-bench mf: centralized ALS seconds per sweep (k = 32, 64; exact and
 * conjugate-gradient solvers, with their ratio and HR@10 over seeds), the client
 * step over the full catalog (k = 32, with and without the published Y^T Y),
 * and the GFLOP/s each achieves next to a plain sgemm measured in the same run.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>

#include "core/dataset/dataset.h"
#include "core/eval/eval.h"
#include "core/mf/mf.h"
#include "fedrec/fedrec.h"
#include "bench_args.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static uint64_t bench_rng = 0x243f6a8885a308d3ULL;

static double urand(void)
{
    bench_rng ^= bench_rng << 13;
    bench_rng ^= bench_rng >> 7;
    bench_rng ^= bench_rng << 17;
    return (double)(bench_rng >> 11) * 0x1p-53;
}

/* An owned CSR matrix. */
typedef struct bench_csr {
    fedreci_mf_csr m;
    uint64_t *indptr;
    uint32_t *indices;
    float *conf;
} bench_csr;

static void bench_csr_free(bench_csr *b)
{
    free(b->indptr);
    free(b->indices);
    free(b->conf);
}

/* Synthetic log shaped like the bundled one after cleaning (4,338 shoppers,
 * 3,665 items, ~61 distinct items per shopper, skewed item popularity). */
static int synthetic_csr(bench_csr *b, uint32_t users, uint32_t items, double mean_items)
{
    uint64_t cap = (uint64_t)(users * mean_items * 3) + items;
    b->indptr = malloc(((size_t)users + 1) * sizeof *b->indptr);
    b->indices = malloc(cap * sizeof *b->indices);
    b->conf = malloc(cap * sizeof *b->conf);
    unsigned char *mark = calloc(items, 1);
    if (!b->indptr || !b->indices || !b->conf || !mark) {
        free(mark);
        bench_csr_free(b);
        return -1;
    }
    b->indptr[0] = 0;
    uint64_t nnz = 0;
    for (uint32_t u = 0; u < users; u++) {
        uint32_t n = (uint32_t)(-log(1.0 - urand()) * mean_items) + 1;
        if (n > items / 2)
            n = items / 2;
        if (nnz + n > cap)
            n = (uint32_t)(cap - nnz);
        uint32_t got = 0;
        while (got < n) {
            uint32_t i = (uint32_t)(pow(urand(), 2.0) * items); /* skewed to low ids */
            if (!mark[i]) {
                mark[i] = 1;
                got++;
            }
        }
        for (uint32_t i = 0; i < items; i++)
            if (mark[i]) {
                mark[i] = 0;
                b->indices[nnz] = i;
                b->conf[nnz] = 1.0f + logf(1.0f + (float)(1 + (int)(urand() * 24)));
                nnz++;
            }
        b->indptr[u + 1] = nnz;
    }
    free(mark);
    b->m = (fedreci_mf_csr){users, items, b->indptr, b->indices, b->conf};
    return 0;
}

/* Floating-point operations of one ALS sweep as implemented: per row a
 * rank-n_r ssyrk (n_r k (k+1)), the right-hand side (2 n_r k), the Cholesky
 * solve (k^3/3 + 2 k^2); per half-sweep one Gram matrix (n k (k+1)). */
static double als_sweep_flops(const fedreci_mf_csr *r, uint32_t k)
{
    double kk = k, nnz = (double)r->indptr[r->n_rows];
    double rows = (double)r->n_rows + r->n_cols;
    return 2 * nnz * (kk * (kk + 1) + 2 * kk) + rows * (kk * kk * kk / 3 + 2 * kk * kk) +
           rows * kk * (kk + 1);
}

/* Floating-point operations of one CG sweep with `steps` iterations per row:
 * per row 1 + steps products with the system matrix (2 k^2 + 4 n_r k each)
 * and the right-hand side (2 n_r k); per half-sweep one Gram matrix. */
static double als_cg_sweep_flops(const fedreci_mf_csr *r, uint32_t k, uint32_t steps)
{
    double kk = k, nnz = (double)r->indptr[r->n_rows];
    double rows = (double)r->n_rows + r->n_cols;
    return (1.0 + steps) * (rows * 2 * kk * kk + 2 * nnz * 4 * kk) + 2 * nnz * 2 * kk +
           rows * kk * (kk + 1);
}

/* HR@10 of a trained ALS model on split s (x: n_users x k, y: n_items x k). */
static int als_hr10(const fedreci_split *s, const float *x, const float *y, uint32_t k, double *hr)
{
    uint32_t n_items = s->train.n_cols, top[10], n;
    float *scores = malloc((size_t)n_items * sizeof *scores);
    fedreci_eval_acc *acc = NULL;
    fedrec_err e = scores ? fedreci_eval_acc_create(&acc, n_items, 10) : FEDREC_ERR_NOMEM;
    for (uint32_t t = 0; t < s->n_test_users && !e; t++) {
        uint32_t u = s->test_users[t], n_test;
        uint64_t lo = s->train.indptr[u], hi = s->train.indptr[u + 1];
        e = fedreci_mf_topk(y, n_items, k, x + (size_t)u * k, s->train.indices + lo,
                            (size_t)(hi - lo), 10, scores, top, NULL, &n);
        const uint32_t *test = fedreci_split_test(s, t, &n_test);
        if (!e)
            e = fedreci_eval_acc_add(acc, top, n, test, n_test);
    }
    fedreci_metrics m;
    if (!e)
        e = fedreci_eval_acc_finish(acc, &m);
    if (!e)
        *hr = m.hr_at_k;
    fedreci_eval_acc_destroy(acc);
    free(scores);
    return e ? -1 : 0;
}

/* HR@10 on the leave-last-basket-out test split of exact and CG ALS
 * (15 sweeps, lambda 0.1), seeds 1..n_seeds, with the seed range. */
static int als_quality(const fedreci_dataset *ds, uint32_t n_seeds, uint32_t threads)
{
    fedreci_split *s = NULL;
    if (fedreci_split_create(&s, ds, NULL) != FEDREC_OK) {
        fprintf(stderr, "fedrec-bench mf: split: %s\n", fedrec_errmsg());
        return 1;
    }
    printf("\nHR@10, leave-last-basket-out test split (%u shoppers), 15 sweeps, lambda 0.1,\n"
           "seeds 1..%u: mean [min, max] over seeds\n",
           s->n_test_users, n_seeds);
    printf("%-10s %-24s %-24s\n", "factors", "exact", "CG (3 steps)");
    int rc = 0;
    static const uint32_t ks[2] = {32, 64};
    for (int ki = 0; ki < 2 && !rc; ki++) {
        uint32_t k = ks[ki];
        float *x = malloc((size_t)s->train.n_rows * k * sizeof *x);
        float *y = malloc((size_t)s->train.n_cols * k * sizeof *y);
        double stat[2][3] = {{0, 1, 0}, {0, 1, 0}}; /* mean, min, max */
        for (int solver = 0; solver < 2 && x && y && !rc; solver++)
            for (uint32_t seed = 1; seed <= n_seeds && !rc; seed++) {
                fedreci_als_params p = {k, 0.1f, 15, threads, seed, 0.01f};
                fedreci_als_options o = {solver ? FEDRECI_ALS_CG : FEDRECI_ALS_CHOLESKY, 0, 0.0f,
                                         0.0f};
                double hr = 0;
                if (fedreci_als_train_opts(&s->train, &p, &o, x, y, NULL) != FEDREC_OK ||
                    als_hr10(s, x, y, k, &hr)) {
                    fprintf(stderr, "fedrec-bench mf: quality: %s\n", fedrec_errmsg());
                    rc = 1;
                    break;
                }
                stat[solver][0] += hr / n_seeds;
                stat[solver][1] = fmin(stat[solver][1], hr);
                stat[solver][2] = fmax(stat[solver][2], hr);
            }
        if (!x || !y)
            rc = 1;
        if (!rc) {
            char c[2][64];
            for (int v = 0; v < 2; v++)
                snprintf(c[v], sizeof c[v], "%.4f [%.4f, %.4f]", stat[v][0], stat[v][1],
                         stat[v][2]);
            printf("%-10u %-24s %-24s\n", k, c[0], c[1]);
        }
        free(x);
        free(y);
    }
    fedreci_split_destroy(s);
    return rc;
}

/* Best-of GFLOP/s of a square single-precision sgemm of order n. */
static double sgemm_gflops(int n, int reps)
{
    float *a = malloc((size_t)n * n * sizeof *a), *b = malloc((size_t)n * n * sizeof *b);
    float *c = malloc((size_t)n * n * sizeof *c);
    if (!a || !b || !c) {
        free(a);
        free(b);
        free(c);
        return 0;
    }
    for (size_t i = 0; i < (size_t)n * n; i++) {
        a[i] = (float)urand();
        b[i] = (float)urand();
    }
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c,
                    n);
        double t = now() - t0;
        if (t < best)
            best = t;
    }
    free(a);
    free(b);
    free(c);
    return 2.0 * n * n * (double)n / best * 1e-9;
}

#define BENCH_DEFAULT_DATA "data/online-retail/online_retail.csv.gz"

static void usage(FILE *f)
{
    fprintf(f, "usage: fedrec-bench mf [--data FILE | --synthetic] [--sweeps N] [--threads N] "
               "[--reps N]\n"
               "  --data FILE  purchase log (CSV or .csv.gz, UCI Online Retail layout; default\n"
               "               " BENCH_DEFAULT_DATA ", the full log)\n"
               "  --synthetic  a synthetic log shaped like the full one after cleaning\n"
               "  --sweeps N   ALS sweeps timed per configuration (default 5)\n"
               "  --threads N  ALS worker threads for the second ALS row (default 2)\n"
               "  --reps N     client steps timed per configuration (default 200)\n"
               "  --quality-seeds N  seeds of the HR@10 check of exact vs CG ALS on the\n"
               "               last-basket split (default 3; 0 skips it; not with --synthetic)\n"
               "Confidence 1 + log(1 + q) (alpha = 1), lambda = 0.1.\n");
}

int fedrec_bench_mf(int argc, char **argv)
{
    uint32_t sweeps = 5, threads = 2, reps = 200, quality_seeds = 3;
    const char *path = BENCH_DEFAULT_DATA;
    int synthetic = 0;
    enum { O_DATA = 0x100, O_SYNTHETIC, O_SWEEPS, O_THREADS, O_QUALITY_SEEDS, O_REPS };
    static const struct option longopts[] = {
        {"data", required_argument, NULL, O_DATA},
        {"synthetic", no_argument, NULL, O_SYNTHETIC},
        {"sweeps", required_argument, NULL, O_SWEEPS},
        {"threads", required_argument, NULL, O_THREADS},
        {"quality-seeds", required_argument, NULL, O_QUALITY_SEEDS},
        {"reps", required_argument, NULL, O_REPS},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    fedreci_opt_reset();
    int opt;
    while ((opt = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        fedrec_err e = FEDREC_OK;
        switch (opt) {
        case 'h':
            usage(stdout);
            return 0;
        case O_DATA:
            path = optarg;
            break;
        case O_SYNTHETIC:
            synthetic = 1;
            break;
        case O_SWEEPS:
            e = fedreci_opt_u32("--sweeps", optarg, 1, 1000, &sweeps);
            break;
        case O_THREADS:
            e = fedreci_opt_u32("--threads", optarg, 1, 1024, &threads);
            break;
        case O_QUALITY_SEEDS: /* 0: skip the check */
            e = fedreci_opt_u32("--quality-seeds", optarg, 0, 1000, &quality_seeds);
            break;
        case O_REPS:
            e = fedreci_opt_u32("--reps", optarg, 1, 1000000, &reps);
            break;
        default:
            usage(stderr);
            return bench_getopt_error("mf", opt, argc, argv, longopts);
        }
        if (e) {
            usage(stderr);
            return bench_usage_error("mf");
        }
    }
    if (optind < argc) {
        usage(stderr);
        return bench_getopt_error("mf", -1, argc, argv, longopts);
    }

    bench_csr data = {0};
    fedreci_dataset *ds = NULL;
    const fedreci_mf_csr *r = &data.m;
    const char *source = "synthetic";
    if (synthetic) {
        if (synthetic_csr(&data, 4338, 3665, 61.5) != 0) {
            fprintf(stderr, "fedrec-bench mf: out of memory\n");
            return 1;
        }
    } else {
        if (fedreci_dataset_load(&ds, path, NULL, NULL) != FEDREC_OK) {
            fprintf(stderr,
                    "fedrec-bench mf: %s: %s (run from the source tree, pass --data "
                    "FILE, or use --synthetic)\n",
                    path, fedrec_errmsg());
            return 1;
        }
        data.m = fedreci_dataset_csr(ds);
        source = path;
    }
    printf("data: %s, %u shoppers x %u items, %llu interactions\n", source, r->n_rows, r->n_cols,
           (unsigned long long)r->indptr[r->n_rows]);

    openblas_set_num_threads(1);
    double peak = sgemm_gflops(1024, 5);
    printf("reference: sgemm 1024^3, 1 thread: %.1f GFLOP/s\n\n", peak);

    printf("%-34s %10s %10s %9s %12s\n", "operation", "time", "GFLOP/s", "threads", "vs sgemm/thr");
    printf("%-34s %10s %10s %9s %12s\n", "----------------------------------", "----------",
           "----------", "---------", "------------");
    int rc = 0;
    static const uint32_t ks[2] = {32, 64};
    double per_sweep[2][2][2] = {{{0}}}; /* [k][threads row][solver] */
    for (int ki = 0; ki < 2 && !rc; ki++) {
        uint32_t k = ks[ki];
        float *x = malloc((size_t)r->n_rows * k * sizeof *x);
        float *y = malloc((size_t)r->n_cols * k * sizeof *y);
        if (!x || !y) {
            free(x);
            free(y);
            rc = 1;
            break;
        }
        uint32_t tlist[2] = {1, threads};
        for (int ti = 0; ti < (threads > 1 ? 2 : 1) && !rc; ti++) {
            for (int solver = 0; solver < 2 && !rc; solver++) {
                /* Time 1 sweep and 1 + sweeps sweeps: the difference excludes the
                 * one-off setup (validation, transpose, initialization). */
                fedreci_als_params p = {k, 0.1f, 1, tlist[ti], 1, 0.01f};
                fedreci_als_options o = {solver ? FEDRECI_ALS_CG : FEDRECI_ALS_CHOLESKY, 0, 0.0f,
                                         0.0f};
                double t0 = now();
                fedrec_err e1 = fedreci_als_train_opts(r, &p, &o, x, y, NULL);
                double t1 = now();
                p.sweeps = 1 + sweeps;
                fedrec_err e2 = fedreci_als_train_opts(r, &p, &o, x, y, NULL);
                double t2 = now();
                if (e1 || e2) {
                    fprintf(stderr, "fedrec-bench mf: als: %s\n", fedrec_errmsg());
                    rc = 1;
                    break;
                }
                double per = ((t2 - t1) - (t1 - t0)) / sweeps;
                per_sweep[ki][ti][solver] = per;
                double gf =
                    (solver ? als_cg_sweep_flops(r, k, 3) : als_sweep_flops(r, k)) / per * 1e-9;
                char name[64];
                snprintf(name, sizeof name, "ALS sweep, k = %u, %s", k,
                         solver ? "CG (3)" : "exact");
                printf("%-34s %8.3f s %10.2f %9u %12.2f\n", name, per, gf, tlist[ti],
                       gf / (peak * tlist[ti]));
            }
        }
        free(x);
        free(y);
    }
    if (!rc) {
        printf("\nALS seconds per sweep, exact / CG (3 steps), same run:\n");
        printf("%-10s %9s %10s %10s %9s\n", "factors", "threads", "exact", "CG", "speed-up");
        for (int ki = 0; ki < 2; ki++)
            for (int ti = 0; ti < (threads > 1 ? 2 : 1); ti++)
                printf("%-10u %9u %8.3f s %8.3f s %8.2fx\n", ks[ki], ti ? threads : 1u,
                       per_sweep[ki][ti][0], per_sweep[ki][ti][1],
                       per_sweep[ki][ti][0] / per_sweep[ki][ti][1]);
        if (ds && quality_seeds > 0)
            rc = als_quality(ds, quality_seeds, threads);
        printf("\n");
    }

    /* The client step, k = 32, over the full catalog, for a shopper with the
     * median number of items. */
    if (!rc) {
        const uint32_t k = 32, n = r->n_cols;
        uint32_t pick = 0;
        for (uint32_t u = 0; u < r->n_rows; u++) {
            uint64_t c = r->indptr[u + 1] - r->indptr[u];
            if (c >= 55 && c <= 70) {
                pick = u;
                break;
            }
        }
        uint64_t lo = r->indptr[pick];
        fedreci_mf_user user = {r->indices + lo, r->conf + lo,
                                (uint32_t)(r->indptr[pick + 1] - lo)};
        float *y = malloc((size_t)n * k * sizeof *y), *grad = malloc((size_t)n * k * sizeof *grad);
        float gram[32 * 32], x[32];
        fedreci_mf_step *w = NULL;
        if (!y || !grad || fedreci_mf_step_create(&w, n, k) != FEDREC_OK) {
            rc = 1;
        } else {
            fedreci_mf_init(y, n, k, 7, 0.1f);
            fedreci_mf_gram(y, n, k, gram);
            double kk = k, nu = user.n;
            double f_core = nu * (kk * (kk + 1) + 2 * kk) + kk * kk * kk / 3 + 2 * kk * kk +
                            4.0 * n * kk; /* correction, solve, sgemv, sger */
            double f_gram = (double)n * kk * (kk + 1);
            double ms[2] = {0, 0};
            for (int with_gram = 1; with_gram >= 0 && !rc; with_gram--) {
                double best = 1e30;
                for (uint32_t rep = 0; rep < reps; rep++) {
                    double loss, t0 = now();
                    fedrec_err e = fedreci_mf_client_step(w, y, with_gram ? gram : NULL, n, k, 0.1f,
                                                          &user, x, grad, &loss);
                    double t = now() - t0;
                    if (e) {
                        fprintf(stderr, "fedrec-bench mf: client step: %s\n", fedrec_errmsg());
                        rc = 1;
                        break;
                    }
                    if (t < best)
                        best = t;
                }
                double fl = f_core + (with_gram ? 0 : f_gram);
                ms[with_gram] = best * 1e3;
                char name[64];
                snprintf(name, sizeof name, "client step, k = 32, %s",
                         with_gram ? "gram given" : "gram computed");
                printf("%-34s %7.3f ms %10.2f %9u %12.2f\n", name, best * 1e3, fl / best * 1e-9, 1u,
                       fl / best * 1e-9 / peak);
            }
            printf("\nclient step: %u items x 32 factors, shopper with %u items; best of %u; "
                   "gradient %zu bytes\n"
                   "publishing Y^T Y with the model makes the step %.2fx faster\n",
                   n, user.n, reps, (size_t)n * k * sizeof(float), ms[1] > 0 ? ms[0] / ms[1] : 0);
        }
        fedreci_mf_step_destroy(w);
        free(y);
        free(grad);
    }
    bench_csr_free(&data);
    fedreci_dataset_destroy(ds);
    return rc;
}

/*
 * fedrec-bench fedq: federated model quality against centralized ALS, on the
 * VALIDATION split by default (core/eval's fedreci_split_create_validation),
 * for a list of server-optimizer settings over several seeds.
 *
 * The rounds are the plain-sum reference of the federated scheme
 * (fedreci_mf_fed_round, Ammad-ud-din et al. 2019): each round draws a cohort
 * of C training shoppers uniformly without replacement, drops each with
 * probability P (a vanished client), every survivor runs the client step on
 * the current Y, and the server applies Adam to the sum. This is the model
 * arithmetic of `fedrec-sim run` without SecAgg's transport, clipping and
 * quantization (docs/design.md section 8: clip 16 leaves the learning curve
 * unchanged), so it runs in seconds and settings can be compared over seeds.
 * The cohort stream is this suite's own (seeded splitmix64), not the
 * simulator's.
 *
 * For each setting and seed: centralized ALS (exact, the same factors and
 * lambda, 15 sweeps, that seed) with its own user factors, and the federated
 * model after R rounds with each shopper's factors solved from Y as the
 * device does; HR@10 of both on the split and their ratio. It prints a table
 * of ratios per seed with the mean and range; it asserts nothing.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "core/dataset/dataset.h"
#include "core/err.h"
#include "core/eval/eval.h"
#include "core/mf/mf.h"
#include "core/rng.h"
#include "fedrec/fedrec.h"
#include "bench_args.h"

#define FEDQ_MAX 16
#define FEDQ_DEFAULT_DATA "data/online-retail/online_retail.csv.gz"

/* HR@10 on s: user factors from x (n_users x k) or, when x is NULL, solved
 * from y on each shopper's training row. */
static int fedq_hr10(const fedreci_split *s, const float *y, const float *x, uint32_t k,
                     float lambda, double *hr)
{
    const uint32_t n = s->train.n_cols;
    float *scores = malloc((size_t)n * sizeof *scores), *gram = malloc((size_t)k * k * 4);
    float *xu = malloc((size_t)k * sizeof *xu);
    fedreci_mf_step *w = NULL;
    fedreci_eval_acc *acc = NULL;
    fedrec_err e = scores && gram && xu ? FEDREC_OK : FEDREC_ERR_NOMEM;
    if (!e)
        e = fedreci_mf_step_create(&w, n, k);
    if (!e)
        e = fedreci_eval_acc_create(&acc, n, 10);
    if (!e)
        fedreci_mf_gram(y, n, k, gram);
    for (uint32_t t = 0; t < s->n_test_users && !e; t++) {
        uint32_t u = s->test_users[t], top[10], n_top, n_test;
        uint64_t lo = s->train.indptr[u], hi = s->train.indptr[u + 1];
        const float *xp = x ? x + (size_t)u * k : xu;
        if (!x) {
            fedreci_mf_user cu = {s->train.indices + lo, s->train.conf + lo, (uint32_t)(hi - lo)};
            e = fedreci_mf_solve_user(w, y, gram, n, k, lambda, &cu, xu);
        }
        if (!e)
            e = fedreci_mf_topk(y, n, k, xp, s->train.indices + lo, (size_t)(hi - lo), 10, scores,
                                top, NULL, &n_top);
        const uint32_t *test = fedreci_split_test(s, t, &n_test);
        if (!e)
            e = fedreci_eval_acc_add(acc, top, n_top, test, n_test);
    }
    fedreci_metrics m;
    if (!e)
        e = fedreci_eval_acc_finish(acc, &m);
    if (!e)
        *hr = m.hr_at_k;
    fedreci_eval_acc_destroy(acc);
    fedreci_mf_step_destroy(w);
    free(scores);
    free(gram);
    free(xu);
    return e ? -1 : 0;
}

typedef struct fedq_cfg {
    uint32_t rounds, cohort, k;
    double dropout, lambda;
    int als_step; /* 1: the ALS step (core/mf), 2: the Y^T Y prototype */
    double init_std;
    double x_bound;      /* the ALS step's bound on |x_u| in the block */
    double lr_final;     /* > 0: the step size decays geometrically to it (schedule below) */
    uint32_t decay_from; /* the round (0-based) the decay starts at */
    uint32_t avg_last;   /* > 0: the model is the mean of the last avg_last rounds' Y */
} fedq_cfg;

/* Prototype (--step gram): the ALS step of core/mf (fedreci_optimizer_step_xx)
 * with Y^T Y / N in place of the cohort's mean x_u x_u^T, which needs no
 * upload (at a stationary point of the loss with the same lambda on X and
 * Y, X^T X = Y^T Y), but far from it (the initial Y is tiny) the steps are
 * far too long: measured 0.80 of centralized. */
static int fedq_als_round(fedreci_mf_step *w, const fedreci_mf_csr *r, const uint32_t *users,
                          uint32_t m, uint32_t k, double lambda, uint32_t n_train, double lr,
                          double beta1, uint32_t t, float *y, float *grad, float *sum, double *mom,
                          double *gs, int gram_pre)
{
    const uint32_t n = r->n_cols;
    const size_t nk = (size_t)n * k;
    float gram[4096], x[256];
    double a[256 * 256];
    fedreci_mf_gram(y, n, k, gram);
    memset(sum, 0, nk * sizeof *sum);
    memset(gs, 0, (size_t)k * k * sizeof *gs);
    for (uint32_t j = 0; j < m; j++) {
        uint32_t u = users[j];
        uint64_t lo = r->indptr[u];
        fedreci_mf_user cu = {r->indices + lo, r->conf + lo, (uint32_t)(r->indptr[u + 1] - lo)};
        if (fedreci_mf_client_step(w, y, gram, n, k, (float)lambda, &cu, x, grad, NULL))
            return -1;
        cblas_saxpy((int)nk, 1.0f, grad, 1, sum, 1);
        for (uint32_t p = 0; p < k; p++)
            for (uint32_t q = 0; q < k; q++)
                gs[p * k + q] += (double)x[p] * x[q];
    }
    const double reg = lambda / n_train;
    for (uint32_t p = 0; p < k; p++)
        for (uint32_t q = 0; q < k; q++)
            a[p * k + q] = (gram_pre ? (double)gram[p * k + q] / n_train : gs[p * k + q] / m) +
                           (p == q ? reg : 0.0);
    /* Cholesky a = L L^T in place (lower) */
    for (uint32_t p = 0; p < k; p++) {
        for (uint32_t q = 0; q <= p; q++) {
            double v = a[p * k + q];
            for (uint32_t z = 0; z < q; z++)
                v -= a[p * k + z] * a[q * k + z];
            if (p == q) {
                if (!(v > 0))
                    return -1;
                a[p * k + p] = sqrt(v);
            } else {
                a[p * k + q] = v / a[q * k + q];
            }
        }
    }
    const double c1 = 1.0 - pow(beta1, (double)t);
    for (uint32_t i = 0; i < n; i++) {
        double b[256];
        for (uint32_t p = 0; p < k; p++)
            b[p] = 0.5 * ((double)sum[(size_t)i * k + p] / m + 2.0 * reg * y[(size_t)i * k + p]);
        for (uint32_t p = 0; p < k; p++) { /* L z = b */
            double v = b[p];
            for (uint32_t z = 0; z < p; z++)
                v -= a[p * k + z] * b[z];
            b[p] = v / a[p * k + p];
        }
        for (uint32_t p = k; p-- > 0;) { /* L^T d = z */
            double v = b[p];
            for (uint32_t z = p + 1; z < k; z++)
                v -= a[z * k + p] * b[z];
            b[p] = v / a[p * k + p];
        }
        for (uint32_t p = 0; p < k; p++) {
            size_t j = (size_t)i * k + p;
            mom[j] = beta1 * mom[j] + (1.0 - beta1) * b[p];
            y[j] = (float)(y[j] - lr * mom[j] / c1);
        }
    }
    return 0;
}

/* One federated training of R rounds; HR@10 into *hr. */
static int fedq_train(const fedreci_split *s, const fedq_cfg *c, double lr, double beta1,
                      uint64_t seed, double *hr)
{
    const fedreci_mf_csr *r = &s->train;
    const uint32_t n = r->n_cols, k = c->k;
    uint32_t *pool = malloc((size_t)r->n_rows * sizeof *pool), np = 0;
    uint32_t *cohort = malloc((size_t)r->n_rows * sizeof *cohort);
    size_t dim = fedreci_mf_update_dim(n, k, FEDRECI_OPT_ALS);
    float *y = malloc((size_t)n * k * 4), *grad = malloc(dim * 4);
    float *sum = malloc(dim * 4);
    double *mom = calloc((size_t)n * k, sizeof *mom), *gs = malloc((size_t)k * k * sizeof *gs);
    fedreci_optimizer *o = NULL;
    fedreci_mf_step *w = NULL;
    double *avg = NULL;
    int rc = -1;
    if (!pool || !cohort || !y || !grad || !sum || !mom || !gs || k > 64)
        goto out;
    for (uint32_t u = 0; u < r->n_rows; u++)
        if (r->indptr[u + 1] > r->indptr[u])
            pool[np++] = u;
    fedreci_opt_params op = {c->als_step == 1 ? FEDRECI_OPT_ALS : FEDRECI_OPT_ADAM,
                             (float)lr,
                             (float)beta1,
                             0.999f,
                             1e-8f,
                             (float)c->lambda,
                             np};
    if (np == 0 || fedreci_optimizer_create(&o, &op, n, k) || fedreci_mf_step_create(&w, n, k))
        goto out;
    fedreci_mf_init(y, n, k, seed, (float)c->init_std);
    fedreci_rng st = fedreci_rng_seeded(seed * 0x2545f4914f6cdd1dULL + 1);
    for (uint32_t t = 0; t < c->rounds; t++) {
        uint32_t size = c->cohort < np ? c->cohort : np, m = 0;
        for (uint32_t j = 0; j < size; j++) { /* partial Fisher-Yates, then dropout */
            uint32_t pick = j + (uint32_t)fedreci_rng_below(&st, np - j);
            uint32_t tmp = pool[j];
            pool[j] = pool[pick];
            pool[pick] = tmp;
            if (fedreci_rng_unit(&st) >= c->dropout)
                cohort[m++] = pool[j];
        }
        if (c->lr_final > 0 && c->rounds > 1 && t >= c->decay_from) {
            double f = (double)(t - c->decay_from) / (double)(c->rounds - 1 - c->decay_from);
            if (fedreci_optimizer_set_lr(o, (float)(lr * pow(c->lr_final / lr, f))))
                goto out;
        }
        if (m > 0 && c->als_step < 2 &&
            fedreci_mf_fed_round_xx(w, o, r, cohort, m, k, (float)c->lambda, c->x_bound, y, grad,
                                    sum, NULL, NULL))
            goto out;
        if (m > 0 && c->als_step == 2 &&
            fedq_als_round(w, r, cohort, m, k, c->lambda, np, lr, beta1, t + 1, y, grad, sum, mom,
                           gs, c->als_step == 2))
            goto out;
        if (c->avg_last && t + c->avg_last >= c->rounds) {
            if (!avg && !(avg = calloc((size_t)n * k, sizeof *avg)))
                goto out;
            for (size_t j = 0; j < (size_t)n * k; j++)
                avg[j] += (double)y[j] / c->avg_last;
        }
    }
    if (avg)
        for (size_t j = 0; j < (size_t)n * k; j++)
            y[j] = (float)avg[j];
    rc = fedq_hr10(s, y, NULL, k, (float)c->lambda, hr);
out:
    fedreci_optimizer_destroy(o);
    fedreci_mf_step_destroy(w);
    free(pool);
    free(cohort);
    free(y);
    free(grad);
    free(sum);
    free(mom);
    free(gs);
    free(avg);
    return rc;
}

static int fedq_central(const fedreci_split *s, const fedq_cfg *c, uint64_t seed, double *hr)
{
    const fedreci_mf_csr *r = &s->train;
    float *x = malloc((size_t)r->n_rows * c->k * 4), *y = malloc((size_t)r->n_cols * c->k * 4);
    fedreci_als_params p = {c->k, (float)c->lambda, 15, 2, seed, 0.01f};
    int rc = -1;
    if (x && y && fedreci_als_train(r, &p, x, y, NULL) == FEDREC_OK)
        rc = fedq_hr10(s, y, x, c->k, (float)c->lambda, hr);
    free(x);
    free(y);
    return rc;
}

static fedrec_err fedq_list(const char *flag, const char *text, double lo, double hi, double *out,
                            uint32_t *n)
{
    char buf[256];
    if (strlen(text) >= sizeof buf)
        return fedreci_error(FEDREC_ERR_INVALID, "%s: list too long", flag);
    strcpy(buf, text);
    uint32_t m = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok;
         tok = strtok_r(NULL, ",", &save)) {
        if (m >= FEDQ_MAX)
            return fedreci_error(FEDREC_ERR_INVALID, "%s: at most %d values", flag, FEDQ_MAX);
        fedrec_err e = fedreci_opt_double(flag, tok, lo, hi, &out[m]);
        if (e)
            return e;
        m++;
    }
    if (m == 0)
        return fedreci_error(FEDREC_ERR_INVALID, "%s: empty list", flag);
    *n = m;
    return FEDREC_OK;
}

static void fedq_usage(FILE *f)
{
    fprintf(f, "usage: fedrec-bench fedq [--data FILE] [--split-date YYYY-MM-DD] [--test]\n"
               "                         [--seeds N] [--rounds R] [--cohort C] [--dropout P]\n"
               "                         [--factors K] [--lr LIST] [--beta1 LIST]\n"
               "                         [--step adam|als|gram] [--x-bound B] [--init-std S]\n"
               "Federated (plain-sum rounds, Adam on the server) against centralized ALS,\n"
               "HR@10 ratio per seed, on the validation split unless --test. LIST is\n"
               "comma-separated; every (lr, beta1) pair is run.\n"
               "  --data FILE        purchase log (default " FEDQ_DEFAULT_DATA ")\n"
               "  --split-date D     the date split's validation split (default last basket)\n"
               "  --test             evaluate on the test split instead (touch it once)\n"
               "  --seeds N          seeds 1..N (default 3)\n"
               "  --rounds R         rounds (default 40)   --cohort C   shoppers per round (500)\n"
               "  --dropout P        vanish probability (0.1)   --factors K  (32), lambda 0.1\n"
               "  --lr LIST          Adam learning rates (default 0.02,0.03)\n"
               "  --beta1 LIST       Adam beta1 (default 0.9,0); beta2 0.999, eps 1e-8\n"
               "  --step als         instead of Adam, the ALS step of fedrec-sim --step als\n"
               "                     (core/mf: the cohort's sums of gradients and of\n"
               "                     x_u x_u^T): lr is its step size, beta1 its momentum;\n"
               "                     gram: the same with Y^T Y / N for the x_u x_u^T sum\n"
               "  --x-bound B        the ALS step's bound on |x_u| in the block (default 8)\n"
               "  --init-std S       standard deviation of the initial Y (default 0.01)\n"
               "  --lr-final F       step size decays geometrically from lr to F over the\n"
               "                     rounds from --decay-from R0 (0-based, default 0) on\n"
               "  --avg-last A       the model evaluated is the mean of the last A rounds' Y\n");
}

int fedrec_bench_fedq(int argc, char **argv)
{
    const char *path = FEDQ_DEFAULT_DATA, *date = NULL;
    int test = 0;
    uint32_t seeds = 3, n_lr = 2, n_b1 = 2;
    double lrs[FEDQ_MAX] = {0.02, 0.03}, b1s[FEDQ_MAX] = {0.9, 0.0};
    fedq_cfg c = {40, 500, 32, 0.1, 0.1, 0, 0.01, 8, 0, 0, 0};
    enum {
        O_DATA = 0x100,
        O_DATE,
        O_TEST,
        O_SEEDS,
        O_ROUNDS,
        O_COHORT,
        O_DROPOUT,
        O_FACTORS,
        O_LR,
        O_BETA1,
        O_STEP,
        O_INIT,
        O_XBOUND,
        O_LRFINAL,
        O_DECAYFROM,
        O_AVGLAST
    };
    static const struct option longopts[] = {
        {"data", required_argument, NULL, O_DATA},
        {"split-date", required_argument, NULL, O_DATE},
        {"test", no_argument, NULL, O_TEST},
        {"seeds", required_argument, NULL, O_SEEDS},
        {"rounds", required_argument, NULL, O_ROUNDS},
        {"cohort", required_argument, NULL, O_COHORT},
        {"dropout", required_argument, NULL, O_DROPOUT},
        {"factors", required_argument, NULL, O_FACTORS},
        {"lr", required_argument, NULL, O_LR},
        {"beta1", required_argument, NULL, O_BETA1},
        {"step", required_argument, NULL, O_STEP},
        {"init-std", required_argument, NULL, O_INIT},
        {"x-bound", required_argument, NULL, O_XBOUND},
        {"lr-final", required_argument, NULL, O_LRFINAL},
        {"decay-from", required_argument, NULL, O_DECAYFROM},
        {"avg-last", required_argument, NULL, O_AVGLAST},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    fedreci_opt_reset();
    int opt;
    while ((opt = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        fedrec_err e = FEDREC_OK;
        switch (opt) {
        case 'h':
            fedq_usage(stdout);
            return 0;
        case O_DATA:
            path = optarg;
            break;
        case O_DATE:
            date = optarg;
            break;
        case O_TEST:
            test = 1;
            break;
        case O_INIT:
            e = fedreci_opt_double("--init-std", optarg, 1e-6, 10.0, &c.init_std);
            break;
        case O_STEP:
            if (!strcmp(optarg, "adam") || !strcmp(optarg, "als") || !strcmp(optarg, "gram"))
                c.als_step = !strcmp(optarg, "als") ? 1 : !strcmp(optarg, "gram") ? 2 : 0;
            else
                e = fedreci_error(FEDREC_ERR_INVALID, "--step '%s': expected adam, als or gram",
                                  optarg);
            break;
        case O_XBOUND:
            e = fedreci_opt_double("--x-bound", optarg, 1e-3, 1e6, &c.x_bound);
            break;
        case O_LRFINAL:
            e = fedreci_opt_double_above("--lr-final", optarg, 0.0, 10.0, &c.lr_final);
            break;
        case O_DECAYFROM:
            e = fedreci_opt_u32("--decay-from", optarg, 0, 100000, &c.decay_from);
            break;
        case O_AVGLAST:
            e = fedreci_opt_u32("--avg-last", optarg, 1, 100000, &c.avg_last);
            break;
        case O_SEEDS:
            e = fedreci_opt_u32("--seeds", optarg, 1, 100, &seeds);
            break;
        case O_ROUNDS:
            e = fedreci_opt_u32("--rounds", optarg, 1, 100000, &c.rounds);
            break;
        case O_COHORT:
            e = fedreci_opt_u32("--cohort", optarg, 1, 1000000, &c.cohort);
            break;
        case O_DROPOUT:
            e = fedreci_opt_double("--dropout", optarg, 0.0, 0.99, &c.dropout);
            break;
        case O_FACTORS:
            e = fedreci_opt_u32("--factors", optarg, 1, 256, &c.k);
            break;
        case O_LR:
            e = fedq_list("--lr", optarg, 1e-6, 10.0, lrs, &n_lr);
            break;
        case O_BETA1:
            e = fedq_list("--beta1", optarg, 0.0, 0.999, b1s, &n_b1);
            break;
        default:
            fedq_usage(stderr);
            return bench_getopt_error("fedq", opt, argc, argv, longopts);
        }
        if (e) {
            fedq_usage(stderr);
            return bench_usage_error("fedq");
        }
    }
    if (c.lr_final > 0 && c.decay_from + 1 >= c.rounds) {
        fprintf(stderr, "fedrec-bench fedq: --decay-from %u must be below --rounds %u - 1\n",
                c.decay_from, c.rounds);
        return 2;
    }
    if (optind < argc) {
        fedq_usage(stderr);
        return bench_getopt_error("fedq", -1, argc, argv, longopts);
    }
    fedreci_split_options so = {FEDRECI_SPLIT_LAST_BASKET, 0};
    if (date) {
        so.kind = FEDRECI_SPLIT_TEMPORAL;
        if (fedreci_parse_time(date, &so.split_time)) {
            fprintf(stderr, "fedrec-bench fedq: --split-date '%s' is not a date\n", date);
            return 2;
        }
    }
    fedreci_dataset *d = NULL;
    fedreci_split *s = NULL;
    if (fedreci_dataset_load(&d, path, NULL, NULL) ||
        (test ? fedreci_split_create(&s, d, &so) : fedreci_split_create_validation(&s, d, &so))) {
        fprintf(stderr, "fedrec-bench fedq: %s: %s\n", path, fedrec_errmsg());
        fedreci_dataset_destroy(d);
        return 1;
    }
    openblas_set_num_threads(1);
    printf("data: %s, %s split%s%s, %u shoppers evaluated\n", path, test ? "test" : "validation",
           date ? " of date:" : " of lastbasket", date ? date : "", s->n_test_users);
    printf("federated: %u rounds, cohort %u, dropout %g, %u factors, lambda %g, init N(0, 0.01^2)\n"
           "centralized: exact ALS, same factors and lambda, 15 sweeps; seeds 1..%u\n\n",
           c.rounds, c.cohort, c.dropout, c.k, c.lambda, seeds);
    double *central = calloc(seeds, sizeof *central);
    int rc = central ? 0 : 1;
    for (uint32_t sd = 1; sd <= seeds && !rc; sd++)
        rc = fedq_central(s, &c, sd, &central[sd - 1]);
    if (!rc) {
        printf("%-22s", "centralized HR@10");
        for (uint32_t sd = 0; sd < seeds; sd++)
            printf(" %7.4f", central[sd]);
        printf("\n%-22s", "ratio fed / central");
        for (uint32_t sd = 1; sd <= seeds; sd++)
            printf(" %7s", "");
        printf(" %7s %7s %7s\n", "mean", "min", "max");
    }
    for (uint32_t a = 0; a < n_lr && !rc; a++)
        for (uint32_t b = 0; b < n_b1 && !rc; b++) {
            char name[64];
            snprintf(name, sizeof name, "lr %g, beta1 %g", lrs[a], b1s[b]);
            printf("%-22s", name);
            double mean = 0, lo = 1e9, hi = -1e9;
            for (uint32_t sd = 1; sd <= seeds && !rc; sd++) {
                double hr = 0;
                rc = fedq_train(s, &c, lrs[a], b1s[b], sd, &hr);
                double ratio = hr / central[sd - 1];
                printf(" %7.4f", ratio);
                fflush(stdout);
                mean += ratio / seeds;
                lo = fmin(lo, ratio);
                hi = fmax(hi, ratio);
            }
            if (!rc)
                printf(" %7.4f %7.4f %7.4f\n", mean, lo, hi);
        }
    if (rc)
        fprintf(stderr, "fedrec-bench fedq: %s\n", fedrec_errmsg());
    free(central);
    fedreci_split_destroy(s);
    fedreci_dataset_destroy(d);
    return rc ? 1 : 0;
}

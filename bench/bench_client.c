/* fedrec-bench client: the costs a store app sees.
 *   record     durable appends per second, next to a bare write+fdatasync of
 *              the same frame size and to that plus a 24-byte counter
 *              rewrite + fdatasync (the floors the encryption sits on: a
 *              record is its frame, synced, then its committed-event count,
 *              synced);
 *   open       open time (authenticate the snapshot and replay the log; an
 *              open writes nothing) against store size, with a 3,650 x 32
 *              model cached;
 *   recommend  one on-device recommendation and one local training step;
 *   step       the client step (solve x_u + dense gradient) on the portable
 *              kernels the client-only library ships (core/mf/linalg), on
 *              the instruction set the CPU gets (AVX2+FMA on most x86-64)
 *              and forced to the baseline (SSE2; what a CPU without AVX2
 *              runs), next to OpenBLAS + LAPACK, all single-threaded, same
 *              inputs.
 * Options: --dir DIR (where the stores go; default /tmp), --records N,
 * --step-only (just the step table). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cblas.h>
#include <sodium.h>

#include "client/client_internal.h"
#include "core/mf/linalg.h"
#include "core/mf/mf.h"
#include "fedrec/client.h"
#include "bench_args.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static const uint8_t KEY[32] = {9, 8, 7};

#define N_ITEMS 3650u
#define K_FACTORS 32u

static int put_model(fedrec_client *c)
{
    float *y = malloc((size_t)N_ITEMS * K_FACTORS * sizeof *y);
    char(*names)[16] = malloc(N_ITEMS * sizeof *names);
    const char **codes = malloc(N_ITEMS * sizeof *codes);
    if (!y || !names || !codes)
        return -1;
    fedreci_mf_init(y, N_ITEMS, K_FACTORS, 7, 0.1f);
    for (uint32_t i = 0; i < N_ITEMS; i++) {
        snprintf(names[i], sizeof names[i], "%05u", 10000 + i);
        codes[i] = names[i];
    }
    fedrec_err e = fedreci_client_put_model(c, 1, N_ITEMS, K_FACTORS, y, NULL, codes, NULL);
    free(y);
    free(names);
    free(codes);
    return e ? -1 : 0;
}

static void rm_store(const char *dir)
{
    fedrec_client *c = NULL;
    if (fedrec_client_open(&c, dir, NULL, KEY) == FEDREC_OK && fedrec_client_forget(c))
        fprintf(stderr, "bench client: %s\n", fedrec_errmsg());
}

/* Milliseconds per client step on one backend, best of `blocks` blocks of
 * `reps` steps (the minimum is the least noisy on a shared machine). */
static double step_ms(fedreci_mf_step *w, fedreci_mf_backend be, const float *y, const float *gram,
                      uint32_t n_items, uint32_t k, const fedreci_mf_user *u, float *x, float *grad,
                      int reps)
{
    if (fedreci_mf_step_set_backend(w, be))
        return -1.0;
    double t0 = now_s();
    for (int r = 0; r < reps; r++)
        if (fedreci_mf_client_step(w, y, gram, n_items, k, 0.1f, u, x, grad, NULL))
            return -1.0;
    return (now_s() - t0) / reps * 1e3;
}

/* The step table: portable (as dispatched, and forced to the baseline
 * instruction set) vs OpenBLAS at k = 16, 32, 64 on the bench's catalog, a
 * shopper with 60 purchases, the model's gram published (as the coordinator
 * sends it). Blocks of the three alternate so machine noise hits them
 * alike; each cell is the best block. */
static int bench_step_backends(void)
{
    const uint32_t ks[] = {16, 32, 64};
    enum { N_BOUGHT = 60, BLOCKS = 25, REPS = 40 };
    int threads = openblas_get_num_threads();
    openblas_set_num_threads(1);
    printf("client step: portable C (client-only library) vs OpenBLAS, %u items, %d purchases, "
           "1 thread; portable on %s and forced to the baseline\n",
           N_ITEMS, N_BOUGHT, fedreci_la_isa());
    printf("| %3s | %11s | %11s | %11s | %17s | %17s |\n", "k", "portable ms", "baseline ms",
           "OpenBLAS ms", "portable/OpenBLAS", "baseline/OpenBLAS");
    printf("|-----|-------------|-------------|-------------|-------------------|"
           "-------------------|\n");
    int rc = 0;
    for (size_t t = 0; t < sizeof ks / sizeof ks[0] && rc == 0; t++) {
        uint32_t k = ks[t];
        float *y = malloc((size_t)N_ITEMS * k * sizeof *y);
        float *grad = malloc((size_t)N_ITEMS * k * sizeof *grad);
        float *gram = malloc((size_t)k * k * sizeof *gram), *x = malloc(k * sizeof *x);
        uint32_t items[N_BOUGHT];
        float conf[N_BOUGHT];
        fedreci_mf_step *w = NULL;
        rc = !y || !grad || !gram || !x || fedreci_mf_step_create(&w, N_ITEMS, k);
        if (rc == 0) {
            fedreci_mf_init(y, N_ITEMS, k, 3, 0.1f);
            fedreci_mf_gram(y, N_ITEMS, k, gram);
            for (uint32_t j = 0; j < N_BOUGHT; j++) {
                items[j] = j * (N_ITEMS / N_BOUGHT);
                conf[j] = 1.0f + (float)(j % 4);
            }
            fedreci_mf_user u = {.items = items, .conf = conf, .n = N_BOUGHT};
            double best_p = 1e30, best_s = 1e30, best_b = 1e30;
            for (int b = 0; b < BLOCKS && rc == 0; b++) {
                double tp = step_ms(w, FEDRECI_MF_PORTABLE, y, gram, N_ITEMS, k, &u, x, grad, REPS);
                (void)fedreci_la_force_baseline(1);
                double ts = step_ms(w, FEDRECI_MF_PORTABLE, y, gram, N_ITEMS, k, &u, x, grad, REPS);
                (void)fedreci_la_force_baseline(0);
                double tb = step_ms(w, FEDRECI_MF_BLAS, y, gram, N_ITEMS, k, &u, x, grad, REPS);
                if (tp < 0 || ts < 0 || tb < 0)
                    rc = 1;
                best_p = tp < best_p ? tp : best_p;
                best_s = ts < best_s ? ts : best_s;
                best_b = tb < best_b ? tb : best_b;
            }
            if (rc == 0)
                printf("| %3u | %11.3f | %11.3f | %11.3f | %17.2f | %17.2f |\n", k, best_p, best_s,
                       best_b, best_p / best_b, best_s / best_b);
        }
        fedreci_mf_step_destroy(w);
        free(y), free(grad), free(gram), free(x);
    }
    openblas_set_num_threads(threads);
    if (rc)
        fprintf(stderr, "bench client: step: %s\n", fedrec_errmsg());
    return rc;
}

int fedrec_bench_client(int argc, char **argv)
{
    const char *base = "/tmp";
    unsigned long records = 2000;
    static const struct option lo[] = {{"dir", required_argument, NULL, 'd'},
                                       {"records", required_argument, NULL, 'r'},
                                       {"step-only", no_argument, NULL, 's'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
    fedreci_opt_reset();
    int opt;
    while ((opt = getopt_long(argc, argv, ":", lo, NULL)) != -1) {
        uint64_t v;
        if (opt == 'd') {
            base = optarg;
        } else if (opt == 'r') {
            if (fedreci_opt_u64("--records", optarg, 1, 10000000, &v))
                return bench_usage_error("client");
            records = (unsigned long)v;
        } else if (opt == 's') {
            return bench_step_backends();
        } else if (opt == 'h') {
            printf("usage: fedrec-bench client [--dir DIR] [--records N] [--step-only]\n");
            return 0;
        } else {
            return bench_getopt_error("client", opt, argc, argv, lo);
        }
    }
    if (optind < argc)
        return bench_getopt_error("client", -1, argc, argv, lo);
    if (sodium_init() < 0) {
        fprintf(stderr, "bench client: libsodium failed to initialize\n");
        return 1;
    }
    if (bench_step_backends())
        return 1;
    printf("\n");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/fedrec-bench-client-%d", base, (int)getpid());

    /* ---- record ---- */
    fedrec_client *c = NULL;
    if (fedrec_client_open(&c, dir, NULL, KEY)) {
        fprintf(stderr, "bench client: %s\n", fedrec_errmsg());
        return 1;
    }
    /* Interleaved in blocks of 50 with the floor (the same number of 60-byte
     * appends, each fdatasync'd) so that disk noise hits both alike. */
    char raw[4200];
    snprintf(raw, sizeof raw, "%s/raw-append", dir);
    int fd = open(raw, O_WRONLY | O_CREAT | O_APPEND, 0600);
    /* The counter rewrite is a pwrite into the same file, through a second
     * descriptor without O_APPEND (pwrite on an O_APPEND one appends). */
    int fd2 = open(raw, O_WRONLY, 0600);
    uint8_t frame[60] = {0};
    double t_rec = 0, t_raw = 0, t_raw2 = 0, t0;
    for (unsigned long i = 0; i < records && fd >= 0 && fd2 >= 0;) {
        unsigned long end = i + 50 < records ? i + 50 : records, j;
        t0 = now_s();
        for (j = i; j < end; j++) {
            char code[16];
            snprintf(code, sizeof code, "%05lu", 10000 + j % N_ITEMS);
            if (fedrec_client_record(c, code, 1300000000 + (int64_t)j, 1)) {
                fprintf(stderr, "bench client: %s\n", fedrec_errmsg());
                return 1;
            }
        }
        t_rec += now_s() - t0;
        t0 = now_s();
        for (j = i; j < end; j++)
            if (write(fd, frame, sizeof frame) != (ssize_t)sizeof frame || fdatasync(fd) != 0)
                return 1;
        t_raw += now_s() - t0;
        t0 = now_s();
        for (j = i; j < end; j++)
            if (write(fd, frame, sizeof frame) != (ssize_t)sizeof frame || fdatasync(fd) != 0 ||
                pwrite(fd2, frame, 24, 56) != 24 || fdatasync(fd2) != 0)
                return 1;
        t_raw2 += now_s() - t0;
        i = end;
    }
    t_rec /= (double)records;
    t_raw /= (double)records;
    t_raw2 /= (double)records;
    if (fd >= 0)
        close(fd);
    if (fd2 >= 0)
        close(fd2);
    unlink(raw);
    printf("record (%lu events, store in %s)\n", records, base);
    printf("| %-34s | %12s | %10s |\n", "operation", "us / event", "ratio");
    printf("|------------------------------------|--------------|------------|\n");
    printf("| %-34s | %12.1f | %10.2f |\n", "write + fdatasync, 60 B (floor)", t_raw * 1e6, 1.0);
    printf("| %-34s | %12.1f | %10.2f |\n", "+ 24 B rewrite + sync (floor 2)", t_raw2 * 1e6,
           t_raw2 / t_raw);
    printf("| %-34s | %12.1f | %10.2f |\n", "fedrec_client_record", t_rec * 1e6, t_rec / t_raw);

    /* ---- recommend and local step ---- */
    if (put_model(c)) {
        fprintf(stderr, "bench client: %s\n", fedrec_errmsg());
        return 1;
    }
    fedrec_recommendation rec[10];
    uint32_t n;
    int reps = 20;
    t0 = now_s();
    for (int r = 0; r < reps; r++)
        if (fedrec_client_recommend(c, 10, rec, &n))
            return 1;
    double t_recm = (now_s() - t0) / reps;
    float *upd = malloc((size_t)N_ITEMS * K_FACTORS * sizeof *upd);
    uint32_t w;
    t0 = now_s();
    for (int r = 0; r < reps; r++)
        if (!upd || fedreci_client_local_update(c, upd, (size_t)N_ITEMS * K_FACTORS, &w, NULL))
            return 1;
    double t_step = (now_s() - t0) / reps;
    free(upd);
    printf("\non-device compute (%u items x %u factors, %lu purchases)\n", N_ITEMS, K_FACTORS,
           records);
    printf("| %-34s | %12s | %10s |\n", "operation", "ms / call", "ratio");
    printf("|------------------------------------|--------------|------------|\n");
    printf("| %-34s | %12.2f | %10.2f |\n", "recommend top-10", t_recm * 1e3, 1.0);
    printf("| %-34s | %12.2f | %10.2f |\n", "local step (solve + dense gradient)", t_step * 1e3,
           t_step / t_recm);
    fedrec_client_close(c);

    /* ---- open vs store size ---- */
    printf("\nopen (authenticate the snapshot, replay the log; writes nothing), model cached\n");
    printf("| %-12s | %14s | %10s |\n", "purchases", "open ms", "ratio");
    printf("|--------------|----------------|------------|\n");
    rm_store(dir);
    double first = 0;
    unsigned long sizes[3] = {0, 1000, 10000};
    unsigned long have = 0;
    for (int s = 0; s < 3; s++) {
        if (fedrec_client_open(&c, dir, NULL, KEY))
            return 1;
        if (s == 0 && put_model(c))
            return 1;
        fedrec_client_close(c);
        /* Grow the store to sizes[s] purchases without an fsync per event:
         * cost here is the open, not the filling. */
        if (fedrec_client_open(&c, dir, NULL, KEY))
            return 1;
        for (; have < sizes[s]; have++) {
            char code[16];
            snprintf(code, sizeof code, "%05lu", 10000 + have % N_ITEMS);
            if (fedrec_client_record(c, code, (int64_t)have, 1))
                return 1;
        }
        fedrec_client_close(c);
        int r = 5;
        t0 = now_s();
        for (int i = 0; i < r; i++) {
            if (fedrec_client_open(&c, dir, NULL, KEY))
                return 1;
            fedrec_client_close(c);
        }
        double t = (now_s() - t0) / r;
        if (s == 0)
            first = t;
        printf("| %12lu | %14.2f | %10.2f |\n", sizes[s], t * 1e3, t / first);
    }
    rm_store(dir);
    return 0;
}

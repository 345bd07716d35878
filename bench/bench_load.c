/* fedrec-bench load: rows per second for loading and cleaning a purchase log
 * (gzip'd, and the same bytes uncompressed when a temporary copy is cheap). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <zlib.h>

#include "core/dataset/dataset.h"
#include "core/eval/eval.h"
#include "bench_args.h"

#ifndef FEDREC_BENCH_DEFAULT_DATA
#define FEDREC_BENCH_DEFAULT_DATA "data/online-retail/online_retail.csv.gz"
#endif

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Best of `reps` loads; returns seconds, or a negative value on error. */
static double time_load(const char *path, int reps, int build, fedreci_dataset_report *r)
{
    double best = -1;
    fedreci_dataset_options o;
    fedreci_dataset_options_default(&o);
    o.build_matrix = build;
    for (int i = 0; i < reps; i++) {
        fedreci_dataset *d = NULL;
        double t = now();
        fedrec_err e = fedreci_dataset_load(&d, path, &o, r);
        t = now() - t;
        fedreci_dataset_destroy(d);
        if (e) {
            fprintf(stderr, "fedrec-bench load: %s\n", fedrec_errmsg());
            return -1;
        }
        if (best < 0 || t < best)
            best = t;
    }
    return best;
}

/* Decompresses src into a temporary file; returns 0 on success. */
static int gunzip_to(const char *src, char *dst, size_t n)
{
    snprintf(dst, n, "/tmp/fedrec_bench_load_XXXXXX");
    int fd = mkstemp(dst);
    if (fd < 0)
        return -1;
    FILE *out = fdopen(fd, "wb");
    gzFile in = gzopen(src, "rb");
    char buf[65536];
    int k = 0, rc = 0;
    while (in && out && (k = gzread(in, buf, sizeof buf)) > 0)
        if (fwrite(buf, 1, (size_t)k, out) != (size_t)k)
            rc = -1;
    if (!in || !out || k < 0)
        rc = -1;
    if (in)
        gzclose(in);
    if (out)
        fclose(out);
    else
        close(fd);
    return rc;
}

int fedrec_bench_load(int argc, char **argv)
{
    const char *data = FEDREC_BENCH_DEFAULT_DATA;
    int reps = 3;
    static const struct option lo[] = {{"data", required_argument, NULL, 'd'},
                                       {"reps", required_argument, NULL, 'r'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
    fedreci_opt_reset();
    int c;
    while ((c = getopt_long(argc, argv, ":", lo, NULL)) != -1) {
        uint32_t v;
        if (c == 'd') {
            data = optarg;
        } else if (c == 'r') {
            if (fedreci_opt_u32("--reps", optarg, 1, 1000, &v))
                return bench_usage_error("load");
            reps = (int)v;
        } else if (c == 'h') {
            printf("usage: fedrec-bench load [--data FILE] [--reps N]\n"
                   "Rows per second for loading + cleaning a purchase log (best of N).\n");
            return 0;
        } else {
            return bench_getopt_error("load", c, argc, argv, lo);
        }
    }
    if (optind < argc)
        return bench_getopt_error("load", -1, argc, argv, lo);
    fedreci_dataset_report r;
    double t_gz = time_load(data, reps, 1, &r);
    if (t_gz < 0)
        return 1;
    double t_count = time_load(data, reps, 0, &r);
    char plain[64];
    int have_plain = gunzip_to(data, plain, sizeof plain) == 0;
    double t_plain = have_plain ? time_load(plain, reps, 1, &r) : -1;
    if (have_plain)
        unlink(plain);

    /* the split and the popularity baseline on top, for scale */
    fedreci_dataset *d = NULL;
    fedreci_split *s = NULL;
    fedreci_metrics m;
    double t_split = -1, t_pop = -1;
    if (fedreci_dataset_load(&d, data, NULL, NULL) == FEDREC_OK) {
        double t = now();
        if (fedreci_split_create(&s, d, NULL) == FEDREC_OK) {
            t_split = now() - t;
            t = now();
            if (fedreci_eval_popularity(s, 10, &m) == FEDREC_OK)
                t_pop = now() - t;
        }
    }
    fedreci_split_destroy(s);
    fedreci_dataset_destroy(d);

    double rows = (double)r.rows_read;
    printf("fedrec-bench load: %s, %llu rows read, %llu kept, best of %d\n", data,
           (unsigned long long)r.rows_read, (unsigned long long)r.rows_kept, reps);
    printf("%-42s %10s %14s %8s\n", "step", "seconds", "rows/s", "ratio");
    printf("%-42s %10.3f %14.0f %8.2f\n", "load+clean+matrix, gzip", t_gz, rows / t_gz, 1.0);
    printf("%-42s %10.3f %14.0f %8.2f\n", "load+clean (count only, no matrix), gzip", t_count,
           rows / t_count, t_count / t_gz);
    if (t_plain > 0)
        printf("%-42s %10.3f %14.0f %8.2f\n", "load+clean+matrix, plain CSV", t_plain,
               rows / t_plain, t_plain / t_gz);
    if (t_split >= 0)
        printf("%-42s %10.3f %14s %8.2f\n", "leave-last-basket-out split", t_split, "-",
               t_split / t_gz);
    if (t_pop >= 0)
        printf("%-42s %10.3f %14s %8.2f\n", "popularity baseline @10", t_pop, "-", t_pop / t_gz);
    return 0;
}

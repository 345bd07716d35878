/* `fedrec-sim describe`: the cleaning report and statistics of a purchase log. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/dataset/dataset.h"
#include "core/json.h"
#include "core/eval/eval.h"
#include "fedrec/fedrec.h"
#include "sim/sim.h"
#include "sim/synth.h"

static void describe_usage(FILE *f)
{
    fprintf(f, "usage: fedrec-sim describe --data FILE [--json] [--versus FILE] [data options]\n"
               "Loads and cleans a purchase log (CSV or gzip'd CSV, UCI Online Retail layout)\n"
               "and prints the cleaning report, dataset statistics and the split's counts\n"
               "(leave-last-basket-out unless --split or --split-date says otherwise).\n"
               "docs/data.md defines every figure.\n"
               "  --json                  print one JSON object\n"
               "  --versus FILE           also load FILE (e.g. the log a synthetic one was\n"
               "                          grown from: fedrec-sim synth) with the same options\n"
               "                          and print the statistics of both side by side\n"
               "                          (shoppers, items, baskets per shopper, rows per\n"
               "                          basket, popularity Gini, split counts)\n");
    fedreci_sim_data_usage(f);
}

static void fmt_time(int64_t t, char *buf, size_t n)
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (!gmtime_r(&tt, &tm) || !strftime(buf, n, "%Y-%m-%d %H:%M:%S", &tm))
        snprintf(buf, n, "%lld", (long long)t);
}

enum { OPT_JSON = FEDRECI_SIM_OPT_BASE, OPT_VERSUS };

static const struct option describe_options[] = {
    {"json", no_argument, NULL, OPT_JSON},
    {"versus", required_argument, NULL, OPT_VERSUS},
    {NULL, 0, NULL, 0},
};

typedef struct describe_args {
    int json;
    const char *versus;
} describe_args;

static int describe_opt(void *ctx, int code, const char *name, const char *v)
{
    describe_args *a = ctx;
    (void)name;
    if (code == OPT_JSON)
        a->json = 1;
    else
        a->versus = v;
    return 0;
}

/* A column title: the file name without its folders, never cut. */
static const char *base_name(const char *path)
{
    const char *b = strrchr(path, '/');
    return b && b[1] ? b + 1 : path;
}

/* --versus: the statistics of the other log and of this one, side by side. */
static int print_versus(const fedreci_sim_data_opts *o, const char *versus,
                        const fedreci_split_options *so, const fedreci_dataset *d,
                        const fedreci_split *s)
{
    fedreci_dataset *d2 = NULL;
    fedreci_split *s2 = NULL;
    fedreci_sim_log_stats a, b;
    fedrec_err e = fedreci_dataset_load(&d2, versus, &o->ds, NULL);
    if (!e)
        e = fedreci_split_create(&s2, d2, so);
    if (!e)
        e = fedreci_sim_log_stats_get(d2, s2, &a);
    if (!e)
        e = fedreci_sim_log_stats_get(d, s, &b);
    if (!e) {
        const char *na = base_name(versus), *nb = base_name(o->data);
        if (strcmp(na, nb) == 0) { /* same name in two folders: the paths tell them apart */
            na = versus;
            nb = o->data;
        }
        printf("\n");
        fedreci_sim_log_stats_print(stdout, na, &a, nb, &b);
    } else {
        fprintf(stderr, "fedrec-sim describe: --versus %s: %s: %s\n", versus, fedrec_strerror(e),
                fedrec_errmsg());
    }
    fedreci_split_destroy(s2);
    fedreci_dataset_destroy(d2);
    return e ? 1 : 0;
}

/* The report as one JSON object on stdout; 1 when writing it failed. */
static int print_json(const fedreci_sim_data_opts *o, const fedreci_dataset_report *r,
                      const fedreci_split *s, const char *t0, const char *t1, double density,
                      const char *split_name, int temporal)
{
    const char *data = o->data;
    int rc = 0;
    (void)temporal;
    /* spaced members, a line break before each group */
    fedreci_json w;
    fedreci_json_init_file(&w, stdout, FEDRECI_JSON_SPACED);
    fedreci_json_obj_begin(&w);
    fedreci_json_kstr(&w, "data", data);
    fedreci_json_newline(&w, " ");
    fedreci_json_ku64(&w, "rows_read", r->rows_read);
    fedreci_json_ku64(&w, "dropped_unparsable", r->dropped_unparsable);
    fedreci_json_ku64(&w, "dropped_no_customer", r->dropped_no_customer);
    fedreci_json_ku64(&w, "dropped_cancelled", r->dropped_cancelled);
    fedreci_json_newline(&w, " ");
    fedreci_json_ku64(&w, "dropped_quantity", r->dropped_quantity);
    fedreci_json_ku64(&w, "dropped_price", r->dropped_price);
    fedreci_json_ku64(&w, "dropped_rating", r->dropped_rating);
    fedreci_json_ku64(&w, "dropped_non_product", r->dropped_non_product);
    fedreci_json_ku64(&w, "rows_kept", r->rows_kept);
    fedreci_json_newline(&w, " ");
    fedreci_json_ku64(&w, "raw_customers", r->raw_customers);
    fedreci_json_ku64(&w, "raw_items", r->raw_items);
    fedreci_json_ku64(&w, "customers", r->customers);
    fedreci_json_ku64(&w, "items", r->items);
    fedreci_json_newline(&w, " ");
    fedreci_json_ku64(&w, "interactions", r->interactions);
    fedreci_json_ku64(&w, "baskets", r->baskets);
    fedreci_json_kdouble(&w, "density", "%.6g", density);
    fedreci_json_newline(&w, " ");
    fedreci_json_kstr(&w, "time_min", t0);
    fedreci_json_kstr(&w, "time_max", t1);
    fedreci_json_kdouble(&w, "alpha", "%g", o->ds.alpha);
    fedreci_json_kdouble(&w, "eps", "%g", o->ds.eps);
    fedreci_json_newline(&w, " ");
    fedreci_json_kstr(&w, "split", split_name);
    fedreci_json_ku64(&w, "test_users", s->n_test_users);
    fedreci_json_ku64(&w, "users_single_basket", s->users_single_basket);
    fedreci_json_newline(&w, " ");
    fedreci_json_ku64(&w, "users_no_new_item", s->users_no_new_item);
    fedreci_json_ku64(&w, "users_no_test_rows", s->users_no_test_rows);
    fedreci_json_ku64(&w, "users_cold", s->users_cold);
    fedreci_json_newline(&w, " ");
    fedreci_json_ku64(&w, "users_only_unseen", s->users_only_unseen);
    fedreci_json_ku64(&w, "test_items", s->test_interactions);
    fedreci_json_ku64(&w, "test_items_unseen", s->test_items_unseen);
    fedreci_json_newline(&w, " ");
    fedreci_json_ku64(&w, "train_interactions", s->train_interactions);
    fedreci_json_ku64(&w, "held_out_rows", s->held_out_rows);
    fedreci_json_obj_end(&w);
    if (fedreci_json_finish(&w, NULL, NULL) != FEDREC_OK || putchar('\n') == EOF) {
        fprintf(stderr, "fedrec-sim describe: writing the JSON failed\n");
        rc = 1;
    }
    return rc;
}

/* The report as text on stdout. */
static void print_text(const fedreci_sim_data_opts *o, const fedreci_dataset_report *r,
                       const fedreci_split *s, const char *t0, const char *t1, double density,
                       const char *split_name, int temporal)
{
    const char *data = o->data;
    (void)split_name;
    printf("purchase log               %s\n", data);
    printf("rows read                  %llu\n", (unsigned long long)r->rows_read);
    printf("  customers (raw)          %u\n", r->raw_customers);
    printf("  stock codes (raw)        %u\n", r->raw_items);
    printf("dropped, in rule order:\n");
    printf("  unparsable               %llu\n", (unsigned long long)r->dropped_unparsable);
    printf("  no customer              %llu\n", (unsigned long long)r->dropped_no_customer);
    printf("  cancellation             %llu\n", (unsigned long long)r->dropped_cancelled);
    printf("  quantity <= 0            %llu\n", (unsigned long long)r->dropped_quantity);
    printf("  price <= 0               %llu\n", (unsigned long long)r->dropped_price);
    if (o->ds.columns.rating && *o->ds.columns.rating)
        printf("  rating below %-11g %llu\n", o->ds.rating_threshold,
               (unsigned long long)r->dropped_rating);
    printf("  non-product code         %llu\n", (unsigned long long)r->dropped_non_product);
    printf("kept rows                  %llu\n", (unsigned long long)r->rows_kept);
    printf("customers                  %u\n", r->customers);
    printf("items                      %u\n", r->items);
    printf("interactions (pairs)       %llu  (density %.4f%%)\n",
           (unsigned long long)r->interactions, 100.0 * density);
    printf("baskets                    %llu\n", (unsigned long long)r->baskets);
    printf("first / last purchase      %s / %s\n", t0, t1);
    printf("confidence                 1 + %g * log(1 + q / %g)\n", o->ds.alpha, o->ds.eps);
    printf("split                      %s%s%s\n", split_name, temporal ? " at " : "",
           temporal ? o->split + 5 : "");
    printf("  test customers           %u\n", s->n_test_users);
    if (!temporal) {
        printf("  training only, 1 basket  %u\n", s->users_single_basket);
    } else {
        printf("  no rows after the date   %u\n", s->users_no_test_rows);
        printf("  cold start (no training) %u\n", s->users_cold);
    }
    printf("  no new item              %u\n", s->users_no_new_item);
    printf("  only unseen test items   %u\n", s->users_only_unseen);
    printf("  test items               %llu\n", (unsigned long long)s->test_interactions);
    printf("  unseen items skipped     %llu\n", (unsigned long long)s->test_items_unseen);
    printf("  training interactions    %llu\n", (unsigned long long)s->train_interactions);
    printf("  rows held out            %llu\n", (unsigned long long)s->held_out_rows);
}

int fedreci_sim_describe(int argc, char **argv)
{
    static const char *const cmd = "fedrec-sim describe";
    describe_args args = {0, NULL};
    fedreci_sim_data_opts dopt;
    fedreci_sim_data_opts_default(&dopt);
    int rc = fedreci_sim_parse_opts(argc, argv, cmd, describe_options, &dopt, describe_opt, &args,
                                    describe_usage);
    const int json = args.json;
    if (json && args.versus) {
        fprintf(stderr, "%s: --versus prints a table: not with --json\n", cmd);
        return 2;
    }
    if (rc)
        return rc == 1 ? 0 : 2;
    if (!dopt.data) {
        fprintf(stderr, "%s: --data FILE is required\n", cmd);
        describe_usage(stderr);
        return 2;
    }
    const char *data = dopt.data;
    const int temporal = dopt.split && !strncmp(dopt.split, "date:", 5);
    fedreci_split_options so = {FEDRECI_SPLIT_LAST_BASKET, 0};
    if (temporal) {
        so.kind = FEDRECI_SPLIT_TEMPORAL;
        if (fedreci_parse_time(dopt.split + 5, &so.split_time)) {
            fprintf(stderr, "%s: --split '%s': '%s' is not a date\n", cmd, dopt.split,
                    dopt.split + 5);
            return 2;
        }
    }
    fedreci_dataset *d = NULL;
    fedreci_split *s = NULL;
    fedrec_err e = fedreci_dataset_load(&d, data, &dopt.ds, NULL);
    if (!e)
        e = fedreci_split_create(&s, d, &so);
    if (e) {
        fprintf(stderr, "fedrec-sim describe: %s: %s\n", fedrec_strerror(e), fedrec_errmsg());
        fedreci_dataset_destroy(d);
        return 1;
    }
    const fedreci_dataset_report *r = fedreci_dataset_report_get(d);
    char t0[32], t1[32];
    fmt_time(r->time_min, t0, sizeof t0);
    fmt_time(r->time_max, t1, sizeof t1);
    double density =
        r->customers && r->items ? (double)r->interactions / r->customers / r->items : 0.0;
    const char *split_name = temporal ? "temporal" : "leave-last-basket-out";
    rc = 0;

    if (json)
        rc = print_json(&dopt, r, s, t0, t1, density, split_name, temporal);
    else
        print_text(&dopt, r, s, t0, t1, density, split_name, temporal);
    if (!rc && args.versus)
        rc = print_versus(&dopt, args.versus, &so, d, s);
    fedreci_split_destroy(s);
    fedreci_dataset_destroy(d);
    return rc;
}

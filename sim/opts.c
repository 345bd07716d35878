/* fedrec-sim: option parsing shared by the subcommands (getopt_long), the
 * value parsers and the data options. */
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/opt.h"
#include "sim/sim.h"

enum {
    DOPT_DATA = FEDRECI_SIM_DATA_OPT_BASE,
    DOPT_ALPHA,
    DOPT_EPS,
    DOPT_STRICT,
    DOPT_KEEP_NON_PRODUCTS,
    DOPT_NON_PRODUCT,
    DOPT_SPLIT,
    DOPT_SPLIT_DATE,
    DOPT_FORMAT,
    DOPT_COLUMNS,
    DOPT_RATING_THRESHOLD,
};

static const struct option data_opts[] = {
    {"data", required_argument, NULL, DOPT_DATA},
    {"alpha", required_argument, NULL, DOPT_ALPHA},
    {"eps", required_argument, NULL, DOPT_EPS},
    {"strict", no_argument, NULL, DOPT_STRICT},
    {"keep-non-products", no_argument, NULL, DOPT_KEEP_NON_PRODUCTS},
    {"non-product", required_argument, NULL, DOPT_NON_PRODUCT},
    {"split", required_argument, NULL, DOPT_SPLIT},
    {"split-date", required_argument, NULL, DOPT_SPLIT_DATE},
    {"format", required_argument, NULL, DOPT_FORMAT},
    {"columns", required_argument, NULL, DOPT_COLUMNS},
    {"rating-threshold", required_argument, NULL, DOPT_RATING_THRESHOLD},
    {NULL, 0, NULL, 0},
};

#define MAX_OPTS 64

void fedreci_sim_data_opts_default(fedreci_sim_data_opts *o)
{
    memset(o, 0, sizeof *o);
    fedreci_dataset_options_default(&o->ds);
}

void fedreci_sim_data_usage(FILE *f)
{
    fprintf(
        f,
        "data options:\n"
        "  --data FILE             purchase log, CSV or gzip'd CSV (UCI Online Retail layout\n"
        "                          unless --format or --columns say otherwise)\n"
        "  --format F              column preset: online-retail (default: CustomerID,\n"
        "                          StockCode, InvoiceDate, Quantity, UnitPrice, InvoiceNo),\n"
        "                          movielens (userId, movieId, rating, timestamp) or generic\n"
        "                          (user, item, time, optional quantity)\n"
        "  --columns SPEC          role=column,... over the preset; roles user, item, time,\n"
        "                          quantity, price, basket, description, rating; a column\n"
        "                          is a header name or a 1-based position, empty for none\n"
        "                          (e.g. user=userId,item=movieId,time=timestamp,rating=rating)\n"
        "  --rating-threshold T    with a rating column: a rating >= T is one purchase,\n"
        "                          lower ratings are dropped (default 4); a rating is never\n"
        "                          used as a quantity\n"
        "  --split SPEC            lastbasket (default: each customer's last basket, new\n"
        "                          items only, is the test set) or date:YYYY-MM-DD\n"
        "                          (purchases from that day on are the test set);\n"
        "                          run only: validation or validation:date:YYYY-MM-DD is\n"
        "                          that split's validation split (the last basket of each\n"
        "                          customer's training rows; for tuning: the test rows are\n"
        "                          never read)\n"
        "  --split-date DATE       same as --split date:DATE\n"
        "  --alpha A               confidence c = 1 + A log(1 + q / eps) (default 1)\n"
        "  --eps E                 confidence quantity unit (default 1)\n"
        "  --keep-non-products     keep postage, fees and other non-product codes\n"
        "  --non-product LIST      comma-separated codes to drop instead of the default list\n"
        "  --strict                the first unparsable field is an error\n"
        "Every option takes its value as --opt VALUE or --opt=VALUE.\n");
}

/* Prints the message of a failed core/opt parser after the command's name. */
static int arg_fail(const char *cmd)
{
    fprintf(stderr, "%s: %s\n", cmd, fedrec_errmsg());
    return -1;
}

int fedreci_sim_arg_u32(const char *cmd, const char *name, const char *v, uint32_t lo, uint32_t hi,
                        uint32_t *out)
{
    return fedreci_opt_u32(name, v, lo, hi, out) ? arg_fail(cmd) : 0;
}

int fedreci_sim_arg_u64(const char *cmd, const char *name, const char *v, uint64_t *out)
{
    return fedreci_opt_u64(name, v, 0, UINT64_MAX, out) ? arg_fail(cmd) : 0;
}

int fedreci_sim_arg_double(const char *cmd, const char *name, const char *v, double lo, double hi,
                           double *out)
{
    return fedreci_opt_double(name, v, lo, hi, out) ? arg_fail(cmd) : 0;
}

/* Splits a comma-separated list in place into at most cap entries. */
static size_t split_list(char *s, const char **out, size_t cap)
{
    size_t n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(s, ",", &save); tok && n < cap; tok = strtok_r(NULL, ",", &save))
        out[n++] = tok;
    return n;
}

static int data_opt(fedreci_sim_data_opts *o, const char *cmd, int code, const char *name, char *v)
{
    static const char *none[1] = {""};
    switch (code) {
    case DOPT_DATA:
        o->data = v;
        return 0;
    case DOPT_ALPHA:
        return fedreci_sim_arg_double(cmd, name, v, 0.0, 1e9, &o->ds.alpha);
    case DOPT_EPS:
        return fedreci_opt_double_above(name, v, 0.0, 1e9, &o->ds.eps) ? arg_fail(cmd) : 0;
    case DOPT_STRICT:
        o->ds.strict = 1;
        return 0;
    case DOPT_KEEP_NON_PRODUCTS:
        o->ds.non_product = none;
        o->ds.n_non_product = 0;
        return 0;
    case DOPT_NON_PRODUCT:
        /* a copy: argv may be parsed again (sweep) */
        if ((size_t)snprintf(o->non_product_buf, sizeof o->non_product_buf, "%s", v) >=
            sizeof o->non_product_buf) {
            fprintf(stderr, "%s: %s: too long\n", cmd, name);
            return -1;
        }
        o->ds.n_non_product = split_list(o->non_product_buf, o->non_product, 256);
        o->ds.non_product = o->ds.n_non_product ? o->non_product : none;
        return 0;
    case DOPT_SPLIT: {
        const char *b = v;
        if (o->validation_ok && !strncmp(b, "validation", 10) && (b[10] == 0 || b[10] == ':'))
            b = b[10] ? b + 11 : "lastbasket";
        if (strcmp(b, "lastbasket") && strncmp(b, "date:", 5)) {
            fprintf(stderr, "%s: %s '%s': expected lastbasket or date:YYYY-MM-DD%s\n", cmd, name, v,
                    o->validation_ok ? ", optionally after validation:" : "");
            return -1;
        }
    }
        o->split = v;
        return 0;
    case DOPT_FORMAT:
        o->format = v;
        return 0;
    case DOPT_COLUMNS:
        if ((size_t)snprintf(o->columns_buf, sizeof o->columns_buf, "%s", v) >=
            sizeof o->columns_buf) {
            fprintf(stderr, "%s: %s: too long\n", cmd, name);
            return -1;
        }
        o->columns = v;
        return 0;
    case DOPT_RATING_THRESHOLD:
        return fedreci_sim_arg_double(cmd, name, v, -1e9, 1e9, &o->ds.rating_threshold);
    default: /* DOPT_SPLIT_DATE */
        if ((size_t)snprintf(o->split_buf, sizeof o->split_buf, "date:%s", v) >=
            sizeof o->split_buf) {
            fprintf(stderr, "%s: %s '%s': not a date\n", cmd, name, v);
            return -1;
        }
        o->split = o->split_buf;
        return 0;
    }
}

/* The spelling of the option with this code, for messages. */
static const char *opt_name(const struct option *all, int code, char *buf, size_t n)
{
    for (size_t i = 0; all[i].name; i++)
        if (all[i].val == code) {
            snprintf(buf, n, "--%s", all[i].name);
            return buf;
        }
    snprintf(buf, n, "-%c", code);
    return buf;
}

int fedreci_sim_parse_opts(int argc, char **argv, const char *cmd, const struct option *own,
                           fedreci_sim_data_opts *data, fedreci_sim_opt_fn fn, void *ctx,
                           void (*usage)(FILE *))
{
    struct option all[2 * MAX_OPTS + 2];
    size_t n = 0;
    for (size_t i = 0; own && own[i].name && n < MAX_OPTS; i++)
        all[n++] = own[i];
    for (size_t i = 0; data && data_opts[i].name; i++)
        all[n++] = data_opts[i];
    all[n++] = (struct option){"help", no_argument, NULL, 'h'};
    all[n] = (struct option){NULL, 0, NULL, 0};
    /* "+": stop at the first positional argument; ":": report a missing
       value as ':' (fedreci_opt_getopt_error names the option) */
    fedreci_opt_reset();
    for (;;) {
        int c = getopt_long(argc, argv, "+:h", all, NULL);
        if (c == -1)
            break;
        if (c == 'h') {
            usage(stdout);
            return 1;
        }
        if (c == '?' || c == ':') {
            fedrec_err e = fedreci_opt_getopt_error(c, argv, all);
            fprintf(stderr, "%s: %s\n", cmd, e ? fedrec_errmsg() : "bad option");
            return 2;
        }
        char name[80];
        opt_name(all, c, name, sizeof name);
        int r = c >= FEDRECI_SIM_DATA_OPT_BASE ? data_opt(data, cmd, c, name, optarg)
                                               : fn(ctx, c, name, optarg);
        if (r)
            return 2;
    }
    /* the preset first, then --columns over it, whatever their order */
    if (data && (data->format || data->columns)) {
        fedrec_err e = fedreci_dataset_format(data->format, &data->ds.columns);
        if (!e && data->columns)
            e = fedreci_dataset_columns_parse(data->columns_buf, &data->ds.columns);
        if (e) {
            fprintf(stderr, "%s: %s\n", cmd, fedrec_errmsg());
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "%s: unexpected argument '%s' (see --help)\n", cmd, argv[optind]);
        return 2;
    }
    return 0;
}

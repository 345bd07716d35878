/* `fedrec-sim split --export DIR`: the split every fedrec-sim command uses,
 * written as CSV so that another library can be run on exactly the same
 * training and test sets. */
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/json.h"
#include "sim/sim.h"

static void split_usage(FILE *f)
{
    fprintf(f, "usage: fedrec-sim split --data FILE --export DIR [data options]\n"
               "Loads, cleans and splits the log as run, baseline and describe do and writes\n"
               "into DIR:\n"
               "  users.csv   user_index,user_id        (the dense ids of the customers)\n"
               "  items.csv   item_index,item_code,description\n"
               "  train.csv   user_index,item_index,confidence   (one row per training pair,\n"
               "              confidence = 1 + alpha log(1 + quantity / eps))\n"
               "  test.csv    user_index,item_index     (each test customer's held-out items,\n"
               "              those unseen in training already skipped)\n"
               "  split.json  the options, the counts and the input's SHA-256\n"
               "Rank for a test customer every item except those in their training rows;\n"
               "docs/data.md defines the metrics fedrec reports on this split.\n"
               "  --export DIR   output folder (created)\n");
    fedreci_sim_data_usage(f);
}

enum { OPT_EXPORT = FEDRECI_SIM_OPT_BASE };

static int split_opt(void *ctx, int code, const char *name, const char *v)
{
    (void)code;
    (void)name;
    *(const char **)ctx = v;
    return 0;
}

/* A CSV field, quoted when it holds a comma, a quote or a line break. */
static void csv_field(FILE *f, const char *s)
{
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static FILE *open_out(const char *dir, const char *name, char *path, size_t n)
{
    if ((size_t)snprintf(path, n, "%s/%s", dir, name) >= n)
        return NULL;
    return fopen(path, "w");
}

static fedrec_err close_out(FILE *f, const char *path)
{
    int bad = ferror(f);
    if (fclose(f) || bad)
        return fedreci_error(FEDREC_ERR_IO, "%s: writing failed", path);
    return FEDREC_OK;
}

static fedrec_err write_ids(const fedreci_dataset *d, const fedreci_split *s, const char *dir)
{
    char path[4096];
    FILE *f = open_out(dir, "users.csv", path, sizeof path);
    if (!f)
        return fedreci_error(FEDREC_ERR_IO, "%s/users.csv: cannot write", dir);
    fprintf(f, "user_index,user_id\n");
    for (uint32_t u = 0; u < s->train.n_rows; u++) {
        fprintf(f, "%u,", u);
        csv_field(f, fedreci_dataset_user_name(d, u));
        fputc('\n', f);
    }
    fedrec_err e = close_out(f, path);
    if (e)
        return e;
    if (!(f = open_out(dir, "items.csv", path, sizeof path)))
        return fedreci_error(FEDREC_ERR_IO, "%s/items.csv: cannot write", dir);
    fprintf(f, "item_index,item_code,description\n");
    for (uint32_t i = 0; i < s->train.n_cols; i++) {
        fprintf(f, "%u,", i);
        csv_field(f, fedreci_dataset_item_code(d, i));
        fputc(',', f);
        csv_field(f, fedreci_dataset_item_description(d, i));
        fputc('\n', f);
    }
    return close_out(f, path);
}

static fedrec_err write_sets(const fedreci_split *s, const char *dir)
{
    char path[4096];
    FILE *f = open_out(dir, "train.csv", path, sizeof path);
    if (!f)
        return fedreci_error(FEDREC_ERR_IO, "%s/train.csv: cannot write", dir);
    fprintf(f, "user_index,item_index,confidence\n");
    const fedreci_mf_csr *r = &s->train;
    for (uint32_t u = 0; u < r->n_rows; u++)
        for (uint64_t j = r->indptr[u]; j < r->indptr[u + 1]; j++)
            fprintf(f, "%u,%u,%.9g\n", u, r->indices[j], (double)r->conf[j]);
    fedrec_err e = close_out(f, path);
    if (e)
        return e;
    if (!(f = open_out(dir, "test.csv", path, sizeof path)))
        return fedreci_error(FEDREC_ERR_IO, "%s/test.csv: cannot write", dir);
    fprintf(f, "user_index,item_index\n");
    for (uint32_t t = 0; t < s->n_test_users; t++) {
        uint32_t n;
        const uint32_t *items = fedreci_split_test(s, t, &n);
        for (uint32_t j = 0; j < n; j++)
            fprintf(f, "%u,%u\n", s->test_users[t], items[j]);
    }
    return close_out(f, path);
}

static fedrec_err write_meta(const fedreci_sim_data_opts *o, const fedreci_split *s,
                             const char *dir)
{
    char path[4096];
    fedreci_sim_provenance prov;
    fedrec_err e = fedreci_sim_provenance_init(&prov, o->data);
    FILE *f = e ? NULL : open_out(dir, "split.json", path, sizeof path);
    if (e)
        return e;
    if (!f)
        return fedreci_error(FEDREC_ERR_IO, "%s/split.json: cannot write", dir);
    fedreci_json w;
    fedreci_json_init_file(&w, f, FEDRECI_JSON_SPACED);
    fedreci_json_obj_begin(&w);
    const char *keys[] = {"data",       "split",        "format",
                          "columns",    "input_sha256", "fedrec_version",
                          "git_commit", "command_line", "started_utc"};
    const char *vals[] = {o->data,
                          o->split ? o->split : "lastbasket",
                          o->format ? o->format : "online-retail",
                          o->columns ? o->columns : "",
                          prov.input_sha256,
                          prov.version,
                          prov.commit,
                          prov.command_line,
                          prov.started_utc};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        fedreci_json_newline(&w, "  ");
        fedreci_json_kstr(&w, keys[i], vals[i]);
    }
    const char *nk[] = {"users",
                        "items",
                        "test_users",
                        "train_interactions",
                        "test_interactions",
                        "test_items_unseen"};
    uint64_t nv[] = {s->train.n_rows,       s->train.n_cols,      s->n_test_users,
                     s->train_interactions, s->test_interactions, s->test_items_unseen};
    for (size_t i = 0; i < sizeof nk / sizeof nk[0]; i++) {
        fedreci_json_newline(&w, "  ");
        fedreci_json_ku64(&w, nk[i], nv[i]);
    }
    fedreci_json_newline(&w, "  ");
    fedreci_json_kdouble(&w, "alpha", "%g", o->ds.alpha);
    fedreci_json_newline(&w, "  ");
    fedreci_json_kdouble(&w, "eps", "%g", o->ds.eps);
    fedreci_json_newline(&w, "");
    fedreci_json_obj_end(&w);
    e = fedreci_json_finish(&w, NULL, NULL);
    fputc('\n', f);
    fedrec_err ec = close_out(f, path);
    return e ? e : ec;
}

int fedreci_sim_split(int argc, char **argv)
{
    static const char *const cmd = "fedrec-sim split";
    static const struct option opts[] = {{"export", required_argument, NULL, OPT_EXPORT},
                                         {NULL, 0, NULL, 0}};
    fedreci_sim_data_opts o;
    fedreci_sim_data_opts_default(&o);
    const char *dir = NULL;
    int rc = fedreci_sim_parse_opts(argc, argv, cmd, opts, &o, split_opt, &dir, split_usage);
    if (rc)
        return rc == 1 ? 0 : 2;
    if (!dir || !o.data) {
        fprintf(stderr, "%s: --data FILE and --export DIR are required (see --help)\n", cmd);
        return 2;
    }
    fedreci_dataset *d = NULL;
    fedreci_split *s = NULL;
    if (fedreci_sim_load(&o, cmd, &d, &s))
        return 1;
    fedrec_err e = fedreci_sim_make_dir(dir);
    if (!e)
        e = write_ids(d, s, dir);
    if (!e)
        e = write_sets(s, dir);
    if (!e)
        e = write_meta(&o, s, dir);
    if (e)
        fprintf(stderr, "%s: error: %s: %s\n", cmd, fedrec_strerror(e), fedrec_errmsg());
    else
        printf("%s: %u users, %u items, %llu training pairs, %u test customers: %s/users.csv, "
               "items.csv, train.csv, test.csv, split.json\n",
               cmd, s->train.n_rows, s->train.n_cols, (unsigned long long)s->train_interactions,
               s->n_test_users, dir);
    fedreci_split_destroy(s);
    fedreci_dataset_destroy(d);
    return e ? 1 : 0;
}

/* `fedrec-sim synth`: a purchase log grown S-fold from a real one (the
 * construction is described in sim/synth.h), and the log statistics that
 * `describe --versus` prints side by side. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "core/err.h"
#include "core/rng.h"
#include "sim/sim.h"
#include "sim/synth.h"

/* ---- statistics ------------------------------------------------------------------------- */

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static int cmp_u64_asc(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Mean, nearest-rank median and 90th percentile of v (sorted in place). */
static void spread(uint32_t *v, size_t n, double *mean, double *p50, double *p90)
{
    *mean = *p50 = *p90 = 0;
    if (!n)
        return;
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += v[i];
    qsort(v, n, sizeof *v, cmp_u32);
    *mean = sum / (double)n;
    *p50 = v[(n * 50 + 99) / 100 - 1];
    *p90 = v[(n * 90 + 99) / 100 - 1];
}

/* Gini of v (sorted in place, ascending): sum_i (2i - n - 1) v_i / (n sum v). */
static double gini(uint32_t *v, size_t n)
{
    qsort(v, n, sizeof *v, cmp_u32);
    double num = 0, sum = 0;
    for (size_t i = 0; i < n; i++) {
        num += (2.0 * (double)(i + 1) - (double)n - 1.0) * v[i];
        sum += v[i];
    }
    return n && sum > 0 ? num / ((double)n * sum) : 0.0;
}

fedrec_err fedreci_sim_log_stats_get(const fedreci_dataset *d, const fedreci_split *s,
                                     fedreci_sim_log_stats *st)
{
    memset(st, 0, sizeof *st);
    const fedreci_dataset_report *r = fedreci_dataset_report_get(d);
    uint64_t n_ev = 0;
    const fedreci_dataset_event *ev = fedreci_dataset_events(d, &n_ev);
    fedreci_mf_csr m = fedreci_dataset_csr(d);
    st->shoppers = r->customers;
    st->items = r->items;
    st->rows = r->rows_kept;
    st->baskets = r->baskets;
    st->interactions = r->interactions;
    if (s) {
        st->test_users = s->n_test_users;
        st->train_interactions = s->train_interactions;
    }
    size_t nb = r->baskets ? (size_t)r->baskets : 1, nu = m.n_rows ? m.n_rows : 1;
    size_t ni = m.n_cols ? m.n_cols : 1;
    uint32_t *per_basket = calloc(nb, sizeof *per_basket);
    uint32_t *per_user = calloc(nu, sizeof *per_user);
    uint32_t *buyers = calloc(ni, sizeof *buyers);
    uint32_t *last = malloc(nu * sizeof *last);
    if (!per_basket || !per_user || !buyers || !last) {
        free(per_basket);
        free(per_user);
        free(buyers);
        free(last);
        return fedreci_error(FEDREC_ERR_NOMEM, "describe: statistics of %u shoppers", r->customers);
    }
    memset(last, 0xff, nu * sizeof *last);
    for (uint64_t e = 0; e < n_ev; e++) {
        if (ev[e].basket < nb)
            per_basket[ev[e].basket]++;
        if (last[ev[e].user] != ev[e].basket) { /* a user's rows of one basket are adjacent */
            last[ev[e].user] = ev[e].basket;
            per_user[ev[e].user]++;
        }
    }
    for (uint32_t u = 0; u < m.n_rows; u++)
        for (uint64_t j = m.indptr[u]; j < m.indptr[u + 1]; j++)
            buyers[m.indices[j]]++;
    spread(per_user, m.n_rows, &st->baskets_per_shopper, &st->baskets_per_shopper_p50,
           &st->baskets_per_shopper_p90);
    spread(per_basket, r->baskets, &st->rows_per_basket, &st->rows_per_basket_p50,
           &st->rows_per_basket_p90);
    st->items_per_shopper = m.n_rows ? (double)r->interactions / m.n_rows : 0;
    st->gini = gini(buyers, m.n_cols); /* sorts buyers ascending */
    size_t top = (m.n_cols + 99) / 100;
    double on_top = 0;
    for (size_t i = 0; i < top && i < m.n_cols; i++)
        on_top += buyers[m.n_cols - 1 - i];
    st->top1_share = r->interactions ? on_top / (double)r->interactions : 0;
    free(per_basket);
    free(per_user);
    free(buyers);
    free(last);
    return FEDREC_OK;
}

void fedreci_sim_log_stats_print(FILE *f, const char *na, const fedreci_sim_log_stats *a,
                                 const char *nb, const fedreci_sim_log_stats *b)
{
    struct {
        const char *name;
        double va, vb;
        int integer;
    } rows[] = {
        {"shoppers", a->shoppers, b->shoppers, 1},
        {"items", a->items, b->items, 1},
        {"rows (purchase lines)", (double)a->rows, (double)b->rows, 1},
        {"baskets", (double)a->baskets, (double)b->baskets, 1},
        {"shopper-item pairs", (double)a->interactions, (double)b->interactions, 1},
        {"baskets per shopper, mean", a->baskets_per_shopper, b->baskets_per_shopper, 0},
        {"baskets per shopper, median", a->baskets_per_shopper_p50, b->baskets_per_shopper_p50, 0},
        {"baskets per shopper, p90", a->baskets_per_shopper_p90, b->baskets_per_shopper_p90, 0},
        {"rows per basket, mean", a->rows_per_basket, b->rows_per_basket, 0},
        {"rows per basket, median", a->rows_per_basket_p50, b->rows_per_basket_p50, 0},
        {"rows per basket, p90", a->rows_per_basket_p90, b->rows_per_basket_p90, 0},
        {"distinct items per shopper", a->items_per_shopper, b->items_per_shopper, 0},
        {"popularity Gini (buyers/item)", a->gini, b->gini, 0},
        {"pairs on the top 1% items", a->top1_share, b->top1_share, 0},
        {"test shoppers", a->test_users, b->test_users, 1},
        {"training pairs", (double)a->train_interactions, (double)b->train_interactions, 1},
    };
    /* a column is as wide as its title (a file name is never cut), 16 at least */
    size_t la = strlen(na), lb = strlen(nb);
    int wa = la > 16 ? (la < 4096 ? (int)la : 4096) : 16;
    int wb = lb > 16 ? (lb < 4096 ? (int)lb : 4096) : 16;
    fprintf(f, "%-32s %*s %*s %10s\n", "statistic", wa, na, wb, nb, "ratio");
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char ratio[32] = "-";
        if (rows[i].va != 0)
            snprintf(ratio, sizeof ratio, "%.4f", rows[i].vb / rows[i].va);
        if (rows[i].integer)
            fprintf(f, "%-32s %*.0f %*.0f %10s\n", rows[i].name, wa, rows[i].va, wb, rows[i].vb,
                    ratio);
        else
            fprintf(f, "%-32s %*.4f %*.4f %10s\n", rows[i].name, wa, rows[i].va, wb, rows[i].vb,
                    ratio);
    }
}

/* ---- the generator ---------------------------------------------------------------------- */

typedef struct synth_opts {
    fedreci_sim_data_opts data;
    uint32_t scale, items_scale, band;
    uint64_t seed;
    const char *out;
} synth_opts;

enum { OPT_SCALE = FEDRECI_SIM_OPT_BASE, OPT_ITEMS_SCALE, OPT_BAND, OPT_SEED, OPT_OUT };

static const struct option synth_options[] = {
    {"scale", required_argument, NULL, OPT_SCALE},
    {"items-scale", required_argument, NULL, OPT_ITEMS_SCALE},
    {"band", required_argument, NULL, OPT_BAND},
    {"seed", required_argument, NULL, OPT_SEED},
    {"out", required_argument, NULL, OPT_OUT},
    {NULL, 0, NULL, 0},
};

static const char *const cmd = "fedrec-sim synth";

static void synth_usage(FILE *f)
{
    fprintf(f, "usage: fedrec-sim synth --data FILE --scale S --out FILE [options]\n"
               "Grows the cleaned purchase log S-fold into a new log that run, baseline,\n"
               "describe and split read: copy c of every shopper is a new shopper with the\n"
               "same baskets, times and quantities, each item replaced by a seeded\n"
               "permutation of its popularity band (copy 0 is the real log). Exactly S\n"
               "times the shoppers, rows, baskets and pairs; the same baskets per shopper\n"
               "and rows per basket; a popularity Gini between the band-averaged and the\n"
               "real one (docs/scale.md). `fedrec-sim describe --data OUT --versus FILE`\n"
               "prints both side by side.\n"
               "  --scale S         copies of every shopper (1..100000)\n"
               "  --out FILE        the log to write (CSV; gzip'd when FILE ends in .gz):\n"
               "                    InvoiceNo,StockCode,Quantity,InvoiceDate,CustomerID\n"
               "  --items-scale C   a catalog C times larger: every item gets C variants and\n"
               "                    copy c buys variant c mod C (C must divide S; default 1)\n"
               "  --band B          items per popularity band (default 8)\n"
               "  --seed N          seed of the permutations (default 1)\n");
    fedreci_sim_data_usage(f);
}

static int synth_opt(void *ctx, int code, const char *name, const char *v)
{
    synth_opts *o = ctx;
    switch (code) {
    case OPT_SCALE:
        return fedreci_sim_arg_u32(cmd, name, v, 1, 100000, &o->scale);
    case OPT_ITEMS_SCALE:
        return fedreci_sim_arg_u32(cmd, name, v, 1, 1000, &o->items_scale);
    case OPT_BAND:
        return fedreci_sim_arg_u32(cmd, name, v, 1, 1u << 20, &o->band);
    case OPT_SEED:
        return fedreci_sim_arg_u64(cmd, name, v, &o->seed);
    default:
        o->out = v;
        return 0;
    }
}

/* The output: gzip (level 1) or plain. */
typedef struct sink {
    gzFile gz;
    FILE *f;
} sink;

static int sink_write(sink *k, const char *buf, size_t n)
{
    if (k->gz)
        return gzwrite(k->gz, buf, (unsigned)n) == (int)n ? 0 : -1;
    return fwrite(buf, 1, n, k->f) == n ? 0 : -1;
}

/* Appends s to buf at *len, quoted when it holds a comma, quote or break. */
static void put_field(char *buf, size_t *len, const char *s)
{
    if (!strpbrk(s, ",\"\r\n")) {
        size_t n = strlen(s);
        memcpy(buf + *len, s, n);
        *len += n;
        return;
    }
    buf[(*len)++] = '"';
    for (; *s; s++) {
        if (*s == '"')
            buf[(*len)++] = '"';
        buf[(*len)++] = *s;
    }
    buf[(*len)++] = '"';
}

/* Items ranked by buyers (descending; ties by id): rank_item[r]. */
static uint32_t *rank_items(const fedreci_dataset *d)
{
    fedreci_mf_csr m = fedreci_dataset_csr(d);
    uint64_t *key = calloc(m.n_cols ? m.n_cols : 1, sizeof *key);
    uint32_t *rank = malloc((m.n_cols ? m.n_cols : 1) * sizeof *rank);
    if (!key || !rank) {
        free(key);
        free(rank);
        return NULL;
    }
    for (uint64_t j = 0; j < m.indptr[m.n_rows]; j++)
        key[m.indices[j]] += 1ull << 32;
    /* descending buyers, then ascending id: sort (UINT32_MAX - buyers, id) ascending */
    for (uint32_t i = 0; i < m.n_cols; i++)
        key[i] = ((0xffffffffull - (key[i] >> 32)) << 32) | i;
    qsort(key, m.n_cols, sizeof *key, cmp_u64_asc);
    for (uint32_t i = 0; i < m.n_cols; i++)
        rank[i] = (uint32_t)key[i];
    free(key);
    return rank;
}

/* Copy c's item map: a seeded permutation inside every band of `band`
 * consecutive ranks (copy 0: the identity). perm: band words of scratch. */
static void copy_map(const uint32_t *rank, uint32_t ni, uint32_t band, uint64_t seed, uint32_t c,
                     uint32_t *perm, uint32_t *map)
{
    for (uint32_t r0 = 0; r0 < ni; r0 += band) {
        uint32_t n = ni - r0 < band ? ni - r0 : band;
        for (uint32_t j = 0; j < n; j++)
            perm[j] = j;
        fedreci_rng g =
            fedreci_rng_seeded(fedreci_rng_mix(fedreci_rng_mix(seed ^ 0x73796e7468ull) ^ c) ^ r0);
        for (uint32_t j = n; c && j > 1; j--) {
            uint32_t t = (uint32_t)fedreci_rng_below(&g, j), x = perm[j - 1];
            perm[j - 1] = perm[t];
            perm[t] = x;
        }
        for (uint32_t j = 0; j < n; j++)
            map[rank[r0 + j]] = rank[r0 + perm[j]];
    }
}

/* An item and its confidence, for sorting a mapped row. */
typedef struct pair {
    uint32_t item;
    float conf;
} pair;

static int cmp_pair(const void *a, const void *b)
{
    uint32_t x = ((const pair *)a)->item, y = ((const pair *)b)->item;
    return x < y ? -1 : x > y;
}

fedrec_err fedreci_sim_synth_split(const fedreci_dataset *d, const fedreci_split *s, uint32_t scale,
                                   uint32_t band, uint64_t seed, fedreci_split **out)
{
    const fedreci_mf_csr *r = &s->train;
    const uint32_t nu = r->n_rows, ni = r->n_cols;
    if (!scale || !band || (uint64_t)nu * scale >= UINT32_MAX)
        return fedreci_error(FEDREC_ERR_INVALID, "--synth-scale %u: %u shoppers is too many", scale,
                             nu);
    const uint32_t n = nu * scale, nt = s->n_test_users * scale;
    const uint64_t nnz = r->indptr[nu] * scale, tnnz = s->test_indptr[s->n_test_users] * scale;
    uint64_t *indptr = malloc(((size_t)n + 1) * sizeof *indptr);
    uint32_t *indices = malloc((nnz ? nnz : 1) * sizeof *indices);
    float *conf = malloc((nnz ? nnz : 1) * sizeof *conf);
    uint32_t *tusers = malloc(((size_t)nt + 1) * sizeof *tusers);
    uint64_t *tindptr = malloc(((size_t)nt + 1) * sizeof *tindptr);
    uint32_t *titems = malloc((tnnz ? tnnz : 1) * sizeof *titems);
    uint32_t *rank = rank_items(d), *map = malloc((ni ? ni : 1) * sizeof *map);
    uint32_t *perm = malloc((size_t)band * sizeof *perm);
    pair *row = malloc((ni ? ni : 1) * sizeof *row);
    if (!indptr || !indices || !conf || !tusers || !tindptr || !titems || !rank || !map || !perm ||
        !row || fedreci_dataset_n_items(d) != ni) {
        free(indptr);
        free(indices);
        free(conf);
        free(tusers);
        free(tindptr);
        free(titems);
        free(rank);
        free(map);
        free(perm);
        free(row);
        return fedreci_error(FEDREC_ERR_NOMEM, "--synth-scale %u: %u shoppers", scale, n);
    }
    uint64_t k = 0, tk = 0;
    uint32_t t_out = 0;
    indptr[0] = 0;
    tindptr[0] = 0;
    for (uint32_t c = 0; c < scale; c++) {
        copy_map(rank, ni, band, seed, c, perm, map);
        for (uint32_t u = 0; u < nu; u++) {
            uint32_t len = 0;
            for (uint64_t j = r->indptr[u]; j < r->indptr[u + 1]; j++, len++) {
                row[len].item = map[r->indices[j]];
                row[len].conf = r->conf[j];
            }
            qsort(row, len, sizeof *row, cmp_pair);
            for (uint32_t j = 0; j < len; j++, k++) {
                indices[k] = row[j].item;
                conf[k] = row[j].conf;
            }
            indptr[(size_t)c * nu + u + 1] = k;
        }
        for (uint32_t t = 0; t < s->n_test_users; t++, t_out++) {
            uint32_t len;
            const uint32_t *items = fedreci_split_test(s, t, &len);
            uint32_t *dst = titems + tk;
            for (uint32_t j = 0; j < len; j++)
                dst[j] = map[items[j]];
            qsort(dst, len, sizeof *dst, cmp_u32);
            tk += len;
            tusers[t_out] = c * nu + s->test_users[t];
            tindptr[t_out + 1] = tk;
        }
    }
    free(rank);
    free(map);
    free(perm);
    free(row);
    fedreci_split counts = *s;
    counts.users = s->users * scale;
    counts.users_single_basket = s->users_single_basket * scale;
    counts.users_no_new_item = s->users_no_new_item * scale;
    counts.users_no_test_rows = s->users_no_test_rows * scale;
    counts.users_cold = s->users_cold * scale;
    counts.users_only_unseen = s->users_only_unseen * scale;
    counts.train_rows = s->train_rows * scale;
    counts.held_out_rows = s->held_out_rows * scale;
    counts.test_items_unseen = s->test_items_unseen * scale;
    return fedreci_split_adopt(out, n, ni, indptr, indices, conf, nt, tusers, tindptr, titems,
                               &counts);
}

/* Writes the S copies of d's kept rows to k. */
static fedrec_err synth_write(const synth_opts *o, const fedreci_dataset *d, sink *k,
                              uint64_t *rows_out)
{
    const uint32_t ni = fedreci_dataset_n_items(d), nu = fedreci_dataset_n_users(d);
    uint64_t n_ev = 0;
    const fedreci_dataset_event *ev = fedreci_dataset_events(d, &n_ev);
    uint32_t *rank = rank_items(d);
    uint32_t *map = malloc((ni ? ni : 1) * sizeof *map);
    uint32_t *perm = malloc((size_t)o->band * sizeof *perm);
    size_t cap = 1u << 20, len = 0;
    char *buf = malloc(cap + 4 * 4096);
    fedrec_err e = FEDREC_OK;
    if (!rank || !map || !perm || !buf)
        e = fedreci_error(FEDREC_ERR_NOMEM, "buffers for %u items", ni);
    static const char header[] = "InvoiceNo,StockCode,Quantity,InvoiceDate,CustomerID\n";
    if (!e && sink_write(k, header, sizeof header - 1))
        e = fedreci_error(FEDREC_ERR_IO, "%s: write failed", o->out);
    for (uint32_t c = 0; c < o->scale && !e; c++) {
        copy_map(rank, ni, o->band, o->seed, c, perm, map);
        uint32_t variant = c % o->items_scale;
        for (uint64_t i = 0; i < n_ev && !e; i++) {
            const fedreci_dataset_event *x = &ev[i];
            const char *basket = fedreci_dataset_basket_name(d, x->basket);
            const char *code = fedreci_dataset_item_code(d, map[x->item]);
            if (strlen(basket) + strlen(code) > 1000) {
                e = fedreci_error(FEDREC_ERR_TOO_BIG, "basket %s: name too long", basket);
                break;
            }
            len += (size_t)snprintf(buf + len, 32, "%u-", c);
            put_field(buf, &len, basket);
            buf[len++] = ',';
            put_field(buf, &len, code);
            if (variant)
                len += (size_t)snprintf(buf + len, 32, "-v%u", variant);
            len += (size_t)snprintf(buf + len, 128, ",%.15g,%lld,%llu\n", x->quantity,
                                    (long long)x->time, (unsigned long long)c * nu + x->user + 1u);
            if (len >= cap) {
                if (sink_write(k, buf, len))
                    e = fedreci_error(FEDREC_ERR_IO, "%s: write failed", o->out);
                len = 0;
            }
        }
    }
    if (!e && len && sink_write(k, buf, len))
        e = fedreci_error(FEDREC_ERR_IO, "%s: write failed", o->out);
    *rows_out = n_ev * o->scale;
    free(buf);
    free(perm);
    free(map);
    free(rank);
    return e;
}

int fedreci_sim_synth(int argc, char **argv)
{
    synth_opts o;
    memset(&o, 0, sizeof o);
    fedreci_sim_data_opts_default(&o.data);
    o.items_scale = 1;
    o.band = 8;
    o.seed = 1;
    int rc =
        fedreci_sim_parse_opts(argc, argv, cmd, synth_options, &o.data, synth_opt, &o, synth_usage);
    if (rc)
        return rc == 1 ? 0 : 2;
    if (!o.data.data || !o.out || !o.scale) {
        fprintf(stderr, "%s: --data FILE, --scale S and --out FILE are required (see --help)\n",
                cmd);
        return 2;
    }
    if (o.scale % o.items_scale) {
        fprintf(stderr, "%s: --items-scale %u must divide --scale %u\n", cmd, o.items_scale,
                o.scale);
        return 2;
    }
    /* the log is read whole before --out is opened, so --out naming the log
       would replace the shopper data with the synthetic log */
    if (fedreci_sim_same_file(o.data.data, o.out)) {
        fprintf(stderr,
                "%s: --out %s is the --data log itself: it would be overwritten (choose another "
                "file)\n",
                cmd, o.out);
        return 2;
    }
    fedreci_dataset *d = NULL;
    fedrec_err e = fedreci_dataset_load(&d, o.data.data, &o.data.ds, NULL);
    if (e) {
        fprintf(stderr, "%s: %s: %s\n", cmd, fedrec_strerror(e), fedrec_errmsg());
        return 1;
    }
    size_t n = strlen(o.out);
    sink k = {NULL, NULL};
    if (n > 3 && !strcmp(o.out + n - 3, ".gz")) {
        if ((k.gz = gzopen(o.out, "wb1")))
            gzbuffer(k.gz, 1u << 20);
    } else {
        k.f = fopen(o.out, "w");
    }
    uint64_t rows = 0;
    if (!k.gz && !k.f)
        e = fedreci_error(FEDREC_ERR_IO, "%s: cannot write: %s", o.out,
                          errno ? strerror(errno) : "out of memory");
    if (!e)
        e = synth_write(&o, d, &k, &rows);
    if (k.gz && gzclose(k.gz) != Z_OK && !e)
        e = fedreci_error(FEDREC_ERR_IO, "%s: closing failed", o.out);
    if (k.f && (ferror(k.f) | fclose(k.f)) && !e)
        e = fedreci_error(FEDREC_ERR_IO, "%s: closing failed", o.out);
    if (e)
        fprintf(stderr, "%s: %s: %s\n", cmd, fedrec_strerror(e), fedrec_errmsg());
    else
        printf("%s: %llu shoppers, %llu items, %llu rows (%u copies, band %u, items x %u) -> %s\n",
               cmd, (unsigned long long)fedreci_dataset_n_users(d) * o.scale,
               (unsigned long long)fedreci_dataset_n_items(d) * o.items_scale,
               (unsigned long long)rows, o.scale, o.band, o.items_scale, o.out);
    fedreci_dataset_destroy(d);
    return e ? 1 : 0;
}

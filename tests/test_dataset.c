/* Tests for core/dataset: the full bundled log's figures, a hand-computed
 * fixture, column mapping, gzip, and malformed inputs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <zlib.h>

#include "core/dataset/dataset.h"
#include "core/err.h"

static char tmpdir[256];

static const char *fixture(const char *name, const char *text)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
    assert_int_equal(fclose(f), 0);
    return path;
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/fedrec_test_dataset_XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static const char *const FULL = FEDREC_DATA_DIR "/online_retail.csv.gz";

/* ---- the full bundled log ------------------------------------------------- */

static void test_full_log_without_non_product_rule(void **state)
{
    (void)state;
    fedreci_dataset_options o;
    fedreci_dataset_options_default(&o);
    static const char *const none[1] = {""};
    o.non_product = none;
    o.n_non_product = 0;
    fedreci_dataset *d = NULL;
    fedreci_dataset_report r;
    assert_int_equal(fedreci_dataset_load(&d, FULL, &o, &r), FEDREC_OK);
    assert_int_equal(r.rows_read, 541909);
    assert_int_equal(r.raw_customers, 4372);
    assert_int_equal(r.raw_items, 4070);
    assert_int_equal(r.rows_kept, 397884);
    assert_int_equal(r.customers, 4338);
    assert_int_equal(r.items, 3665);
    assert_int_equal(r.interactions, 266792);
    assert_int_equal(r.dropped_non_product, 0);
    assert_int_equal(fedreci_dataset_n_users(d), 4338);
    fedreci_dataset_destroy(d);
}

static void test_full_log_default_rules(void **state)
{
    (void)state;
    fedreci_dataset *d = NULL;
    fedreci_dataset_report r;
    assert_int_equal(fedreci_dataset_load(&d, FULL, NULL, &r), FEDREC_OK);
    /* docs/data.md, "Figures of the full log" */
    assert_int_equal(r.rows_read, 541909);
    assert_int_equal(r.dropped_unparsable, 0);
    assert_int_equal(r.dropped_no_customer, 135080);
    assert_int_equal(r.dropped_cancelled, 8905);
    assert_int_equal(r.dropped_quantity, 0);
    assert_int_equal(r.dropped_price, 40);
    assert_int_equal(r.dropped_non_product, 1544);
    assert_int_equal(r.rows_kept, 396340);
    assert_int_equal(r.rows_kept + r.dropped_unparsable + r.dropped_no_customer +
                         r.dropped_cancelled + r.dropped_quantity + r.dropped_price +
                         r.dropped_non_product,
                     r.rows_read);
    assert_int_equal(r.raw_customers, 4372);
    assert_int_equal(r.raw_items, 4070);
    assert_int_equal(r.customers, 4334);
    assert_int_equal(r.items, 3660);
    assert_int_equal(r.interactions, 266224);
    assert_int_equal(r.baskets, 18402);
    /* 2010-12-01 08:26 to 2011-12-09 12:50 */
    assert_int_equal(r.time_min, 1291191960);
    assert_int_equal(r.time_max, 1323435000);

    /* the CSR is a valid fedreci_mf_csr: ascending indices, conf >= 1 */
    fedreci_mf_csr m = fedreci_dataset_csr(d);
    assert_int_equal(m.n_rows, 4334);
    assert_int_equal(m.n_cols, 3660);
    assert_int_equal(m.indptr[m.n_rows], 266224);
    for (uint32_t u = 0; u < m.n_rows; u++) {
        assert_true(m.indptr[u + 1] > m.indptr[u]);
        for (uint64_t k = m.indptr[u]; k < m.indptr[u + 1]; k++) {
            assert_true(m.indices[k] < m.n_cols);
            assert_true(m.conf[k] > 1.0f);
            if (k > m.indptr[u])
                assert_true(m.indices[k] > m.indices[k - 1]);
        }
    }
    /* ids: customers numeric order, items by code */
    assert_string_equal(fedreci_dataset_user_name(d, 0), "12346");
    assert_string_equal(fedreci_dataset_user_name(d, 4333), "18287");
    assert_string_equal(fedreci_dataset_item_code(d, 0), "10002");
    uint32_t it = 0;
    assert_int_equal(fedreci_dataset_item_find(d, "85123A", &it), FEDREC_OK);
    assert_string_equal(fedreci_dataset_item_code(d, it), "85123A");
    assert_string_equal(fedreci_dataset_item_description(d, it),
                        "WHITE HANGING HEART T-LIGHT HOLDER");
    assert_int_equal(fedreci_dataset_item_find(d, "POST", &it), FEDREC_ERR_NOT_FOUND);
    uint32_t u = 0;
    assert_int_equal(fedreci_dataset_user_find(d, "17850", &u), FEDREC_OK);
    assert_string_equal(fedreci_dataset_user_name(d, u), "17850");
    assert_int_equal(fedreci_dataset_user_find(d, "99999", &u), FEDREC_ERR_NOT_FOUND);
    fedreci_dataset_destroy(d);
}

static void test_december_extract(void **state)
{
    (void)state;
    fedreci_dataset *d = NULL;
    fedreci_dataset_report r;
    assert_int_equal(
        fedreci_dataset_load(&d, FEDREC_DATA_DIR "/online_retail_2010-12.csv.gz", NULL, &r),
        FEDREC_OK);
    assert_int_equal(r.rows_read, 42481);
    assert_int_equal(r.raw_customers, 948);
    assert_int_equal(r.raw_items, 2822);
    fedreci_dataset_destroy(d);
}

/* ---- a hand-computed fixture ---------------------------------------------- */

static const char *const FIX =
    "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
    "1001,B2,\"Mug, \"\"large\"\"\",2,2011-01-02 10:00:00,1.5,17850,UK\n"
    "1001,A1,Plate,1,2011-01-02 10:00:00,2.0,17850,UK\n"
    "1001,A1,,3,2011-01-02 10:00:00,2.0,17850,UK\n"
    "1002,A1,Plate,4,2011-01-03 09:00:00,2.0,17850,UK\n"
    "1003,A1,Plate,1,2011-01-03 09:00:00,2.0,,UK\n"
    "C1004,A1,Plate,-1,2011-01-04 09:00:00,2.0,17850,UK\n"
    "1005,A1,Plate,0,2011-01-04 09:00:00,2.0,12346,UK\n"
    "1006,A1,Plate,1,2011-01-04 09:00:00,0,12346,UK\n"
    "1007,POST,POSTAGE,1,2011-01-04 09:00:00,18,12346,UK\n"
    "1008,gift_0001_20,voucher,1,2011-01-04 09:00:00,20,12346,UK\n"
    "1009,m,Manual,1,2011-01-04 09:00:00,1,12346,UK\n"
    "1010,B2,Mug,1,2011-01-05 09:00:00,1.5,9,UK\n"
    "1011,Z9,Thing,abc,2011-01-05 09:00:00,1.5,9,UK\n"
    "1012,Z9,Thing,1,2011-01-05,1.5,9\n"
    "1013,C3,\"Candle\",5,2011-01-06 12:30:00,0.5,abc,UK";

static void check_fixture(const fedreci_dataset *d, const fedreci_dataset_report *r)
{
    assert_int_equal(r->rows_read, 15);
    assert_int_equal(r->dropped_unparsable, 2);
    assert_int_equal(r->dropped_no_customer, 1);
    assert_int_equal(r->dropped_cancelled, 1);
    assert_int_equal(r->dropped_quantity, 1);
    assert_int_equal(r->dropped_price, 1);
    assert_int_equal(r->dropped_non_product, 3);
    assert_int_equal(r->rows_kept, 6);
    assert_int_equal(r->raw_customers, 4);
    assert_int_equal(r->raw_items, 7);
    assert_int_equal(r->customers, 3);
    assert_int_equal(r->items, 3);
    assert_int_equal(r->interactions, 4);
    assert_int_equal(r->baskets, 4);
    assert_int_equal(r->time_min, 1293962400);
    assert_int_equal(r->time_max, 1294317000);

    /* numeric customers first, by value; then others */
    assert_string_equal(fedreci_dataset_user_name(d, 0), "9");
    assert_string_equal(fedreci_dataset_user_name(d, 1), "17850");
    assert_string_equal(fedreci_dataset_user_name(d, 2), "abc");
    assert_string_equal(fedreci_dataset_item_code(d, 0), "A1");
    assert_string_equal(fedreci_dataset_item_code(d, 1), "B2");
    assert_string_equal(fedreci_dataset_item_code(d, 2), "C3");
    assert_string_equal(fedreci_dataset_item_description(d, 1), "Mug, \"large\"");
    assert_string_equal(fedreci_dataset_item_description(d, 0), "Plate");

    fedreci_mf_csr m = fedreci_dataset_csr(d);
    const uint64_t indptr[] = {0, 1, 3, 4};
    const uint32_t idx[] = {1, 0, 1, 2};
    const double q[] = {1, 8, 2, 5};
    const uint32_t nb[] = {1, 2, 1, 1};
    for (int i = 0; i < 4; i++)
        assert_int_equal(m.indptr[i], indptr[i]);
    for (int k = 0; k < 4; k++) {
        assert_int_equal(m.indices[k], idx[k]);
        assert_true(fedreci_dataset_quantity(d)[k] == q[k]);
        assert_int_equal(fedreci_dataset_basket_count(d)[k], nb[k]);
        assert_float_equal(m.conf[k], 1.0 + log1p(q[k]), 1e-6);
    }
    fedreci_mf_user u1 = fedreci_dataset_user(d, 1);
    assert_int_equal(u1.n, 2);
    assert_int_equal(u1.items[0], 0);

    /* events sorted by (user, time, basket, item) */
    uint64_t n;
    const fedreci_dataset_event *ev = fedreci_dataset_events(d, &n);
    assert_int_equal(n, 6);
    assert_int_equal(ev[0].user, 0);
    assert_int_equal(ev[1].user, 1);
    assert_int_equal(ev[1].item, 0);
    assert_int_equal(ev[2].item, 0);
    assert_int_equal(ev[3].item, 1);
    assert_int_equal(ev[4].item, 0);
    assert_string_equal(fedreci_dataset_basket_name(d, ev[4].basket), "1002");
    assert_int_equal(ev[4].time, 1293962400 + 23 * 3600);
}

static void test_fixture_hand_computed(void **state)
{
    (void)state;
    const char *path = fixture("fix.csv", FIX);
    fedreci_dataset *d = NULL;
    fedreci_dataset_report r;
    assert_int_equal(fedreci_dataset_load(&d, path, NULL, &r), FEDREC_OK);
    check_fixture(d, &r);
    assert_memory_equal(fedreci_dataset_report_get(d), &r, sizeof r);
    fedreci_dataset_destroy(d);
}

static void test_fixture_gzip_same_as_plain(void **state)
{
    (void)state;
    char path[512];
    snprintf(path, sizeof path, "%s/fix.csv.gz", tmpdir);
    gzFile g = gzopen(path, "wb");
    assert_non_null(g);
    assert_int_equal(gzwrite(g, FIX, (unsigned)strlen(FIX)), (int)strlen(FIX));
    assert_int_equal(gzclose(g), Z_OK);
    fedreci_dataset *d = NULL;
    fedreci_dataset_report r;
    assert_int_equal(fedreci_dataset_load(&d, path, NULL, &r), FEDREC_OK);
    check_fixture(d, &r);
    fedreci_dataset_destroy(d);
}

static void test_confidence_options(void **state)
{
    (void)state;
    const char *path = fixture("fix.csv", FIX);
    fedreci_dataset_options o;
    fedreci_dataset_options_default(&o);
    o.alpha = 2.0;
    o.eps = 2.0;
    fedreci_dataset *d = NULL;
    assert_int_equal(fedreci_dataset_load(&d, path, &o, NULL), FEDREC_OK);
    fedreci_mf_csr m = fedreci_dataset_csr(d);
    assert_float_equal(m.conf[1], 1.0 + 2.0 * log(5.0), 1e-5); /* q = 8 */
    fedreci_dataset_destroy(d);
    o.eps = 0;
    assert_int_equal(fedreci_dataset_load(&d, path, &o, NULL), FEDREC_ERR_INVALID);
    o.eps = 1;
    o.alpha = -1;
    assert_int_equal(fedreci_dataset_load(&d, path, &o, NULL), FEDREC_ERR_INVALID);
}

static void test_strict_names_line_and_column(void **state)
{
    (void)state;
    const char *path = fixture("fix.csv", FIX);
    fedreci_dataset_options o;
    fedreci_dataset_options_default(&o);
    o.strict = 1;
    fedreci_dataset *d = NULL;
    assert_int_equal(fedreci_dataset_load(&d, path, &o, NULL), FEDREC_ERR_PARSE);
    assert_null(d);
    char want[600];
    snprintf(want, sizeof want, "%s:14: column Quantity: 'abc' is not a number", path);
    assert_string_equal(fedrec_errmsg(), want);
}

static void test_non_product_override(void **state)
{
    (void)state;
    const char *path = fixture("fix.csv", FIX);
    fedreci_dataset_options o;
    fedreci_dataset_options_default(&o);
    static const char *const list[] = {"post", "C*"};
    o.non_product = list;
    o.n_non_product = 2;
    fedreci_dataset *d = NULL;
    fedreci_dataset_report r;
    assert_int_equal(fedreci_dataset_load(&d, path, &o, &r), FEDREC_OK);
    /* POST and C3 dropped; the voucher and 'm' now kept */
    assert_int_equal(r.dropped_non_product, 2);
    assert_int_equal(r.rows_kept, 7);
    uint32_t it;
    assert_int_equal(fedreci_dataset_item_find(d, "m", &it), FEDREC_OK);
    assert_int_equal(fedreci_dataset_item_find(d, "C3", &it), FEDREC_ERR_NOT_FOUND);
    fedreci_dataset_destroy(d);

    assert_true(fedreci_dataset_code_listed("GIFT_0001_50", fedreci_dataset_default_non_product,
                                            fedreci_dataset_default_non_product_count));
    assert_true(fedreci_dataset_code_listed("bank charges", fedreci_dataset_default_non_product,
                                            fedreci_dataset_default_non_product_count));
    assert_false(fedreci_dataset_code_listed("POSTX", fedreci_dataset_default_non_product,
                                             fedreci_dataset_default_non_product_count));
    assert_false(fedreci_dataset_code_listed("85123A", fedreci_dataset_default_non_product,
                                             fedreci_dataset_default_non_product_count));
}

typedef struct rows_seen {
    int n;
    char first_item[16];
    int64_t first_time;
    double total_q;
} rows_seen;

static fedrec_err count_rows(void *ctx, const fedreci_purchase *p)
{
    rows_seen *s = ctx;
    if (s->n++ == 0) {
        snprintf(s->first_item, sizeof s->first_item, "%s", p->item);
        s->first_time = p->time;
    }
    s->total_q += p->quantity;
    return FEDREC_OK;
}

static fedrec_err stop_rows(void *ctx, const fedreci_purchase *p)
{
    (void)ctx;
    return fedreci_error(FEDREC_ERR_BUSY, "stopped at line %llu", (unsigned long long)p->line);
}

static void test_only_customer_and_row_callback(void **state)
{
    (void)state;
    const char *path = fixture("fix.csv", FIX);
    fedreci_dataset_options o;
    fedreci_dataset_options_default(&o);
    rows_seen seen = {0};
    o.only_customer = "17850";
    o.on_row = count_rows;
    o.on_row_ctx = &seen;
    fedreci_dataset *d = NULL;
    fedreci_dataset_report r;
    assert_int_equal(fedreci_dataset_load(&d, path, &o, &r), FEDREC_OK);
    assert_int_equal(seen.n, 4);
    assert_string_equal(seen.first_item, "B2");
    assert_int_equal(seen.first_time, 1293962400);
    assert_true(seen.total_q == 10.0);
    assert_int_equal(r.rows_kept, 4);
    assert_int_equal(r.other_customer, 2);
    assert_int_equal(fedreci_dataset_n_users(d), 1);
    assert_int_equal(fedreci_dataset_n_items(d), 2);
    fedreci_dataset_destroy(d);

    /* counting mode: callback only, no matrix */
    memset(&seen, 0, sizeof seen);
    o.only_customer = NULL;
    o.build_matrix = 0;
    assert_int_equal(fedreci_dataset_load(&d, path, &o, &r), FEDREC_OK);
    assert_int_equal(seen.n, 6);
    assert_int_equal(fedreci_dataset_n_users(d), 0);
    assert_int_equal(r.raw_customers, 4);
    fedreci_dataset_destroy(d);

    /* a callback error stops the load with its code */
    o.on_row = stop_rows;
    d = NULL;
    assert_int_equal(fedreci_dataset_load(&d, path, &o, NULL), FEDREC_ERR_BUSY);
    assert_null(d);
    assert_string_equal(fedrec_errmsg(), "stopped at line 2");
}

static void test_column_mapping(void **state)
{
    (void)state;
    const char *path = fixture("mapped.csv", "\xEF\xBB\xBFshopper,sku,when,qty\n"
                                             "u1,X,2020-01-01,2\n"
                                             "u1,Y,2020-01-01,1\n"
                                             "u1,X,2020-01-02T10:00:00,1\n"
                                             "u2,Y,1577836800,3\n");
    fedreci_dataset_options o;
    fedreci_dataset_options_default(&o);
    o.columns.user = "shopper";
    o.columns.item = "SKU"; /* case-insensitive */
    o.columns.time = "when";
    o.columns.quantity = "qty";
    o.columns.price = "";
    o.columns.basket = "";
    o.columns.description = "";
    fedreci_dataset *d = NULL;
    fedreci_dataset_report r;
    assert_int_equal(fedreci_dataset_load(&d, path, &o, &r), FEDREC_OK);
    assert_int_equal(r.rows_kept, 4);
    assert_int_equal(r.baskets, 3); /* (customer, time) */
    assert_int_equal(r.interactions, 3);
    fedreci_mf_csr m = fedreci_dataset_csr(d);
    assert_int_equal(m.n_rows, 2);
    assert_true(fedreci_dataset_quantity(d)[0] == 3.0);
    assert_int_equal(fedreci_dataset_basket_count(d)[0], 2);
    assert_true(fedreci_dataset_quantity(d)[2] == 3.0);
    assert_string_equal(fedreci_dataset_user_name(d, 1), "u2");
    uint64_t n;
    const fedreci_dataset_event *ev = fedreci_dataset_events(d, &n);
    assert_int_equal(ev[3].time, 1577836800);
    assert_string_equal(fedreci_dataset_basket_name(d, ev[3].basket), "u2@1577836800");
    fedreci_dataset_destroy(d);

    /* an optional column named explicitly must exist */
    o.columns.price = "Price";
    assert_int_equal(fedreci_dataset_load(&d, path, &o, NULL), FEDREC_ERR_FORMAT);
    assert_non_null(strstr(fedrec_errmsg(), "'Price'"));
}

static void test_parse_time(void **state)
{
    (void)state;
    int64_t t;
    assert_int_equal(fedreci_parse_time("1970-01-01 00:00:00", &t), 0);
    assert_int_equal(t, 0);
    assert_int_equal(fedreci_parse_time("2010-12-01 08:26:00", &t), 0);
    assert_int_equal(t, 1291191960);
    assert_int_equal(fedreci_parse_time("2012-02-29 23:59", &t), 0);
    assert_int_equal(t, 1330559940);
    assert_int_equal(fedreci_parse_time("2011-02-29", &t), -1);
    assert_int_equal(fedreci_parse_time("2011-13-01", &t), -1);
    assert_int_equal(fedreci_parse_time("2011-01-01 25:00:00", &t), -1);
    assert_int_equal(fedreci_parse_time("", &t), -1);
    /* ISO 8601 with a zone: the same instant in UTC; fractions ignored */
    assert_int_equal(fedreci_parse_time("2010-12-01T08:26:00Z", &t), 0);
    assert_int_equal(t, 1291191960);
    assert_int_equal(fedreci_parse_time("2010-12-01T09:26:00+01:00", &t), 0);
    assert_int_equal(t, 1291191960);
    assert_int_equal(fedreci_parse_time("2010-12-01T08:26:00.250-0530", &t), 0);
    assert_int_equal(t, 1291211760);
    assert_int_equal(fedreci_parse_time("2010-12-01T08:26:00+02", &t), 0);
    assert_int_equal(t, 1291184760);
    assert_int_equal(fedreci_parse_time("2010-12-01T08:26:00+24:00", &t), -1);
    assert_int_equal(fedreci_parse_time("2010-12-01T08:26:00.", &t), -1);
    assert_int_equal(fedreci_parse_time("2010-12-01T08:26:00 Z", &t), -1);
    /* the UCI spreadsheet layout, month first, one- or two-digit fields */
    assert_int_equal(fedreci_parse_time("12/1/2010 8:26", &t), 0);
    assert_int_equal(t, 1291191960);
    assert_int_equal(fedreci_parse_time("01/12/2010 08:26", &t), 0);
    assert_int_equal(t, 1263284760);
    assert_int_equal(fedreci_parse_time("12/1/2010", &t), 0);
    assert_int_equal(t, 1291161600);
    assert_int_equal(fedreci_parse_time("13/1/2010 8:26", &t), -1);
    assert_int_equal(fedreci_parse_time("2/30/2010", &t), -1);
    assert_int_equal(fedreci_parse_time("12/1/10 8:26", &t), -1);
    /* Unix seconds: 9 digits or more */
    assert_int_equal(fedreci_parse_time("964982703", &t), 0);
    assert_int_equal(t, 964982703);
    assert_int_equal(fedreci_parse_time("20101201", &t), -1);
}

static void test_columns_spec(void **state)
{
    (void)state;
    fedreci_dataset_columns c;
    assert_int_equal(fedreci_dataset_format("movielens", &c), FEDREC_OK);
    assert_string_equal(c.user, "userId");
    assert_string_equal(c.rating, "rating");
    assert_string_equal(c.quantity, "");
    assert_int_equal(fedreci_dataset_format("spreadsheet", &c), FEDREC_ERR_INVALID);
    assert_non_null(strstr(fedrec_errmsg(), "'spreadsheet'"));
    assert_int_equal(fedreci_dataset_format("generic", &c), FEDREC_OK);
    char spec[] = "user=4,item=sku,time=1,quantity=qty,price=";
    assert_int_equal(fedreci_dataset_columns_parse(spec, &c), FEDREC_OK);
    assert_string_equal(c.user, "4");
    assert_string_equal(c.item, "sku");
    assert_string_equal(c.price, "");
    char bad[] = "user=a,colour=b";
    assert_int_equal(fedreci_dataset_columns_parse(bad, &c), FEDREC_ERR_INVALID);
    assert_non_null(strstr(fedrec_errmsg(), "'colour=b'"));
    char noitem[] = "item=";
    assert_int_equal(fedreci_dataset_columns_parse(noitem, &c), FEDREC_ERR_INVALID);

    /* positions, and a rating column: 4 or more is a purchase, never a quantity */
    const char *path = fixture("ratings.csv", "when,sku,stars,who\n"
                                              "964982703,A1,5,u1\n"
                                              "964982703,B1,3.5,u1\n"
                                              "964982800,C1,4,u2\n"
                                              "964982800,D1,x,u2\n");
    fedreci_dataset_options o;
    fedreci_dataset_options_default(&o);
    assert_int_equal(fedreci_dataset_format("generic", &o.columns), FEDREC_OK);
    char cols[] = "user=4,item=2,time=1,rating=stars";
    assert_int_equal(fedreci_dataset_columns_parse(cols, &o.columns), FEDREC_OK);
    fedreci_dataset *d = NULL;
    fedreci_dataset_report r;
    assert_int_equal(fedreci_dataset_load(&d, path, &o, &r), FEDREC_OK);
    assert_int_equal(r.rows_read, 4);
    assert_int_equal(r.dropped_unparsable, 1);
    assert_int_equal(r.dropped_rating, 1);
    assert_int_equal(r.rows_kept, 2);
    assert_true(fedreci_dataset_quantity(d)[0] == 1.0); /* the rating 5 is not a quantity */
    fedreci_dataset_destroy(d);
    o.rating_threshold = 3.5;
    assert_int_equal(fedreci_dataset_load(&d, path, &o, &r), FEDREC_OK);
    assert_int_equal(r.rows_kept, 3);
    fedreci_dataset_destroy(d);
    /* a position beyond the header is a missing column */
    o.columns.user = "9";
    assert_int_equal(fedreci_dataset_load(&d, path, &o, NULL), FEDREC_ERR_FORMAT);
}

/* ---- malformed files --------------------------------------------------------- */

static fedrec_err load_text(const char *text, int strict, fedreci_dataset_report *r)
{
    const char *path = fixture("bad.csv", text);
    fedreci_dataset_options o;
    fedreci_dataset_options_default(&o);
    o.strict = strict;
    fedreci_dataset *d = NULL;
    fedrec_err e = fedreci_dataset_load(&d, path, &o, r);
    if (e)
        assert_null(d);
    fedreci_dataset_destroy(d);
    return e;
}

#define HDR "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
#define GOOD "1,A,x,1,2011-01-01 00:00:00,1,5,UK\n"

static void test_malformed_files(void **state)
{
    (void)state;
    fedreci_dataset_report r;
    /* bad quote: an error naming the line */
    assert_int_equal(load_text(HDR GOOD "2,A,\"bad\"x,1,2011-01-01 00:00:00,1,5,UK\n", 0, &r),
                     FEDREC_ERR_FORMAT);
    assert_non_null(strstr(fedrec_errmsg(), "bad.csv:3: malformed CSV"));
    /* unterminated quote at the end of the file */
    assert_int_equal(load_text(HDR GOOD "2,A,\"never closed,1,2011-01-01 00:00:00,1,5,UK\n", 0, &r),
                     FEDREC_ERR_FORMAT);
    /* wrong column count: counted, or an error in strict mode */
    assert_int_equal(load_text(HDR GOOD "2,A,x,1\n" GOOD, 0, &r), FEDREC_OK);
    assert_int_equal(r.rows_read, 3);
    assert_int_equal(r.dropped_unparsable, 1);
    assert_int_equal(r.rows_kept, 2);
    assert_int_equal(load_text(HDR GOOD "2,A,x,1\n" GOOD, 1, &r), FEDREC_ERR_PARSE);
    assert_non_null(strstr(fedrec_errmsg(), "bad.csv:3: 4 fields where the header has 8"));
    /* non-numeric quantity and price, bad date */
    assert_int_equal(load_text(HDR GOOD "2,A,x,ten,2011-01-01 00:00:00,1,5,UK\n"
                                        "3,A,x,1,2011-01-01 00:00:00,1.2.3,5,UK\n"
                                        "4,A,x,1,yesterday,1,5,UK\n"
                                        "5,A,x,nan,2011-01-01 00:00:00,1,5,UK\n"
                                        "6,,x,1,2011-01-01 00:00:00,1,5,UK\n",
                               0, &r),
                     FEDREC_OK);
    assert_int_equal(r.dropped_unparsable, 5);
    assert_int_equal(r.rows_kept, 1);
    assert_int_equal(load_text(HDR "4,A,x,1,yesterday,1,5,UK\n", 1, &r), FEDREC_ERR_PARSE);
    assert_non_null(strstr(fedrec_errmsg(), "bad.csv:2: column InvoiceDate: 'yesterday'"));
    /* empty file, header only, missing required column */
    assert_int_equal(load_text("", 0, &r), FEDREC_ERR_EMPTY);
    assert_non_null(strstr(fedrec_errmsg(), "empty file"));
    assert_int_equal(load_text(HDR, 0, &r), FEDREC_ERR_EMPTY);
    assert_non_null(strstr(fedrec_errmsg(), "header only"));
    assert_int_equal(load_text("InvoiceNo,StockCode,Quantity,InvoiceDate,UnitPrice\n"
                               "1,A,1,2011-01-01 00:00:00,1\n",
                               0, &r),
                     FEDREC_ERR_FORMAT);
    assert_non_null(strstr(fedrec_errmsg(), "missing required column 'CustomerID' (user)"));
    /* a column given by a position the header does not have says so (was
       "missing required column '9' (user)") */
    {
        fedreci_dataset_options po;
        fedreci_dataset_options_default(&po);
        assert_int_equal(fedreci_dataset_columns_parse("user=9", &po.columns), FEDREC_OK);
        char path[64];
        snprintf(path, sizeof path, "/tmp/fedrec_test_pos_%d.csv", (int)getpid());
        FILE *pf = fopen(path, "w");
        assert_non_null(pf);
        fputs(HDR "1,A,x,1,2011-01-01 00:00:00,1,5,UK\n", pf);
        fclose(pf);
        fedreci_dataset *pd = NULL;
        assert_int_equal(fedreci_dataset_load(&pd, path, &po, NULL), FEDREC_ERR_FORMAT);
        assert_null(pd);
        assert_non_null(strstr(fedrec_errmsg(),
                               ":1: column 9 (user): no such position, the header has 8 columns"));
        unlink(path);
    }
    /* a field longer than the mapped-field limit is counted */
    char *big = malloc(4000);
    assert_non_null(big);
    snprintf(big, 4000, HDR "1,%01500d,x,1,2011-01-01 00:00:00,1,5,UK\n", 7);
    assert_int_equal(load_text(big, 0, &r), FEDREC_OK);
    assert_int_equal(r.dropped_unparsable, 1);
    free(big);
    /* a file that does not exist */
    fedreci_dataset *d = NULL;
    assert_int_equal(fedreci_dataset_load(&d, "/nonexistent/x.csv", NULL, NULL), FEDREC_ERR_IO);
    assert_non_null(strstr(fedrec_errmsg(), "/nonexistent/x.csv"));
    assert_int_equal(fedreci_dataset_load(NULL, "x", NULL, NULL), FEDREC_ERR_INVALID);
    fedreci_dataset_destroy(NULL);
}

static void test_garbage_never_crashes(void **state)
{
    (void)state;
    /* deterministic pseudo-random bytes mixed with CSV punctuation */
    static const char alphabet[] = "ab1,\"\n\r 9-:.C\x01\xff";
    char buf[2048];
    uint32_t x = 12345;
    for (int round = 0; round < 200; round++) {
        size_t n = strlen(HDR);
        memcpy(buf, HDR, n);
        size_t len = n + (size_t)(round * 7 % 1500);
        for (size_t i = n; i < len; i++) {
            x = x * 1103515245u + 12345u;
            buf[i] = alphabet[(x >> 16) % (sizeof alphabet - 1)];
        }
        buf[len] = '\0';
        fedreci_dataset_report r;
        fedrec_err e = load_text(buf, round & 1, &r);
        if (e == FEDREC_OK)
            assert_int_equal(r.rows_kept + r.dropped_unparsable + r.dropped_no_customer +
                                 r.dropped_cancelled + r.dropped_quantity + r.dropped_price +
                                 r.dropped_non_product,
                             r.rows_read);
        else
            assert_true(e == FEDREC_ERR_FORMAT || e == FEDREC_ERR_PARSE || e == FEDREC_ERR_EMPTY);
    }
}

/* Item codes seen only on dropped rows after the kept ones (raw ids beyond
 * the description table) must not be touched by destroy: a 2,000-row prefix
 * of the December log once overflowed the heap there (found by a new-user
 * test; AddressSanitizer reports it, the plain build may not crash). */
static void test_codes_only_on_dropped_rows(void **state)
{
    (void)state;
    char path[512];
    snprintf(path, sizeof path, "%s/dropped_codes.csv", tmpdir);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fprintf(f, "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,"
               "Country\n");
    fprintf(f, "536365,KEEP1,kept item,2,2010-12-01 08:26:00,2.55,17850,United Kingdom\n");
    fprintf(f, "536367,KEEP2,another kept item,1,2010-12-02 10:00:00,1.00,13047,France\n");
    /* price 0: dropped by the price rule, after every kept row */
    for (int i = 0; i < 3000; i++)
        fprintf(f, "536366,Z%05d,free sample %d,1,2010-12-03 09:00:00,0,17850,United Kingdom\n", i,
                i);
    assert_int_equal(fclose(f), 0);
    fedreci_dataset *d = NULL;
    fedreci_dataset_report r;
    assert_int_equal(fedreci_dataset_load(&d, path, NULL, &r), FEDREC_OK);
    assert_int_equal(r.rows_read, 3002);
    assert_int_equal(r.dropped_price, 3000);
    assert_int_equal(fedreci_dataset_n_items(d), 2);
    assert_string_equal(fedreci_dataset_item_description(d, 0), "kept item");
    fedreci_dataset_destroy(d);
}

/* A gzip file cut short is an error naming the file, not a silently shorter
 * log. */
static void test_truncated_gzip_is_refused(void **state)
{
    (void)state;
    char path[512];
    snprintf(path, sizeof path, "%s/cut.csv.gz", tmpdir);
    gzFile g = gzopen(path, "wb");
    assert_non_null(g);
    assert_true(gzputs(g, "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,"
                          "CustomerID,Country\n") > 0);
    for (int i = 0; i < 20000; i++)
        gzprintf(g, "%d,C%d,item %d,%d,2010-12-01 08:26:00,1.5,%d,United Kingdom\n", 536365 + i,
                 i % 997, i * 7919 % 100003, 1 + i % 5, 12000 + i % 300);
    assert_int_equal(gzclose(g), Z_OK);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(truncate(path, st.st_size / 2), 0);
    fedreci_dataset *d = NULL;
    fedreci_dataset_report r;
    assert_int_equal(fedreci_dataset_load(&d, path, NULL, &r), FEDREC_ERR_CORRUPT);
    assert_null(d);
    assert_non_null(strstr(fedrec_errmsg(), "cut.csv.gz: truncated gzip file"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_log_without_non_product_rule),
        cmocka_unit_test(test_full_log_default_rules),
        cmocka_unit_test(test_december_extract),
        cmocka_unit_test(test_fixture_hand_computed),
        cmocka_unit_test(test_fixture_gzip_same_as_plain),
        cmocka_unit_test(test_confidence_options),
        cmocka_unit_test(test_strict_names_line_and_column),
        cmocka_unit_test(test_non_product_override),
        cmocka_unit_test(test_only_customer_and_row_callback),
        cmocka_unit_test(test_column_mapping),
        cmocka_unit_test(test_parse_time),
        cmocka_unit_test(test_columns_spec),
        cmocka_unit_test(test_malformed_files),
        cmocka_unit_test(test_garbage_never_crashes),
        cmocka_unit_test(test_codes_only_on_dropped_rows),
        cmocka_unit_test(test_truncated_gzip_is_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

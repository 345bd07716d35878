/* Tests for coordinator/catalog: CSV reading, merging catalogs between runs
 * (new products appended, retired ones flagged, rows never move). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <math.h>
#include <sodium.h>

#include "bootstrap.h"
#include "catalog.h"
#include "core/mf/mf.h"
#include "db.h"

static char csv_path[256];

static void write_csv(const char *text)
{
    snprintf(csv_path, sizeof csv_path, "/tmp/fedrec_test_catalog_%d.csv", (int)getpid());
    FILE *f = fopen(csv_path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_read_csv(void **state)
{
    (void)state;
    write_csv("code,description\n"
              "85123A,WHITE HANGING HEART T-LIGHT HOLDER\n"
              "71053,\"WHITE METAL LANTERN, LARGE\"\n"
              "\n"
              "22752,\"SET 7 BABUSHKA \"\"NESTING\"\" BOXES\"\n"
              "POST,\n");
    fedreci_catalog *c = NULL;
    assert_int_equal(fedreci_catalog_read_csv(&c, csv_path), FEDREC_OK);
    assert_int_equal(fedreci_catalog_size(c), 4);
    assert_int_equal(fedreci_catalog_n_active(c), 4);
    assert_string_equal(fedreci_catalog_at(c, 0)->code, "85123A");
    assert_string_equal(fedreci_catalog_at(c, 1)->description, "WHITE METAL LANTERN, LARGE");
    assert_string_equal(fedreci_catalog_at(c, 2)->description, "SET 7 BABUSHKA \"NESTING\" BOXES");
    assert_string_equal(fedreci_catalog_at(c, 3)->code, "POST");
    assert_string_equal(fedreci_catalog_at(c, 3)->description, "");
    assert_null(fedreci_catalog_at(c, 4));
    uint32_t row = 99;
    assert_int_equal(fedreci_catalog_find(c, "22752", &row), FEDREC_OK);
    assert_int_equal(row, 2);
    assert_int_equal(fedreci_catalog_find(c, "nope", &row), FEDREC_ERR_NOT_FOUND);
    assert_int_equal(row, 2);
    fedreci_catalog_destroy(c);

    /* without a header line, the first line is a product */
    write_csv("A,first\nB,second");
    assert_int_equal(fedreci_catalog_read_csv(&c, csv_path), FEDREC_OK);
    assert_int_equal(fedreci_catalog_size(c), 2);
    assert_string_equal(fedreci_catalog_at(c, 1)->description, "second");
    fedreci_catalog_destroy(c);
    unlink(csv_path);
}

static void test_bad_csv(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        fedrec_err err;
        const char *needle;
    } cases[] = {
        {"code,description\nA,x\nB\n", FEDREC_ERR_FORMAT, ":3: expected 2 columns"},
        {"A,x,extra\n", FEDREC_ERR_FORMAT, ":1: expected 2 columns"},
        {"A,x\n,empty code\n", FEDREC_ERR_FORMAT, ":2: column code: empty"},
        {"A,x\nB,y\nA,again\n", FEDREC_ERR_DUPLICATE, ":3: column code: 'A' repeats"},
        {"A,\"unterminated\n", FEDREC_ERR_FORMAT, ":1:"},
        {"code,description\n", FEDREC_ERR_EMPTY, "no products"},
        {"", FEDREC_ERR_EMPTY, "no products"},
        {"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA,x\n",
         FEDREC_ERR_FORMAT, ":1: column code: longer than 64"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_csv(cases[i].text);
        fedreci_catalog *c = NULL;
        fedrec_err e = fedreci_catalog_read_csv(&c, csv_path);
        if (e != cases[i].err || c || !strstr(fedrec_errmsg(), cases[i].needle) ||
            !strstr(fedrec_errmsg(), csv_path))
            fail_msg("case %zu: got %d '%s', want %d with '%s'", i, e, fedrec_errmsg(),
                     cases[i].err, cases[i].needle);
    }
    fedreci_catalog *c = NULL;
    assert_int_equal(fedreci_catalog_read_csv(&c, "/nonexistent/catalog.csv"), FEDREC_ERR_IO);
    assert_non_null(strstr(fedrec_errmsg(), "/nonexistent/catalog.csv"));
    unlink(csv_path);
}

static fedreci_catalog *make(const char *const *codes, size_t n)
{
    fedreci_catalog *c;
    assert_int_equal(fedreci_catalog_create(&c), FEDREC_OK);
    for (size_t i = 0; i < n; i++) {
        char desc[32];
        snprintf(desc, sizeof desc, "item %s", codes[i]);
        assert_int_equal(fedreci_catalog_add(c, codes[i], desc, 1), FEDREC_OK);
    }
    return c;
}

static void test_add_limits(void **state)
{
    (void)state;
    fedreci_catalog *c;
    assert_int_equal(fedreci_catalog_create(&c), FEDREC_OK);
    assert_int_equal(fedreci_catalog_add(c, "", "x", 1), FEDREC_ERR_INVALID);
    assert_int_equal(fedreci_catalog_add(c, NULL, "x", 1), FEDREC_ERR_INVALID);
    assert_int_equal(fedreci_catalog_add(c, "A", NULL, 0), FEDREC_OK);
    assert_string_equal(fedreci_catalog_at(c, 0)->description, "");
    assert_int_equal(fedreci_catalog_n_active(c), 0);
    assert_int_equal(fedreci_catalog_add(c, "A", "again", 1), FEDREC_ERR_DUPLICATE);
    assert_int_equal(fedreci_catalog_size(c), 1);
    /* many rows: the hash index survives growth */
    for (int i = 0; i < 5000; i++) {
        char code[16];
        snprintf(code, sizeof code, "P%05d", i);
        assert_int_equal(fedreci_catalog_add(c, code, "", 1), FEDREC_OK);
    }
    for (int i = 0; i < 5000; i += 97) {
        char code[16];
        uint32_t row;
        snprintf(code, sizeof code, "P%05d", i);
        assert_int_equal(fedreci_catalog_find(c, code, &row), FEDREC_OK);
        assert_int_equal(row, (uint32_t)i + 1);
    }
    fedreci_catalog_destroy(c);
}

static void test_merge_keeps_rows_and_retires(void **state)
{
    (void)state;
    const char *const first[] = {"A", "B", "C", "D"};
    const char *const second[] = {"E", "C", "A", "F"}; /* B, D gone; E, F new */
    fedreci_catalog *old = make(first, 4);
    fedreci_catalog *in = make(second, 4);
    fedreci_catalog *m = NULL;
    fedreci_catalog_diff d;
    assert_int_equal(fedreci_catalog_merge(old, in, &m, &d), FEDREC_OK);
    assert_int_equal(d.added, 2);
    assert_int_equal(d.retired, 2);
    assert_int_equal(d.reactivated, 0);
    assert_int_equal(fedreci_catalog_size(m), 6);
    assert_int_equal(fedreci_catalog_n_active(m), 4);
    static const char *const want_codes[] = {"A", "B", "C", "D", "E", "F"};
    static const uint8_t want_active[] = {1, 0, 1, 0, 1, 1};
    for (uint32_t r = 0; r < 6; r++) {
        assert_string_equal(fedreci_catalog_at(m, r)->code, want_codes[r]);
        assert_int_equal(fedreci_catalog_at(m, r)->active, want_active[r]);
        assert_int_equal(fedreci_catalog_at(m, r)->row, r);
    }
    uint32_t *rows = NULL;
    size_t n = 0;
    assert_int_equal(fedreci_catalog_retired_rows(m, &rows, &n), FEDREC_OK);
    assert_int_equal(n, 2);
    assert_int_equal(rows[0], 1);
    assert_int_equal(rows[1], 3);
    free(rows);

    /* a third catalog brings B back and renames A: B reactivates on row 1 */
    fedreci_catalog *in3;
    assert_int_equal(fedreci_catalog_create(&in3), FEDREC_OK);
    assert_int_equal(fedreci_catalog_add(in3, "A", "renamed", 1), FEDREC_OK);
    assert_int_equal(fedreci_catalog_add(in3, "B", "back", 1), FEDREC_OK);
    fedreci_catalog *m3 = NULL;
    assert_int_equal(fedreci_catalog_merge(m, in3, &m3, &d), FEDREC_OK);
    assert_int_equal(d.added, 0);
    assert_int_equal(d.reactivated, 1);
    assert_int_equal(d.retired, 3); /* C, E, F were active; D stays retired */
    assert_int_equal(d.renamed, 2); /* A renamed, B back with a new description */
    assert_int_equal(fedreci_catalog_n_active(m3), 2);
    assert_int_equal(fedreci_catalog_at(m3, 1)->active, 1);
    assert_string_equal(fedreci_catalog_at(m3, 1)->description, "back");
    assert_string_equal(fedreci_catalog_at(m3, 0)->description, "renamed");
    assert_int_equal(fedreci_catalog_at(m3, 3)->active, 0);
    fedreci_catalog_destroy(m3);
    fedreci_catalog_destroy(in3);

    /* first run: no stored catalog */
    fedreci_catalog *fresh = NULL;
    assert_int_equal(fedreci_catalog_merge(NULL, in, &fresh, &d), FEDREC_OK);
    assert_int_equal(d.added, 4);
    assert_int_equal(fedreci_catalog_size(fresh), 4);
    assert_string_equal(fedreci_catalog_at(fresh, 0)->code, "E");
    fedreci_catalog_destroy(fresh);
    /* the inputs are unchanged */
    assert_int_equal(fedreci_catalog_size(old), 4);
    assert_int_equal(fedreci_catalog_n_active(old), 4);
    fedreci_catalog_destroy(old);
    fedreci_catalog_destroy(in);
    fedreci_catalog_destroy(m);
}

static void test_grow_keeps_trained_rows(void **state)
{
    (void)state;
    const uint32_t k = 8, old_n = 50, new_n = 2050;
    float *y = malloc((size_t)old_n * k * sizeof(float));
    for (size_t i = 0; i < (size_t)old_n * k; i++)
        y[i] = (float)i * 0.5f - 3.0f; /* "trained" values, far from N(0, 0.01) */
    float *g = NULL;
    assert_int_equal(fedreci_catalog_grow_factors(y, old_n, k, new_n, 7, 0.01f, &g), FEDREC_OK);
    assert_memory_equal(g, y, (size_t)old_n * k * sizeof(float));
    /* new rows are exactly what fedreci_mf_init draws for them */
    float *want = malloc((size_t)(new_n - old_n) * k * sizeof(float));
    fedreci_mf_init(want, new_n - old_n, k, 7, 0.01f);
    assert_memory_equal(g + (size_t)old_n * k, want, (size_t)(new_n - old_n) * k * sizeof(float));
    /* and look like N(0, 0.01^2): 16,000 draws, the sample std within 5% */
    double sum = 0, sq = 0;
    size_t n = (size_t)(new_n - old_n) * k;
    for (size_t i = 0; i < n; i++) {
        sum += g[(size_t)old_n * k + i];
        sq += (double)g[(size_t)old_n * k + i] * g[(size_t)old_n * k + i];
    }
    double mean = sum / n, sd = sqrt(sq / n - mean * mean);
    assert_true(fabs(mean) < 0.001);
    assert_true(sd > 0.0095 && sd < 0.0105);
    free(g);
    /* no growth is a copy; shrinking is refused */
    assert_int_equal(fedreci_catalog_grow_factors(y, old_n, k, old_n, 7, 0.01f, &g), FEDREC_OK);
    assert_memory_equal(g, y, (size_t)old_n * k * sizeof(float));
    free(g);
    g = NULL;
    assert_int_equal(fedreci_catalog_grow_factors(y, old_n, k, old_n - 1, 7, 0.01f, &g),
                     FEDREC_ERR_INVALID);
    assert_int_equal(fedreci_catalog_grow_factors(NULL, 3, k, 5, 7, 0.01f, &g), FEDREC_ERR_INVALID);
    assert_null(g);
    free(want);
    free(y);
}

static void remove_db(const char *path)
{
    char p[512];
    unlink(path);
    snprintf(p, sizeof p, "%s-wal", path);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", path);
    unlink(p);
}

/* Start 1 with catalog {A,B,C}: fresh model v1. A round trains it (v2).
 * Start 2 with the same file: nothing committed, v2 served. Start 3 with
 * {C,A,D,E} (B retired, D and E new): v3 = v2's rows for A,B,C unchanged,
 * rows 3 and 4 fresh, B flagged retired. */
static void test_bootstrap_growth_between_runs(void **state)
{
    (void)state;
    char db_path[256];
    snprintf(db_path, sizeof db_path, "/tmp/fedrec_test_catalog_%d.sqlite", (int)getpid());
    remove_db(db_path);
    const uint32_t k = 4;
    fedreci_db *db;
    assert_int_equal(fedreci_db_open(&db, db_path), FEDREC_OK);
    fedreci_bootstrap b;
    assert_int_equal(fedreci_bootstrap_run(db, NULL, k, 1, &b), FEDREC_ERR_EMPTY);
    assert_non_null(strstr(fedrec_errmsg(), "--catalog"));

    write_csv("code,description\nA,apple\nB,pear\nC,plum\n");
    assert_int_equal(fedreci_bootstrap_run(db, csv_path, k, 1, &b), FEDREC_OK);
    assert_int_equal(b.committed, 1);
    assert_int_equal(b.model.version, 1);
    assert_int_equal(b.model.origin, FEDRECI_MODEL_INIT);
    assert_int_equal(b.model.n_items, 3);
    assert_int_equal(b.model.k, k);
    assert_int_equal(b.catalog_id, 1);
    assert_int_equal(b.model.catalog_id, 1);
    float fresh[12];
    fedreci_mf_init(fresh, 3, k, 1, 0.01f);
    assert_memory_equal(b.model.y, fresh, sizeof fresh);

    /* a round "trains" the model */
    fedreci_model trained = {0};
    trained.n_items = 3;
    trained.k = k;
    trained.catalog_id = b.catalog_id;
    trained.y = malloc(12 * sizeof(float));
    for (int i = 0; i < 12; i++)
        trained.y[i] = 1.0f + (float)i;
    fedreci_round_record r = {.round_id = 1, .status = FEDRECI_ROUND_COMPLETED, .cohort = 2};
    assert_int_equal(fedreci_db_round_end(db, &r, &trained), FEDREC_OK);
    assert_int_equal(trained.version, 2);
    fedreci_bootstrap_clear(&b);

    /* same file again: nothing new */
    assert_int_equal(fedreci_bootstrap_run(db, csv_path, k, 1, &b), FEDREC_OK);
    assert_int_equal(b.committed, 0);
    assert_int_equal(b.model.version, 2);
    assert_memory_equal(b.model.y, trained.y, 12 * sizeof(float));
    fedreci_bootstrap_clear(&b);
    /* no file: the stored catalog is served */
    assert_int_equal(fedreci_bootstrap_run(db, NULL, k, 1, &b), FEDREC_OK);
    assert_int_equal(b.committed, 0);
    assert_int_equal(fedreci_catalog_size(b.catalog), 3);
    fedreci_bootstrap_clear(&b);
    /* another k is refused */
    assert_int_equal(fedreci_bootstrap_run(db, csv_path, 8, 1, &b), FEDREC_ERR_INVALID);
    assert_non_null(strstr(fedrec_errmsg(), "factors"));

    write_csv("C,plum\nA,apple\nD,fig\nE,kiwi\n");
    assert_int_equal(fedreci_bootstrap_run(db, csv_path, k, 1, &b), FEDREC_OK);
    assert_int_equal(b.committed, 1);
    assert_int_equal(b.model.version, 3);
    assert_int_equal(b.model.origin, FEDRECI_MODEL_CATALOG);
    assert_int_equal(b.diff.added, 2);
    assert_int_equal(b.diff.retired, 1);
    assert_int_equal(b.model.n_items, 5);
    assert_memory_equal(b.model.y, trained.y, 12 * sizeof(float)); /* trained rows kept */
    for (size_t i = 12; i < 20; i++)
        assert_true(fabsf(b.model.y[i]) < 0.1f); /* fresh N(0, 0.01) rows */
    assert_string_equal(fedreci_catalog_at(b.catalog, 1)->code, "B");
    assert_int_equal(fedreci_catalog_at(b.catalog, 1)->active, 0);
    assert_string_equal(fedreci_catalog_at(b.catalog, 3)->code, "D");
    uint32_t *retired = NULL;
    size_t n_retired = 0;
    assert_int_equal(fedreci_catalog_retired_rows(b.catalog, &retired, &n_retired), FEDREC_OK);
    assert_int_equal(n_retired, 1);
    assert_int_equal(retired[0], 1);
    free(retired);
    fedreci_bootstrap_clear(&b);
    fedreci_db_close(db);

    /* after a restart the grown model and the catalog are what is served */
    assert_int_equal(fedreci_db_open(&db, db_path), FEDREC_OK);
    assert_int_equal(fedreci_bootstrap_run(db, NULL, k, 1, &b), FEDREC_OK);
    assert_int_equal(b.committed, 0);
    assert_int_equal(b.model.version, 3);
    assert_int_equal(b.model.n_items, 5);
    assert_int_equal(fedreci_catalog_n_active(b.catalog), 4);
    fedreci_bootstrap_clear(&b);
    fedreci_bootstrap_clear(NULL);
    fedreci_db_close(db);
    free(trained.y);
    remove_db(db_path);
    unlink(csv_path);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_csv),
        cmocka_unit_test(test_bad_csv),
        cmocka_unit_test(test_add_limits),
        cmocka_unit_test(test_merge_keeps_rows_and_retires),
        cmocka_unit_test(test_grow_keeps_trained_rows),
        cmocka_unit_test(test_bootstrap_growth_between_runs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

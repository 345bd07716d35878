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

#include "catalog.h"

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_csv),
        cmocka_unit_test(test_bad_csv),
        cmocka_unit_test(test_add_limits),
        cmocka_unit_test(test_merge_keeps_rows_and_retires),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

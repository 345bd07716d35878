/* Tests for the utility layer in core/: JSON output (json.h), the id and
 * string maps (idmap.h, strmap.h), the splitmix64 generator (rng.h) and the
 * command-line value parsers (opt.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/idmap.h"
#include "core/json.h"
#include "core/opt.h"
#include "core/rng.h"
#include "core/strmap.h"
#include "fedrec/fedrec.h"

/* ---- rng ------------------------------------------------------------------------ */

/* The published outputs of splitmix64: seed 0 (Vigna's splitmix64.c, the
 * usual seeding of xoshiro) and seed 1234567 (the test vector of the
 * reference implementation). */
static void test_rng_reference_values(void **state)
{
    (void)state;
    static const uint64_t seed0[3] = {0xe220a8397b1dcdafull, 0x6e789e6aa1b965f4ull,
                                      0x06c45d188009454full};
    fedreci_rng r = fedreci_rng_seeded(0);
    for (int i = 0; i < 3; i++)
        assert_true(fedreci_rng_u64(&r) == seed0[i]);
    static const uint64_t seed1234567[5] = {6457827717110365317ull, 3203168211198807973ull,
                                            9817491932198370423ull, 4593380528125082431ull,
                                            16408922859458223821ull};
    r = fedreci_rng_seeded(1234567);
    for (int i = 0; i < 5; i++)
        assert_true(fedreci_rng_u64(&r) == seed1234567[i]);
    /* the stateless mix is the first output of a generator seeded there */
    assert_true(fedreci_rng_mix(0) == seed0[0]);
    assert_true(fedreci_rng_mix(1234567) == seed1234567[0]);
}

static void test_rng_helpers(void **state)
{
    (void)state;
    fedreci_rng a = fedreci_rng_seeded(42), b = a;
    for (int i = 0; i < 1000; i++) {
        uint64_t x = fedreci_rng_u64(&b);
        assert_true(fedreci_rng_below(&a, 7) == x % 7); /* below(n) is u64 % n */
    }
    a = fedreci_rng_seeded(9);
    b = a;
    int hist[10] = {0};
    for (int i = 0; i < 10000; i++) {
        double u = fedreci_rng_unit(&a);
        assert_true(u == (double)(fedreci_rng_u64(&b) >> 11) / 9007199254740992.0);
        assert_true(u >= 0.0 && u < 1.0);
        hist[(int)(u * 10)]++;
    }
    for (int i = 0; i < 10; i++) /* 1000 expected, sd ~30: 6 sd either way */
        assert_in_range(hist[i], 820, 1180);
    assert_true(fedreci_rng_below(&a, 0) == 0);
    assert_true(fedreci_rng_below(&a, 1) == 0);
}

/* ---- json ----------------------------------------------------------------------- */

static void test_json_escape(void **state)
{
    (void)state;
    char buf[64];
    /* quotes, backslashes, every control byte; UTF-8 and DEL pass through */
    const char *in = "a\"b\\c\n\t\x01\x1f\x7f caf\xc3\xa9 \xe2\x82\xac /";
    const char *want = "a\\\"b\\\\c\\u000a\\u0009\\u0001\\u001f\x7f caf\xc3\xa9 \xe2\x82\xac /";
    assert_int_equal(fedreci_json_escape(buf, sizeof buf, in), strlen(want));
    assert_string_equal(buf, want);
    /* truncation: snprintf-like length, never half an escape */
    assert_int_equal(fedreci_json_escape(buf, 4, "ab\n"), 8);
    assert_string_equal(buf, "ab");
    assert_int_equal(fedreci_json_escape(buf, 9, "ab\n"), 8);
    assert_string_equal(buf, "ab\\u000a");
    assert_int_equal(fedreci_json_escape(buf, 8, "ab\n"), 8);
    assert_string_equal(buf, "ab");
    assert_int_equal(fedreci_json_escape(NULL, 0, "\"\""), 4);
    assert_int_equal(fedreci_json_escape(buf, sizeof buf, NULL), 0);
    assert_string_equal(buf, "");
    /* all 32 control bytes */
    for (int c = 1; c < 0x20; c++) {
        char s[2] = {(char)c, 0}, w[8];
        snprintf(w, sizeof w, "\\u%04x", c);
        fedreci_json_escape(buf, sizeof buf, s);
        assert_string_equal(buf, w);
    }
}

static void test_json_fputs(void **state)
{
    (void)state;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    assert_int_equal(fedreci_json_fputs(f, "x\"\r\xc3\xa9"), 0);
    assert_int_equal(fedreci_json_fputs(f, NULL), 0);
    fclose(f);
    assert_string_equal(text, "\"x\\\"\\u000d\xc3\xa9\"\"\"");
    free(text);
}

/* Writes one document of every kind of token. */
static void write_sample(fedreci_json *w)
{
    fedreci_json_obj_begin(w);
    fedreci_json_kstr(w, "name", "a\"b\n");
    fedreci_json_ku64(w, "big", UINT64_MAX);
    fedreci_json_ki64(w, "neg", INT64_MIN);
    fedreci_json_kdouble(w, "pi", "%.4f", 3.14159265);
    fedreci_json_kdouble(w, "nan", "%g", 0.0 / 0.0);
    fedreci_json_kbool(w, "ok", 1);
    fedreci_json_key(w, "list");
    fedreci_json_arr_begin(w);
    fedreci_json_u64(w, 1);
    fedreci_json_bool(w, 0);
    fedreci_json_null(w);
    fedreci_json_obj_begin(w);
    fedreci_json_obj_end(w);
    fedreci_json_arr_begin(w);
    fedreci_json_arr_end(w);
    fedreci_json_arr_end(w);
    fedreci_json_obj_end(w);
}

static void test_json_writer_exact(void **state)
{
    (void)state;
    fedreci_json w;
    char *text = NULL;
    size_t len = 0;
    fedreci_json_init_buf(&w, 1000, FEDRECI_JSON_COMPACT);
    write_sample(&w);
    assert_int_equal(fedreci_json_finish(&w, &text, &len), FEDREC_OK);
    const char *compact = "{\"name\":\"a\\\"b\\u000a\",\"big\":18446744073709551615,"
                          "\"neg\":-9223372036854775808,\"pi\":3.1416,\"nan\":null,\"ok\":true,"
                          "\"list\":[1,false,null,{},[]]}";
    assert_string_equal(text, compact);
    assert_int_equal(len, strlen(compact));
    free(text);

    /* the same to a FILE, spaced */
    char *ftext = NULL;
    size_t flen = 0;
    FILE *f = open_memstream(&ftext, &flen);
    assert_non_null(f);
    fedreci_json_init_file(&w, f, FEDRECI_JSON_SPACED);
    write_sample(&w);
    assert_int_equal(fedreci_json_finish(&w, NULL, NULL), FEDREC_OK);
    fclose(f);
    assert_string_equal(ftext, "{\"name\": \"a\\\"b\\u000a\", \"big\": 18446744073709551615, "
                               "\"neg\": -9223372036854775808, \"pi\": 3.1416, \"nan\": null, "
                               "\"ok\": true, \"list\": [1, false, null, {}, []]}");
    free(ftext);

    /* line breaks replace the space after a comma, or stand alone */
    fedreci_json_init_buf(&w, 1000, FEDRECI_JSON_SPACED);
    fedreci_json_arr_begin(&w);
    fedreci_json_newline(&w, "  ");
    fedreci_json_u64(&w, 1);
    fedreci_json_newline(&w, "  ");
    fedreci_json_obj_begin(&w);
    fedreci_json_ku64(&w, "a", 2);
    fedreci_json_newline(&w, "   ");
    fedreci_json_ku64(&w, "b", 3);
    fedreci_json_obj_end(&w);
    fedreci_json_newline(&w, "");
    fedreci_json_arr_end(&w);
    assert_int_equal(fedreci_json_finish(&w, &text, NULL), FEDREC_OK);
    assert_string_equal(text, "[\n  1,\n  {\"a\": 2,\n   \"b\": 3}\n]");
    free(text);

    /* a top-level scalar; an empty writer gives an empty text */
    fedreci_json_init_buf(&w, 10, FEDRECI_JSON_COMPACT);
    fedreci_json_str(&w, "x");
    assert_int_equal(fedreci_json_finish(&w, &text, &len), FEDREC_OK);
    assert_string_equal(text, "\"x\"");
    free(text);
    fedreci_json_init_buf(&w, 10, FEDRECI_JSON_COMPACT);
    assert_int_equal(fedreci_json_finish(&w, &text, &len), FEDREC_OK);
    assert_string_equal(text, "");
    assert_int_equal(len, 0);
    free(text);
}

static void test_json_writer_errors(void **state)
{
    (void)state;
    fedreci_json w;
    char *text = (char *)"untouched";
    /* over the cap: exactly the cap fits, one more byte does not */
    fedreci_json_init_buf(&w, 5, FEDRECI_JSON_COMPACT);
    fedreci_json_str(&w, "abc");
    assert_int_equal(fedreci_json_finish(&w, &text, NULL), FEDREC_OK);
    assert_string_equal(text, "\"abc\"");
    free(text);
    text = (char *)"untouched";
    fedreci_json_init_buf(&w, 5, FEDRECI_JSON_COMPACT);
    fedreci_json_str(&w, "abcd");
    fedreci_json_u64(&w, 1); /* ignored after the error */
    assert_int_equal(fedreci_json_finish(&w, &text, NULL), FEDREC_ERR_TOO_BIG);
    assert_string_equal(text, "untouched");
    assert_non_null(strstr(fedrec_errmsg(), "longer than 5 bytes"));
    /* misuse: a value without a key, a key in an array, crossed closers,
     * an open container, a second top-level value, a key without value */
    static const int cases = 6;
    for (int i = 0; i < cases; i++) {
        fedreci_json_init_buf(&w, 100, FEDRECI_JSON_COMPACT);
        switch (i) {
        case 0:
            fedreci_json_obj_begin(&w);
            fedreci_json_u64(&w, 1);
            break;
        case 1:
            fedreci_json_arr_begin(&w);
            fedreci_json_key(&w, "k");
            break;
        case 2:
            fedreci_json_arr_begin(&w);
            fedreci_json_obj_end(&w);
            break;
        case 3:
            fedreci_json_arr_begin(&w);
            break;
        case 4:
            fedreci_json_u64(&w, 1);
            fedreci_json_u64(&w, 2);
            break;
        default:
            fedreci_json_obj_begin(&w);
            fedreci_json_key(&w, "k");
            fedreci_json_obj_end(&w);
            break;
        }
        assert_int_equal(fedreci_json_finish(&w, &text, NULL), FEDREC_ERR_INTERNAL);
    }
    /* nesting limit */
    fedreci_json_init_buf(&w, 1000, FEDRECI_JSON_COMPACT);
    for (int i = 0; i <= FEDRECI_JSON_MAX_DEPTH; i++)
        fedreci_json_arr_begin(&w);
    assert_int_equal(fedreci_json_finish(&w, &text, NULL), FEDREC_ERR_TOO_BIG);
    assert_non_null(strstr(fedrec_errmsg(), "nested deeper"));
    /* a FILE that refuses writes */
    FILE *f = fopen("/dev/full", "w");
    if (f) {
        setvbuf(f, NULL, _IONBF, 0);
        fedreci_json_init_file(&w, f, FEDRECI_JSON_COMPACT);
        fedreci_json_str(&w, "x");
        assert_int_equal(fedreci_json_finish(&w, NULL, NULL), FEDREC_ERR_IO);
        fclose(f);
    }
}

/* A writer on the caller's buffer: the text and its NUL fit in cap, one byte
 * more fails and leaves "". */
static void test_json_writer_mem(void **state)
{
    (void)state;
    char buf[16];
    memset(buf, 'x', sizeof buf);
    fedreci_json w;
    size_t len = 99;
    fedreci_json_init_mem(&w, buf, 16, FEDRECI_JSON_COMPACT);
    fedreci_json_obj_begin(&w);
    fedreci_json_kstr(&w, "k", "0123456"); /* {"k":"0123456"} = 15 bytes */
    fedreci_json_obj_end(&w);
    assert_int_equal(fedreci_json_finish(&w, NULL, &len), FEDREC_OK);
    assert_string_equal(buf, "{\"k\":\"0123456\"}");
    assert_int_equal(len, 15);
    fedreci_json_init_mem(&w, buf, 16, FEDRECI_JSON_COMPACT);
    fedreci_json_obj_begin(&w);
    fedreci_json_kstr(&w, "k", "01234567");
    fedreci_json_obj_end(&w);
    assert_int_equal(fedreci_json_finish(&w, NULL, &len), FEDREC_ERR_TOO_BIG);
    assert_string_equal(buf, "");
    fedreci_json_init_mem(&w, NULL, 0, FEDRECI_JSON_COMPACT);
    fedreci_json_null(&w);
    assert_int_equal(fedreci_json_finish(&w, NULL, NULL), FEDREC_ERR_TOO_BIG);
}

/* ---- maps ----------------------------------------------------------------------- */

/* Random inserts and lookups against a brute-force list; ids drawn from a
 * small range (repeats, misses) mixed with arbitrary 64-bit ones, across
 * many doublings. */
static void test_idmap_matches_brute_force(void **state)
{
    (void)state;
    enum { N = 20000 };
    uint64_t *ids = malloc(N * sizeof *ids);
    assert_non_null(ids);
    size_t n = 0;
    fedreci_idmap m = {0};
    fedreci_rng r = fedreci_rng_seeded(5);
    for (int step = 0; step < 3 * N; step++) {
        uint64_t x = fedreci_rng_u64(&r);
        uint64_t id = x & 1 ? (x >> 1) % 30000 : x;
        if (step % 7 == 0)
            id = step % 14 ? 0 : UINT64_MAX;
        size_t at = n;
        for (size_t i = 0; i < n; i++)
            if (ids[i] == id)
                at = i;
        uint32_t got = 12345;
        int found = fedreci_idmap_find(&m, id, &got);
        assert_int_equal(found, at < n);
        if (found)
            assert_int_equal(got, at);
        if (x % 3 == 0 || n >= N)
            continue; /* lookup only */
        uint32_t existing = 999;
        fedrec_err e = fedreci_idmap_put(&m, id, (uint32_t)n, &existing);
        if (at < n) {
            assert_int_equal(e, FEDREC_ERR_DUPLICATE);
            assert_int_equal(existing, at);
        } else {
            assert_int_equal(e, FEDREC_OK);
            ids[n++] = id;
        }
        assert_int_equal(fedreci_idmap_size(&m), n);
    }
    assert_true(n > 5000);
    for (size_t i = 0; i < n; i++) {
        uint32_t got;
        assert_true(fedreci_idmap_find(&m, ids[i], &got));
        assert_int_equal(got, i);
    }
    assert_true(m.cap >= 2 * n && m.cap < 4 * n + 128); /* load factor in (1/4, 1/2] */
    assert_int_equal(fedreci_idmap_put(&m, 77, FEDRECI_IDMAP_MAX_INDEX + 1u, NULL),
                     FEDREC_ERR_INVALID);
    fedreci_idmap_fini(&m);
    assert_int_equal(fedreci_idmap_size(&m), 0);
    uint32_t got;
    assert_false(fedreci_idmap_find(&m, ids[0], &got));
    fedreci_idmap_fini(NULL);
    free(ids);
}

/* Removals (backward shift), updates and iteration against a brute-force
 * table, over a small id range so that probe runs collide and wrap. */
static void test_idmap_delete_set_iterate(void **state)
{
    (void)state;
    enum { RANGE = 3000 };
    static int present[RANGE];
    static uint32_t value[RANGE];
    memset(present, 0, sizeof present);
    fedreci_idmap m = {0};
    fedreci_rng r = fedreci_rng_seeded(11);
    size_t n = 0;
    for (int step = 0; step < 200000; step++) {
        uint64_t x = fedreci_rng_u64(&r);
        uint32_t id = (uint32_t)((x >> 8) % RANGE), got = 0;
        switch (x % 4) {
        case 0:
        case 1: {
            fedrec_err e = fedreci_idmap_put(&m, id, (uint32_t)step, NULL);
            assert_int_equal(e, present[id] ? FEDREC_ERR_DUPLICATE : FEDREC_OK);
            if (!present[id]) {
                present[id] = 1;
                value[id] = (uint32_t)step;
                n++;
            }
            break;
        }
        case 2:
            assert_int_equal(fedreci_idmap_del(&m, id), present[id]);
            n -= (size_t)present[id];
            present[id] = 0;
            break;
        default:
            assert_int_equal(fedreci_idmap_set(&m, id, (uint32_t)step + 7), present[id]);
            if (present[id])
                value[id] = (uint32_t)step + 7;
            break;
        }
        assert_int_equal(fedreci_idmap_size(&m), n);
        uint64_t probe_id = (x >> 20) % RANGE;
        assert_int_equal(fedreci_idmap_find(&m, probe_id, &got), present[probe_id]);
        if (present[probe_id])
            assert_int_equal(got, value[probe_id]);
    }
    for (uint32_t id = 0; id < RANGE; id++) {
        uint32_t got = 0;
        assert_int_equal(fedreci_idmap_find(&m, id, &got), present[id]);
        if (present[id])
            assert_int_equal(got, value[id]);
    }
    /* iteration visits every entry once */
    size_t pos = 0, seen = 0;
    uint64_t id;
    uint32_t idx;
    static int visited[RANGE];
    memset(visited, 0, sizeof visited);
    while (fedreci_idmap_next(&m, &pos, &id, &idx)) {
        assert_true(id < RANGE && present[id] && !visited[id]);
        assert_int_equal(idx, value[id]);
        visited[id] = 1;
        seen++;
    }
    assert_int_equal(seen, n);
    fedreci_idmap_fini(&m);
    pos = 0;
    assert_false(fedreci_idmap_next(&m, &pos, &id, &idx));
    assert_false(fedreci_idmap_del(&m, 1));
    assert_false(fedreci_idmap_set(&m, 1, 2));
}

static void test_strmap_matches_brute_force(void **state)
{
    (void)state;
    enum { N = 6000 };
    char(*keys)[16] = malloc(N * sizeof *keys);
    assert_non_null(keys);
    uint32_t n = 0;
    fedreci_strmap m = {0};
    fedreci_rng r = fedreci_rng_seeded(77);
    for (int step = 0; step < 3 * N; step++) {
        char k[24];
        uint64_t x = fedreci_rng_u64(&r);
        int len =
            snprintf(k, sizeof k, "%c%llu", "ab\xc3"[x % 3], (unsigned long long)((x >> 8) % 9000));
        if (step == 5)
            len = 0, k[0] = '\0'; /* the empty string is a key too */
        uint32_t at = n;
        for (uint32_t i = 0; i < n; i++)
            if (!strcmp(keys[i], k))
                at = i;
        /* find takes a length: trailing bytes beyond it are ignored */
        char padded[32];
        snprintf(padded, sizeof padded, "%s#tail", k);
        uint32_t got = 12345;
        int found = fedreci_strmap_find(&m, padded, (size_t)len, &got);
        assert_int_equal(found, at < n);
        if (found)
            assert_int_equal(got, at);
        if (x % 4 == 0 || n >= N)
            continue;
        int is_new = -1;
        assert_int_equal(fedreci_strmap_intern(&m, padded, (size_t)len, &got, &is_new), FEDREC_OK);
        assert_int_equal(is_new, at == n);
        assert_int_equal(got, at);
        if (at == n)
            memcpy(keys[n++], k, (size_t)len + 1);
        assert_int_equal(fedreci_strmap_size(&m), n);
    }
    assert_true(n > 3000);
    for (uint32_t i = 0; i < n; i++)
        assert_string_equal(fedreci_strmap_key(&m, i), keys[i]);
    assert_null(fedreci_strmap_key(&m, n));
    uint32_t got;
    assert_int_equal(fedreci_strmap_intern(&m, "a\0b", 3, &got, NULL), FEDREC_ERR_INVALID);
    assert_false(fedreci_strmap_find(&m, "a\0b", 3, &got));
    fedreci_strmap_fini(&m);
    assert_int_equal(fedreci_strmap_size(&m), 0);
    fedreci_strmap_fini(NULL);
    free(keys);
}

/* ---- opt ------------------------------------------------------------------------ */

static void test_opt_integers(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        uint64_t min, max;
        fedrec_err err;
        uint64_t want;
    } cases[] = {
        {"0", 0, 10, FEDREC_OK, 0},
        {"10", 0, 10, FEDREC_OK, 10},
        {"007", 0, 10, FEDREC_OK, 7},
        {"18446744073709551615", 0, UINT64_MAX, FEDREC_OK, UINT64_MAX},
        {"18446744073709551616", 0, UINT64_MAX, FEDREC_ERR_RANGE, 0},    /* overflow */
        {"99999999999999999999999", 0, UINT64_MAX, FEDREC_ERR_RANGE, 0}, /* overflow */
        {"11", 0, 10, FEDREC_ERR_RANGE, 0},
        {"1", 2, 10, FEDREC_ERR_RANGE, 0},
        {"", 0, 10, FEDREC_ERR_PARSE, 0},     /* empty */
        {"5x", 0, 10, FEDREC_ERR_PARSE, 0},   /* trailing junk */
        {"5 ", 0, 10, FEDREC_ERR_PARSE, 0},   /* trailing space */
        {" 5", 0, 10, FEDREC_ERR_PARSE, 0},   /* leading space */
        {"-1", 0, 10, FEDREC_ERR_PARSE, 0},   /* negative to unsigned */
        {"-0", 0, 10, FEDREC_ERR_PARSE, 0},   /* a sign at all */
        {"+5", 0, 10, FEDREC_ERR_PARSE, 0},   /* a sign at all */
        {"0x10", 0, 99, FEDREC_ERR_PARSE, 0}, /* decimal only */
        {"1e3", 0, 9999, FEDREC_ERR_PARSE, 0},
        {"3.5", 0, 10, FEDREC_ERR_PARSE, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint64_t v = 4242;
        fedrec_err e = fedreci_opt_u64("--x", cases[i].text, cases[i].min, cases[i].max, &v);
        if (e != cases[i].err)
            fail_msg("'%s': got %d (%s), want %d", cases[i].text, e, fedrec_errmsg(), cases[i].err);
        if (e == FEDREC_OK) {
            assert_true(v == cases[i].want);
        } else {
            assert_true(v == 4242); /* untouched */
            char want[64];
            snprintf(want, sizeof want, "--x: '%s'", cases[i].text);
            if (!strstr(fedrec_errmsg(), want))
                fail_msg("'%s' does not name the option and the value", fedrec_errmsg());
        }
    }
    uint32_t v32 = 7;
    assert_int_equal(fedreci_opt_u32("--n", "4294967295", 0, UINT32_MAX, &v32), FEDREC_OK);
    assert_true(v32 == UINT32_MAX);
    assert_int_equal(fedreci_opt_u32("--n", "4294967296", 0, UINT32_MAX, &v32), FEDREC_ERR_RANGE);
    assert_true(v32 == UINT32_MAX);
    assert_non_null(strstr(fedrec_errmsg(), "0 to 4294967295"));
}

static void test_opt_reals_and_bools(void **state)
{
    (void)state;
    double d = -7;
    assert_int_equal(fedreci_opt_double("--a", "0.25", 0, 1, &d), FEDREC_OK);
    assert_true(d == 0.25);
    assert_int_equal(fedreci_opt_double("--a", "-1e-3", -1, 1, &d), FEDREC_OK);
    assert_true(d == -1e-3);
    assert_int_equal(fedreci_opt_double("--a", "0", 0, 1, &d), FEDREC_OK);
    assert_int_equal(fedreci_opt_double_above("--a", "0", 0, 1, &d), FEDREC_ERR_RANGE);
    assert_non_null(strstr(fedrec_errmsg(), "--a: '0'"));
    assert_non_null(strstr(fedrec_errmsg(), "> 0"));
    assert_int_equal(fedreci_opt_double_above("--a", "1", 0, 1, &d), FEDREC_OK);
    assert_true(d == 1);
    static const char *const bad[] = {"", "nan", "inf", "-inf", "1e999", "1,5", " 1", "1 ", "x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        d = 3;
        if (fedreci_opt_double("--a", bad[i], -1e300, 1e300, &d) != FEDREC_ERR_PARSE)
            fail_msg("'%s' was accepted or misclassified: %s", bad[i], fedrec_errmsg());
        assert_true(d == 3);
    }
    assert_int_equal(fedreci_opt_double("--a", "1.5", 0, 1, &d), FEDREC_ERR_RANGE);
    int b = 5;
    assert_int_equal(fedreci_opt_bool("--b", "true", &b), FEDREC_OK);
    assert_int_equal(b, 1);
    assert_int_equal(fedreci_opt_bool("--b", "off", &b), FEDREC_OK);
    assert_int_equal(b, 0);
    assert_int_equal(fedreci_opt_bool("--b", "TRUE", &b), FEDREC_ERR_PARSE);
    assert_int_equal(fedreci_opt_bool("--b", "", &b), FEDREC_ERR_PARSE);
    assert_non_null(strstr(fedrec_errmsg(), "--b: ''"));
}

/* Parses argv with one required-value, one flag option and -k; returns the
 * first error or FEDREC_OK with the values. */
static fedrec_err parse_sample(int argc, char **argv, uint32_t *rounds, int *json, uint32_t *k)
{
    static const struct option lo[] = {{"rounds", required_argument, NULL, 'r'},
                                       {"json", no_argument, NULL, 'j'},
                                       {"k", required_argument, NULL, 'k'},
                                       {NULL, 0, NULL, 0}};
    fedreci_opt_reset();
    *json = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":k:", lo, NULL)) != -1) {
        fedrec_err e = FEDREC_OK;
        if (c == 'r')
            e = fedreci_opt_u32("--rounds", optarg, 1, 100, rounds);
        else if (c == 'k')
            e = fedreci_opt_u32("-k", optarg, 1, 100, k);
        else if (c == 'j')
            *json = 1;
        else
            e = fedreci_opt_getopt_error(c, argv, lo);
        if (e)
            return e;
    }
    return FEDREC_OK;
}

static void test_opt_getopt_forms(void **state)
{
    (void)state;
    char *a1[] = {"p", "--rounds=5", "--json", "-k3", NULL};
    char *a2[] = {"p", "--rounds", "5", "--json", "-k", "3", NULL};
    char *a3[] = {"p", "--json", "--rounds", "5", "--k=3", NULL};
    char **forms[] = {a1, a2, a3};
    int argcs[] = {4, 6, 5};
    for (int i = 0; i < 3; i++) {
        uint32_t rounds = 0, k = 0;
        int json = 0;
        assert_int_equal(parse_sample(argcs[i], forms[i], &rounds, &json, &k), FEDREC_OK);
        assert_int_equal(rounds, 5);
        assert_int_equal(json, 1);
        assert_int_equal(k, 3);
    }
    static const struct {
        const char *arg, *needle;
    } bad[] = {
        {"--rounds", "--rounds: missing value"},
        {"--roundz=5", "--roundz: unknown option"},
        {"--json=1", "--json: takes no value"},
        {"-x", "-x: unknown option"},
        {"-k", "-k: missing value"},
        {"--rounds=0", "--rounds: '0'"},
        {"--rounds=", "--rounds: ''"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *argv[] = {"p", (char *)bad[i].arg, NULL};
        uint32_t rounds = 0, k = 0;
        int json = 0;
        fedrec_err e = parse_sample(2, argv, &rounds, &json, &k);
        if (e == FEDREC_OK || !strstr(fedrec_errmsg(), bad[i].needle))
            fail_msg("%s: got %d '%s', want '%s'", bad[i].arg, e, fedrec_errmsg(), bad[i].needle);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rng_reference_values),
        cmocka_unit_test(test_rng_helpers),
        cmocka_unit_test(test_json_escape),
        cmocka_unit_test(test_json_fputs),
        cmocka_unit_test(test_json_writer_exact),
        cmocka_unit_test(test_json_writer_errors),
        cmocka_unit_test(test_json_writer_mem),
        cmocka_unit_test(test_idmap_matches_brute_force),
        cmocka_unit_test(test_idmap_delete_set_iterate),
        cmocka_unit_test(test_strmap_matches_brute_force),
        cmocka_unit_test(test_opt_integers),
        cmocka_unit_test(test_opt_reals_and_bools),
        cmocka_unit_test(test_opt_getopt_forms),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

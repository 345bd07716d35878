/* Tests for the shared foundation: error codes, messages and the version. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <stdio.h>

#include <cmocka.h>

#include "core/err.h"
#include "core/log.h"
#include "core/util.h"
#include "fedrec/fedrec.h"

static void test_version_matches_project(void **state)
{
    (void)state;
    assert_string_equal(fedrec_version(), FEDREC_EXPECTED_VERSION);
    char macros[32];
    snprintf(macros, sizeof macros, "%d.%d.%d", FEDREC_VERSION_MAJOR, FEDREC_VERSION_MINOR,
             FEDREC_VERSION_PATCH);
    assert_string_equal(macros, FEDREC_EXPECTED_VERSION);
    assert_int_equal(fedrec_version_number(), FEDREC_VERSION_NUMBER);
    assert_int_equal(FEDREC_VERSION_NUMBER, FEDREC_VERSION_MAJOR * 10000 +
                                                FEDREC_VERSION_MINOR * 100 + FEDREC_VERSION_PATCH);
}

static void test_strerror_names_every_code(void **state)
{
    (void)state;
    assert_string_equal(fedrec_strerror(FEDREC_OK), "success");
    assert_string_equal(fedrec_strerror(FEDREC_ERR_NOMEM), "out of memory");
    assert_string_equal(fedrec_strerror((fedrec_err)9999), "unknown error");
    /* Every code up to the last one has its own text. */
    for (int e = 1; e <= FEDREC_ERR_LOST_EVENTS; e++) {
        const char *s = fedrec_strerror((fedrec_err)e);
        assert_string_not_equal(s, "unknown error");
        for (int f = 1; f < e; f++)
            assert_string_not_equal(s, fedrec_strerror((fedrec_err)f));
    }
}

static void test_error_codes_are_stable(void **state)
{
    (void)state;
    /* Codes are part of the ABI: they are appended, never renumbered. */
    assert_int_equal(FEDREC_ERR_INVALID, 1);
    assert_int_equal(FEDREC_ERR_PARSE, 4);
    assert_int_equal(FEDREC_ERR_ABORTED, 12);
    assert_int_equal(FEDREC_ERR_BADKEY, 17);
    assert_int_equal(FEDREC_ERR_EMPTY, 28);
    assert_int_equal(FEDREC_ERR_LOST_EVENTS, 29);
}

static void test_errmsg_is_formatted_and_returned(void **state)
{
    (void)state;
    fedreci_error_clear();
    assert_string_equal(fedrec_errmsg(), "");
    fedrec_err e = fedreci_error(FEDREC_ERR_PARSE, "%s:%d: Quantity '%s' is not an integer",
                                 "data/x.csv", 118, "abc");
    assert_int_equal(e, FEDREC_ERR_PARSE);
    assert_string_equal(fedrec_errmsg(), "data/x.csv:118: Quantity 'abc' is not an integer");
    char big[2000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    (void)fedreci_error(FEDREC_ERR_INVALID, "%s", big);
    assert_int_equal(strlen(fedrec_errmsg()), 511);
    /* Wrapping the current message in more context must not garble it. */
    (void)fedreci_error(FEDREC_ERR_PARSE, "inner 'q'");
    (void)fedreci_error(FEDREC_ERR_IO, "outer: %s (%d)", fedrec_errmsg(), 7);
    assert_string_equal(fedrec_errmsg(), "outer: inner 'q' (7)");
}

static void test_log_level_parse(void **state)
{
    (void)state;
    assert_int_equal(fedreci_log_parse_level("debug"), FEDRECI_LOG_DEBUG);
    assert_int_equal(fedreci_log_parse_level("error"), FEDRECI_LOG_ERROR);
    assert_int_equal(fedreci_log_parse_level("loud"), -1);
    assert_int_equal(fedreci_log_parse_level(NULL), -1);
    fedreci_log_set_level(FEDRECI_LOG_INFO);
    assert_int_equal(fedreci_log_get_level(), FEDRECI_LOG_INFO);
    fedreci_log_set_level(FEDRECI_LOG_WARN);
}

static void test_find_u64(void **state)
{
    (void)state;
    const uint64_t ids[] = {2, 3, 10, 11, UINT64_MAX};
    assert_int_equal(fedreci_find_u64(ids, 5, 2), 0);
    assert_int_equal(fedreci_find_u64(ids, 5, 10), 2);
    assert_int_equal(fedreci_find_u64(ids, 5, UINT64_MAX), 4);
    assert_int_equal(fedreci_find_u64(ids, 5, 1), -1);
    assert_int_equal(fedreci_find_u64(ids, 5, 4), -1);
    assert_int_equal(fedreci_find_u64(ids, 5, 12), -1);
    assert_int_equal(fedreci_find_u64(ids, 0, 2), -1);
    assert_int_equal(fedreci_find_u64(NULL, 0, 2), -1);
}

static void test_deadline_after_ms(void **state)
{
    (void)state;
    struct timespec before, d, after;
    clock_gettime(CLOCK_REALTIME, &before);
    fedreci_deadline_after_ms(&d, 1999);
    clock_gettime(CLOCK_REALTIME, &after);
    assert_true(d.tv_nsec >= 0 && d.tv_nsec < 1000000000L);
    double t = (double)d.tv_sec + d.tv_nsec / 1e9;
    double lo = (double)before.tv_sec + before.tv_nsec / 1e9 + 1.999;
    double hi = (double)after.tv_sec + after.tv_nsec / 1e9 + 1.999;
    assert_true(t >= lo - 1e-6 && t <= hi + 1e-6);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_version_matches_project),
        cmocka_unit_test(test_strerror_names_every_code),
        cmocka_unit_test(test_error_codes_are_stable),
        cmocka_unit_test(test_errmsg_is_formatted_and_returned),
        cmocka_unit_test(test_log_level_parse),
        cmocka_unit_test(test_find_u64),
        cmocka_unit_test(test_deadline_after_ms),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

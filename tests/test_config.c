/* Tests for coordinator/config: defaults, INI parsing, flag precedence and
 * the error messages for bad values. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "core/log.h"

static char ini_path[256];

static void write_ini(const char *text)
{
    snprintf(ini_path, sizeof ini_path, "/tmp/fedrec_test_config_%d.ini", (int)getpid());
    FILE *f = fopen(ini_path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* Parses a NULL-terminated flag list (program name prepended). */
static fedrec_err parse(fedreci_config **out, const char *const *flags)
{
    char *argv[64];
    int argc = 0;
    argv[argc++] = (char *)"fedrec-coordinator";
    for (; *flags; flags++)
        argv[argc++] = (char *)*flags;
    argv[argc] = NULL;
    return fedreci_config_parse(out, argc, argv);
}

static void test_defaults(void **state)
{
    (void)state;
    fedreci_config *c = NULL;
    const char *flags[] = {NULL};
    assert_int_equal(parse(&c, flags), FEDREC_OK);
    assert_int_equal(c->n_listen, 1);
    assert_string_equal(c->listen[0], "tcp://127.0.0.1:7450");
    assert_string_equal(c->db_path, "fedrec.sqlite");
    assert_null(c->http);
    assert_null(c->catalog);
    assert_null(c->tls_cert);
    assert_int_equal(c->cohort, 100);
    assert_int_equal(c->min_cohort, 10);
    assert_int_equal(c->deadline_ms[0], 30000);
    assert_int_equal(c->deadline_ms[2], 60000);
    assert_int_equal(c->neighbors, 0);
    assert_int_equal(c->threshold, 0);
    assert_true(c->clip == 16.0);
    assert_true(c->scale == 65536.0);
    assert_int_equal(c->factors, 32);
    assert_true(c->lr == 0.01f);
    assert_true(c->beta1 == 0.9f);
    assert_true(c->lambda == 0.1f);
    assert_int_equal(c->rounds, 0);
    assert_int_equal(c->seed, 42);
    assert_int_equal(c->log_level, FEDRECI_LOG_INFO);
    assert_int_equal(c->help, 0);
    fedreci_config_destroy(c);
    fedreci_config_destroy(NULL);
}

static void test_ini_and_flag_precedence(void **state)
{
    (void)state;
    write_ini("; coordinator\n"
              "[network]\n"
              "listen = tcp://0.0.0.0:9000\n"
              "listen = ipc:///tmp/fedrec.ipc\n"
              "http = http://127.0.0.1:9100\n"
              "[storage]\n"
              "db = /var/lib/fedrec/state.sqlite\n"
              "catalog = products.csv\n"
              "[round]\n"
              "cohort = 500\n"
              "min-cohort = 50\n"
              "rounds = 7\n"
              "deadline-unmask = 1234\n"
              "seed = 18446744073709551615\n"
              "[secagg]\n"
              "neighbors = 20\n"
              "threshold = 12\n"
              "clip = 8.5\n"
              "[model]\n"
              "factors = 64\n"
              "lr = 0.03\n"
              "beta1 = 0.5\n"
              "[log]\n"
              "log-level = debug\n");
    fedreci_config *c = NULL;
    const char *flags[] = {"--config", ini_path, "--cohort", "200", "--lr=0.05", NULL};
    assert_int_equal(parse(&c, flags), FEDREC_OK);
    assert_string_equal(c->config_path, ini_path);
    /* from the file */
    assert_int_equal(c->n_listen, 2);
    assert_string_equal(c->listen[0], "tcp://0.0.0.0:9000");
    assert_string_equal(c->listen[1], "ipc:///tmp/fedrec.ipc");
    assert_string_equal(c->http, "http://127.0.0.1:9100");
    assert_string_equal(c->db_path, "/var/lib/fedrec/state.sqlite");
    assert_string_equal(c->catalog, "products.csv");
    assert_int_equal(c->min_cohort, 50);
    assert_int_equal(c->rounds, 7);
    assert_int_equal(c->deadline_ms[3], 1234);
    assert_int_equal(c->deadline_ms[0], 30000); /* default kept */
    assert_true(c->seed == UINT64_MAX);
    assert_int_equal(c->neighbors, 20);
    assert_int_equal(c->threshold, 12);
    assert_true(c->clip == 8.5);
    assert_int_equal(c->factors, 64);
    assert_true(c->beta1 == 0.5f);
    assert_int_equal(c->log_level, FEDRECI_LOG_DEBUG);
    /* flags win */
    assert_int_equal(c->cohort, 200);
    assert_true(c->lr == 0.05f);
    fedreci_config_destroy(c);

    /* a --listen on the command line replaces the file's list; the flag may
     * come before --config and still wins */
    const char *flags2[] = {
        "--listen", "tcp://127.0.0.1:1", "--db",        "x.sqlite", "--config", ini_path,
        "--listen", "tcp://127.0.0.1:2", "--log-level", "warn",     NULL};
    assert_int_equal(parse(&c, flags2), FEDREC_OK);
    assert_int_equal(c->n_listen, 2);
    assert_string_equal(c->listen[0], "tcp://127.0.0.1:1");
    assert_string_equal(c->listen[1], "tcp://127.0.0.1:2");
    assert_string_equal(c->db_path, "x.sqlite");
    assert_int_equal(c->log_level, FEDRECI_LOG_WARN);
    assert_int_equal(c->cohort, 500); /* from the file */
    fedreci_config_destroy(c);
    unlink(ini_path);
}

/* getopt_long: `--key=value` and `--key value` give the same configuration,
 * in any mix; -h and -V are --help and --version. */
static void test_flag_forms_agree(void **state)
{
    (void)state;
    const char *eq[] = {"--cohort=200",
                        "--min-cohort=20",
                        "--seed=18446744073709551615",
                        "--lr=0.05",
                        "--clip=2.5",
                        "--listen=tcp://127.0.0.1:9",
                        "--listen=ipc:///tmp/x",
                        "--log-level=debug",
                        "--db=",
                        NULL};
    const char *sp[] = {
        "--cohort", "200",          "--min-cohort", "20",    "--seed",   "18446744073709551615",
        "--lr",     "0.05",         "--clip",       "2.5",   "--listen", "tcp://127.0.0.1:9",
        "--listen", "ipc:///tmp/x", "--log-level",  "debug", "--db",     "",
        NULL};
    const char *mix[] = {"--cohort",
                         "200",
                         "--min-cohort=20",
                         "--seed",
                         "18446744073709551615",
                         "--lr=0.05",
                         "--clip",
                         "2.5",
                         "--listen=tcp://127.0.0.1:9",
                         "--listen",
                         "ipc:///tmp/x",
                         "--log-level=debug",
                         "--db=",
                         NULL};
    const char *const *forms[] = {eq, sp, mix};
    for (int i = 0; i < 3; i++) {
        fedreci_config *c = NULL;
        assert_int_equal(parse(&c, forms[i]), FEDREC_OK);
        assert_int_equal(c->cohort, 200);
        assert_int_equal(c->min_cohort, 20);
        assert_true(c->seed == UINT64_MAX);
        assert_true(c->lr == 0.05f);
        assert_true(c->clip == 2.5);
        assert_int_equal(c->n_listen, 2);
        assert_string_equal(c->listen[0], "tcp://127.0.0.1:9");
        assert_string_equal(c->listen[1], "ipc:///tmp/x");
        assert_int_equal(c->log_level, FEDRECI_LOG_DEBUG);
        assert_null(c->db_path);
        fedreci_config_destroy(c);
    }
    fedreci_config *c = NULL;
    const char *h[] = {"-h", NULL}, *v[] = {"-V", NULL};
    assert_int_equal(parse(&c, h), FEDREC_OK);
    assert_int_equal(c->help, 1);
    fedreci_config_destroy(c);
    assert_int_equal(parse(&c, v), FEDREC_OK);
    assert_int_equal(c->version, 1);
    fedreci_config_destroy(c);
    const char *bad_eq[] = {"--cohort=1", NULL}, *bad_sp[] = {"--cohort", "1", NULL};
    assert_int_equal(parse(&c, bad_eq), FEDREC_ERR_RANGE);
    char msg[600];
    snprintf(msg, sizeof msg, "%s", fedrec_errmsg());
    assert_int_equal(parse(&c, bad_sp), FEDREC_ERR_RANGE);
    assert_string_equal(fedrec_errmsg(), msg);
}

/* Each bad flag value is refused, the message names the flag and the value. */
static void test_bad_flag_values(void **state)
{
    (void)state;
    static const struct {
        const char *flag, *value;
        fedrec_err err;
    } cases[] = {
        {"--cohort", "12x", FEDREC_ERR_PARSE},
        {"--cohort", "1", FEDREC_ERR_RANGE},
        {"--cohort", "-5", FEDREC_ERR_PARSE},
        {"--min-cohort", "", FEDREC_ERR_PARSE},
        {"--rounds", "1e3", FEDREC_ERR_PARSE},
        {"--seed", "99999999999999999999999", FEDREC_ERR_RANGE},
        {"--deadline-advertise", "0", FEDREC_ERR_RANGE},
        {"--deadline-share", "abc", FEDREC_ERR_PARSE},
        {"--deadline-masked", "90000000", FEDREC_ERR_RANGE},
        {"--deadline-unmask", "4294967296", FEDREC_ERR_RANGE},
        {"--deadline-checkin", "+5", FEDREC_ERR_PARSE},
        {"--neighbors", "two", FEDREC_ERR_PARSE},
        {"--threshold", "3.5", FEDREC_ERR_PARSE},
        {"--clip", "0", FEDREC_ERR_RANGE},
        {"--clip", "nan", FEDREC_ERR_PARSE},
        {"--scale", "-1", FEDREC_ERR_RANGE},
        {"--scale", "inf", FEDREC_ERR_PARSE},
        {"--factors", "0", FEDREC_ERR_RANGE},
        {"--factors", "4096", FEDREC_ERR_RANGE},
        {"--lr", "0", FEDREC_ERR_RANGE},
        {"--lr", "fast", FEDREC_ERR_PARSE},
        {"--beta1", "1", FEDREC_ERR_RANGE},
        {"--beta1", "-0.1", FEDREC_ERR_RANGE},
        {"--lambda", "-0.1", FEDREC_ERR_RANGE},
        {"--population", "many", FEDREC_ERR_PARSE},
        {"--log-level", "verbose", FEDREC_ERR_PARSE},
        {"--listen", "", FEDREC_ERR_INVALID},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fedreci_config *c = NULL;
        const char *flags[] = {cases[i].flag, cases[i].value, NULL};
        fedrec_err e = parse(&c, flags);
        if (e != cases[i].err || c != NULL)
            fail_msg("%s %s: got %d (%s), want %d", cases[i].flag, cases[i].value, e,
                     fedrec_errmsg(), cases[i].err);
        char want[128];
        snprintf(want, sizeof want, "%s:", cases[i].flag);
        if (!strstr(fedrec_errmsg(), want))
            fail_msg("'%s' does not name %s", fedrec_errmsg(), cases[i].flag);
        snprintf(want, sizeof want, "'%s'", cases[i].value);
        if (cases[i].value[0] && !strstr(fedrec_errmsg(), want))
            fail_msg("'%s' does not quote the value %s", fedrec_errmsg(), want);
    }
}

static void test_bad_flags(void **state)
{
    (void)state;
    fedreci_config *c = NULL;
    const char *unknown[] = {"--cohorts", "5", NULL};
    assert_int_equal(parse(&c, unknown), FEDREC_ERR_INVALID);
    assert_non_null(strstr(fedrec_errmsg(), "--cohorts"));
    const char *missing[] = {"--db", NULL};
    assert_int_equal(parse(&c, missing), FEDREC_ERR_INVALID);
    assert_non_null(strstr(fedrec_errmsg(), "--db: missing value"));
    const char *stray[] = {"cohort", NULL};
    assert_int_equal(parse(&c, stray), FEDREC_ERR_INVALID);
    const char *no_file[] = {"--config", "/nonexistent/fedrec.ini", NULL};
    assert_int_equal(parse(&c, no_file), FEDREC_ERR_IO);
    assert_non_null(strstr(fedrec_errmsg(), "/nonexistent/fedrec.ini"));
    assert_null(c);
    const char *help[] = {"--cohort", "bad", "--help", NULL};
    assert_int_equal(parse(&c, help), FEDREC_OK); /* --help wins over bad values */
    assert_int_equal(c->help, 1);
    fedreci_config_destroy(c);
}

/* Bad INI content: the message names file:line, the key and the value. */
static void test_bad_ini(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int line;
        const char *needle;
        fedrec_err err;
    } cases[] = {
        {"[round]\ncohort = 10\nmin-cohort = 3x\n", 3, "[round] min-cohort: '3x'",
         FEDREC_ERR_PARSE},
        {"[secagg]\n\nclip = -4\n", 3, "[secagg] clip: '-4'", FEDREC_ERR_RANGE},
        {"[model]\nfactors = 32\nlr = 0\n", 3, "[model] lr: '0'", FEDREC_ERR_RANGE},
        {"[round]\ncohrot = 5\n", 2, "[round] cohrot: unknown key", FEDREC_ERR_INVALID},
        {"[model]\ncohort = 5\n", 2, "belongs in section [round]", FEDREC_ERR_INVALID},
        {"[log]\nlog-level = loud\n", 2, "[log] log-level: 'loud'", FEDREC_ERR_PARSE},
        {"[round]\nthis line has no equals sign\n", 2, "not a 'key = value'", FEDREC_ERR_PARSE},
        /* a section header without ']': that line is named, not the key
           after it (was "1: [] cohort: key 'cohort' belongs in section [round]") */
        {"[round\ncohort = 12\n", 1, "not a 'key = value' or '[section]' line", FEDREC_ERR_PARSE},
        /* the first bad line wins, whichever kind it is */
        {"[round]\ncohort = 10\nno equals\nmin-cohort = 3x\n", 3, "not a 'key = value'",
         FEDREC_ERR_PARSE},
        {"[round]\nmin-cohort = 3x\nno equals\n", 2, "[round] min-cohort: '3x'", FEDREC_ERR_PARSE},
        /* a comment longer than inih's buffer (199 bytes) is skipped whole
           (its rest was parsed as a line of its own: "2: not a 'key =
           value'"), and the lines after it keep their numbers */
        {"; "
         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n[round]\ncohort = x\n",
         3, "[round] cohort: 'x'", FEDREC_ERR_PARSE},
        /* a longer value is refused, not cut */
        {"[storage]\ncatalog = "
         "/xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx.csv\n",
         2, "line longer than 199 bytes", FEDREC_ERR_PARSE},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_ini(cases[i].text);
        fedreci_config *c = NULL;
        const char *flags[] = {"--config", ini_path, NULL};
        fedrec_err e = parse(&c, flags);
        char want[320];
        snprintf(want, sizeof want, "%s:%d: ", ini_path, cases[i].line);
        if (e != cases[i].err || c || !strstr(fedrec_errmsg(), want) ||
            !strstr(fedrec_errmsg(), cases[i].needle))
            fail_msg("case %zu: got %d '%s', want %d with '%s' and '%s'", i, e, fedrec_errmsg(),
                     cases[i].err, want, cases[i].needle);
    }
    unlink(ini_path);
}

static void test_usage_lists_every_flag(void **state)
{
    (void)state;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_non_null(f);
    fedreci_config_usage(f, "fedrec-coordinator");
    fclose(f);
    static const char *const flags[] = {"--config",
                                        "--listen",
                                        "--db",
                                        "--http",
                                        "--cohort",
                                        "--min-cohort",
                                        "--deadline-advertise",
                                        "--deadline-share",
                                        "--deadline-masked",
                                        "--deadline-unmask",
                                        "--neighbors",
                                        "--threshold",
                                        "--clip",
                                        "--scale",
                                        "--factors",
                                        "--lr",
                                        "--lambda",
                                        "--rounds",
                                        "--seed",
                                        "--tls-cert",
                                        "--tls-key",
                                        "--catalog",
                                        "--log-level",
                                        "--help"};
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++)
        if (!strstr(text, flags[i]))
            fail_msg("usage does not document %s", flags[i]);
    assert_non_null(strstr(text, "[secagg] clip"));
    free(text);
}

/* Cross-key checks: each refused configuration names the keys involved. */
static void test_check(void **state)
{
    (void)state;
    static const struct {
        const char *a[6];
        const char *needle;
    } cases[] = {
        {{"--cohort", "5", "--min-cohort", "50"}, "min-cohort (50) exceeds cohort (5)"},
        {{"--cohort", "10", "--neighbors", "10"}, "neighbors (10) must be below cohort (10)"},
        {{"--cohort", "20", "--min-cohort", "5", "--threshold", "10"}, "min-cohort (5)"},
        {{"--cohort", "20", "--threshold", "9"}, "cohort (20) with neighbors 19, threshold 9"},
        {{"--cohort", "2000", "--clip", "16", "--scale", "100000"}, "cohort (2000)"},
        {{"--listen", "http://x:1"}, "listen: 'http://x:1'"},
        {{"--listen", "tls+tcp://127.0.0.1:1"}, "tls+tcp:// needs tls-cert"},
        {{"--tls-cert", "/nonexistent.pem"}, "tls-cert and tls-key"},
        {{"--tls-cert", "/nonexistent.pem", "--tls-key", "/nonexistent.key"},
         "tls-cert: '/nonexistent.pem'"},
        {{"--http", "tcp://127.0.0.1:80"}, "http: 'tcp://127.0.0.1:80'"},
        /* found by fuzz_config: an empty db unset the path and the daemon
         * passed NULL to fedreci_db_open (segfault) */
        {{"--db="}, "db: empty path"},
        {{"--db", ""}, "db: empty path"},
        {{"--selection", "random"}, "selection: 'random' is not uniform or reshuffle"},
        {{"--selection", "reshuffle", "--dp-epsilon", "4", "--dp-delta", "1e-5"},
         "selection reshuffle with dp-epsilon"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fedreci_config *c = NULL;
        const char *flags[7] = {0};
        for (int j = 0; j < 6 && cases[i].a[j]; j++)
            flags[j] = cases[i].a[j];
        assert_int_equal(parse(&c, flags), FEDREC_OK);
        fedrec_err e = fedreci_config_check(c);
        if (e == FEDREC_OK || !strstr(fedrec_errmsg(), cases[i].needle))
            fail_msg("case %zu: got %d '%s', want '%s'", i, e, fedrec_errmsg(), cases[i].needle);
        fedreci_config_destroy(c);
    }
    /* the defaults pass, and so does SecAgg+ with a small neighbourhood */
    fedreci_config *c = NULL;
    const char *none[] = {NULL};
    assert_int_equal(parse(&c, none), FEDREC_OK);
    assert_int_equal(fedreci_config_check(c), FEDREC_OK);
    fedreci_secagg_params p;
    fedreci_config_secagg_params(c, 100, 7, &p);
    assert_int_equal(p.n, 100);
    assert_int_equal(p.k, 99);
    assert_int_equal(p.t, 66); /* ceil(2k/3): the clients' default floor */
    assert_int_equal(p.d, 7);
    fedreci_config_destroy(c);
    const char *plus[] = {"--cohort", "500",          "--neighbors", "20", "--threshold",
                          "12",       "--min-cohort", "20",          NULL};
    assert_int_equal(parse(&c, plus), FEDREC_OK);
    assert_int_equal(fedreci_config_check(c), FEDREC_OK);
    fedreci_config_secagg_params(c, 20, 2, &p); /* a small round caps k at n - 1 */
    assert_int_equal(p.k, 19);
    assert_int_equal(p.t, 12);
    fedreci_config_destroy(c);
    /* cohort selection: uniform unless reshuffle is asked for */
    assert_int_equal(parse(&c, none), FEDREC_OK);
    assert_int_equal(fedreci_config_reshuffle(c), 0);
    fedreci_config_destroy(c);
    const char *resh[] = {"--selection", "reshuffle", NULL};
    assert_int_equal(parse(&c, resh), FEDREC_OK);
    assert_int_equal(fedreci_config_check(c), FEDREC_OK);
    assert_int_equal(fedreci_config_reshuffle(c), 1);
    fedreci_config_destroy(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),        cmocka_unit_test(test_ini_and_flag_precedence),
        cmocka_unit_test(test_bad_flag_values), cmocka_unit_test(test_bad_flags),
        cmocka_unit_test(test_bad_ini),         cmocka_unit_test(test_usage_lists_every_flag),
        cmocka_unit_test(test_check),           cmocka_unit_test(test_flag_forms_agree),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

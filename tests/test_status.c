/* Tests for coordinator/status: the stats record, the renderers and the HTTP
 * server fetched over a raw loopback socket. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "status.h"

static const char *find_nocase(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (; *hay; hay++)
        if (strncasecmp(hay, needle, n) == 0)
            return hay;
    return NULL;
}

/* GET path from 127.0.0.1:port; returns the status code and the body in
 * body (cap bytes, NUL-terminated). */
static int http_get(uint16_t port, const char *path, char *body, size_t cap)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    char req[256];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", path);
    assert_int_equal(write(fd, req, (size_t)n), n);
    static char resp[65536];
    size_t len = 0;
    ssize_t r;
    while ((r = read(fd, resp + len, sizeof resp - 1 - len)) > 0)
        len += (size_t)r;
    close(fd);
    resp[len] = '\0';
    int code = 0;
    assert_int_equal(sscanf(resp, "HTTP/1.1 %d", &code), 1);
    char *hdr_end = strstr(resp, "\r\n\r\n");
    assert_non_null(hdr_end);
    /* the body length must match Content-Length */
    const char *cl = find_nocase(resp, "Content-Length:");
    assert_non_null(cl);
    size_t content_length = strtoul(cl + 15, NULL, 10);
    assert_int_equal(strlen(hdr_end + 4), content_length);
    snprintf(body, cap, "%s", hdr_end + 4);
    return code;
}

/* The value of the sample line `name` (exact, including labels) in a
 * Prometheus exposition, or -1 when absent. */
static double metric(const char *text, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, name, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    }
    return -1;
}

static fedreci_round_record round_rec(uint64_t id, fedreci_round_status st, uint32_t survivors)
{
    fedreci_round_record r = {0};
    r.round_id = id;
    r.status = st;
    r.cohort = 8;
    r.survivors = survivors;
    r.dropped[0] = 1;
    r.dropped[2] = 2;
    r.stage_ms[0] = 1500;
    r.stage_ms[1] = 250;
    r.stage_ms[2] = st == FEDRECI_ROUND_COMPLETED ? 750 : 0;
    r.stage_ms[3] = st == FEDRECI_ROUND_COMPLETED ? 125 : 0;
    r.bytes_in = 1000;
    r.bytes_out = 4000;
    return r;
}

/* CLOCK_REALTIME in seconds: the clock fedreci_stats_create reads. time(NULL)
 * is not comparable with it: it reads the coarse clock, which lags
 * clock_gettime by up to a tick (0.33 s measured on this VM, more under
 * load), so a start time read through it can lie "in the future". */
static double wall_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_stats_and_renderers(void **state)
{
    (void)state;
    fedreci_stats *st;
    double before = wall_now();
    assert_int_equal(fedreci_stats_create(&st), FEDREC_OK);
    double after = wall_now();
    fedreci_stats_snapshot s;
    fedreci_stats_snapshot_get(st, &s);
    assert_int_equal(s.has_round, 0);
    assert_string_equal(s.stage, "idle");
    char buf[8192];
    size_t len = 0;
    assert_int_equal(fedreci_stats_format_status(&s, buf, sizeof buf, &len), FEDREC_OK);
    assert_int_equal(len, strlen(buf));
    assert_non_null(strstr(buf, "{\"round\":null,\"stage\":\"idle\",\"model_version\":0,"));

    fedreci_stats_set_model_version(st, 4);
    fedreci_stats_round_begin(st, 7);
    fedreci_stats_set_stage(st, "masked_input");
    fedreci_stats_set_connected(st, 8);
    fedreci_stats_snapshot_get(st, &s);
    assert_int_equal(fedreci_stats_format_status(&s, buf, sizeof buf, &len), FEDREC_OK);
    assert_non_null(strstr(buf, "{\"round\":7,\"stage\":\"masked_input\",\"model_version\":4,"
                                "\"connected_clients\":8,\"known_clients\":0,"
                                "\"rounds_completed\":0,"
                                "\"rounds_aborted\":0,"));

    fedreci_round_record r1 = round_rec(7, FEDRECI_ROUND_COMPLETED, 5);
    fedreci_round_record r2 = round_rec(8, FEDRECI_ROUND_ABORTED, 0);
    fedreci_stats_round_end(st, &r1);
    fedreci_stats_round_end(st, &r2);
    fedreci_stats_add_bytes(st, 10, 20);
    fedreci_stats_snapshot_get(st, &s);
    assert_string_equal(s.stage, "idle");
    assert_int_equal(fedreci_stats_format_metrics(&s, buf, sizeof buf, &len), FEDREC_OK);
    assert_true(metric(buf, "fedrec_rounds_completed_total") == 1);
    assert_true(metric(buf, "fedrec_rounds_aborted_total") == 1);
    assert_true(metric(buf, "fedrec_rounds_total{outcome=\"completed\"}") == 1);
    assert_true(metric(buf, "fedrec_rounds_total{outcome=\"aborted\"}") == 1);
    {
        char info[96];
        snprintf(info, sizeof info, "fedrec_build_info{version=\"%s\"}", fedrec_version());
        assert_true(metric(buf, info) == 1);
    }
    /* this process: a resident set of at least a page, at least stdin,
     * stdout and stderr open, started when the stats record was created
     * (printed with 3 decimals: rounding moves it by at most 0.5 ms) */
    assert_true(metric(buf, "process_resident_memory_bytes") >= 4096);
    assert_true(metric(buf, "process_open_fds") >= 3);
    assert_true(metric(buf, "process_start_time_seconds") >= before - 0.0005);
    assert_true(metric(buf, "process_start_time_seconds") <= after + 0.0005);
    assert_non_null(strstr(buf, "# TYPE process_open_fds gauge\n"));
    assert_non_null(strstr(buf, "# TYPE fedrec_rounds_total counter\n"));
    assert_true(metric(buf, "fedrec_round_participants") == 0); /* last finished: aborted */
    assert_true(metric(buf, "fedrec_dropouts_total{stage=\"advertise\"}") == 2);
    assert_true(metric(buf, "fedrec_dropouts_total{stage=\"share_keys\"}") == 0);
    assert_true(metric(buf, "fedrec_dropouts_total{stage=\"masked_input\"}") == 4);
    assert_true(metric(buf, "fedrec_stage_duration_seconds_sum{stage=\"advertise\"}") == 3.0);
    assert_true(metric(buf, "fedrec_stage_duration_seconds_count{stage=\"advertise\"}") == 2);
    assert_true(metric(buf, "fedrec_stage_duration_seconds_sum{stage=\"masked_input\"}") == 0.75);
    assert_true(metric(buf, "fedrec_stage_duration_seconds_count{stage=\"unmask\"}") == 1);
    assert_true(metric(buf, "fedrec_bytes_received_total") == 2010);
    assert_true(metric(buf, "fedrec_bytes_sent_total") == 8020);
    assert_true(metric(buf, "fedrec_model_version") == 4);
    assert_true(metric(buf, "fedrec_current_round") == 8);
    /* every sample has its TYPE line, and the text ends with a newline */
    assert_non_null(strstr(buf, "# TYPE fedrec_dropouts_total counter\n"));
    assert_non_null(strstr(buf, "# TYPE fedrec_stage_duration_seconds summary\n"));
    assert_int_equal(buf[len - 1], '\n');

    /* too small a buffer is an error, not a truncated page */
    char small[64];
    size_t keep = 12345;
    assert_int_equal(fedreci_stats_format_metrics(&s, small, sizeof small, &keep),
                     FEDREC_ERR_TOO_BIG);
    assert_int_equal(keep, 12345);
    fedreci_stats_destroy(st);
    fedreci_stats_destroy(NULL);
}

static void test_http_endpoints(void **state)
{
    (void)state;
    fedreci_stats *st;
    assert_int_equal(fedreci_stats_create(&st), FEDREC_OK);
    fedreci_status *srv = NULL;
    assert_int_equal(fedreci_status_open(&srv, "http://127.0.0.1:0", st), FEDREC_OK);
    uint16_t port = fedreci_status_port(srv);
    assert_true(port > 0);

    char body[65536];
    assert_int_equal(http_get(port, "/healthz", body, sizeof body), 200);
    assert_string_equal(body, "ok\n");

    fedreci_stats_set_model_version(st, 12);
    fedreci_stats_round_begin(st, 3);
    fedreci_stats_set_stage(st, "share_keys");
    fedreci_stats_set_connected(st, 6);
    assert_int_equal(http_get(port, "/status", body, sizeof body), 200);
    assert_non_null(strstr(body, "{\"round\":3,\"stage\":\"share_keys\",\"model_version\":12,"
                                 "\"connected_clients\":6,"));

    fedreci_round_record r = round_rec(3, FEDRECI_ROUND_COMPLETED, 6);
    fedreci_stats_round_end(st, &r);
    assert_int_equal(http_get(port, "/metrics", body, sizeof body), 200);
    assert_true(metric(body, "fedrec_rounds_completed_total") == 1);
    assert_true(metric(body, "fedrec_round_participants") == 6);
    assert_true(metric(body, "fedrec_dropouts_total{stage=\"masked_input\"}") == 2);
    assert_true(metric(body, "fedrec_stage_duration_seconds_sum{stage=\"share_keys\"}") == 0.25);
    assert_true(metric(body, "fedrec_bytes_received_total") == 1000);
    assert_true(metric(body, "fedrec_bytes_sent_total") == 4000);

    assert_int_equal(http_get(port, "/", body, sizeof body), 200);
    assert_non_null(strstr(body, "<!DOCTYPE html>"));
    assert_non_null(strstr(body, "<dt>Round</dt><dd>3, stage idle</dd>"));
    assert_int_equal(http_get(port, "/nope", body, sizeof body), 404);

    fedreci_status_close(srv);
    fedreci_status_close(NULL);
    fedreci_stats_destroy(st);
}

/* Occurrences of needle in hay. */
static int count_of(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

/* The status page: data is escaped (a database path and an abort reason
 * with markup in them come out as text), the history keeps the last
 * FEDRECI_STATS_HISTORY rounds (one chart bar pair each; the table the last
 * 12), nothing external is referenced, and too small a buffer is an error. */
static void test_html_page(void **state)
{
    (void)state;
    fedreci_stats *st;
    assert_int_equal(fedreci_stats_create(&st), FEDREC_OK);
    fedreci_stats_info in = {.catalog_id = 3,
                             .catalog_items = 50,
                             .catalog_active = 48,
                             .factors = 4,
                             .cohort = 8,
                             .min_cohort = 3,
                             .clip = 16,
                             .scale = 65536};
    snprintf(in.db, sizeof in.db, "/srv/<script>alert(1)</script>&\"x'/state.sqlite");
    fedreci_stats_set_info(st, &in);
    char *buf = malloc(128 * 1024);
    assert_non_null(buf);
    size_t len = 0;
    fedreci_stats_snapshot s;
    fedreci_stats_snapshot_get(st, &s);
    assert_int_equal(fedreci_stats_format_html(&s, buf, 128 * 1024, &len), FEDREC_OK);
    assert_int_equal(len, strlen(buf));
    assert_non_null(strstr(buf, "No round has finished yet."));
    assert_non_null(strstr(buf, "no round yet"));

    for (uint64_t id = 1; id <= FEDRECI_STATS_HISTORY + 5; id++) {
        fedreci_round_record r =
            round_rec(id, id % 10 == 0 ? FEDRECI_ROUND_ABORTED : FEDRECI_ROUND_COMPLETED, 5);
        r.model_version = id + 1;
        r.started_ms = 1764633600000LL + (int64_t)id * 1000; /* 2025-12-02 00:00:00 UTC + id s */
        r.ended_ms = r.started_ms + 2500;
        if (id % 10 == 0)
            snprintf(r.metrics_json, sizeof r.metrics_json,
                     "{\"reason\":\"stage 0: <b>too</b> few & late\"}");
        fedreci_stats_round_end(st, &r);
    }
    fedreci_stats_set_health(st, "database <x>: full");
    fedreci_stats_snapshot_get(st, &s);
    assert_int_equal(s.n_history, FEDRECI_STATS_HISTORY);
    assert_int_equal(s.history[0].round_id, 6);
    assert_int_equal(fedreci_stats_format_html(&s, buf, 128 * 1024, &len), FEDREC_OK);
    /* escaped, never markup */
    assert_null(strstr(buf, "<script"));
    assert_null(strstr(buf, "<b>"));
    assert_non_null(
        strstr(buf, "/srv/&lt;script&gt;alert(1)&lt;/script&gt;&amp;&quot;x&#39;/state.sqlite"));
    assert_non_null(strstr(buf, "aborted: stage 0: &lt;b&gt;too&lt;/b&gt; few &amp; late"));
    assert_non_null(strstr(buf, "Unhealthy: database &lt;x&gt;: full"));
    /* one bar pair per kept round; 12 table rows, newest first */
    assert_int_equal(count_of(buf, "<rect class=\"c\""), FEDRECI_STATS_HISTORY);
    assert_int_equal(count_of(buf, "<tr><td>"), 12);
    assert_non_null(strstr(buf, "<tr><td>53</td><td class=\"o\">completed</td>"
                                "<td>2025-12-02 00:00:53</td><td>2.5 s</td><td>8</td>"
                                "<td>5</td><td>1/0/2/0</td><td>54</td></tr>"));
    assert_null(strstr(buf, "<tr><td>41</td>"));
    assert_non_null(strstr(buf, "round 6</text>"));
    assert_non_null(strstr(buf, "round 53</text>"));
    assert_non_null(strstr(buf, "no differential privacy"));
    assert_non_null(strstr(buf, "<dt>Catalog version</dt><dd>3</dd>"));
    assert_non_null(strstr(buf, "<dd>50 (48 active, 2 retired)</dd>"));
    /* nothing fetched from elsewhere */
    assert_null(strstr(buf, "<script"));
    assert_null(strstr(buf, "src="));
    assert_null(strstr(buf, "@import"));
    assert_null(strstr(buf, "url("));
    /* with differential privacy: the budget, what is spent, and a refusal
     * (escaped) instead of "no differential privacy" */
    fedreci_stats_dp dp = {.on = 1,
                           .epsilon = 8,
                           .delta = 1e-6,
                           .spent = 2.5,
                           .eps_round = 0.625,
                           .noise_std = 12.5,
                           .rounds = 4,
                           .min_survivors = 20,
                           .exhausted = 1};
    snprintf(dp.refusal, sizeof dp.refusal, "round 9: <4> survivors");
    fedreci_stats_set_dp(st, &dp);
    fedreci_stats_snapshot_get(st, &s);
    assert_int_equal(fedreci_stats_format_html(&s, buf, 128 * 1024, &len), FEDREC_OK);
    assert_null(strstr(buf, "no differential privacy"));
    assert_non_null(strstr(buf, "Skellam noise in the secure sum (std 12.5 per coordinate); "
                                "budget &#949; = 8, &#948; = 1e-06; &#949; spent 2.5000 over 4 "
                                "rounds (0.6250 per round); rounds need at least 20 survivors; "
                                "<strong>budget exhausted: no further round</strong>; "
                                "round 9: &lt;4&gt; survivors</dd>"));
    assert_int_equal(fedreci_stats_format_html(&s, buf, 1000, &len), FEDREC_ERR_TOO_BIG);
    free(buf);
    fedreci_stats_destroy(st);
}

static void test_bad_address(void **state)
{
    (void)state;
    fedreci_stats *st;
    assert_int_equal(fedreci_stats_create(&st), FEDREC_OK);
    fedreci_status *srv = NULL;
    assert_int_equal(fedreci_status_open(&srv, "tcp://127.0.0.1:8080", st), FEDREC_ERR_INVALID);
    assert_non_null(strstr(fedrec_errmsg(), "tcp://127.0.0.1:8080"));
    assert_null(srv);
    fedreci_stats_destroy(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stats_and_renderers),
        cmocka_unit_test(test_http_endpoints),
        cmocka_unit_test(test_html_page),
        cmocka_unit_test(test_bad_address),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

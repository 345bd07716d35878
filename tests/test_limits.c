/* Resource limits of the coordinator (issue 13, docs/operations.md
 * "Limits"), against the real `fedrec-coordinator` process (SQLite in a
 * temporary directory, tcp:// on a kernel-chosen port, the status server on
 * another) with three honest clients (client/session.h) beside hostile ones
 * that speak the wire protocol, or raw SP-over-TCP, themselves. Hostile
 * connections come from other loopback addresses (127.0.0.2 and up: Linux
 * routes all of 127/8 to lo), the honest ones from 127.0.0.1 or, where
 * the per-address buckets are tested, over ipc:// (which has no address:
 * it counts toward the total caps only).
 *
 *  - test_new_ids: 200 signed check-ins under fresh ids from one
 *    connection: all but the address's bucket are refused, the registry
 *    holds the honest ids and the bucket's worth, and the next round's
 *    cohort is the honest clients, completing with the exact sum;
 *  - test_global_new_ids: 50 fresh ids from 10 addresses against a global
 *    bucket of 20: exactly the excess is refused, by the right bucket;
 *  - test_registry_bound: 40 fresh ids against --max-clients 8: the
 *    registry never holds more than 8, exactly 35 ids are forgotten (never
 *    the last cohort's or a held one), and the honest clients complete the
 *    next round with the exact sum;
 *  - test_connections_and_memory: 80 connections from 10 addresses, each
 *    admitted one sending all but the last byte of a message just under the
 *    receive cap and holding it: per-address and total caps refuse exactly
 *    the excess, honest clients complete beside them, and the coordinator's
 *    VmRSS stays below its idle RSS plus one receive cap per admitted
 *    connection (plus a fixed margin); after they close, RSS is printed
 *    (and must fall back below that bound).
 *
 * Every assertion is on a value a correct program must produce; waits poll
 * /metrics or the log for a condition (up to 60 s), never a duration. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <sodium.h>
#include <sqlite3.h>

#include "client/session.h"
#include "core/err.h"
#include "core/secagg/secagg.h"
#include "proto/wire.h"
#include "harness_engine.h"

extern char **environ;

#define N_HONEST 3
#define MAX_D (16384 * 8 + 1)

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

/* ---- the daemon as a process (tests/harness_engine.h th_daemon) ---------------- */

typedef struct daemon_proc {
    th_daemon p;
    char ipc[300]; /* a second listener, ipc:// (not an IP address) */
    int http_port;
    uint32_t n_items, k;
} daemon_proc;

static void dump_log(const daemon_proc *d)
{
    th_log_dump(&d->p);
}

static int log_number_after(const daemon_proc *d, const char *needle)
{
    return th_log_number_after(&d->p, needle);
}

static void log_wait(const daemon_proc *d, const char *needle)
{
    if (!th_log_wait(&d->p, needle, NULL, NULL)) {
        dump_log(d);
        fail_msg("no log line with '%s'", needle);
    }
}

/* Starts the daemon with a catalog of n_items products, k factors, cohort
 * 3 and the extra flags (NULL-terminated). */
static void daemon_start(daemon_proc *d, uint32_t n_items, uint32_t k, const char *const *extra)
{
    memset(d, 0, sizeof *d);
    th_daemon_init(&d->p, "limits");
    d->n_items = n_items;
    d->k = k;
    char cat[300], kk[16];
    snprintf(cat, sizeof cat, "%s/catalog.csv", d->p.dir);
    snprintf(kk, sizeof kk, "%u", k);
    snprintf(d->ipc, sizeof d->ipc, "ipc://%s/coordinator.ipc", d->p.dir);
    FILE *f = fopen(cat, "w");
    assert_non_null(f);
    fprintf(f, "code,description\n");
    for (uint32_t i = 0; i < n_items; i++)
        fprintf(f, "P%05u,product %u\n", i, i);
    fclose(f);
    const char *argv[56] = {"--catalog",
                            cat,
                            "--listen",
                            d->ipc,
                            "--http",
                            "http://127.0.0.1:0",
                            "--factors",
                            kk,
                            "--seed",
                            "7",
                            "--cohort",
                            "3",
                            "--min-cohort",
                            "3",
                            "--deadline-checkin",
                            "1500",
                            "--deadline-advertise",
                            "30000",
                            "--deadline-share",
                            "30000",
                            "--deadline-masked",
                            "30000",
                            "--deadline-unmask",
                            "30000",
                            "--log-level",
                            "debug"};
    size_t n = 0;
    while (argv[n])
        n++;
    for (size_t i = 0; extra && extra[i]; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    th_daemon_launch(&d->p, "tcp://127.0.0.1:0", argv, "");
    d->http_port = log_number_after(d, "status on http://127.0.0.1:0 (port ");
    assert_true(d->http_port > 0);
}

/* SIGTERM, exit status 0, PRAGMA integrity_check, directory removed. */
static void daemon_stop(daemon_proc *d)
{
    th_daemon_stop(&d->p, 1, 0);
}

/* The value of metric `name` (with labels, as printed) from /metrics. */
static double metric(const daemon_proc *d, const char *name)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)d->http_port)};
    sa.sin_addr.s_addr = htonl(0x7f000001);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    const char *req = "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    assert_int_equal(send(fd, req, strlen(req), MSG_NOSIGNAL), (ssize_t)strlen(req));
    static char buf[16384];
    size_t n = 0;
    ssize_t got;
    while (n + 1 < sizeof buf && (got = recv(fd, buf + n, sizeof buf - 1 - n, 0)) > 0)
        n += (size_t)got;
    buf[n] = 0;
    close(fd);
    char needle[160];
    snprintf(needle, sizeof needle, "\n%s ", name);
    char *p = strstr(buf, needle);
    if (!p)
        fail_msg("/metrics has no %s:\n%s", name, buf);
    return strtod(p + strlen(needle), NULL);
}

/* Waits (up to 60 s) until metric name equals want. */
static void metric_wait(const daemon_proc *d, const char *name, double want)
{
    double v = -1;
    for (int i = 0; i < 3000; i++) {
        if ((v = metric(d, name)) == want)
            return;
        usleep(20000);
    }
    dump_log(d);
    fail_msg("%s is %.0f, want %.0f", name, v, want);
}

/* The coordinator's VmRSS in KiB. */
static long rss_kib(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    char *s = th_slurp(path);
    assert_non_null(s);
    char *p = strstr(s, "VmRSS:");
    assert_non_null(p);
    long v = atol(p + 6);
    free(s);
    return v;
}

/* ---- honest clients: library sessions (tests/harness_engine.h th_gclient) ------ */

/* One round of the three honest clients connected to url: completes, its round-log row
 * carries the BLAKE2b-256 of their quantized inputs added in Z_2^32 (the
 * oracle) and three advertisers (the cohort was the honest clients). */
static void honest_round(const daemon_proc *d, const char *url, th_gclient *g, uint64_t r)
{
    for (int i = 0; i < N_HONEST; i++)
        th_gclient_start(&g[i], url, 90000);
    for (int i = 0; i < N_HONEST; i++) {
        th_gclient_finish(&g[i]);
        if (g[i].res.outcome != FEDRECI_SESSION_COMPLETED) {
            dump_log(d);
            fail_msg("honest client %d: outcome %d (%s)", i, g[i].res.outcome, g[i].res.text);
        }
    }
    uint32_t dd = g[0].d;
    assert_true(dd == d->n_items * d->k + 1);
    uint32_t *sum = calloc(dd, sizeof *sum);
    assert_non_null(sum);
    for (int i = 0; i < N_HONEST; i++) {
        assert_int_equal(g[i].d, dd);
        for (uint32_t j = 0; j < dd; j++)
            sum[j] += g[i].q[j];
    }
    uint8_t b[32];
    char hex[65], want[100];
    crypto_generichash(b, 32, (const uint8_t *)sum, dd * sizeof *sum, NULL, 0);
    free(sum);
    sodium_bin2hex(hex, sizeof hex, b, 32);
    snprintf(want, sizeof want, "\"sum_b2b\":\"%s\"", hex);
    char line[64];
    snprintf(line, sizeof line, "[round %llu] round completed", (unsigned long long)r);
    log_wait(d, line);
    char st[16];
    char *json = th_daemon_round_row(&d->p, r, st);
    if (strcmp(st, "completed") || !strstr(json, want) || !strstr(json, "\"advertised\":3")) {
        dump_log(d);
        fail_msg("round %llu: status %s, metrics %s; want completed by the 3 honest clients "
                 "with %s",
                 (unsigned long long)r, st, json, want);
    }
    free(json);
}

/* ---- hostile check-ins ------------------------------------------------------------- */

/* A REQ socket dialed to url from local address 127.0.0.<host>. */
static nng_socket dial_from(const char *url, int host, int recv_ms)
{
    nng_socket s;
    nng_dialer dl;
    assert_int_equal(nng_req0_open(&s), 0);
    nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, recv_ms);
    nng_socket_set_ms(s, NNG_OPT_REQ_RESENDTIME, (nng_duration)0x7fffffff);
    assert_int_equal(nng_dialer_create(&dl, s, url), 0);
    nng_sockaddr sa;
    memset(&sa, 0, sizeof sa);
    sa.s_in.sa_family = NNG_AF_INET;
    sa.s_in.sa_addr = htonl(0x7f000000u | (uint32_t)host);
    assert_int_equal(nng_dialer_set_addr(dl, NNG_OPT_LOCADDR, &sa), 0);
    assert_int_equal(nng_dialer_start(dl, 0), 0);
    return s;
}

/* A signed check-in (opted in) under a fresh key and id on s. Returns the
 * Error code of the reply, FEDREC_OK for any other reply, or -1 when no
 * reply came within the socket's receive timeout (the check-in is held by
 * the coordinator). */
static int fresh_checkin(nng_socket s)
{
    uint8_t pk[32], sk[64];
    crypto_sign_keypair(pk, sk);
    fedreci_wire_hdr hd = {fedreci_secagg_id_from_pk(pk), 0, FEDRECI_WIRE_STAGE_CHECKIN};
    nng_msg *m = NULL;
    assert_int_equal(fedreci_wire_enc_checkin(&m, &hd, pk, 0, 1), FEDREC_OK);
    assert_int_equal(fedreci_wire_sign(m, &hd, sk), FEDREC_OK);
    assert_int_equal(nng_sendmsg(s, m, 0), 0);
    nng_msg *r = NULL;
    int rv = nng_recvmsg(s, &r, 0);
    if (rv == NNG_ETIMEDOUT)
        return -1;
    assert_int_equal(rv, 0);
    fedreci_wire_env *env = NULL;
    if (fedreci_wire_decode_msg(r, 64u << 20, &env))
        fail_msg("reply: %s", fedrec_errmsg());
    nng_msg_free(r);
    int code = env->body_case == FEDREC__V1__ENVELOPE__BODY_ERROR ? (int)env->error->code : 0;
    fedreci_wire_free(env);
    return code;
}

/* ---- the tests ------------------------------------------------------------------------ */

static void test_new_ids(void **state)
{
    (void)state;
    daemon_proc d;
    const char *extra[] = {"--new-ids-per-address-burst",
                           "2",
                           "--new-ids-per-address-rate",
                           "0",
                           "--new-ids-burst",
                           "1000",
                           "--new-ids-rate",
                           "0",
                           NULL};
    daemon_start(&d, 12, 2, extra);
    th_gclient g[N_HONEST];
    for (int i = 0; i < N_HONEST; i++)
        th_gclient_init(&g[i], MAX_D);
    /* the honest clients come over ipc:// (no address of their own here) */
    honest_round(&d, d.ipc, g, 1);
    metric_wait(&d, "fedrec_registry_clients", 3);

    /* 200 check-ins under fresh, correctly signed ids over one connection
       from 127.0.0.2: its bucket holds 2 tokens (fewer than a cohort) and is
       never refilled */
    nng_socket h = dial_from(d.p.url, 2, 300);
    int busy = 0;
    for (int i = 0; i < 200; i++)
        busy += fresh_checkin(h) == FEDREC_ERR_BUSY;
    nng_close(h); /* the held check-ins of the 2 admitted ids are released */
    metric_wait(&d, "fedrec_connections_open", 0);
    metric_wait(&d, "fedrec_checkins_refused_total{reason=\"new_ids_per_address\"}", 198);
    assert_true(busy <= 198);
    assert_int_equal(metric(&d, "fedrec_registry_clients"), 3 + 2);
    assert_int_equal(metric(&d, "fedrec_checkins_refused_total{reason=\"new_ids_global\"}"), 0);

    /* the next round: the honest clients only, with their exact sum */
    honest_round(&d, d.ipc, g, 2);
    assert_int_equal(metric(&d, "fedrec_registry_clients"), 3 + 2);
    daemon_stop(&d);
    for (int i = 0; i < N_HONEST; i++)
        th_gclient_free(&g[i]);
}

static void test_global_new_ids(void **state)
{
    (void)state;
    daemon_proc d;
    const char *extra[] = {"--new-ids-per-address-burst",
                           "2",
                           "--new-ids-per-address-rate",
                           "0",
                           "--new-ids-burst",
                           "20",
                           "--new-ids-rate",
                           "0",
                           NULL};
    daemon_start(&d, 12, 2, extra);
    th_gclient g[N_HONEST];
    for (int i = 0; i < N_HONEST; i++)
        th_gclient_init(&g[i], MAX_D);
    honest_round(&d, d.ipc, g, 1); /* 3 of the 20 global tokens */
    /* 10 addresses x 5 fresh ids, one address after the other: each
       address's bucket lets 2 through (a token is taken from both buckets
       or from neither) until the global bucket (17 left) is empty: the
       first 8 addresses register 2 and are refused 3 by their own bucket,
       the 9th registers 1 and is refused 4 by the global one, the 10th is
       refused 5 by the global one */
    for (int a = 0; a < 10; a++) {
        nng_socket h = dial_from(d.p.url, 10 + a, 300);
        for (int i = 0; i < 5; i++)
            (void)fresh_checkin(h);
        nng_close(h); /* its held check-ins go (no fake cohort forms) */
        metric_wait(&d, "fedrec_connections_open", 0);
    }
    metric_wait(&d, "fedrec_checkins_refused_total{reason=\"new_ids_per_address\"}", 24);
    metric_wait(&d, "fedrec_checkins_refused_total{reason=\"new_ids_global\"}", 9);
    assert_int_equal(metric(&d, "fedrec_registry_clients"), 20);
    honest_round(&d, d.ipc, g, 2); /* known ids need no token */
    daemon_stop(&d);
    for (int i = 0; i < N_HONEST; i++)
        th_gclient_free(&g[i]);
}

static void test_registry_bound(void **state)
{
    (void)state;
    daemon_proc d;
    const char *extra[] = {"--max-clients", "8", "--new-ids-per-address-burst", "0", NULL};
    daemon_start(&d, 12, 2, extra);
    th_gclient g[N_HONEST];
    for (int i = 0; i < N_HONEST; i++)
        th_gclient_init(&g[i], MAX_D);
    honest_round(&d, d.p.url, g, 1);
    /* 40 fresh ids over 20 connections (2 each, fewer than a cohort): each
       connection's held check-ins go when it closes; once the registry is
       full every new id makes it forget one it may forget (not the
       honest ones: they are the last round's cohort; not held ones) */
    for (int a = 0; a < 20; a++) {
        nng_socket h = dial_from(d.p.url, 2 + a, 200);
        for (int i = 0; i < 2; i++)
            (void)fresh_checkin(h);
        nng_close(h);
        metric_wait(&d, "fedrec_connections_open", 0);
        assert_true(metric(&d, "fedrec_registry_clients") <= 8);
    }
    /* 43 ids were registered, 8 are held */
    assert_int_equal(metric(&d, "fedrec_registry_clients"), 8);
    assert_int_equal(metric(&d, "fedrec_registry_evicted_total"), 43 - 8);
    honest_round(&d, d.p.url, g, 2); /* known ids: no token, no eviction */
    assert_int_equal(metric(&d, "fedrec_registry_clients"), 8);
    daemon_stop(&d);
    for (int i = 0; i < N_HONEST; i++)
        th_gclient_free(&g[i]);
}

/* A raw SP-over-TCP connection as REQ0 from 127.0.0.<host>: -1 when the
 * handshake did not complete. */
static int raw_connect(int port, int host)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in me = {.sin_family = AF_INET};
    me.sin_addr.s_addr = htonl(0x7f000000u | (uint32_t)host);
    assert_int_equal(bind(fd, (struct sockaddr *)&me, sizeof me), 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(0x7f000001);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    /* SP header: 0 'S' 'P' 0, protocol 0x30 (REQ0), reserved */
    const uint8_t hs[8] = {0, 'S', 'P', 0, 0, 0x30, 0, 0};
    uint8_t peer[8];
    if (send(fd, hs, 8, MSG_NOSIGNAL) != 8 || recv(fd, peer, 8, MSG_WAITALL) != 8) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Announces a message of len bytes on fd and sends all but its last byte
 * (errors ignored: a refused connection is closed by the coordinator). */
static void raw_send_but_last(int fd, size_t len)
{
    uint8_t hdr[8];
    uint64_t n = len;
    for (int i = 0; i < 8; i++)
        hdr[i] = (uint8_t)(n >> (56 - 8 * i));
    if (send(fd, hdr, 8, MSG_NOSIGNAL) != 8)
        return;
    static uint8_t junk[1 << 16];
    junk[0] = 0x80; /* a REQ request id */
    size_t left = len - 1;
    while (left > 0) {
        size_t c = left < sizeof junk ? left : sizeof junk;
        ssize_t w = send(fd, junk, c, MSG_NOSIGNAL);
        if (w <= 0)
            return;
        left -= (size_t)w;
    }
}

static void test_connections_and_memory(void **state)
{
    (void)state;
    daemon_proc d;
    const char *extra[] = {"--max-connections-per-address", "4", "--max-connections", "44", NULL};
    const uint32_t n_items = 16384, k = 8;
    daemon_start(&d, n_items, k, extra);
    int port = atoi(strrchr(d.p.url, ':') + 1);
    /* the coordinator's receive ceiling, as it logs it */
    size_t recv_max = (size_t)log_number_after(&d, "announcing more than ");
    assert_true(recv_max > 1000000);
    th_gclient g[N_HONEST];
    for (int i = 0; i < N_HONEST; i++)
        th_gclient_init(&g[i], MAX_D);
    honest_round(&d, d.p.url, g, 1); /* the model is built and served once: the idle RSS after */
    metric_wait(&d, "fedrec_connections_open", 0);
    long rss_idle = rss_kib(d.p.pid);

    /* 10 addresses x 8 connections, cap 4 per address: 40 admitted, 40
       refused; each admitted one holds all but the last byte of a message
       just under the ceiling */
    int fds[80], nfd = 0;
    for (int a = 0; a < 10; a++)
        for (int i = 0; i < 8; i++) {
            int fd = raw_connect(port, 20 + a);
            if (fd >= 0)
                fds[nfd++] = fd;
        }
    metric_wait(&d, "fedrec_connections_open", 40);
    metric_wait(&d, "fedrec_connections_refused_total{reason=\"per_address\"}", 40);
    for (int i = 0; i < nfd; i++)
        raw_send_but_last(fds[i], recv_max - 64);
    /* 8 more from two fresh addresses: 4 fit under the total cap of 44 */
    int more[8], nmore = 0;
    for (int a = 0; a < 2; a++)
        for (int i = 0; i < 4; i++) {
            int fd = raw_connect(port, 40 + a);
            if (fd >= 0)
                more[nmore++] = fd;
        }
    metric_wait(&d, "fedrec_connections_refused_total{reason=\"total\"}", 4);
    metric_wait(&d, "fedrec_connections_refused_total{reason=\"per_address\"}", 40);
    metric_wait(&d, "fedrec_connections_open", 44);
    for (int i = 0; i < nmore; i++)
        close(more[i]);
    metric_wait(&d, "fedrec_connections_open", 40);

    /* honest clients beside the 40 held messages */
    honest_round(&d, d.p.url, g, 2);
    long rss_held = rss_kib(d.p.pid);
    long bound = rss_idle + (long)(40 * (recv_max + 65536) / 1024) + 32 * 1024;
    for (int i = 0; i < nfd; i++)
        close(fds[i]);
    metric_wait(&d, "fedrec_connections_open", 0);
    long rss_after = rss_kib(d.p.pid);
    printf("# coordinator VmRSS: idle %ld KiB, 40 near-max messages held %ld KiB (bound %ld), "
           "after they closed %ld KiB; receive ceiling %zu bytes\n",
           rss_idle, rss_held, bound, rss_after, recv_max);
    if (!UNDER_ASAN) { /* ASan keeps freed memory in quarantine and shadow */
        assert_true(rss_held <= bound);
        assert_true(rss_after <= bound);
    }
    daemon_stop(&d);
    for (int i = 0; i < N_HONEST; i++)
        th_gclient_free(&g[i]);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_new_ids, th_daemon_teardown),
        cmocka_unit_test_teardown(test_global_new_ids, th_daemon_teardown),
        cmocka_unit_test_teardown(test_registry_bound, th_daemon_teardown),
        cmocka_unit_test_teardown(test_connections_and_memory, th_daemon_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* The daemon's life as an operator sees it (issue 18), each test against a
 * real `fedrec-coordinator` process (SQLite in a temporary directory,
 * tcp:// on a kernel-chosen port read back from its log, a 50-item catalog,
 * clients as sessions in this process):
 *
 *  - test_round_lines: three short rounds (milliseconds each, far below the
 *    200 ms the daemon used to poll at) each get exactly one "round started"
 *    and one "round completed" line, in order with their stage lines and the
 *    commit, and a completed row in the database; the engine's own
 *    duplicates of those lines are not logged.
 *  - test_crash_in_round_window: the daemon is SIGKILLed the moment a
 *    client has learned the round id (from the session's update hook, right
 *    after selection). The restart marks that round aborted ("crash") and
 *    the next round gets the next id: no id is ever used twice.
 *  - test_connected_clients: fedrec_connected_clients counts known clients
 *    on an open connection (0 after a client gave up and closed, 2 while two
 *    wait in a check-in), fedrec_known_clients every registered one (3).
 *  - test_status_page: after two rounds the page at / is loaded in headless
 *    Chromium (`chromium --headless --dump-dom`, and `--screenshot` kept as
 *    a test artifact under the build directory, its path printed); the
 *    rendered DOM shows the health, round, stage, the two rounds with their
 *    cohort, survivors and model versions, one chart bar per round, the
 *    privacy settings and the catalog version, and the database path (which
 *    holds markup characters) as escaped text. Skipped only when chromium
 *    is not installed (scripts/setup.sh installs it, so CI runs it).
 *  - test_sighup_reload: two clients wait in a check-in (their connections
 *    open) while the catalog file changes (5 products added, 1 retired) and
 *    the daemon gets SIGHUP: model version 2 is committed with 55 rows, the
 *    two connections stay open and their held check-ins are answered, and
 *    with a third client the round runs on the new model (d = 55 x 4 + 1)
 *    and commits version 3; the clients download version 2 first.
 *  - test_sighup_tls: SIGHUP reloads the TLS certificate; a client that
 *    checked in over the old one stays in its round, new connections get
 *    the new one (trusting only the old one no longer gets through).
 *  - test_catalog_from_log: `fedrec-coordinator catalog --from-log` writes
 *    the catalog of a purchase log (the bundled December 2010 log): read
 *    back, exactly its products and descriptions; the daemon starts on it.
 *  - test_backoff: after --abort-streak aborts in a row /healthz answers
 *    503 naming the streak and the next round starts no earlier than
 *    --backoff ms after the last one ended (a lower bound a loaded machine
 *    cannot break); a completed round makes it healthy again.
 *  - test_catalog_digest: the INI file's catalog is merged only when it
 *    changed since its last merge (its digest is in the database): an update
 *    made from another file survives restarts; an edit of the file is merged.
 *  - test_daemon_dies_with_test: a daemon a test starts (th_spawn) does not
 *    outlive the test process: a forked test process starts the daemon,
 *    waits for its ready line and _exits without stopping it; the daemon is
 *    then gone (killed, not merely orphaned to init).
 *
 * No timed assertions: deadlines only bound waits. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>
#include <sqlite3.h>

#include "client/session.h"
#include "coordinator/catalog.h"
#include "core/dataset/dataset.h"
#include "core/err.h"
#include "core/log.h"
#include "harness.h"

#define N_ITEMS 50
#define K_FACTORS 4

/* ---- the daemon as a process ------------------------------------------------ */

typedef struct daemon_proc {
    pid_t pid;
    char dir[256];
    char log[320];
    char db[400];
    char catalog[320];
    char url[128];
    int http_port;
    int no_catalog_flag; /* 1: no --catalog (the test's --config names one) */
    const char *scheme;  /* "tcp" (NULL) or "tls+tcp" */
} daemon_proc;

static pid_t g_live = 0; /* the daemon a failed assertion leaves behind */

static int teardown_daemon(void **state)
{
    (void)state;
    if (g_live > 0) {
        kill(g_live, SIGKILL);
        waitpid(g_live, NULL, 0);
        g_live = 0;
    }
    return 0;
}

/* Products P000.. P(n-1), without `skip` (NULL: none). */
static void write_catalog(const char *path, int n, const char *skip)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "code,description\n");
    for (int i = 0; i < n; i++) {
        char code[16];
        snprintf(code, sizeof code, "P%03d", i);
        if (!skip || strcmp(skip, code) != 0)
            fprintf(f, "%s,product %d\n", code, i);
    }
    fclose(f);
}

/* Lines of the daemon's log containing a and b (b may be NULL). */
static int log_count(const daemon_proc *d, const char *a, const char *b)
{
    char *s = th_slurp(d->log);
    int n = 0;
    for (char *line = s ? strtok(s, "\n") : NULL; line; line = strtok(NULL, "\n"))
        if (strstr(line, a) && (!b || strstr(line, b)))
            n++;
    free(s);
    return n;
}

/* Waits (up to 60 s, a hang guard) for a line with a and b. */
static void log_wait(const daemon_proc *d, const char *a, const char *b)
{
    for (int i = 0; i < 3000; i++) {
        if (log_count(d, a, b) > 0)
            return;
        usleep(20000);
    }
    char *s = th_slurp(d->log);
    fprintf(stderr, "---- %s\n%s\n", d->log, s ? s : "");
    free(s);
    fail_msg("no log line with '%s' '%s'", a, b ? b : "");
}

/* The number after `needle` in the log (its first occurrence), or -1. */
static long log_number_after(const daemon_proc *d, const char *needle)
{
    char *s = th_slurp(d->log);
    char *p = s ? strstr(s, needle) : NULL;
    long v = p ? atol(p + strlen(needle)) : -1;
    free(s);
    return v;
}

/* Starts the daemon in d->dir (created when d->dir is empty) with the
 * common flags and `extra` (NULL-terminated); log file `logname`. Waits for
 * the ready line and reads the client and status ports. */
static void daemon_start(daemon_proc *d, const char *logname, const char *const *extra)
{
    if (!d->dir[0]) {
        snprintf(d->dir, sizeof d->dir, "/tmp/fedrec-life-XXXXXX");
        assert_non_null(mkdtemp(d->dir));
    }
    snprintf(d->log, sizeof d->log, "%s/%s", d->dir, logname);
    if (!d->db[0])
        snprintf(d->db, sizeof d->db, "%s/state.sqlite", d->dir);
    if (!d->catalog[0] && !d->no_catalog_flag) {
        snprintf(d->catalog, sizeof d->catalog, "%s/catalog.csv", d->dir);
        write_catalog(d->catalog, N_ITEMS, NULL);
    }
    const char *argv[64];
    int n = 0;
    argv[n++] = FEDREC_BIN_DIR "/coordinator/fedrec-coordinator";
    if (!d->no_catalog_flag) {
        argv[n++] = "--catalog";
        argv[n++] = d->catalog;
    }
    char listen[64];
    snprintf(listen, sizeof listen, "%s://127.0.0.1:0", d->scheme ? d->scheme : "tcp");
    const char *common[] = {
        "--db",      d->db, "--listen", listen, "--http",      "http://127.0.0.1:0",
        "--factors", "4",   "--seed",   "7",    "--log-level", "debug"};
    for (size_t i = 0; i < sizeof common / sizeof *common; i++)
        argv[n++] = common[i];
    for (size_t i = 0; extra && extra[i] && n < 62; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    d->pid = th_spawn(argv[0], argv, NULL, d->log, 0600);
    assert_true(d->pid > 0);
    g_live = d->pid;
    log_wait(d, " ready: clients on ", NULL);
    char needle[96];
    snprintf(needle, sizeof needle, "listening on %s (port ", listen);
    long port = log_number_after(d, needle);
    long hport = log_number_after(d, "status on http://127.0.0.1:0 (port ");
    assert_true(port > 0 && hport > 0);
    snprintf(d->url, sizeof d->url, "%s://127.0.0.1:%ld", d->scheme ? d->scheme : "tcp", port);
    d->http_port = (int)hport;
}

/* SIGTERM; expects exit status 0. */
static void daemon_stop(daemon_proc *d)
{
    int st = 0;
    kill(d->pid, SIGTERM);
    assert_int_equal(waitpid(d->pid, &st, 0), d->pid);
    g_live = 0;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail_msg("coordinator exit status %d (log %s)", st, d->log);
}

static void daemon_cleanup(daemon_proc *d)
{
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", d->dir);
    assert_int_equal(system(cmd), 0);
}

/* GET path from the status server: the body (heap string, free it). */
static char *http_get(const daemon_proc *d, const char *path)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)d->http_port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    char req[256];
    int n =
        snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", path);
    assert_int_equal(write(fd, req, (size_t)n), n);
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    assert_non_null(buf);
    for (;;) {
        if (len + 1 == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
        ssize_t got = read(fd, buf + len, cap - len - 1);
        if (got <= 0)
            break;
        len += (size_t)got;
    }
    close(fd);
    buf[len] = '\0';
    char *body = strstr(buf, "\r\n\r\n");
    assert_non_null(body);
    memmove(buf, body + 4, strlen(body + 4) + 1);
    return buf;
}

/* The value of a metric line "name value" in /metrics, or -1. */
static double metric(const daemon_proc *d, const char *name)
{
    char *s = http_get(d, "/metrics");
    double v = -1;
    for (char *line = strtok(s, "\n"); line; line = strtok(NULL, "\n"))
        if (strncmp(line, name, strlen(name)) == 0 && line[strlen(name)] == ' ')
            v = atof(line + strlen(name) + 1);
    free(s);
    return v;
}

/* One SQL value from the database as text (sqlite3 CLI-free: the library). */
static void sql_text(const char *db, const char *sql, char *out, size_t cap)
{
    sqlite3 *h = NULL;
    sqlite3_stmt *s = NULL;
    out[0] = '\0';
    assert_int_equal(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(h, sql, -1, &s, NULL), SQLITE_OK);
    if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_text(s, 0))
        snprintf(out, cap, "%s", (const char *)sqlite3_column_text(s, 0));
    sqlite3_finalize(s);
    sqlite3_close(h);
}

/* ---- clients: sessions -------------------------------------------------------- */

typedef struct gclient {
    uint64_t id;
    uint8_t pk[32], sk[64];
    fedreci_session *s;
    fedreci_session_result res;
    uint32_t d;        /* the round's vector length, seen by the update hook */
    pid_t kill_on_sel; /* > 0: SIGKILL this process from the update hook */
    uint64_t sel_round;
    uint32_t model_items; /* rows of the last model downloaded */
} gclient;

static void on_model(void *arg, const fedreci_wire_model *m)
{
    gclient *g = arg;
    g->model_items = m->n_items;
}

static fedrec_err on_update(void *arg, const fedreci_wire_round *r, float *x, uint32_t *w)
{
    gclient *g = arg;
    g->d = r->secagg.d;
    g->sel_round = r->secagg.round_id;
    if (g->kill_on_sel > 0)
        kill(g->kill_on_sel, SIGKILL); /* the client knows the round id now */
    for (uint32_t i = 0; i + 1 < r->secagg.d; i++)
        x[i] = (float)((int)((i + g->id) % 13) - 6) * 0.01f;
    *w = 1;
    return FEDREC_OK;
}

static void g_init(gclient *g)
{
    memset(g, 0, sizeof *g);
    crypto_sign_keypair(g->pk, g->sk);
    g->id = fedreci_secagg_id_from_pk(g->pk);
}

static int g_dropout = -1; /* the next sessions' dropout_stage (test_backoff) */

static void g_start_ca(gclient *g, const char *url, const char *ca, uint32_t timeout_ms)
{
    fedreci_session_config sc;
    fedreci_session_config_default(&sc);
    sc.url = url;
    sc.tls_ca_file = ca;
    sc.tls_server_name = ca ? "localhost" : NULL;
    sc.dropout_stage = g_dropout;
    sc.client_id = g->id;
    sc.identity_sk = g->sk;
    sc.timeout_ms = timeout_ms;
    fedreci_session_hooks h;
    memset(&h, 0, sizeof h);
    h.arg = g;
    h.on_model = on_model;
    h.compute_update = on_update;
    if (fedreci_session_create(&g->s, &sc, &h) || fedreci_session_start(g->s))
        fail_msg("session: %s", fedrec_errmsg());
}

static void g_start(gclient *g, const char *url, uint32_t timeout_ms)
{
    g_start_ca(g, url, NULL, timeout_ms);
}

static void g_finish(gclient *g)
{
    assert_int_equal(fedreci_session_wait(g->s, -1, &g->res), FEDREC_OK);
    fedreci_session_destroy(g->s);
    g->s = NULL;
}

/* n clients run one round together; every one completes. */
static void run_round(const daemon_proc *d, gclient *g, int n)
{
    for (int i = 0; i < n; i++)
        g_start(&g[i], d->url, 60000);
    for (int i = 0; i < n; i++) {
        g_finish(&g[i]);
        if (g[i].res.outcome != FEDRECI_SESSION_COMPLETED)
            fail_msg("client %d: outcome %d: %s (log %s)", i, g[i].res.outcome, g[i].res.text,
                     d->log);
    }
}

/* ---- the tests ------------------------------------------------------------------ */

/* The byte offset of the first line with a and b in s, or -1. */
static long line_at(const char *s, const char *a, const char *b)
{
    for (const char *p = s; (p = strstr(p, a)) != NULL; p++) {
        const char *ls = p, *le = strchr(p, '\n');
        while (ls > s && ls[-1] != '\n')
            ls--;
        if (!b || (strstr(ls, b) && (!le || strstr(ls, b) < le)))
            return (long)(ls - s);
    }
    return -1;
}

static void test_round_lines(void **state)
{
    (void)state;
    daemon_proc d = {0};
    const char *extra[] = {"--cohort", "3", "--min-cohort", "3", NULL};
    daemon_start(&d, "coordinator.log", extra);
    gclient g[3];
    for (int r = 0; r < 3; r++) {
        for (int i = 0; i < 3; i++)
            g_init(&g[i]);
        run_round(&d, g, 3);
    }
    daemon_stop(&d);
    char *s = th_slurp(d.log);
    assert_non_null(s);
    for (int r = 1; r <= 3; r++) {
        char tag[32];
        snprintf(tag, sizeof tag, "[round %d] ", r);
        assert_int_equal(log_count(&d, tag, "round started: cohort 3 of 3 waiting"), 1);
        assert_int_equal(log_count(&d, tag, "round completed: cohort 3, survivors 3"), 1);
        /* the engine's own lines for the same events are debug only */
        char eng[64];
        snprintf(eng, sizeof eng, "INFO  [round %d] round done", r);
        assert_int_equal(log_count(&d, eng, NULL), 0);
        snprintf(eng, sizeof eng, "INFO  [round %d] round start:", r);
        assert_int_equal(log_count(&d, eng, NULL), 0);
        long at[7];
        at[0] = line_at(s, tag, "round started");
        for (int st = 0; st < 4; st++) {
            char what[32];
            snprintf(what, sizeof what, "stage %d closed", st);
            at[1 + st] = line_at(s, tag, what);
        }
        at[5] = line_at(s, tag, "committed (");
        at[6] = line_at(s, tag, "round completed");
        for (int i = 0; i < 7; i++) {
            assert_true(at[i] >= 0);
            if (i)
                assert_true(at[i] > at[i - 1]);
        }
        char sql[128], out[64];
        snprintf(sql, sizeof sql,
                 "SELECT status || ' ' || cohort || ' ' || model_version || ' ' || "
                 "(ended_ms - started_ms) FROM rounds WHERE round_id = %d",
                 r);
        sql_text(d.db, sql, out, sizeof out);
        char want[32];
        snprintf(want, sizeof want, "completed 3 %d ", r + 1);
        assert_memory_equal(out, want, strlen(want));
        printf("round %d: %s ms from start to end\n", r, out + strlen(want));
    }
    free(s);
    daemon_cleanup(&d);
}

static void test_crash_in_round_window(void **state)
{
    (void)state;
    daemon_proc d = {0};
    const char *extra[] = {"--cohort", "2", "--min-cohort", "2", NULL};
    daemon_start(&d, "coordinator.log", extra);
    gclient g[2];
    g_init(&g[0]);
    g_init(&g[1]);
    g[0].kill_on_sel = g[1].kill_on_sel = d.pid;
    g_start(&g[0], d.url, 3000);
    g_start(&g[1], d.url, 3000);
    int st = 0;
    assert_int_equal(waitpid(d.pid, &st, 0), d.pid);
    g_live = 0;
    assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    g_finish(&g[0]);
    g_finish(&g[1]);
    uint64_t known = g[0].sel_round ? g[0].sel_round : g[1].sel_round;
    assert_int_equal(known, 1); /* a client learned round 1, then the daemon died */

    daemon_start(&d, "coordinator-2.log", extra);
    log_wait(&d, "1 round(s) interrupted by a crash marked aborted", NULL);
    char out[128];
    sql_text(d.db, "SELECT status || ' ' || metrics FROM rounds WHERE round_id = 1", out,
             sizeof out);
    assert_string_equal(out, "aborted {\"reason\":\"crash\"}");
    for (int i = 0; i < 2; i++) {
        g_init(&g[i]);
        g[i].kill_on_sel = 0;
    }
    run_round(&d, g, 2);
    assert_int_equal(g[0].res.round_id, 2);
    assert_int_equal(log_count(&d, "[round 2] round started", NULL), 1);
    assert_int_equal(log_count(&d, "[round 1] ", NULL), 0);
    daemon_stop(&d);
    sql_text(d.db, "SELECT group_concat(round_id || status, ',') FROM rounds", out, sizeof out);
    assert_string_equal(out, "1aborted,2completed");
    daemon_cleanup(&d);
}

static void test_connected_clients(void **state)
{
    (void)state;
    daemon_proc d = {0};
    const char *extra[] = {"--cohort", "3", "--min-cohort", "3", "--deadline-checkin",
                           "600000",   NULL};
    daemon_start(&d, "coordinator.log", extra);
    assert_true(metric(&d, "fedrec_connected_clients") == 0);
    assert_true(metric(&d, "fedrec_known_clients") == 0);
    /* A checks in, waits, gives up (its session times out) and closes */
    gclient g[3];
    for (int i = 0; i < 3; i++)
        g_init(&g[i]);
    g_start(&g[0], d.url, 1000);
    g_finish(&g[0]);
    assert_int_equal(g[0].res.outcome, FEDRECI_SESSION_ERROR);
    /* the close reaches the daemon asynchronously: wait for the gauge */
    for (int i = 0; i < 500 && metric(&d, "fedrec_connected_clients") != 0; i++)
        usleep(20000);
    assert_true(metric(&d, "fedrec_connected_clients") == 0);
    assert_true(metric(&d, "fedrec_known_clients") == 1);
    /* B and C wait in their check-ins: connected now */
    g_start(&g[1], d.url, 60000);
    g_start(&g[2], d.url, 60000);
    log_wait(&d, "checked in (2 waiting)", NULL);
    assert_true(metric(&d, "fedrec_connected_clients") == 2);
    assert_true(metric(&d, "fedrec_known_clients") == 3);
    char *st = http_get(&d, "/status");
    assert_non_null(strstr(st, "\"connected_clients\":2,\"known_clients\":3,"));
    free(st);
    daemon_stop(&d); /* answers the held check-ins: no further round */
    g_finish(&g[1]);
    g_finish(&g[2]);
    daemon_cleanup(&d);
}

/* Whether a program is on PATH. */
static int have_program(const char *name)
{
    char cmd[160];
    snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", name);
    return system(cmd) == 0;
}

/* Runs chromium headless on url with `mode` (--dump-dom, or --screenshot=P);
 * the DOM (dump) into out. A fresh profile in dir. */
static void chromium(const char *dir, const char *url, const char *mode, const char *out)
{
    char cmd[1400];
    snprintf(cmd, sizeof cmd,
             "timeout 60 chromium --headless --no-sandbox --disable-gpu --no-first-run "
             "--disable-extensions --disable-dev-shm-usage --user-data-dir='%s/chromium' "
             "--window-size=1100,1400 %s '%s' > '%s' 2>'%s/chromium.err'",
             dir, mode, url, out, dir);
    int rc = system(cmd);
    if (rc != 0) {
        char err[400];
        snprintf(err, sizeof err, "%s/chromium.err", dir);
        char *e = th_slurp(err);
        fail_msg("chromium %s failed (%d): %s", mode, rc, e ? e : "");
    }
}

static void test_status_page(void **state)
{
    (void)state;
    if (!have_program("chromium")) {
        printf("SKIP: chromium is not installed (scripts/setup.sh installs it)\n");
        skip();
    }
    daemon_proc d = {0};
    snprintf(d.dir, sizeof d.dir, "/tmp/fedrec-page-XXXXXX");
    assert_non_null(mkdtemp(d.dir));
    /* a database directory whose name is markup: the page must show it as text */
    char sub[280];
    snprintf(sub, sizeof sub, "%s/<i>shop<b> & \"co\"", d.dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    snprintf(d.db, sizeof d.db, "%s/state.sqlite", sub);
    const char *extra[] = {"--cohort",    "3", "--min-cohort",       "2",
                           "--neighbors", "2", "--deadline-checkin", "300",
                           NULL};
    daemon_start(&d, "coordinator.log", extra);
    gclient g[3];
    for (int r = 0; r < 2; r++) {
        for (int i = 0; i < 3; i++)
            g_init(&g[i]);
        run_round(&d, g, r == 0 ? 3 : 2);
    }
    char url[64], dom[400], png[400];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/", d.http_port);
    snprintf(dom, sizeof dom, "%s/page.html", d.dir);
    chromium(d.dir, url, "--dump-dom", dom);
    /* the screenshot stays under the build directory: a test artifact */
    snprintf(png, sizeof png, "%s/tests/status-page.png", FEDREC_BIN_DIR);
    unlink(png);
    char mode[440];
    snprintf(mode, sizeof mode, "--screenshot='%s'", png);
    char devnull[400];
    snprintf(devnull, sizeof devnull, "%s/shot.out", d.dir);
    chromium(d.dir, url, mode, devnull);
    struct stat sb;
    assert_int_equal(stat(png, &sb), 0);
    assert_true(sb.st_size > 1000);
    printf("status page screenshot: %s (%lld bytes)\n", png, (long long)sb.st_size);

    char *s = th_slurp(dom);
    assert_non_null(s);
    assert_non_null(strstr(s, "<p id=\"health\" class=\"health ok\">Healthy</p>"));
    assert_non_null(strstr(s, "<dt>Round</dt><dd>2, stage idle</dd>"));
    assert_non_null(strstr(s, "<dt>Model version</dt><dd>3</dd>"));
    assert_non_null(strstr(s, "<dd>0 connected, 5 known, 0 waiting for a round</dd>"));
    /* newest first: round 2 (2 clients, version 3), then round 1 (3, version 2) */
    const char *r2 = strstr(s, "<tr><td>2</td><td class=\"o\">completed</td>");
    const char *r1 = strstr(s, "<tr><td>1</td><td class=\"o\">completed</td>");
    assert_non_null(r2);
    assert_non_null(r1);
    assert_true(r2 < r1);
    assert_non_null(strstr(r2, "<td>2</td><td>2</td><td>0/0/0/0</td><td>3</td></tr>"));
    assert_non_null(strstr(r1, "<td>3</td><td>3</td><td>0/0/0/0</td><td>2</td></tr>"));
    /* the chart: one pair of bars per round, titled */
    assert_non_null(strstr(s, "<title>round 1: 3 invited, 3 survivors (completed)</title>"));
    assert_non_null(strstr(s, "<title>round 2: 2 invited, 2 survivors (completed)</title>"));
    assert_null(strstr(s, "<title>round 3:"));
    assert_non_null(strstr(
        s, "SecAgg+ with 2 neighbours per client, threshold ceil(2k/3) of the k neighbours"));
    assert_non_null(strstr(s, "no differential privacy"));
    assert_non_null(strstr(s, "<dt>Catalog version</dt><dd>1</dd>"));
    assert_non_null(strstr(s, "<dd>50 (50 active, 0 retired)</dd>"));
    /* the path is text in the DOM (serialized escaped again), never an element */
    assert_non_null(strstr(s, "&lt;i&gt;shop&lt;b&gt; &amp; \"co\"/state.sqlite"));
    assert_null(strstr(s, "<i>shop"));
    free(s);
    daemon_stop(&d);
    daemon_cleanup(&d);
}

static void test_sighup_reload(void **state)
{
    (void)state;
    daemon_proc d = {0};
    const char *extra[] = {"--cohort", "3", "--min-cohort", "3", "--deadline-checkin",
                           "600000",   NULL};
    daemon_start(&d, "coordinator.log", extra);
    gclient g[3];
    for (int i = 0; i < 3; i++)
        g_init(&g[i]);
    g_start(&g[0], d.url, 60000);
    g_start(&g[1], d.url, 60000);
    log_wait(&d, "checked in (2 waiting)", NULL);
    assert_true(metric(&d, "fedrec_connections_open") == 2);
    assert_true(metric(&d, "fedrec_connected_clients") == 2);
    assert_true(metric(&d, "fedrec_model_version") == 1);

    /* the catalog grows by 5 products and loses P003 */
    write_catalog(d.catalog, N_ITEMS + 5, "P003");
    kill(d.pid, SIGHUP);
    log_wait(&d,
             "committed model version 2 (55 items, 54 active, k = 4); catalog 2: +5 new, "
             "1 retired",
             NULL);
    assert_true(metric(&d, "fedrec_model_version") == 2);
    /* the two connections and their held check-ins are still there */
    assert_true(metric(&d, "fedrec_connections_open") == 2);
    assert_true(metric(&d, "fedrec_connected_clients") == 2);
    char *st = http_get(&d, "/status");
    assert_non_null(strstr(st, "\"model_version\":2,"));
    free(st);

    /* a third client: the round runs on the new model */
    g_start(&g[2], d.url, 60000);
    for (int i = 0; i < 3; i++) {
        g_finish(&g[i]);
        if (g[i].res.outcome != FEDRECI_SESSION_COMPLETED)
            fail_msg("client %d: outcome %d: %s (log %s)", i, g[i].res.outcome, g[i].res.text,
                     d.log);
        assert_int_equal(g[i].model_items, N_ITEMS + 5);
        assert_int_equal(g[i].d, (N_ITEMS + 5) * K_FACTORS + 1);
        assert_int_equal(g[i].res.latest_version, 3);
    }
    /* each of the first two checked in once: their requests were held
     * across the reload, not repeated over a new connection */
    for (int i = 0; i < 2; i++) {
        char id[40];
        snprintf(id, sizeof id, "client %016llx checked in", (unsigned long long)g[i].id);
        assert_int_equal(log_count(&d, id, NULL), 1);
    }
    daemon_stop(&d);
    char out[64];
    sql_text(d.db, "SELECT group_concat(version || origin || n_items, ',') FROM models", out,
             sizeof out);
    assert_string_equal(out, "1init50,2catalog55,3round55");
    daemon_cleanup(&d);
}

/* Runs a shell command line, its stdout and stderr into out (cap bytes);
 * returns the exit status. */
static int run_cmd(const char *cmd, char *out, size_t cap)
{
    char line[2048];
    snprintf(line, sizeof line, "%s 2>&1", cmd);
    FILE *p = popen(line, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* `fedrec-coordinator catalog --from-log` makes the catalog of the bundled
 * December 2010 log: read back as a catalog, it holds exactly the log's
 * products (after cleaning) with their descriptions, and the daemon starts
 * on it; a log that cannot be read is named. */
static void test_catalog_from_log(void **state)
{
    (void)state;
    daemon_proc d = {0};
    snprintf(d.dir, sizeof d.dir, "/tmp/fedrec-fromlog-XXXXXX");
    assert_non_null(mkdtemp(d.dir));
    const char *log = FEDREC_DATA_DIR "/online_retail_2010-12.csv.gz";
    snprintf(d.catalog, sizeof d.catalog, "%s/products.csv", d.dir);
    char cmd[1200], out[4096];
    snprintf(cmd, sizeof cmd,
             "'%s/coordinator/fedrec-coordinator' catalog --from-log '%s' --out '%s'",
             FEDREC_BIN_DIR, log, d.catalog);
    assert_int_equal(run_cmd(cmd, out, sizeof out), 0);
    fedreci_dataset *ds = NULL;
    fedreci_dataset_options o;
    fedreci_dataset_options_default(&o);
    assert_int_equal(fedreci_dataset_load(&ds, log, &o, NULL), FEDREC_OK);
    uint32_t n = fedreci_dataset_n_items(ds);
    char want[160];
    snprintf(want, sizeof want, "catalog: %u products (", n);
    assert_non_null(strstr(out, want));
    fedreci_catalog *cat = NULL;
    assert_int_equal(fedreci_catalog_read_csv(&cat, d.catalog), FEDREC_OK);
    assert_int_equal(fedreci_catalog_size(cat), n);
    for (uint32_t i = 0; i < n; i++) {
        const fedreci_catalog_item *it = fedreci_catalog_at(cat, i);
        assert_string_equal(it->code, fedreci_dataset_item_code(ds, i)); /* ascending codes */
        assert_string_equal(it->description, fedreci_dataset_item_description(ds, i));
    }
    fedreci_catalog_destroy(cat);
    fedreci_dataset_destroy(ds);
    const char *extra[] = {"--cohort", "3", "--min-cohort", "3", NULL};
    daemon_start(&d, "coordinator.log", extra);
    snprintf(want, sizeof want, "committed model version 1 (%u items, %u active", n, n);
    assert_int_equal(log_count(&d, want, NULL), 1);
    daemon_stop(&d);
    snprintf(
        cmd, sizeof cmd,
        "'%s/coordinator/fedrec-coordinator' catalog --from-log '%s/nope.csv' --out '%s/x.csv'",
        FEDREC_BIN_DIR, d.dir, d.dir);
    assert_int_equal(run_cmd(cmd, out, sizeof out), 1);
    assert_non_null(strstr(out, "nope.csv"));
    snprintf(cmd, sizeof cmd, "test -e '%s/x.csv'", d.dir);
    assert_true(system(cmd) != 0); /* nothing written */
    snprintf(cmd, sizeof cmd, "'%s/coordinator/fedrec-coordinator' catalog --out x",
             FEDREC_BIN_DIR);
    assert_int_equal(run_cmd(cmd, out, sizeof out), 2);
    daemon_cleanup(&d);
}

/* Milliseconds since midnight UTC of the first log line with a and b (its
 * "YYYY-MM-DDTHH:MM:SS.mmmZ" prefix). */
static long log_time_ms(const daemon_proc *d, const char *a, const char *b)
{
    char *s = th_slurp(d->log);
    assert_non_null(s);
    long at = line_at(s, a, b);
    assert_true(at >= 0);
    int hh = 0, mm = 0, ss = 0, ms = 0;
    assert_int_equal(sscanf(s + at + 11, "%2d:%2d:%2d.%3d", &hh, &mm, &ss, &ms), 4);
    free(s);
    return ((hh * 60L + mm) * 60L + ss) * 1000L + ms;
}

/* After abort-streak aborts in a row /healthz fails and the next round waits
 * out the backoff (however loaded the machine, never less); a completed
 * round makes the daemon healthy again. */
static void test_backoff(void **state)
{
    (void)state;
    daemon_proc d = {0};
    const char *extra[] = {"--cohort",
                           "2",
                           "--min-cohort",
                           "2",
                           "--abort-streak",
                           "2",
                           "--backoff",
                           "2000",
                           "--backoff-max",
                           "4000",
                           NULL};
    daemon_start(&d, "coordinator.log", extra);
    gclient g[2];
    for (int r = 0; r < 2; r++) { /* both members drop before advertising: aborted */
        g_dropout = 0;
        for (int i = 0; i < 2; i++) {
            g_init(&g[i]);
            g_start(&g[i], d.url, 60000);
        }
        for (int i = 0; i < 2; i++) {
            g_finish(&g[i]);
            assert_int_equal(g[i].res.outcome, FEDRECI_SESSION_DROPPED);
        }
        g_dropout = -1;
        char line[48];
        snprintf(line, sizeof line, "[round %d] round aborted: cohort 2", r + 1);
        log_wait(&d, line, NULL);
    }
    log_wait(&d, "[round 2] 2 rounds aborted in a row: the next round starts in 2000 ms", NULL);
    char *h = http_get(&d, "/healthz");
    assert_string_equal(h, "unhealthy: 2 rounds aborted in a row (abort-streak 2)\n");
    free(h);
    /* two good clients at once: held until the backoff ends */
    for (int i = 0; i < 2; i++)
        g_init(&g[i]);
    run_round(&d, g, 2);
    long gap = log_time_ms(&d, "[round 3] round started", NULL) -
               log_time_ms(&d, "[round 2] round aborted", NULL);
    if (gap < 0)
        gap += 86400000L; /* across midnight */
    printf("round 3 started %ld ms after round 2 aborted (backoff 2000 ms)\n", gap);
    assert_true(gap >= 2000);
    h = http_get(&d, "/healthz");
    assert_string_equal(h, "ok\n");
    free(h);
    assert_int_equal(log_count(&d, "healthy again", NULL), 1);
    assert_int_equal(log_count(&d, "unhealthy: 2 rounds aborted in a row", NULL), 1);
    daemon_stop(&d);
    daemon_cleanup(&d);
}

/* SIGHUP reloads the TLS certificate: a client that checked in over the old
 * one keeps its connection and its place in the round; new connections get
 * the new certificate (a client that only trusts the old one cannot get
 * through, one that trusts the new one can). */
static void test_sighup_tls(void **state)
{
    (void)state;
    daemon_proc d = {0};
    snprintf(d.dir, sizeof d.dir, "/tmp/fedrec-tlsre-XXXXXX");
    assert_non_null(mkdtemp(d.dir));
    th_make_cert(d.dir, "old");
    th_make_cert(d.dir, "new");
    char cert[300], key[300], old_ca[300], new_ca[300], cmd[1400];
    snprintf(cert, sizeof cert, "%s/cert.pem", d.dir);
    snprintf(key, sizeof key, "%s/key.pem", d.dir);
    snprintf(old_ca, sizeof old_ca, "%s/old.pem", d.dir);
    snprintf(new_ca, sizeof new_ca, "%s/new.pem", d.dir);
    snprintf(cmd, sizeof cmd, "cp '%s/old.pem' '%s' && cp '%s/old-key.pem' '%s'", d.dir, cert,
             d.dir, key);
    assert_int_equal(system(cmd), 0);
    d.scheme = "tls+tcp";
    const char *extra[] = {
        "--cohort", "3",          "--min-cohort", "3",         "--deadline-checkin",
        "600000",   "--tls-cert", cert,           "--tls-key", key,
        NULL};
    daemon_start(&d, "coordinator.log", extra);
    gclient g[4];
    for (int i = 0; i < 4; i++)
        g_init(&g[i]);
    g_start_ca(&g[0], d.url, old_ca, 60000); /* waits in its check-in */
    log_wait(&d, "checked in (1 waiting)", NULL);

    snprintf(cmd, sizeof cmd, "cp '%s/new.pem' '%s' && cp '%s/new-key.pem' '%s'", d.dir, cert,
             d.dir, key);
    assert_int_equal(system(cmd), 0);
    kill(d.pid, SIGHUP);
    log_wait(&d, "TLS certificate", "reloaded on 1 listener(s)");
    /* trusting only the old certificate: no way in any more */
    g_start_ca(&g[1], d.url, old_ca, 1500);
    g_finish(&g[1]);
    assert_int_equal(g[1].res.outcome, FEDRECI_SESSION_ERROR);
    /* trusting the new one: a round with the client connected before */
    g_start_ca(&g[2], d.url, new_ca, 60000);
    g_start_ca(&g[3], d.url, new_ca, 60000);
    for (int i = 0; i < 4; i++) {
        if (i == 1)
            continue;
        g_finish(&g[i]);
        if (g[i].res.outcome != FEDRECI_SESSION_COMPLETED)
            fail_msg("client %d: outcome %d: %s (log %s)", i, g[i].res.outcome, g[i].res.text,
                     d.log);
    }
    char id[40];
    snprintf(id, sizeof id, "client %016llx checked in", (unsigned long long)g[0].id);
    assert_int_equal(log_count(&d, id, NULL), 1); /* held across the reload, not resent */
    assert_int_equal(log_count(&d, "[round 1] round completed: cohort 3, survivors 3", NULL), 1);
    daemon_stop(&d);
    daemon_cleanup(&d);
}

/* The INI file's catalog (a.csv) is merged only when it changed since its
 * last merge: a catalog update made from another file (b.csv, given once as
 * a flag) survives restarts with the INI file; an edit of a.csv is merged. */
static void test_catalog_digest(void **state)
{
    (void)state;
    daemon_proc d = {0};
    snprintf(d.dir, sizeof d.dir, "/tmp/fedrec-digest-XXXXXX");
    assert_non_null(mkdtemp(d.dir));
    char a[300], b[300], ini[300];
    snprintf(a, sizeof a, "%s/a.csv", d.dir);
    snprintf(b, sizeof b, "%s/b.csv", d.dir);
    snprintf(ini, sizeof ini, "%s/coordinator.ini", d.dir);
    write_catalog(a, N_ITEMS, NULL);
    write_catalog(b, N_ITEMS + 5, NULL);
    FILE *f = fopen(ini, "w");
    assert_non_null(f);
    fprintf(f, "[storage]\ncatalog = %s\n", a);
    fclose(f);
    d.no_catalog_flag = 1;
    const char *with_ini[] = {"--config", ini, NULL};
    const char *with_b[] = {"--config", ini, "--catalog", b, NULL};
    daemon_start(&d, "1.log", with_ini);
    assert_int_equal(log_count(&d, "committed model version 1 (50 items, 50 active", NULL), 1);
    daemon_stop(&d);
    daemon_start(&d, "2.log", with_b); /* the flag overrides the file's key */
    assert_int_equal(log_count(&d, "committed model version 2 (55 items, 55 active", "+5 new"), 1);
    daemon_stop(&d);
    /* a.csv did not change since its merge: not merged again, b's 5 products stay */
    daemon_start(&d, "3.log", with_ini);
    assert_int_equal(log_count(&d, "unchanged since its last merge: not merged again", NULL), 1);
    assert_int_equal(log_count(&d, "serving model version 2 (55 items, 55 active", NULL), 1);
    assert_true(metric(&d, "fedrec_model_version") == 2);
    daemon_stop(&d);
    /* an edit of a.csv (one product more) is merged: it is the operator's update */
    f = fopen(a, "a");
    assert_non_null(f);
    fprintf(f, "P099,product 99\n");
    fclose(f);
    daemon_start(&d, "4.log", with_ini);
    assert_int_equal(
        log_count(&d, "committed model version 3 (56 items, 51 active", "+1 new, 5 retired"), 1);
    daemon_stop(&d);
    char out[64];
    sql_text(d.db, "SELECT count(*) || ' ' || max(catalog_id) FROM catalog_files", out, sizeof out);
    assert_string_equal(out, "2 3");
    daemon_cleanup(&d);
}

/* 1 while pid is a live fedrec-coordinator: /proc/pid/stat exists, names
 * it (comm is cut to 15 characters) and its state is neither zombie nor
 * dead. Not our child, so no waitpid: whoever adopted it reaps it. */
static int coordinator_alive(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *close_paren = strrchr(buf, ')');
    if (!strstr(buf, "(fedrec-coordin") || !close_paren || close_paren[1] != ' ')
        return 0; /* gone and the pid reused */
    char state = close_paren[2];
    return state != 'Z' && state != 'X' && state != 'x';
}

/* A test process that dies (a failed assertion ends the program, ctest's
 * timeout kills it) takes its daemons with it: a forked test process starts
 * the coordinator with th_spawn, waits for its ready line, reports its pid
 * and _exits without stopping it. The coordinator must then be gone, not
 * running on as an orphan of init (as aggregators of test_groups_service
 * did for hours before th_spawn set PR_SET_PDEATHSIG). */
static void test_daemon_dies_with_test(void **state)
{
    (void)state;
    daemon_proc d = {0};
    snprintf(d.dir, sizeof d.dir, "/tmp/fedrec-life-XXXXXX");
    assert_non_null(mkdtemp(d.dir));
    snprintf(d.log, sizeof d.log, "%s/orphan.log", d.dir);
    snprintf(d.db, sizeof d.db, "%s/state.sqlite", d.dir);
    snprintf(d.catalog, sizeof d.catalog, "%s/catalog.csv", d.dir);
    write_catalog(d.catalog, N_ITEMS, NULL);
    const char *argv[] = {FEDREC_BIN_DIR "/coordinator/fedrec-coordinator",
                          "--catalog",
                          d.catalog,
                          "--db",
                          d.db,
                          "--listen",
                          "tcp://127.0.0.1:0",
                          "--factors",
                          "4",
                          "--seed",
                          "7",
                          "--log-level",
                          "debug",
                          NULL};
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t tester = fork();
    assert_true(tester >= 0);
    if (tester == 0) {
        /* the test process that dies: no cmocka calls here (a failure would
         * go on running the remaining tests in this process) */
        close(fds[0]);
        pid_t pid = th_spawn(argv[0], argv, NULL, d.log, 0600);
        int ready = 0;
        for (int i = 0; pid > 0 && !ready && i < 3000; i++) { /* a 60 s hang guard */
            char *s = th_slurp(d.log);
            ready = s && strstr(s, " ready: clients on ");
            free(s);
            if (!ready)
                usleep(20000);
        }
        if (!ready && pid > 0) {
            kill(pid, SIGKILL);
            pid = -1;
        }
        ssize_t w = write(fds[1], &pid, sizeof pid);
        _exit(w == (ssize_t)sizeof pid ? 0 : 1);
    }
    close(fds[1]);
    pid_t pid = -1;
    ssize_t r = read(fds[0], &pid, sizeof pid);
    close(fds[0]);
    int st = 0;
    assert_int_equal(waitpid(tester, &st, 0), tester);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    assert_int_equal(r, (ssize_t)sizeof pid);
    if (pid <= 0) {
        char *s = th_slurp(d.log);
        fprintf(stderr, "---- %s\n%s\n", d.log, s ? s : "");
        free(s);
        fail_msg("the coordinator did not get ready");
    }
    /* SIGKILL is immediate; the bound is only a hang guard */
    int alive = 1;
    for (int i = 0; alive && i < 500; i++) {
        alive = coordinator_alive(pid);
        if (alive)
            usleep(20000);
    }
    if (alive) {
        kill(pid, SIGKILL); /* not left behind by this test either */
        fail_msg("coordinator %d outlived the test process that started it", (int)pid);
    }
    daemon_cleanup(&d);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_round_lines, teardown_daemon),
        cmocka_unit_test_teardown(test_crash_in_round_window, teardown_daemon),
        cmocka_unit_test_teardown(test_connected_clients, teardown_daemon),
        cmocka_unit_test_teardown(test_status_page, teardown_daemon),
        cmocka_unit_test_teardown(test_sighup_reload, teardown_daemon),
        cmocka_unit_test_teardown(test_catalog_digest, teardown_daemon),
        cmocka_unit_test_teardown(test_sighup_tls, teardown_daemon),
        cmocka_unit_test_teardown(test_catalog_from_log, teardown_daemon),
        cmocka_unit_test_teardown(test_backoff, teardown_daemon),
        cmocka_unit_test(test_daemon_dies_with_test),
    };
    return TH_RUN(tests);
}

/* SecAgg groups behind a master (issue 20), end to end over nng: a master
 * engine, three aggregators and 240 client sessions.
 *
 *  - test_master_equals_single: with in-process aggregators (real engines
 *    over inproc://), a round of 240 clients in 3 groups commits a sum
 *    equal, word for word, to the sum of every client's quantized input
 *    (the oracle), and a model bit-identical to the one a single
 *    coordinator commits for the same cohort at the same scale.
 *  - test_aggregator_killed: the aggregators are fedrec-coordinator
 *    processes (--role aggregator, over ipc://); one is killed with SIGKILL
 *    once its members are masking; the master drops its group whole and
 *    commits from the two others with exactly their members' sum.
 *  - test_rogue_aggregator: requests to the master's aggregator link signed
 *    with a key it does not list, replayed with a used sequence number, or
 *    reporting a group of another aggregator are refused and counted; the
 *    round's sum is the honest one.
 *  - test_fake_master: a fedrec-coordinator --role aggregator process dials
 *    a fake master (this test, on the master's URL) that answers with an
 *    Assign signed by another key, a genuine Assign replayed from an
 *    earlier request, an unsigned Assign and an Assign signed for another
 *    aggregator: each is refused, logged and counted, and the aggregator
 *    takes nothing from it (its next poll announces the same X25519 key and
 *    no model; /status shows no group run). A correctly signed Assign is
 *    taken (positive control); forged and replayed verdicts on its result
 *    are refused (the group is not counted), the genuine one is applied.
 *  - test_tls_everywhere: master, aggregator processes and 40 clients over
 *    tls+tcp:// with a self-signed certificate made by the openssl CLI: the
 *    round commits the exact sum of its two groups; an aggregator that
 *    dials the master by a name its certificate does not carry, and one
 *    that trusts another CA, never reach it.
 *  - test_master_deadline: the master's round deadline covers an
 *    aggregator's longest legal group (every phase held to its stage
 *    deadline: stage 0 twice, 1 three times, 2 once, 3 twice) plus 5 s: with
 *    stage deadlines 1/2/3/4 s that is 24 s; an explicit deadline of
 *    23,999 ms is refused, naming the 19,000 ms a group may take, and
 *    24,000 ms is taken. (It was the four stage deadlines plus stage 0's
 *    again plus 5 s, 16 s here: a group still finishing legally after 16 s
 *    was dropped.)
 *  - test_tls_reload_link: the certificate reload the daemon runs on SIGHUP
 *    (fedreci_coord_reload_tls) reaches the master's tls+tcp:// aggregator
 *    listener (the client listener here is ipc://): after the certificate
 *    and key files are replaced and the master reloads, an aggregator
 *    process that trusts only the new certificate gets in, and the one that
 *    connected under the old certificate stays (open connections keep
 *    their session).
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
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
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <pthread.h>
#include <sodium.h>

#include "client/session.h"
#include "coordinator/aggregator.h"
#include "coordinator/engine.h"
#include "coordinator/link.h"
#include "core/secagg/groups.h"
#include "core/log.h"
#include "harness_engine.h"

#define N_ITEMS 50
#define K 4
#define D (N_ITEMS * K + 1)
#define NC 240
#define NAGG 3
#define NR 4 /* rounds recorded */

typedef struct client {
    uint64_t id;
    uint8_t pk[32], sk[64];
    uint32_t q[NR][D];
    int has_q[NR];
    char agg_url[NR][FEDRECI_WIRE_MAX_URL_BYTES + 1]; /* where its round ran */
    fedreci_session_result res;
} client;

typedef struct rec_round {
    int done, completed;
    uint32_t survivors, groups, groups_done;
    int64_t sum64[D];
    int has_sum64;
    uint32_t sum[D];
    int has_sum;
    float y[N_ITEMS * K];
    int has_y;
    char reason[200];
} rec_round;

static client C[NC];
static rec_round R[NR];
static float Y0[N_ITEMS * K];
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static char victim_url[FEDRECI_WIRE_MAX_URL_BYTES +
                       1]; /* test_aggregator_killed: members of this group signal */
static int victim_masking;

/* The master's identity key (it signs every link reply); seed 0x5e... */
static uint8_t MPK[32], MSK[64];

static int setup(void **state)
{
    (void)state;
    if (sodium_init() < 0)
        return -1;
    uint8_t seed[32];
    memset(seed, 0x5e, sizeof seed);
    crypto_sign_seed_keypair(MPK, MSK, seed);
    fedreci_log_set_level(FEDRECI_LOG_ERROR);
    for (int i = 0; i < NC; i++) {
        crypto_sign_keypair(C[i].pk, C[i].sk);
        C[i].id = fedreci_secagg_id_from_pk(C[i].pk);
    }
    for (int i = 0; i < N_ITEMS * K; i++)
        Y0[i] = (float)((i * 37) % 19 - 9) * 0.01f;
    return 0;
}

static void reset(void)
{
    pthread_mutex_lock(&mu);
    memset(R, 0, sizeof R);
    for (int i = 0; i < NC; i++) {
        memset(C[i].has_q, 0, sizeof C[i].has_q);
        memset(C[i].agg_url, 0, sizeof C[i].agg_url);
    }
    victim_url[0] = 0;
    victim_masking = 0;
    pthread_mutex_unlock(&mu);
}

/* ---- hooks ------------------------------------------------------------------ */

static fedrec_err compute_update(void *arg, const fedreci_wire_round *rd, float *x, uint32_t *w)
{
    client *c = arg;
    uint64_t r = rd->secagg.round_id;
    for (uint32_t i = 0; i < rd->secagg.d - 1; i++)
        x[i] =
            (float)((int)((c->id * 31 + i * 7 + r * 13 + rd->model_version) % 201) - 100) / 40.0f;
    *w = 1;
    pthread_mutex_lock(&mu);
    if (r >= 1 && r <= NR)
        snprintf(c->agg_url[r - 1], sizeof c->agg_url[r - 1], "%s", rd->aggregator_url);
    if (victim_url[0] && strcmp(rd->aggregator_url, victim_url) == 0) {
        victim_masking = 1;
        pthread_cond_broadcast(&cv);
    }
    pthread_mutex_unlock(&mu);
    return FEDREC_OK;
}

static void on_quantized(void *arg, uint64_t round_id, const uint32_t *q, uint32_t d)
{
    client *c = arg;
    if (round_id < 1 || round_id > NR || d != D)
        return;
    pthread_mutex_lock(&mu);
    memcpy(c->q[round_id - 1], q, sizeof c->q[0]);
    c->has_q[round_id - 1] = 1;
    pthread_mutex_unlock(&mu);
}

static void on_round_done(void *arg, const fedreci_round_stats *st)
{
    (void)arg;
    if (st->round_id < 1 || st->round_id > NR)
        return;
    pthread_mutex_lock(&mu);
    rec_round *r = &R[st->round_id - 1];
    r->done = 1;
    r->completed = st->completed;
    r->survivors = st->survivors;
    r->groups = st->groups;
    r->groups_done = st->groups_done;
    if (st->sum64) {
        memcpy(r->sum64, st->sum64, sizeof r->sum64);
        r->has_sum64 = 1;
    }
    if (st->sum) {
        memcpy(r->sum, st->sum, sizeof r->sum);
        r->has_sum = 1;
    }
    snprintf(r->reason, sizeof r->reason, "%s", st->abort_reason ? st->abort_reason : "");
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static fedrec_err on_commit(void *arg, uint64_t round_id, uint64_t version, const float *y,
                            uint32_t n_items, uint32_t k)
{
    (void)arg;
    (void)version;
    if (round_id >= 1 && round_id <= NR && n_items == N_ITEMS && k == K) {
        pthread_mutex_lock(&mu);
        memcpy(R[round_id - 1].y, y, sizeof R[0].y);
        R[round_id - 1].has_y = 1;
        pthread_mutex_unlock(&mu);
    }
    return FEDREC_OK;
}

/* ---- pieces ----------------------------------------------------------------- */

static const double CLIP = 16.0;

/* One instance over all NC must fit too: the scale of a cohort of NC. */
static double scale(void)
{
    return floor(1073741824.0 / ((double)NC * CLIP));
}

static void engine_cfg(fedreci_coord_config *cfg, const char **urls, const char *url)
{
    fedreci_coord_config_default(cfg);
    urls[0] = url;
    cfg->listen_urls = urls;
    cfg->n_listen = 1;
    cfg->n_contexts = NC + NC / 8 + 64;
    cfg->cohort_size = NC;
    cfg->checkin_quorum = NC;
    cfg->min_cohort = 20;
    cfg->neighbors = 8;
    cfg->clip = CLIP;
    cfg->scale = scale();
    for (int s = 0; s < 4; s++)
        cfg->stage_ms[s] = 20000;
    cfg->checkin_window_ms = 60000;
    cfg->retry_after_ms = 50;
    cfg->seed = 7;
    cfg->first_round_id = 1;
    cfg->opt.n_train = NC;
}

static fedreci_coord *start_engine(const fedreci_coord_config *cfg)
{
    fedreci_coord_hooks h = {.on_round_done = on_round_done, .on_model_committed = on_commit};
    fedreci_coord_model m = {.version = 1, .n_items = N_ITEMS, .k = K, .item_factors = Y0};
    fedreci_coord *c = NULL;
    if (fedreci_coord_create(&c, cfg, &h, &m) || fedreci_coord_start(c))
        fail_msg("engine: %s", fedrec_errmsg());
    return c;
}

/* One round: every client checks in at url; waits for all sessions.
 * Client i's requests time out after timeout_ms, or short_ms when
 * short_for[i] (short_for may be NULL). */
static int run_n = NC;          /* clients 0 .. run_n - 1 take part */
static const char *run_ca;      /* tls+tcp://: the CA file clients trust */
static const char *run_srvname; /* and the name the master's certificate carries */

static void run_clients(const char *url, uint32_t timeout_ms, const int *short_for,
                        uint32_t short_ms)
{
    static fedreci_session *s[NC];
    for (int i = 0; i < run_n; i++) {
        fedreci_session_config sc;
        fedreci_session_config_default(&sc);
        sc.url = url;
        sc.tls_ca_file = run_ca;
        sc.tls_server_name = run_srvname;
        sc.client_id = C[i].id;
        sc.identity_sk = C[i].sk;
        sc.timeout_ms = short_for && short_for[i] ? short_ms : timeout_ms;
        uint8_t seed[32] = {(uint8_t)i, (uint8_t)(i >> 8), 0x5a};
        sc.rounding_seed = seed; /* the same rounding in every arrangement */
        fedreci_session_hooks h = {
            .arg = &C[i], .compute_update = compute_update, .on_quantized = on_quantized};
        if (fedreci_session_create(&s[i], &sc, &h) || fedreci_session_start(s[i]))
            fail_msg("session %d: %s", i, fedrec_errmsg());
    }
    /* No bound here: a session ends by itself. Each request ends within
       its timeout (nng's, backed by the session's own clock), a selected
       session within its round's budget, and check-in polls after
       max_retries (client/session.h). (A bound of twice the request
       timeout plus 30 s used to stand here, which does not bound a session:
       it is a sequence of requests, check-in polls until all 240 sessions
       are in, then every stage.) */
    for (int i = 0; i < run_n; i++) {
        assert_int_equal(fedreci_session_wait(s[i], -1, &C[i].res), FEDREC_OK);
        fedreci_session_destroy(s[i]);
    }
}

static void wait_round(int r)
{
    char what[32];
    snprintf(what, sizeof what, "round %d's end", r + 1);
    th_wait_flag(&mu, &cv, &R[r].done, 60, what);
}

static int q_round; /* q_of's round index (the test's thread only) */

static const uint32_t *q_of(int i, void *ctx)
{
    (void)ctx;
    return C[i].has_q[q_round] ? C[i].q[q_round] : NULL;
}

/* The oracle: the recorded sum equals the sum of the quantized inputs of
 * the clients `in` selects (int64 per coordinate; weight = their count). */
static void check_sum64(int r, const int *in)
{
    assert_true(R[r].has_sum64);
    q_round = r;
    th_check_sum64(r + 1, R[r].sum64, D, NC, in, q_of, NULL);
}

/* The group of every client in round round_id as docs/protocol.md
 * describes it (the master's seed 7 and minimum cohort 20); the master
 * gives group g to the g-th ready aggregator in key order. */
static void predict_groups(uint64_t round_id, uint32_t n_groups, int *group)
{
    uint64_t ids[NC];
    for (int i = 0; i < NC; i++)
        ids[i] = C[i].id;
    th_predict_groups(ids, NC, n_groups, 20, 7, round_id, group);
}

static void agg_key(int i, uint8_t pk[32], uint8_t sk[64])
{
    th_agg_key(0xa0, i, pk, sk);
}

/* ---- in-process aggregators: master = single coordinator ------------------- */

static void test_master_equals_single(void **state)
{
    (void)state;
    reset();
    uint8_t pks[NAGG][32], sks[NAGG][64];
    for (int i = 0; i < NAGG; i++)
        agg_key(i, pks[i], sks[i]);
    const char *urls[1];
    fedreci_coord_config cfg;
    engine_cfg(&cfg, urls, "inproc://groups-master");
    cfg.role = FEDRECI_ROLE_MASTER;
    cfg.agg_listen_url = "inproc://groups-link";
    cfg.agg_keys = (const uint8_t(*)[32])pks;
    cfg.n_agg_keys = NAGG;
    cfg.agg_master_sk = MSK;
    cfg.group_size = NC / NAGG;
    cfg.min_groups = 2;
    cfg.max_rounds = 1;
    fedreci_coord *master = start_engine(&cfg);
    fedreci_aggregator *agg[NAGG];
    char aurl[NAGG][64];
    for (int i = 0; i < NAGG; i++) {
        snprintf(aurl[i], sizeof aurl[i], "inproc://groups-agg-%d", i);
        const char *lu[1] = {aurl[i]};
        fedreci_aggregator_config ac;
        fedreci_aggregator_config_default(&ac);
        ac.master_url = "inproc://groups-link";
        ac.listen_urls = lu;
        ac.n_listen = 1;
        ac.identity_sk = sks[i];
        ac.master_pk = MPK;
        ac.max_group = 100;
        assert_int_equal(fedreci_aggregator_create(&agg[i], &ac), FEDREC_OK);
        assert_int_equal(fedreci_aggregator_start(agg[i]), FEDREC_OK);
    }
    run_clients("inproc://groups-master", 120000, NULL, 0);
    wait_round(0);
    int all[NC], group[NC];
    int per_agg[NAGG] = {0};
    predict_groups(1, NAGG, group);
    for (int i = 0; i < NC; i++) {
        if (C[i].res.outcome != FEDRECI_SESSION_COMPLETED)
            fail_msg("client %d: outcome %d: %s", i, C[i].res.outcome, C[i].res.text);
        all[i] = 1;
        for (int a = 0; a < NAGG; a++)
            per_agg[a] += strcmp(C[i].agg_url[0], aurl[a]) == 0;
        assert_string_equal(C[i].agg_url[0], aurl[group[i]]); /* the documented grouping */
    }
    /* three groups of 80, one per aggregator, all counted */
    for (int a = 0; a < NAGG; a++)
        assert_int_equal(per_agg[a], NC / NAGG);
    assert_true(R[0].completed);
    assert_int_equal(R[0].groups, 3);
    assert_int_equal(R[0].groups_done, 3);
    assert_int_equal(R[0].survivors, NC);
    check_sum64(0, all);
    /* status and metrics per aggregator */
    fedreci_coord_status cs;
    fedreci_coord_get_status(master, &cs);
    assert_int_equal(cs.groups, 3);
    assert_int_equal(cs.groups_done, 3);
    assert_int_equal(cs.groups_failed, 0);
    fedreci_coord_agg_status as[NAGG + 1];
    assert_int_equal(fedreci_coord_aggregators(master, as, NAGG + 1), NAGG);
    for (int a = 0; a < NAGG; a++) {
        assert_int_equal(as[a].groups_run, 1);
        assert_int_equal(as[a].groups_counted, 1);
        assert_int_equal(as[a].last_members, NC / NAGG);
        assert_int_equal(as[a].last_survivors, NC / NAGG);
    }
    for (int a = 0; a < NAGG; a++) {
        fedreci_aggregator_status st;
        fedreci_aggregator_get_status(agg[a], &st);
        assert_int_equal(st.groups_run, 1);
        assert_int_equal(st.groups_counted, 1);
        fedreci_aggregator_destroy(agg[a]);
    }
    fedreci_coord_destroy(master);
    rec_round grouped = R[0];
    assert_true(grouped.has_y);

    /* one coordinator, the same cohort, inputs and scale */
    reset();
    engine_cfg(&cfg, urls, "inproc://groups-single");
    cfg.max_rounds = 1;
    fedreci_coord *single = start_engine(&cfg);
    run_clients("inproc://groups-single", 120000, NULL, 0);
    wait_round(0);
    assert_true(R[0].completed && R[0].has_sum && R[0].has_y);
    for (int w = 0; w < D; w++)
        assert_true((int64_t)(int32_t)R[0].sum[w] == grouped.sum64[w] || w == D - 1);
    assert_true((int64_t)R[0].sum[D - 1] == grouped.sum64[D - 1]);
    assert_memory_equal(R[0].y, grouped.y, sizeof grouped.y); /* bit for bit */
    assert_memory_not_equal(grouped.y, Y0, sizeof Y0);
    fedreci_coord_destroy(single);
}

/* ---- aggregator processes; one killed mid-round ------------------------------ */

/* Starts aggregator process i (key agg_key(i), listening on ipc://dir/aggI,
 * log in dir/aggI.log) for the master at master_url, with the extra
 * arguments (NULL-terminated; NULL: none). */
static pid_t spawn_aggregator_args(const char *dir, int i, const char *master_url,
                                   const char *const *extra)
{
    char keyf[256], listen[256], log[256];
    snprintf(keyf, sizeof keyf, "%s/agg%d.key", dir, i);
    snprintf(listen, sizeof listen, "ipc://%s/agg%d", dir, i);
    snprintf(log, sizeof log, "%s/agg%d.log", dir, i);
    /* the key file the process reads: the seed agg_key uses */
    uint8_t seed[32];
    char hex[65];
    memset(seed, 0xa0 + i, sizeof seed);
    sodium_bin2hex(hex, sizeof hex, seed, sizeof seed);
    int fd = open(keyf, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, hex, 64), 64);
    close(fd);
    char mhex[65];
    sodium_bin2hex(mhex, sizeof mhex, MPK, sizeof MPK);
    const char *argv[32] = {"fedrec-coordinator",
                            "--role",
                            "aggregator",
                            "--master",
                            master_url,
                            "--master-key",
                            mhex,
                            "--listen",
                            listen,
                            "--identity-key",
                            keyf,
                            "--max-group",
                            "100",
                            "--log-level",
                            "info"};
    size_t n = 15;
    for (size_t e = 0; extra && extra[e] && n < 31; e++)
        argv[n++] = extra[e];
    argv[n] = NULL;
    pid_t pid = th_spawn(FEDREC_BIN_DIR "/coordinator/fedrec-coordinator", argv, NULL, log, 0644);
    assert_true(pid > 0);
    return pid;
}

static pid_t spawn_aggregator(const char *dir, int i, const char *master_url)
{
    return spawn_aggregator_args(dir, i, master_url, NULL);
}

/* SIGTERM to the n aggregator processes: each exits with status 0. */
static void stop_aggregators(const pid_t *pid, int n)
{
    for (int i = 0; i < n; i++) {
        int st;
        kill(pid[i], SIGTERM);
        assert_int_equal(waitpid(pid[i], &st, 0), pid[i]);
        assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
}

static void wait_ready(fedreci_coord *master, uint32_t n)
{
    th_wait_aggregators(master, n);
}

/* Kills process *arg (SIGKILL) once a member of the victim group is about
 * to mask its input. */
static void *kill_when_masking(void *arg)
{
    pid_t pid = *(pid_t *)arg;
    pthread_mutex_lock(&mu);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 60;
    while (!victim_masking && !R[1].done)
        if (pthread_cond_timedwait(&cv, &mu, &ts) == ETIMEDOUT)
            break;
    pthread_mutex_unlock(&mu);
    kill(pid, SIGKILL);
    return NULL;
}

static void test_aggregator_killed(void **state)
{
    (void)state;
    reset();
    char dir[] = "/tmp/fedrec-groups-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char murl[128], lurl[128];
    snprintf(murl, sizeof murl, "ipc://%s/master", dir);
    snprintf(lurl, sizeof lurl, "ipc://%s/link", dir);
    uint8_t pks[NAGG][32], sks[NAGG][64];
    for (int i = 0; i < NAGG; i++)
        agg_key(i, pks[i], sks[i]);
    const char *urls[1];
    fedreci_coord_config cfg;
    engine_cfg(&cfg, urls, murl);
    cfg.role = FEDRECI_ROLE_MASTER;
    cfg.agg_listen_url = lurl;
    cfg.agg_keys = (const uint8_t(*)[32])pks;
    cfg.n_agg_keys = NAGG;
    cfg.agg_master_sk = MSK;
    cfg.group_size = NC / NAGG;
    cfg.min_groups = 2;
    cfg.max_rounds = 2;
    fedreci_coord *master = start_engine(&cfg);
    pid_t pid[NAGG];
    for (int i = 0; i < NAGG; i++)
        pid[i] = spawn_aggregator(dir, i, lurl);
    wait_ready(master, NAGG);
    /* round 1: every group counts */
    run_clients(murl, 120000, NULL, 0);
    wait_round(0);
    assert_true(R[0].completed);
    assert_int_equal(R[0].groups_done, 3);
    int in[NC];
    for (int i = 0; i < NC; i++)
        in[i] = C[i].res.outcome == FEDRECI_SESSION_COMPLETED;
    check_sum64(0, in);
    /* round 2: aggregator 1 is killed once its members mask their inputs;
       they are the members of group 1 (the documented grouping); their
       requests time out after 5 s, everyone else's after 120 s */
    wait_ready(master, NAGG);
    int group[NC], victim[NC];
    predict_groups(2, NAGG, group);
    for (int i = 0; i < NC; i++)
        victim[i] = group[i] == 1;
    pthread_mutex_lock(&mu);
    snprintf(victim_url, sizeof victim_url, "ipc://%s/agg1", dir);
    pthread_mutex_unlock(&mu);
    /* a helper thread kills while this one runs the sessions */
    static pid_t victim_pid;
    victim_pid = pid[1];
    pthread_t kt;
    assert_int_equal(pthread_create(&kt, NULL, kill_when_masking, &victim_pid), 0);
    run_clients(murl, 120000, victim, 5000);
    pthread_join(kt, NULL);
    wait_round(1);
    int st;
    assert_int_equal(waitpid(pid[1], &st, 0), pid[1]);
    assert_true(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
    /* the killed group is dropped whole; the round commits from the two
       others with exactly their members' sum */
    if (!R[1].completed)
        fail_msg("round 2 aborted: %s", R[1].reason);
    assert_int_equal(R[1].groups, 3);
    assert_int_equal(R[1].groups_done, 2);
    int n_in = 0, n_victim = 0;
    for (int i = 0; i < NC; i++) {
        int at_victim = victim[i];
        if (C[i].agg_url[1][0]) /* reached masking: at the predicted aggregator */
            assert_int_equal(strcmp(C[i].agg_url[1], victim_url) == 0, victim[i]);
        n_victim += at_victim;
        in[i] = !at_victim;
        if (!at_victim && C[i].res.outcome != FEDRECI_SESSION_COMPLETED)
            fail_msg("client %d (%s): outcome %d: %s", i, C[i].agg_url[1], C[i].res.outcome,
                     C[i].res.text);
        if (at_victim)
            assert_true(C[i].res.outcome != FEDRECI_SESSION_COMPLETED);
        n_in += in[i];
    }
    assert_int_equal(n_victim, NC / NAGG);
    assert_int_equal(R[1].survivors, n_in);
    check_sum64(1, in);
    fedreci_coord_agg_status as[NAGG];
    assert_int_equal(fedreci_coord_aggregators(master, as, NAGG), NAGG);
    uint64_t failed = 0;
    for (int a = 0; a < NAGG; a++)
        failed += as[a].groups_failed;
    assert_int_equal(failed, 1);
    fedreci_coord_destroy(master);
    for (int i = 0; i < NAGG; i++)
        if (i != 1) {
            kill(pid[i], SIGTERM);
            waitpid(pid[i], &st, 0);
        }
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

/* ---- a rogue process on the aggregator link -------------------------------- */

/* Sends m (a request naming key pk with sequence number seq; zeros when
 * the master cannot decode it) on the REQ socket s and returns the code of
 * the AggError reply (FEDREC_OK for any other reply). */
static fedrec_err link_exchange(nng_socket s, nng_msg *m, const uint8_t *pk, uint64_t seq)
{
    assert_int_equal(nng_sendmsg(s, m, 0), 0);
    nng_msg *r = NULL;
    assert_int_equal(nng_recvmsg(s, &r, 0), 0);
    fedreci_link_reply rep;
    assert_int_equal(
        fedreci_link_dec_reply(nng_msg_body(r), nng_msg_len(r), 1u << 30, MPK, pk, seq, &rep),
        FEDREC_OK);
    nng_msg_free(r);
    fedrec_err code = FEDREC_OK;
    if (rep.msg->body_case == FEDREC__GROUPS__V1__AGG_REPLY__BODY_ERROR)
        code = (fedrec_err)rep.msg->error->code;
    fedreci_link_reply_free(&rep);
    return code;
}

/* A forged result for group g of round 1: zeros, weight = survivors. */
static void forged_result(fedreci_link_result *r, uint32_t *sum, uint32_t g, uint32_t n)
{
    memset(r, 0, sizeof *r);
    memset(sum, 0, D * sizeof *sum);
    sum[D - 1] = n;
    r->round_id = 1;
    r->group = g;
    r->completed = 1;
    r->reason = "";
    r->survivors = n;
    r->advertised = r->shared = r->unmasked = n;
    r->sum = sum;
    r->d = D;
}

typedef struct rogue_ctx {
    fedreci_coord *master;
    const uint8_t *listed_pk; /* a listed key the rogue names but does not hold */
    const uint8_t *spare_sk;  /* a listed key no aggregator uses (for the replay) */
    fedrec_err codes[4];
} rogue_ctx;

static void *rogue_main(void *arg)
{
    rogue_ctx *x = arg;
    for (int t = 0; t < 2000; t++) { /* until the round's groups are assigned */
        fedreci_coord_status cs;
        fedreci_coord_get_status(x->master, &cs);
        if (cs.groups == 2 && cs.stage >= 0)
            break;
        usleep(2000);
    }
    nng_socket s;
    if (nng_req0_open(&s) != 0 || nng_dial(s, "inproc://groups-rogue-link", NULL, 0) != 0)
        return NULL;
    nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 10000);
    static uint32_t sum[D];
    fedreci_link_result r;
    forged_result(&r, sum, 0, NC / 2);
    /* 1. signed with a key the master does not list */
    uint8_t rpk[32], rsk[64];
    crypto_sign_keypair(rpk, rsk);
    nng_msg *m = NULL;
    if (fedreci_link_enc_result(&m, rsk, 1, &r) == FEDREC_OK)
        x->codes[0] = link_exchange(s, m, rpk, 1);
    /* 2. naming a listed key, signed with another */
    Fedrec__Groups__V1__GroupResult g = FEDREC__GROUPS__V1__GROUP_RESULT__INIT;
    uint32_t four[4] = {0, 0, 0, 0};
    uint8_t le[4 * D];
    memset(le, 0, sizeof le);
    le[4 * (D - 1)] = (uint8_t)(NC / 2);
    g.round_id = 1;
    g.completed = 1;
    g.reason = (char *)"";
    g.survivors = NC / 2;
    g.n_dropped = 4;
    g.dropped = four;
    g.n_stage_ms = 4;
    g.stage_ms = four;
    g.sum.data = le;
    g.sum.len = sizeof le;
    Fedrec__Groups__V1__AggRequest q = FEDREC__GROUPS__V1__AGG_REQUEST__INIT;
    q.protocol_version = FEDRECI_LINK_VERSION;
    q.agg_pk.data = (uint8_t *)(uintptr_t)x->listed_pk;
    q.agg_pk.len = 32;
    q.seq = UINT64_MAX / 2;
    q.body_case = FEDREC__GROUPS__V1__AGG_REQUEST__BODY_RESULT;
    q.result = &g;
    size_t ql = protobuf_c_message_get_packed_size(&q.base);
    uint8_t *qb = malloc(ql + 13);
    memcpy(qb, "fedrec.v1.agg", 13);
    protobuf_c_message_pack(&q.base, qb + 13);
    uint8_t sig[64];
    crypto_sign_detached(sig, NULL, qb, ql + 13, rsk);
    Fedrec__Groups__V1__AggSigned sg = FEDREC__GROUPS__V1__AGG_SIGNED__INIT;
    sg.req.data = qb + 13;
    sg.req.len = ql;
    sg.sig.data = sig;
    sg.sig.len = 64;
    size_t sl = protobuf_c_message_get_packed_size(&sg.base);
    if (nng_msg_alloc(&m, sl) == 0) {
        protobuf_c_message_pack(&sg.base, nng_msg_body(m));
        static const uint8_t zero[32];
        x->codes[1] = link_exchange(s, m, zero, 0); /* not decoded: signed for zeros */
    }
    free(qb);
    /* 3. a listed key reporting a group that is not its own */
    uint8_t spare_pk[32];
    crypto_sign_ed25519_sk_to_pk(spare_pk, x->spare_sk);
    if (fedreci_link_enc_result(&m, x->spare_sk, 100, &r) == FEDREC_OK)
        x->codes[2] = link_exchange(s, m, spare_pk, 100);
    /* 4. a captured request sent again: a poll (answered once, Idle), then
       the same bytes */
    uint8_t cpk[32] = {9};
    nng_msg *p1 = NULL, *p2 = NULL;
    if (fedreci_link_enc_poll(&p1, x->spare_sk, 200, "inproc://nowhere", cpk, 1, 10) == FEDREC_OK &&
        nng_msg_dup(&p2, p1) == 0) {
        (void)link_exchange(s, p1, spare_pk, 200);
        x->codes[3] = link_exchange(s, p2, spare_pk, 200);
    }
    nng_close(s);
    return NULL;
}

static void test_rogue_aggregator(void **state)
{
    (void)state;
    reset();
    uint8_t pks[3][32], sks[3][64];
    for (int i = 0; i < 3; i++)
        agg_key(i, pks[i], sks[i]);
    const char *urls[1];
    fedreci_coord_config cfg;
    engine_cfg(&cfg, urls, "inproc://groups-rogue-master");
    cfg.role = FEDRECI_ROLE_MASTER;
    cfg.agg_listen_url = "inproc://groups-rogue-link";
    cfg.agg_keys = (const uint8_t(*)[32])pks;
    cfg.n_agg_keys = 3; /* key 2 is listed but runs no aggregator */
    cfg.agg_master_sk = MSK;
    cfg.group_size = NC / 2;
    cfg.min_groups = 2;
    cfg.max_rounds = 1;
    fedreci_coord *master = start_engine(&cfg);
    fedreci_aggregator *agg[2];
    char aurl[2][64];
    for (int i = 0; i < 2; i++) {
        snprintf(aurl[i], sizeof aurl[i], "inproc://groups-rogue-agg-%d", i);
        const char *lu[1] = {aurl[i]};
        fedreci_aggregator_config ac;
        fedreci_aggregator_config_default(&ac);
        ac.master_url = "inproc://groups-rogue-link";
        ac.listen_urls = lu;
        ac.n_listen = 1;
        ac.identity_sk = sks[i];
        ac.master_pk = MPK;
        ac.max_group = 200;
        assert_int_equal(fedreci_aggregator_create(&agg[i], &ac), FEDREC_OK);
        assert_int_equal(fedreci_aggregator_start(agg[i]), FEDREC_OK);
    }
    wait_ready(master, 2);
    rogue_ctx x = {master, pks[0], sks[2], {-1, -1, -1, -1}};
    pthread_t rt;
    assert_int_equal(pthread_create(&rt, NULL, rogue_main, &x), 0);
    run_clients("inproc://groups-rogue-master", 120000, NULL, 0);
    pthread_join(rt, NULL);
    wait_round(0);
    assert_int_equal(x.codes[0], FEDREC_ERR_SIGNATURE); /* key not listed */
    assert_int_equal(x.codes[1], FEDREC_ERR_SIGNATURE); /* signature does not verify */
    assert_int_equal(x.codes[2], FEDREC_ERR_PROTOCOL);  /* not its group */
    assert_int_equal(x.codes[3], FEDREC_ERR_SIGNATURE); /* replayed sequence number */
    fedreci_coord_status cs;
    fedreci_coord_get_status(master, &cs);
    assert_int_equal(cs.agg_refused, 4);
    /* the round counted the two honest groups, with the honest sum */
    assert_true(R[0].completed);
    assert_int_equal(R[0].groups_done, 2);
    int all[NC];
    for (int i = 0; i < NC; i++) {
        assert_int_equal(C[i].res.outcome, FEDRECI_SESSION_COMPLETED);
        all[i] = 1;
    }
    check_sum64(0, all);
    for (int i = 0; i < 2; i++)
        fedreci_aggregator_destroy(agg[i]);
    fedreci_coord_destroy(master);
}

/* ---- a fake master against an aggregator process ------------------------------ */

/* The text of file path (heap string, "" when it cannot be read). */
static char *slurp(const char *path)
{
    char *t = th_slurp(path);
    return t ? t : strdup("");
}

/* Lines of file path containing needle. */
static int count_lines(const char *path, const char *needle)
{
    char *t = slurp(path);
    int n = 0;
    for (const char *p = t; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    free(t);
    return n;
}

/* GET path from 127.0.0.1:port: the body (heap string). */
static char *http_get(int port, const char *path)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    char req[256];
    int n =
        snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", path);
    assert_int_equal(write(fd, req, (size_t)n), n);
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    assert_non_null(buf);
    ssize_t got;
    while (len + 1 < cap && (got = read(fd, buf + len, cap - len - 1)) > 0)
        len += (size_t)got;
    close(fd);
    buf[len] = 0;
    char *body = strstr(buf, "\r\n\r\n");
    assert_non_null(body);
    memmove(buf, body + 4, strlen(body + 4) + 1);
    return buf;
}

/* The number after "key": in the aggregator's /status groups object. */
static long long status_num(int port, const char *key)
{
    char *b = http_get(port, "/status");
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *g = strstr(b, "\"groups\"");
    const char *p = g ? strstr(g, pat) : NULL;
    if (!p)
        fail_msg("/status has no groups.%s: %s", key, b);
    long long v = strtoll(p + strlen(pat), NULL, 10);
    free(b);
    return v;
}

/* Waits (up to 10 s) until groups.key on /status is want. */
static void wait_status(int port, const char *key, long long want)
{
    long long v = -1;
    for (int t = 0; t < 200 && (v = status_num(port, key)) != want; t++)
        usleep(50000);
    if (v != want)
        fail_msg("aggregator /status groups.%s = %lld, %lld expected", key, v, want);
}

/* The next request on the fake master's REP socket, decoded and verified
 * (signed by the aggregator's key apk). */
static void fake_recv(nng_socket s, const uint8_t apk[32], fedreci_link_req *q)
{
    nng_msg *m = NULL;
    int rv = nng_recvmsg(s, &m, 0);
    if (rv != 0)
        fail_msg("fake master: no request from the aggregator: %s", nng_strerror(rv));
    assert_int_equal(fedreci_link_dec_request(nng_msg_body(m), nng_msg_len(m), 1u << 20, 7, q),
                     FEDREC_OK);
    nng_msg_free(m);
    assert_memory_equal(q->agg_pk, apk, 32);
}

/* Sends reply m (an encoded AggReply), sealed with sk for (pk, seq) unless
 * sk is NULL (sent unsigned). */
static void fake_send(nng_socket s, nng_msg *m, const uint8_t *sk, const uint8_t *pk, uint64_t seq)
{
    if (sk)
        assert_int_equal(fedreci_link_seal_reply(&m, sk, pk, seq), FEDREC_OK);
    assert_int_equal(nng_sendmsg(s, m, 0), 0);
}

static void test_fake_master(void **state)
{
    (void)state;
    char dir[] = "/tmp/fedrec-fakemaster-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char lurl[128], logf[256];
    snprintf(lurl, sizeof lurl, "ipc://%s/link", dir);
    snprintf(logf, sizeof logf, "%s/agg0.log", dir);
    nng_socket s;
    assert_int_equal(nng_rep0_open(&s), 0);
    assert_int_equal(nng_listen(s, lurl, NULL, 0), 0);
    nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 20000);
    uint8_t apk[32], ask[64], rpk[32], rsk[64], opk[32], osk[64];
    agg_key(0, apk, ask);
    crypto_sign_keypair(rpk, rsk); /* the fake master's own key */
    agg_key(1, opk, osk);          /* another aggregator */
    const char *extra[] = {"--http", "http://127.0.0.1:0", NULL};
    pid_t pid = spawn_aggregator_args(dir, 0, lurl, extra);
    int port = 0;
    for (int t = 0; t < 400 && port == 0; t++) {
        char *log = slurp(logf);
        const char *p = strstr(log, "status on http://127.0.0.1:0 (port ");
        if (p)
            port = atoi(p + strlen("status on http://127.0.0.1:0 (port "));
        free(log);
        if (!port)
            usleep(50000);
    }
    assert_true(port > 0);
    /* a genuine-looking Assign: round 1, group 0 of 1, 3 members, the model
       (2 items x 3 factors), 300 ms stages */
    uint64_t ids[3] = {101, 202, 303};
    uint8_t pks[3 * 32];
    memset(pks, 0x42, sizeof pks);
    float y[6] = {0.5f, -0.25f, 1, 2, 3, 4};
    fedreci_link_assign a;
    memset(&a, 0, sizeof a);
    a.round_id = a.p.round_id = 1;
    a.n_groups = 1;
    a.p.n = 3;
    a.p.k = 2;
    a.p.t = 2;
    a.p.d = 7;
    a.p.clip = 16;
    a.p.scale = 1024;
    a.p.max_weight = 1;
    a.model_version = 5;
    a.ids = ids;
    a.pks = pks;
    for (int i = 0; i < 4; i++)
        a.stage_ms[i] = 300;
    a.has_model = 1;
    a.n_items = 2;
    a.k = 3;
    a.factors = (const uint8_t *)y; /* little-endian hosts */
    fedreci_link_req q;
    nng_msg *m;
    fake_recv(s, apk, &q);
    assert_true(q.is_poll);
    assert_int_equal(q.model_version, 0);
    uint8_t key0[32];
    memcpy(key0, q.coord_pk, 32);
    uint64_t seq0 = q.seq;
    fedreci_link_req_free(&q);
    /* 1. signed by a key that is not the master's */
    assert_int_equal(fedreci_link_enc_assign(&m, &a), FEDREC_OK);
    fake_send(s, m, rsk, apk, seq0);
    /* each refused reply leaves the aggregator as it was: it polls again
       with the same X25519 key and no model */
    const uint8_t *sk_of[3] = {MSK, NULL, MSK};
    const uint8_t *pk_of[3] = {apk, apk, opk};
    for (int attack = 0; attack < 3; attack++) {
        fake_recv(s, apk, &q);
        assert_true(q.is_poll);
        assert_true(q.seq > seq0);
        assert_memory_equal(q.coord_pk, key0, 32);
        assert_int_equal(q.model_version, 0);
        uint64_t seq = q.seq;
        fedreci_link_req_free(&q);
        assert_int_equal(fedreci_link_enc_assign(&m, &a), FEDREC_OK);
        /* 2. the master's signature, for the earlier request (a replay);
           3. unsigned (as a master of link version 1 would send);
           4. the master's signature for another aggregator's request */
        fake_send(s, m, sk_of[attack], pk_of[attack], attack == 0 ? seq0 : seq);
    }
    fake_recv(s, apk, &q);
    assert_true(q.is_poll);
    assert_memory_equal(q.coord_pk, key0, 32);
    assert_int_equal(q.model_version, 0);
    uint64_t seq = q.seq;
    fedreci_link_req_free(&q);
    wait_status(port, "replies_refused", 4);
    assert_int_equal(status_num(port, "run"), 0);
    assert_int_equal(status_num(port, "master_connected"), 0);
    char *metrics = http_get(port, "/metrics");
    assert_non_null(strstr(metrics, "fedrec_master_replies_refused_total 4\n"));
    free(metrics);
    assert_int_equal(count_lines(logf, "refused a reply on the master link"), 4);
    /* 5. the positive control: the Assign signed by the master for this
       request is taken; with no member the group aborts at stage 0 and
       its result comes back */
    assert_int_equal(fedreci_link_enc_assign(&m, &a), FEDREC_OK);
    fake_send(s, m, MSK, apk, seq);
    fake_recv(s, apk, &q);
    assert_false(q.is_poll);
    assert_int_equal(q.result.round_id, 1);
    assert_int_equal(q.result.group, 0);
    assert_false(q.result.completed);
    uint64_t rseq = q.seq;
    fedreci_link_req_free(&q);
    /* a forged verdict ("counted") and the genuine verdict replayed from
       the earlier request are refused; the result is sent again each time */
    assert_int_equal(fedreci_link_enc_verdict(&m, 1, 1, 1, 6, ""), FEDREC_OK);
    fake_send(s, m, rsk, apk, rseq);
    fake_recv(s, apk, &q);
    assert_false(q.is_poll);
    assert_true(q.seq > rseq);
    uint64_t rseq2 = q.seq;
    fedreci_link_req_free(&q);
    assert_int_equal(fedreci_link_enc_verdict(&m, 1, 1, 1, 6, ""), FEDREC_OK);
    fake_send(s, m, MSK, apk, rseq);
    fake_recv(s, apk, &q);
    assert_false(q.is_poll);
    assert_true(q.seq > rseq2);
    uint64_t rseq3 = q.seq;
    fedreci_link_req_free(&q);
    /* the genuine verdict: the round aborted, this group not counted */
    assert_int_equal(fedreci_link_enc_verdict(&m, 1, 0, 0, 5, "too few groups"), FEDREC_OK);
    fake_send(s, m, MSK, apk, rseq3);
    /* the next poll: a fresh X25519 key (the old one was used) and the
       model of the accepted Assign */
    fake_recv(s, apk, &q);
    assert_true(q.is_poll);
    assert_memory_not_equal(q.coord_pk, key0, 32);
    assert_int_equal(q.model_version, 5);
    seq = q.seq;
    fedreci_link_req_free(&q);
    assert_int_equal(fedreci_link_enc_idle(&m, 0), FEDREC_OK);
    fake_send(s, m, MSK, apk, seq);
    wait_status(port, "replies_refused", 6);
    wait_status(port, "run", 1);
    /* "run" counts at group start; the verdict is counted after it */
    wait_status(port, "failed", 1);
    assert_int_equal(status_num(port, "counted"), 0);
    int st;
    kill(pid, SIGTERM);
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    /* the log read once the process has exited: every line it wrote is in */
    assert_int_equal(count_lines(logf, "refused a reply on the master link"), 6);
    assert_int_equal(count_lines(logf, "group not counted (too few groups)"), 1);
    nng_close(s);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

/* ---- TLS on every link -------------------------------------------------------- */

/* A TCP port free on 127.0.0.1 now (bound to 0 and released). */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    socklen_t len = sizeof sa;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

#define NT 40 /* clients of the TLS round */

static void test_tls_everywhere(void **state)
{
    (void)state;
    reset();
    char dir[] = "/tmp/fedrec-groups-tls-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char cert[128], key[128], other[128], cmd[1024];
    snprintf(cert, sizeof cert, "%s/cert.pem", dir);
    snprintf(key, sizeof key, "%s/cert-key.pem", dir);
    snprintf(other, sizeof other, "%s/other.pem", dir);
    th_make_cert(dir, "cert");
    th_make_cert(dir, "other");
    uint8_t pks[4][32], sks[4][64];
    for (int i = 0; i < 4; i++)
        agg_key(i, pks[i], sks[i]);
    const char *urls[1];
    fedreci_coord_config cfg;
    engine_cfg(&cfg, urls, "tls+tcp://127.0.0.1:0");
    cfg.tls_cert_file = cert;
    cfg.tls_key_file = key;
    cfg.cohort_size = NT;
    cfg.checkin_quorum = NT;
    cfg.min_cohort = 10;
    cfg.role = FEDRECI_ROLE_MASTER;
    cfg.agg_listen_url = "tls+tcp://127.0.0.1:0";
    cfg.agg_keys = (const uint8_t(*)[32])pks;
    cfg.n_agg_keys = 4; /* keys 2 and 3: the aggregators that must not get in */
    cfg.agg_master_sk = MSK;
    cfg.group_size = NT / 2;
    cfg.min_groups = 2;
    cfg.max_rounds = 1;
    fedreci_coord *master = start_engine(&cfg);
    int mport = fedreci_coord_port(master, 0), lport = fedreci_coord_agg_port(master);
    assert_true(mport > 0 && lport > 0);
    char murl[64], lurl_name[64], lurl_ip[64];
    snprintf(murl, sizeof murl, "tls+tcp://127.0.0.1:%d", mport);
    snprintf(lurl_name, sizeof lurl_name, "tls+tcp://localhost:%d", lport);
    snprintf(lurl_ip, sizeof lurl_ip, "tls+tcp://127.0.0.1:%d", lport);
    /* aggregators 0 and 1: the master by the name its certificate
       carries, their members on tls+tcp:// under the same certificate;
       2: the master by address (not in the certificate); 3: trusts another
       CA */
    pid_t pid[4];
    char listen[4][64], pub[4][64];
    for (int i = 0; i < 4; i++) {
        int p = free_port();
        snprintf(listen[i], sizeof listen[i], "tls+tcp://127.0.0.1:%d", p);
        snprintf(pub[i], sizeof pub[i], "tls+tcp://localhost:%d", p);
        const char *extra[] = {"--listen",
                               listen[i],
                               "--public-url",
                               pub[i],
                               "--tls-cert",
                               cert,
                               "--tls-key",
                               key,
                               "--master-ca",
                               i == 3 ? other : cert,
                               NULL};
        pid[i] = spawn_aggregator_args(dir, i, i == 2 ? lurl_ip : lurl_name, extra);
    }
    wait_ready(master, 2);
    run_n = NT;
    run_ca = cert;
    run_srvname = "localhost";
    run_clients(murl, 120000, NULL, 0);
    run_n = NC;
    run_ca = run_srvname = NULL;
    wait_round(0);
    if (!R[0].completed)
        fail_msg("TLS round aborted: %s", R[0].reason);
    assert_int_equal(R[0].groups, 2);
    assert_int_equal(R[0].groups_done, 2);
    assert_int_equal(R[0].survivors, NT);
    int in[NC];
    for (int i = 0; i < NC; i++) {
        in[i] = i < NT;
        if (i < NT && C[i].res.outcome != FEDRECI_SESSION_COMPLETED)
            fail_msg("client %d: outcome %d: %s", i, C[i].res.outcome, C[i].res.text);
        if (i < NT && strcmp(C[i].agg_url[0], pub[0]) != 0 && strcmp(C[i].agg_url[0], pub[1]) != 0)
            fail_msg("client %d ran at '%s'", i, C[i].agg_url[0]);
    }
    check_sum64(0, in);
    /* only aggregators 0 and 1 ever reached the master (the round took
       seconds: the others had the same time to try) */
    fedreci_coord_agg_status as[4];
    size_t n_seen = fedreci_coord_aggregators(master, as, 4);
    assert_int_equal(n_seen, 2);
    char k2[17], k3[17];
    sodium_bin2hex(k2, sizeof k2, pks[2], 8);
    sodium_bin2hex(k3, sizeof k3, pks[3], 8);
    for (size_t a = 0; a < n_seen; a++) {
        assert_string_not_equal(as[a].key, k2);
        assert_string_not_equal(as[a].key, k3);
        assert_int_equal(as[a].groups_counted, 1);
    }
    fedreci_coord_destroy(master);
    stop_aggregators(pid, 4);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

static void test_master_deadline(void **state)
{
    (void)state;
    uint8_t pks[1][32], sks[1][64];
    agg_key(0, pks[0], sks[0]);
    const char *urls[1];
    fedreci_coord_config cfg;
    engine_cfg(&cfg, urls, "inproc://groups-deadline");
    cfg.role = FEDRECI_ROLE_MASTER;
    cfg.agg_listen_url = "inproc://groups-deadline-link";
    cfg.agg_keys = (const uint8_t(*)[32])pks;
    cfg.n_agg_keys = 1;
    cfg.agg_master_sk = MSK;
    for (int s = 0; s < 4; s++)
        cfg.stage_ms[s] = 1000u * (uint32_t)(s + 1);
    cfg.round_ms = 23999;
    fedreci_coord_hooks h = {0};
    fedreci_coord_model m = {.version = 1, .n_items = N_ITEMS, .k = K, .item_factors = Y0};
    fedreci_coord *c = NULL;
    assert_int_equal(fedreci_coord_create(&c, &cfg, &h, &m), FEDREC_ERR_INVALID);
    assert_null(c);
    assert_non_null(strstr(fedrec_errmsg(), "23999 ms is shorter than an aggregator's longest "
                                            "legal group (19000 ms) + 5000 ms"));
    cfg.round_ms = 24000;
    assert_int_equal(fedreci_coord_create(&c, &cfg, &h, &m), FEDREC_OK);
    fedreci_coord_destroy(c);
}

/* Copies dir/NAME.pem and dir/NAME-key.pem over dir/cert.pem, dir/key.pem. */
static void install_cert(const char *dir, const char *name)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "cp '%s/%s.pem' '%s/cert.pem' && cp '%s/%s-key.pem' '%s/key.pem'",
             dir, name, dir, dir, name, dir);
    assert_int_equal(system(cmd), 0);
}

static void test_tls_reload_link(void **state)
{
    (void)state;
    reset();
    char dir[] = "/tmp/fedrec-groups-tlsre-XXXXXX";
    assert_non_null(mkdtemp(dir));
    th_make_cert(dir, "old");
    th_make_cert(dir, "new");
    install_cert(dir, "old");
    char cert[128], key[128], old_ca[128], new_ca[128], murl[128], cmd[300];
    snprintf(cert, sizeof cert, "%s/cert.pem", dir);
    snprintf(key, sizeof key, "%s/key.pem", dir);
    snprintf(old_ca, sizeof old_ca, "%s/old.pem", dir);
    snprintf(new_ca, sizeof new_ca, "%s/new.pem", dir);
    snprintf(murl, sizeof murl, "ipc://%s/master", dir);
    uint8_t pks[2][32], sks[2][64];
    for (int i = 0; i < 2; i++)
        agg_key(i, pks[i], sks[i]);
    const char *urls[1];
    fedreci_coord_config cfg;
    engine_cfg(&cfg, urls, murl);
    cfg.tls_cert_file = cert;
    cfg.tls_key_file = key;
    cfg.role = FEDRECI_ROLE_MASTER;
    cfg.agg_listen_url = "tls+tcp://127.0.0.1:0";
    cfg.agg_keys = (const uint8_t(*)[32])pks;
    cfg.n_agg_keys = 2;
    cfg.agg_master_sk = MSK;
    cfg.group_size = NC / 2;
    cfg.min_groups = 1;
    fedreci_coord *master = start_engine(&cfg);
    int lport = fedreci_coord_agg_port(master);
    assert_true(lport > 0);
    char lurl[64];
    snprintf(lurl, sizeof lurl, "tls+tcp://localhost:%d", lport);
    /* aggregator 0 trusts the old certificate and gets in */
    const char *x0[] = {"--master-ca", old_ca, NULL};
    const char *x1[] = {"--master-ca", new_ca, NULL};
    pid_t pid[2];
    pid[0] = spawn_aggregator_args(dir, 0, lurl, x0);
    wait_ready(master, 1);
    /* the files change and the master reloads: aggregator 1, which trusts
       only the new certificate, gets in */
    install_cert(dir, "new");
    assert_int_equal(fedreci_coord_reload_tls(master), FEDREC_OK);
    pid[1] = spawn_aggregator_args(dir, 1, lurl, x1);
    wait_ready(master, 2);
    fedreci_coord_agg_status as[2];
    assert_int_equal(fedreci_coord_aggregators(master, as, 2), 2);
    char k1[17];
    sodium_bin2hex(k1, sizeof k1, pks[1], 8);
    assert_true(strcmp(as[0].key, k1) == 0 || strcmp(as[1].key, k1) == 0);
    fedreci_coord_destroy(master);
    stop_aggregators(pid, 2);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

/* ---- a cohort past the one-instance limit ----------------------------------- */

#define NBIG 240
#define NGRP 8
#define DBIG 9 /* 2 items x 4 factors + 1 */

typedef struct big_client {
    uint64_t id;
    uint8_t sk[64];
    uint32_t q[DBIG];
    int has_q;
} big_client;

static big_client B[NBIG];

static fedrec_err big_update(void *arg, const fedreci_wire_round *rd, float *x, uint32_t *w)
{
    big_client *c = arg;
    /* coordinate 0 at the clip for everyone: 240 x 16 x 2^22 > 2^31 - 1;
       the others spread over [-16, 16] */
    x[0] = 16.0f;
    for (uint32_t i = 1; i < rd->secagg.d - 1; i++)
        x[i] = (float)((int)((c->id >> (8 * i)) % 33) - 16);
    *w = 1;
    return FEDREC_OK;
}

static void big_quantized(void *arg, uint64_t round_id, const uint32_t *q, uint32_t d)
{
    big_client *c = arg;
    if (round_id != 1 || d != DBIG)
        return;
    pthread_mutex_lock(&mu);
    memcpy(c->q, q, sizeof c->q);
    c->has_q = 1;
    pthread_mutex_unlock(&mu);
}

static int64_t big_sum[DBIG];
static int big_done, big_completed;
static uint32_t big_groups_done;

static void big_round_done(void *arg, const fedreci_round_stats *st)
{
    (void)arg;
    pthread_mutex_lock(&mu);
    big_done = 1;
    big_completed = st->completed;
    big_groups_done = st->groups_done;
    if (st->sum64)
        memcpy(big_sum, st->sum64, sizeof big_sum);
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

/* A cohort past what one SecAgg instance can hold at its scale. At the
 * daemon's default scale 65536 and clip 16 that limit is 2,047 clients; the
 * test shows the same at a scale of 2^22, where one instance holds at most
 * 31 clients (n x 16 x 2^22 < 2^31): 240 clients are refused as one
 * instance, run in eight groups of 30, and the master's sum is exact
 * although it passes 2^31. */
static void test_cohort_past_one_instance(void **state)
{
    (void)state;
    float y[8] = {0.1f, -0.2f, 0.3f, 0.05f, 0, 0.2f, -0.1f, 0.4f};
    fedreci_coord_model m = {.version = 1, .n_items = 2, .k = 4, .item_factors = y};
    fedreci_coord_config cfg;
    const char *urls[1];
    engine_cfg(&cfg, urls, "inproc://groups-big-master");
    cfg.cohort_size = NBIG;
    cfg.checkin_quorum = NBIG;
    cfg.n_contexts = NBIG + NBIG / 8 + 64;
    cfg.scale = 4194304.0; /* 2^22 */
    cfg.opt.n_train = NBIG;
    cfg.max_rounds = 1;
    /* one instance: refused by the overflow budget */
    fedreci_coord *single = NULL;
    fedreci_coord_hooks h = {.on_round_done = big_round_done};
    assert_int_equal(fedreci_coord_create(&single, &cfg, &h, &m), FEDREC_ERR_RANGE);
    /* a master with five aggregators */
    uint8_t pks[NGRP][32], sks[NGRP][64];
    for (int i = 0; i < NGRP; i++)
        agg_key(i, pks[i], sks[i]);
    cfg.role = FEDRECI_ROLE_MASTER;
    cfg.agg_listen_url = "inproc://groups-big-link";
    cfg.agg_keys = (const uint8_t(*)[32])pks;
    cfg.n_agg_keys = NGRP;
    cfg.agg_master_sk = MSK;
    cfg.group_size = NBIG / NGRP;
    cfg.min_groups = NGRP;
    fedreci_coord *master = NULL;
    assert_int_equal(fedreci_coord_create(&master, &cfg, &h, &m), FEDREC_OK);
    assert_int_equal(fedreci_coord_start(master), FEDREC_OK);
    fedreci_aggregator *agg[NGRP];
    for (int i = 0; i < NGRP; i++) {
        char u[64];
        snprintf(u, sizeof u, "inproc://groups-big-agg-%d", i);
        const char *lu[1] = {u};
        fedreci_aggregator_config ac;
        fedreci_aggregator_config_default(&ac);
        ac.master_url = "inproc://groups-big-link";
        ac.listen_urls = lu;
        ac.n_listen = 1;
        ac.identity_sk = sks[i];
        ac.master_pk = MPK;
        ac.max_group = NBIG / NGRP;
        assert_int_equal(fedreci_aggregator_create(&agg[i], &ac), FEDREC_OK);
        assert_int_equal(fedreci_aggregator_start(agg[i]), FEDREC_OK);
    }
    static fedreci_session *s[NBIG];
    for (int i = 0; i < NBIG; i++) {
        uint8_t pk[32];
        crypto_sign_keypair(pk, B[i].sk);
        B[i].id = fedreci_secagg_id_from_pk(pk);
        B[i].has_q = 0;
        fedreci_session_config sc;
        fedreci_session_config_default(&sc);
        sc.url = "inproc://groups-big-master";
        sc.client_id = B[i].id;
        sc.identity_sk = B[i].sk;
        sc.timeout_ms = 120000;
        fedreci_session_hooks sh = {
            .arg = &B[i], .compute_update = big_update, .on_quantized = big_quantized};
        assert_int_equal(fedreci_session_create(&s[i], &sc, &sh), FEDREC_OK);
        assert_int_equal(fedreci_session_start(s[i]), FEDREC_OK);
    }
    for (int i = 0; i < NBIG; i++) {
        fedreci_session_result res;
        assert_int_equal(fedreci_session_wait(s[i], -1, &res), FEDREC_OK);
        assert_int_equal(res.outcome, FEDRECI_SESSION_COMPLETED);
        fedreci_session_destroy(s[i]);
    }
    pthread_mutex_lock(&mu);
    while (!big_done)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    assert_true(big_completed);
    assert_int_equal(big_groups_done, NGRP);
    int64_t want[DBIG] = {0}, maxabs = 0;
    for (int i = 0; i < NBIG; i++) {
        assert_true(B[i].has_q);
        for (int w = 0; w < DBIG - 1; w++)
            want[w] += (int64_t)(int32_t)B[i].q[w];
        want[DBIG - 1] += B[i].q[DBIG - 1];
    }
    for (int w = 0; w < DBIG; w++) {
        assert_true(big_sum[w] == want[w]);
        if (w < DBIG - 1 && (want[w] < 0 ? -want[w] : want[w]) > maxabs)
            maxabs = want[w] < 0 ? -want[w] : want[w];
    }
    assert_true(want[DBIG - 1] == NBIG);
    /* the inputs were chosen so that some coordinate's sum is past what an
       int32 word holds: the master's 64-bit sum is exact there too */
    assert_true(maxabs > INT32_MAX);
    for (int i = 0; i < NGRP; i++)
        fedreci_aggregator_destroy(agg[i]);
    fedreci_coord_destroy(master);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_master_equals_single),
        cmocka_unit_test(test_aggregator_killed),
        cmocka_unit_test(test_rogue_aggregator),
        cmocka_unit_test(test_fake_master),
        cmocka_unit_test(test_tls_everywhere),
        cmocka_unit_test(test_master_deadline),
        cmocka_unit_test(test_tls_reload_link),
        cmocka_unit_test(test_cohort_past_one_instance),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}

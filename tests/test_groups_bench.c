/* Withheld graph seed contributions under SecAgg groups (issue 13): a master
 * engine and two in-process aggregators (real engines over inproc://),
 * eight client sessions in two groups of four.
 *
 *  - test_group_withholders_benched: two members of one group advertise and
 *    then withhold their graph seed contribution (the session's
 *    withhold_seed hook). Their group aborts at the seed step (more than
 *    FEDRECI_SECAGG_SEED_MISSING_MAX missing, and every engine here runs
 *    with seed_retries 0); its aggregator names them in
 *    its GroupResult; the master commits round 1 from the other group with
 *    exactly its members' sum, names the two in the round's withheld ids and
 *    benches them (on_client_benched: strike 1, until round 2). In round 2
 *    both are refused at check-in ("benched until round 2") and the six
 *    others' round completes with their exact sum; in round 3 all eight are
 *    admitted again (the two now reveal) and the round completes with all
 *    eight inputs.
 *  - test_group_withheld_non_member: a listed aggregator (scripted here)
 *    reports its group failed at the seed step and names one of its members
 *    and one member of the other group as withholders: the master benches
 *    its member only and names only it in the round; the other group's
 *    round commits.
 *  - test_group_withheld_steps: the same scripted aggregator reports its
 *    group failed at its consistency step, then (another master) at its
 *    unmask stage, naming the withholders under that step
 *    (GroupResult.consistency_withheld, unmask_withheld): the master
 *    benches its member with that step's reason ("sent no endorsement of
 *    the survivor set", "endorsed the survivor set but sent no reveals",
 *    never the seed step's) and names it under that step in the round.
 *  - test_bench_max_rounds: one coordinator (no groups), five sessions, two
 *    of which withhold. With bench_max_rounds 0 nobody is benched: both
 *    are drawn into the next round again (and abort it again). With
 *    bench_max_rounds 1 the second bench lasts one round, not two.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>
#include <sodium.h>

#include "client/session.h"
#include "coordinator/aggregator.h"
#include "coordinator/engine.h"
#include "coordinator/link.h"
#include "core/log.h"
#include "core/secagg/groups.h"
#include "core/secagg/secagg.h"
#include "harness_engine.h"

#define N_ITEMS 6
#define K 2
#define D (N_ITEMS * K + 1)
#define NC 8
#define NAGG 2
#define NR 3           /* rounds run */
#define MIN_COHORT 3u  /* the master's minimum cohort (and group) */
#define MASTER_SEED 7u /* the master's cohort and group seed */

typedef struct client {
    uint64_t id;
    uint8_t pk[32], sk[64];
    uint32_t q[NR][D];
    int has_q[NR];
    fedreci_session_result res;
} client;

typedef struct rec_round {
    int done, completed;
    uint32_t survivors, groups, groups_done;
    int64_t sum64[D];
    int has_sum64;
    uint32_t sum[D]; /* one coordinator: the ring sum */
    int has_sum;
    uint64_t withheld[NC];
    int withheld_step[NC]; /* 0 seed, 1 consistency, 2 unmask */
    uint32_t n_withheld;
} rec_round;

typedef struct bench_rec {
    uint64_t id, round_id, until;
    uint32_t strikes;
    char reason[96];
} bench_rec;

static client C[NC];
static rec_round R[NR];
static bench_rec B[NC];
static int n_bench;
static float Y0[N_ITEMS * K];
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;

static void reset(void)
{
    pthread_mutex_lock(&mu);
    memset(R, 0, sizeof R);
    memset(B, 0, sizeof B);
    n_bench = 0;
    for (int i = 0; i < NC; i++)
        memset(C[i].has_q, 0, sizeof C[i].has_q);
    pthread_mutex_unlock(&mu);
}

static int setup(void **state)
{
    (void)state;
    if (sodium_init() < 0)
        return -1;
    fedreci_log_set_level(FEDRECI_LOG_ERROR);
    for (int i = 0; i < NC; i++) {
        crypto_sign_keypair(C[i].pk, C[i].sk);
        C[i].id = fedreci_secagg_id_from_pk(C[i].pk);
    }
    for (int i = 0; i < N_ITEMS * K; i++)
        Y0[i] = (float)((i * 37) % 19 - 9) * 0.01f;
    return 0;
}

/* ---- hooks ------------------------------------------------------------------ */

static fedrec_err compute_update(void *arg, const fedreci_wire_round *rd, float *x, uint32_t *w)
{
    client *c = arg;
    uint64_t r = rd->secagg.round_id;
    for (uint32_t i = 0; i < rd->secagg.d - 1; i++)
        x[i] = (float)((int)((c->id * 31 + i * 7 + r * 13) % 201) - 100) / 40.0f;
    *w = 1;
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
    if (st->sum && st->params && st->params->d == D) {
        memcpy(r->sum, st->sum, sizeof r->sum);
        r->has_sum = 1;
    }
    r->n_withheld = st->n_withheld < NC ? st->n_withheld : NC;
    for (uint32_t i = 0; i < r->n_withheld; i++) {
        r->withheld[i] = st->withheld_ids[i];
        r->withheld_step[i] = st->withheld_steps ? st->withheld_steps[i] : st->withheld_step;
    }
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
}

static void on_benched(void *arg, uint64_t client_id, uint64_t round_id, uint32_t strikes,
                       uint64_t benched_until, const char *reason)
{
    (void)arg;
    pthread_mutex_lock(&mu);
    if (n_bench < NC) {
        B[n_bench] = (bench_rec){client_id, round_id, benched_until, strikes, ""};
        snprintf(B[n_bench].reason, sizeof B[n_bench].reason, "%s", reason ? reason : "");
        n_bench++;
    }
    pthread_mutex_unlock(&mu);
}

/* ---- pieces ----------------------------------------------------------------- */

/* One round: the clients `in` selects check in at url (withholders[i]: client
 * i withholds its seed contribution); waits for every session. */
static void run_clients(const char *url, const int *in, const int *withholders)
{
    fedreci_session *s[NC] = {0};
    for (int i = 0; i < NC; i++) {
        if (!in[i])
            continue;
        fedreci_session_config sc;
        fedreci_session_config_default(&sc);
        sc.url = url;
        sc.client_id = C[i].id;
        sc.identity_sk = C[i].sk;
        sc.timeout_ms = 60000;
        sc.withhold_seed = withholders && withholders[i];
        fedreci_session_hooks h = {
            .arg = &C[i], .compute_update = compute_update, .on_quantized = on_quantized};
        if (fedreci_session_create(&s[i], &sc, &h) || fedreci_session_start(s[i]))
            fail_msg("session %d: %s", i, fedrec_errmsg());
    }
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < NC; i++) {
            if (!s[i] || (withholders && withholders[i]) != (pass == 0))
                continue;
            if (fedreci_session_wait(s[i], 150000, &C[i].res) != FEDREC_OK)
                fail_msg("client %d: session did not end", i);
            fedreci_session_destroy(s[i]);
            s[i] = NULL;
        }
}

static void wait_round(int r)
{
    char what[32];
    snprintf(what, sizeof what, "round %d's end", r + 1);
    th_wait_flag(&mu, &cv, &R[r].done, 120, what);
}

static int q_round; /* q_of's round index (the test's thread only) */

static const uint32_t *q_of(int i, void *ctx)
{
    (void)ctx;
    return C[i].has_q[q_round] ? C[i].q[q_round] : NULL;
}

/* The oracle: the master's sum of round r equals the sum of the quantized
 * inputs of the clients `in` selects. */
static void check_sum64(int r, const int *in)
{
    assert_true(R[r].has_sum64);
    q_round = r;
    th_check_sum64(r + 1, R[r].sum64, D, NC, in, q_of, NULL);
}

/* The same for one coordinator's ring sum (mod 2^32). */
static void check_sum64_single(int r, const int *in)
{
    uint32_t want[D] = {0};
    for (int i = 0; i < NC; i++) {
        if (!in[i])
            continue;
        assert_true(C[i].has_q[r]);
        for (int w = 0; w < D; w++)
            want[w] += C[i].q[r][w];
    }
    assert_true(R[r].has_sum);
    assert_memory_equal(R[r].sum, want, sizeof want);
}

/* The group of every client in round round_id with all NC in the cohort
 * (docs/protocol.md "SecAgg groups": fedreci_groups_assign over the sorted
 * cohort with the master's seed and minimum cohort). */
static void predict_groups(uint64_t round_id, uint32_t n_groups, int *group)
{
    uint64_t ids[NC];
    for (int i = 0; i < NC; i++)
        ids[i] = C[i].id;
    th_predict_groups(ids, NC, n_groups, MIN_COHORT, MASTER_SEED, round_id, group);
}

static void agg_key(int i, uint8_t pk[32], uint8_t sk[64])
{
    th_agg_key(0xb0, i, pk, sk);
}

/* Waits until the master sees n aggregators ready. */
static void wait_ready(fedreci_coord *master, uint32_t n)
{
    th_wait_aggregators(master, n);
}

/* ---- the test ----------------------------------------------------------------- */

static void test_group_withholders_benched(void **state)
{
    (void)state;
    reset();
    uint8_t pks[NAGG][32], sks[NAGG][64], mpk[32], msk[64];
    for (int i = 0; i < NAGG; i++)
        agg_key(i, pks[i], sks[i]);
    agg_key(NAGG, mpk, msk); /* the master's own link key */
    const char *urls[1] = {"inproc://gbench-master"};
    fedreci_coord_config cfg;
    fedreci_coord_config_default(&cfg);
    cfg.seed_retries = 0; /* withholders abort the seed step (no retry: test_hostile
                             test_seed_retry has retries) */
    cfg.listen_urls = urls;
    cfg.n_listen = 1;
    cfg.n_contexts = 64;
    cfg.cohort_size = NC;
    cfg.checkin_quorum = NC;
    cfg.min_cohort = MIN_COHORT;
    cfg.clip = 16;
    cfg.scale = floor(1073741824.0 / (NC * 16.0));
    for (int s = 0; s < 4; s++)
        cfg.stage_ms[s] = 30000;
    /* an aggregator learns that a member went away only from its deadline
       (members never check in there): the withheld seed step of round 1
       waits out stage 0's deadline, 8 s, ten times what stage 0 takes in the
       sanitized build on a loaded machine */
    cfg.stage_ms[0] = 8000;
    cfg.checkin_window_ms = 1500; /* round 2: six of the eight check in */
    cfg.retry_after_ms = 50;
    cfg.seed = MASTER_SEED;
    cfg.opt.n_train = NC;
    cfg.max_rounds = NR;
    cfg.role = FEDRECI_ROLE_MASTER;
    cfg.agg_listen_url = "inproc://gbench-link";
    cfg.agg_keys = (const uint8_t(*)[32])pks;
    cfg.n_agg_keys = NAGG;
    cfg.agg_master_sk = msk;
    cfg.group_size = NC / NAGG;
    cfg.min_groups = 1;
    fedreci_coord_hooks hk = {.on_round_done = on_round_done, .on_client_benched = on_benched};
    fedreci_coord_model m = {.version = 1, .n_items = N_ITEMS, .k = K, .item_factors = Y0};
    fedreci_coord *master = NULL;
    if (fedreci_coord_create(&master, &cfg, &hk, &m) || fedreci_coord_start(master))
        fail_msg("master: %s", fedrec_errmsg());
    fedreci_aggregator *agg[NAGG];
    for (int i = 0; i < NAGG; i++) {
        char aurl[64];
        snprintf(aurl, sizeof aurl, "inproc://gbench-agg-%d", i);
        const char *lu[1] = {aurl};
        fedreci_aggregator_config ac;
        fedreci_aggregator_config_default(&ac);
        ac.master_url = "inproc://gbench-link";
        ac.listen_urls = lu;
        ac.n_listen = 1;
        ac.identity_sk = sks[i];
        ac.master_pk = mpk;
        ac.max_group = 16;
        assert_int_equal(fedreci_aggregator_create(&agg[i], &ac), FEDREC_OK);
        assert_int_equal(fedreci_aggregator_start(agg[i]), FEDREC_OK);
    }
    wait_ready(master, NAGG);

    /* round 1: two members of group 0 withhold */
    int group[NC], all[NC], withholders[NC] = {0}, w[2], nw = 0;
    predict_groups(1, NAGG, group);
    for (int i = 0; i < NC; i++) {
        all[i] = 1;
        if (group[i] == 0 && nw < 2) {
            withholders[i] = 1;
            w[nw++] = i;
        }
    }
    assert_int_equal(nw, 2);
    run_clients("inproc://gbench-master", all, withholders);
    wait_round(0);
    int other[NC];
    for (int i = 0; i < NC; i++) {
        other[i] = group[i] == 1;
        if (withholders[i])
            assert_int_equal(C[i].res.outcome, FEDRECI_SESSION_DROPPED);
        else if (group[i] == 1 && C[i].res.outcome != FEDRECI_SESSION_COMPLETED)
            fail_msg("client %d (group 1): outcome %d: %s", i, C[i].res.outcome, C[i].res.text);
        else if (group[i] == 0 && C[i].res.outcome == FEDRECI_SESSION_COMPLETED)
            fail_msg("client %d (group 0) completed", i);
    }
    assert_true(R[0].completed);
    assert_int_equal(R[0].groups, 2);
    assert_int_equal(R[0].groups_done, 1);
    check_sum64(0, other);
    /* named and benched by the master, for one round */
    uint64_t want[2] = {C[w[0]].id < C[w[1]].id ? C[w[0]].id : C[w[1]].id,
                        C[w[0]].id < C[w[1]].id ? C[w[1]].id : C[w[0]].id};
    assert_int_equal(R[0].n_withheld, 2);
    assert_true(R[0].withheld[0] == want[0] && R[0].withheld[1] == want[1]);
    pthread_mutex_lock(&mu);
    assert_int_equal(n_bench, 2);
    for (int i = 0; i < 2; i++) {
        assert_true(B[i].id == want[0] || B[i].id == want[1]);
        assert_int_equal(B[i].round_id, 1);
        assert_int_equal(B[i].strikes, 1);
        assert_int_equal(B[i].until, 2);
        assert_string_equal(B[i].reason, "withheld its graph seed contribution");
        assert_int_equal(R[0].withheld_step[i], FEDRECI_LINK_WITHHELD_SEED);
    }
    pthread_mutex_unlock(&mu);
    fedreci_coord_status cs;
    fedreci_coord_get_status(master, &cs);
    assert_int_equal(cs.clients_benched, 2);
    assert_int_equal(cs.benches, 2);

    /* round 2: both refused at check-in, the six others complete exactly */
    run_clients("inproc://gbench-master", all, NULL);
    wait_round(1);
    int six[NC];
    for (int i = 0; i < NC; i++) {
        six[i] = !withholders[i];
        if (withholders[i]) {
            assert_int_equal(C[i].res.err, FEDREC_ERR_NOT_SELECTED);
            if (!strstr(C[i].res.text, "benched until round 2"))
                fail_msg("client %d refused with '%s'", i, C[i].res.text);
        } else if (C[i].res.outcome != FEDRECI_SESSION_COMPLETED) {
            fail_msg("round 2 client %d: outcome %d: %s", i, C[i].res.outcome, C[i].res.text);
        }
    }
    assert_true(R[1].completed);
    assert_int_equal(R[1].survivors, 6);
    assert_int_equal(R[1].n_withheld, 0);
    check_sum64(1, six);

    /* round 3: the bench is over; all eight take part and complete */
    run_clients("inproc://gbench-master", all, NULL);
    wait_round(2);
    for (int i = 0; i < NC; i++)
        if (C[i].res.outcome != FEDRECI_SESSION_COMPLETED)
            fail_msg("round 3 client %d: outcome %d: %s", i, C[i].res.outcome, C[i].res.text);
    assert_true(R[2].completed);
    assert_int_equal(R[2].survivors, NC);
    check_sum64(2, all);
    fedreci_coord_get_status(master, &cs);
    assert_int_equal(cs.clients_benched, 0);
    assert_int_equal(n_bench, 2);

    for (int i = 0; i < NAGG; i++)
        fedreci_aggregator_destroy(agg[i]);
    fedreci_coord_destroy(master);
}

/* ---- a scripted aggregator -------------------------------------------------- */

typedef struct scripted {
    const uint8_t *pk, *sk, *master_pk;
    const char *link_url; /* the master's aggregator listener */
    int step;             /* names withholders of FEDRECI_LINK_WITHHELD_* */
    uint64_t members[NC];
    uint32_t n_members;
    uint64_t named[2];
    int verdict_ok;
    nng_socket rep; /* where its members are sent: answers junk */
} scripted;

/* Answers every request on x->rep with one junk byte (members end at once
 * with an error) until the socket closes. */
static void *junk_main(void *arg)
{
    scripted *x = arg;
    for (;;) {
        nng_msg *m = NULL;
        if (nng_recvmsg(x->rep, &m, 0) != 0)
            return NULL;
        nng_msg_clear(m);
        if (nng_msg_append(m, "\x01", 1) != 0 || nng_sendmsg(x->rep, m, 0) != 0)
            nng_msg_free(m);
    }
}

/* Polls until assigned a group, then reports it failed at step x->step,
 * naming its first member and the lowest id of the other group as that
 * step's withholders. */
static void *scripted_main(void *arg)
{
    scripted *x = arg;
    nng_socket s;
    if (nng_req0_open(&s) != 0 || nng_dial(s, x->link_url, NULL, 0) != 0)
        return NULL;
    nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 30000);
    uint64_t seq = 1;
    uint8_t cpk[32];
    randombytes_buf(cpk, sizeof cpk);
    fedreci_link_reply rep;
    uint64_t round_id = 0;
    uint32_t group = 0;
    for (int t = 0; t < 600 && !round_id; t++) {
        nng_msg *m = NULL, *r = NULL;
        if (fedreci_link_enc_poll(&m, x->sk, ++seq, "inproc://gbench-nowhere", cpk, 0, 16) ||
            nng_sendmsg(s, m, 0) != 0 || nng_recvmsg(s, &r, 0) != 0)
            break;
        fedrec_err e = fedreci_link_dec_reply(nng_msg_body(r), nng_msg_len(r), 1u << 30,
                                              x->master_pk, x->pk, seq, &rep);
        nng_msg_free(r);
        if (e)
            break;
        if (rep.msg->body_case == FEDREC__GROUPS__V1__AGG_REPLY__BODY_ASSIGN) {
            round_id = rep.assign.round_id;
            group = rep.assign.group;
            x->n_members = rep.assign.p.n < NC ? rep.assign.p.n : NC;
            memcpy(x->members, rep.assign.ids, x->n_members * sizeof *x->members);
        }
        fedreci_link_reply_free(&rep);
    }
    if (!round_id || !x->n_members) {
        nng_close(s);
        return NULL;
    }
    uint64_t other = UINT64_MAX;
    for (int i = 0; i < NC; i++) {
        int mine = 0;
        for (uint32_t j = 0; j < x->n_members; j++)
            mine |= x->members[j] == C[i].id;
        if (!mine && C[i].id < other)
            other = C[i].id;
    }
    uint64_t named[2] = {x->members[0] < other ? x->members[0] : other,
                         x->members[0] < other ? other : x->members[0]};
    memcpy(x->named, named, sizeof named);
    fedreci_link_result res;
    memset(&res, 0, sizeof res);
    res.round_id = round_id;
    res.group = group;
    static const char *const why[3] = {"stage 0 seed step: scripted",
                                       "stage 3 consistency step: scripted", "stage 3: scripted"};
    res.reason = why[x->step];
    res.advertised = x->n_members;
    res.withheld[x->step] = named;
    res.n_withheld[x->step] = 2;
    nng_msg *m = NULL, *r = NULL;
    if (fedreci_link_enc_result(&m, x->sk, ++seq, &res) == FEDREC_OK && nng_sendmsg(s, m, 0) == 0 &&
        nng_recvmsg(s, &r, 0) == 0) {
        if (fedreci_link_dec_reply(nng_msg_body(r), nng_msg_len(r), 1u << 30, x->master_pk, x->pk,
                                   seq, &rep) == FEDREC_OK) {
            x->verdict_ok = rep.msg->body_case == FEDREC__GROUPS__V1__AGG_REPLY__BODY_VERDICT;
            fedreci_link_reply_free(&rep);
        }
        nng_msg_free(r);
    }
    nng_close(s);
    return NULL;
}

/* The master with aggregator 0 real and aggregator 1 scripted (naming
 * withholders of `step`), on inproc:// URLs tagged tag; one round of all
 * NC clients. Checks that only the scripted group's own member is benched,
 * with that step's reason, and named under that step. */
static void run_scripted(int step, const char *tag)
{
    reset();
    char murl[64], lurl[64], aurl[64];
    snprintf(murl, sizeof murl, "inproc://gbench-master-%s", tag);
    snprintf(lurl, sizeof lurl, "inproc://gbench-link-%s", tag);
    snprintf(aurl, sizeof aurl, "inproc://gbench-agg-%s", tag);
    uint8_t pks[NAGG][32], sks[NAGG][64], mpk[32], msk[64];
    for (int i = 0; i < NAGG; i++)
        agg_key(i, pks[i], sks[i]);
    agg_key(NAGG, mpk, msk);
    const char *urls[1] = {murl};
    fedreci_coord_config cfg;
    fedreci_coord_config_default(&cfg);
    cfg.seed_retries = 0; /* withholders abort the seed step (no retry: test_hostile
                             test_seed_retry has retries) */
    cfg.listen_urls = urls;
    cfg.n_listen = 1;
    cfg.n_contexts = 64;
    cfg.cohort_size = NC;
    cfg.checkin_quorum = NC;
    cfg.min_cohort = MIN_COHORT;
    cfg.clip = 16;
    cfg.scale = floor(1073741824.0 / (NC * 16.0));
    for (int s = 0; s < 4; s++)
        cfg.stage_ms[s] = 30000;
    cfg.retry_after_ms = 50;
    cfg.seed = MASTER_SEED;
    cfg.opt.n_train = NC;
    cfg.max_rounds = 1;
    cfg.role = FEDRECI_ROLE_MASTER;
    cfg.agg_listen_url = lurl;
    cfg.agg_keys = (const uint8_t(*)[32])pks;
    cfg.n_agg_keys = NAGG;
    cfg.agg_master_sk = msk;
    cfg.group_size = NC / NAGG;
    cfg.min_groups = 1;
    fedreci_coord_hooks hk = {.on_round_done = on_round_done, .on_client_benched = on_benched};
    fedreci_coord_model m = {.version = 1, .n_items = N_ITEMS, .k = K, .item_factors = Y0};
    fedreci_coord *master = NULL;
    if (fedreci_coord_create(&master, &cfg, &hk, &m) || fedreci_coord_start(master))
        fail_msg("master: %s", fedrec_errmsg());
    /* aggregator 0 is real, aggregator 1 scripted */
    const char *lu[1] = {aurl};
    fedreci_aggregator_config ac;
    fedreci_aggregator_config_default(&ac);
    ac.master_url = lurl;
    ac.listen_urls = lu;
    ac.n_listen = 1;
    ac.identity_sk = sks[0];
    ac.master_pk = mpk;
    ac.max_group = 16;
    fedreci_aggregator *agg = NULL;
    assert_int_equal(fedreci_aggregator_create(&agg, &ac), FEDREC_OK);
    assert_int_equal(fedreci_aggregator_start(agg), FEDREC_OK);
    scripted x = {.pk = pks[1], .sk = sks[1], .master_pk = mpk, .link_url = lurl, .step = step};
    assert_int_equal(nng_rep0_open(&x.rep), 0);
    assert_int_equal(nng_listen(x.rep, "inproc://gbench-nowhere", NULL, 0), 0);
    pthread_t jt, st;
    assert_int_equal(pthread_create(&jt, NULL, junk_main, &x), 0);
    assert_int_equal(pthread_create(&st, NULL, scripted_main, &x), 0);
    wait_ready(master, NAGG);
    int all[NC];
    for (int i = 0; i < NC; i++)
        all[i] = 1;
    run_clients(murl, all, NULL);
    wait_round(0);
    pthread_join(st, NULL);
    nng_close(x.rep);
    pthread_join(jt, NULL);
    assert_true(x.verdict_ok);
    assert_int_equal(x.n_members, NC / NAGG);
    /* the round commits from the real group */
    assert_true(R[0].completed);
    assert_int_equal(R[0].groups_done, 1);
    /* only the scripted group's own member is benched and named */
    uint64_t member = x.named[0] == x.members[0] ? x.named[0] : x.named[1];
    pthread_mutex_lock(&mu);
    static const char *const what[3] = {"withheld its graph seed contribution",
                                        "sent no endorsement of the survivor set",
                                        "endorsed the survivor set but sent no reveals"};
    assert_int_equal(n_bench, 1);
    assert_true(B[0].id == member);
    assert_int_equal(B[0].until, 2);
    assert_string_equal(B[0].reason, what[step]);
    pthread_mutex_unlock(&mu);
    assert_int_equal(R[0].n_withheld, 1);
    assert_true(R[0].withheld[0] == member);
    assert_int_equal(R[0].withheld_step[0], step);
    fedreci_aggregator_destroy(agg);
    fedreci_coord_destroy(master);
}

static void test_group_withheld_non_member(void **state)
{
    (void)state;
    run_scripted(FEDRECI_LINK_WITHHELD_SEED, "seed");
}

static void test_group_withheld_steps(void **state)
{
    (void)state;
    run_scripted(FEDRECI_LINK_WITHHELD_CONSISTENCY, "consistency");
    run_scripted(FEDRECI_LINK_WITHHELD_UNMASK, "unmask");
}

/* One coordinator with bench_max_rounds `cap`: five of the clients, the
 * first two withholders. */
static fedreci_coord *single(uint32_t cap, const char *url)
{
    const char *urls[1] = {url};
    fedreci_coord_config cfg;
    fedreci_coord_config_default(&cfg);
    cfg.seed_retries = 0; /* withholders abort the seed step (no retry: test_hostile
                             test_seed_retry has retries) */
    cfg.listen_urls = urls;
    cfg.n_listen = 1;
    cfg.n_contexts = 64;
    cfg.cohort_size = 5;
    cfg.checkin_quorum = 5;
    cfg.min_cohort = MIN_COHORT;
    cfg.clip = 16;
    for (int s = 0; s < 4; s++)
        cfg.stage_ms[s] = 30000;
    cfg.checkin_window_ms = 1500;
    cfg.retry_after_ms = 50;
    cfg.seed = MASTER_SEED;
    cfg.opt.n_train = 5;
    cfg.bench_max_rounds = cap;
    fedreci_coord_hooks hk = {.on_round_done = on_round_done, .on_client_benched = on_benched};
    fedreci_coord_model m = {.version = 1, .n_items = N_ITEMS, .k = K, .item_factors = Y0};
    fedreci_coord *c = NULL;
    if (fedreci_coord_create(&c, &cfg, &hk, &m) || fedreci_coord_start(c))
        fail_msg("coordinator: %s", fedrec_errmsg());
    return c;
}

static void test_bench_max_rounds(void **state)
{
    (void)state;
    int five[NC] = {1, 1, 1, 1, 1}, two[NC] = {1, 1}, three[NC] = {0, 0, 1, 1, 1};
    /* cap 0: nobody is benched; the two abort round 2 as well */
    reset();
    fedreci_coord *c = single(0, "inproc://gbench-single-0");
    for (int r = 0; r < 2; r++) {
        run_clients("inproc://gbench-single-0", five, two);
        wait_round(r);
        assert_false(R[r].completed);
        assert_int_equal(R[r].n_withheld, 2); /* still named in the round log */
        for (int i = 0; i < 2; i++)
            assert_int_equal(C[i].res.outcome, FEDRECI_SESSION_DROPPED);
    }
    fedreci_coord_status cs;
    fedreci_coord_get_status(c, &cs);
    assert_int_equal(cs.clients_benched, 0);
    assert_int_equal(cs.benches, 0);
    assert_int_equal(n_bench, 0);
    fedreci_coord_destroy(c);

    /* cap 1: one round, then one round again (not two) */
    reset();
    c = single(1, "inproc://gbench-single-1");
    run_clients("inproc://gbench-single-1", five, two);
    wait_round(0);
    assert_false(R[0].completed);
    run_clients("inproc://gbench-single-1", five, NULL);
    wait_round(1);
    assert_true(R[1].completed);
    assert_int_equal(R[1].survivors, 3);
    check_sum64_single(1, three);
    for (int i = 0; i < 2; i++)
        assert_non_null(strstr(C[i].res.text, "benched until round 2"));
    run_clients("inproc://gbench-single-1", five, two);
    wait_round(2);
    assert_false(R[2].completed);
    assert_int_equal(n_bench, 4);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(B[i].strikes, i < 2 ? 1 : 2);
        assert_int_equal(B[i].until, B[i].round_id + 1);
        assert_string_equal(B[i].reason, "withheld its graph seed contribution");
    }
    assert_int_equal(B[3].round_id, 3);
    fedreci_coord_destroy(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_group_withholders_benched),
        cmocka_unit_test(test_group_withheld_non_member),
        cmocka_unit_test(test_group_withheld_steps),
        cmocka_unit_test(test_bench_max_rounds),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}

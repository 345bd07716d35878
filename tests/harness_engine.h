/*
 * The shared test fixture (tests/harness_engine.c), part two: a coordinator
 * engine with a world of test clients, for the engine, fault, pipe and
 * client tests.
 *
 *  - a start model with item codes, and a coordinator engine started on a
 *    URL (inproc://, tcp://) with a test's configuration;
 *  - a "world" of test clients (ids, identity keys) whose client-session
 *    hooks record what the oracle needs: each client's quantized input per
 *    round, its upload bytes, how its session ended; and whose engine hooks
 *    record every round's statistics, unmasked sum, cohort and survivors,
 *    and the checksum of the last committed model;
 *  - the oracle: a completed round's unmasked sum equals the survivors'
 *    quantized inputs summed in Z_2^32, word for word;
 *  - a hand-driven client on a raw REQ socket (two contexts, so a test can
 *    hold one request while it sends another), and its SecAgg+ side.
 *
 * Every helper fails the running cmocka test (fail_msg / assert_*) on an
 * unexpected error, so it may be called only from the test's own thread. The
 * hooks run on engine and session threads: they only record, under the
 * world's lock, and never assert.
 */
#ifndef FEDREC_TESTS_HARNESS_ENGINE_H
#define FEDREC_TESTS_HARNESS_ENGINE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <nng/nng.h>

#include "client/session.h"
#include "fedrec/client.h"
#include "coordinator/engine.h"
#include "harness.h"
#include "proto/wire.h"

/* ---- a start model -------------------------------------------------------- */

#define TH_MAX_ITEMS 64
#define TH_MAX_FACTORS 512 /* n_items x k */

typedef struct th_model {
    uint32_t n_items, k;
    float y[TH_MAX_FACTORS]; /* n_items x k, row-major */
    char code_buf[TH_MAX_ITEMS][16];
    const char *codes[TH_MAX_ITEMS]; /* NULL entries when made without codes */
    int has_codes;
} th_model;

/* n_items x k factors y[i] = ((i * mul) mod m - m / 2) * scale (a fixed,
 * varied pattern), and item codes printed with code_fmt from the row index
 * ("C%03d"), or none when code_fmt is NULL. */
void th_model_init(th_model *m, uint32_t n_items, uint32_t k, uint32_t mul, uint32_t mod,
                   float scale, const char *code_fmt);

/* The engine's start model: version 1, m's factors, its codes when it has
 * them and with_codes is set, no retired rows. Points into m. */
fedreci_coord_model th_model_start(const th_model *m, int with_codes);

/* ---- a coordinator -------------------------------------------------------- */

/* cfg: the engine defaults, listening on url alone. url_slot (one pointer)
 * holds the URL array and must outlive every create made with cfg. */
void th_coord_config(fedreci_coord_config *cfg, const char **url_slot, const char *url);

/* Creates and starts an engine; fails the test with the engine's message
 * when either fails. */
fedreci_coord *th_coord_start(const fedreci_coord_config *cfg, const fedreci_coord_hooks *hooks,
                              const fedreci_coord_model *m);

/* Polls (1 ms) until the engine's byte count of client id (update bytes when
 * `update` is set, else all bytes) exceeds `above`, and returns it. Waits
 * while the client is not yet registered. No timing assertion. */
uint64_t th_wait_client_bytes(fedreci_coord *c, uint64_t id, int update, uint64_t above);

/* ---- a world of test clients ---------------------------------------------- */

#define TH_MAXC 16  /* clients */
#define TH_MAXR 8   /* rounds recorded, by index round_id - first_round */
#define TH_MAXD 256 /* words of a quantized input (n_items x k + 1) */

typedef struct th_world th_world;

typedef struct th_client {
    th_world *w;
    uint64_t id;
    uint8_t pk[32], sk[64];       /* Ed25519 identity */
    uint64_t model_version;       /* the version it holds (tests update it) */
    uint32_t q[TH_MAXR][TH_MAXD]; /* quantized input per round index */
    int has_q[TH_MAXR];
    uint64_t upload_bytes;         /* SecAgg bytes sent, resends included */
    unsigned stages_sent;          /* bit s: a stage-s message went out */
    int masked_uploads[TH_MAXR];   /* masked inputs sent (stage 2) per round */
    uint32_t clipped_min[TH_MAXR]; /* their clipping counts, smallest */
    uint32_t clipped_max[TH_MAXR]; /* and largest */
    int got_model;                 /* models downloaded */
    uint64_t sum_version;          /* the version of the last model downloaded, */
    uint8_t model_sum[32];         /* and its checksum (bound into the advert) */
    int done;                      /* its last session ended: */
    fedreci_session_result res;    /* how */
    fedreci_session *sess;         /* for tests that keep it here */
} th_client;

/* What on_round_done reported about one round; st's pointers point into
 * this record (params, cohort_ids, survivor_ids, sum (NULL: aborted),
 * abort_reason). */
typedef struct th_round {
    int done;
    fedreci_round_stats st;
    fedreci_secagg_params params;
    uint64_t cohort[TH_MAXC];
    uint64_t surv[TH_MAXC];
    uint32_t sum[TH_MAXD];
    int has_sum;
    char reason[200];
} th_round;

struct th_world {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* broadcast on every recorded event */
    const th_model *model;
    uint32_t d; /* n_items x k + 1 */
    th_client cl[TH_MAXC];
    int n;
    uint64_t first_round;
    th_round round[TH_MAXR];
    int commits;
    int bad_commits;        /* commits whose shape was not the model's */
    int bad_models;         /* downloads whose shape, Gram matrix or codes were
                               not the model's */
    int bad_inputs;         /* quantized inputs not of d words or for a round
                               outside the record */
    uint8_t committed[32];  /* BLAKE2b-256 of the last committed factors
                               (of the start model before any commit) */
    fedreci_coord *gone_to; /* sessions that end DROPPED tell this engine */
    /* The update of a client for a round (the test's own pattern). */
    fedrec_err (*compute_update)(void *arg, const fedreci_wire_round *rd, float *x,
                                 uint32_t *weight);
};

/* Resets w: n clients with fresh identity keys and their self-certifying
 * ids (fedreci_secagg_id_from_pk), rounds recorded from first_round on, the
 * start model m (kept by pointer). */
void th_world_init(th_world *w, const th_model *m, int n, uint64_t first_round,
                   fedrec_err (*compute_update)(void *, const fedreci_wire_round *, float *,
                                                uint32_t *));

/* Engine hooks recording into w (round done, model committed). */
fedreci_coord_hooks th_world_hooks(th_world *w);

/* The client of id, or NULL. */
th_client *th_client_of(th_world *w, uint64_t id);

/* Records a quantized input of c for round_id (the session hook does this;
 * hand-driven clients call it themselves). */
void th_record_quantized(th_client *c, uint64_t round_id, const uint32_t *q, uint32_t d);

/* BLAKE2b-256 of n floats. */
void th_checksum(const float *y, size_t n, uint8_t out[32]);

/* A session configuration for client c on url: the defaults, its id, key
 * and model version. The test sets the rest (dropout stage, timeouts, the
 * rounding seed, opt-in, fetch_model). */
void th_session_config(fedreci_session_config *cfg, const char *url, const th_client *c);

/* Creates and starts a session of c with the recording hooks (c->done is
 * cleared). */
fedreci_session *th_session_start(th_client *c, const fedreci_session_config *cfg);

/* Waits for each of the n sessions, destroys it, and writes its result to
 * res[i] (res may be NULL). */
void th_sessions_finish(fedreci_session **s, int n, fedreci_session_result *res);

/* Blocks until the session of c has ended (c->done). */
void th_wait_done(th_client *c);

/* Every commit and every download so far had the model's shape (n_items, k;
 * a download also its Gram matrix and, when the model has codes, one code
 * per item), and every quantized input had d words and a recorded round. */
void th_check_world(const th_world *w);

/* The oracle for round index r: completed, and the unmasked sum equals the
 * survivors' quantized inputs summed in Z_2^32, word for word; the weight
 * coordinate counts the survivors. Then th_check_world. */
void th_check_oracle(th_world *w, int r);

/* ---- a hand-driven client on a raw REQ socket ----------------------------- */

typedef struct th_raw {
    nng_socket sock;
    nng_ctx ctx[2];
    nng_aio *aio[2];
    const uint8_t *sk; /* identity key requests are signed with (NULL: none) */
    uint8_t mac[32];   /* the round's MAC key for the masked input */
    int has_mac;
} th_raw;

/* Dials url with two REQ contexts (no automatic resend), replies awaited at
 * most timeout_ms; no keys yet. */
void th_raw_open(th_raw *r, const char *url, int timeout_ms);
void th_raw_close(th_raw *r);

/* The keys r authenticates its requests with from now on: requests are
 * signed with sk (64 bytes, Ed25519; NULL: sent unsigned), a masked input is
 * MACed with mac (32 bytes, the round's key; NULL: signed like the rest). */
void th_raw_keys(th_raw *r, const uint8_t *sk, const uint8_t *mac);

/* Sends m on context i, authenticated with r's keys (a message that does not
 * decode goes as it is), and starts waiting for the reply. */
void th_raw_send(th_raw *r, int i, nng_msg *m);

/* The decoded reply on context i (free with fedreci_wire_free). */
fedreci_wire_env *th_raw_wait(th_raw *r, int i);

/* th_raw_send then th_raw_wait on context 0. */
fedreci_wire_env *th_raw_req(th_raw *r, nng_msg *m);

/* Abandons the request on context i; a reply that already arrived is freed. */
void th_raw_abandon(th_raw *r, int i);

/* e is an Error reply with code; frees e. */
void th_expect_error(fedreci_wire_env *e, fedrec_err code);

/* ---- a hand-driven SecAgg+ client ----------------------------------------- */

/* The SecAgg+ side of a hand-driven client: what it holds after each step,
 * for the test to send (th_hand_msg), resend or tamper with. */
typedef struct th_hand {
    th_client *me;
    fedreci_wire_round rd;
    fedreci_secagg_client *sa;
    fedreci_secagg_advert adv; /* its signed advert */
    uint64_t ids[64];          /* the roster's member ids */
    size_t n_ids;
    uint8_t contribution[32];             /* its graph seed contribution, after the roster */
    const fedreci_secagg_ciphertext *cts; /* its shares, after the seed relay */
    size_t ncts;
    const fedreci_secagg_complaint *cpl; /* its complaints, after the relay */
    size_t ncpl;
    const fedreci_secagg_opening *ops; /* its openings, after complaints against it */
    size_t nops;
    const uint32_t *masked;         /* its masked input (d words), after the complaint step */
    const fedreci_secagg_tag *tags; /* its consistency tags, after the unmask request */
    size_t ntags;
    const fedreci_secagg_reveal *rv; /* its reveals, after the consistency relay */
    size_t nrv;
    uint8_t mac[32]; /* its MAC key for the masked input (th_raw_keys) */
} th_hand;

/* Client state of me in round rd (rounding seed {seed0, 0, ...}), its
 * advert and its MAC key. */
void th_hand_init(th_hand *h, th_client *me, const fedreci_wire_round *rd, uint8_t seed0);
void th_hand_destroy(th_hand *h);

/* h's message of `stage` (FEDRECI_WIRE_STAGE_ADVERTISE .. _CONSISTENCY) for
 * its round, from what it holds now. */
nng_msg *th_hand_msg(const th_hand *h, int stage);

/* The roster reply e (frees it): exactly `members` members; h's seed
 * contribution (send FEDRECI_WIRE_STAGE_SEED next). */
void th_hand_roster(th_hand *h, fedreci_wire_env *e, size_t members);

/* The seed relay e (frees it): h's shares. */
void th_hand_seed(th_hand *h, fedreci_wire_env *e);

/* The relay reply e (frees it): exactly n_in ciphertexts for h, checked
 * and kept; h's complaints (send FEDRECI_WIRE_STAGE_COMPLAINT next). */
void th_hand_relay(th_hand *h, fedreci_wire_env *e, size_t n_in);

/* The final complaint relay e (frees it): the exclusions and openings
 * applied; h's update (the world's compute_update), masked, and its
 * quantized input recorded (send FEDRECI_WIRE_STAGE_MASKED_INPUT next). */
void th_hand_outcome(th_hand *h, fedreci_wire_env *e);

/* The unmask request e (frees it): exactly n_surv survivors and n_drop
 * dropped; h's consistency tags (send FEDRECI_WIRE_STAGE_CONSISTENCY next). */
void th_hand_unmask(th_hand *h, fedreci_wire_env *e, size_t n_surv, size_t n_drop);

/* The consistency relay e (frees it): h's reveals. */
void th_hand_tags(th_hand *h, fedreci_wire_env *e);

/* ---- the daemon as a process ---------------------------------------------- */

/* A `fedrec-coordinator` process started by a test (test_hostile,
 * test_limits, test_daemon_ops, test_cheat): its temporary directory, the
 * database and log in it, and the URL of its first listener. */
typedef struct th_daemon {
    pid_t pid;
    char dir[256];
    char log[300];
    char db[300];
    char url[128]; /* the first listener, with the port the kernel chose */
    int port;
} th_daemon;

/* Zeroes d and makes its directory /tmp/fedrec-<tag>-XXXXXX. */
void th_daemon_init(th_daemon *d, const char *tag);

/* Starts the daemon in d->dir: `--db <dir>/state.sqlite --listen listen`
 * (listen: "tcp://127.0.0.1:0" or "tls+tcp://127.0.0.1:0"), then args
 * (NULL-terminated, at most 56), stdout and stderr to
 * <dir>/coordinator<log_suffix>.log (log_suffix "" or e.g. "-2" for a
 * restart on the same database). Waits (60 s) for its listening line and
 * sets d->port and d->url. The process is remembered until th_daemon_stop
 * or th_daemon_teardown. */
void th_daemon_launch(th_daemon *d, const char *listen, const char *const *args,
                      const char *log_suffix);

/* SIGTERM; the exit status must be 0 (else the log is printed and the test
 * fails); with check_db the database must pass PRAGMA integrity_check; the
 * directory is removed unless keep. */
void th_daemon_stop(th_daemon *d, int check_db, int keep);

/* A cmocka teardown: SIGKILLs every daemon still running (a failed
 * assertion leaves the test by longjmp). Always 0. */
int th_daemon_teardown(void **state);

/* Number of lines of d's log containing a and, when not NULL, b and c. */
int th_log_count(const th_daemon *d, const char *a, const char *b, const char *c);

/* Waits (up to 60 s) for a log line with a, b and c: 1, or 0 (printed). */
int th_log_wait(const th_daemon *d, const char *a, const char *b, const char *c);

/* Prints the last 8000 bytes of d's log to stderr. */
void th_log_dump(const th_daemon *d);

/* The integer right after `needle` in d's log (waits up to 60 s; fails the
 * test when it never appears). */
int th_log_number_after(const th_daemon *d, const char *needle);

/* The round log row of round r: status (into status) and the metrics JSON
 * (heap string, free it); fails the test when there is no row. */
char *th_daemon_round_row(const th_daemon *d, uint64_t r, char status[16]);

/* ---- an honest client over the network ------------------------------------ */

/* A well-behaved client run by client/session (the library's own round
 * driver), for the tests that talk to a daemon: its identity, the model
 * version it holds, its last session's result and, for the oracle, its last
 * quantized input in the clear. */
typedef struct th_gclient th_gclient;
struct th_gclient {
    uint64_t id;
    uint8_t pk[32], sk[64];
    uint64_t version;
    fedreci_session *s;
    fedreci_session_result res;
    uint32_t *q; /* q_cap words: the last quantized input (NULL: not kept) */
    uint32_t q_cap;
    uint32_t d; /* its length (0: none in the last session) */
    uint64_t q_round;
    /* the update (NULL: th_gclient_pattern); arg is the test's */
    fedrec_err (*update)(th_gclient *g, const fedreci_wire_round *r, float *x, uint32_t *w);
    void *arg;
};

/* Fresh identity key and its id; room for a quantized input of q_cap words
 * (0: none kept). */
void th_gclient_init(th_gclient *g, uint32_t q_cap);
void th_gclient_free(th_gclient *g);

/* The default update: x[i] = ((i * 7 + id) mod 29 - 14) * 0.37, weight
 * max_weight. */
fedrec_err th_gclient_pattern(th_gclient *g, const fedreci_wire_round *r, float *x, uint32_t *w);

/* A session configuration for g: the defaults, url (may be NULL when the
 * test sets a socket), its id, key, model version and timeout_ms. */
void th_gclient_config(const th_gclient *g, fedreci_session_config *sc, const char *url,
                       uint32_t timeout_ms);

/* Starts g's session with sc (th_gclient_config, then the test's changes). */
void th_gclient_start_with(th_gclient *g, const fedreci_session_config *sc);

/* th_gclient_config(g, url, timeout_ms) then th_gclient_start_with. */
void th_gclient_start(th_gclient *g, const char *url, uint32_t timeout_ms);

/* Waits for g's session, keeps its result in g->res, destroys it and takes
 * the model version it holds now. */
void th_gclient_finish(th_gclient *g);

/* ---- shoppers: client library handles (the public API) -------------------- */

/* One shopper's app: a store in its own temporary directory, opened with
 * fedrec_client_open_with, and the result of its last sync. */
typedef struct th_shopper {
    char *dir;
    fedrec_client *c;
    uint64_t id;    /* its client id */
    uint8_t pk[32]; /* its identity public key */
    fedrec_err err; /* the last fedrec_client_sync */
    fedrec_sync_result res;
    char msg[512]; /* fedrec_errmsg() after it */
} th_shopper;

/* Opens a new store (th_tmpdir(tag)) with key, syncing with url, with the
 * round floors floors[0..2] (min cohort, neighbours, threshold; NULL or 0:
 * the library's defaults), and records one purchase of code. */
void th_shopper_open(th_shopper *s, const char *tag, const char *url, const uint8_t key[32],
                     const uint32_t *floors, const char *code);

/* fedrec_client_forget, then frees the directory name. */
void th_shopper_close(th_shopper *s);

/* The n shoppers sync at once, a thread each, with deadline_ms; each one's
 * err, res and msg are kept. */
void th_shoppers_sync(th_shopper *s, int n, uint32_t deadline_ms);

/* ---- SecAgg groups: a master and its aggregators (test_groups_service,
 *      test_groups_bench) ----------------------------------------------------- */

/* An aggregator's (or a master's) identity key: the Ed25519 pair of the seed
 * of 32 bytes base + i. */
void th_agg_key(uint8_t base, int i, uint8_t pk[32], uint8_t sk[64]);

/* Waits until the master sees at least n aggregators ready (polling its
 * status every 20 ms); fails the test after 60 s. */
void th_wait_aggregators(fedreci_coord *master, uint32_t n);

/* Waits until *flag is set, reading it under mu; the setter broadcasts cv.
 * Fails the test naming what after `seconds`. */
void th_wait_flag(pthread_mutex_t *mu, pthread_cond_t *cv, const int *flag, int seconds,
                  const char *what);

/* The group of each of n clients (ids[i] is client i's id; all n in the
 * cohort) in round round_id, as docs/protocol.md "SecAgg groups" describes
 * it: fedreci_groups_assign over the ascending cohort with the master's
 * minimum cohort and seed. group[i] gets client i's group. n <= 4096. */
void th_predict_groups(const uint64_t *ids, int n, uint32_t n_groups, uint32_t min_cohort,
                       uint64_t seed, uint64_t round_id, int *group);

/* The oracle of a master round (round_no for messages): got, the master's
 * d int64 words, equals the sum of the quantized inputs of the clients i < n
 * with in[i] (words 0 .. d-2 as signed int32, word d-1 the weight, which
 * must equal their count); q_of(i, ctx) gives client i's input of the round
 * (NULL when it has none: the test fails). */
void th_check_sum64(int round_no, const int64_t *got, uint32_t d, int n, const int *in,
                    const uint32_t *(*q_of)(int i, void *ctx), void *ctx);
#endif

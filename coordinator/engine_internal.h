/*
 * Internal to the coordinator engine (engine.h is its one interface): the
 * state the engine files share and the entry points they call in each other.
 * Not used outside coordinator/engine*.c and the files listed here.
 *
 *   engine.c     create, destroy, configuration, status, the public calls
 *   outbox.c     replies queued under the lock and sent after it; held
 *                (parked) requests
 *   registry.c   the client registry: an open-addressing table by client id
 *   round.c      the round state machine: cohort selection, the four SecAgg+
 *                stages and their deadlines, commit of the new model
 *   requests.c   the request handlers: check-in, model request, stage
 *                messages, and the dispatch of a decoded request
 *   transport.c  nng: the REP socket, its contexts and their callbacks,
 *                listeners (TLS), the pipe watch, the deadline timer thread
 *   master.c     the master role of SecAgg groups (issue 20): the aggregator
 *                link (its own REP socket and threads), group planning,
 *                group results into the master sum, the round's verdict
 *   group.c      the aggregator role: a round for an assigned group, the
 *                published model, the verdict
 *
 * Locking: one mutex (fedreci_coord.mu) guards everything below except the
 * nng handles and closing_flag. Every function here that takes an outbox is
 * called with the lock held; it never sends: replies are queued in the
 * outbox and fedreci_eng_flush sends them after the lock is released (a
 * model reply is encoded there too, from a reference to its immutable
 * version).
 */
#ifndef FEDREC_COORDINATOR_ENGINE_INTERNAL_H
#define FEDREC_COORDINATOR_ENGINE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include <nng/nng.h>

#include "coordinator/engine.h"
#include "core/dp/round.h"
#include "core/idmap.h"
#include "proto/wire.h"

/* ---- small helpers -------------------------------------------------------- */

/* Milliseconds on the monotonic clock (deadlines, stage durations). */
static inline uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Milliseconds since 1970 on the real-time clock (check-in times). */
static inline uint64_t fedreci_eng_unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* A check-in's sent_unix_ms must be within this of the coordinator's clock
 * (docs/protocol.md "Replayed check-ins"). */
#define FEDRECI_CHECKIN_SKEW_MS 600000u

/* ---- state ---------------------------------------------------------------- */

/* What an nng context is doing: idle (not started or closing), receiving,
 * parked (a request held until its stage closes or its round starts), or
 * sending a reply. */
enum { CX_IDLE = 0, CX_RECV, CX_PARKED, CX_SENDING };

/* One nng context and its aio; idx is its index in fedreci_coord.ctx (what a
 * parked request is recorded as). */
typedef struct cctx {
    fedreci_coord *c;
    nng_ctx ctx;
    nng_aio *aio;
    int state;
    uint32_t idx;
    /* Its entry in an outbox (a context has at most one pending operation,
     * so it is in at most one outbox at a time, and queueing never
     * allocates): the reply, or a model reply to encode with ob_hdr, or
     * (both NULL) receive again; ob_next links the outbox. */
    struct cctx *ob_next;
    nng_msg *ob_msg;
    struct pmodel *ob_model;
    fedreci_wire_hdr ob_hdr;
    int ob_queued;
} cctx;

/* One registry entry (a row of fedreci_coord.reg, found through reg_index). */
typedef struct crec {
    uint64_t id;
    uint8_t opted_in;
    uint8_t pk[32];
    int32_t wait_ctx; /* parked check-in, -1 none */
    uint64_t bytes_update, bytes_total;
    uint64_t msg_round;
    uint32_t msgs;
    uint32_t pipe;           /* nng pipe id of the connection of its last check-in (0: none) */
    uint64_t dl_version;     /* the model version last downloaded in full */
    uint32_t dls;            /* full downloads of dl_version */
    uint64_t excluded_round; /* named a culprit in that round: refused since (0: never) */
    uint64_t seen;           /* c->seen_clock at its last check-in (0: restored, not seen) */
    uint8_t attested;        /* the attestation verifier vouched for its key (cfg.attest) */
    uint64_t checkin_ms;     /* sent_unix_ms of the last check-in taken (0: none since start) */
    uint64_t bench_until;    /* not drawn into rounds up to this id: it withheld a step of a
                                round that aborted for that (fedreci_eng_bench; 0: never) */
    uint8_t strikes;         /* how often (the bench doubles each time; saturates at 255) */
    uint8_t bench_why;       /* its last reason: an index into fedreci_coord.bench_why */
} crec;

/* One remote address (limits.c): open connections and its new-id bucket. */
typedef struct addrent {
    uint64_t key; /* keyed hash of the IPv4 address or IPv6 /64 */
    uint32_t conns;
    double tokens; /* new-id tokens */
    uint64_t t_ms; /* when tokens was last refilled */
} addrent;

/* The catalog a model version is sent with: the item code of every row and
 * the retired rows (ascending). Immutable, shared by reference between the
 * versions of one catalog (fedreci_coord_set_model makes a new one). */
typedef struct pcat {
    atomic_int refs;
    char **codes; /* n_codes codes, or NULL */
    size_t n_codes;
    uint32_t *retired;
    size_t n_retired;
} pcat;

/* An immutable published model version, shared by reference with encoders. */
typedef struct pmodel {
    atomic_int refs;
    uint64_t version;
    uint32_t n_items, k;
    float *y;
    float *gram;
    uint8_t checksum[FEDRECI_WIRE_CHECKSUM_BYTES];
    pcat *cat; /* one reference */
} pmodel;

/* The phases of a round (rstate.stage): the four SecAgg+ stages of
 * docs/protocol.md and the two steps issue 14 added inside them, the graph
 * seed contributions (stage 0, after the roster) and the consistency check
 * (stage 3, before the reveals), and the complaint and opening steps of
 * stage 1 (after the share relay; docs/protocol.md "Bad share bundles").
 * Statistics, deadlines and the dropout hook
 * count the four stages (fedreci_eng_phase_stage). */
enum {
    PH_ADV = 0,      /* AdvertiseKeys -> Roster */
    PH_SEED = 1,     /* SeedReveal -> SeedRelay */
    PH_SHARE = 2,    /* ShareKeys -> ShareRelay */
    PH_COMPLAIN = 3, /* Complaints -> ComplaintRelay (final when nobody complained) */
    PH_OPEN = 4,     /* Openings -> ComplaintRelay (final); closes at once when final */
    PH_MASKED = 5,   /* MaskedInput -> UnmaskRequest */
    PH_CONSIST = 6,  /* Consistency -> ConsistencyRelay */
    PH_UNMASK = 7,   /* Unmask -> RoundResult */
    N_PH = 8
};

/* The SecAgg stage (0..3) of phase ph. */
static inline int fedreci_eng_phase_stage(int ph)
{
    static const int st[N_PH] = {0, 0, 1, 1, 1, 2, 3, 3};
    return ph >= 0 && ph < N_PH ? st[ph] : 3;
}

/* "" for the phases that are the classic stages, else the step's name (for
 * log lines and error texts: "stage 0 seed step"). */
static inline const char *fedreci_eng_phase_step(int ph)
{
    return ph == PH_SEED       ? " seed step"
           : ph == PH_CONSIST  ? " consistency step"
           : ph == PH_COMPLAIN ? " complaint step"
           : ph == PH_OPEN     ? " opening step"
                               : "";
}

/* The phase of a wire stage (Envelope.stage), or -1 for a non-SecAgg stage. */
static inline int fedreci_eng_phase_of_wire(uint32_t wire_stage)
{
    switch (wire_stage) {
    case FEDRECI_WIRE_STAGE_ADVERTISE:
        return PH_ADV;
    case FEDRECI_WIRE_STAGE_SEED:
        return PH_SEED;
    case FEDRECI_WIRE_STAGE_SHARE_KEYS:
        return PH_SHARE;
    case FEDRECI_WIRE_STAGE_COMPLAINT:
        return PH_COMPLAIN;
    case FEDRECI_WIRE_STAGE_OPENING:
        return PH_OPEN;
    case FEDRECI_WIRE_STAGE_MASKED_INPUT:
        return PH_MASKED;
    case FEDRECI_WIRE_STAGE_CONSISTENCY:
        return PH_CONSIST;
    case FEDRECI_WIRE_STAGE_UNMASK:
        return PH_UNMASK;
    default:
        return -1;
    }
}

/* One cohort member of a round. */
typedef struct member {
    uint8_t acc;  /* bit ph: phase ph message accepted */
    uint8_t gone; /* declared gone (fedreci_coord_client_gone) or its
                     connection closed (pipe_removed): sends nothing more */
    int32_t park; /* parked ctx, -1 none */
    uint8_t has_key;
    uint8_t mac_key[32]; /* authenticates its masked input (after its advert) */
} member;

/* rstate.stage past the phases: the round ended. */
enum { ST_DONE = N_PH, ST_ABORTED = N_PH + 1 };

/* One round: its cohort, the SecAgg+ server and what each stage closed with.
 * The engine keeps the current round and the one before it (late resends of
 * the previous round are still answered). */
typedef struct rstate {
    uint64_t id;
    int stage;      /* the open phase (PH_*), ST_DONE, ST_ABORTED */
    int reached;    /* the last SecAgg stage opened (0..3); set when the round ends */
    int reached_ph; /* the last phase opened (PH_*); set when the round aborts */
    fedreci_secagg_params p;
    fedreci_secagg_server *srv;
    uint32_t n;
    uint64_t *ids; /* cohort, sorted */
    int new_epoch; /* cfg.reshuffle: the cohort's draw started a new epoch */
    member *mem;
    uint32_t count[N_PH]; /* messages accepted per phase */
    uint32_t expected;
    uint32_t gone; /* declared-gone members still expected at the open stage */
    uint64_t *roster_ids;
    fedreci_secagg_advert *roster;
    size_t m;
    uint8_t digest[32];     /* the seed digest sent with the roster */
    uint8_t *contribs;      /* m x 32: every member's seed contribution (after PH_SEED) */
    uint8_t *missing;       /* m flags: did not reveal (its commitment in contribs) */
    uint32_t seed_attempt;  /* the seed step attempt (retries: round.c retry_seed) */
    uint64_t *seed_dropped; /* left out by seed step retries (did not reveal), sorted */
    uint32_t n_seed_dropped;
    uint32_t *nbr; /* scratch for neighbour indices */
    uint64_t *surv, *drop;
    size_t ns, nd;
    int cpl_final;  /* the complaint step's outcome is known (excl) */
    uint64_t *excl; /* members excluded by the complaint step, sorted */
    size_t n_excl;
    uint64_t t_stage;
    double stage_ms[4]; /* per SecAgg stage (its phases added) */
    uint64_t bytes_in0, bytes_out0;
    double total_weight;
    uint64_t version_after;
    fedrec_err err;
    char reason[200];
    uint8_t coord_sk[32], coord_pk[32]; /* this round's X25519 key (MAC keys) */
    long adv_key_mi;                    /* the member whose advert was just authenticated */
    uint8_t adv_key[32];                /* its round key (derived once, kept by stage_add) */
    uint8_t adv_key_spk[32];            /* the s_pk it was derived from */
    uint8_t binding[32];                /* the binding every advert must carry (proto/wire.h
                                           fedreci_wire_binding: this round's parameters and model) */
    uint64_t *culprits;                 /* named in this round, sorted */
    uint32_t n_culprits;
    uint64_t *withheld; /* members that did not reveal their seed contribution when that
                           aborted the round (benched: fedreci_eng_bench), sorted; master
                           role: those the failed groups' aggregators named */
    uint32_t n_withheld;
    int withheld_step; /* withheld: 0 the seed step's, 1 the consistency step's non-endorsers,
                          2 the unmask stage's (endorsed, no reveals) */
    fedreci_dp_round_params dp; /* this round's DP parameters (dp.c; mechanism 0: none) */
    int dp_charged;             /* its release was spent */
    double dp_eps_cumulative;   /* epsilon spent after it */
    int awaiting;               /* aggregator role: the group's sum is out, the verdict not in */
    struct mround *grp;         /* master role: the round's groups (master.c) */
} rstate;

/* The sends queued under the lock (see the top of this file): a list of
 * contexts linked through cctx.ob_next, in the order queued. Initialized
 * with {NULL, 0, 0}. */
typedef struct outbox {
    cctx *head;
    cctx *tail;
    size_t n;
} outbox;

/* Differential privacy state (dp.c). */
typedef struct engdp {
    int on;
    fedreci_dp_round_params p; /* planned parameters (rotation seed: per round) */
    fedreci_dp_event ev;       /* one release */
    fedreci_dp_accountant acc; /* spent */
    uint64_t rounds;           /* releases spent */
    double spent;              /* epsilon spent at p.delta */
    int exhausted;
    char refusal[240];
    size_t dim, D;
    double *dec; /* dim doubles: the decoded sum */
} engdp;

/* The engine. */
struct fedreci_coord {
    fedreci_coord_config cfg; /* listen_urls and the TLS file names are NULL here */
    char **urls;              /* n_listen + 2: the listen URLs, then the TLS certificate and
                                 key file names (NULL when not set) */
    int *ports;               /* bound TCP port of each listener (0: not TCP / not started) */
    fedreci_coord_hooks hooks;
    pthread_mutex_t mu;
    pthread_cond_t cv_done;
    pthread_cond_t cv_timer;
    pthread_t timer;
    int timer_started;
    int closing;
    atomic_int closing_flag;
    int stopped;
    int started;

    nng_socket sock;
    int sock_open;
    cctx *ctx;
    uint32_t n_ctx;
    uint32_t n_parked;
    uint32_t park_limit;
    size_t cap;

    crec *reg; /* reg_n known clients in arrival order, room for reg_cap */
    size_t reg_cap, reg_n;
    fedreci_idmap reg_index; /* client id -> row of reg */

    uint64_t *waiting;
    size_t n_waiting, waiting_cap;
    uint64_t *epoch; /* cfg.reshuffle: the clients drawn in the current epoch, sorted */
    size_t n_epoch;

    pmodel *model;
    fedreci_optimizer *opt;
    float *grad;
    uint32_t *sum;

    /* limits.c: connections, remote addresses, new-id buckets */
    addrent *addrs;
    size_t n_addrs, addrs_cap;
    fedreci_idmap addr_index;   /* key -> row of addrs */
    size_t addr_prune_at;       /* prune the address table at this many rows (0: the base) */
    fedreci_idmap pipes;        /* open connections: pipe id -> address row + 1 (0: not IP) */
    fedreci_idmap pipe_clients; /* open connections carrying clients: pipe id -> the number of
                                   registry entries whose pipe it is */
    uint32_t clients_connected; /* the sum of pipe_clients */
    uint32_t conns_open;
    uint32_t closed_since_trim;
    uint64_t last_trim_ms; /* when freed heap was last handed back (0: never) */
    int trim_pending;      /* a hand-back is due at last_trim_ms + FEDRECI_TRIM_INTERVAL_MS */
    double global_tokens;
    uint64_t global_t_ms;
    uint8_t addr_hash_key[16];
    uint64_t refused_conn_addr, refused_conn_total, refused_new_addr, refused_new_global;
    uint64_t start_unix_ms;    /* real-time clock at create: older check-ins are refused */
    uint64_t refused_checkins; /* check-ins refused as stale, from the future or replayed */
    uint64_t clients_evicted;
    uint64_t seen_clock;
    /* benches (registry.c fedreci_eng_bench): the distinct reasons given
       (interned: a registry entry keeps an index; slot 0 is ""), and how
       many benches were handed out since start */
    char bench_why[FEDRECI_BENCH_REASONS][FEDRECI_BENCH_REASON_MAX];
    uint32_t n_bench_why;
    uint64_t benches;
    uint64_t *benched; /* ids benched at some point, pruned of the expired ones by
                          fedreci_eng_benched_count; n_benched of benched_cap */
    size_t n_benched, benched_cap;

    engdp dp;
    rstate *cur, *prev;
    uint64_t next_round_id;
    uint64_t deadline; /* 0: none */
    uint64_t rounds_run, rounds_completed, rounds_aborted;
    uint32_t abort_streak;   /* rounds aborted in a row */
    uint64_t hold_until;     /* backoff: no round starts before (monotonic ms); 0: none */
    int held;                /* fedreci_coord_hold: no round starts until released */
    nng_listener *listeners; /* n_listen, valid once started (TLS reload) */
    uint64_t bytes_in, bytes_out;
    struct master *master; /* master role (master.c) */
};

/* ---- outbox.c: queued replies and held requests ---------------------------- */

/* Queues one send on x (msg, or a model reply with header h, or neither:
 * receive again). Never fails (the entry lives in x). */
void fedreci_eng_ob_push(outbox *ob, cctx *x, nng_msg *msg, pmodel *model,
                         const fedreci_wire_hdr *h);

/* Drops one reference to a published model version (NULL: nothing), and
 * with the last one its catalog's. */
void fedreci_eng_model_unref(pmodel *m);

/* Drops one reference to a catalog (NULL: nothing). */
void fedreci_eng_cat_unref(pcat *cat);

/* Sends what ob holds and empties it; each context's state is set to what
 * it is then doing (CX_SENDING with a message, CX_RECV without). A model
 * reply that cannot be encoded (out of memory) is answered with
 * Error(FEDREC_ERR_NOMEM) instead, or, when even that cannot be built, the
 * request is dropped and the context receives again. Lock not held. */
void fedreci_eng_flush(fedreci_coord *c, outbox *ob);

/* Queues msg as the reply on ctx x (state -> SENDING). msg NULL (encoding
 * failed): the request is dropped and x receives again. */
void fedreci_eng_reply(fedreci_coord *c, cctx *x, nng_msg *msg, outbox *ob);

/* An Error reply with `code` and `text` (also logged). */
void fedreci_eng_reply_error(fedreci_coord *c, cctx *x, const fedreci_wire_hdr *h, fedrec_err code,
                             const char *text, outbox *ob);

/* A RetryAfter reply (retry_after_ms). */
void fedreci_eng_reply_retry(fedreci_coord *c, cctx *x, const fedreci_wire_hdr *h, outbox *ob);

/* Whether one more request may be held (parked) without starving quick
 * replies of contexts. */
int fedreci_eng_can_park(const fedreci_coord *c);

/* Holds the request on x; the caller records x->idx where it is found later. */
void fedreci_eng_park(fedreci_coord *c, cctx *x);

/* The held request of context idx, no longer counted as parked. */
cctx *fedreci_eng_unpark(fedreci_coord *c, int32_t idx);

/* Drops a superseded parked request: the ctx receives again. */
void fedreci_eng_unpark_drop(fedreci_coord *c, int32_t idx, outbox *ob);

/* ---- registry.c: the client registry ---------------------------------------- */

/* The entry of client id, or NULL. */
crec *fedreci_eng_reg_find(fedreci_coord *c, uint64_t id);

/* The entry of client id, added (zeroed, no parked check-in) if new; NULL
 * when the registry cannot grow (out of memory, or full at max_clients with
 * nothing it may forget). A full registry first forgets the entries seen
 * least recently (see fedreci_coord_config.max_clients). Adding may move every entry: a crec
 * pointer is valid only until the next insert. */
crec *fedreci_eng_reg_insert(fedreci_coord *c, uint64_t id);

/* Frees the registry. */
void fedreci_eng_reg_free(fedreci_coord *c);

/* ---- limits.c: connections per address, new-id buckets ------------------------ */

/* A new connection p (NNG_PIPE_EV_ADD_PRE; takes the lock): 1 when admitted
 * (counted), 0 when it exceeds max_connections or max_conns_per_addr (the
 * caller closes it; counted in the refusal metrics). */
int fedreci_eng_conn_admit(fedreci_coord *c, nng_pipe p);

/* The shortest time between two hand-backs of freed heap (malloc_trim):
 * a trim discards every free page of every arena, so the next requests
 * fault their 0.5 MB buffers in again (measured: about 300 page faults
 * per client-round when it ran every 32 closes, docs/scale.md). */
#define FEDRECI_TRIM_INTERVAL_MS 30000u

/* Connection pipe closed (lock held): uncounted if it was admitted. Every
 * 32 closes, and whenever the last connection goes, freed memory is due
 * back to the system: returns 1 when the caller should give it back now
 * (malloc_trim, after the lock is released), at most once per
 * FEDRECI_TRIM_INTERVAL_MS; within the interval it sets trim_pending and
 * wakes the timer thread, which trims when the interval is over. */
int fedreci_eng_conn_gone(fedreci_coord *c, uint32_t pipe);

/* Whether a check-in under a new id may register over connection pipe
 * (lock held): takes one token from the address's and the global bucket;
 * 0 with *why set (and the refusal counted) when one is empty. */
int fedreci_eng_new_id_allowed(fedreci_coord *c, uint32_t pipe, const char **why);

/* Client e's requests now come over connection pipe (0: none; lock held):
 * e->pipe is set, and the count of known clients on an open connection
 * (clients_connected) follows. Can't fail (out of memory: e is counted as
 * not connected). */
void fedreci_eng_bind_pipe(fedreci_coord *c, crec *e, uint32_t pipe);

/* Frees the connection and address tables. */
void fedreci_eng_limits_free(fedreci_coord *c);

/* Excludes client id (registered) since round_id: a held check-in is
 * answered with an Error and leaves the waiting list; later check-ins are
 * refused. Reports it through on_client_excluded when `report`. */
void fedreci_eng_exclude(fedreci_coord *c, crec *e, uint64_t round_id, int report, outbox *ob);

/* Benches e after it withheld a step of round_id that aborted for that
 * (e.g. its graph seed contribution, docs/protocol.md "The graph seed");
 * reason says what it withheld ("withheld its graph seed contribution"; a
 * short text, cut to FEDRECI_BENCH_REASON_MAX - 1 bytes, copied). Its
 * strike count grows and it is not drawn into the next 2^(strikes - 1)
 * rounds (at most cfg.bench_max_rounds; 0 there: nobody is benched and
 * nothing changes): check-ins until then are answered
 * Error(NOT_SELECTED, "benched until round N: <reason> ..."), and a
 * check-in it holds now is answered so. Reported through on_client_benched
 * (the daemon keeps it in its database, so a restart does not forget it).
 * NULL e: no-op. Lock held. */
void fedreci_eng_bench(fedreci_coord *c, crec *e, uint64_t round_id, const char *reason,
                       outbox *ob);

/* Whether e is benched for the round the next cohort is drawn for. */
int fedreci_eng_benched(const fedreci_coord *c, const crec *e);

/* Adds id to c->benched (no-op if there; out of memory: not counted). */
void fedreci_eng_benched_add(fedreci_coord *c, uint64_t id);

/* The clients benched now; drops the expired ones (and those no longer in
 * the registry) from c->benched. O(benched). Lock held. */
uint32_t fedreci_eng_benched_count(fedreci_coord *c);

/* The index of reason among c->bench_why, added if new; 0 ("") when reason
 * is NULL or empty, or when FEDRECI_BENCH_REASONS are taken (the reason is
 * then not kept in memory: the refusal omits it). Lock held. */
uint8_t fedreci_eng_bench_reason(fedreci_coord *c, const char *reason);

/* ---- round.c: the round state machine ------------------------------------- */

/* Frees a round (NULL: nothing). */
void fedreci_eng_round_free(rstate *r);

/* Sets the timer thread's next deadline (0: none) and wakes it. Between
 * rounds a deadline before the backoff's end is moved to it. */
void fedreci_eng_set_deadline(fedreci_coord *c, uint64_t when);

/* The SecAgg+ parameters of a round of n clients. */
void fedreci_eng_derive_params(const fedreci_coord *c, uint32_t n, uint64_t round_id,
                               fedreci_secagg_params *p, fedreci_dp_round_params *dp);

/* Queues a CheckInReply with `status` (r: the round the client is selected
 * for, or NULL). */
void fedreci_eng_checkin_reply(fedreci_coord *c, cctx *x, uint64_t client, int status,
                               const rstate *r, outbox *ob);

/* Answers every held check-in with `status` and empties the waiting list. */
void fedreci_eng_release_waiting(fedreci_coord *c, int status, outbox *ob);

/* Encodes the RoundResult of the ended round r for client (*m NULL when
 * encoding fails). */
void fedreci_eng_round_result_msg(const fedreci_coord *c, const rstate *r, uint64_t client,
                                  nng_msg **m);

/* Ends the open round r as aborted with err and why. */
void fedreci_eng_round_abort(fedreci_coord *c, rstate *r, fedrec_err err, const char *why,
                             outbox *ob);

/* The reply to an accepted stage-s message once stage s has closed. */
nng_msg *fedreci_eng_stage_answer(fedreci_coord *c, rstate *r, uint64_t client, int s);
/* The consistency relay for client: the tags addressed to it and the
 * endorsement signatures of the ids in want[n_want] it asked for (a resend
 * of its Consistency after the relay). NULL when it cannot be made. */
nng_msg *fedreci_eng_tags_msg(rstate *r, uint64_t client, const uint64_t *want, size_t n_want);

/* Whether member i is expected to send the message of stage s. */
int fedreci_eng_expected_at(const rstate *r, uint32_t i, int s);

/* Closes the open stage of r: the next one opens (answering the held
 * requests), or the round commits or aborts. */
void fedreci_eng_close_stage(fedreci_coord *c, rstate *r, outbox *ob);

/* Whether a round is open. */
int fedreci_eng_round_active(const fedreci_coord *c);

/* Starts a round when no round is open and the check-in quorum waits. */
void fedreci_eng_maybe_select(fedreci_coord *c, outbox *ob);

/* The current deadline passed (timer thread). */
void fedreci_eng_on_deadline(fedreci_coord *c, outbox *ob);

/* Member i of the open round r will send nothing more: the open stage (and
 * each later one) stops waiting for it and closes as soon as every other
 * expected client has answered. */
void fedreci_eng_member_gone(fedreci_coord *c, rstate *r, uint32_t i, outbox *ob);

/* The binding of round r (proto/wire.h fedreci_wire_binding: its
 * parameters as the members were told them, the model's checksum) into
 * r->binding and r's SecAgg server. An aggregator computes it for its group
 * exactly as its members do from the master's SELECTED reply. */
void fedreci_eng_bind_round(const fedreci_coord *c, rstate *r);

/* Ends round r (committed or aborted): reports it, answers its held
 * requests, and starts the next round or the check-in window. */
void fedreci_eng_round_end(fedreci_coord *c, rstate *r, outbox *ob);

/* Commits an update: grad (n_items x k, the dequantized sum) and the total
 * weight take one optimizer step, on_model_committed persists it, the new
 * version is published and r->version_after set. FEDREC_ERR_ABORTED for a
 * zero weight (nothing applied). */
fedrec_err fedreci_eng_commit(fedreci_coord *c, rstate *r, const float *grad, uint32_t weight);

/* A published model version of y (n_items x k, copied), its Gram matrix
 * and checksum, sent with catalog cat (one more reference); NULL when out
 * of memory. */
pmodel *fedreci_eng_model_new(uint64_t version, uint32_t n_items, uint32_t k, const float *y,
                              pcat *cat);

/* ---- master.c: the master role ---------------------------------------------- */

/* Opens the aggregator link (copies the keys, REP socket). At create. */
FEDREC_NODISCARD fedrec_err fedreci_eng_master_open(fedreci_coord *c);

/* Listens on agg_listen_url and starts the link threads. At start. */
FEDREC_NODISCARD fedrec_err fedreci_eng_master_start(fedreci_coord *c);

/* Stops the link threads, closes the socket, frees. Safe when not opened. */
void fedreci_eng_master_close(fedreci_coord *c);

/* Whether a round may start with the waiting clients now: enough
 * aggregators are ready for the groups the cohort needs (or, when
 * window_closed, at least min_groups of them). */
int fedreci_eng_master_can_select(fedreci_coord *c, size_t n_waiting, int window_closed);

/* Plans round r (cohort drawn, no SecAgg server): its groups, each group's
 * parameters and aggregator; sends the assignments; sets the round's
 * deadline. Errors (logged): too few aggregators, out of memory. */
FEDREC_NODISCARD fedrec_err fedreci_eng_master_plan(fedreci_coord *c, rstate *r);

/* The longest an aggregator's group can legally run once it started: every
 * phase of a round (PH_*) held to its SecAgg stage's deadline (stage_ms, ms).
 * An aggregator still inside that time is finishing a legal round. */
uint64_t fedreci_eng_group_worst_ms(const uint32_t stage_ms[4]);

/* What an aggregator needs beyond its group's phases: the Assign's delivery,
 * starting its engine, the unmasking and the result's way back (ms). */
#define FEDRECI_MASTER_SLACK_MS 5000u

/* The master's default round deadline after its groups are assigned:
 * fedreci_eng_group_worst_ms + FEDRECI_MASTER_SLACK_MS (ms, saturating). A
 * group still running legally is never dropped by it. */
uint32_t fedreci_eng_master_round_ms(const uint32_t stage_ms[4]);

/* SIGHUP: the aggregator listener, when tls+, takes the certificate and key
 * files again (fedreci_eng_listener_tls); *n_reloaded counts it. No
 * listener or not tls+: nothing, FEDREC_OK. */
FEDREC_NODISCARD fedrec_err fedreci_eng_master_reload_tls(fedreci_coord *c, int *n_reloaded);

/* Undoes fedreci_eng_master_plan for a round that does not start (the
 * round-start hook refused it): its aggregators are free again, their
 * announced keys unused. */
void fedreci_eng_master_unplan(fedreci_coord *c, rstate *r);

/* The SELECTED round parameters of member `client` of master round r. */
void fedreci_eng_master_wire_round(const fedreci_coord *c, const rstate *r, uint64_t client,
                                   fedreci_wire_round *w);

/* The master round's deadline passed: pending groups fail; commit or abort. */
void fedreci_eng_master_deadline(fedreci_coord *c, rstate *r, outbox *ob);

/* Master round r ended (committed, aborted, or stopped): its groups are
 * decided, its aggregators free, held GroupResults answered. Lock held;
 * called by fedreci_eng_round_end. */
void fedreci_eng_master_round_ended(fedreci_coord *c, rstate *r);

/* Fills the group fields of a master round's stats. */
void fedreci_eng_master_stats(const rstate *r, fedreci_round_stats *st);

/* Frees a master round's groups. */
void fedreci_eng_master_round_free(struct mround *g);

/* The master's part of fedreci_coord_get_status. Lock held. */
void fedreci_eng_master_status(const fedreci_coord *c, fedreci_coord_status *st);

/* ---- requests.c: the request handlers ------------------------------------- */

/* Decodes and answers one request received on x (takes the lock itself;
 * frees msg). */
void fedreci_eng_handle(fedreci_coord *c, cctx *x, nng_msg *msg, outbox *ob);

/* ---- the cheating-coordinator test build ---------------------------------- */

#ifdef FEDREC_CHEAT
/* Defined only in tests/test_cheat.c, and called only from a copy of the
 * engine compiled with -DFEDREC_CHEAT into that test (tests/CMakeLists.txt
 * fedrec_coordinator_cheat); the shipped library and daemon are compiled
 * without it and contain neither call (ctest coordinator_has_no_cheat
 * checks the daemon's symbols). With the engine's lock held:
 * on_request sees every request that decoded (what a deviating coordinator
 * collects, for the test's reconstruction oracle); on_reply gets every
 * reply the engine queues and returns the one to send instead (the attack),
 * taking ownership of msg (it may return msg itself, or free it); it also
 * gets every ModelReply once encoded (in fedreci_eng_flush, without the
 * lock). any_binding: nonzero makes the SecAgg server take an advert with
 * any binding (a coordinator that sent one member another model or other
 * parameters, and lets that member's advert through to its neighbours). */
void fedreci_cheat_on_request(const fedreci_wire_env *env);
nng_msg *fedreci_cheat_on_reply(nng_msg *msg);
int fedreci_cheat_any_binding(void);
/* nonzero: the SecAgg server stores endorsement signatures without
 * verifying them (a coordinator that told members different survivor sets
 * and relays whatever they signed). */
int fedreci_cheat_unverified_endorsements(void);
/* 1 when the test build told `member` of round `round` another survivor
 * set: out (room for cap) gets the neighbours that set names survivors, the
 * order of the member's packed tags, which the engine then uses to read its
 * Consistency and to pack its relay; 0 to use the server's own. */
int fedreci_cheat_endorse_peers(uint64_t round, uint64_t member, uint64_t *out, size_t cap,
                                size_t *n);
/* The seed step retries announced to the clients (RoundParams.seed_retries
 * and the binding) instead of `configured`, which the SecAgg server keeps:
 * a coordinator that plans more retries than it tells. */
uint32_t fedreci_cheat_announced_retries(uint32_t configured);
/* 1 when the test build wants another graph seed although every member of
 * roster (m ids) revealed in `attempt`: *victim gets the member the engine
 * then claims missing (fedreci_secagg_server_seed_forget), forcing a retry. */
int fedreci_cheat_seed_grind(uint64_t round, uint32_t attempt, const uint64_t *roster, size_t m,
                             uint64_t *victim);
#endif

/* ---- transport.c: nng ----------------------------------------------------- */

/* Opens the REP socket, the pipe watch and the n_contexts contexts (not yet
 * receiving). */
FEDREC_NODISCARD fedrec_err fedreci_eng_transport_open(fedreci_coord *c);

/* Starts every listener, the timer thread, and receiving on every context. */
FEDREC_NODISCARD fedrec_err fedreci_eng_transport_start(fedreci_coord *c);

/* Gives the tls+ listener l (of url) the engine's certificate and key,
 * read from the files named at create (PEM text, the key wiped after use;
 * nng_tls_config_own_cert). The master's aggregator listener uses it too.
 * Errors: FEDREC_ERR_INVALID (no certificate or key configured),
 * FEDREC_ERR_IO (a file unreadable or over 1 MiB), FEDREC_ERR_TRANSPORT
 * (nng refuses them, naming url). */
FEDREC_NODISCARD fedrec_err fedreci_eng_listener_tls(fedreci_coord *c, nng_listener l,
                                                     const char *url);

/* Reads the certificate and key files again and gives them to every tls+
 * client listener (fedreci_coord_reload_tls); *n_reloaded counts them. */
FEDREC_NODISCARD fedrec_err fedreci_eng_transport_reload_tls(fedreci_coord *c, int *n_reloaded);

/* Stops the timer thread, closes the socket and frees the contexts. Safe on
 * a partly opened transport. */
void fedreci_eng_transport_close(fedreci_coord *c);

/* ---- dp.c: differential privacy (engine.h fedreci_coord_dp) ------------------ */

/* Plans the DP parameters from cfg.dp (no-op without a budget), raises
 * min_cohort to m_min and the receive cap to the DP masked input. Errors:
 * those of fedreci_dp_round_plan (naming the parameters), NOMEM. */
FEDREC_NODISCARD fedrec_err fedreci_eng_dp_setup(fedreci_coord *c);

/* The budget gate, before round rid's cohort is drawn: 1 when one more
 * release fits the budget; else 0, with the refusal logged and recorded
 * (c->dp.exhausted), the engine stopped and the waiting clients told
 * NO_ROUND. Always 1 without DP. */
int fedreci_eng_dp_gate(fedreci_coord *c, uint64_t rid, outbox *ob);

/* A DP round's SecAgg parameters (d = D + 1, scale 1, clip = the largest
 * client word) and its DP parameters (the per-round public rotation seed)
 * for a cohort of n. */
void fedreci_eng_dp_params(const fedreci_coord *c, uint32_t n, uint64_t rid,
                           fedreci_secagg_params *p, fedreci_dp_round_params *dp);

/* The masked-input stage of DP round r closed: FEDREC_ERR_ABORTED with
 * fewer than m_min survivors (nothing unmasked, nothing spent); else the
 * release is spent (composed into the accountant). */
FEDREC_NODISCARD fedrec_err fedreci_eng_dp_charge(fedreci_coord *c, rstate *r);

/* The DP item step: decodes the unmasked sum (c->sum) and writes the new
 * item factors into y (n_items x k). Errors: INVALID (a sum the noise
 * cannot explain), NOMEM. */
FEDREC_NODISCARD fedrec_err fedreci_eng_dp_commit(fedreci_coord *c, rstate *r, float *y);

/* Frees the DP state. */
void fedreci_eng_dp_free(fedreci_coord *c);

#endif /* FEDREC_COORDINATOR_ENGINE_INTERNAL_H */

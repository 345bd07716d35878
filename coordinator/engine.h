/*
 * coordinator/engine: the coordinator's round engine over nng. The daemon
 * (fedrec-coordinator) and the simulator (fedrec-sim) both drive it; it owns
 * the sockets, the check-in registry, cohort selection, the SecAgg+ server
 * (core/secagg, Bonawitz et al. CCS 2017; Bell et al. CCS 2020) and the
 * optimizer step on the item factors (core/mf). Persistence, configuration
 * files and HTTP status live in the daemon on top of the hooks below.
 *
 * Transport: one nng REP0 socket listening on one or more URLs (tcp://,
 * ipc://, inproc://, tls+tcp:// with a certificate and key file), served by
 * `n_contexts` nng_ctx contexts, each driven by an nng_aio callback: no thread
 * per client. A request that must wait for the next stage (long poll) keeps
 * its context parked until the stage opens; when nearly every context is
 * parked, further waiting requests are answered with RetryAfter instead. One
 * extra thread sleeps on a condition variable until the current deadline
 * (check-in window or stage deadline); nothing polls.
 *
 * The message flow is in docs/protocol.md. In short, for a selected client:
 *   CheckIn -> (held until the cohort is selected) CheckInReply SELECTED
 *   [ModelRequest -> ModelReply]
 *   AdvertiseKeys -> (held until stage 0 closes) Roster
 *   ShareKeys     -> (held until stage 1 closes) ShareRelay
 *   MaskedInput   -> (held until stage 2 closes) UnmaskRequest
 *   Unmask        -> (held until the round ends)  RoundResult
 * Each request is idempotent on (round, client, stage): a resend is answered
 * again (or re-parked) and counted once. A message for another round or a
 * stage that is not open is refused with an Error reply, and a message for a
 * stage that closed before the client's message was accepted counts the client
 * as dropped at that stage. A stage closes at its deadline or as soon as every
 * client still expected has answered. A client whose connection (nng pipe)
 * closes is no longer expected: the connection its check-in came over is
 * watched (NNG_PIPE_EV_REM_POST), and when it goes a held check-in is
 * released and a cohort member counts as dropped at once, without waiting for
 * the deadline (a REP reply can only go back over the request's own pipe, so
 * such a client could not receive its answer anyway). A client that
 * reconnects and speaks again before the stage it was lost in closes is
 * expected again (a phone changing networks); a closed stage stays closed.
 *
 * Rounds: check-ins of opted-in clients are held; as soon as `checkin_quorum`
 * clients wait (or, at the end of `checkin_window_ms` after the first one,
 * when at least `min_cohort` wait) a cohort of min(cohort_size, waiting)
 * clients is drawn with a generator seeded by (seed, round id) from the
 * waiting clients sorted by id, so the same inputs give the same cohort. With
 * fewer than min_cohort waiting no round runs: the waiting clients are told to
 * retry. After the unmask stage the ring sum is read back
 * (fedreci_secagg_dequantize), the optimizer takes one step with weight = the
 * survivors' total weight, the model version is bumped, on_model_committed
 * persists it, and it is published.
 *
 * Thread-safety: every function may be called from any thread, except that
 * fedreci_coord_destroy must not race with other calls on the same engine and
 * no engine function may be called from inside a hook. Hooks run on nng or
 * engine threads with the engine's lock held: keep them short.
 *
 * Errors: functions return a fedrec_err and set fedrec_errmsg();
 * FEDREC_ERR_INVALID (configuration), FEDREC_ERR_TRANSPORT (nng failures,
 * with the nng error text), FEDREC_ERR_IO (TLS files), FEDREC_ERR_NOMEM.
 * Logging: one line per event (core/log.h) with the round id; never secrets.
 */
#ifndef FEDREC_COORDINATOR_ENGINE_H
#define FEDREC_COORDINATOR_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "core/dp/accountant.h"
#include "core/mf/mf.h"
#include "core/secagg/secagg.h"
#include "fedrec/fedrec.h"

typedef struct fedreci_coord fedreci_coord;

/* Differential privacy (docs/privacy.md, core/dp/round.h). epsilon 0: none,
 * and the engine runs today's gradient rounds. With epsilon > 0 every round
 * is a DP-ALS release: each client sends its bounded ALS contribution,
 * rotated, rounded and noised with Skellam noise for min_survivors
 * survivors (RoundParams.dp); the engine aborts a round with fewer
 * survivors before anything is unmasked (nothing spent), unmasks only the
 * noised sum, decodes it and takes the ALS item step (with shrinkage unless
 * no_shrink). The noise is calibrated at create so that `rounds` releases on
 * top of `spent` cost epsilon at delta. The budget gate: before a round
 * starts (before its cohort is drawn) the accountant composes one more
 * release; if epsilon would exceed the budget the round is refused, the
 * engine stops running rounds (as after max_rounds; the status says
 * dp_exhausted and dp_refusal what was spent) and logs why. A round counts
 * as spent once its masked-input stage closed with enough survivors (the
 * unmask stage starts), whether or not it completes. */
typedef struct fedreci_coord_dp {
    double epsilon, delta;       /* the budget; epsilon 0: no differential privacy */
    uint32_t rounds;             /* releases the noise is calibrated for, >= 1 */
    double min_survivors;        /* fraction of cohort_size, (0, 1]; m_min = ceil(it *
                                    cohort_size), and min_cohort is raised to m_min */
    double row_bound;            /* R (core/dp/dpals.h); 0: 3 */
    double gram_weight;          /* g; 0: 1 */
    double gram_floor;           /* phi in [0, 1]: the item step floors the Gram sum's
                                    eigenvalues at max(its noise's, phi trace)
                                    (core/dp/dpals.h) */
    double lambda;               /* ridge of the x_u solve and the item step; 0: 0.1 */
    int no_shrink;               /* 1: no shrinkage of noisy item rows */
    fedreci_dp_accountant spent; /* the curve already spent (restored); init'ed or zeroed */
    uint64_t spent_rounds;       /* releases in it */
} fedreci_coord_dp;

typedef struct fedreci_coord_config {
    const char *const *listen_urls; /* n_listen URLs; the engine copies nothing it
                                       does not need after create */
    size_t n_listen;
    const char *tls_cert_file; /* PEM certificate chain, for tls+tcp:// URLs */
    const char *tls_key_file;  /* PEM private key, for tls+tcp:// URLs */
    uint32_t n_contexts;       /* nng contexts = requests served or held at once; default
                                  256. 1/16 (at least 4) stay free for quick replies; to
                                  hold every member's long poll without RetryAfter churn
                                  use >= cohort_size * 16/15 + 5. checkin_quorum must fit
                                  (FEDREC_ERR_INVALID otherwise). */

    uint32_t cohort_size;       /* clients per round (n); >= 2 */
    uint32_t min_cohort;        /* no round below this many; default 2, >= 2 */
    uint32_t checkin_quorum;    /* select as soon as this many wait; default cohort_size */
    uint32_t checkin_window_ms; /* else select this long after the first check-in
                                   (with >= min_cohort); default 2000 */
    uint32_t neighbors;         /* SecAgg+ k; 0 or >= n - 1: classic SecAgg (complete graph) */
    uint32_t threshold;         /* Shamir t; 0: fedreci_coord_default_threshold(k).
                                   Clamped to (k/2, k]. */
    uint32_t seed_retries;      /* graph seed step retries per round (RoundParams.seed_retries,
                                   at most FEDRECI_SECAGG_SEED_RETRIES_CAP); default
                                   FEDRECI_SECAGG_SEED_RETRIES_DEFAULT */
    double clip;                /* input clip bound, > 0; default 16 */
    double scale;               /* quantization scale; 0: 2^30 / (n * clip) */
    uint32_t stage_ms[4];       /* deadlines of SecAgg stages 0..3; default 10000 each */
    uint32_t retry_after_ms;    /* what NOT_SELECTED / RetryAfter replies suggest; default 1000 */
    /* Backoff after aborts: once `backoff_after` rounds in a row have
     * aborted, the next round starts no earlier than backoff_ms after the
     * last one ended, doubling with each further abort up to backoff_max_ms;
     * check-ins are held meanwhile. A completed round ends the streak.
     * backoff_after 0 (the default): no backoff. */
    uint32_t backoff_after;
    uint32_t backoff_ms;         /* first wait; default 0 */
    uint32_t backoff_max_ms;     /* cap, >= backoff_ms; default 0 */
    uint32_t send_timeout_ms;    /* reply send timeout; default 10000 */
    uint32_t max_msgs_per_round; /* per client: stage messages per round, and full model
                                    downloads per model version; beyond: Error BUSY
                                    (model requests also need a prior check-in:
                                    NOT_FOUND otherwise); default 64 */
    size_t recv_max_bytes;       /* receive cap; 0: fedreci_wire_cap for this model */
    uint64_t seed;               /* cohort selection and graph seeds (public values) */
    int reshuffle;               /* cohort selection by random reshuffling: a client is
                                    drawn at most once per epoch (the waiting clients not
                                    yet drawn in the epoch are drawn first; when fewer
                                    than a cohort of them wait, a new epoch starts and
                                    the rest of the cohort comes from the others). The
                                    epoch is kept in memory (a restart starts a new
                                    one). 0: each cohort drawn uniformly from the
                                    waiting clients. Not with dp (its accountant
                                    assumes independent sampling: FEDREC_ERR_INVALID) */
    uint64_t first_round_id;     /* id of the first round run; default 1 */
    uint32_t max_rounds;         /* stop after this many rounds (completed or aborted);
                                    0: run until fedreci_coord_stop */
    fedreci_opt_params opt;      /* the server optimizer (core/mf); kind FEDRECI_OPT_ALS:
                                    rounds ask for the x_u x_u^T block beside the
                                    gradient (RoundParams.step 1, d = n_items k +
                                    k (k + 1) / 2 + 1) and the step is
                                    fedreci_optimizer_step_xx; not with dp or the
                                    master role (FEDREC_ERR_INVALID) */
    double x_bound;              /* the ALS step's bound on |x_u| in the block
                                    (RoundParams.x_bound); default 4 */
    fedreci_coord_dp dp;         /* differential privacy (above); zeroed: none */

    /* Resource limits (docs/operations.md "Limits"; 0 = no limit, the
     * default of each). A connection (nng pipe) is refused and closed at
     * once when it would exceed max_connections open connections, or
     * max_conns_per_addr from one remote address (an IPv4 address or an
     * IPv6 /64; ipc:// and inproc:// connections count toward the total
     * only). A check-in under an id the registry does not hold takes a
     * token from its address's bucket (new_ids_addr_burst tokens, refilled
     * at new_ids_addr_rate per second) and from the global bucket
     * (new_ids_burst, new_ids_rate); without one it is refused with
     * FEDREC_ERR_BUSY and nothing is registered. The registry holds at most
     * max_clients ids: beyond, the ids checked in least recently (never
     * those waiting, in the current or previous cohort, or excluded) are
     * forgotten, 1/16 of the bound at a time; a forgotten id that comes
     * back is a new id (its bench strikes start again at 0: only ids not
     * benched now can be forgotten). */
    uint32_t max_connections;
    uint32_t max_conns_per_addr;
    uint32_t new_ids_addr_burst;
    double new_ids_addr_rate;
    uint32_t new_ids_burst;
    double new_ids_rate;
    uint32_t max_clients;
    /* Benches (docs/protocol.md "Hostile members at the seed step"): a
     * member that withheld a step of a round that aborted for that is not
     * drawn into the next 2^(strikes - 1) rounds, at most bench_max_rounds
     * (default FEDRECI_BENCH_MAX_ROUNDS_DEFAULT); 0: nobody is benched. */
    uint32_t bench_max_rounds;

    /* SecAgg groups (issue 20; docs/protocol.md "Master and aggregators").
     * role FEDRECI_ROLE_SINGLE (0, the default): one engine runs every round.
     * FEDRECI_ROLE_MASTER: check-ins, cohort selection, the model and its
     * commits stay here; each round's cohort is split into groups
     * (core/secagg/groups.h) of about group_size members, never fewer than
     * min_cohort, one group per ready aggregator; members are told their
     * aggregator's URL in the SELECTED reply; the round commits from the
     * groups that finish when at least min_groups do (a failed group is
     * dropped whole). Aggregators dial agg_listen_url (a REP socket of its
     * own; tls+tcp:// with the same certificate and key) and must sign with
     * one of the n_agg_keys Ed25519 keys (32 bytes each, copied); every
     * reply is signed with agg_master_sk (coordinator/link.h), which the
     * aggregators verify with its public half.
     * FEDRECI_ROLE_AGGREGATOR: no check-ins and no cohort selection; rounds
     * are started by fedreci_coord_run_group for the members a master
     * assigned, and end with fedreci_coord_group_verdict. */
    int role;
    const char *agg_listen_url;    /* master */
    const uint8_t (*agg_keys)[32]; /* master: allowed aggregator keys */
    size_t n_agg_keys;             /* master: >= 1 */
    const uint8_t *agg_master_sk;  /* master: 64 bytes, its Ed25519 identity key (libsodium
                                      layout; copied into secure memory) */
    uint32_t group_size;           /* master: target members per group (0: cohort_size) */
    uint32_t min_groups;           /* master: groups that must finish (0: 1) */
    uint32_t round_ms;             /* master: a round's deadline after its groups are
                                      assigned; 0: an aggregator's longest legal group
                                      (every phase held to its stage deadline: stage 0
                                      twice, 1 three times, 2 once, 3 twice) + 5 s. A
                                      shorter value is refused (an aggregator still
                                      finishing a legal round would be dropped) */
    /* Optional attestation verifier (docs/threat-model.md "Sybils"; NULL:
     * none, every identity key is taken on first use). When set, a check-in
     * whose identity the engine has not yet seen attested is accepted only
     * when attest() returns FEDREC_OK for its id, its identity key and the
     * token the client attached to the check-in (token NULL and token_len 0
     * when it attached none; at most FEDRECI_WIRE_ATTEST_MAX bytes). Any
     * other return refuses the check-in with FEDREC_ERR_SIGNATURE and the
     * text "identity key not attested: " + why (why_cap bytes, NUL-
     * terminated by attest), and nothing is registered; a new id has taken
     * its token from the new-id buckets first, so a flood of unattested ids
     * is rate-limited before it reaches the verifier. Once accepted, the id
     * stays attested until the engine is destroyed (a restarted daemon asks
     * again at the next check-in). Called on nng threads with the engine's
     * lock held: it must not block (verify a signature from an attestation
     * service, e.g. Play Integrity or App Attest, whose keys it already
     * holds; no network call). attest_arg is passed through. */
    fedrec_err (*attest)(void *arg, uint64_t client_id, const uint8_t identity_pk[32],
                         const uint8_t *token, size_t token_len, char *why, size_t why_cap);
    void *attest_arg;
} fedreci_coord_config;

enum { FEDRECI_ROLE_SINGLE = 0, FEDRECI_ROLE_MASTER = 1, FEDRECI_ROLE_AGGREGATOR = 2 };

#define FEDRECI_BENCH_MAX_ROUNDS_DEFAULT 1024u
#define FEDRECI_BENCH_REASONS 16    /* distinct bench reasons kept in memory */
#define FEDRECI_BENCH_REASON_MAX 96 /* bytes of a bench reason, NUL included */

/* Fills the defaults documented above (and zeroes everything else). */
void fedreci_coord_config_default(fedreci_coord_config *cfg);

/* The Shamir threshold a round with k neighbours gets when none is
 * configured: ceil(2k/3), and at least k/2 + 1, at most k (k = 1: 1). Two
 * thirds is the clients' default floor (FEDREC_FLOOR_MIN_THRESHOLD_FRACTION,
 * docs/threat-model.md): a coordinator that sends different neighbours
 * different unmask requests needs c >= 2t - k colluding neighbours of a
 * client to rebuild both of its secrets, k/3 at t = 2k/3 (1 at t = k/2 + 1
 * for odd k). This function can't fail. */
uint32_t fedreci_coord_default_threshold(uint32_t k);

/* The model the engine starts from (copied at create). */
typedef struct fedreci_coord_model {
    uint64_t version; /* the last committed version; >= 1 */
    uint32_t n_items;
    uint32_t k;                    /* factors */
    const float *item_factors;     /* n_items x k row-major; NULL: fedreci_mf_init(seed,
                                      std 0.01) */
    const char *const *item_codes; /* n_items catalog codes, or NULL */
    const uint32_t *retired_rows;  /* rows of retired products (coordinator/catalog.h),
                                      strictly ascending, < n_items; sent with every model
                                      download so clients stop recommending them */
    size_t n_retired;
} fedreci_coord_model;

/* What one round did, for logs, the daemon's round log and the simulator's
 * oracle. Pointers are valid only during the on_round_done call. */
typedef struct fedreci_round_stats {
    uint64_t round_id;
    int completed;                /* 1: model updated; 0: aborted */
    fedrec_err abort_err;         /* why it aborted (FEDREC_OK when completed) */
    const char *abort_reason;     /* text, "" when completed */
    uint32_t cohort;              /* n invited */
    uint32_t advertised;          /* sent stage 0 in time */
    uint32_t shared;              /* sent stage 1 in time */
    uint32_t survivors;           /* sent a masked input in time */
    uint32_t unmasked;            /* answered the unmask request in time */
    uint32_t dropped[4];          /* lost at stage s: expected there but silent */
    double stage_ms[4];           /* wall time of each stage (0 if not reached) */
    uint64_t bytes_in, bytes_out; /* on the socket during the round (all clients) */
    uint64_t model_version;       /* after the round */
    double total_weight;          /* the survivors' total weight */
    const fedreci_secagg_params *params;
    const uint64_t *cohort_ids;   /* cohort, sorted */
    const uint64_t *survivor_ids; /* survivors, sorted */
    const uint32_t *sum;          /* the raw ring sum, params->d words; NULL if aborted */
    /* Clients caught cheating in this round (sorted; n_culprits may be
     * nonzero in a completed round: e.g. a wrong reveal whose secrets the
     * other holders rebuilt). Each is excluded from later rounds
     * (on_client_excluded). See docs/threat-model.md. */
    const uint64_t *culprit_ids;
    uint32_t n_culprits;
    /* Members that did not reveal their graph seed contribution in the
     * last attempt of the seed step when that aborted the round (no retry
     * left; sorted): each is benched, not drawn into the next 2^(strikes - 1)
     * rounds (docs/protocol.md "The graph seed"). NULL / 0 otherwise. */
    const uint64_t *withheld_ids;
    uint32_t n_withheld;
    /* withheld_step 1: withheld_ids are instead the survivors that sent no
     * endorsement of the survivor set when that aborted the round at the
     * consistency step; 2: the survivors counted on to reveal that sent no
     * reveals when the unmask stage aborted for want of shares (benched the
     * same way). */
    int withheld_step;
    /* A master round: the step of each withheld_ids entry (0 seed, 1
     * consistency, 2 unmask: its groups may have aborted at different
     * steps); NULL: withheld_step for all. */
    const uint8_t *withheld_steps;
    /* The graph seed step's retries (docs/protocol.md "Honest dropouts at the
     * seed step"): seed_attempts is 1 + the retries run; seed_dropped_ids
     * (sorted, n_seed_dropped) the members left out because they did not
     * reveal in an attempt that was retried. Nobody is benched for that;
     * when the round aborts at the seed step, withheld_ids names (and the
     * engine benches) the members that missed its last attempt. */
    uint32_t seed_attempts;
    const uint64_t *seed_dropped_ids;
    uint32_t n_seed_dropped;
    /* Differential privacy: dp 1 when the engine runs with it. dp_charged 1
     * when this round was spent (its unmask stage started); dp_event is the
     * release, dp_eps_round its epsilon alone, dp_eps_cumulative the epsilon
     * spent after this round (the same as before it when not charged), at
     * the budget's delta. */
    int dp, dp_charged;
    fedreci_dp_event dp_event;
    double dp_eps_round, dp_eps_cumulative;
    /* SecAgg groups (master role; 0 / NULL otherwise): the groups assigned,
     * the groups whose sums were counted, and the master sum (params->d
     * int64 words, the last the total weight; NULL if aborted). A failed
     * group's members count as dropped at stage 0 unless its aggregator
     * reported where they dropped. In a master round, params is group 0's
     * (all groups share clip, scale and d) and sum, survivor_ids are NULL. */
    uint32_t groups;
    uint32_t groups_done;
    const int64_t *sum64;
} fedreci_round_stats;

/* What on_round_start reports: a round begins. Pointers are valid only
 * during the call. */
typedef struct fedreci_round_begin {
    uint64_t round_id;
    uint32_t cohort;        /* members drawn (n) */
    uint32_t waiting;       /* clients that were waiting, the cohort included */
    uint64_t model_version; /* the version the round trains */
    const fedreci_secagg_params *params;
} fedreci_round_begin;

/* The round lifecycle, in this order for every round: on_round_start once;
 * on_stage_closed for each stage that closed without ending the round
 * (stage 3 before its model is committed); on_model_committed when it
 * completes; on_round_done once. Every hook may be NULL. */
typedef struct fedreci_coord_hooks {
    void *arg;
    /* After every round, completed or aborted. */
    void (*on_round_done)(void *arg, const fedreci_round_stats *st);
    /* A new model version, before it is served: persist it atomically. y is
     * n_items x k. A non-OK return discards the step (the previous version
     * stays current; the optimizer's moments keep the step) and the round is
     * reported aborted. */
    fedrec_err (*on_model_committed)(void *arg, uint64_t round_id, uint64_t version, const float *y,
                                     uint32_t n_items, uint32_t k);
    /* A client checked in for the first time or changed its opt-in flag. */
    void (*on_client_seen)(void *arg, uint64_t client_id, const uint8_t identity_pk[32],
                           int opted_in);
    /* A client was named a culprit in round_id and is refused from now on
     * (called before on_round_done of that round; may be NULL). */
    void (*on_client_excluded)(void *arg, uint64_t client_id, uint64_t round_id);
    /* A client withheld a step of round_id, which aborted for that, and is
     * benched: strikes is how often that happened, and it is not drawn
     * into rounds up to benched_until; reason says what it withheld
     * (e.g. "withheld its graph seed contribution"). Called before
     * on_round_done of that round (may be NULL); the daemon persists it
     * and restores it with fedreci_coord_bench. */
    void (*on_client_benched)(void *arg, uint64_t client_id, uint64_t round_id, uint32_t strikes,
                              uint64_t benched_until, const char *reason);
    /* A round begins: its cohort is drawn and no member has been told yet,
     * so no client knows the round id before this returns (a daemon logs
     * the round as running here: a crash after it cannot reuse the id). A
     * non-OK return cancels the round before it starts: the waiting
     * clients are told NOT_SELECTED, the id stays unused, no other hook of
     * the round runs. */
    fedrec_err (*on_round_start)(void *arg, const fedreci_round_begin *b);
    /* Stage `stage` (0..3) of round_id closed in time with n_in of its
     * n_expected messages after ms milliseconds, and the next stage opens
     * (for stage 3: the sum is unmasked and about to be committed). Not
     * called for a stage whose closing aborted the round. */
    void (*on_stage_closed)(void *arg, uint64_t round_id, int stage, uint32_t n_in,
                            uint32_t n_expected, double ms);
    /* Differential privacy: round_id's release is about to be spent (its
     * masked-input stage closed with enough survivors; nothing is unmasked
     * yet): persist it durably. ev is the release, eps_round its epsilon
     * alone and eps_cumulative the epsilon spent with it, at delta. A non-OK
     * return aborts the round before anything is unmasked and nothing is
     * spent. May be NULL. */
    fedrec_err (*on_dp_spent)(void *arg, uint64_t round_id, const fedreci_dp_event *ev,
                              double eps_round, double eps_cumulative, double delta);
    /* Aggregator role: the group's unmasked sum passed its check (st->sum,
     * st->survivors, the stage counts); the round now waits for
     * fedreci_coord_group_verdict (its members' unmask requests stay held).
     * Copy what you keep. May be NULL. */
    void (*on_group_sum)(void *arg, const fedreci_round_stats *st);
} fedreci_coord_hooks;

typedef struct fedreci_coord_status {
    uint64_t round_id; /* current or last round (0: none yet) */
    int stage;         /* -1 between rounds, 0..3 SecAgg stage */
    uint64_t model_version;
    uint64_t rounds_completed;
    uint64_t rounds_aborted;
    uint32_t clients_known;     /* registry size */
    uint32_t clients_connected; /* known clients whose last check-in came over a
                                   connection that is still open */
    uint32_t clients_waiting;   /* check-ins held for the next cohort */
    uint32_t abort_streak;      /* rounds aborted in a row (0 after a completed round) */
    uint64_t backoff_ms_left;   /* ms until the next round may start (0: no backoff) */
    uint64_t bytes_in, bytes_out;
    int stopped;
    /* resource limits (fedreci_coord_config) */
    uint32_t connections;            /* open connections */
    uint64_t refused_per_address;    /* connections refused: max_conns_per_addr */
    uint64_t refused_total;          /* connections refused: max_connections */
    uint64_t new_ids_refused_addr;   /* new-id check-ins refused: the address's bucket */
    uint64_t new_ids_refused;        /* new-id check-ins refused: the global bucket */
    uint64_t clients_evicted;        /* ids forgotten by the max_clients bound */
    uint32_t clients_benched;        /* clients benched now (not drawn into the next round) */
    uint64_t benches;                /* benches handed out since create (restored ones not
                                        counted; a client benched twice counts twice) */
    uint64_t checkins_refused_stale; /* check-ins outside the clock window, made before the
                                        start, or not newer than the client's last (replays) */
    /* differential privacy (dp 0: none) */
    int dp;
    double dp_epsilon, dp_delta; /* the budget */
    double dp_spent;             /* epsilon spent so far at dp_delta */
    double dp_eps_round;         /* epsilon of one release alone */
    uint64_t dp_rounds;          /* releases spent (restored ones included) */
    uint32_t dp_min_survivors;   /* m_min */
    double dp_noise_std;         /* noise std per coordinate of the sum, input units, at
                                    m_min survivors */
    int dp_exhausted;            /* 1: the gate refused a round; no more rounds */
    char dp_refusal[240];        /* what the gate said ("" before) */
    /* master role */
    uint32_t aggregators_ready; /* polling, no group assigned */
    uint32_t aggregators_known; /* ever seen with an allowed key */
    uint32_t groups;            /* groups of the current or last round */
    uint32_t groups_done;       /* of those, counted */
    uint32_t groups_failed;     /* of those, dropped */
    uint64_t agg_refused;       /* link requests refused (bad signature, unknown key,
                                   stale sequence number, wrong group) */
} fedreci_coord_status;

/* One aggregator as the master sees it (fedreci_coord_aggregators). */
typedef struct fedreci_coord_agg_status {
    char key[17];            /* first 8 bytes of its identity key, hex */
    char url[256];           /* where its clients reach it */
    int state;               /* 0 gone (its link closed), 1 ready, 2 running a group */
    uint64_t last_round;     /* the last round it was assigned a group in (0: none) */
    uint32_t last_group;     /* its group index in that round */
    uint32_t last_members;   /* the group's size */
    uint32_t last_survivors; /* survivors it reported (0 until it reports) */
    uint64_t groups_run;     /* groups assigned to it */
    uint64_t groups_counted; /* of those, counted in a committed sum */
    uint64_t groups_failed;  /* of those, dropped (aborted, late, link lost, bad sum) */
} fedreci_coord_agg_status;

/* Creates the engine (validates cfg, copies the start model, opens the REP
 * socket and its contexts) but does not listen yet. hooks may be NULL.
 * Errors: FEDREC_ERR_INVALID, FEDREC_ERR_NOMEM, FEDREC_ERR_TRANSPORT. */
FEDREC_NODISCARD fedrec_err fedreci_coord_create(fedreci_coord **out,
                                                 const fedreci_coord_config *cfg,
                                                 const fedreci_coord_hooks *hooks,
                                                 const fedreci_coord_model *start);

/* Pre-loads a registry entry (the daemon restores its clients from SQLite).
 * A later check-in with another identity key for this id is refused.
 * Errors: FEDREC_ERR_NOMEM. */
FEDREC_NODISCARD fedrec_err fedreci_coord_register(fedreci_coord *c, uint64_t client_id,
                                                   const uint8_t identity_pk[32], int opted_in);

/* Marks a registered client excluded since round_id (restored from the
 * database): its check-ins are refused (FEDREC_ERR_NOT_SELECTED) and it is
 * never drawn into a cohort. Errors: FEDREC_ERR_NOT_FOUND (not registered). */
FEDREC_NODISCARD fedrec_err fedreci_coord_exclude(fedreci_coord *c, uint64_t client_id,
                                                  uint64_t round_id);

/* Restores a registered client's bench (from the database): strikes so far
 * (saturated at 255), the last round it is not drawn into (at or below the
 * rounds already run: no effect but the strikes) and the reason it was
 * given (NULL or "": none). Errors: FEDREC_ERR_NOT_FOUND (not registered). */
FEDREC_NODISCARD fedrec_err fedreci_coord_bench(fedreci_coord *c, uint64_t client_id,
                                                uint32_t strikes, uint64_t benched_until,
                                                const char *reason);

/* Starts listening on every URL and serving. Errors: FEDREC_ERR_TRANSPORT
 * (bad URL, address in use), FEDREC_ERR_IO (TLS files). */
FEDREC_NODISCARD fedrec_err fedreci_coord_start(fedreci_coord *c);

/* Holds rounds for a change between them (the daemon's catalog reload): no
 * round starts until fedreci_coord_release (check-ins wait, as during a
 * backoff); returns once no round is open, the current one having ended, or
 * after timeout_ms (< 0: no limit) with FEDREC_ERR_TIMEOUT, still held.
 * Rounds held this way are not aborted. */
FEDREC_NODISCARD fedrec_err fedreci_coord_hold(fedreci_coord *c, int timeout_ms);

/* Ends a hold: a round starts if enough clients wait. No hold: nothing. */
void fedreci_coord_release(fedreci_coord *c);

/* Serves model m from now on, in place of the current one (copied; its
 * item codes and retired rows too), while held with no round open: a
 * catalog change committed by the caller. m must keep k, have at least as
 * many rows and a higher version; the optimizer keeps the moments of the
 * old rows and starts the new ones at zero. Connections stay open; clients
 * download the new version at their next model request. Errors:
 * FEDREC_ERR_BUSY (not held, or a round open), FEDREC_ERR_INVALID,
 * FEDREC_ERR_NOMEM (the current model stays). */
FEDREC_NODISCARD fedrec_err fedreci_coord_set_model(fedreci_coord *c, const fedreci_coord_model *m);

/* Reads the TLS certificate and key files named at create again and gives
 * them to every tls+ listener (a master's aggregator listener too):
 * connections accepted from now on present the new certificate; open
 * connections are kept. Logs "TLS certificate FILE reloaded on N
 * listener(s)". Errors: FEDREC_ERR_IO (a file
 * cannot be read; nothing changed on that listener), FEDREC_ERR_TRANSPORT
 * (nng refused the certificate or key), FEDREC_ERR_INVALID (not started). */
FEDREC_NODISCARD fedrec_err fedreci_coord_reload_tls(fedreci_coord *c);

/* Blocks until max_rounds rounds have run or fedreci_coord_stop was called
 * (FEDREC_OK), or timeout_ms passed (FEDREC_ERR_TIMEOUT; < 0 waits forever). */
FEDREC_NODISCARD fedrec_err fedreci_coord_wait(fedreci_coord *c, int timeout_ms);

/* Stops accepting new rounds, aborts the current round (held requests are
 * answered: RoundResult aborted, check-ins NO_ROUND) and wakes waiters. The
 * sockets stay open until destroy. Idempotent. */
void fedreci_coord_stop(fedreci_coord *c);

/* Stops, closes the socket, waits for every callback to finish, frees. NULL
 * is a no-op. */
void fedreci_coord_destroy(fedreci_coord *c);

void fedreci_coord_get_status(fedreci_coord *c, fedreci_coord_status *st);

/* Copies the current model (n_items x k floats into y, which has room for
 * cap floats) and its version. Errors: FEDREC_ERR_RANGE (cap too small). */
FEDREC_NODISCARD fedrec_err fedreci_coord_get_model(fedreci_coord *c, float *y, size_t cap,
                                                    uint64_t *version);

/* Bytes received from a client over its lifetime: update = SecAgg stage
 * messages (advertise, share keys, masked input, unmask), total = every
 * message. Errors: FEDREC_ERR_NOT_FOUND (unknown client). */
FEDREC_NODISCARD fedrec_err fedreci_coord_client_bytes(fedreci_coord *c, uint64_t client_id,
                                                       uint64_t *update, uint64_t *total);

/* Simulator only: declares that a member of the current round will send
 * nothing more (the simulator's dropout), so the open and later stages close
 * as soon as every other expected client has answered instead of waiting for
 * the deadline. The client still counts as dropped where it fell silent.
 * Unknown ids and ids outside the current round are ignored. A real
 * deployment never calls this: there, deadlines and closed connections
 * decide. */
void fedreci_coord_client_gone(fedreci_coord *c, uint64_t client_id);

/* ---- SecAgg groups (issue 20) ------------------------------------------------ */

/* Master role: the aggregators seen so far (at most cap written to out;
 * returns how many there are). */
size_t fedreci_coord_aggregators(fedreci_coord *c, fedreci_coord_agg_status *out, size_t cap);

/* Master role: the TCP port the aggregator listener is bound to (0: not
 * TCP or not started). */
int fedreci_coord_agg_port(const fedreci_coord *c);

/* Aggregator role: one group to run, as the master assigned it. */
typedef struct fedreci_coord_group {
    fedreci_secagg_params p;  /* the group's parameters; p.n members */
    const uint64_t *ids;      /* p.n member ids, strictly ascending */
    const uint8_t (*pks)[32]; /* their Ed25519 identity keys */
    uint64_t model_version;   /* the version members train on (publish_version first) */
    uint32_t stage_ms[4];     /* the group's stage deadlines */
    const uint8_t *coord_sk;  /* 32 bytes: the X25519 key whose public half the
                                 master put in the members' round parameters */
} fedreci_coord_group;

/* Aggregator role: starts a round for group g now (stage 0 open; members
 * are registered with their keys). Errors: FEDREC_ERR_INVALID (not an
 * aggregator, a round still open, parameters that fail
 * fedreci_secagg_params_check, d not the model's, model_version not the
 * published one, more members than cohort_size), FEDREC_ERR_NOMEM. */
FEDREC_NODISCARD fedrec_err fedreci_coord_run_group(fedreci_coord *c, const fedreci_coord_group *g);

/* Aggregator role: publishes model version `version` (n_items x k floats
 * y, the engine's shape) as the one served to members. Errors:
 * FEDREC_ERR_INVALID (version 0), FEDREC_ERR_NOMEM. */
FEDREC_NODISCARD fedrec_err fedreci_coord_publish_version(fedreci_coord *c, uint64_t version,
                                                          const float *y);

/* Aggregator role: the master's decision on round round_id: its held unmask
 * requests are answered RoundResult(completed, model_version, reason) and
 * on_round_done reports it. Ignored unless that round waits for it. */
void fedreci_coord_group_verdict(fedreci_coord *c, uint64_t round_id, int completed,
                                 uint64_t model_version, const char *reason);

/* The TCP port listener i (in cfg->listen_urls order) is bound to, after a
 * successful fedreci_coord_start: with a URL such as tcp://127.0.0.1:0 the
 * kernel picks a free port and this tells which. 0 for ipc://, inproc://, an
 * index out of range, or before start. This function can't fail. */
int fedreci_coord_port(const fedreci_coord *c, size_t i);

#endif /* FEDREC_COORDINATOR_ENGINE_H */

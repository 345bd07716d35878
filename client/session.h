/*
 * client/session: the client side of one fedrec round over nng, driving a
 * core/secagg client state machine (SecAgg+, Bonawitz et al. CCS 2017; Bell
 * et al. CCS 2020) through the stages. Asynchronous: every step is an nng_aio
 * callback on an nng REQ context (no thread per session), so the simulator
 * runs thousands of sessions on a few threads; fedreci_session_run is the
 * blocking wrapper the public `sync` uses. The message flow is in
 * docs/protocol.md and coordinator/engine.h.
 *
 * One session = one attempt: check in; if told a newer model exists (and the
 * client is selected, or fetch_model is set) download it; if selected, run
 * advertise -> share keys -> masked input -> unmask, asking the caller for
 * the update just before masking. An opted-out session checks in with
 * opted_in = false: the coordinator never selects it and it sends no stage
 * message at all (zero update bytes on the wire); it may still download the
 * model.
 *
 * Transport: either the session dials `url` with its own REQ socket
 * (tcp://, ipc://, inproc://, tls+tcp:// with tls_ca_file/tls_server_name),
 * or it opens a context on a caller's REQ socket (`socket`, shared by many
 * sessions). The REQ resend timer is set far beyond any stage, so nng never
 * resends on its own; a RetryAfter reply makes the session resend the same
 * (idempotent) request after the given delay. Every receive has a timeout
 * (timeout_ms) and a size cap.
 *
 * The session's own clock (one watchdog thread for all the started
 * sessions of the process, on CLOCK_MONOTONIC, independent of nng; it looks
 * at each session at its next deadline and at least once a second, so a
 * deadline is noticed up to a second late): every request must end within
 * timeout_ms + FEDRECI_SESSION_GRACE_MS (nng's timeout normally ends it
 * first), and once selected the whole round within
 * fedreci_session_round_budget_ms(stage_timeout_ms) of the SELECTED reply:
 * by then an honest coordinator has decided the round (every phase of the
 * round and the model download held to its stage deadline, 5 s, and one
 * more stage deadline for the commit). When either passes, the session
 * cancels its operation and ends FEDRECI_SESSION_ERROR with
 * FEDREC_ERR_TIMEOUT and a text naming the request and the limit ("...
 * the session's own clock ..."); if nng does not hand the operation back
 * within FEDRECI_SESSION_GRACE_MS of the cancel (or a hook is still
 * running), the watchdog publishes that result itself (fedreci_session_wait
 * returns it) and the session sends nothing more; on_done gets the same
 * result once nng hands the operation back (or the running hook returns),
 * on that thread, and no other hook runs after it.
 *
 * SecAgg groups (issue 20): when the SELECTED check-in reply names an
 * aggregator (CheckInReply.aggregator_url), the rest of the round (model
 * request, the four SecAgg stages) goes to that URL over a new REQ socket of
 * the session's own (tls+ URLs verified against tls_ca_file, and against
 * the URL's host name when tls_server_name is set); the coordinator's
 * socket stays open until destroy. Without
 * one (a single coordinator) nothing changes.
 *
 * Hooks run on nng's threads, one at a time per session, never concurrently
 * for the same session; they must not call fedreci_session_destroy on their
 * own session. Pointers passed to hooks are valid only during the call
 * (copy what you keep).
 *
 * Errors (create/start/run): FEDREC_ERR_INVALID, FEDREC_ERR_NOMEM,
 * FEDREC_ERR_TRANSPORT. The outcome of the round is reported in
 * fedreci_session_result, never as a crash. Once selected, a round below
 * the configured floors, or a reply by which the coordinator breaks the
 * protocol (every FEDRECI_REFUSE_* of core/secagg/secagg.h and of this
 * file), ends the session with FEDRECI_SESSION_REFUSED and
 * FEDREC_ERR_REFUSED: nothing more is sent for the round, and the result
 * names the reason (refusal, text), what was withheld and the round's n, k,
 * t. Local failures, the coordinator's own Error replies and timeouts end it
 * with FEDRECI_SESSION_ERROR and the error code and text.
 */
#ifndef FEDREC_CLIENT_SESSION_H
#define FEDREC_CLIENT_SESSION_H

#include <stddef.h>
#include <stdint.h>

#include <nng/nng.h>

#include "core/secagg/secagg.h"
#include "fedrec/fedrec.h"
#include "proto/wire.h"

typedef enum fedreci_session_outcome {
    FEDRECI_SESSION_COMPLETED = 0,    /* took part; the round completed */
    FEDRECI_SESSION_ABORTED = 1,      /* selected, but the round aborted */
    FEDRECI_SESSION_NOT_SELECTED = 2, /* not in this round's cohort */
    FEDRECI_SESSION_OPTED_OUT = 3,    /* opted out: checked in, uploaded nothing */
    FEDRECI_SESSION_ERROR = 4,        /* transport, protocol or local failure */
    FEDRECI_SESSION_DROPPED = 5,      /* the dropout test hook stopped the session */
    FEDRECI_SESSION_NO_ROUND = 6,     /* the coordinator runs no further round */
    FEDRECI_SESSION_REFUSED = 7,      /* selected, but the client left the round: below the
                                         floors, or the coordinator broke the protocol
                                         (refusal, refused_stage, text say why) */
} fedreci_session_outcome;

/* Refusal names of the session itself, beside core/secagg/secagg.h
 * FEDRECI_REFUSE_* (stable; they go into the ledger): */
/* the round's n, k or t is below the app's floors (fedreci_session_config) */
#define FEDRECI_REFUSE_FLOORS "below_floors"
/* any other reply that breaks the protocol (for another client, a body the
   stage does not expect) */
#define FEDRECI_REFUSE_PROTOCOL "protocol_violation"
/* round parameters that break the SecAgg rules (core/secagg/secagg.h
   fedreci_secagg_params_check: the overflow budget, the caps on n and d) */
#define FEDRECI_REFUSE_PARAMS_INVALID "params_invalid"

typedef struct fedreci_session_result {
    fedreci_session_outcome outcome;
    fedrec_err err;             /* FEDREC_OK unless outcome is ERROR/ABORTED */
    char text[256];             /* detail for err (coordinator's text or local) */
    uint64_t round_id;          /* the round it was selected for (0: none) */
    uint64_t model_version;     /* the model version the caller now holds (downloaded
                                   in this session, else the configured one) */
    uint64_t latest_version;    /* the newest version the coordinator announced
                                   (after a completed round: the version it produced) */
    uint32_t retry_after_ms;    /* NOT_SELECTED / NO_ROUND: suggested wait */
    uint64_t bytes_sent;        /* request bodies sent, all messages */
    uint64_t update_bytes_sent; /* of which SecAgg stage messages */
    uint64_t bytes_received;
    uint32_t retries;       /* RetryAfter replies received (the coordinator had no
                               context free to hold the request) */
    uint32_t seed_attempts; /* graph seed step attempts this client revealed in beyond
                               the first, plus one (0 when it had no retry) */
    const char *refusal;    /* the client left the round because of what the coordinator
                               sent: a stable name (core/secagg/secagg.h FEDRECI_REFUSE_*,
                               static storage) for the privacy ledger; NULL otherwise.
                               Nothing secret was sent after the refused message. */
    /* Differential privacy (core/dp/round.h): dp is 1 when the round
     * carried DP parameters and the client accepted them; dp_sent is 1 once
     * its noised input went on the wire (the round then counts against the
     * shopper's budget, whatever happens after). dp_params are the
     * parameters it verified, dp_event the release it accounts for and
     * dp_epsilon_round that release's epsilon at dp_params.delta, all
     * computed by the client. A round whose DP parameters the client
     * refuses ends with FEDRECI_SESSION_ERROR before anything is uploaded,
     * dp_refused = 1 and text saying why. */
    int dp, dp_sent, dp_refused;
    fedreci_dp_round_params dp_params;
    fedreci_dp_event dp_event;
    double dp_epsilon_round;

    /* REFUSED: the SecAgg stage whose message was withheld (0..3) and what
     * that message was, and the round's n, k, t as the coordinator
     * announced them. */
    uint32_t refused_stage;
    char refused_what[32];
    uint32_t n, k, t;
} fedreci_session_result;

typedef struct fedreci_session_config {
    const char *url;               /* dial with an own REQ socket, or NULL and: */
    const nng_socket *socket;      /* a REQ socket to open a context on (shared) */
    const char *tls_ca_file;       /* tls+tcp://: CA chain verifying the server */
    const char *tls_server_name;   /* tls+tcp://: expected server name; when set, a SecAgg
                                      group's aggregator (tls+ URL from the master) must
                                      present a certificate for that URL's host name */
    uint64_t client_id;            /* must be fedreci_secagg_id_from_pk(the identity public key);
                                      create refuses another (FEDREC_ERR_INVALID) */
    const uint8_t *identity_sk;    /* Ed25519 secret key, 64 bytes (copied to secure memory);
                                      signs every request */
    uint64_t model_version;        /* the model version the caller holds (0: none) */
    const uint8_t *model_checksum; /* BLAKE2b-256 of the held model's item-factor bytes
                                     (32 bytes, what fedreci_wire_checksum gives), or NULL.
                                     Bound into the signed advert (fedreci_wire_binding);
                                     when NULL and the round is for the held version, the
                                     session downloads the model again to learn it */
    int opted_in;                  /* 0: check in as opted out, never upload */
    int fetch_model;               /* download a newer model even when not selected */
    uint32_t timeout_ms;           /* per request, including long polls; default 120000 */
    size_t recv_max_bytes;         /* receive cap; default 64 MiB */
    uint32_t max_retries;          /* RetryAfter replies accepted; default 1000 */
    int dropout_stage;             /* test hook: -1 none; 0..3 stop (silently) instead of
                                      sending that SecAgg stage's message; 4 after the
                                      consistency tags, before the unmask shares */
    int withhold_seed;             /* test hook: a >= 1 stop (silently) instead of
                                      revealing the graph seed contribution of seed step
                                      attempt a - 1 (1: after the advert; 2: reveal in the
                                      first attempt, not in the first retry; outcome
                                      DROPPED); 0 (the default) none */
    uint32_t max_seed_retries;     /* the app's bound on a round's seed step retries
                                      (RoundParams.seed_retries; each gives the coordinator
                                      one more graph seed to choose from): a round that
                                      announces more is refused before any SecAgg message
                                      (FEDRECI_REFUSE_FLOORS); default
                                      FEDRECI_SECAGG_SEED_RETRIES_DEFAULT */
    const uint8_t *rounding_seed;  /* 32 bytes for reproducible rounding and graph seed
                                      contribution (simulations, tests), or NULL */
    /* Round floors (docs/client.md "Round floors"): a round whose announced
     * cohort n, neighbours k or threshold t is below them is refused before
     * any SecAgg message is sent (outcome REFUSED, FEDRECI_REFUSE_FLOORS).
     * 0: no floor beyond the protocol's own checks (the default here; the
     * public API applies the app's floors or FEDREC_FLOOR_*). */
    uint32_t min_cohort;
    uint32_t min_neighbors;
    uint32_t min_threshold;
    double min_threshold_fraction; /* t >= fraction x k (0: none) */
    /* An attestation token vouching for the identity key, sent with the
     * check-in (copied at create; at most FEDRECI_WIRE_ATTEST_MAX bytes);
     * NULL and 0: none. */
    const uint8_t *attestation;
    size_t attestation_len;
} fedreci_session_config;

/* Fills the defaults documented above (dropout_stage = -1, opted_in = 1). */
void fedreci_session_config_default(fedreci_session_config *cfg);

typedef struct fedreci_session_hooks {
    void *arg;
    /* A model was downloaded (checksum verified); m's pointers live during
     * the call. */
    void (*on_model)(void *arg, const fedreci_wire_model *m);
    /* Compute this client's update for the round: fill x (round->secagg.d - 1
     * floats, n_items x k_factors row-major) and *weight (<= max_weight).
     * With differential privacy (round->dp.mechanism != 0) x is instead the
     * DP-ALS contribution (core/dp/dpals.h: fedreci_dpals_dim floats for
     * row_bound, gram_weight of round->dp, L2 norm <= round->dp.l2_bound),
     * which the session then rotates, rounds and noises
     * (fedreci_dp_round_encode) before masking. Called once per round, just
     * before masking. A non-OK return ends the session with
     * FEDRECI_SESSION_ERROR without uploading. Required when opted in. */
    fedrec_err (*compute_update)(void *arg, const fedreci_wire_round *round, float *x,
                                 uint32_t *weight);
    /* A SecAgg message went on the wire: bytes is the message body length as
     * sent (what the coordinator receives); what names it; clipped is the
     * clipping count for the masked input (0 otherwise). Called for every
     * send, resends included. For the privacy ledger. */
    void (*on_upload)(void *arg, uint64_t round_id, int stage, size_t bytes, const char *what,
                      uint32_t clipped);
    /* Simulator oracle only: the quantized input q(x) || weight (d words;
     * with DP, the noised words: exactly what is masked). */
    void (*on_quantized)(void *arg, uint64_t round_id, const uint32_t *q, uint32_t d);
    /* The session ended (exactly once). */
    void (*on_done)(void *arg, const fedreci_session_result *r);
} fedreci_session_hooks;

typedef struct fedreci_session fedreci_session;

/* How long past its deadline the session's own clock lets nng end an
 * operation, and how long it then waits for a cancel to come back. */
#define FEDRECI_SESSION_GRACE_MS 2000u

/* The longest a selected session waits for its round, from the SELECTED
 * reply: (FEDRECI_SESSION_ROUND_PHASES + 1) x stage_timeout_ms + 5000 ms
 * (the round's 8 phases and the model download, each held at most to its
 * stage deadline; 5 s; one stage deadline for the commit and the result).
 * Saturates at UINT32_MAX. Thread-safe (pure). */
#define FEDRECI_SESSION_ROUND_PHASES 9u
uint32_t fedreci_session_round_budget_ms(uint32_t stage_timeout_ms);

/* Creates a session (opens its socket or context; dials in the background).
 * Nothing is sent before fedreci_session_start. */
FEDREC_NODISCARD fedrec_err fedreci_session_create(fedreci_session **out,
                                                   const fedreci_session_config *cfg,
                                                   const fedreci_session_hooks *hooks);

/* Sends the check-in; everything else happens in callbacks. */
FEDREC_NODISCARD fedrec_err fedreci_session_start(fedreci_session *s);

/* Blocks until the session ended (FEDREC_OK, *r written if not NULL) or
 * timeout_ms passed (FEDREC_ERR_TIMEOUT; < 0 waits forever). */
FEDREC_NODISCARD fedrec_err fedreci_session_wait(fedreci_session *s, int timeout_ms,
                                                 fedreci_session_result *r);

/* Stops the watchdog, cancels any I/O, waits for callbacks, wipes and
 * frees. NULL is a no-op. */
void fedreci_session_destroy(fedreci_session *s);

/* Blocking: create, start, wait, destroy. *r gets the result. */
FEDREC_NODISCARD fedrec_err fedreci_session_run(const fedreci_session_config *cfg,
                                                const fedreci_session_hooks *hooks,
                                                fedreci_session_result *r);

#endif /* FEDREC_CLIENT_SESSION_H */

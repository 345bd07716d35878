/*
 * coordinator/aggregator: the aggregator process of SecAgg groups (issue
 * 20): `fedrec-coordinator --role aggregator --master URL`. Stateless (no
 * database): it dials the master's aggregator URL, announces itself (its
 * client-facing URL and a fresh X25519 key for its next group) and waits
 * for a group; runs that group's SecAgg+ stages with an engine in the
 * aggregator role (engine.h fedreci_coord_run_group) on its own client
 * listeners; sends the group's checked unmasked sum and counts to the
 * master, and answers its members with the master's verdict. Every request
 * to the master is signed with the aggregator's Ed25519 identity key
 * (coordinator/link.h), which the master must list; every reply must carry
 * the master's signature over it and the request it answers (master_pk):
 * any other reply (forged, meant for another aggregator, or replayed) is
 * refused, logged (warn) and counted in replies_refused, and changes
 * nothing (no group is run, no verdict is applied; a refused answer to a
 * group's result is asked for again, up to 3 times).
 *
 * The engine is created at the first assignment (the model's shape comes
 * with it) and recreated when the master's model changes shape. When the
 * master cannot be reached the aggregator retries every 500 ms; a group
 * whose verdict never comes ends aborted ("master unreachable").
 *
 * Thread-safety: create, start, stop and destroy from one thread; status
 * from any. One thread runs the link loop. Errors: FEDREC_ERR_INVALID
 * (configuration), FEDREC_ERR_NOMEM, FEDREC_ERR_TRANSPORT.
 */
#ifndef FEDREC_COORDINATOR_AGGREGATOR_H
#define FEDREC_COORDINATOR_AGGREGATOR_H

#include <stddef.h>
#include <stdint.h>

#include "coordinator/engine.h"
#include "fedrec/fedrec.h"

typedef struct fedreci_aggregator fedreci_aggregator;

typedef struct fedreci_aggregator_config {
    const char *master_url;         /* the master's aggregator URL (dialed) */
    const char *master_tls_ca_file; /* tls+tcp:// master URL: CA verifying it; its
                                       certificate must also carry the URL's host name */
    const char *const *listen_urls; /* client listeners (copied) */
    size_t n_listen;
    const char *public_url;    /* the URL the master gives members; NULL: listen_urls[0]
                                  (a port 0 is refused: the URL is announced before the
                                  listeners start at the first group) */
    const char *tls_cert_file; /* tls+tcp:// client listeners */
    const char *tls_key_file;
    const uint8_t *identity_sk; /* 64 bytes, Ed25519 (copied into secure memory) */
    const uint8_t *master_pk;   /* 32 bytes: the master's Ed25519 identity key (copied) */
    uint32_t max_group;         /* the largest group taken; default 1000 */
    uint32_t link_timeout_ms;   /* longest wait for a master reply; default 600000 */
    uint32_t retry_after_ms;    /* RetryAfter to early members; default 50 */
    uint32_t max_connections;   /* engine limits (engine.h); 0: none */
    uint32_t max_conns_per_addr;
} fedreci_aggregator_config;

typedef struct fedreci_aggregator_status {
    int connected;             /* the last master request got a reply */
    uint64_t groups_run;       /* groups assigned */
    uint64_t groups_completed; /* sums sent */
    uint64_t groups_counted;   /* counted by the master in a committed model */
    uint64_t groups_failed;    /* aborted here, refused, or not counted */
    uint64_t replies_refused;  /* master replies refused (bad signature or format) */
    uint64_t last_round;       /* round of the last group (0: none) */
    uint32_t last_members, last_survivors;
    uint64_t model_version;      /* held */
    fedreci_coord_status engine; /* the group engine (zero before the first group) */
} fedreci_aggregator_status;

void fedreci_aggregator_config_default(fedreci_aggregator_config *cfg);

/* Checks and copies cfg; nothing is dialed or listened to yet. */
FEDREC_NODISCARD fedrec_err fedreci_aggregator_create(fedreci_aggregator **out,
                                                      const fedreci_aggregator_config *cfg);

/* Starts the link thread (dials the master). */
FEDREC_NODISCARD fedrec_err fedreci_aggregator_start(fedreci_aggregator *a);

/* Stops the link thread: an open group is aborted. Idempotent. */
void fedreci_aggregator_stop(fedreci_aggregator *a);

/* Stops, frees. NULL: nothing. */
void fedreci_aggregator_destroy(fedreci_aggregator *a);

void fedreci_aggregator_get_status(fedreci_aggregator *a, fedreci_aggregator_status *st);

/* The TCP port of client listener i once the engine exists (0 before). */
int fedreci_aggregator_port(fedreci_aggregator *a, size_t i);

#endif

/* A client for the process-level fault tests (tests/faults_restart.sh): runs
 * one session (client/session.h) against a coordinator URL and, when told to
 * drop at a SecAgg stage, stops there and then hangs (as a phone that lost
 * its connection mid-stage would look to the coordinator) until killed.
 * Its Ed25519 identity key is derived from KEY_SEED and its id from the key
 * (ids are self-certifying), so a restarted
 * coordinator recognizes it.
 * Usage: fedrec-fault-client URL KEY_SEED [DROP_STAGE]
 * Exit status: 0 round completed, 3 round aborted, 4 not selected / no
 * round, 1 error (the text is printed), 2 usage. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <sodium.h>

#include "client/session.h"

static fedrec_err compute_update(void *arg, const fedreci_wire_round *rd, float *x,
                                 uint32_t *weight)
{
    uint64_t id = *(const uint64_t *)arg;
    for (uint32_t i = 0; i < rd->secagg.d - 1; i++)
        x[i] = (float)((int)((id * 17 + i * 5) % 41) - 20) / 100.0f;
    *weight = 1;
    return FEDREC_OK;
}

int main(int argc, char **argv)
{
    if (argc < 3 || argc > 4 || sodium_init() < 0) {
        fprintf(stderr, "usage: fedrec-fault-client URL KEY_SEED [DROP_STAGE]\n");
        return 2;
    }
    uint64_t key_seed = strtoull(argv[2], NULL, 10);
    int drop = argc == 4 ? atoi(argv[3]) : -1;
    uint8_t seed[32] = {0}, pk[32], sk[64];
    memcpy(seed, &key_seed, sizeof key_seed);
    crypto_sign_seed_keypair(pk, sk, seed);
    uint64_t id = fedreci_secagg_id_from_pk(pk); /* ids are self-certifying */
    fedreci_session_config cfg;
    fedreci_session_config_default(&cfg);
    /* The client's own REQ socket, kept open after a drop: a phone that went
     * silent mid-stage still holds its connection, so the coordinator can only
     * notice it at the stage deadline (a closed connection counts as dropped at
     * once, which is not what this test is about). */
    nng_socket sock;
    if (nng_req0_open(&sock) != 0 || nng_setopt_ms(sock, NNG_OPT_REQ_RESENDTIME, 3600000) != 0 ||
        nng_dial(sock, argv[1], NULL, NNG_FLAG_NONBLOCK) != 0) {
        fprintf(stderr, "client %llu: cannot dial %s\n", (unsigned long long)id, argv[1]);
        return 1;
    }
    cfg.url = NULL;
    cfg.socket = &sock;
    cfg.client_id = id;
    cfg.identity_sk = sk;
    cfg.fetch_model = 1;
    cfg.timeout_ms = 120000;
    cfg.dropout_stage = drop;
    fedreci_session_hooks h = {&id, NULL, compute_update, NULL, NULL, NULL};
    fedreci_session_result r;
    if (fedreci_session_run(&cfg, &h, &r) != FEDREC_OK) {
        fprintf(stderr, "client %llu: %s\n", (unsigned long long)id, fedrec_errmsg());
        return 1;
    }
    sodium_memzero(sk, sizeof sk);
    printf("client %llu: outcome %d round %llu model %llu latest %llu %s\n", (unsigned long long)id,
           (int)r.outcome, (unsigned long long)r.round_id, (unsigned long long)r.model_version,
           (unsigned long long)r.latest_version, r.text);
    fflush(stdout);
    switch (r.outcome) {
    case FEDRECI_SESSION_COMPLETED:
        return 0;
    case FEDRECI_SESSION_DROPPED:
        for (;;)
            pause(); /* silent until killed */
    case FEDRECI_SESSION_ABORTED:
        return 3;
    case FEDRECI_SESSION_NOT_SELECTED:
    case FEDRECI_SESSION_NO_ROUND:
        return 4;
    default:
        return 1;
    }
}

/* Writes the generated seed corpora of the fuzz harnesses (run once; the
 * output is committed under tests/fuzz/corpus/):
 *   wire/          one real encoded message of every fedrec.v1 kind, both as a
 *                  raw envelope (first byte 0x80) and as a structured input
 *                  (first byte = body kind, then the body's bytes);
 *   store/         the template store's files unmodified (XOR mode, no-op);
 *   store_records/ a real snapshot plaintext and a real event sequence;
 *   secagg_server/ client 4's messages for a whole round.
 * Usage: fedrec_fuzz_seedgen CORPUS_DIR. Uses the store's internal codec
 * (client/store_codec.h) for the plaintext seeds. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client/store_codec.h"
#include "client/store_internal.h"

#include "core/secagg/kdf.h"
#include "coordinator/link.h"
#include "proto/wire.h"

static void put(const char *dir, const char *name, uint8_t first, const uint8_t *b, size_t n)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    if (!f) {
        perror(p);
        exit(1);
    }
    fputc(first, f);
    if (n)
        fwrite(b, 1, n, f);
    fclose(f);
}

/* The body bytes of an envelope: the oneof field (10 + kind) is the last
 * field packed, so skip the header fields and the body's tag and length. */
static void put_wire(const char *dir, const char *name, nng_msg *m)
{
    const uint8_t *b = nng_msg_body(m);
    size_t n = nng_msg_len(m);
    char raw[128];
    snprintf(raw, sizeof raw, "raw_%s", name);
    put(dir, raw, 0x80, b, n);
    fedreci_wire_env *e = fedrec__v1__envelope__unpack(NULL, n, b);
    if (!e)
        exit(1);
    unsigned kind = (unsigned)e->body_case - 10;
    fedrec__v1__envelope__free_unpacked(e, NULL);
    /* walk the fields: varints 1..4, then the length-delimited body */
    size_t o = 0;
    while (o < n) {
        uint8_t tag = b[o++];
        if ((tag & 7) == 0) {
            while (b[o++] & 0x80) {
            }
        } else {
            uint64_t len = 0;
            int sh = 0;
            while (1) {
                uint8_t c = b[o++];
                len |= (uint64_t)(c & 0x7f) << sh;
                sh += 7;
                if (!(c & 0x80))
                    break;
            }
            put(dir, name, (uint8_t)kind, b + o, (size_t)len);
            break;
        }
    }
    nng_msg_free(m);
}

/* A signed request as received from a client (raw only: the signature
 * follows the body). */
static void put_signed(const char *dir, const char *name, nng_msg *m, const fedreci_wire_hdr *h,
                       const uint8_t sk[64])
{
    if (fedreci_wire_sign(m, h, sk))
        exit(1);
    char raw[128];
    snprintf(raw, sizeof raw, "raw_signed_%s", name);
    put(dir, raw, 0x80, nng_msg_body(m), nng_msg_len(m));
    nng_msg_free(m);
}

/* A MACed request as received (raw only: the MAC follows the body), under
 * fuzz_wire.c's fixed key so that the harness reaches the verified path. */
static void put_maced(const char *dir, const char *name, nng_msg *m)
{
    static const uint8_t key[32] = "fedrec fuzz wire mac key 32 b!!";
    if (fedreci_wire_mac(m, key))
        exit(1);
    char raw[128];
    snprintf(raw, sizeof raw, "raw_maced_%s", name);
    put(dir, raw, 0x80, nng_msg_body(m), nng_msg_len(m));
    nng_msg_free(m);
}

/* Appends one fuzz_secagg_server chunk: u16 length, sender index, envelope. */
static void chunk(FILE *f, uint8_t sender, nng_msg *m)
{
    size_t n = m ? nng_msg_len(m) + 1 : 0;
    fputc((int)(n & 0xff), f);
    fputc((int)(n >> 8), f);
    if (m) {
        fputc(sender, f);
        fwrite(nng_msg_body(m), 1, nng_msg_len(m), f);
        nng_msg_free(m);
    }
}

int main(int argc, char **argv)
{
    if (argc != 2 || sodium_init() < 0)
        return 2;
    char dir[400];
    snprintf(dir, sizeof dir, "%s/wire", argv[1]);
    mkdir(dir, 0755);
    nng_msg *m;
    uint8_t pk[32], sk[64];
    crypto_sign_seed_keypair(pk, sk, (const uint8_t *)"fedrec fuzz seed identity key 01");
    fedreci_wire_hdr h = {5, 0, FEDRECI_WIRE_STAGE_CHECKIN};
    if (fedreci_wire_enc_checkin(&m, &h, pk, 3, 1))
        return 1;
    put_wire(dir, "checkin", m);
    h.client_id = fedreci_secagg_id_from_pk(pk);
    if (fedreci_wire_enc_checkin(&m, &h, pk, 3, 1))
        return 1;
    put_signed(dir, "checkin", m, &h, sk);
    {
        /* with an attestation token (and its signed time, as every check-in) */
        uint8_t tok[300];
        for (size_t i = 0; i < sizeof tok; i++)
            tok[i] = (uint8_t)(i * 7 + 1);
        if (fedreci_wire_enc_checkin_attested(&m, &h, pk, 3, 1, tok, sizeof tok))
            return 1;
        put_wire(dir, "checkin_attested", m);
        if (fedreci_wire_enc_checkin_attested(&m, &h, pk, 3, 1, tok, sizeof tok))
            return 1;
        put_signed(dir, "checkin_attested", m, &h, sk);
    }
    h.client_id = 5;
    fedreci_wire_round rd;
    memset(&rd, 0, sizeof rd);
    rd.secagg.round_id = 7;
    rd.secagg.n = 4;
    rd.secagg.k = 3;
    rd.secagg.t = 2;
    rd.secagg.d = 3 * 2 + 1;
    rd.secagg.clip = 16;
    rd.secagg.scale = 65536;
    rd.secagg.max_weight = 1;
    rd.secagg.seed_retries = 3;
    rd.model_version = 3;
    rd.n_items = 3;
    rd.k_factors = 2;
    rd.stage_timeout_ms = 1000;
    h.round_id = 7;
    if (fedreci_wire_enc_checkin_reply(&m, &h, 1, &rd, 3, 0))
        return 1;
    put_wire(dir, "checkin_reply_selected", m);
    if (fedreci_wire_enc_checkin_reply(&m, &h, 0, NULL, 3, 500))
        return 1;
    put_wire(dir, "checkin_reply_not_selected", m);
    h.stage = FEDRECI_WIRE_STAGE_MODEL;
    if (fedreci_wire_enc_model_request(&m, &h, 2))
        return 1;
    put_wire(dir, "model_request", m);
    float y[6] = {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f}, gram[4] = {1, 0, 0, 1};
    uint8_t sum[32];
    fedreci_wire_checksum(y, sizeof y, sum);
    const char *codes[3] = {"85123A", "71053", "POST"};
    fedreci_wire_model wm = {3, 3, 2, y, gram, sum, codes, 3};
    if (fedreci_wire_enc_model_reply(&m, &h, &wm, 3))
        return 1;
    put_wire(dir, "model_reply", m);
    if (fedreci_wire_enc_model_reply(&m, &h, NULL, 3))
        return 1;
    put_wire(dir, "model_reply_not_modified", m);
    /* a real advert from a real SecAgg client */
    fedreci_secagg_client *sa;
    if (fedreci_secagg_client_create(&sa, &rd.secagg, 5, sk, NULL))
        return 1;
    {
        /* bound to this round and model, as a session's advert is */
        uint8_t binding[32];
        fedreci_wire_binding(&rd, sum, binding);
        if (fedreci_secagg_client_set_binding(sa, binding))
            return 1;
    }
    fedreci_secagg_advert adv;
    if (fedreci_secagg_client_advertise(sa, &adv))
        return 1;
    fedreci_secagg_client_destroy(sa);
    h.stage = FEDRECI_WIRE_STAGE_ADVERTISE;
    if (fedreci_wire_enc_advertise(&m, &h, &adv))
        return 1;
    put_wire(dir, "advertise", m);
    uint64_t ids[4] = {1, 5, 9, 12};
    fedreci_secagg_advert a2[4];
    const fedreci_secagg_advert *ap[4];
    for (int i = 0; i < 4; i++) {
        a2[i] = adv;
        a2[i].client_id = ids[i];
        ap[i] = &a2[i];
    }
    uint8_t digest[32], contribs[4 * 32];
    randombytes_buf(digest, sizeof digest);
    randombytes_buf(contribs, sizeof contribs);
    if (fedreci_wire_enc_roster(&m, &h, ids, 4, digest, NULL, 0))
        return 1;
    put_wire(dir, "roster", m);
    if (fedreci_wire_enc_roster(&m, &h, ids, 4, digest, ap, 4))
        return 1;
    put_wire(dir, "roster_with_adverts", m);
    h.stage = FEDRECI_WIRE_STAGE_SEED;
    if (fedreci_wire_enc_seed_reveal(&m, &h, contribs))
        return 1;
    put_wire(dir, "seed_reveal", m);
    if (fedreci_wire_enc_seed_reveal(&m, &h, contribs))
        return 1;
    put_signed(dir, "seed_reveal", m, &h, sk);
    if (fedreci_wire_enc_seed_reveal(&m, &h, contribs))
        return 1;
    put_maced(dir, "seed_reveal", m);
    /* a seed step retry (protocol version 8): the Roster of attempt 1 in
       reply to a SeedReveal, and the reveal of attempt 1 */
    if (fedreci_wire_enc_roster_attempt(&m, &h, 1, ids, 3, digest, NULL, 0))
        return 1;
    put_wire(dir, "roster_retry", m);
    if (fedreci_wire_enc_seed_reveal_attempt(&m, &h, 1, contribs))
        return 1;
    put_maced(dir, "seed_reveal_retry", m);
    uint8_t missing4[4] = {0, 0, 1, 0};
    if (fedreci_wire_enc_seed_relay(&m, &h, contribs, 4, missing4, ap, 4))
        return 1;
    put_wire(dir, "seed_relay", m);
    h.stage = FEDRECI_WIRE_STAGE_CONSISTENCY;
    fedreci_secagg_tag tags[3];
    for (int i = 0; i < 3; i++) {
        tags[i].from = 5;
        tags[i].to = ids[i == 0 ? 0 : i + 1];
        randombytes_buf(tags[i].tag, sizeof tags[i].tag);
    }
    uint8_t esig[64];
    randombytes_buf(esig, sizeof esig);
    uint64_t want[2] = {ids[0], ids[2]};
    fedreci_secagg_endorsement es[2];
    for (int i = 0; i < 2; i++) {
        es[i].from = want[i];
        randombytes_buf(es[i].sig, sizeof es[i].sig);
    }
    /* packed tags (protocol 6): one slot per neighbour named survivor */
    uint64_t peers[3] = {ids[0], ids[2], ids[3]};
    fedreci_secagg_tag rtags[2]; /* to 5, from two of its three peers */
    for (int i = 0; i < 2; i++) {
        rtags[i].from = peers[i == 0 ? 0 : 2];
        rtags[i].to = 5;
        randombytes_buf(rtags[i].tag, sizeof rtags[i].tag);
    }
    if (fedreci_wire_enc_consistency(&m, &h, peers, 3, tags, 3, esig, NULL, 0))
        return 1;
    put_wire(dir, "consistency", m);
    if (fedreci_wire_enc_consistency(&m, &h, peers, 3, tags, 3, esig, want, 2))
        return 1;
    put_signed(dir, "consistency", m, &h, sk);
    if (fedreci_wire_enc_consistency(&m, &h, peers, 3, tags, 3, esig, NULL, 0))
        return 1;
    put_maced(dir, "consistency", m);
    if (fedreci_wire_enc_consistency_relay(&m, &h, peers, 3, rtags, 2, NULL, 0))
        return 1;
    put_wire(dir, "consistency_relay", m);
    if (fedreci_wire_enc_consistency_relay(&m, &h, peers, 3, rtags, 2, es, 2))
        return 1;
    put_wire(dir, "consistency_relay_sigs", m);
    /* the complaint step: complaints, openings, the relays */
    {
        fedreci_secagg_complaint k[2];
        fedreci_secagg_opening o[2];
        uint64_t ex[2] = {ids[0], ids[2]};
        for (int i = 0; i < 2; i++) {
            k[i].from = 5;
            k[i].dealer = ids[i];
            randombytes_buf(k[i].bundle, sizeof k[i].bundle);
            randombytes_buf(k[i].sig, sizeof k[i].sig);
            o[i].dealer = 5;
            o[i].to = ids[i];
            randombytes_buf(o[i].plain, sizeof o[i].plain);
        }
        h.stage = FEDRECI_WIRE_STAGE_COMPLAINT;
        if (fedreci_wire_enc_complaints(&m, &h, k, 2))
            return 1;
        put_wire(dir, "complaints", m);
        if (fedreci_wire_enc_complaint_relay(&m, &h, k, 2, 0, NULL, 0, NULL, 0))
            return 1;
        put_wire(dir, "complaint_relay", m);
        h.stage = FEDRECI_WIRE_STAGE_OPENING;
        if (fedreci_wire_enc_openings(&m, &h, o, 2))
            return 1;
        put_wire(dir, "openings", m);
        if (fedreci_wire_enc_openings(&m, &h, o, 2))
            return 1;
        put_signed(dir, "openings", m, &h, sk);
        if (fedreci_wire_enc_complaint_relay(&m, &h, NULL, 0, 1, ex, 2, o, 1))
            return 1;
        put_wire(dir, "complaint_relay_final", m);
    }
    h.stage = FEDRECI_WIRE_STAGE_ADVERTISE;
    h.stage = FEDRECI_WIRE_STAGE_SHARE_KEYS;
    uint8_t ctb[3][FEDRECI_SHARE_CT_BYTES], cmb[3][FEDRECI_SECAGG_COMMIT_BYTES];
    fedreci_secagg_ciphertext cts[3];
    for (int i = 0; i < 3; i++) {
        randombytes_buf(ctb[i], sizeof ctb[i]);
        randombytes_buf(cmb[i], sizeof cmb[i]);
        cts[i].commit = cmb[i];
        cts[i].from = 5;
        cts[i].to = ids[i == 0 ? 0 : i + 1];
        cts[i].bytes = ctb[i];
        cts[i].len = sizeof ctb[i];
    }
    if (fedreci_wire_enc_ciphertexts(&m, &h, 0, cts, 3))
        return 1;
    put_wire(dir, "share_keys", m);
    if (fedreci_wire_enc_ciphertexts(&m, &h, 0, cts, 3))
        return 1;
    put_signed(dir, "share_keys", m, &h, sk);
    if (fedreci_wire_enc_ciphertexts(&m, &h, 1, cts, 3))
        return 1;
    put_wire(dir, "share_relay", m);
    h.stage = FEDRECI_WIRE_STAGE_MASKED_INPUT;
    uint32_t masked[7] = {1, 2, 3, 0xffffffffu, 5, 6, 1};
    if (fedreci_wire_enc_masked(&m, &h, masked, 7))
        return 1;
    put_wire(dir, "masked_input", m);
    if (fedreci_wire_enc_masked(&m, &h, masked, 7))
        return 1;
    put_signed(dir, "masked_input", m, &h, sk);
    if (fedreci_wire_enc_masked(&m, &h, masked, 7))
        return 1;
    put_maced(dir, "masked_input", m);
    uint64_t surv[3] = {1, 5, 12}, drop[1] = {9};
    if (fedreci_wire_enc_unmask_request(&m, &h, surv, 3, drop, 1))
        return 1;
    put_wire(dir, "unmask_request", m);
    h.stage = FEDRECI_WIRE_STAGE_UNMASK;
    fedreci_secagg_reveal rv[3];
    for (int i = 0; i < 3; i++) {
        rv[i].about = ids[i == 0 ? 0 : i + 1];
        rv[i].kind = i == 1;
        randombytes_buf(rv[i].share, sizeof rv[i].share);
        randombytes_buf(rv[i].opening, sizeof rv[i].opening);
    }
    if (fedreci_wire_enc_unmask(&m, &h, rv, 3))
        return 1;
    put_wire(dir, "unmask", m);
    if (fedreci_wire_enc_unmask(&m, &h, rv, 3))
        return 1;
    put_signed(dir, "unmask", m, &h, sk);
    if (fedreci_wire_enc_round_result(&m, &h, 1, 4, 3, ""))
        return 1;
    put_wire(dir, "round_result", m);
    if (fedreci_wire_enc_round_result(&m, &h, 0, 3, 1, "fewer than t survivors"))
        return 1;
    put_wire(dir, "round_result_aborted", m);
    if (fedreci_wire_enc_error(&m, &h, FEDREC_ERR_STAGE, "stage 3 is not open"))
        return 1;
    put_wire(dir, "error", m);
    if (fedreci_wire_enc_retry(&m, &h, 250))
        return 1;
    put_wire(dir, "retry_after", m);
    {
        /* Ack has no encoder: an empty body */
        fedreci_wire_env e = FEDREC__V1__ENVELOPE__INIT;
        Fedrec__V1__Ack ack = FEDREC__V1__ACK__INIT;
        e.protocol_version = FEDRECI_WIRE_PROTOCOL_VERSION;
        e.client_id = 5;
        e.round_id = 7;
        e.stage = 1;
        e.body_case = FEDREC__V1__ENVELOPE__BODY_ACK;
        e.ack = &ack;
        size_t n = fedrec__v1__envelope__get_packed_size(&e);
        if (nng_msg_alloc(&m, n))
            return 1;
        fedrec__v1__envelope__pack(&e, nng_msg_body(m));
        put_wire(dir, "ack", m);
    }

    /* secagg_server: client 4 plays along with a valid signed advert, then
     * garbage shares, a masked input and reveals (see fuzz_secagg_server) */
    {
        snprintf(dir, sizeof dir, "%s/secagg_server", argv[1]);
        mkdir(dir, 0755);
        char p[512];
        snprintf(p, sizeof p, "%s/client4_plays", dir);
        FILE *f = fopen(p, "wb");
        if (!f)
            return 1;
        fedreci_secagg_params sp;
        memset(&sp, 0, sizeof sp);
        sp.round_id = 7;
        sp.n = 4;
        sp.k = 3;
        sp.t = 2;
        sp.d = 5;
        sp.clip = 4;
        sp.scale = 1024;
        sp.max_weight = 1;
        sp.seed_retries = 1; /* as fuzz_secagg_server.c */
        uint8_t seed4[32] = {4}, pk4[32], sk4[64];
        crypto_sign_seed_keypair(pk4, sk4, seed4);
        fedreci_secagg_client *c4;
        fedreci_secagg_advert a4;
        uint64_t members[4] = {1, 2, 3, 4};
        uint8_t any_digest[32] = {0}, c4_contribution[32];
        if (fedreci_secagg_client_create(&c4, &sp, 4, sk4, NULL) ||
            fedreci_secagg_client_advertise(c4, &a4) ||
            fedreci_secagg_client_reveal(c4, members, 4, any_digest, c4_contribution))
            return 1;
        fedreci_secagg_client_destroy(c4);
        fedreci_wire_hdr h4 = {4, 7, FEDRECI_WIRE_STAGE_ADVERTISE};
        if (fedreci_wire_enc_advertise(&m, &h4, &a4))
            return 1;
        chunk(f, 3, m);
        chunk(f, 0, NULL);
        /* the seed step: its real contribution (it opens its commitment) */
        h4.stage = FEDRECI_WIRE_STAGE_SEED;
        if (fedreci_wire_enc_seed_reveal(&m, &h4, c4_contribution))
            return 1;
        chunk(f, 3, m);
        chunk(f, 0, NULL);
        uint8_t g[3][FEDRECI_SHARE_CT_BYTES], gc[3][FEDRECI_SECAGG_COMMIT_BYTES];
        fedreci_secagg_ciphertext c3[3];
        for (int i = 0; i < 3; i++) {
            randombytes_buf(g[i], sizeof g[i]);
            randombytes_buf(gc[i], sizeof gc[i]);
            c3[i].commit = gc[i];
            c3[i].from = 4;
            c3[i].to = (uint64_t)i + 1;
            c3[i].bytes = g[i];
            c3[i].len = sizeof g[i];
        }
        h4.stage = FEDRECI_WIRE_STAGE_SHARE_KEYS;
        if (fedreci_wire_enc_ciphertexts(&m, &h4, 0, c3, 3))
            return 1;
        chunk(f, 3, m);
        chunk(f, 0, NULL);
        /* the complaint step: a complaint about client 1's bundle (a hash
           it never sent, signed), then no openings */
        fedreci_secagg_complaint k4;
        memset(&k4, 0, sizeof k4);
        k4.from = 4;
        k4.dealer = 1;
        randombytes_buf(k4.bundle, sizeof k4.bundle);
        {
            uint8_t msg[FEDRECI_COMPLAINT_MSG_BYTES];
            fedreci_secagg_complaint_msg(msg, 7, 4, 1, k4.bundle);
            crypto_sign_detached(k4.sig, NULL, msg, sizeof msg, sk4);
        }
        h4.stage = FEDRECI_WIRE_STAGE_COMPLAINT;
        if (fedreci_wire_enc_complaints(&m, &h4, &k4, 1))
            return 1;
        chunk(f, 3, m);
        chunk(f, 0, NULL);
        h4.stage = FEDRECI_WIRE_STAGE_OPENING;
        if (fedreci_wire_enc_openings(&m, &h4, NULL, 0))
            return 1;
        chunk(f, 3, m);
        chunk(f, 0, NULL);
        uint32_t y5[5] = {1, 2, 3, 4, 1};
        h4.stage = FEDRECI_WIRE_STAGE_MASKED_INPUT;
        if (fedreci_wire_enc_masked(&m, &h4, y5, 5))
            return 1;
        chunk(f, 3, m);
        chunk(f, 0, NULL);
        /* the consistency step: tags it cannot make (random) */
        fedreci_secagg_tag t4[3];
        for (int i = 0; i < 3; i++) {
            t4[i].from = 4;
            t4[i].to = (uint64_t)i + 1;
            randombytes_buf(t4[i].tag, sizeof t4[i].tag);
        }
        h4.stage = FEDRECI_WIRE_STAGE_CONSISTENCY;
        uint8_t s4[64];
        randombytes_buf(s4, sizeof s4);
        uint64_t p4[3] = {1, 2, 3};
        if (fedreci_wire_enc_consistency(&m, &h4, p4, 3, t4, 3, s4, NULL, 0))
            return 1;
        chunk(f, 3, m);
        chunk(f, 0, NULL);
        fedreci_secagg_reveal r3[2];
        for (int i = 0; i < 2; i++) {
            r3[i].about = (uint64_t)i + 1;
            r3[i].kind = 0;
            randombytes_buf(r3[i].share, sizeof r3[i].share);
            randombytes_buf(r3[i].opening, sizeof r3[i].opening);
        }
        h4.stage = FEDRECI_WIRE_STAGE_UNMASK;
        if (fedreci_wire_enc_unmask(&m, &h4, r3, 2))
            return 1;
        chunk(f, 3, m);
        chunk(f, 0, NULL);
        fclose(f);
    }

    /* store: the template files unchanged (mode 1 = XOR with nothing) */
    snprintf(dir, sizeof dir, "%s/store", argv[1]);
    mkdir(dir, 0755);
    for (uint8_t f = 0; f < 3; f++) {
        char name[32];
        snprintf(name, sizeof name, "template_%u", f);
        uint8_t zero = 0;
        put(dir, name, (uint8_t)(3 + f), &zero, 1);
    }
    /* the log's committed-event counter: slot 0 (offset 56) damaged, and the
     * log cut inside its first frame (offset 104 + 1: a lost tail) */
    const uint8_t slot[2] = {56 / 4, 0x01}, cut[2] = {104 / 4, 0x00};
    put(dir, "log_counter_slot", 5, slot, 2); /* 5: log (5 % 3), XOR mode */
    put(dir, "log_cut_tail", 0x83, cut, 2);   /* 0x83: log, XOR mode, truncate */

    /* store_records: a real snapshot plaintext and a real event sequence */
    snprintf(dir, sizeof dir, "%s/store_records", argv[1]);
    mkdir(dir, 0755);
    char sdir[] = "/tmp/fedrec_seedgen_XXXXXX";
    if (!mkdtemp(sdir))
        return 1;
    char store_dir[64];
    snprintf(store_dir, sizeof store_dir, "%s/s", sdir);
    uint8_t key[32] = {9};
    fedreci_store *s;
    if (fedreci_store_open(&s, store_dir, FEDRECI_KEY_RAW, key, 32, 0, 0))
        return 1;
    float x[2] = {1.5f, -0.5f};
    fedreci_ledger_rec l = {.time_ms = 1700000000000,
                            .round = 3,
                            .stage = 2,
                            .bytes_sent = 4096,
                            .clipped = 1,
                            .what = "masked input"};
    if (fedreci_store_add_purchase(s, "85123A", 1291191960, 6, NULL) ||
        fedreci_store_set_model(s, 4, 3, 2, y, gram, codes, NULL, 0) ||
        fedreci_store_set_user_factors(s, x, 2) || fedreci_store_add_ledger(s, &l))
        return 1;
    fedreci_wbuf b = {0};
    fedreci_store_encode_state(s, &b);
    put(dir, "snapshot", 0, b.p, b.len);
    fedreci_wb_free(&b);
    /* events: purchase, participation, ledger, user factors */
    fedreci_wbuf ev = {0};
    fedreci_wbuf r = {0};
    fedreci_store_purchase pu = {7, 1291191960, 2, "71053"};
    fedreci_wb_u8(&r, REC_PURCHASE);
    fedreci_store_encode_purchase(&r, &pu);
    fedreci_wb_u8(&ev, (uint8_t)r.len);
    fedreci_wb_u8(&ev, (uint8_t)(r.len >> 8));
    fedreci_wb_put(&ev, r.p, r.len);
    fedreci_wb_free(&r);
    fedreci_wb_u8(&r, REC_PARTICIPATION);
    fedreci_wb_u8(&r, 0);
    fedreci_wb_u8(&ev, (uint8_t)r.len);
    fedreci_wb_u8(&ev, 0);
    fedreci_wb_put(&ev, r.p, r.len);
    fedreci_wb_free(&r);
    fedreci_wb_u8(&r, REC_LEDGER);
    fedreci_store_encode_ledger(&r, &l);
    fedreci_wb_u8(&ev, (uint8_t)r.len);
    fedreci_wb_u8(&ev, 0);
    fedreci_wb_put(&ev, r.p, r.len);
    fedreci_wb_free(&r);
    fedreci_wb_u8(&r, REC_USER_FACTORS);
    fedreci_wb_u32(&r, 2);
    fedreci_wb_floats(&r, x, 2);
    fedreci_wb_u8(&ev, (uint8_t)r.len);
    fedreci_wb_u8(&ev, 0);
    fedreci_wb_put(&ev, r.p, r.len);
    fedreci_wb_free(&r);
    put(dir, "events", 1, ev.p, ev.len);
    fedreci_wb_free(&ev);
    if (fedreci_store_forget(s))
        return 1;
    rmdir(sdir);
    /* link: the master-aggregator messages (fuzz_link) */
    {
        snprintf(dir, sizeof dir, "%s/link", argv[1]);
        mkdir(dir, 0755);
        uint8_t apk[32], ask[64], cpk[32] = {9};
        crypto_sign_seed_keypair(apk, ask, (const uint8_t *)"fedrec fuzz link aggregator key1");
        if (fedreci_link_enc_poll(&m, ask, 1, "tcp://10.0.0.7:7451", cpk, 3, 500))
            return 1;
        put(dir, "poll_signed", 0, nng_msg_body(m), nng_msg_len(m));
        nng_msg_free(m);
        uint32_t sum[7] = {1, 2, 3, 0xffffffffu, 5, 6, 2};
        fedreci_link_result r;
        memset(&r, 0, sizeof r);
        r.round_id = 7;
        r.group = 1;
        r.completed = 1;
        r.reason = "";
        r.survivors = r.advertised = r.shared = r.unmasked = 2;
        r.sum = sum;
        r.d = 7;
        if (fedreci_link_enc_result(&m, ask, 2, &r))
            return 1;
        put(dir, "result_signed", 0, nng_msg_body(m), nng_msg_len(m));
        /* mode 1: the AggRequest inside (the harness signs it again) */
        {
            Fedrec__Groups__V1__AggSigned *sg =
                fedrec__groups__v1__agg_signed__unpack(NULL, nng_msg_len(m), nng_msg_body(m));
            if (!sg)
                return 1;
            put(dir, "result_body", 1, sg->req.data, sg->req.len);
            fedrec__groups__v1__agg_signed__free_unpacked(sg, NULL);
        }
        nng_msg_free(m);
        /* a group that failed at its seed step, naming two withholders */
        {
            uint64_t wh[2] = {11, UINT64_C(0xfedcba9876543210)};
            r.completed = 0;
            r.reason = "stage 0 seed step: 2 of 4 roster members revealed";
            r.sum = NULL;
            r.withheld[0] = wh;
            r.n_withheld[0] = 2;
            if (fedreci_link_enc_result(&m, ask, 3, &r))
                return 1;
            Fedrec__Groups__V1__AggSigned *sg =
                fedrec__groups__v1__agg_signed__unpack(NULL, nng_msg_len(m), nng_msg_body(m));
            if (!sg)
                return 1;
            put(dir, "result_withheld_body", 1, sg->req.data, sg->req.len);
            fedrec__groups__v1__agg_signed__free_unpacked(sg, NULL);
            nng_msg_free(m);
        }
        /* ... at its consistency step (non-endorsers), and at its unmask
           stage (endorsed, no reveals) */
        for (int k = 1; k < 3; k++) {
            uint64_t wh[2] = {11, UINT64_C(0xfedcba9876543210)};
            r.completed = 0;
            r.reason = k == 1 ? "stage 3 consistency step: 2 of 4 endorsed" : "stage 3: too few";
            r.sum = NULL;
            memset(r.withheld, 0, sizeof r.withheld);
            memset(r.n_withheld, 0, sizeof r.n_withheld);
            r.withheld[k] = wh;
            r.n_withheld[k] = 2;
            if (fedreci_link_enc_result(&m, ask, 3 + (uint64_t)k, &r))
                return 1;
            Fedrec__Groups__V1__AggSigned *sg =
                fedrec__groups__v1__agg_signed__unpack(NULL, nng_msg_len(m), nng_msg_body(m));
            if (!sg)
                return 1;
            put(dir, k == 1 ? "result_consistency_withheld_body" : "result_unmask_withheld_body", 1,
                sg->req.data, sg->req.len);
            fedrec__groups__v1__agg_signed__free_unpacked(sg, NULL);
            nng_msg_free(m);
        }
        memset(r.withheld, 0, sizeof r.withheld);
        memset(r.n_withheld, 0, sizeof r.n_withheld);
        uint64_t ids[3] = {11, 22, 33};
        uint8_t pks[3 * 32];
        memset(pks, 0x42, sizeof pks);
        float y[6] = {0.5f, -0.25f, 1, 2, 3, 4};
        const char *codes[3] = {"A1", "B2", "C3"};
        uint32_t retired[1] = {2};
        fedreci_link_assign a;
        memset(&a, 0, sizeof a);
        a.round_id = 7;
        a.group = 1;
        a.n_groups = 2;
        a.p.round_id = 7;
        a.p.n = 3;
        a.p.k = 2;
        a.p.t = 2;
        a.p.d = 7;
        a.p.clip = 16;
        a.p.scale = 1024;
        a.p.max_weight = 1;
        a.model_version = 3;
        a.ids = ids;
        a.pks = pks;
        for (int s = 0; s < 4; s++)
            a.stage_ms[s] = 1000;
        a.has_model = 1;
        a.n_items = 3;
        a.k = 2;
        a.factors = (const uint8_t *)y; /* little-endian hosts */
        a.codes = codes;
        a.n_codes = 3;
        a.retired = retired;
        a.n_retired = 1;
        if (fedreci_link_enc_assign(&m, &a))
            return 1;
        put(dir, "assign_model", 3, nng_msg_body(m), nng_msg_len(m));
        nng_msg_free(m);
        if (fedreci_link_enc_verdict(&m, 7, 1, 1, 4, ""))
            return 1;
        put(dir, "verdict", 3, nng_msg_body(m), nng_msg_len(m));
        /* mode 2: the verdict as the master sends it, sealed for request 1 */
        {
            uint8_t mpk[32], msk[64];
            crypto_sign_seed_keypair(mpk, msk, (const uint8_t *)"fedrec fuzz link master key 0001");
            if (fedreci_link_seal_reply(&m, msk, apk, 1))
                return 1;
            put(dir, "verdict_signed", 2, nng_msg_body(m), nng_msg_len(m));
        }
        nng_msg_free(m);
        if (fedreci_link_enc_idle(&m, 0))
            return 1;
        put(dir, "idle", 3, nng_msg_body(m), nng_msg_len(m));
        nng_msg_free(m);
        if (fedreci_link_enc_error(&m, FEDREC_ERR_SIGNATURE, "unknown key"))
            return 1;
        put(dir, "error", 3, nng_msg_body(m), nng_msg_len(m));
        nng_msg_free(m);
    }
    return 0;
}

/* client/store_codec: the store's byte codec and its state records; see
 * store_codec.h. */
#include "client/store_codec.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "core/err.h"

/* ---- growable and bounded buffers ------------------------------------------ */

void fedreci_wipe_free(void *p, size_t n)
{
    if (p) {
        sodium_memzero(p, n);
        free(p);
    }
}

/* Grows an array of elem-sized entries to hold `need`, wiping the old copy
 * (the arrays hold the shopper's purchases). Returns 0 or -1 (OOM). */
int fedreci_secure_grow(void **arr, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t ncap = *cap ? *cap : 16;
    while (ncap < need) {
        if (ncap > SIZE_MAX / 2 / elem)
            return -1;
        ncap *= 2;
    }
    void *n = calloc(ncap, elem);
    if (!n)
        return -1;
    if (*arr) {
        memcpy(n, *arr, *cap * elem);
        fedreci_wipe_free(*arr, *cap * elem);
    }
    *arr = n;
    *cap = ncap;
    return 0;
}

void fedreci_wb_put(fedreci_wbuf *b, const void *d, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n > b->cap) {
        size_t ncap = b->cap ? b->cap : 256;
        while (ncap < b->len + n) {
            if (ncap > SIZE_MAX / 2) {
                b->oom = 1;
                return;
            }
            ncap *= 2;
        }
        uint8_t *np = malloc(ncap);
        if (!np) {
            b->oom = 1;
            return;
        }
        if (b->p) {
            memcpy(np, b->p, b->len);
            fedreci_wipe_free(b->p, b->cap);
        }
        b->p = np;
        b->cap = ncap;
    }
    memcpy(b->p + b->len, d, n);
    b->len += n;
}

void fedreci_wb_u8(fedreci_wbuf *b, uint8_t v)
{
    fedreci_wb_put(b, &v, 1);
}

void fedreci_wb_u32(fedreci_wbuf *b, uint32_t v)
{
    uint8_t t[4];
    for (int i = 0; i < 4; i++)
        t[i] = (uint8_t)(v >> (8 * i));
    fedreci_wb_put(b, t, 4);
}

void fedreci_wb_u64(fedreci_wbuf *b, uint64_t v)
{
    uint8_t t[8];
    for (int i = 0; i < 8; i++)
        t[i] = (uint8_t)(v >> (8 * i));
    fedreci_wb_put(b, t, 8);
}

void fedreci_wb_floats(fedreci_wbuf *b, const float *f, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &f[i], 4);
        fedreci_wb_u32(b, u);
    }
}

void fedreci_wb_str(fedreci_wbuf *b, const char *s)
{
    size_t n = strlen(s);
    fedreci_wb_u8(b, (uint8_t)n);
    fedreci_wb_put(b, s, n);
}

void fedreci_wb_free(fedreci_wbuf *b)
{
    fedreci_wipe_free(b->p, b->cap);
    b->p = NULL;
    b->len = b->cap = 0;
}

const uint8_t *fedreci_rb_take(fedreci_rbuf *r, size_t n)
{
    if (r->bad || r->len - r->off < n) {
        r->bad = 1;
        return NULL;
    }
    const uint8_t *q = r->p + r->off;
    r->off += n;
    return q;
}

uint8_t fedreci_rb_u8(fedreci_rbuf *r)
{
    const uint8_t *q = fedreci_rb_take(r, 1);
    return q ? q[0] : 0;
}

uint32_t fedreci_rb_u32(fedreci_rbuf *r)
{
    const uint8_t *q = fedreci_rb_take(r, 4);
    uint32_t v = 0;
    if (q)
        for (int i = 0; i < 4; i++)
            v |= (uint32_t)q[i] << (8 * i);
    return v;
}

uint64_t fedreci_rb_u64(fedreci_rbuf *r)
{
    const uint8_t *q = fedreci_rb_take(r, 8);
    uint64_t v = 0;
    if (q)
        for (int i = 0; i < 8; i++)
            v |= (uint64_t)q[i] << (8 * i);
    return v;
}

void fedreci_rb_floats(fedreci_rbuf *r, float *f, size_t n)
{
    for (size_t i = 0; i < n && !r->bad; i++) {
        uint32_t u = fedreci_rb_u32(r);
        memcpy(&f[i], &u, 4);
    }
}

/* Reads a length-prefixed string of at most max bytes into out (max + 1).
 * A NUL inside the string is malformed: the writer never produces one, and
 * the string would read back shorter than it was stored. */
void fedreci_rb_str(fedreci_rbuf *r, char *out, size_t max)
{
    size_t n = fedreci_rb_u8(r);
    if (n > max) {
        r->bad = 1;
        return;
    }
    const uint8_t *q = fedreci_rb_take(r, n);
    if (!q)
        return;
    if (memchr(q, 0, n)) {
        r->bad = 1;
        return;
    }
    memcpy(out, q, n);
    out[n] = '\0';
}

/* ---- state: events and snapshot ------------------------------------------- */

void fedreci_store_encode_purchase(fedreci_wbuf *b, const fedreci_store_purchase *p)
{
    fedreci_wb_u64(b, p->seq);
    fedreci_wb_u64(b, (uint64_t)p->time);
    fedreci_wb_u32(b, p->quantity);
    fedreci_wb_str(b, p->code);
}

static void decode_purchase(fedreci_rbuf *r, fedreci_store_purchase *p)
{
    p->seq = fedreci_rb_u64(r);
    p->time = (int64_t)fedreci_rb_u64(r);
    p->quantity = fedreci_rb_u32(r);
    fedreci_rb_str(r, p->code, FEDRECI_CODE_MAX);
    if (!r->bad && (p->quantity == 0 || p->code[0] == '\0'))
        r->bad = 1;
}

void fedreci_store_encode_ledger(fedreci_wbuf *b, const fedreci_ledger_rec *l)
{
    fedreci_wb_u64(b, (uint64_t)l->time_ms);
    fedreci_wb_u64(b, l->round);
    fedreci_wb_u32(b, l->stage);
    fedreci_wb_u64(b, l->bytes_sent);
    fedreci_wb_u32(b, l->clipped);
    fedreci_wb_str(b, l->what);
    fedreci_wb_u8(b, (uint8_t)l->kind);
    fedreci_wb_u32(b, l->refusal);
    fedreci_wb_u32(b, l->n);
    fedreci_wb_u32(b, l->k);
    fedreci_wb_u32(b, l->t);
    fedreci_wb_str(b, l->reason);
}

/* A ledger entry: the first layout (v2 = 0: REC_LEDGER, snapshots before
 * state version 4) or with kind, refusal, n, k, t and reason. */
static void decode_ledger(fedreci_rbuf *r, fedreci_ledger_rec *l, int v2)
{
    memset(l, 0, sizeof *l);
    l->time_ms = (int64_t)fedreci_rb_u64(r);
    l->round = fedreci_rb_u64(r);
    l->stage = fedreci_rb_u32(r);
    l->bytes_sent = fedreci_rb_u64(r);
    l->clipped = fedreci_rb_u32(r);
    fedreci_rb_str(r, l->what, FEDRECI_WHAT_MAX);
    if (!v2)
        return;
    l->kind = fedreci_rb_u8(r);
    l->refusal = fedreci_rb_u32(r);
    l->n = fedreci_rb_u32(r);
    l->k = fedreci_rb_u32(r);
    l->t = fedreci_rb_u32(r);
    fedreci_rb_str(r, l->reason, FEDRECI_REASON_MAX);
    if (!r->bad && l->kind > 1)
        r->bad = 1;
}

static void wb_f64(fedreci_wbuf *b, double v)
{
    uint64_t u;
    memcpy(&u, &v, sizeof u);
    fedreci_wb_u64(b, u);
}

static double rb_f64(fedreci_rbuf *r)
{
    uint64_t u = fedreci_rb_u64(r);
    double v;
    memcpy(&v, &u, sizeof v);
    return v;
}

void fedreci_store_encode_dp(fedreci_wbuf *b, const fedreci_dp_ledger_rec *l)
{
    fedreci_wb_u64(b, (uint64_t)l->time_ms);
    fedreci_wb_u64(b, l->round);
    fedreci_wb_u32(b, l->refused);
    fedreci_wb_u32(b, l->min_survivors);
    wb_f64(b, l->eps_round);
    wb_f64(b, l->eps_cumulative);
    wb_f64(b, l->delta);
    wb_f64(b, l->mu);
    wb_f64(b, l->l1);
    wb_f64(b, l->l2);
    wb_f64(b, l->noise_var);
    wb_f64(b, l->l2_bound);
    wb_f64(b, l->scale);
    fedreci_wb_str(b, l->reason);
}

static void decode_dp(fedreci_rbuf *r, fedreci_dp_ledger_rec *l)
{
    memset(l, 0, sizeof *l);
    l->time_ms = (int64_t)fedreci_rb_u64(r);
    l->round = fedreci_rb_u64(r);
    l->refused = fedreci_rb_u32(r);
    l->min_survivors = fedreci_rb_u32(r);
    l->eps_round = rb_f64(r);
    l->eps_cumulative = rb_f64(r);
    l->delta = rb_f64(r);
    l->mu = rb_f64(r);
    l->l1 = rb_f64(r);
    l->l2 = rb_f64(r);
    l->noise_var = rb_f64(r);
    l->l2_bound = rb_f64(r);
    l->scale = rb_f64(r);
    fedreci_rb_str(r, l->reason, FEDRECI_DP_REASON_MAX);
    if (!r->bad && l->refused > 1)
        r->bad = 1;
}

void fedreci_store_model_free(fedreci_store_model *m)
{
    if (!m)
        return;
    free(m->y);
    free(m->retired);
    free(m->gram);
    free(m->codes);
    free(m);
}

static fedrec_err set_x(fedreci_store *s, const float *x, uint32_t k)
{
    float *nx = NULL;
    if (k > 0) {
        nx = malloc((size_t)k * sizeof *nx);
        if (!nx)
            return fedreci_error(FEDREC_ERR_NOMEM, "out of memory for %u user factors", k);
        memcpy(nx, x, (size_t)k * sizeof *nx);
    }
    fedreci_wipe_free(s->x, (size_t)s->xk * sizeof *s->x);
    s->x = nx;
    s->xk = k;
    return FEDREC_OK;
}

/* Applies one decoded event to the in-memory state. Returns FEDREC_ERR_FORMAT
 * (without a message) when the record is malformed, FEDREC_ERR_NOMEM. */
fedrec_err fedreci_store_apply_record(fedreci_store *s, const uint8_t *p, size_t n)
{
    fedreci_rbuf r = {p, n, 0, 0};
    uint8_t type = fedreci_rb_u8(&r);
    switch (type) {
    case REC_PURCHASE: {
        fedreci_store_purchase pu;
        decode_purchase(&r, &pu);
        /* seq + 1 must not wrap: next_seq 0 would accept any later seq */
        if (r.bad || r.off != n || pu.seq < s->next_seq || pu.seq == UINT64_MAX)
            return FEDREC_ERR_FORMAT;
        if (fedreci_secure_grow((void **)&s->purchases, &s->cap_purchases, s->n_purchases + 1,
                                sizeof *s->purchases))
            return FEDREC_ERR_NOMEM;
        s->purchases[s->n_purchases++] = pu;
        s->next_seq = pu.seq + 1;
        sodium_memzero(&pu, sizeof pu);
        return FEDREC_OK;
    }
    case REC_PARTICIPATION: {
        uint8_t v = fedreci_rb_u8(&r);
        if (r.bad || r.off != n || v > 1)
            return FEDREC_ERR_FORMAT;
        s->opted_in = v;
        return FEDREC_OK;
    }
    case REC_LEDGER:
    case REC_LEDGER2: {
        fedreci_ledger_rec l;
        decode_ledger(&r, &l, type == REC_LEDGER2);
        if (r.bad || r.off != n)
            return FEDREC_ERR_FORMAT;
        if (fedreci_secure_grow((void **)&s->ledger, &s->cap_ledger, s->n_ledger + 1,
                                sizeof *s->ledger))
            return FEDREC_ERR_NOMEM;
        s->ledger[s->n_ledger++] = l;
        return FEDREC_OK;
    }
    case REC_DP: {
        fedreci_dp_ledger_rec l;
        decode_dp(&r, &l);
        if (r.bad || r.off != n)
            return FEDREC_ERR_FORMAT;
        if (fedreci_secure_grow((void **)&s->dp, &s->cap_dp, s->n_dp + 1, sizeof *s->dp))
            return FEDREC_ERR_NOMEM;
        s->dp[s->n_dp++] = l;
        return FEDREC_OK;
    }
    case REC_USER_FACTORS: {
        uint32_t k = fedreci_rb_u32(&r);
        if (r.bad || k > FEDRECI_MODEL_MAX_K || n - r.off != (size_t)k * 4)
            return FEDREC_ERR_FORMAT;
        float xb[FEDRECI_MODEL_MAX_K];
        fedreci_rb_floats(&r, xb, k);
        fedrec_err e = set_x(s, xb, k);
        sodium_memzero(xb, (size_t)k * sizeof(float));
        return e;
    }
    default:
        return FEDREC_ERR_FORMAT;
    }
}

void fedreci_store_encode_state(const fedreci_store *s, fedreci_wbuf *b)
{
    fedreci_wb_u32(b, STATE_VERSION);
    fedreci_wb_u8(b, s->has_log ? STATE_FLAG_HAS_LOG : 0);
    fedreci_wb_u8(b, (uint8_t)s->opted_in);
    fedreci_wb_put(b, s->sign_pk, FEDRECI_SIGN_PK_BYTES);
    fedreci_wb_put(b, s->keys->sign_sk, FEDRECI_SIGN_SK_BYTES);
    fedreci_wb_u64(b, s->next_seq);
    fedreci_wb_u32(b, s->xk);
    fedreci_wb_floats(b, s->x, s->xk);
    fedreci_wb_u32(b, (uint32_t)s->n_purchases);
    for (size_t i = 0; i < s->n_purchases; i++)
        fedreci_store_encode_purchase(b, &s->purchases[i]);
    fedreci_wb_u32(b, (uint32_t)s->n_ledger);
    for (size_t i = 0; i < s->n_ledger; i++)
        fedreci_store_encode_ledger(b, &s->ledger[i]);
    const fedreci_store_model *m = s->model;
    fedreci_wb_u8(b, m != NULL);
    if (m) {
        fedreci_wb_u64(b, m->version);
        fedreci_wb_u32(b, m->n_items);
        fedreci_wb_u32(b, m->k);
        fedreci_wb_u8(b, m->gram != NULL);
        fedreci_wb_floats(b, m->y, (size_t)m->n_items * m->k);
        if (m->gram)
            fedreci_wb_floats(b, m->gram, (size_t)m->k * m->k);
        for (uint32_t i = 0; i < m->n_items; i++)
            fedreci_wb_str(b, m->codes[i]);
        fedreci_wb_u32(b, m->n_retired);
        for (uint32_t i = 0; i < m->n_retired; i++)
            fedreci_wb_u32(b, m->retired[i]);
        fedreci_wb_put(b, m->checksum, sizeof m->checksum); /* version 6 */
    }
    fedreci_wb_u32(b, (uint32_t)s->n_dp); /* version 4 */
    for (size_t i = 0; i < s->n_dp; i++)
        fedreci_store_encode_dp(b, &s->dp[i]);
}

/* Retired rows must be strictly ascending and inside the model. */
int fedreci_store_retired_ok(const uint32_t *rows, uint32_t n, uint32_t n_items)
{
    if (n > n_items || (n && !rows))
        return 0;
    for (uint32_t i = 0; i < n; i++)
        if (rows[i] >= n_items || (i > 0 && rows[i] <= rows[i - 1]))
            return 0;
    return 1;
}

void fedreci_store_model_checksum(fedreci_store_model *m)
{
    crypto_generichash(m->checksum, sizeof m->checksum, (const unsigned char *)m->y,
                       (size_t)m->n_items * m->k * sizeof *m->y, NULL, 0);
}

int fedreci_store_model_dims_ok(uint32_t n_items, uint32_t k)
{
    return n_items >= 1 && n_items <= FEDRECI_MODEL_MAX_ITEMS && k >= 1 &&
           k <= FEDRECI_MODEL_MAX_K && (uint64_t)n_items * k <= FEDRECI_MODEL_MAX_FLOATS;
}

/* Decodes the cached model section of a snapshot into a new *out.
 * FEDREC_ERR_FORMAT (malformed), FEDREC_ERR_NOMEM; *out only on success. */
static fedrec_err decode_model(fedreci_rbuf *r, uint32_t state_version, fedreci_store_model **out)
{
    uint64_t version = fedreci_rb_u64(r);
    uint32_t n_items = fedreci_rb_u32(r), k = fedreci_rb_u32(r);
    uint8_t has_gram = fedreci_rb_u8(r);
    if (r->bad || !fedreci_store_model_dims_ok(n_items, k) || has_gram > 1 ||
        (uint64_t)n_items * k * 4 > r->len - r->off)
        return FEDREC_ERR_FORMAT;
    fedrec_err err = FEDREC_OK;
    fedreci_store_model *m = calloc(1, sizeof *m);
    if (!m)
        return FEDREC_ERR_NOMEM;
    m->version = version;
    m->n_items = n_items;
    m->k = k;
    m->y = malloc((size_t)n_items * k * sizeof(float));
    m->codes = calloc(n_items, sizeof *m->codes);
    if (has_gram)
        m->gram = malloc((size_t)k * k * sizeof(float));
    if (!m->y || !m->codes || (has_gram && !m->gram)) {
        err = FEDREC_ERR_NOMEM;
        goto out;
    }
    fedreci_rb_floats(r, m->y, (size_t)n_items * k);
    if (has_gram)
        fedreci_rb_floats(r, m->gram, (size_t)k * k);
    for (uint32_t i = 0; i < n_items && !r->bad; i++) {
        fedreci_rb_str(r, m->codes[i], FEDRECI_CODE_MAX);
        if (!r->bad && m->codes[i][0] == '\0')
            r->bad = 1;
    }
    if (!r->bad && state_version >= 2) {
        uint32_t nr = fedreci_rb_u32(r);
        if (r->bad || nr > n_items || nr > (r->len - r->off) / 4) {
            r->bad = 1;
        } else if (nr) {
            m->retired = malloc((size_t)nr * sizeof *m->retired);
            if (!m->retired) {
                err = FEDREC_ERR_NOMEM;
                goto out;
            }
            for (uint32_t i = 0; i < nr; i++)
                m->retired[i] = fedreci_rb_u32(r);
            m->n_retired = nr;
            if (!r->bad && !fedreci_store_retired_ok(m->retired, nr, n_items))
                r->bad = 1;
        }
    }
    if (!r->bad && state_version >= 6) {
        /* authenticated with the rest of the snapshot: taken, not recomputed */
        const uint8_t *cs = fedreci_rb_take(r, sizeof m->checksum);
        if (cs)
            memcpy(m->checksum, cs, sizeof m->checksum);
    } else if (!r->bad) {
        fedreci_store_model_checksum(m);
    }
    if (r->bad)
        err = FEDREC_ERR_FORMAT;
out:
    if (err)
        fedreci_store_model_free(m);
    else
        *out = m;
    return err;
}

/* Decodes a snapshot's plaintext into s. FEDREC_ERR_FORMAT (no message) when
 * malformed. */
fedrec_err fedreci_store_decode_state(fedreci_store *s, const uint8_t *p, size_t n)
{
    fedreci_rbuf r = {p, n, 0, 0};
    uint32_t state_version = fedreci_rb_u32(&r);
    if (state_version < STATE_VERSION_MIN || state_version > STATE_VERSION)
        return FEDREC_ERR_FORMAT;
    /* Versions 1 and 2 have no flags: whether their log must exist is unknown,
     * so a missing log is not detected until the next snapshot (docs). */
    uint8_t flags = state_version >= 3 ? fedreci_rb_u8(&r) : 0;
    if (r.bad || (flags & ~STATE_FLAG_HAS_LOG) != 0)
        return FEDREC_ERR_FORMAT;
    s->has_log = (flags & STATE_FLAG_HAS_LOG) != 0;
    s->snap_has_log = s->has_log;
    uint8_t opted = fedreci_rb_u8(&r);
    const uint8_t *pk = fedreci_rb_take(&r, FEDRECI_SIGN_PK_BYTES);
    const uint8_t *sk = fedreci_rb_take(&r, FEDRECI_SIGN_SK_BYTES);
    uint64_t next_seq = fedreci_rb_u64(&r);
    uint32_t xk = fedreci_rb_u32(&r);
    if (r.bad || opted > 1 || xk > FEDRECI_MODEL_MAX_K)
        return FEDREC_ERR_FORMAT;
    s->opted_in = opted;
    memcpy(s->sign_pk, pk, FEDRECI_SIGN_PK_BYTES);
    memcpy(s->keys->sign_sk, sk, FEDRECI_SIGN_SK_BYTES);
    s->next_seq = next_seq;
    if (xk) {
        float xb[FEDRECI_MODEL_MAX_K];
        fedreci_rb_floats(&r, xb, xk);
        fedrec_err e = r.bad ? FEDREC_ERR_FORMAT : set_x(s, xb, xk);
        sodium_memzero(xb, (size_t)xk * sizeof(float));
        if (e)
            return e;
    }
    uint32_t np = fedreci_rb_u32(&r);
    if (r.bad || np > (r.len - r.off) / 21)
        return FEDREC_ERR_FORMAT;
    if (fedreci_secure_grow((void **)&s->purchases, &s->cap_purchases, np, sizeof *s->purchases))
        return FEDREC_ERR_NOMEM;
    for (uint32_t i = 0; i < np; i++) {
        decode_purchase(&r, &s->purchases[i]);
        if (r.bad || s->purchases[i].seq >= next_seq ||
            (i > 0 && s->purchases[i].seq <= s->purchases[i - 1].seq))
            return FEDREC_ERR_FORMAT;
    }
    s->n_purchases = np;
    uint32_t nl = fedreci_rb_u32(&r);
    if (r.bad || nl > (r.len - r.off) / 33)
        return FEDREC_ERR_FORMAT;
    if (fedreci_secure_grow((void **)&s->ledger, &s->cap_ledger, nl, sizeof *s->ledger))
        return FEDREC_ERR_NOMEM;
    for (uint32_t i = 0; i < nl; i++)
        decode_ledger(&r, &s->ledger[i], state_version >= 5);
    if (r.bad)
        return FEDREC_ERR_FORMAT;
    s->n_ledger = nl;
    uint8_t has_model = fedreci_rb_u8(&r);
    if (r.bad || has_model > 1)
        return FEDREC_ERR_FORMAT;
    if (has_model) {
        fedrec_err e = decode_model(&r, state_version, &s->model);
        if (e)
            return e;
    }
    if (state_version >= 4) {
        uint32_t nd = fedreci_rb_u32(&r);
        if (r.bad || nd > (r.len - r.off) / 97) /* the smallest record */
            return FEDREC_ERR_FORMAT;
        if (nd && fedreci_secure_grow((void **)&s->dp, &s->cap_dp, nd, sizeof *s->dp))
            return FEDREC_ERR_NOMEM;
        for (uint32_t i = 0; i < nd; i++)
            decode_dp(&r, &s->dp[i]);
        if (r.bad)
            return FEDREC_ERR_FORMAT;
        s->n_dp = nd;
    }
    if (r.off != r.len)
        return FEDREC_ERR_FORMAT;
    return FEDREC_OK;
}

void fedreci_store_state_free(fedreci_store *s)
{
    fedreci_wipe_free(s->purchases, s->cap_purchases * sizeof *s->purchases);
    s->purchases = NULL;
    s->n_purchases = s->cap_purchases = 0;
    fedreci_wipe_free(s->ledger, s->cap_ledger * sizeof *s->ledger);
    s->ledger = NULL;
    s->n_ledger = s->cap_ledger = 0;
    fedreci_wipe_free(s->dp, s->cap_dp * sizeof *s->dp);
    s->dp = NULL;
    s->n_dp = s->cap_dp = 0;
    fedreci_wipe_free(s->x, (size_t)s->xk * sizeof *s->x);
    s->x = NULL;
    s->xk = 0;
    fedreci_store_model_free(s->model);
    s->model = NULL;
}

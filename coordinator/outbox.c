/* coordinator/engine: the outbox (replies queued under the engine's lock and
 * sent after it) and held (parked) requests. See engine_internal.h. */
#include "coordinator/engine_internal.h"

#include <stdlib.h>

#include "core/err.h"
#include "core/log.h"

void fedreci_eng_ob_push(outbox *ob, cctx *x, nng_msg *msg, pmodel *model,
                         const fedreci_wire_hdr *h)
{
    if (x->ob_queued) {
        /* A context has one pending operation, so this does not happen; if
         * it did, the later reply replaces the earlier one. */
        if (x->ob_msg)
            nng_msg_free(x->ob_msg);
        fedreci_eng_model_unref(x->ob_model);
    } else {
        x->ob_next = NULL;
        if (ob->tail)
            ob->tail->ob_next = x;
        else
            ob->head = x;
        ob->tail = x;
        ob->n++;
        x->ob_queued = 1;
    }
    x->ob_msg = msg;
    x->ob_model = model;
    if (h)
        x->ob_hdr = *h;
}

void fedreci_eng_cat_unref(pcat *cat)
{
    if (cat && atomic_fetch_sub(&cat->refs, 1) == 1) {
        for (size_t i = 0; cat->codes && i < cat->n_codes; i++)
            free(cat->codes[i]);
        free(cat->codes);
        free(cat->retired);
        free(cat);
    }
}

void fedreci_eng_model_unref(pmodel *m)
{
    if (m && atomic_fetch_sub(&m->refs, 1) == 1) {
        fedreci_eng_cat_unref(m->cat);
        free(m->y);
        free(m->gram);
        free(m);
    }
}

void fedreci_eng_flush(fedreci_coord *c, outbox *ob)
{
    cctx *next;
    for (cctx *x = ob->head; x; x = next) {
        next = x->ob_next;
        nng_msg *msg = x->ob_msg;
        pmodel *model = x->ob_model;
        x->ob_next = NULL;
        x->ob_msg = NULL;
        x->ob_model = NULL;
        x->ob_queued = 0;
        if (model) {
            fedreci_wire_model wm = {model->version,
                                     model->n_items,
                                     model->k,
                                     model->y,
                                     model->gram,
                                     model->checksum,
                                     (const char *const *)model->cat->codes,
                                     model->cat->n_codes,
                                     model->cat->retired,
                                     model->cat->n_retired};
            if (fedreci_wire_enc_model_reply(&msg, &x->ob_hdr, &wm, model->version)) {
                /* out of memory for the largest reply: say so (a small
                 * message), so the client backs off instead of waiting */
                fedreci_log(FEDRECI_LOG_WARN, -1, "client %016llx: model reply: %s",
                            (unsigned long long)x->ob_hdr.client_id, fedrec_errmsg());
                if (fedreci_wire_enc_error(&msg, &x->ob_hdr, FEDREC_ERR_NOMEM,
                                           "the coordinator is out of memory: retry later"))
                    msg = NULL;
            }
            fedreci_eng_model_unref(model);
#ifdef FEDREC_CHEAT
            if (msg) /* the cheating-coordinator test build only (engine_internal.h) */
                msg = fedreci_cheat_on_reply(msg);
#endif
        }
        if (atomic_load(&c->closing_flag)) {
            if (msg)
                nng_msg_free(msg);
            x->state = CX_IDLE;
            continue;
        }
        if (msg) {
            x->state = CX_SENDING;
            nng_aio_set_msg(x->aio, msg);
            nng_aio_set_timeout(x->aio, (nng_duration)c->cfg.send_timeout_ms);
            nng_ctx_send(x->ctx, x->aio);
        } else {
            x->state = CX_RECV;
            nng_aio_set_timeout(x->aio, NNG_DURATION_INFINITE);
            nng_ctx_recv(x->ctx, x->aio);
        }
    }
    ob->head = ob->tail = NULL;
    ob->n = 0;
}

void fedreci_eng_reply(fedreci_coord *c, cctx *x, nng_msg *msg, outbox *ob)
{
#ifdef FEDREC_CHEAT
    if (msg) /* the cheating-coordinator test build only (engine_internal.h) */
        msg = fedreci_cheat_on_reply(msg);
#endif
    if (msg) {
        c->bytes_out += nng_msg_len(msg);
        x->state = CX_SENDING;
    } else {
        x->state = CX_RECV;
    }
    fedreci_eng_ob_push(ob, x, msg, NULL, NULL);
}

void fedreci_eng_reply_error(fedreci_coord *c, cctx *x, const fedreci_wire_hdr *h, fedrec_err code,
                             const char *text, outbox *ob)
{
    nng_msg *m = NULL;
    fedreci_log(FEDRECI_LOG_WARN, h->round_id ? (int64_t)h->round_id : -1,
                "client %016llx stage %u: refused (%s): %s", (unsigned long long)h->client_id,
                h->stage, fedrec_strerror(code), text);
    if (fedreci_wire_enc_error(&m, h, code, text))
        m = NULL;
    fedreci_eng_reply(c, x, m, ob);
}

void fedreci_eng_reply_retry(fedreci_coord *c, cctx *x, const fedreci_wire_hdr *h, outbox *ob)
{
    nng_msg *m = NULL;
    if (fedreci_wire_enc_retry(&m, h, c->cfg.retry_after_ms))
        m = NULL;
    fedreci_eng_reply(c, x, m, ob);
}

int fedreci_eng_can_park(const fedreci_coord *c)
{
    return c->n_parked < c->park_limit;
}

void fedreci_eng_park(fedreci_coord *c, cctx *x)
{
    x->state = CX_PARKED;
    c->n_parked++;
}

cctx *fedreci_eng_unpark(fedreci_coord *c, int32_t idx)
{
    cctx *x = &c->ctx[idx];
    c->n_parked--;
    return x;
}

void fedreci_eng_unpark_drop(fedreci_coord *c, int32_t idx, outbox *ob)
{
    cctx *x = fedreci_eng_unpark(c, idx);
    fedreci_eng_reply(c, x, NULL, ob);
}

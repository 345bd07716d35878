/* Tests for coordinator/outbox.c (replies queued under the engine's lock and
 * sent after it): a model reply that cannot be encoded. The test program is
 * linked with --wrap=nng_msg_alloc (tests/outbox.cmake), so the test can make
 * every allocation of a message at least fail_from bytes long fail, the way
 * an out-of-memory coordinator fails to build the largest reply it sends. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "harness_engine.h"

int __real_nng_msg_alloc(nng_msg **m, size_t size);
int __wrap_nng_msg_alloc(nng_msg **m, size_t size);

/* 0: every allocation goes through; else those of at least this many bytes
 * fail with NNG_ENOMEM. */
static atomic_size_t fail_from;
static atomic_uint failed;

int __wrap_nng_msg_alloc(nng_msg **m, size_t size)
{
    size_t f = atomic_load(&fail_from);
    if (f && size >= f) {
        atomic_fetch_add(&failed, 1);
        return NNG_ENOMEM;
    }
    return __real_nng_msg_alloc(m, size);
}

static th_world W;
static th_model M;

/* A model reply whose encoding fails is answered with Error(NOMEM) (a small
 * message) instead of leaving its context marked as sending: before the fix
 * the client got no answer, and the context took the next request that
 * reached it for the completion of a send and dropped it. Every context
 * keeps serving afterwards: more requests than there are contexts are all
 * answered, and the full model is sent once memory is back. */
static void test_model_reply_out_of_memory(void **state)
{
    (void)state;
    const char *url = "inproc://fedrec-outbox-oom";
    th_model_init(&M, 50, 5, 13, 17, 0.01f, "I%02d"); /* a model reply of ~1.4 kB */
    th_world_init(&W, &M, 1, 1, NULL);
    fedreci_coord_config cfg;
    const char *urls[1];
    th_coord_config(&cfg, urls, url);
    cfg.n_contexts = 8;
    cfg.cohort_size = 2;
    cfg.checkin_window_ms = 600000;
    fedreci_coord_model mdl = th_model_start(&M, 1);
    fedreci_coord *c = th_coord_start(&cfg, NULL, &mdl);
    th_raw r;
    th_raw_open(&r, url, 20000);
    th_client *me = &W.cl[0];
    th_raw_keys(&r, me->sk, NULL);
    nng_msg *m;
    fedreci_wire_hdr h = {me->id, 0, FEDRECI_WIRE_STAGE_CHECKIN};
    /* registered by an opted-out check-in (answered at once) */
    assert_int_equal(fedreci_wire_enc_checkin(&m, &h, me->pk, 0, 0), FEDREC_OK);
    fedreci_wire_env *e = th_raw_req(&r, m);
    assert_int_equal(e->body_case, FEDREC__V1__ENVELOPE__BODY_CHECK_IN_REPLY);
    fedreci_wire_free(e);

    h.stage = FEDRECI_WIRE_STAGE_MODEL;
    assert_int_equal(fedreci_wire_enc_model_request(&m, &h, 0), FEDREC_OK);
    atomic_store(&fail_from, 1000); /* the model reply, nothing smaller */
    e = th_raw_req(&r, m);
    atomic_store(&fail_from, 0);
    assert_true(atomic_load(&failed) >= 1);
    assert_int_equal(e->body_case, FEDREC__V1__ENVELOPE__BODY_ERROR);
    assert_int_equal(e->error->code, FEDREC_ERR_NOMEM);
    assert_non_null(strstr(e->error->text, "out of memory"));
    fedreci_wire_free(e);

    /* three times as many requests as contexts: each answered */
    for (uint32_t i = 0; i < 3 * cfg.n_contexts; i++) {
        assert_int_equal(fedreci_wire_enc_model_request(&m, &h, 1), FEDREC_OK);
        e = th_raw_req(&r, m);
        assert_int_equal(e->body_case, FEDREC__V1__ENVELOPE__BODY_MODEL_REPLY);
        assert_true(e->model_reply->not_modified);
        fedreci_wire_free(e);
    }
    assert_int_equal(fedreci_wire_enc_model_request(&m, &h, 0), FEDREC_OK);
    e = th_raw_req(&r, m);
    fedreci_wire_model wm;
    assert_int_equal(fedreci_wire_get_model(e, &wm), FEDREC_OK);
    assert_int_equal(wm.version, 1);
    assert_int_equal(wm.n_items, 50);
    assert_int_equal(wm.k, 5);
    assert_memory_equal(wm.item_factors, M.y, sizeof(float) * 50 * 5);
    fedreci_wire_free(e);
    th_raw_close(&r);
    fedreci_coord_destroy(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_model_reply_out_of_memory),
    };
    return th_run(tests, sizeof tests / sizeof tests[0]);
}

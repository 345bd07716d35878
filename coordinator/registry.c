/* coordinator/engine: the client registry, the known clients in arrival
 * order in a growable array and an id map (core/idmap.h) from client id to
 * row; entries are never removed. See engine_internal.h. */
#include "coordinator/engine_internal.h"

#include <stdlib.h>
#include <string.h>

#include "core/idmap.h"

crec *fedreci_eng_reg_find(fedreci_coord *c, uint64_t id)
{
    uint32_t row;
    return fedreci_idmap_find(&c->reg_index, id, &row) ? &c->reg[row] : NULL;
}

crec *fedreci_eng_reg_insert(fedreci_coord *c, uint64_t id)
{
    crec *r = fedreci_eng_reg_find(c, id);
    if (r)
        return r;
    if (c->reg_n == c->reg_cap) {
        size_t nc = c->reg_cap ? c->reg_cap * 2 : 1024;
        crec *nr = nc <= FEDRECI_IDMAP_MAX_INDEX ? realloc(c->reg, nc * sizeof *nr) : NULL;
        if (!nr)
            return NULL;
        c->reg = nr;
        c->reg_cap = nc;
    }
    if (fedreci_idmap_put(&c->reg_index, id, (uint32_t)c->reg_n, NULL) != FEDREC_OK)
        return NULL;
    crec *e = &c->reg[c->reg_n++];
    memset(e, 0, sizeof *e);
    e->id = id;
    e->wait_ctx = -1;
    return e;
}

void fedreci_eng_reg_free(fedreci_coord *c)
{
    free(c->reg);
    c->reg = NULL;
    c->reg_cap = c->reg_n = 0;
    fedreci_idmap_fini(&c->reg_index);
}

void fedreci_eng_exclude(fedreci_coord *c, crec *e, uint64_t round_id, int report, outbox *ob)
{
    if (!e || e->excluded_round)
        return;
    e->excluded_round = round_id ? round_id : 1;
    if (e->wait_ctx >= 0 && ob) {
        cctx *x = fedreci_eng_unpark(c, e->wait_ctx);
        e->wait_ctx = -1;
        for (size_t i = 0; i < c->n_waiting; i++)
            if (c->waiting[i] == e->id) {
                c->waiting[i] = c->waiting[--c->n_waiting];
                break;
            }
        fedreci_wire_hdr h = {e->id, 0, FEDRECI_WIRE_STAGE_CHECKIN};
        fedreci_eng_reply_error(c, x, &h, FEDREC_ERR_NOT_SELECTED,
                                "excluded: named a culprit in an earlier round", ob);
    }
    if (report && c->hooks.on_client_excluded)
        c->hooks.on_client_excluded(c->hooks.arg, e->id, e->excluded_round);
}

/* coordinator/engine: the client registry, an open-addressing hash table
 * keyed by client id (linear probing, grown at half full; entries are never
 * removed). See engine_internal.h. */
#include "coordinator/engine_internal.h"

#include <stdlib.h>
#include <string.h>

static uint64_t hash64(uint64_t x)
{
    uint64_t s = x;
    return splitmix64(&s);
}

crec *fedreci_eng_reg_find(fedreci_coord *c, uint64_t id)
{
    if (!c->reg_cap)
        return NULL;
    size_t mask = c->reg_cap - 1;
    for (size_t i = hash64(id) & mask;; i = (i + 1) & mask) {
        if (!c->reg[i].used)
            return NULL;
        if (c->reg[i].id == id)
            return &c->reg[i];
    }
}

crec *fedreci_eng_reg_insert(fedreci_coord *c, uint64_t id)
{
    crec *r = fedreci_eng_reg_find(c, id);
    if (r)
        return r;
    if ((c->reg_n + 1) * 2 > c->reg_cap) {
        size_t nc = c->reg_cap ? c->reg_cap * 2 : 1024;
        crec *nr = calloc(nc, sizeof *nr);
        if (!nr)
            return NULL;
        for (size_t i = 0; i < c->reg_cap; i++) {
            if (!c->reg[i].used)
                continue;
            size_t j = hash64(c->reg[i].id) & (nc - 1);
            while (nr[j].used)
                j = (j + 1) & (nc - 1);
            nr[j] = c->reg[i];
        }
        free(c->reg);
        c->reg = nr;
        c->reg_cap = nc;
    }
    size_t mask = c->reg_cap - 1;
    size_t i = hash64(id) & mask;
    while (c->reg[i].used)
        i = (i + 1) & mask;
    crec *e = &c->reg[i];
    memset(e, 0, sizeof *e);
    e->used = 1;
    e->id = id;
    e->wait_ctx = -1;
    c->reg_n++;
    return e;
}

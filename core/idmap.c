/* Open-addressing id map; see idmap.h. */
#include "core/idmap.h"

#include <stdlib.h>

#include "core/err.h"
#include "core/rng.h"

#define FIRST_CAP 64

void fedreci_idmap_fini(fedreci_idmap *m)
{
    if (!m)
        return;
    free(m->slots);
    m->slots = NULL;
    m->cap = m->n = 0;
}

size_t fedreci_idmap_size(const fedreci_idmap *m)
{
    return m->n;
}

/* The slot holding id, or the empty slot where it would go. cap > 0. */
static size_t probe(const fedreci_idmap_slot *slots, size_t cap, uint64_t id)
{
    size_t mask = cap - 1;
    size_t i = (size_t)fedreci_rng_mix(id) & mask;
    while (slots[i].index1 && slots[i].id != id)
        i = (i + 1) & mask;
    return i;
}

int fedreci_idmap_find(const fedreci_idmap *m, uint64_t id, uint32_t *index)
{
    if (m->cap == 0)
        return 0;
    const fedreci_idmap_slot *s = &m->slots[probe(m->slots, m->cap, id)];
    if (!s->index1)
        return 0;
    *index = s->index1 - 1;
    return 1;
}

static fedrec_err grow(fedreci_idmap *m)
{
    if (m->cap > SIZE_MAX / 2 / sizeof *m->slots)
        return fedreci_error(FEDREC_ERR_NOMEM, "id map: more than %zu entries", m->n);
    size_t cap = m->cap ? m->cap * 2 : FIRST_CAP;
    fedreci_idmap_slot *slots = calloc(cap, sizeof *slots);
    if (!slots)
        return fedreci_error(FEDREC_ERR_NOMEM, "id map: out of memory growing to %zu slots", cap);
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].index1)
            slots[probe(slots, cap, m->slots[i].id)] = m->slots[i];
    free(m->slots);
    m->slots = slots;
    m->cap = cap;
    return FEDREC_OK;
}

fedrec_err fedreci_idmap_put(fedreci_idmap *m, uint64_t id, uint32_t index, uint32_t *existing)
{
    if (index > FEDRECI_IDMAP_MAX_INDEX)
        return fedreci_error(FEDREC_ERR_INVALID, "id map: index %u of id %llu is too large", index,
                             (unsigned long long)id);
    uint32_t old;
    if (fedreci_idmap_find(m, id, &old)) {
        if (existing)
            *existing = old;
        return fedreci_error(FEDREC_ERR_DUPLICATE, "id map: id %llu is already at index %u",
                             (unsigned long long)id, old);
    }
    if ((m->n + 1) * 2 > m->cap) {
        fedrec_err e = grow(m);
        if (e)
            return e;
    }
    fedreci_idmap_slot *s = &m->slots[probe(m->slots, m->cap, id)];
    s->id = id;
    s->index1 = index + 1;
    m->n++;
    return FEDREC_OK;
}

int fedreci_idmap_del(fedreci_idmap *m, uint64_t id)
{
    if (m->cap == 0)
        return 0;
    size_t mask = m->cap - 1;
    size_t i = probe(m->slots, m->cap, id);
    if (!m->slots[i].index1)
        return 0;
    /* backward shift: move each later entry of the run into the hole unless
     * its home slot lies cyclically in (hole, its slot] */
    for (size_t j = (i + 1) & mask; m->slots[j].index1; j = (j + 1) & mask) {
        size_t home = (size_t)fedreci_rng_mix(m->slots[j].id) & mask;
        if (((j - home) & mask) >= ((j - i) & mask)) {
            m->slots[i] = m->slots[j];
            i = j;
        }
    }
    m->slots[i].index1 = 0;
    m->n--;
    return 1;
}

int fedreci_idmap_set(fedreci_idmap *m, uint64_t id, uint32_t index)
{
    if (m->cap == 0 || index > FEDRECI_IDMAP_MAX_INDEX)
        return 0;
    fedreci_idmap_slot *s = &m->slots[probe(m->slots, m->cap, id)];
    if (!s->index1)
        return 0;
    s->index1 = index + 1;
    return 1;
}

int fedreci_idmap_next(const fedreci_idmap *m, size_t *pos, uint64_t *id, uint32_t *index)
{
    for (; *pos < m->cap; (*pos)++) {
        const fedreci_idmap_slot *s = &m->slots[*pos];
        if (s->index1) {
            *id = s->id;
            *index = s->index1 - 1;
            (*pos)++;
            return 1;
        }
    }
    return 0;
}

/* String interning map; see strmap.h. */
#include "core/strmap.h"

#include <stdlib.h>
#include <string.h>

#include "core/err.h"

#define FIRST_CAP 64

/* FNV-1a, 64 bit (Fowler, Noll, Vo). */
static uint64_t hash_bytes(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

void fedreci_strmap_fini(fedreci_strmap *m)
{
    if (!m)
        return;
    for (uint32_t i = 0; i < m->n; i++)
        free(m->keys[i]);
    free(m->keys);
    free(m->slots);
    memset(m, 0, sizeof *m);
}

uint32_t fedreci_strmap_size(const fedreci_strmap *m)
{
    return m->n;
}

const char *fedreci_strmap_key(const fedreci_strmap *m, uint32_t i)
{
    return i < m->n ? m->keys[i] : NULL;
}

/* The slot holding the key, or the empty slot where it would go. cap > 0.
 * keys == NULL (during a rehash) matches on the id alone. */
static size_t probe(const fedreci_strmap *m, const fedreci_strmap_slot *slots, size_t cap,
                    uint64_t h, const char *s, size_t len)
{
    size_t mask = cap - 1;
    size_t i = (size_t)h & mask;
    for (; slots[i].id1; i = (i + 1) & mask) {
        if (slots[i].hash != (uint32_t)h || !s)
            continue;
        const char *k = m->keys[slots[i].id1 - 1];
        if (memcmp(k, s, len) == 0 && k[len] == '\0')
            break;
    }
    return i;
}

int fedreci_strmap_find(const fedreci_strmap *m, const char *s, size_t len, uint32_t *index)
{
    if (m->cap == 0 || memchr(s, '\0', len))
        return 0;
    const fedreci_strmap_slot *sl =
        &m->slots[probe(m, m->slots, m->cap, hash_bytes(s, len), s, len)];
    if (!sl->id1)
        return 0;
    *index = sl->id1 - 1;
    return 1;
}

static fedrec_err grow(fedreci_strmap *m)
{
    if (m->cap > SIZE_MAX / 2 / sizeof *m->slots)
        return fedreci_error(FEDREC_ERR_NOMEM, "string map: too many strings");
    size_t cap = m->cap ? m->cap * 2 : FIRST_CAP;
    fedreci_strmap_slot *slots = calloc(cap, sizeof *slots);
    if (!slots)
        return fedreci_error(FEDREC_ERR_NOMEM, "string map: out of memory growing to %zu slots",
                             cap);
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->slots[i].id1)
            continue;
        /* the stored low 32 bits place it: cap <= 2^32 as n <= FEDRECI_STRMAP_MAX */
        slots[probe(m, slots, cap, m->slots[i].hash, NULL, 0)] = m->slots[i];
    }
    free(m->slots);
    m->slots = slots;
    m->cap = cap;
    return FEDREC_OK;
}

fedrec_err fedreci_strmap_intern(fedreci_strmap *m, const char *s, size_t len, uint32_t *index,
                                 int *is_new)
{
    if (memchr(s, '\0', len))
        return fedreci_error(FEDREC_ERR_INVALID, "string map: key holds a NUL byte");
    uint64_t h = hash_bytes(s, len);
    if (m->cap) {
        const fedreci_strmap_slot *sl = &m->slots[probe(m, m->slots, m->cap, h, s, len)];
        if (sl->id1) {
            *index = sl->id1 - 1;
            if (is_new)
                *is_new = 0;
            return FEDREC_OK;
        }
    }
    if (m->n >= FEDRECI_STRMAP_MAX)
        return fedreci_error(FEDREC_ERR_TOO_BIG, "string map: more than %u strings",
                             FEDRECI_STRMAP_MAX);
    if ((size_t)(m->n + 1) * 2 > m->cap) {
        fedrec_err e = grow(m);
        if (e)
            return e;
    }
    if (m->n == m->cap_keys) {
        uint32_t nk = m->cap_keys ? m->cap_keys * 2 : FIRST_CAP;
        char **kk = realloc(m->keys, (size_t)nk * sizeof *kk);
        if (!kk)
            return fedreci_error(FEDREC_ERR_NOMEM, "string map: out of memory");
        m->keys = kk;
        m->cap_keys = nk;
    }
    char *copy = malloc(len + 1);
    if (!copy)
        return fedreci_error(FEDREC_ERR_NOMEM, "string map: out of memory copying a key");
    memcpy(copy, s, len);
    copy[len] = '\0';
    size_t i = probe(m, m->slots, m->cap, h, s, len);
    m->keys[m->n] = copy;
    m->slots[i].hash = (uint32_t)h;
    m->slots[i].id1 = m->n + 1;
    *index = m->n++;
    if (is_new)
        *is_new = 1;
    return FEDREC_OK;
}

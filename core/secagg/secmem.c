/* Secure memory for the SecAgg secrets, recycled (see secmem.h). */
#include "core/secagg/secmem.h"

#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include <sodium.h>

/* Each block is sodium_malloc(HDR + n): the header holds n and a check word,
 * so the caller's n bytes end where sodium_malloc's block ends (right before
 * the guard page), as with sodium_malloc(n). */
#define HDR 16u
#define MAGIC 0x7365636d656d3031ull /* "secmem01" */

typedef struct hdr {
    uint64_t n, check;
} hdr;

/* A cached block's first word links to the next one of the same size. */
typedef struct size_list {
    size_t n;   /* the caller's size, 0 = unused slot */
    void *head; /* the user pointer of the first cached block */
    size_t count;
} size_list;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static size_list lists[FEDRECI_SECMEM_CACHE_SIZES];
static size_t cached_bytes, cached_blocks;

static hdr *header_of(void *p)
{
    return (hdr *)((uint8_t *)p - HDR);
}

void *fedreci_secmem_alloc(size_t n)
{
    if (!n)
        n = 1;
    if (n <= FEDRECI_SECMEM_CACHE_MAX_BLOCK) {
        void *p = NULL;
        pthread_mutex_lock(&mu);
        for (int i = 0; i < FEDRECI_SECMEM_CACHE_SIZES; i++) {
            size_list *l = &lists[i];
            if (l->n == n && l->head) {
                p = l->head;
                memcpy(&l->head, p, sizeof l->head);
                l->count--;
                cached_blocks--;
                cached_bytes -= n;
                break;
            }
        }
        pthread_mutex_unlock(&mu);
        if (p) {
            memset(p, 0, sizeof(void *)); /* the link; the rest is zero */
            return p;
        }
    }
    if (n > SIZE_MAX - HDR)
        return NULL;
    uint8_t *b = sodium_malloc(HDR + n);
    if (!b)
        return NULL;
    hdr h = {n, n ^ MAGIC};
    memcpy(b, &h, sizeof h);
    return b + HDR;
}

void fedreci_secmem_free(void *p)
{
    if (!p)
        return;
    hdr h;
    memcpy(&h, header_of(p), sizeof h);
    if (h.check != (h.n ^ MAGIC)) {
        /* a corrupted header: leave the block to sodium_free, which checks
           the canary before it */
        sodium_free(header_of(p));
        return;
    }
    size_t n = (size_t)h.n;
    sodium_memzero(p, n);
    if (n <= FEDRECI_SECMEM_CACHE_MAX_BLOCK) {
        int kept = 0;
        pthread_mutex_lock(&mu);
        if (cached_bytes + n <= FEDRECI_SECMEM_CACHE_MAX_BYTES) {
            size_list *l = NULL;
            for (int i = 0; i < FEDRECI_SECMEM_CACHE_SIZES && !l; i++)
                if (lists[i].n == n)
                    l = &lists[i];
            for (int i = 0; i < FEDRECI_SECMEM_CACHE_SIZES && !l; i++)
                if (!lists[i].n || !lists[i].head)
                    l = &lists[i];
            if (l && n >= sizeof(void *)) {
                l->n = n;
                memcpy(p, &l->head, sizeof l->head);
                l->head = p;
                l->count++;
                cached_blocks++;
                cached_bytes += n;
                kept = 1;
            }
        }
        pthread_mutex_unlock(&mu);
        if (kept)
            return;
    }
    sodium_free(header_of(p));
}

void fedreci_secmem_trim(void)
{
    pthread_mutex_lock(&mu);
    for (int i = 0; i < FEDRECI_SECMEM_CACHE_SIZES; i++) {
        size_list *l = &lists[i];
        while (l->head) {
            void *p = l->head;
            memcpy(&l->head, p, sizeof l->head);
            sodium_free(header_of(p));
        }
        l->n = 0;
        l->count = 0;
    }
    cached_blocks = cached_bytes = 0;
    pthread_mutex_unlock(&mu);
}

void fedreci_secmem_cached(size_t *blocks, size_t *bytes)
{
    pthread_mutex_lock(&mu);
    if (blocks)
        *blocks = cached_blocks;
    if (bytes)
        *bytes = cached_bytes;
    pthread_mutex_unlock(&mu);
}

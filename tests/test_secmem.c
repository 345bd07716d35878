/*
 * Tests for core/secagg/secmem: the recycled secure memory of the SecAgg
 * secrets. A freed block comes back wiped for a request of the same size
 * only, still ends right before its guard page, and the cache keeps to its
 * bounds; blocks stay intact under concurrent use.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/secagg/secmem.h"

static int setup(void **state)
{
    (void)state;
    fedreci_secmem_trim();
    return sodium_init() < 0 ? -1 : 0;
}

static size_t cached_blocks(void)
{
    size_t b = 0;
    fedreci_secmem_cached(&b, NULL);
    return b;
}

static int all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

/* A freed block is wiped and handed out again for the same size only. */
static void test_recycled_same_size_wiped(void **state)
{
    (void)state;
    fedreci_secmem_trim();
    const size_t n = 16 * 32;
    uint8_t *a = fedreci_secmem_alloc(n);
    assert_non_null(a);
    memset(a, 0xa5, n);
    assert_int_equal(cached_blocks(), 0);
    fedreci_secmem_free(a);
    size_t blocks = 0, bytes = 0;
    fedreci_secmem_cached(&blocks, &bytes);
    assert_int_equal(blocks, 1);
    assert_int_equal(bytes, n);
    /* another size: a fresh block, the cached one stays */
    uint8_t *b = fedreci_secmem_alloc(n + 1);
    assert_non_null(b);
    assert_ptr_not_equal(b, a);
    assert_int_equal(cached_blocks(), 1);
    /* the same size: the same block, wiped */
    uint8_t *c = fedreci_secmem_alloc(n);
    assert_ptr_equal(c, a);
    assert_true(all_zero(c, n));
    assert_int_equal(cached_blocks(), 0);
    fedreci_secmem_free(b);
    fedreci_secmem_free(c);
    assert_int_equal(cached_blocks(), 2);
    fedreci_secmem_trim();
    fedreci_secmem_cached(&blocks, &bytes);
    assert_int_equal(blocks, 0);
    assert_int_equal(bytes, 0);
    fedreci_secmem_free(NULL); /* a no-op */
}

/* The caller's last byte is the last before a page boundary (the guard
 * page), fresh or recycled, and writing past it faults. */
static void test_guard_page_after_last_byte(void **state)
{
    (void)state;
    fedreci_secmem_trim();
    const uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    const size_t sizes[] = {0, 1, 7, 8, 100, 4096, 5000};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        size_t n = sizes[i] ? sizes[i] : 1;
        for (int round = 0; round < 2; round++) { /* fresh, then recycled */
            uint8_t *p = fedreci_secmem_alloc(sizes[i]);
            assert_non_null(p);
            memset(p, 0x3c, n);
            assert_int_equal(((uintptr_t)p + n) % page, 0);
            if (round == 1 && n == 100) {
                pid_t pid = fork();
                assert_true(pid >= 0);
                if (pid == 0) {
                    signal(SIGSEGV, SIG_DFL); /* not cmocka's handler */
                    signal(SIGBUS, SIG_DFL);
                    ((volatile uint8_t *)p)[n] = 1; /* must fault */
                    _exit(0);
                }
                int st = 0;
                assert_int_equal(waitpid(pid, &st, 0), pid);
                assert_false(WIFEXITED(st) && WEXITSTATUS(st) == 0);
            }
            fedreci_secmem_free(p);
        }
    }
    fedreci_secmem_trim();
}

/* Blocks above the size bound go back to the system; so do blocks of a
 * size beyond the bound on distinct sizes. */
static void test_bounds(void **state)
{
    (void)state;
    fedreci_secmem_trim();
    uint8_t *big = fedreci_secmem_alloc(FEDRECI_SECMEM_CACHE_MAX_BLOCK + 1);
    assert_non_null(big);
    big[FEDRECI_SECMEM_CACHE_MAX_BLOCK] = 1;
    fedreci_secmem_free(big);
    assert_int_equal(cached_blocks(), 0);
    const size_t n_sizes = FEDRECI_SECMEM_CACHE_SIZES + 5;
    void *p[FEDRECI_SECMEM_CACHE_SIZES + 5];
    for (size_t i = 0; i < n_sizes; i++) {
        p[i] = fedreci_secmem_alloc(64 + i);
        assert_non_null(p[i]);
    }
    for (size_t i = 0; i < n_sizes; i++)
        fedreci_secmem_free(p[i]);
    assert_int_equal(cached_blocks(), FEDRECI_SECMEM_CACHE_SIZES);
    /* the sizes that found a slot come back; the others are fresh and the
       cache stays as it was */
    for (size_t i = 0; i < n_sizes; i++) {
        void *q = fedreci_secmem_alloc(64 + i);
        assert_non_null(q);
        if (i < FEDRECI_SECMEM_CACHE_SIZES)
            assert_ptr_equal(q, p[i]);
        p[i] = q;
    }
    assert_int_equal(cached_blocks(), 0);
    for (size_t i = 0; i < n_sizes; i++)
        fedreci_secmem_free(p[i]);
    fedreci_secmem_trim();
}

/* Threads allocating, filling, checking and freeing blocks of a few sizes
 * at once never see each other's bytes or a block twice. */
#define T_THREADS 4
#define T_ITERS 2000
#define T_LIVE 8

static void *churn(void *arg)
{
    uint8_t tag = (uint8_t)(uintptr_t)arg;
    uint8_t *live[T_LIVE] = {0};
    size_t len[T_LIVE] = {0};
    uintptr_t bad = 0;
    for (unsigned it = 0; it < T_ITERS; it++) {
        unsigned k = (it * 7u + tag) % T_LIVE;
        if (live[k]) {
            for (size_t i = 0; i < len[k]; i++)
                bad |= live[k][i] != (uint8_t)(tag + k);
            fedreci_secmem_free(live[k]);
        }
        len[k] = 32u * (1u + (it + k) % 3u);
        live[k] = fedreci_secmem_alloc(len[k]);
        if (!live[k])
            return (void *)1;
        memset(live[k], (uint8_t)(tag + k), len[k]);
    }
    for (unsigned k = 0; k < T_LIVE; k++) {
        for (size_t i = 0; i < len[k]; i++)
            bad |= live[k][i] != (uint8_t)(tag + k);
        fedreci_secmem_free(live[k]);
    }
    return (void *)bad;
}

static void test_threads(void **state)
{
    (void)state;
    pthread_t th[T_THREADS];
    for (uintptr_t i = 0; i < T_THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, churn, (void *)(16 * (i + 1))), 0);
    for (int i = 0; i < T_THREADS; i++) {
        void *r = (void *)1;
        assert_int_equal(pthread_join(th[i], &r), 0);
        assert_null(r);
    }
    size_t blocks = 0, bytes = 0;
    fedreci_secmem_cached(&blocks, &bytes);
    /* every block came back (how many there were depends on the schedule:
       at least one thread's last T_LIVE) */
    assert_true(blocks >= T_LIVE && blocks <= T_THREADS * T_LIVE * 3);
    assert_true(bytes >= 32 * blocks && bytes <= 96 * blocks);
    fedreci_secmem_trim();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_recycled_same_size_wiped),
        cmocka_unit_test(test_guard_page_after_last_byte),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}

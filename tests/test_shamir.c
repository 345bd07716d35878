/*
 * Tests for core/secagg/shamir: Shamir sharing over the ristretto255 scalar
 * field. t shares rebuild the secret (any t of them), t - 1 do not; bad
 * thresholds and indices are refused.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "core/secagg/shamir.h"
#include "fedrec/fedrec.h"

#define SB FEDRECI_SCALAR_BYTES

static int setup(void **state)
{
    (void)state;
    return sodium_init() < 0 ? -1 : 0;
}

static void test_t_shares_rebuild_any_subset(void **state)
{
    (void)state;
    uint32_t cases[][2] = {{1, 1}, {1, 5}, {2, 2}, {3, 5}, {7, 12}, {20, 31}, {60, 90}};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        uint32_t t = cases[c][0], n = cases[c][1];
        uint8_t secret[SB], got[SB];
        crypto_core_ristretto255_scalar_random(secret);
        uint32_t *xs = malloc(n * sizeof *xs), *sx = malloc(n * sizeof *sx);
        uint8_t *ys = malloc((size_t)n * SB), *sy = malloc((size_t)n * SB);
        for (uint32_t i = 0; i < n; i++)
            xs[i] = 3 * i + 1 + (uint32_t)c; /* sparse, like roster positions */
        assert_int_equal(fedreci_shamir_create(secret, t, xs, n, ys), FEDREC_OK);
        for (int trial = 0; trial < 5; trial++) {
            /* a random subset of t shares, in random order */
            uint32_t *perm = malloc(n * sizeof *perm);
            for (uint32_t i = 0; i < n; i++)
                perm[i] = i;
            for (uint32_t i = n - 1; i > 0; i--) {
                uint32_t j = randombytes_uniform(i + 1), tmp = perm[i];
                perm[i] = perm[j];
                perm[j] = tmp;
            }
            for (uint32_t i = 0; i < t; i++) {
                sx[i] = xs[perm[i]];
                memcpy(sy + (size_t)i * SB, ys + (size_t)perm[i] * SB, SB);
            }
            assert_int_equal(fedreci_shamir_recover(sx, sy, t, t, got), FEDREC_OK);
            assert_memory_equal(got, secret, SB);
            /* t - 1 shares (as a threshold-(t-1) rebuild) give something else */
            if (t > 1) {
                assert_int_equal(fedreci_shamir_recover(sx, sy, t - 1, t - 1, got), FEDREC_OK);
                assert_memory_not_equal(got, secret, SB);
            }
            /* fewer than t shares for threshold t: refused */
            assert_int_equal(fedreci_shamir_recover(sx, sy, t - 1, t, got), FEDREC_ERR_INVALID);
            free(perm);
        }
        /* a corrupted share changes the result */
        if (t <= n) {
            memcpy(sx, xs, t * sizeof *sx);
            memcpy(sy, ys, (size_t)t * SB);
            sy[5] ^= 1;
            assert_int_equal(fedreci_shamir_recover(sx, sy, t, t, got), FEDREC_OK);
            assert_memory_not_equal(got, secret, SB);
        }
        free(xs);
        free(sx);
        free(ys);
        free(sy);
    }
}

static void test_known_polynomial(void **state)
{
    (void)state;
    /* t = 2 over the integers: f(x) = 5 + a x; f(1), f(2) rebuild 5 whatever
     * a is; Lagrange at 0 for {1, 2} is (2, -1). */
    uint32_t xs[2] = {1, 2};
    uint8_t lam[2 * SB], two[SB], minus_one[SB], one[SB];
    assert_int_equal(fedreci_shamir_lagrange(xs, 2, lam), FEDREC_OK);
    fedreci_scalar_from_u64(two, 2);
    fedreci_scalar_from_u64(one, 1);
    crypto_core_ristretto255_scalar_negate(minus_one, one);
    assert_memory_equal(lam, two, SB);
    assert_memory_equal(lam + SB, minus_one, SB);
    uint8_t ys[2 * SB], s[SB];
    fedreci_scalar_from_u64(ys, 5 + 7); /* a = 7 */
    fedreci_scalar_from_u64(ys + SB, 5 + 14);
    assert_int_equal(fedreci_shamir_recover(xs, ys, 2, 2, s), FEDREC_OK);
    uint8_t five[SB];
    fedreci_scalar_from_u64(five, 5);
    assert_memory_equal(s, five, SB);
}

static void test_errors(void **state)
{
    (void)state;
    uint8_t secret[SB], ys[4 * SB], got[SB];
    crypto_core_ristretto255_scalar_random(secret);
    uint32_t ok[4] = {1, 2, 3, 4}, rep[4] = {1, 2, 2, 4}, zero[4] = {0, 1, 2, 3};
    memset(ys, 0xAB, sizeof ys);
    assert_int_equal(fedreci_shamir_create(secret, 0, ok, 4, ys), FEDREC_ERR_INVALID);
    assert_int_equal(fedreci_shamir_create(secret, 5, ok, 4, ys), FEDREC_ERR_INVALID);
    assert_int_equal(fedreci_shamir_create(secret, 2, rep, 4, ys), FEDREC_ERR_INVALID);
    assert_int_equal(fedreci_shamir_create(secret, 2, zero, 4, ys), FEDREC_ERR_INVALID);
    for (size_t i = 0; i < sizeof ys; i++)
        assert_int_equal(ys[i], 0xAB); /* nothing written */
    uint8_t big[SB];
    memset(big, 0xFF, SB); /* >= l: not canonical */
    assert_int_equal(fedreci_shamir_create(big, 2, ok, 4, ys), FEDREC_ERR_INVALID);
    assert_int_equal(fedreci_shamir_create(secret, 3, ok, 4, ys), FEDREC_OK);
    memcpy(got, secret, SB);
    assert_int_equal(fedreci_shamir_recover(ok, ys, 4, 0, got), FEDREC_ERR_INVALID);
    assert_int_equal(fedreci_shamir_recover(ok, ys, 2, 3, got), FEDREC_ERR_INVALID);
    assert_int_equal(fedreci_shamir_recover(rep, ys, 4, 3, got), FEDREC_ERR_INVALID);
    assert_int_equal(fedreci_shamir_recover(zero, ys, 4, 3, got), FEDREC_ERR_INVALID);
    assert_memory_equal(got, secret, SB); /* untouched on error */
    /* the threshold-3 shares at indices 2, 3, 4 still rebuild */
    assert_int_equal(fedreci_shamir_recover(ok + 1, ys + SB, 3, 3, got), FEDREC_OK);
    assert_memory_equal(got, secret, SB);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_t_shares_rebuild_any_subset),
        cmocka_unit_test(test_known_polynomial),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}

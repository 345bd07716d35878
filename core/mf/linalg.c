/* Portable kernels of the client step; see linalg.h. The kernel bodies are
 * in linalg_kernels.h, instantiated here per instruction set. */
#include "core/mf/linalg.h"

#include <math.h>
#include <stdatomic.h>
#include <string.h>

/* fedreci_la_force_baseline's setting (0: pick by CPU). */
static atomic_int force_baseline;

/* Sums 8 lanes pairwise: a fixed, short order. */
static inline float lanes_sum(float *acc)
{
    for (size_t w = FEDRECI_LA_LANES / 2; w > 0; w /= 2)
        for (size_t l = 0; l < w; l++)
            acc[l] += acc[l + w];
    return acc[0];
}

/* The baseline: native vectors of 4 floats (SSE2 on x86-64, NEON on
 * ARM64) with GCC or Clang, scalars otherwise. */
#if defined(__GNUC__)
#define LA_W 4
#else
#define LA_W 1
#endif
#define LA_TARGET
#define LA_NAME(f) la_base_##f
#include "core/mf/linalg_kernels.h"
#undef LA_W
#undef LA_TARGET
#undef LA_NAME

/* x86-64 with GCC or Clang: the same kernels for AVX2 + FMA (x86-64-v3),
 * taken when the CPU has both (__builtin_cpu_supports reads what libgcc's
 * constructor found with cpuid: one load and a test per call). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(FEDRECI_LA_NO_AVX2)
#define LA_AVX2 1
#define LA_W 8
#define LA_TARGET __attribute__((target("avx2,fma")))
#define LA_NAME(f) la_avx2_##f
#include "core/mf/linalg_kernels.h"
#undef LA_W
#undef LA_TARGET
#undef LA_NAME

static int have_avx2_fma(void)
{
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
           !atomic_load_explicit(&force_baseline, memory_order_relaxed);
}
#define LA_DISPATCH(f, ...) (have_avx2_fma() ? la_avx2_##f(__VA_ARGS__) : la_base_##f(__VA_ARGS__))
#else
#define LA_DISPATCH(f, ...) la_base_##f(__VA_ARGS__)
#endif

int fedreci_la_force_baseline(int on)
{
    return atomic_exchange(&force_baseline, on ? 1 : 0);
}

const char *fedreci_la_isa(void)
{
#ifdef LA_AVX2
    if (have_avx2_fma())
        return "AVX2+FMA";
#endif
#if defined(__x86_64__) && defined(__GNUC__)
    return "SSE2";
#elif defined(__aarch64__) && defined(__GNUC__)
    return "NEON";
#elif defined(__GNUC__)
    return "generic vectors";
#else
    return "scalar";
#endif
}

void fedreci_la_axpy(size_t n, float a, const float *restrict x, float *restrict y)
{
    LA_DISPATCH(axpy, n, a, x, y);
}

float fedreci_la_dot(size_t n, const float *restrict x, const float *restrict y)
{
    return LA_DISPATCH(dot, n, x, y);
}

void fedreci_la_syr_upper(uint32_t k, float alpha, const float *restrict x, float *restrict a)
{
    LA_DISPATCH(syr_upper, k, alpha, x, a);
}

void fedreci_la_syrk_upper(uint32_t k, size_t m, const float *restrict z, float beta,
                           float *restrict a)
{
    LA_DISPATCH(syrk_upper, k, m, z, beta, a);
}

void fedreci_la_gemv(size_t m, uint32_t k, const float *restrict y, const float *restrict x,
                     float *restrict r)
{
    LA_DISPATCH(gemv, m, k, y, x, r);
}

void fedreci_la_ger(size_t m, uint32_t k, float alpha, const float *restrict e,
                    const float *restrict x, float beta, float *restrict g)
{
    LA_DISPATCH(ger, m, k, alpha, e, x, beta, g);
}

int fedreci_la_posv(uint32_t k, float *restrict a, float *restrict b)
{
    return LA_DISPATCH(posv, k, a, b);
}

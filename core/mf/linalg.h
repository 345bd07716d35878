/*
 * core/mf/linalg: the small dense kernels of the client step in portable C,
 * so the client library needs no BLAS or LAPACK (a phone should not carry
 * 36 MB of OpenBLAS for k x k problems). The coordinator, the simulator and
 * the centralized ALS keep OpenBLAS; core/mf/step.c picks the backend per
 * step workspace (fedreci_mf_step_set_backend).
 *
 * Shapes: row-major float32; a "k x k symmetric" matrix is used through its
 * row-major upper triangle (entries (i, j) with j >= i), which is the
 * column-major lower triangle LAPACK reads with uplo = 'L', so both backends
 * share one matrix layout. Strides are the row lengths (no ld arguments).
 *
 * The loops are written so a C compiler vectorizes them without -ffast-math:
 * updates run along contiguous rows, and the dot products keep
 * FEDRECI_LA_LANES independent partial sums. Results therefore differ from
 * OpenBLAS in the last bits (a different summation order), never more than
 * rounding (tests/test_linalg.c states the tolerance).
 *
 * Instruction sets: the kernels (core/mf/linalg_kernels.h) are built for
 * the baseline of the target (SSE2 on x86-64, NEON on ARM64) and, on
 * x86-64 with GCC or Clang, also for AVX2 + FMA, taken on CPUs that have
 * both. The two differ only in rounding (FMA), within the tolerance above.
 *
 * Thread-safety: all functions are reentrant. None allocates; none can fail
 * except fedreci_la_posv, which reports a matrix that is not positive
 * definite.
 */
#ifndef FEDREC_CORE_MF_LINALG_H
#define FEDREC_CORE_MF_LINALG_H

#include <stddef.h>
#include <stdint.h>

/* Partial sums per dot product (a multiple of the widest SIMD float vector
 * the compilers target: 8 = AVX, two NEON registers). */
#define FEDRECI_LA_LANES 8

/* y[0..n) += a * x[0..n). */
void fedreci_la_axpy(size_t n, float a, const float *x, float *y);

/* The dot product of x and y (n floats), summed in FEDRECI_LA_LANES lanes. */
float fedreci_la_dot(size_t n, const float *x, const float *y);

/* Upper triangle of A (k x k) += alpha x x^T (BLAS ssyr, row-major upper). */
void fedreci_la_syr_upper(uint32_t k, float alpha, const float *x, float *a);

/* Upper triangle of A (k x k) = beta A + Z^T Z, Z being m x k row-major
 * (BLAS ssyrk, row-major, upper, trans, alpha = 1); beta is 0 or 1 (0
 * ignores what A held, NaN included). */
void fedreci_la_syrk_upper(uint32_t k, size_t m, const float *z, float beta, float *a);

/* r = Y x: r_i = y_i . x for the m rows of Y (m x k row-major) (BLAS sgemv,
 * no transpose, alpha 1, beta 0). */
void fedreci_la_gemv(size_t m, uint32_t k, const float *y, const float *x, float *r);

/* G (m x k row-major) = beta G + alpha e x^T (BLAS sger when beta is 1);
 * beta is 0 or 1 (0 writes G without reading it: one pass over the memory
 * instead of a clear and an update). */
void fedreci_la_ger(size_t m, uint32_t k, float alpha, const float *e, const float *x, float beta,
                    float *g);

/* Solves A x = b for a symmetric positive definite A (k x k, its row-major
 * upper triangle read, the strict lower triangle neither read nor written)
 * by Cholesky, A = U^T U (LAPACK sposv, uplo 'L' on the column-major view).
 * A is overwritten with U in its upper triangle; b (k floats) with x.
 * Returns 0 on success, or i + 1 when the leading minor of order i + 1 is
 * not positive definite (a pivot <= 0 or not finite), as LAPACK's info does;
 * b is then unspecified. */
int fedreci_la_posv(uint32_t k, float *a, float *b);

/* Tests and benchmarks: with on != 0 every kernel runs its baseline build
 * even on a CPU with AVX2 + FMA; 0 restores the choice by CPU. Process-wide
 * (an atomic flag); returns the previous setting. */
int fedreci_la_force_baseline(int on);

/* The instruction set the kernels run on now, for reports: "AVX2+FMA",
 * "SSE2", "NEON", "generic vectors" or "scalar". Static string. */
const char *fedreci_la_isa(void);

#endif /* FEDREC_CORE_MF_LINALG_H */

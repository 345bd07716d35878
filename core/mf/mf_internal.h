/*
 * Internal to core/mf: the pieces the client step and the centralized ALS
 * share (the Gaussian generator and the regularized normal-equation solve),
 * and the LAPACK prototype. Not used outside core/mf.
 */
#ifndef FEDREC_CORE_MF_INTERNAL_H
#define FEDREC_CORE_MF_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "fedrec/fedrec.h"

/* LAPACK sposv (Fortran ABI, LP64 integers as in Debian's OpenBLAS): solves
 * A X = B for symmetric positive definite A (column-major) by Cholesky. The
 * trailing argument is the hidden length of the character argument that
 * gfortran-compiled LAPACK expects. */
extern void sposv_(const char *uplo, const int *n, const int *nrhs, float *a, const int *lda,
                   float *b, const int *ldb, int *info, size_t uplo_len);

/* Checks one row of interactions: indices strictly ascending and < n_cols,
 * confidences finite and > 0. `what` names the row in the error message
 * ("user", "row 17"). Errors: FEDREC_ERR_INVALID. */
fedrec_err fedreci_mf_check_row(const uint32_t *items, const float *conf, uint32_t n,
                                uint32_t n_cols, const char *what, uint64_t row);

/*
 * Solves (gram + sum_j (c_j - 1) f_j f_j^T + lambda I) x = sum_j c_j f_j over
 * the n rows f_j = factors[items[j]] (k floats each), i.e. one ALS row update
 * with the Y^T Y trick (Hu, Koren & Volinsky 2008, eq. 4).
 * Scratch: a (k*k floats), z (n*k floats: the gathered rows scaled by
 * sqrt(c_j - 1)). x gets k floats, written only on success.
 * The row must have been checked (fedreci_mf_check_row).
 * Errors: FEDREC_ERR_NUMERIC when sposv reports the matrix is not positive
 * definite (only possible with lambda <= 0 or non-finite factors).
 */
fedrec_err fedreci_mf_solve_row(const float *factors, const float *gram, uint32_t k, float lambda,
                                const uint32_t *items, const float *conf, uint32_t n, float *a,
                                float *z, float *x);

#endif

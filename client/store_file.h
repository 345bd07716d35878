/*
 * client/store_file: the store's file I/O (internal): whole-file reads with a
 * size cap, and atomic replacement (write name.tmp, fsync it, rename it over
 * name, fsync the directory), so that after a crash a file holds either its
 * old or its new content. Errors carry a message naming the file.
 * Thread-safety: no shared state.
 */
#ifndef FEDREC_CLIENT_STORE_FILE_H
#define FEDREC_CLIENT_STORE_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "fedrec/fedrec.h"

/* "dir/name" in a new malloc'd string (the caller frees it); NULL when out
 * of memory. */
char *fedreci_store_path(const char *dir, const char *name);

/* 1 when dir/name exists (stat succeeds), else 0 (also when out of memory). */
int fedreci_store_file_exists(const char *dir, const char *name);

/* fsyncs the directory dir (makes a rename or unlink in it durable).
 * Errors: FEDREC_ERR_IO. */
FEDREC_NODISCARD fedrec_err fedreci_store_fsync_dir(const char *dir);

/* Writes all n bytes at p to fd, retrying on EINTR and short writes.
 * Returns 0, or -1 with errno set. */
int fedreci_store_write_all(int fd, const uint8_t *p, size_t n);

/* Makes fd's written data durable: F_FULLFSYNC where the platform defines it
 * (falling back to fsync when the file system refuses it), else fdatasync
 * (data_only) or fsync. Returns 0, or -1 with errno set. */
int fedreci_store_sync(int fd, int data_only);

/* Writes all n bytes at p to fd at byte offset off (pwrite; the file offset
 * is unchanged; fd must not be O_APPEND). Returns 0, or -1 with errno set. */
int fedreci_store_pwrite_all(int fd, const uint8_t *p, size_t n, uint64_t off);

/* Reads the whole regular file at path into *buf (malloc'd, the caller frees
 * it) and *len. Errors: FEDREC_ERR_NOT_FOUND (without a message) when it does
 * not exist; FEDREC_ERR_IO, FEDREC_ERR_TOO_BIG (over 2 GiB),
 * FEDREC_ERR_NOMEM. *buf and *len written only on success. */
FEDREC_NODISCARD fedrec_err fedreci_store_read_file(const char *path, uint8_t **buf, size_t *len);

/* Replaces dir/name with the n bytes at p: writes dir/name.tmp (mode 0600),
 * fsyncs it, renames it over dir/name and fsyncs dir. After a crash, dir/name
 * holds the old or the new content. Errors: FEDREC_ERR_IO (the temporary file
 * is removed), FEDREC_ERR_NOMEM. */
FEDREC_NODISCARD fedrec_err fedreci_store_write_atomic(const char *dir, const char *name,
                                                       const uint8_t *p, size_t n);

#endif /* FEDREC_CLIENT_STORE_FILE_H */

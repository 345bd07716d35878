/* client/store_file: atomic file I/O for the store; see store_file.h. */
#include "client/store_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client/store_internal.h"
#include "core/err.h"

char *fedreci_store_path(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", dir, name);
    return p;
}

fedrec_err fedreci_store_fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return fedreci_error(FEDREC_ERR_IO, "%s: cannot open directory: %s", dir, strerror(errno));
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    if (rc != 0)
        return fedreci_error(FEDREC_ERR_IO, "%s: fsync of directory failed: %s", dir, strerror(e));
    return FEDREC_OK;
}

int fedreci_store_sync(int fd, int data_only)
{
#ifdef F_FULLFSYNC
    /* Darwin: fsync leaves the data in the drive's cache; F_FULLFSYNC flushes
     * it. Some file systems refuse it: then fsync is the best there is. */
    (void)data_only;
    if (fcntl(fd, F_FULLFSYNC) == 0)
        return 0;
    return fsync(fd);
#else
    return data_only ? fdatasync(fd) : fsync(fd);
#endif
}

int fedreci_store_pwrite_all(int fd, const uint8_t *p, size_t n, uint64_t off)
{
    while (n > 0) {
        ssize_t w = pwrite(fd, p, n, (off_t)off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
        off += (uint64_t)w;
    }
    return 0;
}

int fedreci_store_write_all(int fd, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Reads a whole file. FEDREC_ERR_NOT_FOUND (no message) when it is absent. */
fedrec_err fedreci_store_read_file(const char *path, uint8_t **buf, size_t *len)
{
    fedrec_err err = FEDREC_OK;
    uint8_t *b = NULL;
    size_t n = 0, got = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        err = errno == ENOENT
                  ? FEDREC_ERR_NOT_FOUND
                  : fedreci_error(FEDREC_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        goto out;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        err = fedreci_error(FEDREC_ERR_IO, "%s: not a regular file", path);
        goto out;
    }
    if ((uint64_t)st.st_size > FILE_MAX) {
        err = fedreci_error(FEDREC_ERR_TOO_BIG, "%s: %lld bytes exceeds the store file cap", path,
                            (long long)st.st_size);
        goto out;
    }
    n = (size_t)st.st_size;
    b = malloc(n ? n : 1);
    if (!b) {
        err = fedreci_error(FEDREC_ERR_NOMEM, "%s: cannot allocate %zu bytes", path, n);
        goto out;
    }
    while (got < n) {
        ssize_t r = read(fd, b + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    if (got != n)
        err = fedreci_error(FEDREC_ERR_IO, "%s: short read (%zu of %zu bytes)", path, got, n);
out:
    if (fd >= 0)
        close(fd);
    if (err) {
        free(b);
    } else {
        *buf = b;
        *len = n;
    }
    return err;
}

/* Writes name.tmp, fsyncs it, renames it over name and fsyncs the directory.
 * Either the old or the new content is at `name` after a crash. */
fedrec_err fedreci_store_write_atomic(const char *dir, const char *name, const uint8_t *p, size_t n)
{
    char tmpname[64];
    snprintf(tmpname, sizeof tmpname, "%s%s", name, TMP_SUFFIX);
    char *tmp = fedreci_store_path(dir, tmpname);
    char *dst = fedreci_store_path(dir, name);
    fedrec_err err = FEDREC_OK;
    int fd = -1, made = 0;
    if (!tmp || !dst) {
        err = fedreci_error(FEDREC_ERR_NOMEM, "%s: out of memory", dir);
        goto out;
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        err = fedreci_error(FEDREC_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
        goto out;
    }
    made = 1;
    if (fedreci_store_write_all(fd, p, n) != 0 || fedreci_store_sync(fd, 0) != 0) {
        err = fedreci_error(FEDREC_ERR_IO, "%s: write failed: %s", tmp, strerror(errno));
        goto out;
    }
    int rc = close(fd);
    fd = -1;
    if (rc != 0) {
        err = fedreci_error(FEDREC_ERR_IO, "%s: close failed: %s", tmp, strerror(errno));
        goto out;
    }
    if (rename(tmp, dst) != 0) {
        err =
            fedreci_error(FEDREC_ERR_IO, "%s: rename to %s failed: %s", tmp, dst, strerror(errno));
        goto out;
    }
    made = 0; /* renamed: no temporary file left */
    err = fedreci_store_fsync_dir(dir);
out:
    if (fd >= 0)
        close(fd);
    if (err && made)
        unlink(tmp);
    free(tmp);
    free(dst);
    return err;
}

int fedreci_store_file_exists(const char *dir, const char *name)
{
    char *p = fedreci_store_path(dir, name);
    if (!p)
        return 0;
    struct stat st;
    int r = stat(p, &st) == 0;
    free(p);
    return r;
}

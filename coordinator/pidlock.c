#include "pidlock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/err.h"

struct fedreci_pidlock {
    int fd;
    char *path;
};

static fedrec_err busy(const char *path, int fd)
{
    struct flock q = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
    if (fcntl(fd, F_GETLK, &q) == 0 && q.l_type != F_UNLCK)
        return fedreci_error(FEDREC_ERR_BUSY,
                             "%s: database in use by pid %ld (one fedrec-coordinator per database)",
                             path, (long)q.l_pid);
    /* released between the two calls: name what the file records */
    char buf[32] = "";
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    buf[n > 0 ? n : 0] = '\0';
    buf[strcspn(buf, "\n")] = '\0';
    return fedreci_error(FEDREC_ERR_BUSY,
                         "%s: database in use by pid %s (one fedrec-coordinator per database)",
                         path, buf[0] ? buf : "unknown");
}

fedrec_err fedreci_pidlock_acquire(fedreci_pidlock **out, const char *db_path)
{
    if (!out || !db_path || !db_path[0])
        return fedreci_error(FEDREC_ERR_INVALID, "pidlock: no database path");
    fedreci_pidlock *l = calloc(1, sizeof *l);
    size_t n = strlen(db_path) + sizeof ".lock";
    if (!l || !(l->path = malloc(n))) {
        free(l);
        return fedreci_error(FEDREC_ERR_NOMEM, "%s.lock: out of memory", db_path);
    }
    snprintf(l->path, n, "%s.lock", db_path);
    fedrec_err e = FEDREC_OK;
    l->fd = open(l->path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (l->fd < 0) {
        e = fedreci_error(FEDREC_ERR_IO, "%s: cannot open the lock file: %s", l->path,
                          strerror(errno));
        goto fail;
    }
    struct flock w = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
    if (fcntl(l->fd, F_SETLK, &w) != 0) {
        if (errno == EACCES || errno == EAGAIN)
            e = busy(l->path, l->fd);
        else
            e = fedreci_error(FEDREC_ERR_IO, "%s: cannot lock: %s", l->path, strerror(errno));
        goto fail;
    }
    char pid[32];
    int len = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(l->fd, 0) != 0 || pwrite(l->fd, pid, (size_t)len, 0) != len) {
        e = fedreci_error(FEDREC_ERR_IO, "%s: cannot record the pid: %s", l->path, strerror(errno));
        goto fail;
    }
    *out = l;
    return FEDREC_OK;
fail:
    if (l->fd >= 0)
        close(l->fd);
    free(l->path);
    free(l);
    return e;
}

void fedreci_pidlock_release(fedreci_pidlock *l)
{
    if (!l)
        return;
    struct flock u = {.l_type = F_UNLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
    (void)fcntl(l->fd, F_SETLK, &u);
    close(l->fd);
    free(l->path);
    free(l);
}

/* The shared test fixture: running, temporary directories, a killed writer
 * (see harness.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "harness.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sodium.h>

#include "core/log.h"

int th_run(const struct CMUnitTest *tests, size_t n)
{
    if (sodium_init() < 0)
        return 1;
    fedreci_log_set_level(FEDRECI_LOG_ERROR);
    if (getenv("FEDREC_TEST_FILTER"))
        cmocka_set_test_filter(getenv("FEDREC_TEST_FILTER"));
    /* FEDREC_TEST_SKIP: a cmocka pattern of tests to skip (when debugging) */
    if (getenv("FEDREC_TEST_SKIP"))
        cmocka_set_skip_filter(getenv("FEDREC_TEST_SKIP"));
    return _cmocka_run_group_tests("tests", tests, n, NULL, NULL);
}

/* ---- temporary directories ------------------------------------------------ */

char *th_tmpdir(const char *tag)
{
    char tmpl[256];
    snprintf(tmpl, sizeof tmpl, "/tmp/fedrec-%s-XXXXXX", tag);
    char *d = mkdtemp(tmpl);
    assert_non_null(d);
    char *copy = strdup(d);
    assert_non_null(copy);
    return copy;
}

void th_rm_rf(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        unlink(th_path(dir, e->d_name));
    }
    closedir(d);
    rmdir(dir);
}

const char *th_path(const char *dir, const char *name)
{
    static char p[4][4096];
    static int i;
    i = (i + 1) % 4;
    snprintf(p[i], sizeof p[i], "%s/%s", dir, name);
    return p[i];
}

void th_hash_dir(const char *dir, uint8_t out[32])
{
    struct dirent **list = NULL;
    int n = scandir(dir, &list, NULL, alphasort);
    assert_true(n >= 0);
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, 32);
    for (int i = 0; i < n; i++) {
        const char *name = list[i]->d_name;
        if (strcmp(name, ".") && strcmp(name, "..")) {
            crypto_generichash_update(&st, (const uint8_t *)name, strlen(name) + 1);
            FILE *f = fopen(th_path(dir, name), "rb");
            assert_non_null(f);
            uint8_t buf[4096];
            size_t r, total = 0;
            while ((r = fread(buf, 1, sizeof buf, f)) > 0) {
                crypto_generichash_update(&st, buf, r);
                total += r;
            }
            fclose(f);
            crypto_generichash_update(&st, (const uint8_t *)&total, sizeof total);
        }
        free(list[i]);
    }
    free(list);
    crypto_generichash_final(&st, out, 32);
}

/* ---- a writer killed in mid-stream ---------------------------------------- */

/* The child: never returns. */
static void writer_main(int fd, int (*open)(void *), int (*append)(void *, uint64_t), void *arg)
{
    if (open(arg))
        _exit(3);
    for (uint64_t i = 1; i < 1000000; i++) {
        if (append(arg, i))
            _exit(4);
        if (write(fd, &i, sizeof i) != sizeof i)
            _exit(5);
    }
    _exit(0);
}

uint64_t th_kill9_writer(int (*open)(void *arg), int (*append)(void *arg, uint64_t i), void *arg,
                         uint64_t min_acked)
{
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        writer_main(fds[1], open, append, arg);
    }
    close(fds[1]);
    uint64_t acked = 0, seq;
    while (acked < min_acked && read(fds[0], &seq, sizeof seq) == sizeof seq) {
        assert_int_equal(seq, acked + 1);
        acked = seq;
    }
    assert_int_equal(kill(pid, SIGKILL), 0);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGKILL);
    while (read(fds[0], &seq, sizeof seq) == sizeof seq) {
        assert_int_equal(seq, acked + 1);
        acked = seq;
    }
    close(fds[0]);
    assert_true(acked >= min_acked);
    return acked;
}

/* ---- processes a test starts ----------------------------------------------- */

extern char **environ;

/* The child of th_spawn: only async-signal-safe calls (the test process may
 * have other threads). Reports a failure's errno on fd; never returns. */
static void spawn_child(int fd, pid_t parent, const char *path, const char *const *argv,
                        const char *const *envp, const char *log, int log_mode)
{
    int err = 0;
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0)
        err = errno;
    else if (getppid() != parent)
        _exit(126); /* the test process died before prctl: nobody waits */
    int lf = err ? -1 : open(log, O_WRONLY | O_CREAT | O_TRUNC, log_mode);
    if (!err && lf < 0)
        err = errno;
    if (!err && (dup2(lf, 1) < 0 || dup2(lf, 2) < 0))
        err = errno;
    if (lf > 2)
        close(lf);
    if (!err) {
        execve(path, (char *const *)argv, envp ? (char *const *)envp : environ);
        err = errno;
    }
    ssize_t w = write(fd, &err, sizeof err);
    (void)w;
    _exit(127);
}

pid_t th_spawn(const char *path, const char *const *argv, const char *const *envp, const char *log,
               int log_mode)
{
    int fds[2];
    if (pipe(fds) != 0)
        return -1;
    /* the write end closes at exec: EOF on the read end means it started */
    if (fcntl(fds[0], F_SETFD, FD_CLOEXEC) != 0 || fcntl(fds[1], F_SETFD, FD_CLOEXEC) != 0) {
        int e = errno;
        close(fds[0]);
        close(fds[1]);
        errno = e;
        return -1;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        spawn_child(fds[1], parent, path, argv, envp, log, log_mode);
    }
    int e = errno;
    close(fds[1]);
    if (pid < 0) {
        close(fds[0]);
        errno = e;
        return -1;
    }
    int err = 0;
    ssize_t r;
    while ((r = read(fds[0], &err, sizeof err)) < 0 && errno == EINTR)
        ;
    close(fds[0]);
    if (r == (ssize_t)sizeof err) {
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
        errno = err;
        return -1;
    }
    return pid;
}

void th_make_cert(const char *dir, const char *name)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
             "-subj /CN=localhost -addext subjectAltName=DNS:localhost -keyout '%s/%s-key.pem' "
             "-out '%s/%s.pem' >/dev/null 2>&1",
             dir, name, dir, name);
    assert_int_equal(system(cmd), 0);
}

char *th_slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, n = 0, got;
    char *b = malloc(cap);
    while (b && (got = fread(b + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (n + 1 == cap) {
            char *nb = realloc(b, cap * 2);
            if (!nb) {
                free(b);
                b = NULL;
                break;
            }
            b = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (b)
        b[n] = 0;
    return b;
}

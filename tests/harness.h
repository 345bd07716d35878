/*
 * The shared test fixture (tests/harness.c), part one: what every test
 * program may use, the client-only build included. A test's main
 * (TH_RUN), temporary directories (make, hash to prove bytes unchanged,
 * remove), a writer killed with SIGKILL in mid-stream (durability
 * tests) and th_spawn, which starts every process a test runs. tests/harness_engine.h adds a
 * coordinator with test clients.
 *
 * Every helper fails the running cmocka test (fail_msg / assert_*) on an
 * unexpected error, so it may be called only from the test's own thread.
 */
#ifndef FEDREC_TESTS_HARNESS_H
#define FEDREC_TESTS_HARNESS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- running the tests ----------------------------------------------------- */

struct CMUnitTest;

/* A test program's main: initializes libsodium, logs errors only, keeps the
 * tests named by FEDREC_TEST_FILTER and skips those named by
 * FEDREC_TEST_SKIP (cmocka patterns) when set, and runs the n tests; returns the number that failed
 * (or 1 when libsodium cannot start). TH_RUN(tests) passes an array's length. */
int th_run(const struct CMUnitTest *tests, size_t n);
#define TH_RUN(tests) th_run((tests), sizeof(tests) / sizeof((tests)[0]))

/* ---- temporary directories ------------------------------------------------ */

/* A new empty directory /tmp/fedrec-<tag>-XXXXXX (heap string: free it). */
char *th_tmpdir(const char *tag);

/* Removes dir and the files in it (not recursive). Missing: nothing. */
void th_rm_rf(const char *dir);

/* The whole file at path as a NUL-terminated heap string (free it), or NULL
 * when it cannot be read or memory runs out. For logs and small outputs. */
char *th_slurp(const char *path);

/* A self-signed P-256 certificate for localhost (CN and subjectAltName),
 * made by the openssl CLI, valid 2 days: dir/NAME.pem and its key
 * dir/NAME-key.pem. Fails the test if openssl fails. */
void th_make_cert(const char *dir, const char *name);

/* dir/name in one of four rotating static buffers (valid for the next three
 * calls). */
const char *th_path(const char *dir, const char *name);

/* BLAKE2b-256 over every entry of dir in name order: its name, content and
 * size. Equal hashes: the bytes did not change. */
void th_hash_dir(const char *dir, uint8_t out[32]);

/* ---- a writer killed in mid-stream ---------------------------------------- */

/* Forks a writer: it calls open(arg) once (non-zero: the child exits 3),
 * then append(arg, i) for i = 1, 2, ... (non-zero: exits 4), acknowledging
 * each i over a pipe once append returned. The parent kills it with SIGKILL
 * once at least `min_acked` were acknowledged, checks that the child died of
 * that signal and that the acknowledgements came in order 1, 2, ..., and
 * returns the last one. What append wrote before its acknowledgement must
 * survive; at most the one in flight may also be there. */
uint64_t th_kill9_writer(int (*open)(void *arg), int (*append)(void *arg, uint64_t i), void *arg,
                         uint64_t min_acked);

/* ---- processes a test starts ----------------------------------------------- */

/* Starts path with argv (argv[0] first, NULL-terminated) and envp (NULL: this
 * process's environment), its stdout and stderr in the file log (created or
 * truncated, with `log_mode` when created). Returns the child's pid, or -1
 * with errno set when the log cannot be opened or path cannot be executed
 * (the child is then reaped).
 *
 * The child dies with SIGKILL when the test process dies (PR_SET_PDEATHSIG),
 * whatever way it dies: a failed assertion that ends the program, ctest's
 * timeout, a crash. A daemon a test forgets or cannot stop does not live
 * on (orphans kept ports and directories busy and burned CPU for hours).
 * The signal comes when the *thread* that called th_spawn ends, not the
 * process: call it from the test's main thread only (cmocka runs the tests
 * there), never from a helper thread that may end before the test. */
pid_t th_spawn(const char *path, const char *const *argv, const char *const *envp, const char *log,
               int log_mode);

#endif

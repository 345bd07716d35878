/* fedrec-bench engine: one coordinator engine and N client sessions in one
 * process over inproc://, real SecAgg+ rounds at the bundled log's dimension
 * (d = n_items * k + 1), dropouts declared gone (as the simulator does).
 * Prints wall time per round and its split by stage, and beside it the cost
 * of the checks against hostile clients (issue 13) timed alone in the same
 * run: what the coordinator spends verifying each round's signatures and
 * masked-input MACs (and deriving the MAC keys), checking the sum's range,
 * and what one client spends signing; no assertions. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "client/session.h"
#include "proto/wire.h"
#include "coordinator/aggregator.h"
#include "coordinator/engine.h"
#include "core/log.h"
#include "bench_args.h"

typedef struct bclient {
    uint64_t id;
    uint8_t sk[64];
    uint64_t version;
    int drop;
} bclient;

static fedreci_coord *g_coord;
static const float *g_x;
static double g_stage_ms[4];
static uint64_t g_bytes_in, g_bytes_out;
static int g_completed;

static double cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static fedrec_err update(void *arg, const fedreci_wire_round *r, float *x, uint32_t *w)
{
    (void)arg;
    memcpy(x, g_x, (size_t)(r->secagg.d - 1) * sizeof *x);
    *w = 1;
    return FEDREC_OK;
}

static void done(void *arg, const fedreci_session_result *r)
{
    bclient *c = arg;
    if (r->outcome == FEDRECI_SESSION_DROPPED)
        fedreci_coord_client_gone(g_coord, c->id);
}

static void round_done(void *arg, const fedreci_round_stats *st)
{
    (void)arg;
    memcpy(g_stage_ms, st->stage_ms, sizeof g_stage_ms);
    g_bytes_in = st->bytes_in;
    g_bytes_out = st->bytes_out;
    g_completed = st->completed;
}

/* The per-round cost of authentication and the sum check for n clients and
 * d words, each part timed alone: returns the coordinator's seconds per round
 * and writes one client's signing seconds to *client_s. */
static double checks_cost(uint32_t n, uint32_t d, uint32_t neighbors, double *client_s)
{
    uint8_t pk[32], sk[64], key[32], csk[32], cpk[32];
    crypto_sign_keypair(pk, sk);
    randombytes_buf(key, sizeof key);
    randombytes_buf(csk, sizeof csk);
    crypto_scalarmult_base(cpk, csk);
    uint32_t *y = calloc(d, sizeof *y);
    fedreci_wire_hdr hm = {fedreci_secagg_id_from_pk(pk), 3, FEDRECI_WIRE_STAGE_MASKED_INPUT};
    fedreci_wire_hdr hs = {hm.client_id, 3, FEDRECI_WIRE_STAGE_UNMASK};
    nng_msg *m = NULL, *ms = NULL;
    fedreci_wire_env *em = NULL, *es = NULL;
    double server = 0, client = 0;
    volatile int sink = 0;
    if (y && !fedreci_wire_enc_masked(&m, &hm, y, d) &&
        !fedreci_wire_enc_unmask(&ms, &hs, NULL, 0)) {
        double t0 = now_s();
        for (int i = 0; i < 10; i++) {
            sink += (int)fedreci_wire_mac(m, key);
            (void)nng_msg_chop(m, FEDRECI_WIRE_MAC_SUFFIX);
        }
        double mac = (now_s() - t0) / 10;
        t0 = now_s();
        for (int i = 0; i < 200; i++) {
            sink += (int)fedreci_wire_sign(ms, &hs, sk);
            (void)nng_msg_chop(ms, FEDRECI_WIRE_SIG_SUFFIX);
        }
        double sign = (now_s() - t0) / 200;
        t0 = now_s();
        for (int i = 0; i < 200; i++) {
            sink += (int)fedreci_wire_mac(ms, key);
            (void)nng_msg_chop(ms, FEDRECI_WIRE_MAC_SUFFIX);
        }
        double smac = (now_s() - t0) / 200;
        t0 = now_s();
        for (int i = 0; i < 200; i++)
            sink += (int)fedreci_secagg_mac_key(key, csk, cpk, 3, 9);
        double mkey = (now_s() - t0) / 200;
        if (!fedreci_wire_mac(m, key) && !fedreci_wire_sign(ms, &hs, sk) &&
            !fedreci_wire_decode_msg(m, (size_t)-1 / 2, &em) &&
            !fedreci_wire_decode_msg(ms, 1 << 20, &es)) {
            t0 = now_s();
            for (int i = 0; i < 10; i++)
                sink += (int)fedreci_wire_verify_mac(nng_msg_body(m), nng_msg_len(m), em, key);
            double vmac = (now_s() - t0) / 10;
            t0 = now_s();
            for (int i = 0; i < 200; i++)
                sink += (int)fedreci_wire_verify(nng_msg_body(ms), nng_msg_len(ms), es, pk);
            double vsig = (now_s() - t0) / 200;
            /* the same small message MACed (protocol version 7) */
            double vsmac = 0;
            fedreci_wire_free(es);
            es = NULL;
            (void)nng_msg_chop(ms, FEDRECI_WIRE_SIG_SUFFIX);
            if (!fedreci_wire_mac(ms, key) && !fedreci_wire_decode_msg(ms, 1 << 20, &es)) {
                t0 = now_s();
                for (int i = 0; i < 200; i++)
                    sink +=
                        (int)fedreci_wire_verify_mac(nng_msg_body(ms), nng_msg_len(ms), es, key);
                vsmac = (now_s() - t0) / 200;
            }
            fedreci_secagg_params p;
            memset(&p, 0, sizeof p);
            p.d = d;
            p.clip = 16;
            p.scale = 1024;
            y[d - 1] = n;
            t0 = now_s();
            sink += (int)fedreci_secagg_check_sum(&p, y, n, n);
            double range = now_s() - t0;
            /* per client: the check-in signed (the model request too, when
               the version moved), the advert, shares and unmask shares and
               the masked input MACed (protocol version 7) */
            uint32_t kk = neighbors ? neighbors : n - 1;
            double commits = (kk + 1) * 2e-6; /* about 1-2 us each (bench secagg) */
            server = n * (vsig + 3 * vsmac + vmac + mkey + commits) + range;
            client = sign + 3 * smac + mac + mkey;
        }
    }
    (void)sink;
    fedreci_wire_free(em);
    fedreci_wire_free(es);
    if (m)
        nng_msg_free(m);
    if (ms)
        nng_msg_free(ms);
    free(y);
    *client_s = client;
    return server;
}

static void run(uint32_t n, uint32_t n_items, uint32_t k, uint32_t neighbors, double dropout,
                int rounds)
{
    char url[64];
    snprintf(url, sizeof url, "inproc://bench-engine-%u", n);
    size_t dx = (size_t)n_items * k;
    float *y = malloc(dx * sizeof *y);
    float *x = malloc(dx * sizeof *x);
    for (size_t i = 0; i < dx; i++) {
        y[i] = (float)((int)(i % 17) - 8) * 0.001f;
        x[i] = (float)((int)(i % 23) - 11) * 0.05f;
    }
    g_x = x;
    fedreci_coord_config cfg;
    fedreci_coord_config_default(&cfg);
    const char *urls[1] = {url};
    cfg.listen_urls = urls;
    cfg.n_listen = 1;
    cfg.n_contexts = n + n / 8 + 64;
    cfg.cohort_size = n;
    cfg.neighbors = neighbors;
    cfg.checkin_window_ms = 600000;
    for (int s = 0; s < 4; s++)
        cfg.stage_ms[s] = 600000;
    cfg.opt.n_train = n;
    cfg.max_rounds = (uint32_t)rounds;
    fedreci_coord_hooks hooks = {.on_round_done = round_done};
    fedreci_coord_model m = {1, n_items, k, y, NULL, NULL, 0};
    if (fedreci_coord_create(&g_coord, &cfg, &hooks, &m) || fedreci_coord_start(g_coord)) {
        fprintf(stderr, "engine: %s\n", fedrec_errmsg());
        exit(1);
    }
    bclient *cl = calloc(n, sizeof *cl);
    fedreci_session **s = calloc(n, sizeof *s);
    for (uint32_t i = 0; i < n; i++) {
        uint8_t pk[32];
        crypto_sign_keypair(pk, cl[i].sk);
        cl[i].id = fedreci_secagg_id_from_pk(pk);
    }
    double total = 0;
    for (int r = 0; r < rounds; r++) {
        uint32_t n_drop = (uint32_t)(dropout * n + 0.5);
        for (uint32_t i = 0; i < n; i++)
            cl[i].drop = -1;
        for (uint32_t j = 0; j < n_drop; j++) /* spread over stages 0..2 */
            cl[(j * 7919u + (uint32_t)r * 13u) % n].drop = (int)(j % 3);
        double t0 = now_s();
        for (uint32_t i = 0; i < n; i++) {
            fedreci_session_config sc;
            fedreci_session_config_default(&sc);
            sc.url = url;
            sc.client_id = cl[i].id;
            sc.identity_sk = cl[i].sk;
            sc.model_version = cl[i].version;
            sc.dropout_stage = cl[i].drop;
            sc.timeout_ms = 600000;
            fedreci_session_hooks h = {&cl[i], NULL, update, NULL, NULL, done};
            if (fedreci_session_create(&s[i], &sc, &h) || fedreci_session_start(s[i])) {
                fprintf(stderr, "session: %s\n", fedrec_errmsg());
                exit(1);
            }
        }
        for (uint32_t i = 0; i < n; i++) {
            fedreci_session_result res;
            if (fedreci_session_wait(s[i], -1, &res) == FEDREC_OK && res.model_version)
                cl[i].version = res.model_version;
            fedreci_session_destroy(s[i]);
        }
        double t = now_s() - t0;
        total += t;
        printf("| %5u | %3u | %7u | %4.0f%% | %d | %8.2f | %7.0f | %7.0f | %7.0f | %7.0f | %8.1f "
               "| %8.1f | %s |\n",
               n, neighbors ? neighbors : n - 1, (unsigned)(dx + 1), dropout * 100, r + 1, t,
               g_stage_ms[0], g_stage_ms[1], g_stage_ms[2], g_stage_ms[3],
               (double)g_bytes_in / n / 1024.0, (double)g_bytes_out / n / 1024.0,
               g_completed ? "yes" : "no");
        fflush(stdout);
    }
    printf("|       |     |         |       | mean | %8.2f |\n", total / rounds);
    double client_s = 0, server_s = checks_cost(n, (uint32_t)(dx + 1), neighbors, &client_s);
    printf("checks of issue 13 (included above, timed alone): coordinator %.1f ms per round "
           "(%.1f%% of the mean wall time), each client %.2f ms for its signatures and MAC\n",
           server_s * 1e3, 100 * server_s / (total / rounds), client_s * 1e3);
    fedreci_coord_destroy(g_coord);
    g_coord = NULL;
    free(cl);
    free(s);
    free(x);
    free(y);
}

/* ---- --groups: the single-engine path beside a master and G aggregators -- */

typedef struct path_result {
    double wall, cpu; /* per round, means */
    int completed;    /* rounds that committed */
} path_result;

/* R rounds of n sessions against url (dropout 0); the engine whose
 * round_done hook counts completions is g_coord's. */
static void run_sessions(const char *url, bclient *cl, uint32_t n, int rounds, path_result *out)
{
    fedreci_session **s = calloc(n, sizeof *s);
    double wall = 0, cpu = 0;
    int completed = 0;
    for (int r = 0; r < rounds; r++) {
        double t0 = now_s(), c0 = cpu_s();
        for (uint32_t i = 0; i < n; i++) {
            fedreci_session_config sc;
            fedreci_session_config_default(&sc);
            sc.url = url;
            sc.client_id = cl[i].id;
            sc.identity_sk = cl[i].sk;
            sc.model_version = cl[i].version;
            sc.timeout_ms = 600000;
            fedreci_session_hooks h = {.arg = &cl[i], .compute_update = update};
            if (fedreci_session_create(&s[i], &sc, &h) || fedreci_session_start(s[i])) {
                fprintf(stderr, "session: %s\n", fedrec_errmsg());
                exit(1);
            }
        }
        int ok = 0;
        for (uint32_t i = 0; i < n; i++) {
            fedreci_session_result res;
            if (fedreci_session_wait(s[i], -1, &res) == FEDREC_OK &&
                res.outcome == FEDRECI_SESSION_COMPLETED) {
                ok++;
                cl[i].version = res.latest_version;
            }
            fedreci_session_destroy(s[i]);
        }
        wall += now_s() - t0;
        cpu += cpu_s() - c0;
        completed += ok == (int)n;
    }
    free(s);
    out->wall = wall / rounds;
    out->cpu = cpu / rounds;
    out->completed = completed;
}

static fedreci_coord_config engine_cfg(const char **urls, uint32_t n, uint32_t neighbors,
                                       int rounds)
{
    fedreci_coord_config cfg;
    fedreci_coord_config_default(&cfg);
    cfg.listen_urls = urls;
    cfg.n_listen = 1;
    cfg.n_contexts = n + n / 8 + 64;
    cfg.cohort_size = n;
    cfg.neighbors = neighbors;
    cfg.checkin_window_ms = 600000;
    for (int s = 0; s < 4; s++)
        cfg.stage_ms[s] = 600000;
    cfg.opt.n_train = n;
    cfg.max_rounds = (uint32_t)rounds;
    return cfg;
}

static void print_path(const char *name, uint32_t n, uint32_t groups, uint32_t d, uint32_t k,
                       int rounds, const path_result *p, long cores)
{
    printf("| %s | %u | %u | %u | %u | %d/%d | %.2f | %.2f | %.1f | %.1f | %.1f |\n", name, n,
           groups, d, k, p->completed, rounds, p->wall, p->cpu, n / p->wall,
           n / p->wall / (double)cores, n / p->cpu);
    fflush(stdout);
}

/* The server side of one path: one engine (groups = 0) or a master and
 * `groups` aggregators, listening at URLs made from prefix (inproc://...
 * in this process, ipc://... in a --serve process). */
typedef struct service {
    uint32_t groups;
    fedreci_aggregator **agg;
    uint8_t (*apk)[32], (*ask)[64];
    uint8_t mpk[32], msk[64];
    char url[160]; /* where the clients check in */
} service;

static void service_start(service *sv, const char *prefix, uint32_t n, uint32_t n_items, uint32_t k,
                          uint32_t neighbors, int rounds, uint32_t groups, const float *y)
{
    memset(sv, 0, sizeof *sv);
    sv->groups = groups;
    fedreci_coord_model m = {1, n_items, k, (float *)(uintptr_t)y, NULL, NULL, 0};
    fedreci_coord_hooks hooks = {.on_round_done = round_done};
    const char *urls[1] = {sv->url};
    char lurl[160];
    snprintf(sv->url, sizeof sv->url, "%s-%s-%u", prefix, groups ? "master" : "single", n);
    fedreci_coord_config cfg = engine_cfg(urls, n, neighbors, rounds);
    if (groups) {
        sv->apk = calloc(groups, sizeof *sv->apk);
        sv->ask = calloc(groups, sizeof *sv->ask);
        sv->agg = calloc(groups, sizeof *sv->agg);
        if (!sv->apk || !sv->ask || !sv->agg) {
            fprintf(stderr, "bench: out of memory\n");
            exit(1);
        }
        for (uint32_t g = 0; g < groups; g++)
            crypto_sign_keypair(sv->apk[g], sv->ask[g]);
        crypto_sign_keypair(sv->mpk, sv->msk); /* the master signs every link reply */
        snprintf(lurl, sizeof lurl, "%s-link-%u", prefix, n);
        cfg.role = FEDRECI_ROLE_MASTER;
        cfg.agg_listen_url = lurl;
        cfg.agg_keys = (const uint8_t(*)[32])sv->apk;
        cfg.n_agg_keys = groups;
        cfg.agg_master_sk = sv->msk;
        cfg.group_size = (n + groups - 1) / groups;
        cfg.min_groups = groups;
    }
    if (fedreci_coord_create(&g_coord, &cfg, &hooks, &m) || fedreci_coord_start(g_coord)) {
        fprintf(stderr, "%s: %s\n", groups ? "master" : "engine", fedrec_errmsg());
        exit(1);
    }
    for (uint32_t g = 0; g < groups; g++) {
        char aurl[160];
        snprintf(aurl, sizeof aurl, "%s-agg-%u-%u", prefix, n, g);
        const char *lu[1] = {aurl};
        fedreci_aggregator_config ac;
        fedreci_aggregator_config_default(&ac);
        ac.master_url = lurl;
        ac.listen_urls = lu;
        ac.n_listen = 1;
        ac.identity_sk = sv->ask[g];
        ac.master_pk = sv->mpk;
        ac.max_group = cfg.group_size + 1;
        if (fedreci_aggregator_create(&sv->agg[g], &ac) || fedreci_aggregator_start(sv->agg[g])) {
            fprintf(stderr, "aggregator: %s\n", fedrec_errmsg());
            exit(1);
        }
    }
}

static void service_stop(service *sv)
{
    for (uint32_t g = 0; g < sv->groups; g++)
        fedreci_aggregator_destroy(sv->agg[g]);
    fedreci_coord_destroy(g_coord);
    g_coord = NULL;
    free(sv->agg);
    free(sv->apk);
    free(sv->ask);
    sodium_memzero(sv->msk, sizeof sv->msk);
}

static float *bench_model(size_t dx)
{
    float *y = malloc(dx * sizeof *y);
    if (!y) {
        fprintf(stderr, "bench: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < dx; i++)
        y[i] = (float)((int)(i % 17) - 8) * 0.001f;
    return y;
}

/* --serve (a child of --split): the server side of one path over ipc://,
 * "ready" on stdout once it listens; on "stop" from stdin, its process CPU
 * seconds ("cpu S") and exit. Returns the exit status. */
static int serve(const char *prefix, uint32_t n, uint32_t n_items, uint32_t k, uint32_t neighbors,
                 int rounds, uint32_t groups)
{
    float *y = bench_model((size_t)n_items * k);
    service sv;
    service_start(&sv, prefix, n, n_items, k, neighbors, rounds, groups, y);
    printf("ready\n");
    fflush(stdout);
    char line[32];
    while (fgets(line, sizeof line, stdin) && strncmp(line, "stop", 4) != 0)
        ;
    double cpu = cpu_s();
    service_stop(&sv);
    printf("cpu %.6f\n", cpu);
    fflush(stdout);
    free(y);
    return 0;
}

/* --split: the server side of a path in a child process (this binary with
 * --serve) and the clients here, over ipc://; out gets the clients' CPU
 * (this process) and *server_cpu the child's, both per round. */
static void run_split(const char *self, uint32_t n, uint32_t n_items, uint32_t k,
                      uint32_t neighbors, int rounds, uint32_t groups, bclient *cl,
                      path_result *out, double *server_cpu)
{
    char prefix[96], a_n[16], a_items[16], a_k[16], a_nb[16], a_r[16], a_g[16];
    snprintf(prefix, sizeof prefix, "ipc:///tmp/fedrec-bench-%ld", (long)getpid());
    snprintf(a_n, sizeof a_n, "%u", n);
    snprintf(a_items, sizeof a_items, "%u", n_items);
    snprintf(a_k, sizeof a_k, "%u", k);
    snprintf(a_nb, sizeof a_nb, "%u", neighbors);
    snprintf(a_r, sizeof a_r, "%d", rounds);
    snprintf(a_g, sizeof a_g, "%u", groups);
    char *argv[] = {"fedrec-bench", "engine", "--serve",   prefix, "--clients",   a_n,
                    "--items",      a_items,  "--factors", a_k,    "--neighbors", a_nb,
                    "--rounds",     a_r,      "--groups",  a_g,    NULL};
    if (!groups)
        argv[14] = NULL; /* one engine */
    int to[2], from[2];
    if (pipe(to) != 0 || pipe(from) != 0) {
        perror("bench: pipe");
        exit(1);
    }
    fflush(stdout);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        perror("bench: fork");
        exit(1);
    }
    if (pid == 0) { /* exec at once: nothing but async-signal-safe calls */
        /* the server dies with the bench (killed, or a failed exit() above
           while it serves), as tests/harness.c th_spawn does for the
           processes a test starts; a parent already gone: nobody waits */
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
            _exit(126);
        dup2(to[0], 0);
        dup2(from[1], 1);
        close(to[0]);
        close(to[1]);
        close(from[0]);
        close(from[1]);
        execv(self, argv);
        _exit(127);
    }
    close(to[0]);
    close(from[1]);
    FILE *rd = fdopen(from[0], "r");
    char line[64];
    if (!rd || !fgets(line, sizeof line, rd) || strncmp(line, "ready", 5) != 0) {
        fprintf(stderr, "bench: the --serve process did not start\n");
        exit(1);
    }
    char url[160];
    snprintf(url, sizeof url, "%s-%s-%u", prefix, groups ? "master" : "single", n);
    for (uint32_t i = 0; i < n; i++)
        cl[i].version = 0;
    run_sessions(url, cl, n, rounds, out);
    double cpu = 0;
    if (write(to[1], "stop\n", 5) != 5 || !fgets(line, sizeof line, rd) ||
        sscanf(line, "cpu %lf", &cpu) != 1) {
        fprintf(stderr, "bench: no CPU time from the --serve process\n");
        exit(1);
    }
    close(to[1]);
    fclose(rd);
    int st;
    waitpid(pid, &st, 0);
    *server_cpu = cpu / rounds;
}

/* The single-engine path and the master + G aggregators path at n clients,
 * in one process over inproc://, no dropouts; with split, then the same two
 * paths again with the server side in another process over ipc://. */
static void run_grouped(const char *self, uint32_t n, uint32_t n_items, uint32_t k,
                        uint32_t neighbors, int rounds, uint32_t groups, int split,
                        double *cpu_single, double *cpu_grouped)
{
    size_t dx = (size_t)n_items * k;
    float *y = bench_model(dx);
    float *x = malloc(dx * sizeof *x);
    if (!x) {
        fprintf(stderr, "bench: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < dx; i++)
        x[i] = (float)((int)(i % 23) - 11) * 0.05f;
    g_x = x;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    if (cores < 1)
        cores = 1;
    bclient *cl = calloc(n, sizeof *cl);
    for (uint32_t i = 0; i < n; i++) {
        uint8_t pk[32];
        crypto_sign_keypair(pk, cl[i].sk);
        cl[i].id = fedreci_secagg_id_from_pk(pk);
    }
    path_result single, grouped;
    service sv;
    /* one engine */
    service_start(&sv, "inproc://bench", n, n_items, k, neighbors, rounds, 0, y);
    run_sessions(sv.url, cl, n, rounds, &single);
    service_stop(&sv);
    print_path("one engine", n, 1, (uint32_t)dx + 1, neighbors, rounds, &single, cores);
    /* a master and G aggregators */
    for (uint32_t i = 0; i < n; i++)
        cl[i].version = 0;
    service_start(&sv, "inproc://bench", n, n_items, k, neighbors, rounds, groups, y);
    run_sessions(sv.url, cl, n, rounds, &grouped);
    service_stop(&sv);
    char name[48];
    snprintf(name, sizeof name, "master + %u aggregators", groups);
    print_path(name, n, groups, (uint32_t)dx + 1, neighbors, rounds, &grouped, cores);
    printf("|  | ratio grouped / one engine: client-rounds per second %.3f, per CPU-second "
           "%.3f |\n",
           single.wall / grouped.wall, single.cpu / grouped.cpu);
    *cpu_single = single.cpu / n;
    *cpu_grouped = grouped.cpu / n;
    if (split) {
        printf("\nthe same paths with the server side in another process (ipc://): CPU of the "
               "service (engine, or master and aggregators) and of the %u clients\n",
               n);
        printf("| path | clients | wall s/round | service CPU s/round | clients' CPU s/round | "
               "client-rounds per service CPU-second | per CPU-second, both sides |\n");
        printf("|---|---|---|---|---|---|---|\n");
        for (int p = 0; p < 2; p++) {
            path_result r;
            double srv = 0;
            run_split(self, n, n_items, k, neighbors, rounds, p ? groups : 0, cl, &r, &srv);
            printf("| %s | %u | %.2f | %.3f | %.3f | %.1f | %.1f |\n", p ? name : "one engine", n,
                   r.wall, srv, r.cpu, n / srv, n / (srv + r.cpu));
            fflush(stdout);
        }
    }
    free(cl);
    free(x);
    free(y);
}

/* What the service path does per client-round that the simulator does not
 * (fedrec-sim --group-size drives the same SecAgg state machines with no
 * transport), each part timed alone in CPU seconds at d = n_items * k + 1:
 * the model reply (the coordinator encodes one per client; the client
 * decodes it and checks its BLAKE2b checksum), the masked input (encode and
 * Poly1305 MAC on the client, decode and MAC check on the coordinator), the
 * authentication of the small messages (protocol version 7: the check-in and
 * the model request signed and verified, the advert, share keys and unmask
 * MACed and checked), and a buffered
 * SecAgg client's d-word buffers (created and destroyed every round: a
 * session's q in secure memory and its masked copy). Prints one row per
 * part and their sum beside the measured CPU per client-round of both
 * paths; the rest is the transport and its threads (nng, wake-ups). */
static void service_parts(uint32_t n_items, uint32_t k, double cpu_single, double cpu_grouped)
{
    const size_t dx = (size_t)n_items * k, d = dx + 1;
    const int reps = 20;
    float *y = malloc(dx * sizeof *y);
    uint32_t *q = calloc(d, sizeof *q);
    float gram[32 * 32] = {0};
    if (!y || !q || k > 32) {
        free(y);
        free(q);
        return;
    }
    for (size_t i = 0; i < dx; i++)
        y[i] = (float)((int)(i % 17) - 8) * 0.001f;
    uint8_t sum[FEDRECI_WIRE_CHECKSUM_BYTES], key[32], pk[32], sk[64];
    fedreci_wire_checksum(y, dx * sizeof *y, sum);
    randombytes_buf(key, sizeof key);
    crypto_sign_keypair(pk, sk);
    fedreci_wire_hdr h = {fedreci_secagg_id_from_pk(pk), 3, FEDRECI_WIRE_STAGE_MODEL};
    fedreci_wire_model wm = {2, n_items, k, y, gram, sum, NULL, 0, NULL, 0};
    double t_enc = 0, t_dec = 0, t_menc = 0, t_mdec = 0, t_sig = 0, t_buf = 0;
    int ok = 1;
    for (int r = 0; r < reps && ok; r++) {
        nng_msg *m = NULL;
        fedreci_wire_env *e = NULL;
        fedreci_wire_model got;
        double c0 = cpu_s();
        ok = !fedreci_wire_enc_model_reply(&m, &h, &wm, 2);
        double c1 = cpu_s();
        ok = ok && !fedreci_wire_decode_msg(m, (size_t)-1 / 2, &e) &&
             !fedreci_wire_get_model(e, &got);
        double c2 = cpu_s();
        t_enc += c1 - c0;
        t_dec += c2 - c1;
        fedreci_wire_free(e);
        if (m)
            nng_msg_free(m);
        /* the masked input */
        fedreci_wire_hdr hm = {h.client_id, 3, FEDRECI_WIRE_STAGE_MASKED_INPUT};
        m = NULL;
        e = NULL;
        const uint32_t *back = NULL;
        c0 = cpu_s();
        ok = ok && !fedreci_wire_enc_masked(&m, &hm, q, d) && !fedreci_wire_mac(m, key);
        c1 = cpu_s();
        ok = ok && !fedreci_wire_decode_msg(m, (size_t)-1 / 2, &e) &&
             !fedreci_wire_verify_mac(nng_msg_body(m), nng_msg_len(m), e, key) &&
             !fedreci_wire_get_masked(e, (uint32_t)d, &back);
        c2 = cpu_s();
        t_menc += c1 - c0;
        t_mdec += c2 - c1;
        fedreci_wire_free(e);
        if (m)
            nng_msg_free(m);
        /* the small messages (protocol version 7): 2 signed by the client
           (check-in, model request) and verified, 3 MACed (advert, share
           keys, unmask) and checked */
        fedreci_wire_hdr hs = {h.client_id, 3, FEDRECI_WIRE_STAGE_UNMASK};
        c0 = cpu_s();
        for (int i = 0; i < 5 && ok; i++) {
            m = NULL;
            e = NULL;
            int sig = i < 2;
            ok = !fedreci_wire_enc_unmask(&m, &hs, NULL, 0) &&
                 !(sig ? fedreci_wire_sign(m, &hs, sk) : fedreci_wire_mac(m, key)) &&
                 !fedreci_wire_decode_msg(m, 1 << 20, &e) &&
                 !(sig ? fedreci_wire_verify(nng_msg_body(m), nng_msg_len(m), e, pk)
                       : fedreci_wire_verify_mac(nng_msg_body(m), nng_msg_len(m), e, key));
            fedreci_wire_free(e);
            if (m)
                nng_msg_free(m);
        }
        t_sig += cpu_s() - c0;
        /* a buffered SecAgg client's round buffers */
        fedreci_secagg_params p;
        memset(&p, 0, sizeof p);
        p.round_id = 3;
        p.n = 10;
        p.k = 9;
        p.t = 5;
        p.d = (uint32_t)d;
        p.clip = 16;
        p.scale = 1024;
        p.max_weight = 1;
        fedreci_secagg_client *c = NULL;
        c0 = cpu_s();
        ok = ok && !fedreci_secagg_client_create(&c, &p, h.client_id, sk, NULL);
        fedreci_secagg_client_destroy(c);
        t_buf += cpu_s() - c0;
    }
    if (ok) {
        double parts[] = {t_enc, t_dec, t_menc, t_mdec, t_sig, t_buf}, all = 0;
        const char *names[] = {"model reply: encode (coordinator, one per client)",
                               "model reply: decode and BLAKE2b checksum (client)",
                               "masked input: encode and Poly1305 MAC (client)",
                               "masked input: decode and MAC check (coordinator)",
                               "2 small messages signed and verified, 3 MACed and checked",
                               "a buffered SecAgg client's d-word buffers, created and freed"};
        printf(
            "\nwhat the service path does per client-round beyond the simulator's work, each part "
            "timed alone (CPU ms, d = %zu):\n",
            d);
        printf("| part | CPU ms per client-round |\n|---|---|\n");
        for (int i = 0; i < 6; i++) {
            printf("| %s | %.3f |\n", names[i], 1e3 * parts[i] / reps);
            all += parts[i] / reps;
        }
        printf("| sum of the parts | %.3f |\n", 1e3 * all);
        if (cpu_single > 0 && cpu_grouped > 0)
            printf("| measured above: CPU per client-round, one engine / master + aggregators | "
                   "%.3f / %.3f |\n",
                   1e3 * cpu_single, 1e3 * cpu_grouped);
    }
    free(y);
    free(q);
}

/* --clients: a comma-separated list of up to 8 sizes, no empty entry.
 * Returns 0, or -1 after printing the error. */
static int parse_sizes(const char *list, uint32_t sizes[8], int *n_sizes)
{
    int n = 0;
    for (const char *p = list;; n++) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char one[32];
        if (n == 8 || len >= sizeof one) {
            fprintf(stderr,
                    "fedrec-bench engine: --clients '%s': expected up to 8 "
                    "comma-separated integers from 2 to 100000\n",
                    list);
            return -1;
        }
        memcpy(one, p, len);
        one[len] = '\0';
        if (fedreci_opt_u32("--clients", one, 2, 100000, &sizes[n])) {
            bench_usage_error("engine");
            return -1;
        }
        if (!comma)
            break;
        p = comma + 1;
    }
    *n_sizes = n + 1;
    return 0;
}

int fedrec_bench_engine(int argc, char **argv)
{
    uint32_t n_items = 3665, k = 32, neighbors = 16;
    int rounds = 2;
    double dropout = 0.1;
    uint32_t sizes[8] = {100, 300};
    int n_sizes = 2;
    uint32_t groups = 0;
    int split = 0;
    const char *serve_prefix = NULL;
    enum {
        O_CLIENTS = 0x100,
        O_ITEMS,
        O_FACTORS,
        O_NEIGHBORS,
        O_DROPOUT,
        O_ROUNDS,
        O_GROUPS,
        O_SPLIT,
        O_SERVE
    };
    static const struct option lo[] = {
        {"clients", required_argument, NULL, O_CLIENTS},
        {"items", required_argument, NULL, O_ITEMS},
        {"factors", required_argument, NULL, O_FACTORS},
        {"neighbors", required_argument, NULL, O_NEIGHBORS},
        {"dropout", required_argument, NULL, O_DROPOUT},
        {"rounds", required_argument, NULL, O_ROUNDS},
        {"groups", required_argument, NULL, O_GROUPS},
        {"split", no_argument, NULL, O_SPLIT},
        {"serve", required_argument, NULL, O_SERVE},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    fedreci_opt_reset();
    int c;
    while ((c = getopt_long(argc, argv, ":", lo, NULL)) != -1) {
        fedrec_err e = FEDREC_OK;
        uint32_t v;
        switch (c) {
        case 'h':
            printf("fedrec-bench engine [--clients N[,N...]] [--items N] [--factors K]\n"
                   "  [--neighbors K] [--dropout P] [--rounds R] [--groups G [--split]]\n"
                   "  N: up to 8 sizes, 2..100000; items 1..1000000; K 1..256;\n"
                   "  neighbors 0..100000 (0: classic SecAgg); P 0..1; R 1..1000; G 1..64\n"
                   "Real SecAgg+ rounds over inproc:// with N sessions in one process.\n"
                   "--groups G: instead, per size, one engine and then a master with G\n"
                   "aggregators (SecAgg groups, issue 20), no dropouts, in the same run:\n"
                   "client-rounds per second, per core and per CPU-second.\n"
                   "--split: then both paths again with the service (engine, or master\n"
                   "and aggregators) in a child process over ipc://, its CPU apart from\n"
                   "the clients'. (--serve PREFIX: that child; internal.)\n");
            return 0;
        case O_CLIENTS:
            if (parse_sizes(optarg, sizes, &n_sizes))
                return 2;
            break;
        case O_ITEMS:
            e = fedreci_opt_u32("--items", optarg, 1, 1000000, &n_items);
            break;
        case O_FACTORS:
            e = fedreci_opt_u32("--factors", optarg, 1, 256, &k);
            break;
        case O_NEIGHBORS:
            e = fedreci_opt_u32("--neighbors", optarg, 0, 100000, &neighbors);
            break;
        case O_DROPOUT:
            e = fedreci_opt_double("--dropout", optarg, 0.0, 1.0, &dropout);
            break;
        case O_ROUNDS:
            e = fedreci_opt_u32("--rounds", optarg, 1, 1000, &v);
            rounds = (int)v;
            break;
        case O_GROUPS:
            e = fedreci_opt_u32("--groups", optarg, 1, 64, &groups);
            break;
        case O_SPLIT:
            split = 1;
            break;
        case O_SERVE:
            serve_prefix = optarg;
            break;
        default:
            return bench_getopt_error("engine", c, argc, argv, lo);
        }
        if (e)
            return bench_usage_error("engine");
    }
    if (optind < argc)
        return bench_getopt_error("engine", -1, argc, argv, lo);
    if (sodium_init() < 0)
        return 1;
    fedreci_log_set_level(FEDRECI_LOG_ERROR);
    if (serve_prefix)
        return serve(serve_prefix, sizes[0], n_items, k, neighbors, rounds, groups);
    if (groups) {
        printf("client-rounds per second at d = %u, neighbours %u; sessions' update is a fixed "
               "vector (no client training step, no evaluation); %ld cores online\n",
               n_items * k + 1, neighbors, sysconf(_SC_NPROCESSORS_ONLN));
        printf("| path | clients | groups | d | k | rounds completed | wall s/round | CPU s/round "
               "| client-rounds/s | per core (wall) | per CPU-second |\n");
        printf("|---|---|---|---|---|---|---|---|---|---|---|\n");
        double cs = 0, cg = 0;
        for (int i = 0; i < n_sizes; i++)
            run_grouped("/proc/self/exe", sizes[i], n_items, k, neighbors, rounds, groups, split,
                        &cs, &cg);
        service_parts(n_items, k, cs, cg);
        return 0;
    }
    printf("| clients | k | d | dropout | round | wall s | adv ms | share ms | masked ms | "
           "unmask ms | KiB in/client | KiB out/client | completed |\n");
    printf("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for (int i = 0; i < n_sizes; i++)
        run(sizes[i], n_items, k, neighbors, dropout, rounds);
    return 0;
}

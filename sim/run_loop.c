/* fedrec-sim run: the seeded derivations both round loops share, and the
 * plain-sum reference loop (--secagg off).
 *
 * Determinism: every random choice of the simulator (a client's dropout and
 * its stage, its stochastic-rounding seed, its identity key, the plain
 * loop's cohorts) is a function of (--seed, round, client), so a run is the
 * same on every machine and thread count. */
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "core/err.h"
#include "core/mf/mf.h"
#include "core/rng.h"
#include "sim/run.h"

/* ---- seeded derivations ---------------------------------------------------------------- */

static uint64_t hash3(uint64_t seed, uint64_t a, uint64_t b, uint64_t label)
{
    return fedreci_rng_mix(fedreci_rng_mix(fedreci_rng_mix(seed ^ label) ^ a) ^ b);
}

/* Uniform in [0, 1). */
static double unit(uint64_t h)
{
    return (double)(h >> 11) * (1.0 / 9007199254740992.0);
}

void fedreci_run_derive32(uint64_t seed, uint64_t a, uint64_t b, const char *label, uint8_t out[32])
{
    uint8_t in[24];
    for (int i = 0; i < 8; i++) {
        in[i] = (uint8_t)(seed >> (8 * i));
        in[8 + i] = (uint8_t)(a >> (8 * i));
        in[16 + i] = (uint8_t)(b >> (8 * i));
    }
    crypto_generichash(out, 32, in, sizeof in, (const uint8_t *)label, strlen(label));
}

int fedreci_run_dropout_of(const fedreci_run_opts *o, uint32_t round_index, uint64_t client)
{
    if (o->dropout <= 0.0)
        return -1;
    uint64_t h = hash3(o->seed, round_index, client, 0x64726f70u);
    if (!(unit(h) < o->dropout))
        return -1;
    if (o->dropout_stage >= 0)
        return o->dropout_stage;
    return (int)(hash3(o->seed, round_index, client, 0x73746167u) % 4u);
}

/* ---- memory ---------------------------------------------------------------------------- */

uint64_t fedreci_run_rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return 0;
    char line[256];
    unsigned long long kb = 0;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %llu kB", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

uint64_t fedreci_run_heap_kb(void)
{
    struct mallinfo2 mi = mallinfo2();
    return ((uint64_t)mi.uordblks + (uint64_t)mi.hblkhd) / 1024u;
}

/* ---- the plain-sum reference ---------------------------------------------------------- */

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

fedrec_err fedreci_run_plain(const fedreci_run_world *wd, float *y, fedreci_run_round *recs,
                             fedreci_run_evaluator *ev)
{
    const fedreci_run_opts *o = wd->o;
    const fedreci_split *s = wd->s;
    const uint32_t n_train = wd->n_train, k = o->factors;
    const uint32_t *train_users = wd->train_users;
    const fedreci_mf_csr *r = &s->train;
    size_t nk = (size_t)r->n_cols * k;
    size_t dim = fedreci_mf_update_dim(r->n_cols, k, (fedreci_opt_kind)o->step);
    uint32_t cohort = o->cohort < n_train ? o->cohort : n_train;
    fedreci_mf_step *w = NULL;
    fedreci_optimizer *opt = NULL;
    float *grad = malloc(dim * sizeof *grad);
    float *sum = malloc(dim * sizeof *sum);
    uint32_t *pick = malloc((size_t)n_train * sizeof *pick);
    uint32_t *users = malloc((size_t)n_train * sizeof *users);
    /* --selection reshuffle: the clients drawn in the current epoch (the
       engine's rule, fedreci_coord_cfg.reshuffle, over the training shoppers) */
    uint8_t *drawn = o->reshuffle ? calloc(n_train, 1) : NULL;
    uint32_t *order = o->reshuffle ? malloc((size_t)n_train * sizeof *order) : NULL;
    fedreci_opt_params op = {
        (fedreci_opt_kind)o->step, (float)o->lr, (float)o->beta1, 0.999f, 1e-8f,
        (float)o->lambda,          n_train};
    fedrec_err e = grad && sum && pick && users && (!o->reshuffle || (drawn && order))
                       ? FEDREC_OK
                       : FEDREC_ERR_NOMEM;
    if (!e)
        e = fedreci_mf_step_create(&w, r->n_cols, k);
    if (!e)
        e = fedreci_optimizer_create(&opt, &op, r->n_cols, k);
    for (uint32_t ri = 0; ri < o->rounds && !e; ri++) {
        double t0 = fedreci_sim_now();
        /* pick[] holds positions in train_users: the fresh ones (not drawn in
           this epoch) first with --selection reshuffle */
        uint32_t fresh = n_train;
        if (o->reshuffle) {
            fresh = 0;
            for (uint32_t i = 0, back = n_train; i < n_train; i++)
                if (drawn[i])
                    order[--back] = i;
                else
                    order[fresh++] = i;
        } else {
            for (uint32_t i = 0; i < n_train; i++)
                pick[i] = i;
        }
        if (o->reshuffle)
            memcpy(pick, order, (size_t)n_train * sizeof *pick);
        uint64_t st = hash3(o->seed, ri, 0, 0x636f686fu);
        for (uint32_t i = 0; i < cohort; i++) {
            uint32_t hi = i < fresh ? fresh : n_train;
            uint32_t j = i + (uint32_t)(fedreci_rng_mix(st + i) % (hi - i));
            uint32_t t = pick[i];
            pick[i] = pick[j];
            pick[j] = t;
        }
        if (o->reshuffle) {
            if (fresh < cohort) /* a new epoch: this cohort only */
                memset(drawn, 0, n_train);
            for (uint32_t i = 0; i < cohort; i++)
                drawn[pick[i]] = 1;
        }
        for (uint32_t i = 0; i < cohort; i++)
            pick[i] = train_users[pick[i]];
        fedreci_run_round rec;
        memset(&rec, 0, sizeof rec);
        rec.round_id = ri + 1;
        rec.cohort = cohort;
        rec.verified = -1;
        uint32_t n = 0;
        for (uint32_t i = 0; i < cohort; i++) {
            int d = fedreci_run_dropout_of(o, ri, (uint64_t)pick[i] + 1);
            if (d >= 0)
                rec.dropped[d]++;
            else
                users[n++] = pick[i];
        }
        qsort(users, n, sizeof *users, cmp_u32);
        rec.survivors = n;
        if (n == 0) {
            snprintf(rec.reason, sizeof rec.reason, "no survivor");
        } else {
            uint32_t part = 0;
            e = fedreci_mf_fed_round_xx(w, opt, r, users, n, k, (float)o->lambda, o->x_bound, y,
                                        grad, sum, &part, NULL);
            rec.completed = !e;
            rec.n_completed = part;
            rec.up_bytes = (uint64_t)part * (dim + 1) * 4u;
            rec.down_bytes = (uint64_t)part * (nk + 1) * 4u;
        }
        rec.seconds = fedreci_sim_now() - t0;
        rec.rss_kb = fedreci_run_rss_kb();
        rec.heap_kb = fedreci_run_heap_kb();
        recs[ri] = rec;
        if (!e && ((ri + 1) % o->eval_every == 0 || ri + 1 == o->rounds))
            fedreci_run_evaluator_post(ev, y, nk, &recs[ri], ri);
    }
    fedreci_optimizer_destroy(opt);
    fedreci_mf_step_destroy(w);
    free(users);
    free(pick);
    free(drawn);
    free(order);
    free(sum);
    free(grad);
    return e;
}

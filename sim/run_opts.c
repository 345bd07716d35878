/* fedrec-sim run: the options — defaults, parsing with getopt_long (through
 * the subcommands' shared parser, so --opt value and --opt=value both work)
 * and the checks that need the data. */
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/mf/mf.h"
#include "sim/run.h"

const char *const fedreci_run_secagg_names[3] = {"off", "plus", "full"};
const char *const fedreci_run_stage_names[4] = {"advertise", "share", "masked", "unmask"};

enum {
    OPT_ROUNDS = FEDRECI_SIM_OPT_BASE,
    OPT_COHORT,
    OPT_NEIGHBORS,
    OPT_THRESHOLD,
    OPT_FACTORS,
    OPT_THREADS,
    OPT_EVAL_EVERY,
    OPT_SWEEPS,
    OPT_STAGE_TIMEOUT,
    OPT_SEED,
    OPT_DROPOUT,
    OPT_DROPOUT_STAGE,
    OPT_LAMBDA,
    OPT_LR,
    OPT_BETA1,
    OPT_CLIP,
    OPT_OUT,
    OPT_SECAGG,
    OPT_TRANSPORT,
    OPT_QUIET,
    OPT_SEEDS,
    OPT_DP_EPSILON,
    OPT_DP_DELTA,
    OPT_DP_RELEASES,
    OPT_DP_ROW_BOUND,
    OPT_DP_GRAM_WEIGHT,
    OPT_DP_MIN_SURVIVORS,
    OPT_DP_NOISE,
    OPT_DP_NO_SHRINK,
    OPT_DP_SHARES,
    OPT_DP_NORMALIZE,
    OPT_DP_ITEM_BIAS,
    OPT_DP_GRAM_FLOOR,
    OPT_GROUP_SIZE,
    OPT_SYNTH_SCALE,
    OPT_EVAL_SAMPLE,
    OPT_STEP,
    OPT_X_BOUND,
    OPT_SELECTION,
};

static const struct option run_options[] = {
    {"rounds", required_argument, NULL, OPT_ROUNDS},
    {"cohort", required_argument, NULL, OPT_COHORT},
    {"neighbors", required_argument, NULL, OPT_NEIGHBORS},
    {"threshold", required_argument, NULL, OPT_THRESHOLD},
    {"factors", required_argument, NULL, OPT_FACTORS},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"eval-every", required_argument, NULL, OPT_EVAL_EVERY},
    {"sweeps", required_argument, NULL, OPT_SWEEPS},
    {"stage-timeout", required_argument, NULL, OPT_STAGE_TIMEOUT},
    {"seed", required_argument, NULL, OPT_SEED},
    {"dropout", required_argument, NULL, OPT_DROPOUT},
    {"dropout-stage", required_argument, NULL, OPT_DROPOUT_STAGE},
    {"lambda", required_argument, NULL, OPT_LAMBDA},
    {"lr", required_argument, NULL, OPT_LR},
    {"beta1", required_argument, NULL, OPT_BETA1},
    {"step", required_argument, NULL, OPT_STEP},
    {"x-bound", required_argument, NULL, OPT_X_BOUND},
    {"selection", required_argument, NULL, OPT_SELECTION},
    {"clip", required_argument, NULL, OPT_CLIP},
    {"out", required_argument, NULL, OPT_OUT},
    {"secagg", required_argument, NULL, OPT_SECAGG},
    {"transport", required_argument, NULL, OPT_TRANSPORT},
    {"quiet", no_argument, NULL, OPT_QUIET},
    {"seeds", required_argument, NULL, OPT_SEEDS},
    {"dp-epsilon", required_argument, NULL, OPT_DP_EPSILON},
    {"dp-delta", required_argument, NULL, OPT_DP_DELTA},
    {"dp-releases", required_argument, NULL, OPT_DP_RELEASES},
    {"dp-row-bound", required_argument, NULL, OPT_DP_ROW_BOUND},
    {"dp-gram-weight", required_argument, NULL, OPT_DP_GRAM_WEIGHT},
    {"dp-min-survivors", required_argument, NULL, OPT_DP_MIN_SURVIVORS},
    {"dp-noise", required_argument, NULL, OPT_DP_NOISE},
    {"dp-no-shrink", no_argument, NULL, OPT_DP_NO_SHRINK},
    {"dp-shares", required_argument, NULL, OPT_DP_SHARES},
    {"dp-normalize", no_argument, NULL, OPT_DP_NORMALIZE},
    {"dp-item-bias", required_argument, NULL, OPT_DP_ITEM_BIAS},
    {"dp-gram-floor", required_argument, NULL, OPT_DP_GRAM_FLOOR},
    {"group-size", required_argument, NULL, OPT_GROUP_SIZE},
    {"synth-scale", required_argument, NULL, OPT_SYNTH_SCALE},
    {"eval-sample", required_argument, NULL, OPT_EVAL_SAMPLE},
    {NULL, 0, NULL, 0},
};

static const char *const cmd = "fedrec-sim run";

void fedreci_run_usage(FILE *f)
{
    fprintf(f, "usage: fedrec-sim [run] --data FILE [options]\n"
               "Federated training with secure aggregation: one client (the client library's\n"
               "session driver) per training customer and the coordinator's round engine, in one\n"
               "process over nng. Writes rounds.csv (with the provenance as # lines),\n"
               "summary.json, shoppers.csv and hr_ndcg.svg to --out (README.md, Outputs).\n"
               "federation:\n"
               "  --rounds N            training rounds (default 15 with --step als, 40 with\n"
               "                        adam and with --dp-epsilon)\n"
               "  --cohort C            clients drawn per round (default 1000 with --step als,\n"
               "                        500 with adam and with --dp-epsilon; capped at the\n"
               "                        number of clients)\n"
               "  --dropout P           probability that a selected client vanishes mid-round\n"
               "                        (default 0.1)\n"
               "  --dropout-stage S     where it vanishes: advertise|share|masked|unmask, or\n"
               "                        spread (default: each dropped client picks one at random)\n"
               "  --secagg MODE         plus: SecAgg+ on a random k-regular graph (default);\n"
               "                        full: classic SecAgg, every pair masks (k = C - 1);\n"
               "                        off: plain-sum reference without transport or masking\n"
               "  --neighbors K         SecAgg+ neighbours per client (default 16)\n"
               "  --threshold T         Shamir threshold, K/2 < T <= K (default K/2 + 1)\n"
               "  --clip B              update entries are clipped to [-B, B] before\n"
               "                        quantization (default 16; small values hurt accuracy)\n"
               "  --transport T         inproc (default) or tcp (loopback, a free port)\n"
               "  --stage-timeout S     fallback deadline of a SecAgg stage for silent clients,\n"
               "                        seconds (default 120; vanished clients are detected\n"
               "                        at once)\n"
               "  --group-size G        SecAgg groups (docs/scale.md): the cohort is split into\n"
               "                        groups of about G (core/secagg/groups.h), each group\n"
               "                        runs its own SecAgg+ round on the core state machines\n"
               "                        in process, round buffers per worker, and the master\n"
               "                        adds the group sums exactly; under mpirun the groups\n"
               "                        are spread over the ranks (rank 0 the master) with the\n"
               "                        same summary for every rank count. 0: one SecAgg round\n"
               "                        over the coordinator's engine and nng (default)\n"
               "  --synth-scale S       train on the population `fedrec-sim synth --scale S`\n"
               "                        grows from --data, built in memory (docs/scale.md)\n"
               "model:\n"
               "  --factors K           latent factors (default 32)\n"
               "  --lambda L            L2 regularization (default 0.1)\n"
               "  --step S              the server step (rounds without DP): als: each client\n"
               "                        uploads the upper triangle of x_u x_u^T beside its\n"
               "                        gradient (k (k + 1) / 2 more words) and the server\n"
               "                        preconditions the mean gradient with the cohort's sum\n"
               "                        of them, with momentum (default); adam: the gradient\n"
               "                        alone and Adam (docs/design.md section 2)\n"
               "  --lr R                Adam's learning rate (default 0.03) or the ALS step's\n"
               "                        step size (default 0.3)\n"
               "  --beta1 B             Adam's first-moment decay (default 0.5) or the ALS\n"
               "                        step's momentum (default 0.5), 0 <= B < 1; every\n"
               "                        default chosen on the validation split\n"
               "  --x-bound B           ALS step: x_u is clipped to norm B in the x_u x_u^T\n"
               "                        block, which is scaled by clip / B^2 so that no entry\n"
               "                        reaches --clip (default 8)\n"
               "  --selection S         how cohorts are drawn: reshuffle: each client at most\n"
               "                        once per epoch, the not yet drawn first (random\n"
               "                        reshuffling; the default with --step als); uniform:\n"
               "                        each round from all clients (the default otherwise;\n"
               "                        the only one with --dp-epsilon or --group-size)\n"
               "  --sweeps S            sweeps of the centralized ALS baseline (default 15)\n");
    fprintf(f, "differential privacy (docs/privacy.md; without these flags: none):\n"
               "  --dp-epsilon E        the budget: (E, --dp-delta)-DP for each shopper over the\n"
               "                        whole run (add/remove one shopper). Switches to the DP\n"
               "                        pipeline: each round's --cohort clients release bounded\n"
               "                        ALS statistics with Skellam noise added on the client\n"
               "                        before masking, through the coordinator's engine and\n"
               "                        SecAgg (the unmasked noised sum is checked against the\n"
               "                        oracle); the server takes an ALS item step; a round\n"
               "                        that would exceed the budget is refused\n"
               "  --dp-delta D          the delta of the budget, 0 < D < 1 (required with E)\n"
               "  --dp-releases R       rounds the noise is calibrated for (default --rounds;\n"
               "                        more rounds than R are refused by the budget)\n"
               "  --dp-row-bound R      L2 bound of a shopper's item rows (default 3)\n"
               "  --dp-gram-weight G    weight of the k x k Gram part (default 1); a\n"
               "                        shopper's contribution has L2 norm <= sqrt(R^2 + G^2)\n"
               "  --dp-gram-floor PHI   the item step floors the noised Gram sum's eigenvalues\n"
               "                        at PHI times its trace, 0..1 (default 0), and always\n"
               "                        at its noise's level (post-processing)\n"
               "  --dp-min-survivors F  fraction of clients a round needs; every client adds\n"
               "                        the noise share of that many survivors (default 0.8)\n"
               "  --dp-noise M          client: every client samples its noise, over the\n"
               "                        engine (default); aggregate: in process, every client\n"
               "                        every round, one draw on the sum, the same distribution\n"
               "                        (Skellam is closed under sums), for long experiments\n"
               "  --dp-no-shrink        do not shrink noisy item rows\n"
               "  --dp-shares LIST      how the budget is spread over the releases, one\n"
               "                        positive number per release (e.g. 1,3): release r\n"
               "                        gets noise variance proportional to 1 / share r\n"
               "                        (default equal; in process: with --dp-noise aggregate\n"
               "                        or --secagg off)\n"
               "  --dp-normalize        scale each x_u to norm 1 before encoding (default:\n"
               "                        clip to norm 1; in process only)\n"
               "  --dp-item-bias A      give every item a bias learned in the same releases:\n"
               "                        each shopper's vector gets a last coordinate fixed at\n"
               "                        A in (0, 1), the rest clipped to sqrt(1 - A^2)\n"
               "                        (default 0: none; in process only)\n");
    fprintf(f, "run:\n"
               "  --seed N              seed of the initial model, cohorts, dropouts, rounding\n"
               "                        (default 1); same seed, options and threads give the\n"
               "                        same summary.json apart from wall_seconds\n"
               "  --threads T           evaluation threads (default 2)\n"
               "  --eval-every N        evaluate the model every N rounds (default 1; the last\n"
               "                        round always)\n"
               "  --eval-sample N       evaluate everything (baselines too) on a seeded sample\n"
               "                        of N test shoppers (default: all)\n"
               "  --out DIR             output directory (default results)\n"
               "  --quiet               no per-round progress\n"
               "  --seeds LIST          one run per seed (e.g. 1,2,3, at most 64), each in\n"
               "                        --out/seed-N; then seeds.json and seeds.csv in --out:\n"
               "                        the mean of each metric and its 95%% Student t interval\n"
               "                        across the seeds. A seed whose folder already holds a\n"
               "                        finished run (summary.json) is not run again\n");
    fedreci_sim_data_usage(f);
}

/* --dp-shares a,b,...: positive numbers, one per release (at most 64). */
static int parse_shares(fedreci_run_opts *o, const char *name, const char *v)
{
    o->n_dp_shares = 0;
    const char *p = v;
    while (*p) {
        char *end = NULL;
        double x = strtod(p, &end);
        if (end == p || !(x > 0 && x <= 1e6) || (*end && *end != ',') || o->n_dp_shares == 64) {
            fprintf(stderr, "%s: %s '%s': expected up to 64 comma-separated numbers in (0, 1e6]\n",
                    cmd, name, v);
            return -1;
        }
        o->dp_shares[o->n_dp_shares++] = x;
        p = *end ? end + 1 : end;
    }
    if (!o->n_dp_shares) {
        fprintf(stderr, "%s: %s: empty\n", cmd, name);
        return -1;
    }
    return 0;
}

/* --seeds 1,2,3: distinct decimal seeds, none empty ("1,,3" is a typo,
   not the two seeds strtok would make of it). */
static int parse_seeds(fedreci_run_opts *o, const char *name, const char *v)
{
    char buf[1024], sub[64];
    if ((size_t)snprintf(buf, sizeof buf, "%s", v) >= sizeof buf) {
        fprintf(stderr, "%s: %s: too long\n", cmd, name);
        return -1;
    }
    if (v[0] == ',' || strstr(v, ",,") || (v[0] && v[strlen(v) - 1] == ',')) {
        fprintf(stderr, "%s: %s '%s': an empty seed between commas\n", cmd, name, v);
        return -1;
    }
    o->n_seeds = 0;
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        snprintf(sub, sizeof sub, "%s (seed %u)", name, o->n_seeds + 1);
        if (o->n_seeds == FEDRECI_RUN_MAX_SEEDS) {
            fprintf(stderr, "%s: %s: more than %d seeds\n", cmd, name, FEDRECI_RUN_MAX_SEEDS);
            return -1;
        }
        if (fedreci_sim_arg_u64(cmd, sub, t, &o->seeds[o->n_seeds]))
            return -1;
        for (uint32_t i = 0; i < o->n_seeds; i++)
            if (o->seeds[i] == o->seeds[o->n_seeds]) {
                fprintf(stderr, "%s: %s: seed %s given twice\n", cmd, name, t);
                return -1;
            }
        o->n_seeds++;
    }
    if (!o->n_seeds) {
        fprintf(stderr, "%s: %s '%s': no seed\n", cmd, name, v);
        return -1;
    }
    return 0;
}

/* Index of v in names[0..n-1], or -1. */
static int name_index(const char *const *names, int n, const char *v)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(v, names[i]))
            return i;
    return -1;
}

/* The choice options: --dropout-stage, --secagg, --transport. */
static int choice_opt(fedreci_run_opts *o, int code, const char *name, const char *v)
{
    static const char *const transports[2] = {"inproc", "tcp"};
    int i;
    const char *expected;
    if (code == OPT_DROPOUT_STAGE) {
        i = name_index(fedreci_run_stage_names, 4, v);
        if (i >= 0 || !strcmp(v, "spread")) {
            o->dropout_stage = i; /* -1: spread */
            return 0;
        }
        expected = "advertise, share, masked, unmask or spread";
    } else if (code == OPT_SECAGG) {
        if ((i = name_index(fedreci_run_secagg_names, 3, v)) >= 0) {
            o->secagg = i;
            return 0;
        }
        expected = "plus, full or off";
    } else {
        if ((i = name_index(transports, 2, v)) >= 0) {
            o->tcp = i;
            return 0;
        }
        expected = "inproc or tcp";
    }
    fprintf(stderr, "%s: %s '%s': expected %s\n", cmd, name, v, expected);
    return -1;
}

static int run_opt(void *ctx, int code, const char *name, const char *v)
{
    fedreci_run_opts *o = ctx;
    switch (code) {
    case OPT_ROUNDS:
        return fedreci_sim_arg_u32(cmd, name, v, 1, 1000000, &o->rounds);
    case OPT_COHORT:
        return fedreci_sim_arg_u32(cmd, name, v, 2, UINT32_MAX / 2, &o->cohort);
    case OPT_NEIGHBORS:
        return fedreci_sim_arg_u32(cmd, name, v, 1, UINT32_MAX / 2, &o->neighbors);
    case OPT_THRESHOLD:
        return fedreci_sim_arg_u32(cmd, name, v, 1, UINT32_MAX / 2, &o->threshold);
    case OPT_FACTORS:
        return fedreci_sim_arg_u32(cmd, name, v, 1, FEDRECI_RUN_MAX_FACTORS, &o->factors);
    case OPT_THREADS:
        return fedreci_sim_arg_u32(cmd, name, v, 1, 256, &o->threads);
    case OPT_EVAL_EVERY:
        return fedreci_sim_arg_u32(cmd, name, v, 1, 1000000, &o->eval_every);
    case OPT_SWEEPS:
        return fedreci_sim_arg_u32(cmd, name, v, 1, 1000, &o->sweeps);
    case OPT_STAGE_TIMEOUT:
        return fedreci_sim_arg_u32(cmd, name, v, 1, 86400, &o->stage_timeout_s);
    case OPT_SEED:
        return fedreci_sim_arg_u64(cmd, name, v, &o->seed);
    case OPT_DROPOUT:
        return fedreci_sim_arg_double(cmd, name, v, 0.0, 1.0, &o->dropout);
    case OPT_LAMBDA:
        return fedreci_sim_arg_double(cmd, name, v, 1e-12, 1e6, &o->lambda);
    case OPT_LR:
        return fedreci_sim_arg_double(cmd, name, v, 1e-9, 10.0, &o->lr);
    case OPT_BETA1:
        return fedreci_sim_arg_double(cmd, name, v, 0.0, 0.999, &o->beta1);
    case OPT_X_BOUND:
        return fedreci_sim_arg_double(cmd, name, v, 1e-3, 1e6, &o->x_bound);
    case OPT_SELECTION:
        if (!strcmp(v, "uniform") || !strcmp(v, "reshuffle")) {
            o->reshuffle = !strcmp(v, "reshuffle");
            return 0;
        }
        fprintf(stderr, "%s: %s '%s': expected uniform or reshuffle\n", cmd, name, v);
        return -1;
    case OPT_STEP:
        if (!strcmp(v, "adam") || !strcmp(v, "als")) {
            o->step = !strcmp(v, "als") ? FEDRECI_OPT_ALS : FEDRECI_OPT_ADAM;
            o->step_given = 1;
            return 0;
        }
        fprintf(stderr, "%s: %s '%s': expected adam or als\n", cmd, name, v);
        return -1;
    case OPT_CLIP:
        return fedreci_sim_arg_double(cmd, name, v, 1e-6, 1e6, &o->clip);
    case OPT_OUT:
        o->out = v;
        return 0;
    case OPT_QUIET:
        o->quiet = 1;
        return 0;
    case OPT_SEEDS:
        return parse_seeds(o, name, v);
    case OPT_DP_EPSILON:
        return fedreci_sim_arg_double(cmd, name, v, 1e-6, 1e6, &o->dp_epsilon);
    case OPT_DP_DELTA:
        return fedreci_sim_arg_double(cmd, name, v, 1e-300, 0.5, &o->dp_delta);
    case OPT_DP_RELEASES:
        return fedreci_sim_arg_u32(cmd, name, v, 1, 1000000, &o->dp_releases);
    case OPT_DP_ROW_BOUND:
        return fedreci_sim_arg_double(cmd, name, v, 1e-3, 1e3, &o->dp_row_bound);
    case OPT_DP_GRAM_WEIGHT:
        return fedreci_sim_arg_double(cmd, name, v, 1e-3, 1e3, &o->dp_gram_weight);
    case OPT_DP_GRAM_FLOOR:
        return fedreci_sim_arg_double(cmd, name, v, 0, 1, &o->dp_gram_floor);
    case OPT_DP_MIN_SURVIVORS:
        return fedreci_sim_arg_double(cmd, name, v, 0.01, 1.0, &o->dp_min_survivors);
    case OPT_DP_NO_SHRINK:
        o->dp_no_shrink = 1;
        return 0;
    case OPT_DP_NORMALIZE:
        o->dp_normalize = 1;
        return 0;
    case OPT_DP_ITEM_BIAS:
        return fedreci_sim_arg_double(cmd, name, v, 0, 0.99, &o->dp_item_bias);
    case OPT_DP_SHARES:
        return parse_shares(o, name, v);
    case OPT_EVAL_SAMPLE:
        return fedreci_sim_arg_u32(cmd, name, v, 1, UINT32_MAX - 1, &o->eval_sample);
    case OPT_SYNTH_SCALE:
        return fedreci_sim_arg_u32(cmd, name, v, 1, 100000, &o->synth_scale);
    case OPT_GROUP_SIZE:
        return fedreci_sim_arg_u32(cmd, name, v, 0, 1u << 20, &o->group_size);
    case OPT_DP_NOISE:
        if (!strcmp(v, "client") || !strcmp(v, "aggregate")) {
            o->dp_noise_aggregate = !strcmp(v, "aggregate");
            return 0;
        }
        fprintf(stderr, "%s: %s '%s': expected client or aggregate\n", cmd, name, v);
        return -1;
    default:
        return choice_opt(o, code, name, v);
    }
}

int fedreci_run_opts_parse(fedreci_run_opts *o, int argc, char **argv)
{
    memset(o, 0, sizeof *o);
    fedreci_sim_data_opts_default(&o->data);
    o->data.validation_ok = 1;
    o->rounds = 0; /* the step's default, below */
    o->cohort = 0; /* the step's default, below */
    o->neighbors = 16;
    o->factors = 32;
    o->threads = 2;
    o->eval_every = 1;
    o->sweeps = 15;
    o->stage_timeout_s = 120;
    o->dropout = 0.1;
    o->dropout_stage = -1;
    o->secagg = FEDRECI_RUN_SECAGG_PLUS;
    o->lambda = 0.1;
    o->step = FEDRECI_OPT_ALS;
    o->lr = 0;     /* the step's default, below */
    o->beta1 = -1; /* the same */
    o->x_bound = 8;
    o->reshuffle = -1; /* the step's default, below */
    o->clip = 16;
    o->seed = 1;
    o->out = "results";
    o->dp_row_bound = 3;
    o->dp_gram_weight = 1;
    o->dp_min_survivors = 0.8;
    int rc = fedreci_sim_parse_opts(argc, argv, cmd, run_options, &o->data, run_opt, o,
                                    fedreci_run_usage);
    if (rc)
        return rc;
    if (!o->data.data) {
        fprintf(stderr, "%s: --data FILE is required (see --help)\n", cmd);
        return 2;
    }
    if ((o->dp_epsilon > 0) != (o->dp_delta > 0)) {
        fprintf(stderr,
                "%s: --dp-epsilon and --dp-delta go together (the budget is (epsilon, "
                "delta)-DP)\n",
                cmd);
        return 2;
    }
    if (o->dp_releases && !(o->dp_epsilon > 0)) {
        fprintf(stderr, "%s: --dp-releases needs --dp-epsilon and --dp-delta\n", cmd);
        return 2;
    }
    if (o->step_given && o->step == FEDRECI_OPT_ALS && (o->dp_epsilon > 0 || o->group_size)) {
        fprintf(stderr,
                "%s: --step als is for rounds without DP in one SecAgg round: with --dp-epsilon "
                "the clients release the DP-ALS statistics and the server takes their own item "
                "step (docs/privacy.md), and --group-size does not carry the x_u x_u^T block "
                "yet\n",
                cmd);
        return 2;
    }
    if (o->dp_epsilon > 0 || o->group_size)
        o->step = FEDRECI_OPT_ADAM; /* DP: its own step; groups: the gradient alone */
    /* the defaults of the step, chosen on the validation split (docs/data.md) */
    if (o->lr == 0)
        o->lr = o->step == FEDRECI_OPT_ALS ? 0.3 : 0.03;
    if (o->beta1 < 0)
        o->beta1 = 0.5; /* both steps */
    if (o->rounds == 0)
        o->rounds = o->step == FEDRECI_OPT_ALS ? 15 : 40;
    if (o->cohort == 0)
        o->cohort = o->step == FEDRECI_OPT_ALS ? 1000 : 500;
    if (o->reshuffle == 1 && (o->dp_epsilon > 0 || o->group_size)) {
        fprintf(stderr,
                "%s: --selection reshuffle is for rounds without DP in one SecAgg round: the DP "
                "accountant assumes each round samples the clients independently, and "
                "--group-size draws its cohorts uniformly\n",
                cmd);
        return 2;
    }
    if (o->reshuffle < 0) /* chosen with the ALS step on the validation split (docs/data.md) */
        o->reshuffle = o->step == FEDRECI_OPT_ALS && !(o->dp_epsilon > 0) && !o->group_size;
    if (o->dp_epsilon > 0 && !o->dp_releases)
        o->dp_releases = o->rounds;
    if (o->n_dp_shares && (!(o->dp_epsilon > 0) || o->n_dp_shares != o->dp_releases)) {
        fprintf(stderr,
                "%s: --dp-shares gives %u shares: it needs --dp-epsilon and one share per "
                "release (%u)\n",
                cmd, o->n_dp_shares, o->dp_releases);
        return 2;
    }
    if ((o->n_dp_shares || o->dp_normalize || o->dp_item_bias > 0) && !o->dp_noise_aggregate &&
        o->secagg != FEDRECI_RUN_SECAGG_OFF) {
        fprintf(stderr,
                "%s: --dp-shares, --dp-normalize and --dp-item-bias are implemented in process "
                "only (--dp-noise aggregate or --secagg off)\n",
                cmd);
        return 2;
    }
    if (o->dp_item_bias > 0 && !(o->dp_epsilon > 0)) {
        fprintf(stderr, "%s: --dp-item-bias needs --dp-epsilon and --dp-delta\n", cmd);
        return 2;
    }
    if (o->group_size && o->dp_epsilon > 0) {
        fprintf(stderr,
                "%s: --group-size with --dp-epsilon is refused: differential privacy does not "
                "run with SecAgg groups in this version. The master sees every group's unmasked "
                "sum, so each group would be a release of its own whose noise covers the group's "
                "smallest accepted survivor count; G groups would put G times the noise variance "
                "one cohort-wide round needs into the model (docs/privacy.md)\n",
                cmd);
        return 2;
    }
    if (o->group_size && (o->secagg == FEDRECI_RUN_SECAGG_OFF || o->tcp)) {
        fprintf(stderr,
                "%s: --group-size runs SecAgg groups in process: not with --secagg off or "
                "--transport tcp\n",
                cmd);
        return 2;
    }
    return 0;
}

fedrec_err fedreci_run_opts_check(const fedreci_run_opts *o, uint32_t clients)
{
    if (o->secagg == FEDRECI_RUN_SECAGG_OFF || !o->threshold)
        return FEDREC_OK;
    /* the engine would clamp a threshold outside (k/2, k]: refuse it instead */
    uint32_t cohort = o->cohort < clients ? o->cohort : clients;
    uint32_t kk = o->secagg == FEDRECI_RUN_SECAGG_FULL || o->neighbors >= cohort - 1 ? cohort - 1
                                                                                     : o->neighbors;
    if (o->threshold <= kk / 2 || o->threshold > kk)
        return fedreci_error(FEDREC_ERR_INVALID,
                             "--threshold %u with k = %u neighbours: the threshold must be in "
                             "(k/2, k], i.e. %u..%u",
                             o->threshold, kk, kk / 2 + 1, kk);
    return FEDREC_OK;
}

/* fedrec-sim: the research simulator. */
#include <stdio.h>
#include <string.h>

#include <cblas.h>
#include <sodium.h>

#include "fedrec/fedrec.h"
#include "sim/compare.h"
#include "sim/sim.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: fedrec-sim [COMMAND] [options]   (fedrec %s)\n"
            "commands:\n"
            "  run --data FILE [options]       federated training with SecAgg+ over nng, one\n"
            "                                  client per training customer (the default)\n"
            "  baseline --data FILE [options]  tuned centralized baselines with intervals\n"
            "  describe --data FILE [--json]   cleaning report and dataset statistics\n"
            "  compare DIR... [--out DIR]      several runs side by side: means, 95%% intervals,\n"
            "                                  compare.csv/.json/.svg\n"
            "  sweep --grid SPEC [run options] one run per point of a grid, resumable, index.csv\n"
            "  split --data FILE --export DIR  the train/test split and id maps as CSV\n"
            "  synth --data FILE --scale S --out FILE\n"
            "                                  the log grown S-fold: new shoppers with real\n"
            "                                  baskets, items permuted in popularity bands\n"
            "`fedrec-sim COMMAND --help` lists a command's options.\n",
            fedrec_version());
}

int main(int argc, char **argv)
{
    /* The simulator runs its own threads over small BLAS calls: OpenBLAS's
     * threads would only oversubscribe the cores and make timings noisy. */
    openblas_set_num_threads(1);
    fedreci_sim_set_command_line(argc, argv);
    if (sodium_init() < 0) {
        fprintf(stderr, "fedrec-sim: libsodium failed to initialize\n");
        return 1;
    }
    if (argc > 1 && (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V"))) {
        printf("fedrec-sim %s\n", fedrec_version());
        return 0;
    }
    if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
        usage(stdout);
        return 0;
    }
    if (argc > 1 && !strcmp(argv[1], "describe"))
        return fedreci_sim_describe(argc - 1, argv + 1);
    if (argc > 1 && !strcmp(argv[1], "baseline"))
        return fedreci_sim_baseline(argc - 1, argv + 1);
    if (argc > 1 && !strcmp(argv[1], "split"))
        return fedreci_sim_split(argc - 1, argv + 1);
    if (argc > 1 && !strcmp(argv[1], "synth"))
        return fedreci_sim_synth(argc - 1, argv + 1);
    if (argc > 1 && !strcmp(argv[1], "sweep"))
        return fedreci_sim_sweep(argc - 1, argv + 1);
    if (argc > 1 && !strcmp(argv[1], "compare"))
        return fedreci_sim_compare(argc - 1, argv + 1);
    if (argc > 1 && !strcmp(argv[1], "run"))
        return fedreci_sim_run(argc - 1, argv + 1);
    if (argc > 1 && !strncmp(argv[1], "--", 2))
        return fedreci_sim_run(argc, argv); /* no subcommand: run */
    if (argc > 1)
        fprintf(stderr, "fedrec-sim: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}

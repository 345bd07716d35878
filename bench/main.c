/* fedrec-bench: benchmarks that print tables and ratios (never assertions). */
#include <stdio.h>
#include <string.h>

#include "bench_table.h"
#include "core/util.h"
#include "fedrec/fedrec.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: fedrec-bench SUITE [options]   (fedrec %s)\nsuites:", fedrec_version());
    for (const struct fedrec_bench_entry *e = fedrec_bench_table; e->name; e++)
        fprintf(f, " %s", e->name);
    fprintf(f, "\nRun `fedrec-bench SUITE --help` for a suite's options.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    /* the 0.5 MB buffers of every client-round reuse freed heap, as in the
       coordinator daemon (core/util.h) */
    fedreci_heap_keep_freed();
    for (const struct fedrec_bench_entry *e = fedrec_bench_table; e->name; e++)
        if (!strcmp(argv[1], e->name))
            return e->run(argc - 1, argv + 1);
    fprintf(stderr, "fedrec-bench: unknown suite '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}

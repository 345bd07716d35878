/* fedrec-coordinator: the retailer's daemon (round orchestration over nng). */
#include <stdio.h>
#include <string.h>

#include "fedrec/fedrec.h"

int main(int argc, char **argv)
{
    if (argc > 1 && (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V"))) {
        printf("fedrec-coordinator %s\n", fedrec_version());
        return 0;
    }
    fprintf(stderr, "fedrec-coordinator %s: the daemon is being built (issue 6)\n",
            fedrec_version());
    return 2;
}

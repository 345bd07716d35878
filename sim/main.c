/* fedrec-sim: the research simulator. */
#include <stdio.h>
#include <string.h>

#include "fedrec/fedrec.h"

int main(int argc, char **argv)
{
    if (argc > 1 && (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V"))) {
        printf("fedrec-sim %s\n", fedrec_version());
        return 0;
    }
    fprintf(stderr, "fedrec-sim %s: the simulator is being built (issue 8)\n",
            fedrec_version());
    return 2;
}

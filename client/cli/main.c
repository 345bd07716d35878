/* fedrec-client: the shopper-side command line. */
#include <stdio.h>
#include <string.h>

#include "fedrec/fedrec.h"

int main(int argc, char **argv)
{
    if (argc > 1 && (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V"))) {
        printf("fedrec-client %s\n", fedrec_version());
        return 0;
    }
    fprintf(stderr, "fedrec-client %s: the client CLI is being built (issue 7)\n",
            fedrec_version());
    return 2;
}

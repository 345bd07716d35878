#include "fedrec/fedrec.h"

const char *fedrec_version(void)
{
    return FEDREC_VERSION_STRING;
}

int fedrec_version_number(void)
{
    return FEDREC_VERSION_NUMBER;
}

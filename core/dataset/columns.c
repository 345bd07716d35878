/* core/dataset: the column presets (--format) and the --columns spec. */
#include <string.h>
#include <strings.h>

#include "core/dataset/dataset.h"
#include "core/err.h"

fedrec_err fedreci_dataset_format(const char *name, fedreci_dataset_columns *c)
{
    fedreci_dataset_columns f;
    memset(&f, 0, sizeof f);
    if (!name || !strcmp(name, "online-retail")) {
        /* all NULL: the UCI defaults */
    } else if (!strcmp(name, "movielens")) {
        f = (fedreci_dataset_columns){"userId", "movieId", "timestamp", "", "", "", "", "rating"};
    } else if (!strcmp(name, "generic")) {
        /* quantity stays NULL: the default name "Quantity" matches a
           "quantity" column case-insensitively and may be absent */
        f = (fedreci_dataset_columns){"user", "item", "time", NULL, "", "", "", ""};
    } else {
        return fedreci_error(FEDREC_ERR_INVALID,
                             "--format '%s': expected generic, online-retail or movielens", name);
    }
    *c = f;
    return FEDREC_OK;
}

/* The field of c that a role names, or NULL. */
static const char **role_field(fedreci_dataset_columns *c, const char *role, size_t n)
{
    static const char *const roles[] = {"user",  "item",   "time",        "quantity",
                                        "price", "basket", "description", "rating"};
    const char **fields[] = {&c->user,  &c->item,   &c->time,        &c->quantity,
                             &c->price, &c->basket, &c->description, &c->rating};
    for (size_t i = 0; i < sizeof roles / sizeof roles[0]; i++)
        if (strlen(roles[i]) == n && !strncasecmp(roles[i], role, n))
            return fields[i];
    return NULL;
}

fedrec_err fedreci_dataset_columns_parse(char *spec, fedreci_dataset_columns *c)
{
    if (!spec || !*spec)
        return fedreci_error(FEDREC_ERR_INVALID, "--columns: empty; expected role=column,...");
    fedreci_dataset_columns out = *c;
    char *p = spec;
    while (*p) {
        char *part = p, *comma = strchr(p, ',');
        if (comma)
            *comma = 0;
        p = comma ? comma + 1 : p + strlen(p);
        char *eq = strchr(part, '=');
        const char **field = eq ? role_field(&out, part, (size_t)(eq - part)) : NULL;
        if (!field)
            return fedreci_error(FEDREC_ERR_INVALID,
                                 "--columns: '%s' is not role=column (roles: user, item, time, "
                                 "quantity, price, basket, description, rating)",
                                 part);
        *field = eq + 1; /* "" = the log has no such column */
        if (comma && !*p)
            return fedreci_error(FEDREC_ERR_INVALID, "--columns: trailing ','");
    }
    if ((out.user && !*out.user) || (out.item && !*out.item) || (out.time && !*out.time))
        return fedreci_error(FEDREC_ERR_INVALID, "--columns: user, item and time need a column");
    *c = out;
    return FEDREC_OK;
}

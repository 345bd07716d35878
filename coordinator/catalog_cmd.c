#include "catalog_cmd.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "core/dataset/dataset.h"
#include "core/err.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: fedrec-coordinator catalog --from-log FILE [--format NAME]\n"
               "                                  [--columns SPEC] [--out FILE]\n"
               "\n"
               "Writes the catalog of a purchase log: a CSV file with the columns\n"
               "code,description (the file --catalog reads), every product of the log in\n"
               "ascending code order with its first non-empty description.\n"
               "  --from-log FILE  the purchase log (CSV, or gzip'd CSV)\n"
               "  --format NAME    its layout: online-retail (default) or generic\n"
               "  --columns SPEC   its column names, e.g. user=CustomerID,item=StockCode\n"
               "  --out FILE       write FILE (atomically) instead of standard output\n"
               "  --help           this text\n");
}

/* Writes field as one CSV field: quoted (quotes doubled) when it holds a
 * comma, a quote, a line break or leading/trailing blanks. */
static void put_field(FILE *f, const char *s)
{
    size_t n = strlen(s);
    int quote = strpbrk(s, ",\"\r\n") != NULL || (n && (s[0] == ' ' || s[n - 1] == ' '));
    if (!quote) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

int fedreci_catalog_cmd(int argc, char **argv)
{
    enum { O_FROM = 1, O_FORMAT, O_COLUMNS, O_OUT, O_HELP };
    static const struct option opts[] = {{"from-log", required_argument, NULL, O_FROM},
                                         {"format", required_argument, NULL, O_FORMAT},
                                         {"columns", required_argument, NULL, O_COLUMNS},
                                         {"out", required_argument, NULL, O_OUT},
                                         {"help", no_argument, NULL, O_HELP},
                                         {NULL, 0, NULL, 0}};
    const char *from = NULL, *format = NULL, *out = NULL;
    char *columns = NULL;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":", opts, NULL)) != -1) {
        switch (c) {
        case O_FROM:
            from = optarg;
            break;
        case O_FORMAT:
            format = optarg;
            break;
        case O_COLUMNS:
            columns = optarg;
            break;
        case O_OUT:
            out = optarg;
            break;
        case O_HELP:
            usage(stdout);
            return 0;
        default:
            fprintf(stderr, "fedrec-coordinator catalog: bad option '%s' (see --help)\n",
                    argv[optind - 1]);
            return 2;
        }
    }
    if (!from || optind < argc) {
        fprintf(stderr, "fedrec-coordinator catalog: needs --from-log FILE and nothing else "
                        "(see --help)\n");
        return 2;
    }
    /* the catalog replaces --out by a rename: --out naming the log would
       replace the purchase log with the catalog */
    struct stat st_from, st_out;
    if (out && stat(from, &st_from) == 0 && stat(out, &st_out) == 0 &&
        st_from.st_dev == st_out.st_dev && st_from.st_ino == st_out.st_ino) {
        fprintf(stderr,
                "fedrec-coordinator catalog: --out %s is the --from-log file itself: the purchase "
                "log would be replaced by the catalog (choose another file)\n",
                out);
        return 2;
    }
    fedreci_dataset_options o;
    fedreci_dataset_options_default(&o);
    fedrec_err e = FEDREC_OK;
    if (format || columns)
        e = fedreci_dataset_format(format, &o.columns);
    if (!e && columns)
        e = fedreci_dataset_columns_parse(columns, &o.columns);
    if (e) {
        fprintf(stderr, "fedrec-coordinator catalog: %s (see --help)\n", fedrec_errmsg());
        return 2;
    }
    fedreci_dataset *d = NULL;
    if ((e = fedreci_dataset_load(&d, from, &o, NULL)) != FEDREC_OK) {
        fprintf(stderr, "fedrec-coordinator catalog: %s: %s\n", from, fedrec_errmsg());
        return 1;
    }
    char tmp[4096];
    FILE *f = stdout;
    if (out) {
        int n = snprintf(tmp, sizeof tmp, "%s.tmp.%ld", out, (long)getpid());
        f = n > 0 && (size_t)n < sizeof tmp ? fopen(tmp, "w") : NULL;
        if (!f) {
            fprintf(stderr, "fedrec-coordinator catalog: %s: %s\n", out, strerror(errno));
            fedreci_dataset_destroy(d);
            return 1;
        }
    }
    uint32_t n_items = fedreci_dataset_n_items(d), described = 0;
    fputs("code,description\n", f);
    for (uint32_t i = 0; i < n_items; i++) {
        const char *desc = fedreci_dataset_item_description(d, i);
        described += desc[0] != '\0';
        put_field(f, fedreci_dataset_item_code(d, i));
        fputc(',', f);
        put_field(f, desc);
        fputc('\n', f);
    }
    int bad = fflush(f) != 0 || ferror(f);
    if (out) {
        bad |= fsync(fileno(f)) != 0;
        bad |= fclose(f) != 0;
        if (!bad && rename(tmp, out) != 0)
            bad = 1;
        if (bad)
            unlink(tmp);
    }
    if (bad) {
        fprintf(stderr, "fedrec-coordinator catalog: %s: %s\n", out ? out : "standard output",
                strerror(errno));
        fedreci_dataset_destroy(d);
        return 1;
    }
    fprintf(stderr, "fedrec-coordinator catalog: %u products (%u with a description) from %s%s%s\n",
            n_items, described, from, out ? " to " : "", out ? out : "");
    fedreci_dataset_destroy(d);
    return 0;
}

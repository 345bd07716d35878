/* libFuzzer harness for the coordinator's catalog CSV (coordinator/catalog.c):
 * the input is a `code,description` file, read with fedreci_catalog_read_csv,
 * then merged against a fixed stored catalog and against itself, and the
 * model grown for the merged catalog. Checked: a successful read has at
 * least one row, every row has a non-empty code found again by
 * fedreci_catalog_find at its own row; a merge keeps every old row index and
 * code; merging a catalog with itself changes nothing. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "coordinator/catalog.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[] = "/tmp/fedrec_fuzz_catalog_XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return 0;
    if (write(fd, data, size) != (ssize_t)size) {
        close(fd);
        unlink(path);
        return 0;
    }
    close(fd);
    fedreci_catalog *in = NULL;
    fedrec_err e = fedreci_catalog_read_csv(&in, path);
    unlink(path);
    if (e != FEDREC_OK)
        return 0;
    uint32_t n = fedreci_catalog_size(in);
    if (n == 0 || fedreci_catalog_n_active(in) != n)
        abort();
    for (uint32_t i = 0; i < n; i++) {
        const fedreci_catalog_item *it = fedreci_catalog_at(in, i);
        if (!it || !it->code || !it->code[0])
            abort();
        uint32_t row;
        if (fedreci_catalog_find(in, it->code, &row) != FEDREC_OK || row != i)
            abort();
    }

    /* a stored catalog with two products, one of which may reappear */
    fedreci_catalog *old = NULL;
    if (fedreci_catalog_create(&old) != FEDREC_OK)
        abort();
    if (fedreci_catalog_add(old, "85123A", "WHITE HANGING HEART T-LIGHT HOLDER", 1) != FEDREC_OK ||
        fedreci_catalog_add(old, "POST", "POSTAGE", 1) != FEDREC_OK)
        abort();
    fedreci_catalog *merged = NULL;
    fedreci_catalog_diff diff;
    if (fedreci_catalog_merge(old, in, &merged, &diff) == FEDREC_OK) {
        if (fedreci_catalog_size(merged) != 2 + diff.added)
            abort();
        for (uint32_t i = 0; i < 2; i++)
            if (strcmp(fedreci_catalog_at(merged, i)->code, fedreci_catalog_at(old, i)->code) != 0)
                abort();
        uint32_t *rows = NULL;
        size_t nr = 0;
        if (fedreci_catalog_retired_rows(merged, &rows, &nr) == FEDREC_OK) {
            if (nr != diff.retired)
                abort();
            free(rows);
        }
        const uint32_t k = 2;
        float y[2 * 2] = {0.5f, -0.5f, 0.25f, -0.25f};
        float *grown = NULL;
        if (fedreci_catalog_grow_factors(y, 2, k, fedreci_catalog_size(merged), 7,
                                         FEDRECI_CATALOG_INIT_STD, &grown) == FEDREC_OK) {
            if (memcmp(grown, y, sizeof y) != 0)
                abort();
            free(grown);
        }
        fedreci_catalog_destroy(merged);
    }
    merged = NULL;
    if (fedreci_catalog_merge(in, in, &merged, &diff) == FEDREC_OK) {
        if (diff.added || diff.retired || diff.reactivated || diff.renamed ||
            fedreci_catalog_size(merged) != n)
            abort();
        fedreci_catalog_destroy(merged);
    }
    fedreci_catalog_destroy(old);
    fedreci_catalog_destroy(in);
    return 0;
}

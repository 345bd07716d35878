/* libFuzzer harness for the purchase-log loader: the input is a CSV file
 * (written to a temporary file, since the loader streams from a path), loaded
 * leniently then strictly, then split and scored. Any outcome but a crash,
 * leak or sanitizer report is fine; a successful load must satisfy the
 * report's accounting identity. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/dataset/dataset.h"
#include "core/eval/eval.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[] = "/tmp/fedrec_fuzz_dataset_XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return 0;
    if (write(fd, data, size) != (ssize_t)size) {
        close(fd);
        unlink(path);
        return 0;
    }
    close(fd);
    for (int strict = 0; strict < 2; strict++) {
        fedreci_dataset_options o;
        fedreci_dataset_options_default(&o);
        o.strict = strict;
        fedreci_dataset *d = NULL;
        fedreci_dataset_report r;
        if (fedreci_dataset_load(&d, path, &o, &r) != FEDREC_OK)
            continue;
        if (r.rows_kept + r.dropped_unparsable + r.dropped_no_customer + r.dropped_cancelled +
                r.dropped_quantity + r.dropped_price + r.dropped_non_product !=
            r.rows_read)
            abort();
        fedreci_split *s = NULL;
        if (fedreci_split_create(&s, d, NULL) == FEDREC_OK) {
            fedreci_metrics m;
            /* a split that exists always has a popularity baseline, and its
               metrics are fractions */
            if (fedreci_eval_popularity(s, 10, &m) == FEDREC_OK &&
                (!(m.hr_at_k >= 0.0 && m.hr_at_k <= 1.0) ||
                 !(m.ndcg_at_k >= 0.0 && m.ndcg_at_k <= 1.0)))
                abort();
        }
        fedreci_split_destroy(s);
        fedreci_dataset_destroy(d);
    }
    unlink(path);
    return 0;
}

/*
 * coordinator/catalog_cmd: `fedrec-coordinator catalog`, the tool that makes
 * a catalog file - the one meaning of "catalog" across the programs: a CSV
 * file with the columns `code,description`, one product per line, as the
 * daemon's `--catalog` reads it (fedreci_catalog_read_csv) and
 * `fedrec-client recommend --catalog` reads it for descriptions.
 *
 *   fedrec-coordinator catalog --from-log FILE [--format NAME]
 *                              [--columns SPEC] [--out FILE]
 *
 * reads a purchase log (plain or gzip'd CSV, the layouts of
 * core/dataset/dataset.h: --format online-retail (default) or generic,
 * --columns to name the columns) and writes every product it holds after
 * cleaning (cancellations, non-product codes and bad rows are dropped, as
 * for training), in ascending code order, with its description (the first
 * non-empty one in the log, else empty). Fields are quoted per RFC 4180
 * when they need it. --out writes FILE atomically (a temporary file renamed
 * into place); without it the catalog goes to standard output. A summary
 * line goes to standard error.
 *
 * Thread-safety: none needed (a command's main).
 */
#ifndef FEDREC_COORDINATOR_CATALOG_CMD_H
#define FEDREC_COORDINATOR_CATALOG_CMD_H

/* Runs the command: argv[0] is "catalog", the options follow. Returns the
 * exit status: 0, 1 (the log cannot be read or the output written; the
 * message names the file), 2 (usage). */
int fedreci_catalog_cmd(int argc, char **argv);

#endif /* FEDREC_COORDINATOR_CATALOG_CMD_H */

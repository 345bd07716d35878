/* fedrec-sim subcommands. Each takes the arguments after the program name
 * (argv[0] is the subcommand) and returns the process exit status:
 * 0 success, 1 failure (message on stderr), 2 usage error. */
#ifndef FEDREC_SIM_SIM_H
#define FEDREC_SIM_SIM_H

/* `fedrec-sim describe --data FILE [--json] [--keep-non-products]
 * [--alpha A] [--eps E] [--strict] [--split-date YYYY-MM-DD]`: loads and
 * cleans a purchase log and prints the cleaning report, the dataset
 * statistics and the split's counts (leave-last-basket-out by default). */
int fedreci_sim_describe(int argc, char **argv);

#endif

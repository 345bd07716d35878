# fedrec-bench refuses bad flag values with a message naming the flag and
# its range (and exits 2) instead of wrapping, ignoring or printing nan.
# Each case runs twice, as `--flag value` and as `--flag=value` (getopt_long:
# both forms mean the same). Each case only parses arguments: no benchmark
# runs, nothing is written.
set(bench_bad_cases
  "client_records_neg|client|--records|-5|--records: '-5' is not an integer from 1 to 10000000"
  "client_records_zero|client|--records|0|--records: '0' is not an integer from 1 to 10000000"
  "load_reps_zero|load|--reps|0|--reps: '0' is not an integer from 1 to 1000"
  "load_reps_text|load|--reps|abc|--reps: 'abc' is not an integer from 1 to 1000"
  "engine_dropout_2|engine|--dropout|2|--dropout: '2' is not a number >= 0 and <= 1"
  "engine_dropout_nan|engine|--dropout|nan|--dropout: 'nan' is not a number >= 0 and <= 1"
  "engine_rounds_zero|engine|--rounds|0|--rounds: '0' is not an integer from 1 to 1000"
  "engine_clients_text|engine|--clients|abc|--clients: 'abc' is not an integer from 2 to 100000"
  "mf_sweeps_zero|mf|--sweeps|0|--sweeps: '0' is not an integer from 1 to 1000"
  "secagg_only_bad|secagg|--only|all|--only: 'all' is not client, server, classic, dp, checks, deviating or complaints"
  "secagg_dropout_big|secagg|--dropout|0.7|--dropout: '0.7' is not a number >= 0 and <= 0.5")
foreach(c ${bench_bad_cases})
  string(REPLACE "|" ";" f "${c}")
  list(GET f 0 name)
  list(GET f 1 suite)
  list(GET f 2 flag)
  list(GET f 3 val)
  list(GET f 4 msg)
  string(REGEX REPLACE "([][.*+?()^$])" "\\\\\\1" re "${msg}")
  # the message, and exit status 2 (a shell checks it; PASS_REGULAR_EXPRESSION ignores it)
  add_test(NAME bench_args_${name}
           COMMAND sh -c "\"$0\" \"$1\" \"$2\" \"$3\" 2>&1; test $? -eq 2 && echo exit-2"
                   $<TARGET_FILE:fedrec-bench> ${suite} ${flag} ${val})
  add_test(NAME bench_args_${name}_eq
           COMMAND sh -c "\"$0\" \"$1\" \"$2\" 2>&1; test $? -eq 2 && echo exit-2"
                   $<TARGET_FILE:fedrec-bench> ${suite} ${flag}=${val})
  set_tests_properties(bench_args_${name} bench_args_${name}_eq PROPERTIES TIMEOUT 20
    PASS_REGULAR_EXPRESSION "${re}.*exit-2")
endforeach()
# unknown flags, missing values and stray operands: named, exit status 2
set(bench_usage_cases
  "unknown_flag|load|--repz=3|--repz: unknown option"
  "missing_value|load|--reps|--reps: missing value"
  "flag_value|secagg|--json=1|--json: takes no value"
  "operand|client|extra|unexpected argument 'extra'")
foreach(c ${bench_usage_cases})
  string(REPLACE "|" ";" f "${c}")
  list(GET f 0 name)
  list(GET f 1 suite)
  list(GET f 2 arg)
  list(GET f 3 msg)
  string(REGEX REPLACE "([][.*+?()^$])" "\\\\\\1" re "${msg}")
  add_test(NAME bench_args_${name}
           COMMAND sh -c "\"$0\" \"$1\" \"$2\" 2>&1; test $? -eq 2 && echo exit-2"
                   $<TARGET_FILE:fedrec-bench> ${suite} ${arg})
  set_tests_properties(bench_args_${name} PROPERTIES TIMEOUT 20
    PASS_REGULAR_EXPRESSION "${re}.*exit-2")
endforeach()

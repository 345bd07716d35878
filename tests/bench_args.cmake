# fedrec-bench refuses bad flag values with a message naming the flag and
# its range (and exits 2) instead of wrapping, ignoring or printing nan.
# Each case only parses arguments: no benchmark runs, nothing is written.
set(bench_bad_cases
  "client_records_neg|client|--records|-5|--records '-5': expected an integer from 1 to 10000000"
  "client_records_zero|client|--records|0|--records '0': expected an integer from 1 to 10000000"
  "load_reps_zero|load|--reps|0|--reps '0': expected an integer from 1 to 1000"
  "load_reps_text|load|--reps|abc|--reps 'abc': expected an integer from 1 to 1000"
  "engine_dropout_2|engine|--dropout|2|--dropout '2': expected a number from 0 to 1"
  "engine_dropout_nan|engine|--dropout|nan|--dropout 'nan': expected a number from 0 to 1"
  "engine_rounds_zero|engine|--rounds|0|--rounds '0': expected an integer from 1 to 1000"
  "engine_clients_text|engine|--clients|abc|--clients 'abc': expected an integer from 2 to 100000")
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
  set_tests_properties(bench_args_${name} PROPERTIES TIMEOUT 20
    PASS_REGULAR_EXPRESSION "${re}.*exit-2")
endforeach()

# `fedrec-sim run` end to end on the December extract (884 clients): a few
# short SecAgg+ runs of the real program, checked by tests/sim_run_test.sh
# (bash and awk only): summary keys and values, the oracle, determinism,
# tcp = inproc, dropouts at the masked stage, aborted rounds, the plain path.
foreach(case keys repeat tcp dropout abort plain)
  add_test(NAME sim_run_${case}
           COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/sim_run_test.sh ${case} $<TARGET_FILE:fedrec-sim>
                   ${PROJECT_SOURCE_DIR}/data/online-retail/online_retail_2010-12.csv.gz
                   ${CMAKE_CURRENT_BINARY_DIR}/sim_run_${case})
  set_tests_properties(sim_run_${case} PROPERTIES TIMEOUT 300
    ENVIRONMENT "OPENBLAS_NUM_THREADS=1")
endforeach()

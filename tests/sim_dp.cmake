# `fedrec-sim run --dp-epsilon E --dp-delta D` end to end on the December
# extract (884 clients, 8 factors): the budget gate over the engine (with
# the exactness of the noised secure sum) and in process, determinism, and
# the output of a run without differential privacy, the item bias
# (tests/sim_dp_test.sh).
foreach(case gate gate_inproc repeat nodp shares bias)
  add_test(NAME sim_dp_${case}
           COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/sim_dp_test.sh ${case} $<TARGET_FILE:fedrec-sim>
                   ${PROJECT_SOURCE_DIR}/data/online-retail/online_retail_2010-12.csv.gz
                   ${CMAKE_CURRENT_BINARY_DIR}/sim_dp_${case})
  set_tests_properties(sim_dp_${case} PROPERTIES TIMEOUT 300
    ENVIRONMENT "OPENBLAS_NUM_THREADS=1")
endforeach()

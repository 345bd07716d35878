# fedrec-sim synth on the December extract: exact counts and distributions a
# correct generator must give, the popularity Gini within the bounds of the
# construction, describe --versus agreeing (tests/sim_synth_test.py, python3).
add_test(NAME sim_synth
         COMMAND python3 ${CMAKE_CURRENT_SOURCE_DIR}/sim_synth_test.py $<TARGET_FILE:fedrec-sim>
                 ${PROJECT_SOURCE_DIR}/data/online-retail/online_retail_2010-12.csv.gz
                 ${CMAKE_CURRENT_BINARY_DIR}/sim_synth)
set_tests_properties(sim_synth PROPERTIES TIMEOUT 120)

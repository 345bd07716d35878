# 300 rounds of the simulator with a flat live heap over the run (issues 9
# and 12; tests/sim_longrun_test.sh says what it measures and why not RSS).
# Not in sanitizer builds: AddressSanitizer replaces malloc (mallinfo2 sees
# nothing) and holds freed memory in its quarantine by design; LeakSanitizer
# and the valgrind run cover leaks there.
if(NOT FEDREC_SANITIZE)
  add_test(NAME sim_longrun_memory
           COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/sim_longrun_test.sh $<TARGET_FILE:fedrec-sim>
                   ${PROJECT_SOURCE_DIR}/data/online-retail/online_retail_2010-12.csv.gz
                   ${CMAKE_CURRENT_BINARY_DIR}/sim_longrun)
  set_tests_properties(sim_longrun_memory PROPERTIES TIMEOUT 600
    ENVIRONMENT "OPENBLAS_NUM_THREADS=1")
endif()

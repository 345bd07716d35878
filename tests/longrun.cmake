# 300 rounds of the simulator with memory flat over the run (issue 9). Not
# in sanitizer builds: AddressSanitizer's quarantine holds freed memory back
# by design, so RSS there says nothing about leaks (LeakSanitizer and the
# valgrind run cover those).
if(NOT FEDREC_SANITIZE)
  add_test(NAME sim_longrun_memory
           COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/sim_longrun_test.sh $<TARGET_FILE:fedrec-sim>
                   ${PROJECT_SOURCE_DIR}/data/online-retail/online_retail_2010-12.csv.gz
                   ${CMAKE_CURRENT_BINARY_DIR}/sim_longrun)
  # One malloc arena: glibc otherwise gives each of nng's worker threads its
  # own, and which arena holds freed-but-kept memory at the moment of a
  # sample swings RSS by +-5% from round to round (measured: peaks of 50-round
  # windows 39.9-42.3 MiB with the default arenas, 35.5-37.0 MiB with one).
  set_tests_properties(sim_longrun_memory PROPERTIES TIMEOUT 600
    ENVIRONMENT "OPENBLAS_NUM_THREADS=1;MALLOC_ARENA_MAX=1")
endif()

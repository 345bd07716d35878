# The Python module bindings/python/fedrec (tests/python_test.py) with the
# system's python3: readers of a real run, the ctypes client on libfedrec.so.
# Not in sanitizer builds: an instrumented libfedrec.so cannot be loaded
# into an uninstrumented python3 without preloading the sanitizer runtime.
find_program(FEDREC_PYTHON3 python3)
if(FEDREC_PYTHON3 AND NOT FEDREC_SANITIZE AND TARGET fedrec-sim)
  add_test(NAME python_bindings
           COMMAND ${FEDREC_PYTHON3} ${CMAKE_CURRENT_SOURCE_DIR}/python_test.py
                   $<TARGET_FILE:fedrec-sim> $<TARGET_FILE:fedrec>
                   ${PROJECT_SOURCE_DIR}/data/online-retail/online_retail_2010-12.csv.gz
                   ${CMAKE_CURRENT_BINARY_DIR}/python_bindings)
  set_tests_properties(python_bindings PROPERTIES TIMEOUT 120 ENVIRONMENT "OPENBLAS_NUM_THREADS=1")
endif()

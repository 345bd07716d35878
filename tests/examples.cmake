# The example programs run as tests: each must exit 0.
if(TARGET store_app)
  add_test(NAME example_store_app
           COMMAND store_app --data ${PROJECT_SOURCE_DIR}/data/online-retail/online_retail_2010-12.csv.gz
                   --store ${CMAKE_CURRENT_BINARY_DIR}/example-store)
  set_tests_properties(example_store_app PROPERTIES TIMEOUT 300
    ENVIRONMENT "OPENBLAS_NUM_THREADS=1")
endif()

# fedrec-coordinator and 8 fedrec-client processes over tcp://127.0.0.1: three
# rounds with two clients SIGKILLed mid-round, then kill -9 of the coordinator
# mid-round and a restart on the same database (tests/integration_test.sh).
add_test(NAME integration_rounds_kill
         COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/integration_test.sh ${PROJECT_BINARY_DIR}
                 ${PROJECT_SOURCE_DIR}/data/online-retail/online_retail_2010-12.csv.gz)
set_tests_properties(integration_rounds_kill PROPERTIES TIMEOUT 180)

# The ALS server step over fedrec-coordinator and 6 fedrec-client processes:
# the x_u x_u^T block in the masked upload, the step, the refusals
# (tests/integration_als_test.sh).
add_test(NAME integration_als_step
         COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/integration_als_test.sh ${PROJECT_BINARY_DIR}
                 ${PROJECT_SOURCE_DIR}/data/online-retail/online_retail_2010-12.csv.gz)
set_tests_properties(integration_als_step PROPERTIES TIMEOUT 180)

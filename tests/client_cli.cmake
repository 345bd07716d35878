# fedrec-client CLI integration test (runs the real program).
add_test(NAME client_cli
         COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/client_cli_test.sh $<TARGET_FILE:fedrec-client>
                 ${PROJECT_SOURCE_DIR}/data/online-retail/online_retail_2010-12.csv.gz)
set_tests_properties(client_cli PROPERTIES TIMEOUT 300)

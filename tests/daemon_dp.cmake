# fedrec-coordinator with --dp-epsilon/--dp-delta and 5 fedrec-client processes
# over tcp://127.0.0.1: two DP rounds, the budget gate refusing the third, the
# epsilon in /status, /metrics, the database and every shopper's ledger, a
# restart restoring the spent budget, a configuration that could wrap
# refused (tests/daemon_dp_test.sh).
add_test(NAME daemon_dp_budget
         COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/daemon_dp_test.sh ${PROJECT_BINARY_DIR}
                 ${PROJECT_SOURCE_DIR}/data/online-retail/online_retail_2010-12.csv.gz)
set_tests_properties(daemon_dp_budget PROPERTIES TIMEOUT 180)

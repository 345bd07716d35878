# Process-level fault cells: the real fedrec-coordinator (SQLite) killed with
# SIGKILL at each SecAgg stage and restarted; clients are fedrec-fault-client
# processes (tests/fault_client.c).
add_executable(fedrec-fault-client ${CMAKE_CURRENT_SOURCE_DIR}/fault_client.c)
target_compile_options(fedrec-fault-client PRIVATE ${FEDREC_WARNINGS})
target_link_libraries(fedrec-fault-client PRIVATE fedrec_static)
add_test(NAME faults_restart
         COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/faults_restart.sh
                 $<TARGET_FILE:fedrec-coordinator> $<TARGET_FILE:fedrec-fault-client>)
set_tests_properties(faults_restart PROPERTIES TIMEOUT 300)

# fedrec-coordinator as a process: startup, status endpoints, SIGTERM,
# restart with a grown catalog, configuration errors.
add_test(NAME daemon_smoke
         COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/daemon_smoke.sh ${PROJECT_BINARY_DIR})
set_tests_properties(daemon_smoke PROPERTIES TIMEOUT 120)

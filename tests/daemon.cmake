# fedrec-coordinator as a process: startup, status endpoints, SIGTERM,
# restart with a grown catalog, configuration errors.
add_test(NAME daemon_smoke
         COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/daemon_smoke.sh ${PROJECT_BINARY_DIR})
set_tests_properties(daemon_smoke PROPERTIES TIMEOUT 120)
# /healthz on a full disk (a 4 MiB tmpfs; skipped when mount is refused).
add_test(NAME healthz_full_disk
         COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/healthz_disk_test.sh ${PROJECT_BINARY_DIR})
set_tests_properties(healthz_full_disk PROPERTIES TIMEOUT 120 SKIP_RETURN_CODE 77)

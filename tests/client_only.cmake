# Builds the client-only configuration (-DFEDREC_CLIENT_ONLY=ON: libsodium,
# nng and protobuf-c only) from this source tree in a folder of its own, runs
# its tests, installs it stripped and checks the shipped library's
# dependency closure with ldd (tests/client_only_test.sh prints the sizes).
if(NOT FEDREC_SANITIZE AND NOT FEDREC_FUZZ)
  add_test(NAME client_only_build
           COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/client_only_test.sh ${PROJECT_SOURCE_DIR}
                   ${PROJECT_BINARY_DIR}/client-only)
  set_tests_properties(client_only_build PROPERTIES TIMEOUT 900)
endif()

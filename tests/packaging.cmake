# packaging/: the man pages name exactly the options of the programs' --help;
# `cmake --install` puts the systemd unit and the man pages where Debian
# expects them and systemd-analyze verify accepts the installed unit.
add_test(NAME man_pages_match_help
         COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/man_pages_test.sh ${PROJECT_BINARY_DIR}
                 ${PROJECT_SOURCE_DIR})
if(NOT FEDREC_SANITIZE)
  add_test(NAME systemd_unit_install_verify
           COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/systemd_unit_test.sh ${PROJECT_BINARY_DIR})
  set_tests_properties(systemd_unit_install_verify PROPERTIES TIMEOUT 300)
endif()

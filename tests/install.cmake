# Installs fedrec into a temporary prefix and builds programs against it from
# folders outside the source tree, with pkg-config and with find_package, as
# a store app would: a ten-line version check and examples/store_app.c, run
# against the installed coordinator (tests/install_test.sh).
if(NOT FEDREC_SANITIZE)
  add_test(NAME install_pkgconfig
           COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/install_test.sh ${PROJECT_BINARY_DIR}
                   ${PROJECT_VERSION} ${PROJECT_SOURCE_DIR})
  set_tests_properties(install_pkgconfig PROPERTIES TIMEOUT 300)
endif()

# Installs fedrec into a temporary prefix and builds a ten-line program
# against it with pkg-config, as a store app would.
if(NOT FEDREC_SANITIZE)
  add_test(NAME install_pkgconfig
           COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/install_test.sh ${PROJECT_BINARY_DIR}
                   ${PROJECT_VERSION})
  set_tests_properties(install_pkgconfig PROPERTIES TIMEOUT 300)
endif()

# The example programs run as tests against a real coordinator on loopback:
# each must exit 0.
if(TARGET store_app)
  add_test(NAME example_store_app
           COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/store_app_test.sh $<TARGET_FILE:store_app>
                   $<TARGET_FILE:fedrec-coordinator>)
  set_tests_properties(example_store_app PROPERTIES TIMEOUT 300)
endif()

# Opening a store writes nothing: strace counts no fsync/fdatasync/rename in
# `fedrec-client info` (scripts/setup.sh installs strace).
add_test(NAME store_open_no_sync
         COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/store_strace_test.sh $<TARGET_FILE:fedrec-client>)
set_tests_properties(store_open_no_sync PROPERTIES TIMEOUT 120)

# test_groups_service starts fedrec-coordinator processes in the aggregator
# role (issue 20): build the daemon first.
add_dependencies(test_groups_service fedrec-coordinator)
set_tests_properties(test_groups_service PROPERTIES TIMEOUT 300)

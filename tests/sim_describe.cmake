# `fedrec-sim describe` end to end on the December extract: the process runs,
# prints JSON with the report's figures, and refuses a missing --data.
add_test(NAME sim_describe_json
         COMMAND fedrec-sim describe --data ${PROJECT_SOURCE_DIR}/data/online-retail/online_retail_2010-12.csv.gz --json)
set_tests_properties(sim_describe_json PROPERTIES TIMEOUT 120
  PASS_REGULAR_EXPRESSION "\"rows_read\": 42481,.*\"raw_customers\": 948, \"raw_items\": 2822,.*\"split\": \"leave-last-basket-out\"")
add_test(NAME sim_describe_needs_data COMMAND fedrec-sim describe)
set_tests_properties(sim_describe_needs_data PROPERTIES WILL_FAIL TRUE TIMEOUT 60)

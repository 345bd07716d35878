# `fedrec-sim describe` end to end on the December extract: the process runs,
# prints JSON with the report's figures, and refuses a missing --data.
add_test(NAME sim_describe_json
         COMMAND fedrec-sim describe --data ${PROJECT_SOURCE_DIR}/data/online-retail/online_retail_2010-12.csv.gz --json)
set_tests_properties(sim_describe_json PROPERTIES TIMEOUT 120
  PASS_REGULAR_EXPRESSION "\"rows_read\": 42481,.*\"raw_customers\": 948, \"raw_items\": 2822,.*\"split\": \"leave-last-basket-out\"")
add_test(NAME sim_describe_needs_data COMMAND fedrec-sim describe)
set_tests_properties(sim_describe_needs_data PROPERTIES WILL_FAIL TRUE TIMEOUT 60)

# docs/data.md's worked example: the tiny MovieLens log with --format
# movielens (3 ratings below 4 dropped, 5 users, 5 movies, 9 baskets).
add_test(NAME sim_describe_movielens
         COMMAND fedrec-sim describe --data ${CMAKE_CURRENT_SOURCE_DIR}/data/movielens_tiny.csv --format movielens --json)
set_tests_properties(sim_describe_movielens PROPERTIES TIMEOUT 60
  PASS_REGULAR_EXPRESSION "\"rows_read\": 14,.*\"dropped_rating\": 3,.*\"rows_kept\": 11,.*\"customers\": 5, \"items\": 5,.*\"interactions\": 11, \"baskets\": 9,.*\"test_users\": 2,.*\"users_only_unseen\": 2, \"test_items\": 2, \"test_items_unseen\": 2,.*\"train_interactions\": 7, \"held_out_rows\": 4")

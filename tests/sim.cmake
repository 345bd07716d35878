# `fedrec-sim run` end to end on the December extract (884 clients): a few
# short SecAgg+ runs of the real program, checked by tests/sim_run_test.sh
# (bash and awk only): summary keys and values, the oracle, determinism,
# tcp = inproc, dropouts at the masked stage, aborted rounds, failed sessions
# closing their stage at once, the plain path, the option syntax, the SVG
# plot (python3 parses it) with a hostile --out path.
foreach(case keys repeat tcp dropout abort fail plain step opts plot)
  add_test(NAME sim_run_${case}
           COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/sim_run_test.sh ${case} $<TARGET_FILE:fedrec-sim>
                   ${PROJECT_SOURCE_DIR}/data/online-retail/online_retail_2010-12.csv.gz
                   ${CMAKE_CURRENT_BINARY_DIR}/sim_run_${case})
  set_tests_properties(sim_run_${case} PROPERTIES TIMEOUT 300
    ENVIRONMENT "OPENBLAS_NUM_THREADS=1")
endforeach()

# `fedrec-sim baseline --json` on the December extract: popularity is exact
# (counting only, hand-checkable); the centralized ALS keys must be present
# (their last digits depend on the BLAS kernels of the machine). Every model
# and grid runs; 5 sweeps and 200 resamples keep it short under the sanitizers.
add_test(NAME sim_baseline_json
         COMMAND fedrec-sim baseline --data ${PROJECT_SOURCE_DIR}/data/online-retail/online_retail_2010-12.csv.gz --json --sweeps 5 --boot 200)
set_tests_properties(sim_baseline_json PROPERTIES TIMEOUT 120
  ENVIRONMENT "OPENBLAS_NUM_THREADS=1"
  PASS_REGULAR_EXPRESSION "\"test_users\": 240,.*\"popularity_hr_at_10\": 0\\.329167, \"popularity_ndcg_at_10\": 0\\.0631[0-9]+,.*\"centralized_hr_at_10\": 0\\.[0-9]+, \"centralized_ndcg_at_10\": 0\\.[0-9]+,")

# The same log in three layouts (UCI, generic renamed/reordered, MovieLens):
# the same counts and metrics (tests/sim_layouts_test.sh, python3).
add_test(NAME sim_layouts
         COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/sim_layouts_test.sh $<TARGET_FILE:fedrec-sim>
                 ${PROJECT_SOURCE_DIR}/data/online-retail/online_retail_2010-12.csv.gz
                 ${CMAKE_CURRENT_BINARY_DIR}/sim_layouts)
set_tests_properties(sim_layouts PROPERTIES TIMEOUT 300 ENVIRONMENT "OPENBLAS_NUM_THREADS=1")

# run --seeds (statistics recomputed independently, resuming keeps finished
# runs) and compare (table, CSV, JSON, SVG): tests/sim_seeds_test.sh.
add_test(NAME sim_seeds_compare
         COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/sim_seeds_test.sh $<TARGET_FILE:fedrec-sim>
                 ${PROJECT_SOURCE_DIR}/data/online-retail/online_retail_2010-12.csv.gz
                 ${CMAKE_CURRENT_BINARY_DIR}/sim_seeds)
set_tests_properties(sim_seeds_compare PROPERTIES TIMEOUT 300 ENVIRONMENT "OPENBLAS_NUM_THREADS=1")

# split --export re-scored by an independent python3 scorer; sweep with its
# index, resumed after an interruption: tests/sim_split_test.sh.
add_test(NAME sim_split_sweep
         COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/sim_split_test.sh $<TARGET_FILE:fedrec-sim>
                 ${PROJECT_SOURCE_DIR}/data/online-retail/online_retail_2010-12.csv.gz
                 ${CMAKE_CURRENT_BINARY_DIR}/sim_split)
set_tests_properties(sim_split_sweep PROPERTIES TIMEOUT 300 ENVIRONMENT "OPENBLAS_NUM_THREADS=1")

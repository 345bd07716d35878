# fedrec-sim run --group-size: SecAgg groups in one process and under
# mpirun with 1, 2 and 3 ranks give the same summary.json byte for byte
# (apart from the wall time and command line), with failed groups dropped
# whole: tests/sim_groups_test.sh. Without MPI only the one-process run.
add_test(NAME sim_groups_ranks
         COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/sim_groups_test.sh $<TARGET_FILE:fedrec-sim>
                 ${PROJECT_SOURCE_DIR}/data/online-retail/online_retail_2010-12.csv.gz
                 ${CMAKE_CURRENT_BINARY_DIR}/sim_groups ${FEDREC_SIM_MPIRUN})
set_tests_properties(sim_groups_ranks PROPERTIES TIMEOUT 300 ENVIRONMENT "OPENBLAS_NUM_THREADS=1")

# Every libFuzzer harness, built with the normal compiler and linked with a
# small driver (tests/fuzz/replay_main.c), replays its seed corpus as a ctest:
# the harnesses keep compiling against the current API, and the inputs that
# once found bugs stay fixed in the plain and sanitizer builds alike.
# (scripts/fuzz.sh does the actual fuzzing, with clang and libFuzzer.)
file(GLOB FEDREC_FUZZ_HARNESSES CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/tests/fuzz/fuzz_*.c)
foreach(src ${FEDREC_FUZZ_HARNESSES})
  get_filename_component(name ${src} NAME_WE)
  string(REGEX REPLACE "^fuzz_" "" corpus ${name})
  if(NOT EXISTS ${PROJECT_SOURCE_DIR}/tests/fuzz/corpus/${corpus})
    continue()
  endif()
  add_executable(replay_${name} ${src} ${PROJECT_SOURCE_DIR}/tests/fuzz/replay_main.c)
  # Harnesses call decoders for their side effects and ignore the verdicts
  # on purpose ((void) does not silence gcc's warn_unused_result).
  target_compile_options(replay_${name} PRIVATE ${FEDREC_WARNINGS} -Wno-missing-prototypes
                         -Wno-unused-result)
  target_link_libraries(replay_${name} PRIVATE fedrec_coordinator fedrec_static)
  add_test(NAME fuzz_replay_${corpus}
           COMMAND replay_${name} ${PROJECT_SOURCE_DIR}/tests/fuzz/corpus/${corpus})
  set_tests_properties(fuzz_replay_${corpus} PROPERTIES TIMEOUT 300)
endforeach()

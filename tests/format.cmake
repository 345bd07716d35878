# Every C file in the repository follows the root .clang-format.
find_program(CLANG_FORMAT clang-format)
if(CLANG_FORMAT)
  add_test(NAME clang_format
           COMMAND sh -c "cd '${PROJECT_SOURCE_DIR}' && git ls-files '*.c' '*.h' | xargs -r '${CLANG_FORMAT}' --dry-run -Werror")
endif()

# Checks that forgetting co_await on any libsalam awaitable does not compile
# silently: run with -DCXX=compiler -DINCLUDE=include-dir -DSOURCE=file.
set(flags -std=c++20 -fsyntax-only -Wall -Wextra -Werror -I${INCLUDE})
execute_process(COMMAND ${CXX} ${flags} ${SOURCE} RESULT_VARIABLE status ERROR_VARIABLE errors)
if(NOT status EQUAL 0)
  message(FATAL_ERROR "the correct program does not compile:\n${errors}")
endif()
foreach(case RANGE 1 9)
  execute_process(COMMAND ${CXX} ${flags} -DFORGET=${case} ${SOURCE} RESULT_VARIABLE status
                  ERROR_VARIABLE errors)
  if(status EQUAL 0)
    message(FATAL_ERROR "case ${case}: a forgotten co_await compiled without a warning")
  endif()
  if(NOT errors MATCHES "nodiscard|ignoring return value|unused-result")
    message(FATAL_ERROR "case ${case}: failed, but not for the discarded awaitable:\n${errors}")
  endif()
endforeach()
message(STATUS "every forgotten co_await was diagnosed")

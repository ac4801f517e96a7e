# Turns one scdoc page into roff: cmake -DSCDOC=... -DINPUT=page.scd
# -DOUTPUT=page -P scdoc.cmake
#
# scdoc dates the page from SOURCE_DATE_EPOCH, or else from the clock. So
# that the page is the same on every build of the same sources, the date
# is SOURCE_DATE_EPOCH when the build has it (dpkg-buildpackage sets it
# from debian/changelog), else the last commit of the page's source when
# it is in git, else the source file's modification time.
if(DEFINED ENV{SOURCE_DATE_EPOCH})
  set(epoch "$ENV{SOURCE_DATE_EPOCH}")
else()
  set(epoch "")
  find_program(GIT git)
  if(GIT)
    get_filename_component(directory "${INPUT}" DIRECTORY)
    execute_process(COMMAND "${GIT}" log -1 --format=%ct -- "${INPUT}"
                    WORKING_DIRECTORY "${directory}"
                    OUTPUT_VARIABLE epoch OUTPUT_STRIP_TRAILING_WHITESPACE
                    ERROR_QUIET RESULT_VARIABLE git_failed)
    if(git_failed)
      set(epoch "")
    endif()
  endif()
  if(NOT epoch MATCHES "^[0-9]+$")
    file(TIMESTAMP "${INPUT}" epoch "%s" UTC)
  endif()
endif()

execute_process(COMMAND "${CMAKE_COMMAND}" -E env "SOURCE_DATE_EPOCH=${epoch}" "${SCDOC}"
                INPUT_FILE "${INPUT}" OUTPUT_FILE "${OUTPUT}.tmp" RESULT_VARIABLE failed)
if(failed)
  file(REMOVE "${OUTPUT}.tmp")
  message(FATAL_ERROR "scdoc failed on ${INPUT}: ${failed}")
endif()
file(RENAME "${OUTPUT}.tmp" "${OUTPUT}")

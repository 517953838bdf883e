# check_symbols.cmake -- the exported dynamic symbols of libfairlock.so are
# exactly the list in tests/exported-symbols.txt, and that list is exactly
# the functions include/fairlock.h declares with FAIRLOCK_EXPORT.
#
#   cmake -DNM=nm -DLIB=libfairlock.so -DLIST=tests/exported-symbols.txt
#         -DHEADER=include/fairlock.h -P cmake/check_symbols.cmake
#
# When a function is added to the API, add it to the list too.
foreach(var NM LIB LIST HEADER)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "check_symbols.cmake: -D${var}=... is required")
  endif()
endforeach()

# 1. What the library exports: nm -D --defined-only.
execute_process(COMMAND "${NM}" -D --defined-only "${LIB}"
  OUTPUT_VARIABLE nm_out RESULT_VARIABLE nm_rc ERROR_VARIABLE nm_err)
if(NOT nm_rc EQUAL 0)
  message(FATAL_ERROR "${NM} -D --defined-only ${LIB} failed: ${nm_err}")
endif()
string(REPLACE "\n" ";" nm_lines "${nm_out}")
set(exported "")
foreach(line IN LISTS nm_lines)
  if(line MATCHES "^[0-9a-fA-F]* *[A-Za-z] ([^ ]+)$")
    set(sym "${CMAKE_MATCH_1}")
    # Symbols some linkers define in every shared object.
    if(NOT sym MATCHES "^(_init|_fini|_edata|_end|__bss_start)$")
      list(APPEND exported "${sym}")
    endif()
  endif()
endforeach()

# 2. The checked-in list (one name a line; # starts a comment).
file(STRINGS "${LIST}" list_lines)
set(listed "")
foreach(line IN LISTS list_lines)
  string(REGEX REPLACE "#.*" "" line "${line}")
  string(STRIP "${line}" line)
  if(line)
    list(APPEND listed "${line}")
  endif()
endforeach()

# 3. The header: FAIRLOCK_EXPORT declarations, comments and preprocessor
# lines removed first.
file(READ "${HEADER}" text)
string(REGEX REPLACE "/\\*([^*]|\\*+[^*/])*\\*+/" "" text "${text}")
string(REGEX REPLACE "\\\\\n" " " text "${text}")
string(REGEX REPLACE "\n[ \t]*#[^\n]*" "\n" text "${text}")
string(REGEX MATCHALL "FAIRLOCK_EXPORT[^;]*;" decls "${text}")
set(declared "")
foreach(decl IN LISTS decls)
  # "(fairlock_x)(" too: a function a macro of the same name stands for.
  if(decl MATCHES "[^A-Za-z0-9_](fairlock_[A-Za-z0-9_]+)\\)?[ \t\n]*\\(")
    list(APPEND declared "${CMAKE_MATCH_1}")
  endif()
endforeach()

function(report_difference a a_name b b_name)
  set(only "${${a}}")
  if(${b})
    list(REMOVE_ITEM only ${${b}})
  endif()
  if(only)
    list(SORT only)
    string(REPLACE ";" "\n    " only "${only}")
    message(SEND_ERROR "${a_name} but not ${b_name}:\n    ${only}")
    set(failed 1 PARENT_SCOPE)
  endif()
endfunction()

set(failed 0)
report_difference(exported "exported by ${LIB}" listed "listed in ${LIST}")
report_difference(listed "listed in ${LIST}" exported "exported by ${LIB}")
report_difference(declared "declared FAIRLOCK_EXPORT in ${HEADER}" listed
                  "listed in ${LIST}")
report_difference(listed "listed in ${LIST}" declared
                  "declared FAIRLOCK_EXPORT in ${HEADER}")
list(LENGTH listed count)
if(failed)
  message(FATAL_ERROR "exported symbols differ (${count} listed)")
endif()
message(STATUS "${count} exported symbols match the list and the header")

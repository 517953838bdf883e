# embed_lua.cmake -- turn src/lua/*.lua into a C file of script constants.
#
# Run with cmake -P.  Inputs: OUT (the .c file), COMMON (prepended to every
# script, so shared functions are written once, but for a script whose
# second line begins "-- standalone:"), SEM_COMMON (prepended after COMMON
# to the semaphore and readers-writer scripts, named sem_*), SCRIPTS
# (;-separated .lua paths).  Each script's SHA1 is computed here, over exactly the text
# sent to Redis, so EVALSHA needs no SHA1 code in the library.
include(${CMAKE_CURRENT_LIST_DIR}/lua_script_text.cmake)
file(READ "${COMMON}" common)
file(READ "${SEM_COMMON}" sem_common)
set(out "/* Generated from src/lua by cmake/embed_lua.cmake. Do not edit. */\n")
string(APPEND out "#include \"internal.h\"\n")
foreach(path IN LISTS SCRIPTS)
  get_filename_component(name "${path}" NAME_WE)
  fairlock_lua_script_text("${path}" "${common}" text "${sem_common}")
  string(SHA1 sha "${text}")
  string(REPLACE "\\" "\\\\" text "${text}")
  string(REPLACE "\"" "\\\"" text "${text}")
  string(REPLACE "\n" "\\n\"\n    \"" text "${text}")
  string(APPEND out "\nconst fairlock__script fairlock__script_${name} = {\n"
                    "    \"${name}\", \"${sha}\",\n    \"${text}\"};\n")
endforeach()
file(WRITE "${OUT}.tmp" "${out}")
file(COPY_FILE "${OUT}.tmp" "${OUT}" ONLY_IF_DIFFERENT)
file(REMOVE "${OUT}.tmp")

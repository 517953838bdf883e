## check_model_mirrors.cmake -- the model still mirrors the scripts.
#
# Run with cmake -P.  Inputs: MODEL (model/redis.pml, or model/sem_redis.pml
# for the semaphore scripts), LUA_DIR (src/lua).
# Every "mirrors NAME SHA1" line of MODEL must name the SHA-1 that
# cmake/embed_lua.cmake gives LUA_DIR/NAME.lua today: the same text (with
# common.lua, and sem_common.lua for sem_*, in front unless the script
# stands alone), the same hash.
include(${CMAKE_CURRENT_LIST_DIR}/lua_script_text.cmake)
file(STRINGS "${MODEL}" lines REGEX "mirrors [a-z_]+ +[0-9a-f]+")
if(NOT lines)
  message(FATAL_ERROR "${MODEL} records no script SHA-1 (\"mirrors NAME SHA1\")")
endif()
file(READ "${LUA_DIR}/common.lua" common)
file(READ "${LUA_DIR}/sem_common.lua" sem_common)
set(stale "")
foreach(line IN LISTS lines)
  string(REGEX MATCH "mirrors ([a-z_]+) +([0-9a-f]+)" _ "${line}")
  set(name "${CMAKE_MATCH_1}")
  set(recorded "${CMAKE_MATCH_2}")
  if(NOT EXISTS "${LUA_DIR}/${name}.lua")
    message(FATAL_ERROR "${MODEL} mirrors ${name}.lua, which does not exist")
  endif()
  fairlock_lua_script_text("${LUA_DIR}/${name}.lua" "${common}" text
                           "${sem_common}")
  string(SHA1 sha "${text}")
  if(NOT sha STREQUAL recorded)
    string(APPEND stale "  ${name}.lua is now ${sha} (the model says ${recorded})\n")
  endif()
endforeach()
if(stale)
  message(FATAL_ERROR "scripts changed since the model was last checked "
    "against them:\n${stale}Update ${MODEL} to the new scripts, run "
    "ctest -L model, then record the new SHA-1s in its \"mirrors\" lines.")
endif()
list(LENGTH lines n)
message(STATUS "the model mirrors ${n} scripts, all unchanged")

## lua_script_text.cmake -- the text of a script as it is sent to Redis.
#
# Included by embed_lua.cmake, which embeds that text and its SHA-1, and by
# check_model_mirrors.cmake, which must hash exactly the same text.
# fairlock_lua_script_text(PATH COMMON_TEXT OUT [SEM_COMMON_TEXT]): OUT is
# COMMON_TEXT followed by the script at PATH; for the semaphore and
# readers-writer scripts (named sem_*), SEM_COMMON_TEXT comes between the
# two; a script whose second line begins "-- standalone:" is alone.
function(fairlock_lua_script_text path common out)
  file(READ "${path}" body)
  get_filename_component(name "${path}" NAME_WE)
  if(body MATCHES "^[^\n]*\n-- standalone:")
    set(${out} "${body}" PARENT_SCOPE)
  elseif(name MATCHES "^sem_")
    set(${out} "${common}${ARGV3}${body}" PARENT_SCOPE)
  else()
    set(${out} "${common}${body}" PARENT_SCOPE)
  endif()
endfunction()

## lua_script_text.cmake -- the text of a script as it is sent to Redis.
#
# Included by embed_lua.cmake, which embeds that text and its SHA-1, and by
# check_model_mirrors.cmake, which must hash exactly the same text.
# fairlock_lua_script_text(PATH COMMON_TEXT OUT): OUT is COMMON_TEXT
# followed by the script at PATH, or the script alone when its second line
# begins "-- standalone:".
function(fairlock_lua_script_text path common out)
  file(READ "${path}" body)
  if(body MATCHES "^[^\n]*\n-- standalone:")
    set(${out} "${body}" PARENT_SCOPE)
  else()
    set(${out} "${common}${body}" PARENT_SCOPE)
  endif()
endfunction()

add_library(textscale_warnings INTERFACE)
target_compile_options(textscale_warnings INTERFACE
  $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wno-sign-conversion>
  $<$<AND:$<COMPILE_LANGUAGE:CXX>,$<BOOL:${TEXTSCALE_WERROR}>>:-Werror>)

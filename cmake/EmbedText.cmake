# Writes a text file into a C++ source as a std::string_view constant (a raw string literal), so
# that a resource such as serve's page is compiled into the binary. Run as a script:
#   cmake -DINPUT=page.html -DOUTPUT=page.cpp -DHEADER=textscale/serve/page.h
#         -DNAMESPACE=textscale::serve -DNAME=kPageHtml -P cmake/EmbedText.cmake
# The output is rewritten only when its content changes.
foreach(variable INPUT OUTPUT HEADER NAMESPACE NAME)
  if(NOT DEFINED ${variable})
    message(FATAL_ERROR "EmbedText.cmake: -D${variable}=... is required")
  endif()
endforeach()
file(READ "${INPUT}" content)
if(content MATCHES "\\)embed\"")
  message(FATAL_ERROR "${INPUT} contains ')embed\"', which would end the raw string literal")
endif()
file(WRITE "${OUTPUT}.tmp"
  "// Generated from ${INPUT} by cmake/EmbedText.cmake: edit that file, not this one.\n"
  "#include \"${HEADER}\"\n\n"
  "namespace ${NAMESPACE} {\n\n"
  "const std::string_view ${NAME} = R\"embed(${content})embed\";\n\n"
  "}  // namespace ${NAMESPACE}\n")
file(COPY_FILE "${OUTPUT}.tmp" "${OUTPUT}" ONLY_IF_DIFFERENT)
file(REMOVE "${OUTPUT}.tmp")

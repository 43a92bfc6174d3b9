# Writes build/generated/textscale/build_config.h with the git revision, refreshed on every build.
set(TEXTSCALE_GENERATED_INCLUDE_DIR ${CMAKE_BINARY_DIR}/generated)
add_custom_target(textscale_git_revision
  COMMAND ${CMAKE_COMMAND}
          -DSOURCE_DIR=${CMAKE_SOURCE_DIR}
          -DOUTPUT=${TEXTSCALE_GENERATED_INCLUDE_DIR}/textscale/build_config.h
          -DVERSION=${PROJECT_VERSION}
          -DBUILD_TYPE=${CMAKE_BUILD_TYPE}
          -DCUDA=${TEXTSCALE_WITH_CUDA}
          -P ${CMAKE_SOURCE_DIR}/cmake/WriteBuildConfig.cmake
  BYPRODUCTS ${TEXTSCALE_GENERATED_INCLUDE_DIR}/textscale/build_config.h
  COMMENT "Recording git revision")

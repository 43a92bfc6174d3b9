// The oneDNN check macro of the CPU backend's sources.
#pragma once

#include <oneapi/dnnl/dnnl.hpp>
#include <string>

#include "textscale/engine/cpu/dnnl_backend.h"

// Runs a oneDNN C++ API statement, turning dnnl::error into DnnlError with the call and location.
#define TS_DNNL(statement)                                                                                         \
  do {                                                                                                             \
    try {                                                                                                          \
      statement;                                                                                                   \
    } catch (const dnnl::error& ts_dnnl_error_) {                                                                  \
      throw ::textscale::engine::DnnlError(std::string("oneDNN: ") + #statement + " failed at " + __FILE__ + ":" + \
                                           std::to_string(__LINE__) + ": " + ts_dnnl_error_.what() + " (status " + \
                                           std::to_string(ts_dnnl_error_.status) + ")");                           \
    }                                                                                                              \
  } while (0)

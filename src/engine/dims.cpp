#include "textscale/engine/dims.h"

namespace textscale::engine {

std::string Dims::str() const {
  return "(" + std::to_string(n) + ", " + std::to_string(t) + ", " + std::to_string(c) + ")";
}

}  // namespace textscale::engine

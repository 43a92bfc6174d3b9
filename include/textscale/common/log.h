// Leveled logging to stderr. Rank 0 speaks by default; messages are tagged "[rank r/N]" when a
// world larger than one process is set (the MPI trainer sets it).
#pragma once

#include <sstream>
#include <string>

namespace textscale::log {

enum class Level { debug = 0, info = 1, warn = 2, error = 3 };

void set_level(Level level);
[[nodiscard]] Level level();
// Sets the rank tag; with size > 1, every line carries "[rank r/N]".
void set_rank(int rank, int size);
void write(Level level, const std::string& message);

}  // namespace textscale::log

#define TS_LOG(level_, stream_expr)                                                   \
  do {                                                                                \
    if (::textscale::log::Level::level_ >= ::textscale::log::level()) {               \
      std::ostringstream ts_log_stream_;                                              \
      ts_log_stream_ << stream_expr;                                                  \
      ::textscale::log::write(::textscale::log::Level::level_, ts_log_stream_.str()); \
    }                                                                                 \
  } while (false)

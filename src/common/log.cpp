#include "textscale/common/log.h"

#include <atomic>
#include <cstdio>
#include <mutex>

namespace textscale::log {
namespace {
std::atomic<Level> g_level{Level::info};
std::atomic<int> g_rank{0};
std::atomic<int> g_size{1};
std::mutex g_mutex;

const char* level_name(Level level) {
  switch (level) {
    case Level::debug:
      return "debug";
    case Level::info:
      return "info";
    case Level::warn:
      return "warning";
    case Level::error:
      return "error";
  }
  return "?";
}
}  // namespace

void set_level(Level level) {
  g_level = level;
}
Level level() {
  return g_level;
}
void set_rank(int rank, int size) {
  g_rank = rank;
  g_size = size;
}

void write(Level level, const std::string& message) {
  const int size = g_size;
  // Rank 0 speaks at every level; other ranks only warn or fail.
  if (size > 1 && g_rank != 0 && level < Level::warn) return;
  std::lock_guard<std::mutex> lock(g_mutex);
  if (size > 1) std::fprintf(stderr, "[rank %d/%d] ", g_rank.load(), size);
  if (level == Level::info)
    std::fprintf(stderr, "%s\n", message.c_str());
  else
    std::fprintf(stderr, "%s: %s\n", level_name(level), message.c_str());
  std::fflush(stderr);
}

}  // namespace textscale::log

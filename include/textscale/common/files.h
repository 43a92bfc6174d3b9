// Atomic replacement of output files: write to temporary_path(), then commit_file().
#pragma once

#include <string>

namespace textscale {

// "<dir>/.<name>.tmp-<pid>": same folder (so rename is atomic), hidden, unique per process.
[[nodiscard]] std::string temporary_path(const std::string& path);

// fsyncs a file (or, with `directory`, a folder). Throws IoError naming the path.
void sync_file(const std::string& path, bool directory = false);

// fsyncs `temporary`, renames it to `path` (replacing it) and fsyncs the folder. Throws IoError.
void commit_file(const std::string& temporary, const std::string& path);

// Current UTC time as ISO 8601 ("2026-11-23T14:05:00Z").
[[nodiscard]] std::string utc_now_iso8601();
// Current UTC time for file names ("20261123-140500").
[[nodiscard]] std::string utc_now_compact();

}  // namespace textscale

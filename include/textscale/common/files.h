// Atomic replacement of output files: write to temporary_path(), then commit_file().
#pragma once

#include <string>
#include <vector>

namespace textscale {

// This host's name (gethostname; "localhost" when it fails).
[[nodiscard]] std::string host_name();

// "<host>-<pid>": ends the name of every temporary file this process writes, so that a later run
// can tell whether the writer is gone (remove_stale_temporaries).
[[nodiscard]] std::string process_tag();

// "<dir>/.<name>.tmp-<host>-<pid>": same folder (so rename is atomic), hidden, unique per process.
[[nodiscard]] std::string temporary_path(const std::string& path);

// Removes the temporary files of `path` that a killed process left: ".<name>.tmp-<tag>" and
// "<name>.<kind>-<tag>" (kind tmp, spool, stdin or tokens; tag a process_tag()) whose host is this
// host and whose process is no longer running. Files of other hosts and of running processes stay
// (a dead writer's PID taken by a new process keeps its files too). Logs a warning for each file
// removed and returns their paths.
std::vector<std::string> remove_stale_temporaries(const std::string& path);

// fsyncs a file (or, with `directory`, a folder). Throws IoError naming the path.
void sync_file(const std::string& path, bool directory = false);

// fsyncs `temporary`, renames it to `path` (replacing it) and fsyncs the folder. Throws IoError.
void commit_file(const std::string& temporary, const std::string& path);

// Writes `content` to `path` (created or truncated). Throws IoError naming `shown_as` (the file
// the user knows, when `path` is its temporary; default `path`) and the system's reason (a full
// disk, a file-size limit); a partly written file is removed.
void write_text_file(const std::string& path, const std::string& content, const std::string& shown_as = "");

// Current UTC time as ISO 8601 ("2026-11-23T14:05:00Z").
[[nodiscard]] std::string utc_now_iso8601();
// Current UTC time for file names ("20261123-140500").
[[nodiscard]] std::string utc_now_compact();

}  // namespace textscale

#include "textscale/train/run_directory.h"

#include <filesystem>
#include <system_error>

#include "textscale/common/error.h"
#include "textscale/common/files.h"

namespace textscale::train {

RunDirectory::RunDirectory(const std::string& requested, const std::string& resume, const std::string& model_name,
                           bool writer)
    : path_(requested), writer_(writer), resuming_(!resume.empty()) {
  if (path_.empty() && resuming_) path_ = std::filesystem::absolute(resume).parent_path().string();
  const bool default_path = path_.empty();
  if (default_path) path_ = "runs/" + model_name + "-" + utc_now_compact();
  if (!writer_) return;
  std::error_code error;
  if (default_path) {
    // Runs started in the same second get their own directories: -2, -3, ...
    const std::string base = path_;
    std::filesystem::create_directories(std::filesystem::path(base).parent_path(), error);
    for (int n = 2; !error; ++n) {
      if (std::filesystem::create_directory(path_, error)) break;  // a new directory: this run's
      if (!error) path_ = base + "-" + std::to_string(n);
    }
  } else {
    std::filesystem::create_directories(path_, error);
  }
  if (error) throw IoError("cannot create the run directory '" + path_ + "': " + error.message());
  // A new run does not overwrite a run that can still be resumed.
  if (!resuming_ && std::filesystem::exists(checkpoint(), error))
    throw InputError("run directory '" + path_ + "' holds a run (" + checkpoint() +
                     "): resume it with --resume, or choose another --run-dir");
  metrics_.open(path_ + "/metrics.jsonl", resuming_ ? std::ios::app : std::ios::trunc);
  if (!metrics_) throw IoError("cannot write " + path_ + "/metrics.jsonl");
}

void RunDirectory::write_config(const nlohmann::json& record) {
  if (!writer_) return;
  const std::string path = path_ + "/config.json";
  if (resuming_ && std::filesystem::exists(path)) return;
  const std::string temporary = temporary_path(path);
  {
    std::ofstream out(temporary);
    out << record.dump(2) << "\n";
    out.flush();
    if (!out) {
      std::error_code error;
      std::filesystem::remove(temporary, error);
      throw IoError("cannot write '" + path + "'");
    }
  }
  commit_file(temporary, path);
}

void RunDirectory::write_metrics(const nlohmann::json& record) {
  if (writer_) metrics_ << record.dump() << "\n" << std::flush;
}

}  // namespace textscale::train

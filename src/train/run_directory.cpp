#include "textscale/train/run_directory.h"

#include <cerrno>
#include <filesystem>
#include <system_error>
#include <vector>

#include "textscale/common/error.h"
#include "textscale/common/files.h"

namespace textscale::train {

namespace {
// What a run leaves in its directory, beside the lock.
const std::vector<std::string> kRunFiles{"config.json", "metrics.jsonl", "checkpoint.h5", "best.h5"};
}  // namespace

RunDirectory::RunDirectory(const std::string& requested, const std::string& resume, const std::string& model_name,
                           bool writer, bool overwrite)
    : path_(requested), writer_(writer), resuming_(!resume.empty()), overwrite_(overwrite) {
  if (path_.empty() && resuming_) path_ = std::filesystem::absolute(resume).parent_path().string();
  const bool default_path = path_.empty();
  if (default_path) path_ = "runs/" + model_name + "-" + utc_now_compact();
  if (!writer_) return;
  create(default_path);
  lock_ = std::make_unique<RunLock>(path_);
  for (const std::string& name : kRunFiles) (void)remove_stale_temporaries(path_ + "/" + name);
  if (!resuming_) check_previous_run();
}

void RunDirectory::create(bool default_path) {
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
}

void RunDirectory::check_previous_run() {
  std::error_code error;
  if (std::filesystem::exists(checkpoint(), error) && !overwrite_)
    throw InputError("run directory '" + path_ + "' holds a run (" + checkpoint() +
                     "): resume it with --resume, replace it with --overwrite, or choose another --run-dir");
  for (const std::string& name : kRunFiles)
    if (std::filesystem::exists(path_ + "/" + name, error) && !overwrite_)
      throw InputError("run directory '" + path_ + "' holds a previous run's " + name +
                       ": replace that run with --overwrite, or choose another --run-dir");
}

void RunDirectory::write_config(const nlohmann::json& record) {
  if (!writer_) return;
  const std::string path = path_ + "/config.json";
  if (!(resuming_ && std::filesystem::exists(path))) {
    const std::string temporary = temporary_path(path);
    write_text_file(temporary, record.dump(2) + "\n", path);
    // --overwrite: the previous run's checkpoints go first, so that no checkpoint is ever beside
    // another run's config.json; its metrics.jsonl is truncated below.
    if (!resuming_)
      for (const std::string& old : {checkpoint(), best()}) {
        std::error_code error;
        std::filesystem::remove(old, error);
        if (error) throw IoError("cannot remove '" + old + "': " + error.message());
      }
    commit_file(temporary, path);
  }
  metrics_.open(path_ + "/metrics.jsonl", resuming_ ? std::ios::app : std::ios::trunc);
  if (!metrics_) throw IoError(errno_message("cannot write " + path_ + "/metrics.jsonl", errno));
}

void RunDirectory::write_metrics(const nlohmann::json& record) {
  if (!writer_) return;
  errno = 0;
  metrics_ << record.dump() << "\n" << std::flush;
  if (!metrics_) throw IoError(errno_message("cannot write " + path_ + "/metrics.jsonl", errno ? errno : EIO));
}

}  // namespace textscale::train

// A training run's directory (trainer.h lists what it holds), written by rank 0 alone.
#pragma once

#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "textscale/train/run_lock.h"

namespace textscale::train {

class RunDirectory {
 public:
  // `requested` (--run-dir): empty means the resumed checkpoint's folder, or else
  // runs/<model>-<UTC time> (made unique with -2, -3, ... when runs start in the same second).
  // Only `writer` (rank 0) creates, locks and writes anything; the other ranks know the paths.
  // The writer holds the directory's RunLock for the object's life: a second run is refused
  // (InputError naming the first). It removes the temporary files a killed run left
  // (remove_stale_temporaries). A new run (`resuming` false) is refused in a directory that
  // holds a previous run's files (config.json, metrics.jsonl, checkpoint.h5, best.h5) unless
  // `overwrite`; those files are then removed when the new run commits its config.json, the
  // first file it writes. Nothing is written before write_config. Throws IoError when the
  // directory cannot be created.
  RunDirectory(const std::string& requested, const std::string& resume, const std::string& model_name, bool writer,
               bool overwrite = false);

  // config.json: written atomically, unless a resumed run's already exists (it records how the run
  // was started). Then opens metrics.jsonl (a resumed run appends to its file; a new one starts it).
  void write_config(const nlohmann::json& record);
  // One line of metrics.jsonl (after write_config).
  void write_metrics(const nlohmann::json& record);

  [[nodiscard]] const std::string& path() const { return path_; }
  [[nodiscard]] std::string checkpoint() const { return path_ + "/checkpoint.h5"; }
  [[nodiscard]] std::string best() const { return path_ + "/best.h5"; }

 private:
  void create(bool default_path);
  // The files of a previous run: refuses a new run unless `overwrite_`.
  void check_previous_run();

  std::string path_;
  bool writer_, resuming_, overwrite_;
  std::unique_ptr<RunLock> lock_;
  std::ofstream metrics_;
};

}  // namespace textscale::train

// A training run's directory (trainer.h lists what it holds), written by rank 0 alone.
#pragma once

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

namespace textscale::train {

class RunDirectory {
 public:
  // `requested` (--run-dir): empty means the resumed checkpoint's folder, or else
  // runs/<model>-<UTC time> (made unique with -2, -3, ... when runs start in the same second).
  // Only `writer` (rank 0) creates and writes anything; the other ranks know the paths. A new run
  // (`resuming` false) is refused in a directory that holds a checkpoint. Throws IoError when the
  // directory cannot be created.
  RunDirectory(const std::string& requested, const std::string& resume, const std::string& model_name, bool writer);

  // config.json: written atomically, unless a resumed run's already exists (it records how the run
  // was started).
  void write_config(const nlohmann::json& record);
  // One line of metrics.jsonl (a resumed run appends to its file; a new one starts it).
  void write_metrics(const nlohmann::json& record);

  [[nodiscard]] const std::string& path() const { return path_; }
  [[nodiscard]] std::string checkpoint() const { return path_ + "/checkpoint.h5"; }
  [[nodiscard]] std::string best() const { return path_ + "/best.h5"; }

 private:
  std::string path_;
  bool writer_, resuming_;
  std::ofstream metrics_;
};

}  // namespace textscale::train

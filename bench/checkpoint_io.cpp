// Saving and loading a checkpoint of a full-size model with its optimizer state, and the share of
// that time spent on the tensors' SHA-256 digests (computed on the same buffers, alone).
//
//   build/bench/checkpoint_io [--model crepe-large] [--repeats 3] [--folder /tmp]
#include <unistd.h>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>

#include "textscale/common/checksum.h"
#include "textscale/engine/model_registry.h"
#include "textscale/engine/reference_backend.h"
#include "textscale/train/checkpoint.h"

using namespace textscale;

namespace {
double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}
}  // namespace

int main(int argc, char** argv) {
  std::string name = "crepe-large", folder = std::filesystem::temp_directory_path().string();
  int repeats = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--model") == 0) name = argv[i + 1];
    if (std::strcmp(argv[i], "--repeats") == 0) repeats = std::atoi(argv[i + 1]);
    if (std::strcmp(argv[i], "--folder") == 0) folder = argv[i + 1];
  }
  engine::ReferenceBackend<float> backend;
  engine::ModelConfig config;
  config.name = name;
  config.classes = 4;
  config = engine::complete_hyperparameters(config);
  engine::Model<float> model(config, backend.memory());
  model.params().initialize(1);
  train::OptimizerConfig sgd;
  train::Optimizer<float> optimizer(sgd, model.params().trained_count(), backend.memory());
  train::CheckpointInfo info;
  info.model = config;
  info.encoding.alphabet = std::string(static_cast<std::size_t>(config.alphabet), 'a');
  info.encoding.char_length = config.length;
  info.encoding.char_order = "reversed";
  info.encoding.num_classes = config.classes;
  info.optimizer_kind = sgd.kind;
  const std::string path = folder + "/checkpoint-io-" + std::to_string(::getpid()) + ".h5";

  // The bytes a checkpoint digests: every tensor and every optimizer slot.
  std::size_t bytes = (model.params().values().size() + model.params().state().size()) * sizeof(float);
  for (int s = 0; s < optimizer.slot_count(); ++s) bytes += optimizer.slot(s).size() * sizeof(float);
  std::printf("%s: %.1f MB of tensors and optimizer state\n", name.c_str(), static_cast<double>(bytes) / 1e6);
  for (int r = 0; r < repeats; ++r) {
    auto start = std::chrono::steady_clock::now();
    train::save_checkpoint(path, model, &optimizer, info);
    const double save = seconds_since(start);
    start = std::chrono::steady_clock::now();
    train::load_checkpoint(path, model, &optimizer);
    const double load = seconds_since(start);
    start = std::chrono::steady_clock::now();
    std::string digests = sha256_hex(model.params().values().data(), model.params().values().size() * sizeof(float));
    digests += sha256_hex(model.params().state().data(), model.params().state().size() * sizeof(float));
    for (int s = 0; s < optimizer.slot_count(); ++s)
      digests += sha256_hex(optimizer.slot(s).data(), optimizer.slot(s).size() * sizeof(float));
    const double digest = seconds_since(start);
    std::printf(
        "save %.3f s, load %.3f s (with digests); SHA-256 of the same bytes %.3f s (%.0f MB/s): %.1f%% of a "
        "save, %.1f%% of a load\n",
        save, load, digest, static_cast<double>(bytes) / 1e6 / digest, 100 * digest / save, 100 * digest / load);
  }
  std::filesystem::remove(path);
}

// Everything that chooses how a backend computes: the device, the CPU backend, the precision of
// products, the CPU thread count and the algorithm switches. Each is a command-line option of
// `train`, `bench` and `evaluate`; the resolved options are handed to the backend factory
// (train/backend_factory.h), recorded in a run's config.json ("backend_options") and in its
// checkpoints (attribute "backend_options"), and a resume that would change an algorithm or its
// rounding is refused unless forced (algorithm_changes).
#pragma once

#include <string>
#include <vector>

#include "textscale/engine/dims.h"
#include "textscale/engine/precision.h"

namespace textscale::engine {

enum class Device { automatic, cpu, cuda };         // --device auto | cpu | cuda
enum class CpuBackend { onednn, reference };        // --backend
enum class AlgorithmSearch { heuristic, measure };  // --cudnn-search (cuda/cuda_backend.h)

// Parse the command-line spellings; throw InputError naming the option and the accepted values.
[[nodiscard]] Device parse_device(const std::string& text);
[[nodiscard]] CpuBackend parse_cpu_backend(const std::string& text);
[[nodiscard]] AlgorithmSearch parse_algorithm_search(const std::string& text);
// "on" | "off" (also accepted: true/false, yes/no, 1/0) for the switch named `option`.
[[nodiscard]] bool parse_switch(const std::string& option, const std::string& text);
[[nodiscard]] std::string to_string(Device device);
[[nodiscard]] std::string to_string(CpuBackend backend);
[[nodiscard]] std::string to_string(AlgorithmSearch search);

struct BackendOptions {
  Device device = Device::automatic;  // resolved to cpu or cuda once the backend is made
  CpuBackend cpu_backend = CpuBackend::onednn;
  Precision precision = Precision::tf32;  // a CPU computes tf32 in fp32
  int threads = 0;                        // OpenMP threads (0: the runtime's default)
  // CPU: stride-1 convolutions of kernel >= 3 through 1-D Winograd F(4, 3) (cpu/winograd.h) when
  // both channel counts reach winograd_min_channels (twice that for the weight gradient).
  bool winograd = true;
  Index winograd_min_channels = 64;
  // Crepe's one-hot convolution, ReLU and first max pooling as one operation (ModelConfig::fuse_input).
  bool onehot_fusion = true;
  // GPU: how cuDNN's convolution algorithms are chosen, and whether --precision bf16 covers the
  // convolutions (off: they run in TF32, the dense layers in bf16).
  AlgorithmSearch cudnn_search = AlgorithmSearch::heuristic;
  bool bf16_convolutions = true;

  bool operator==(const BackendOptions&) const = default;
};

// Throws InputError naming the option for a value out of range.
void validate(const BackendOptions& options);

// JSON with one member per field (snake_case names, enums by their command-line spelling).
// Reading fills absent members with the defaults above, so that a record written before a field
// existed reads as that field's default; throws InputError for a malformed record.
[[nodiscard]] std::string backend_options_json(const BackendOptions& options);
[[nodiscard]] BackendOptions backend_options_from_json(const std::string& json);

// A change of one option between two runs, named by its command-line option.
struct OptionChange {
  std::string option, before, now;
};
// The options that differ between `before` and `now` among those that choose an algorithm or
// its rounding: everything except the thread count, and except the switches of the backend
// `now.device` does not use (cudnn-search and bf16-conv on a CPU; backend and winograd on a GPU),
// and except tf32 against fp32 on a CPU (which computes tf32 in fp32).
[[nodiscard]] std::vector<OptionChange> algorithm_changes(const BackendOptions& before, const BackendOptions& now);

}  // namespace textscale::engine

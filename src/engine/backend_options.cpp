#include "textscale/engine/backend_options.h"

#include <nlohmann/json.hpp>

#include "textscale/common/error.h"

namespace textscale::engine {

Device parse_device(const std::string& text) {
  if (text == "auto") return Device::automatic;
  if (text == "cpu") return Device::cpu;
  if (text == "cuda") return Device::cuda;
  throw OptionError("--device must be auto, cpu or cuda, not '" + text + "'");
}

CpuBackend parse_cpu_backend(const std::string& text) {
  if (text == "onednn") return CpuBackend::onednn;
  if (text == "reference") return CpuBackend::reference;
  throw OptionError("--backend must be onednn or reference, not '" + text + "'");
}

AlgorithmSearch parse_algorithm_search(const std::string& text) {
  if (text == "heuristic") return AlgorithmSearch::heuristic;
  if (text == "measure") return AlgorithmSearch::measure;
  throw OptionError("--cudnn-search must be heuristic or measure, not '" + text + "'");
}

bool parse_switch(const std::string& option, const std::string& text) {
  if (text == "on" || text == "true" || text == "yes" || text == "1") return true;
  if (text == "off" || text == "false" || text == "no" || text == "0") return false;
  throw OptionError("--" + option + " must be on or off, not '" + text + "'");
}

std::string to_string(Device device) {
  switch (device) {
    case Device::automatic:
      return "auto";
    case Device::cpu:
      return "cpu";
    case Device::cuda:
      return "cuda";
  }
  return "?";
}

std::string to_string(CpuBackend backend) {
  return backend == CpuBackend::onednn ? "onednn" : "reference";
}

std::string to_string(AlgorithmSearch search) {
  return search == AlgorithmSearch::heuristic ? "heuristic" : "measure";
}

void validate(const BackendOptions& options) {
  if (options.threads < 0 || options.threads > 1024) throw OptionError("--threads must be in 0..1024 (0: automatic)");
  if (options.winograd_min_channels < 1 || options.winograd_min_channels > (Index{1} << 20))
    throw OptionError("--winograd-min-channels must be in 1..1048576, not " +
                      std::to_string(options.winograd_min_channels));
}

// The enums in JSON: their command-line spellings, parsed strictly.
void to_json(nlohmann::json& j, Device value) {
  j = to_string(value);
}
void from_json(const nlohmann::json& j, Device& value) {
  value = parse_device(j.get<std::string>());
}
void to_json(nlohmann::json& j, CpuBackend value) {
  j = to_string(value);
}
void from_json(const nlohmann::json& j, CpuBackend& value) {
  value = parse_cpu_backend(j.get<std::string>());
}
void to_json(nlohmann::json& j, AlgorithmSearch value) {
  j = to_string(value);
}
void from_json(const nlohmann::json& j, AlgorithmSearch& value) {
  value = parse_algorithm_search(j.get<std::string>());
}
void to_json(nlohmann::json& j, Precision value) {
  j = to_string(value);
}
void from_json(const nlohmann::json& j, Precision& value) {
  value = parse_precision(j.get<std::string>());
}

NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(BackendOptions, device, cpu_backend, precision, threads, winograd,
                                                winograd_min_channels, onehot_fusion, cudnn_search, bf16_convolutions)

std::string backend_options_json(const BackendOptions& options) {
  return nlohmann::json(options).dump();
}

BackendOptions backend_options_from_json(const std::string& json) {
  try {
    const auto j = nlohmann::json::parse(json);
    if (!j.is_object()) throw InputError("backend options: expected a JSON object, not " + j.dump());
    BackendOptions options = j.get<BackendOptions>();
    validate(options);
    return options;
  } catch (const nlohmann::json::exception& error) {
    throw InputError(std::string("backend options: ") + error.what());
  } catch (const OptionError& error) {  // a value recorded in a file, not typed on this command line
    throw InputError(std::string("backend options: ") + error.what());
  }
}

std::vector<OptionChange> algorithm_changes(const BackendOptions& before, const BackendOptions& now) {
  std::vector<OptionChange> changes;
  auto compare = [&](const char* option, const auto& a, const auto& b, auto&& show) {
    if (a != b) changes.push_back({option, show(a), show(b)});
  };
  auto name = [](const auto& value) { return to_string(value); };
  auto on_off = [](bool value) { return std::string(value ? "on" : "off"); };
  auto number = [](Index value) { return std::to_string(value); };
  // The switches of the other device's backend are left out: they change nothing here.
  const bool cpu = now.device != Device::cuda, gpu = now.device != Device::cpu;
  compare("device", before.device, now.device, name);
  // A CPU computes tf32 in fp32: between the two nothing changes there.
  auto products = [&](Precision p) { return now.device == Device::cpu && p == Precision::tf32 ? Precision::fp32 : p; };
  if (products(before.precision) != products(now.precision))
    changes.push_back({"precision", to_string(before.precision), to_string(now.precision)});
  compare("onehot-fusion", before.onehot_fusion, now.onehot_fusion, on_off);
  if (cpu) {
    compare("backend", before.cpu_backend, now.cpu_backend, name);
    compare("winograd", before.winograd, now.winograd, on_off);
    compare("winograd-min-channels", before.winograd_min_channels, now.winograd_min_channels, number);
  }
  if (gpu) {
    compare("cudnn-search", before.cudnn_search, now.cudnn_search, name);
    compare("bf16-conv", before.bf16_convolutions, now.bf16_convolutions, on_off);
  }
  return changes;
}

}  // namespace textscale::engine

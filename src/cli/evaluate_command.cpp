// `textscale evaluate`: a checkpoint on a preprocessed file -> metrics.
#include <boost/program_options.hpp>

#include <chrono>
#include <cstdio>
#include <iostream>

#include "textscale/cli/commands.h"
#include "textscale/cli/options.h"
#include "textscale/common/error.h"
#include "textscale/train/backend_factory.h"
#include "textscale/train/checkpoint.h"
#include "textscale/train/trainer.h"

namespace po = boost::program_options;

namespace textscale::cli {

int evaluate_command(const std::vector<std::string>& arguments) {
  std::string checkpoint, data, json_path;
  std::int64_t batch = 128, limit = 0;
  BackendArguments backend_arguments;
  po::options_description options(
      "textscale evaluate: accuracy, per-class precision/recall/F1 and confusion matrix of a checkpoint\n\n"
      "usage: textscale evaluate --checkpoint RUN/best.h5 --data TEST.h5");
  options.add_options()("help,h", "show this help")("checkpoint", po::value(&checkpoint), "checkpoint file")(
      "data", po::value(&data), "preprocessed file to evaluate on")(
      "batch-size", po::value(&batch)->default_value(128), "batch size")("limit", po::value(&limit)->default_value(0),
                                                                         "first N rows only (0: all)")(
      "json", po::value(&json_path), "also write the metrics as JSON to this file");
  backend_arguments.add(options, "CPU threads (0: all cores)");
  po::variables_map values;
  if (!parse_options(arguments, options, values)) return 0;
  if (checkpoint.empty() || data.empty()) throw UsageError{"--checkpoint and --data are required"};
  if (batch < 1) throw UsageError{"--batch-size must be at least 1"};
  const engine::BackendOptions backend_options = backend_arguments.options();
  engine::validate(backend_options);
  const train::CheckpointInfo info = train::read_checkpoint_info(checkpoint);
  const train::Dataset dataset = train::load_dataset(data, info.encoding.ids);
  if (dataset.rows == 0) throw InputError(data + ": no rows to evaluate");
  info.encoding.check_compatible(dataset.encoding, checkpoint, data);
  auto backend = train::make_backend(backend_options);
  engine::ModelConfig model_config = info.model;
  model_config.fuse_input = backend_options.onehot_fusion;
  engine::Model<float> model(model_config, backend->memory());
  train::load_checkpoint<float>(checkpoint, model, nullptr);
  const auto start = std::chrono::steady_clock::now();
  const train::Metrics metrics = train::evaluate(model, *backend, dataset, batch, limit);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("%s on %s\n%s\n%.1f samples/s\n", checkpoint.c_str(), data.c_str(),
              metrics.table(info.encoding.classes).c_str(), static_cast<double>(metrics.samples()) / seconds);
  if (!json_path.empty()) {
    FILE* out = std::fopen(json_path.c_str(), "w");
    if (!out) throw IoError(errno_message("cannot write '" + json_path + "'", errno));
    std::fprintf(out, "%s\n", metrics.json(info.encoding.classes).c_str());
    std::fclose(out);
  }
  return 0;
}

}  // namespace textscale::cli

// `textscale evaluate`: a checkpoint on a preprocessed file -> metrics.
#include <boost/program_options.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "textscale/cli/commands.h"
#include "textscale/cli/options.h"
#include "textscale/common/error.h"
#include "textscale/common/files.h"
#include "textscale/common/interrupt.h"
#include "textscale/predict/classifier.h"
#include "textscale/predict/prediction_writer.h"
#include "textscale/train/backend_factory.h"
#include "textscale/train/checkpoint.h"
#include "textscale/train/trainer.h"

namespace po = boost::program_options;

namespace textscale::cli {

namespace {

// Metrics and every row's prediction, written as `textscale predict` writes them (record: the row
// of the file, line 0), from one pass of the classifier over batches of `batch` rows.
train::Metrics evaluate_with_predictions(const std::string& checkpoint, const train::CheckpointInfo& info,
                                         const engine::BackendOptions& backend_options, const train::Dataset& dataset,
                                         std::int64_t batch, std::int64_t limit, const std::string& path,
                                         const std::string& format, std::int64_t top_k) {
  predict::Classifier classifier(checkpoint, info, {backend_options, batch});
  predict::PredictionWriter writer(format == "jsonl" ? predict::OutputFormat::jsonl : predict::OutputFormat::csv,
                                   classifier.class_names(), top_k, false, true);
  (void)remove_stale_temporaries(path);
  const std::string temporary = temporary_path(path);
  std::FILE* out = std::fopen(temporary.c_str(), "wb");
  if (!out) throw IoError(errno_message("cannot write '" + temporary + "'", errno));
  const auto classes = static_cast<std::size_t>(classifier.classes());
  train::Metrics metrics(classifier.classes());
  try {
    std::string text = writer.header();
    std::vector<float> probabilities(static_cast<std::size_t>(batch) * classes);
    std::vector<std::int32_t> predicted(static_cast<std::size_t>(batch)), scratch;
    const std::int64_t rows = limit > 0 ? std::min(limit, dataset.rows) : dataset.rows;
    for (std::int64_t begin = 0; begin < rows; begin += batch) {
      const std::int64_t n = std::min(batch, rows - begin);
      classifier.classify(dataset.batch(begin, n, scratch), probabilities.data(), predicted.data());
      for (std::int64_t i = 0; i < n; ++i) {
        const std::int32_t label = dataset.labels[static_cast<std::size_t>(begin + i)];
        if (label < 0 || label >= classifier.classes())
          throw InputError(dataset.path + ": label " + std::to_string(label) + " of row " + std::to_string(begin + i) +
                           " is outside [0, " + std::to_string(classifier.classes()) + ")");
        const float* p = probabilities.data() + static_cast<std::size_t>(i) * classes;
        metrics.add(label, predicted[static_cast<std::size_t>(i)], -std::log(static_cast<double>(p[label])));
        writer.append({begin + i, 0, {}, label, predicted[static_cast<std::size_t>(i)], p}, text);
      }
      if (std::fwrite(text.data(), 1, text.size(), out) != text.size())
        throw IoError(errno_message("cannot write '" + path + "'", errno));
      text.clear();
      throw_if_interrupted();
    }
    if (std::fclose(out) != 0) throw IoError(errno_message("cannot write '" + path + "'", errno));
    out = nullptr;
    commit_file(temporary, path);
  } catch (...) {
    if (out) std::fclose(out);
    std::remove(temporary.c_str());
    throw;
  }
  return metrics;
}

}  // namespace

int evaluate_command(const std::vector<std::string>& arguments) {
  std::string checkpoint, data, json_path, predictions, predictions_format = "auto";
  std::int64_t batch = 128, limit = 0, top_k = 0;
  BackendArguments backend_arguments;
  po::options_description options(
      "textscale evaluate: accuracy, per-class precision/recall/F1 and confusion matrix of a checkpoint\n\n"
      "usage: textscale evaluate --checkpoint RUN/best.h5 --data TEST.h5");
  options.add_options()("help,h", "show this help")("checkpoint", po::value(&checkpoint), "checkpoint file")(
      "data", po::value(&data), "preprocessed file to evaluate on")(
      "batch-size", po::value(&batch)->default_value(128), "batch size")("limit", po::value(&limit)->default_value(0),
                                                                         "first N rows only (0: all)")(
      "json", po::value(&json_path), "also write the metrics as JSON to this file")(
      "predictions", po::value(&predictions)->value_name("FILE"),
      "also write every row's prediction, as textscale predict writes them (record: the row)")(
      "predictions-format", po::value(&predictions_format)->default_value("auto"),
      "csv|jsonl; auto: jsonl for a .jsonl file, else csv")(
      "top-k", po::value(&top_k)->default_value(0), "predictions: the k most probable classes (0: every class)");
  backend_arguments.add(options, "CPU threads (0: all cores)");
  po::variables_map values;
  if (!parse_options(arguments, options, values)) return 0;
  if (checkpoint.empty() || data.empty()) throw UsageError{"--checkpoint and --data are required"};
  require_range("batch-size", batch, 1);
  require_range("limit", limit, 0, std::numeric_limits<std::int64_t>::max(), "0: every row");
  require_range("top-k", top_k, 0, std::numeric_limits<std::int64_t>::max(), "0: every class");
  const engine::BackendOptions backend_options = backend_arguments.options();
  const train::CheckpointInfo info = train::read_checkpoint_info(checkpoint);
  const train::Dataset dataset = train::load_dataset(data, info.encoding.ids);
  if (dataset.rows == 0) throw InputError(data + ": no rows to evaluate");
  info.encoding.check_compatible(dataset.encoding, checkpoint, data);
  const auto start = std::chrono::steady_clock::now();
  train::Metrics metrics(info.model.classes);
  if (!predictions.empty()) {
    if (predictions_format == "auto")
      predictions_format = std::filesystem::path(predictions).extension() == ".jsonl" ? "jsonl" : "csv";
    if (predictions_format != "csv" && predictions_format != "jsonl")
      throw UsageError{"--predictions-format must be csv, jsonl or auto"};
    metrics = evaluate_with_predictions(checkpoint, info, backend_options, dataset, batch, limit, predictions,
                                        predictions_format, top_k);
  } else {
    auto backend = train::make_backend(backend_options);
    engine::ModelConfig model_config = info.model;
    model_config.fuse_input = backend_options.onehot_fusion;
    engine::Model<float> model(model_config, backend->memory());
    train::load_checkpoint<float>(checkpoint, model, nullptr);
    metrics = train::evaluate(model, *backend, dataset, batch, limit);
  }
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

// `textscale bench`: training and inference throughput of a model on synthetic batches (no data
// files), and the machine's SGEMM rate (and bf16 GEMM rate, where the CPU has bf16 instructions)
// as the peak to compare with. Prints one JSON line.
#include <sys/resource.h>

#include <boost/program_options.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>
#include <vector>

#include "textscale/cli/commands.h"
#include "textscale/cli/options.h"
#include "textscale/common/error.h"
#include "textscale/engine/cpu/dnnl_backend.h"
#include "textscale/engine/model.h"
#include "textscale/engine/model_registry.h"
#include "textscale/train/backend_factory.h"
#include "textscale/train/optimizer.h"
#include "textscale/train/training_step.h"

namespace po = boost::program_options;

namespace textscale::cli {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// The median (the mean of the middle two of an even count).
double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  const std::size_t n = values.size();
  return n % 2 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

// One batch of random ids and labels, in the backend's memory (the benchmark measures the model,
// not the input copies): character codes in 0..A, or word ids in 2..V-1 (no padding, no unknown
// word) with every row at its full length.
struct SyntheticBatch {
  engine::Buffer<std::uint8_t> codes;
  engine::Buffer<std::int32_t> words, lengths, labels;
  engine::InputBatch batch;

  void fill(const engine::ModelConfig& c, bool word_ids, engine::Index n, engine::Index vocab,
            const engine::Memory& memory) {
    std::mt19937_64 rng(7);
    const auto cells = static_cast<std::size_t>(n * c.length);
    std::vector<std::uint8_t> host_codes(word_ids ? 0 : cells);
    std::vector<std::int32_t> host_words(word_ids ? cells : 0),
        host_lengths(static_cast<std::size_t>(n), static_cast<std::int32_t>(c.length));
    for (auto& code : host_codes) code = static_cast<std::uint8_t>(rng() % static_cast<std::uint64_t>(c.alphabet + 1));
    for (auto& w : host_words) w = static_cast<std::int32_t>(2 + rng() % static_cast<std::uint64_t>(vocab - 2));
    std::vector<std::int32_t> host_labels(static_cast<std::size_t>(n));
    for (auto& l : host_labels) l = static_cast<std::int32_t>(rng() % static_cast<std::uint64_t>(c.classes));
    codes.resize(host_codes.size(), memory);
    words.resize(host_words.size(), memory);
    lengths.resize(host_lengths.size(), memory);
    labels.resize(host_labels.size(), memory);
    memory.copy_to_device(codes.data(), host_codes.data(), host_codes.size());
    memory.copy_to_device(words.data(), host_words.data(), host_words.size() * sizeof(std::int32_t));
    memory.copy_to_device(lengths.data(), host_lengths.data(), host_lengths.size() * sizeof(std::int32_t));
    memory.copy_to_device(labels.data(), host_labels.data(), host_labels.size() * sizeof(std::int32_t));
    batch = word_ids ? engine::InputBatch::words(words.data(), n, c.length, lengths.data())
                     : engine::InputBatch::characters(codes.data(), n, c.length);
  }
};

// bench's counts, each within its range (OptionError naming the first that is not).
void check_counts(std::int64_t batch, std::int64_t warmup, std::int64_t steps, std::int64_t repeats, std::int64_t gemm,
                  std::int64_t classes, std::int64_t length, std::int64_t vocab) {
  constexpr std::int64_t kNoLimit = std::numeric_limits<std::int64_t>::max();
  require_range("batch-size", batch, 1);
  require_range("steps", steps, 1);
  require_range("repeats", repeats, 1);
  require_range("warmup", warmup, 0);
  require_range("gemm", gemm, 0, kNoLimit, "0: time the model");
  require_range("classes", classes, 2);
  require_range("length", length, 0, kNoLimit, "0: 1014 characters or 300 words");
  require_range("vocab", vocab, 2);
}

}  // namespace

int bench_command(const std::vector<std::string>& arguments) {
  ModelArguments model_arguments;
  engine::Index classes = 4, length = 0, vocab = 50000;
  std::int64_t batch = 128, warmup = 3, steps = 10, repeats = 1, gemm = 0;
  BackendArguments backend_arguments;
  bool profile = false;
  train::OptimizerConfig optimizer_config;  // SGD with momentum 0.9, as the PyTorch peer
  po::options_description options(
      "textscale bench: throughput on synthetic batches (random codes or word ids, and labels; word rows are\n"
      "all real words)\n\n"
      "usage: textscale bench --model crepe-small --batch-size 128 [--threads 2] [--steps 10] [--gemm 4096]");
  options.add_options()("help,h", "show this help");
  model_arguments.add(options);
  options.add_options()("classes", po::value(&classes)->default_value(4), "number of classes")(
      "length", po::value(&length)->default_value(0), "characters (words) per sample; 0: 1014 (300)")(
      "vocab", po::value(&vocab)->default_value(50000), "word models: vocabulary size")(
      "batch-size", po::value(&batch)->default_value(128), "batch size")("warmup", po::value(&warmup)->default_value(3),
                                                                         "steps before timing")(
      "steps", po::value(&steps)->default_value(10), "timed steps (training and inference each)")(
      "repeats", po::value(&repeats)->default_value(1),
      "time --steps this many times (each way) and report the median rate, and every one")(
      "gemm", po::value(&gemm)->default_value(0),
      "only measure the SGEMM (and bf16 GEMM) rate at this size (the peak)")(
      "profile", po::bool_switch(&profile), "also print the time of each layer (training steps) to stderr")(
      "embedding-update", po::value(&optimizer_config.embedding_update)->default_value("dense"),
      "word models' SGD (momentum 0.9) update of the embedding: dense | lazy (train --help)");
  backend_arguments.add(options, "CPU threads (0: all cores)");
  po::variables_map values;
  if (!parse_options(arguments, options, values)) return 0;
  if (model_arguments.name == "help") return models_command({});
  check_counts(batch, warmup, steps, repeats, gemm, classes, length, vocab);
  const engine::BackendOptions backend_options = backend_arguments.options();
  engine::DnnlBackend::set_threads(backend_options.threads);
  nlohmann::json out{{"threads", engine::DnnlBackend::threads()}};
  if (gemm > 0) {
    out["sgemm_size"] = gemm;
    out["sgemm_gflops"] = engine::DnnlBackend::gemm_gflops(gemm, engine::Precision::fp32);
    if (engine::DnnlBackend::bf16_supported())
      out["bf16_gemm_gflops"] = engine::DnnlBackend::gemm_gflops(gemm, engine::Precision::bf16);
    std::cout << out.dump() << std::endl;
    return 0;
  }
  engine::ModelConfig model_config = model_arguments.config(values, given_options(values));
  const bool words = engine::input_ids(model_config.name) == engine::IdType::words;
  model_config.classes = classes;
  model_config.length = length > 0 ? length : words ? 300 : 1014;
  if (words) model_config.vocab = vocab;
  auto backend = train::make_backend(backend_options);
  const engine::Memory& memory = backend->memory();
  model_config.fuse_input = backend_options.onehot_fusion;
  engine::Model<float> model(model_config, memory);
  model.params().initialize(1);
  model.reserve(batch);
  train::validate(optimizer_config, train::ScheduleConfig{});
  train::Optimizer<float> optimizer(optimizer_config, model.params().trained_count(), memory);
  SyntheticBatch synthetic;
  synthetic.fill(model_config, words, batch, vocab, memory);
  // The step's loss, accuracy and gradient norm stay in the backend's memory, as in `train`, which
  // reads them once a step; this loop reads them only after the last step.
  train::StepSetup setup;
  setup.seed = 1;
  setup.max_rows = batch;
  train::TrainingStep<float> trainer(model, *backend, &optimizer, setup);
  const train::StepInput input{synthetic.batch, synthetic.labels.data(), batch, 0, true};
  std::int64_t next_step = 0;
  engine::Profile layer_times;
  auto train_step = [&] {
    trainer.compute_gradients(input, next_step++);
    trainer.queue_update(1e-4);
  };
  auto infer_step = [&] { trainer.infer(input); };
  for (std::int64_t i = 0; i < warmup; ++i) train_step();
  memory.synchronize();
  if (profile) trainer.set_profile(&layer_times);
  // Samples/s of each of `repeats` windows of `steps` steps, waiting for the device at the end of
  // each; the median is reported (a GPU's rate moves between windows: clocks, other tenants).
  const double samples = static_cast<double>(batch * steps);
  auto windows = [&](auto step) {
    std::vector<double> rates;
    for (std::int64_t r = 0; r < repeats; ++r) {
      const auto start = Clock::now();
      for (std::int64_t i = 0; i < steps; ++i) step();
      memory.synchronize();  // a GPU queues the work; count it done
      rates.push_back(samples / seconds_since(start));
      // The profile's marks are done: add them up, so that a GPU reuses its events from the second
      // window on (the first creates them, inside its timing).
      if (profile) layer_times.resolve(memory);
    }
    return rates;
  };
  const std::vector<double> train_rates = windows(train_step);
  trainer.set_profile(nullptr);
  const train::StepResults last = trainer.results();
  if (last.skipped)
    throw Error("bench: the gradient of the last training step is not finite (norm " +
                std::to_string(std::sqrt(last.gradient_sum_squares)) +
                "), so the optimizer skipped the steps: not a training step's time");
  const double train_rate = median(train_rates);
  if (profile) {
    const auto timed = static_cast<double>(steps * repeats);
    double total = 0;  // of the outermost layers (a residual block's "5" holds its "5.body.0")
    for (const auto& e : layer_times.entries)
      if (e.position.find('.') == std::string::npos) total += e.forward_seconds + e.backward_seconds;
    std::fprintf(stderr, "per training step (ms): layer, forward, backward; %.1f ms in layers of %.1f ms a step\n",
                 1e3 * total / timed, 1e3 * static_cast<double>(batch) / train_rate);
    for (const auto& e : layer_times.entries)
      std::fprintf(stderr, "  %-12s %-32s %8.2f %8.2f\n", e.position.c_str(), e.layer.c_str(),
                   1e3 * e.forward_seconds / timed, 1e3 * e.backward_seconds / timed);
  }
  for (std::int64_t i = 0; i < std::max<std::int64_t>(warmup, 1); ++i) infer_step();
  memory.synchronize();
  const std::vector<double> infer_rates = windows(infer_step);
  const double infer_rate = median(infer_rates);
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  const double macs = model.forward_macs();
  out["model"] = model_config.name;
  out["batch"] = batch;
  out["length"] = model_config.length;
  if (words) {
    out["vocab"] = vocab;
    out["embedding_update"] = optimizer_config.embedding_update;
  }
  out["backend"] = backend->name();
  out["device"] = memory.is_host() ? "cpu" : "cuda";
  engine::BackendOptions resolved = train::resolve(backend_options);
  resolved.threads = engine::DnnlBackend::threads();
  out["backend_options"] = nlohmann::json::parse(engine::backend_options_json(resolved));
  out["parameters"] = model.params().trained_count();
  out["forward_gflop_per_sample_dense"] = 2 * macs / 1e9;
  out["train_samples_per_second"] = train_rate;
  out["infer_samples_per_second"] = infer_rate;
  if (repeats > 1) {
    out["train_samples_per_second_windows"] = train_rates;
    out["infer_samples_per_second_windows"] = infer_rates;
  }
  // Dense FLOPs: a training step is forward + backward data + backward weights = 3x forward.
  out["train_gflops_dense"] = 6 * macs * train_rate / 1e9;
  out["infer_gflops_dense"] = 2 * macs * infer_rate / 1e9;
  out["peak_rss_mib"] = static_cast<double>(usage.ru_maxrss) / 1024.0;
  // The last training step's mean loss and gradient norm.
  out["last_train_loss"] = last.loss_sum / static_cast<double>(batch);
  out["last_gradient_norm"] = std::sqrt(last.gradient_sum_squares);
  std::cout << out.dump() << std::endl;
  return 0;
}

}  // namespace textscale::cli

#include "textscale/train/trainer.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>

#include "textscale/common/build_info.h"
#include "textscale/common/error.h"
#include "textscale/common/files.h"
#include "textscale/common/interrupt.h"
#include "textscale/common/log.h"
#include "textscale/engine/cpu/dnnl_backend.h"
#include "textscale/engine/reference_backend.h"
#include "textscale/train/checkpoint.h"

namespace textscale::train {

using Clock = std::chrono::steady_clock;
using engine::Index;

std::unique_ptr<engine::Backend<float>> make_backend(const std::string& name) {
  if (name == "onednn") return std::make_unique<engine::DnnlBackend>();
  if (name == "reference") return std::make_unique<engine::ReferenceBackend<float>>();
  throw InputError("unknown backend '" + name + "' (known: onednn, reference)");
}

namespace {

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::int32_t argmax(const float* row, Index classes) {
  return static_cast<std::int32_t>(std::max_element(row, row + classes) - row);
}

// Permutation of [0, rows) for one epoch: Fisher-Yates over mt19937_64 with rejection sampling,
// the same on every platform and standard library.
std::vector<std::int64_t> epoch_order(std::int64_t rows, std::uint64_t seed, std::int64_t epoch) {
  std::vector<std::int64_t> order(static_cast<std::size_t>(rows));
  for (std::int64_t i = 0; i < rows; ++i) order[static_cast<std::size_t>(i)] = i;
  std::mt19937_64 rng(seed * 0x9e3779b97f4a7c15ULL + static_cast<std::uint64_t>(epoch) + 1);
  for (std::int64_t i = rows - 1; i > 0; --i) {
    const std::uint64_t bound = static_cast<std::uint64_t>(i) + 1;
    const std::uint64_t limit = UINT64_MAX - UINT64_MAX % bound;
    std::uint64_t draw;
    do draw = rng();
    while (draw >= limit);
    std::swap(order[static_cast<std::size_t>(i)], order[static_cast<std::size_t>(draw % bound)]);
  }
  return order;
}

std::string format_duration(double seconds) {
  const auto s = static_cast<long long>(seconds);
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%lld:%02lld:%02lld", s / 3600, s / 60 % 60, s % 60);
  return buffer;
}

// A one-line progress bar on a terminal; log lines clear it first.
class Progress {
 public:
  explicit Progress(bool enabled) : enabled_(enabled) {}
  void update(std::int64_t epoch, std::int64_t epochs, std::int64_t done, std::int64_t total, double rate) {
    if (!enabled_) return;
    const int width = 30;
    const int filled = total ? static_cast<int>(width * done / total) : width;
    const double eta = rate > 0 ? static_cast<double>(total - done) / rate : 0;
    std::printf("\r\033[Kepoch %lld/%lld [%.*s%*s] %3lld%% %6.1f samples/s ETA %s", static_cast<long long>(epoch),
                static_cast<long long>(epochs), filled, "##############################", width - filled, "",
                static_cast<long long>(total ? 100 * done / total : 100), rate, format_duration(eta).c_str());
    std::fflush(stdout);
    shown_ = true;
  }
  void line(const std::string& text) {
    if (shown_) std::printf("\r\033[K");
    shown_ = false;
    std::printf("%s\n", text.c_str());
    std::fflush(stdout);
  }

 private:
  bool enabled_;
  bool shown_ = false;
};

}  // namespace

Metrics evaluate(engine::Model<float>& model, engine::Backend<float>& backend, const CharDataset& data,
                 std::int64_t batch, std::int64_t limit) {
  const Index classes = model.config().classes;
  const std::int64_t rows = limit > 0 ? std::min(limit, data.rows) : data.rows;
  Metrics metrics(classes);
  model.reserve(std::max(model.max_batch(), std::min(batch, std::max<std::int64_t>(rows, 1))));
  engine::Context<float> ctx{&backend, nullptr, false, 0, 0};
  std::vector<float> row_loss;
  for (std::int64_t begin = 0; begin < rows; begin += batch) {
    const Index n = std::min(batch, rows - begin);
    const float* logits = model.forward(ctx, n, data.row(begin));
    for (Index i = 0; i < n; ++i) {
      const std::int32_t label = data.labels[static_cast<std::size_t>(begin + i)];
      const double loss = backend.softmax_cross_entropy(1, classes, logits + i * classes, &label, nullptr);
      metrics.add(label, argmax(logits + i * classes, classes), loss);
    }
    throw_if_interrupted();
  }
  return metrics;
}

int run_training(const TrainConfig& config, const std::string& config_json) {
  validate(config.optimizer, config.schedule);
  if (config.epochs < 1) throw InputError("--epochs must be at least 1");
  if (config.batch_size < 1) throw InputError("--batch-size must be at least 1");
  if (config.train_path.empty()) throw InputError("--train FILE is required");
  if (!config.resume.empty() && !config.init_from.empty())
    throw InputError("--resume and --init-from exclude each other");
  engine::DnnlBackend::set_threads(config.threads);

  // --- Data ---------------------------------------------------------------------------------
  const CharDataset train = load_char_dataset(config.train_path, 0, config.limit_train > 0 ? config.limit_train : -1);
  if (train.rows == 0) throw InputError(config.train_path + ": no training rows");
  CharDataset valid, test;
  if (!config.valid_path.empty()) {
    valid = load_char_dataset(config.valid_path);
    train.encoding.check_compatible(valid.encoding, config.train_path, config.valid_path);
  }
  if (!config.test_path.empty()) {
    test = load_char_dataset(config.test_path);
    train.encoding.check_compatible(test.encoding, config.train_path, config.test_path);
  }

  // --- Model, backend, optimizer -------------------------------------------------------------
  engine::ModelConfig model_config = config.model;
  model_config.classes = train.encoding.num_classes;
  model_config.length = train.encoding.char_length;
  model_config.alphabet = static_cast<Index>(train.encoding.alphabet.size());
  engine::Model<float> model(model_config);
  auto backend = make_backend(config.backend);
  Optimizer<float> optimizer(config.optimizer, model.params().trained_count());
  model.params().initialize(config.seed);
  TrainingPosition position;
  if (!config.resume.empty()) {
    const CheckpointInfo info = read_checkpoint_info(config.resume);
    info.encoding.check_compatible(train.encoding, config.resume, config.train_path);
    load_checkpoint(config.resume, model, &optimizer);
    position = info.position;
  } else if (!config.init_from.empty()) {
    const CheckpointInfo info = read_checkpoint_info(config.init_from);
    info.encoding.check_compatible(train.encoding, config.init_from, config.train_path);
    load_checkpoint<float>(config.init_from, model, nullptr);
  }
  const std::int64_t batch = config.batch_size;
  const std::int64_t eval_batch = config.eval_batch_size > 0 ? config.eval_batch_size : batch;
  model.reserve(std::min(batch, train.rows));
  const std::int64_t batches = (train.rows + batch - 1) / batch;
  if (position.batch > batches)
    throw InputError(config.resume + ": the checkpoint stopped at batch " + std::to_string(position.batch) +
                     " of an epoch, but this run has " + std::to_string(batches) +
                     " batches an epoch: the training file, --limit-train or --batch-size differ");

  // --- Run directory ---------------------------------------------------------------------------
  std::string run_dir = config.run_dir;
  if (run_dir.empty() && !config.resume.empty())
    run_dir = std::filesystem::absolute(config.resume).parent_path().string();
  if (run_dir.empty()) run_dir = "runs/" + model_config.name + "-" + utc_now_compact();
  std::error_code error;
  std::filesystem::create_directories(run_dir, error);
  if (error) throw IoError("cannot create the run directory '" + run_dir + "': " + error.message());
  const std::string checkpoint_path = run_dir + "/checkpoint.h5", best_path = run_dir + "/best.h5";
  // config.json records how the run was started; a resume (same options, checked by the command
  // line) leaves it as it is.
  const std::string config_path = run_dir + "/config.json";
  if (config.resume.empty() || !std::filesystem::exists(config_path)) {
    nlohmann::json record = nlohmann::json::parse(config_json);
    record["revision"] = version_line();
    record["libraries"] = build_info().libraries;
    record["backend"] = backend->name();
    record["threads"] = engine::DnnlBackend::threads();
    record["model_resolved"] = nlohmann::json::parse(model_config_json(model_config));
    record["parameters"] = model.params().trained_count();
    const std::string temporary = temporary_path(config_path);
    {
      std::ofstream out(temporary);
      out << record.dump(2) << "\n";
      out.flush();
      if (!out) {
        std::filesystem::remove(temporary, error);
        throw IoError("cannot write '" + config_path + "'");
      }
    }
    commit_file(temporary, config_path);
  }
  std::ofstream metrics_file(run_dir + "/metrics.jsonl", std::ios::app);
  if (!metrics_file) throw IoError("cannot write " + run_dir + "/metrics.jsonl");
  Progress progress(config.progress == "on" || (config.progress == "auto" && ::isatty(STDOUT_FILENO)));

  CheckpointInfo info;
  info.encoding = train.encoding;
  info.training_json = config_json;
  auto save = [&](const std::string& path, bool with_optimizer) {
    info.model = model_config;
    info.position = position;
    save_checkpoint(path, model, with_optimizer ? &optimizer : nullptr, info);
  };

  const double flops_per_sample = 6 * model.forward_macs();  // forward 2, backward 4 per multiply-add
  progress.line(model.summary());
  progress.line("training " + model_config.name + " on " + std::to_string(train.rows) + " rows (" +
                std::to_string(batches) + " batches of " + std::to_string(batch) + "), backend " + backend->name() +
                ", " + std::to_string(engine::DnnlBackend::threads()) + " threads, run directory " + run_dir +
                (config.resume.empty() ? ""
                                       : ", resumed at epoch " + std::to_string(position.epoch + 1) + " batch " +
                                             std::to_string(position.batch)));

  engine::Context<float> ctx{backend.get(), nullptr, true, config.seed, 0};
  std::vector<std::uint8_t> codes(static_cast<std::size_t>(batch * train.encoding.char_length));
  std::vector<std::int32_t> labels(static_cast<std::size_t>(batch));
  std::vector<float> diff(static_cast<std::size_t>(batch * model_config.classes));
  double total_train_seconds = 0;
  std::int64_t total_train_samples = 0;
  bool stopped = false;
  std::optional<Metrics> final_test;  // the last epoch's test evaluation, reused at the end
  double final_test_seconds = 0;

  for (; position.epoch < config.epochs && !stopped; ++position.epoch) {
    const auto order = epoch_order(train.rows, config.seed, position.epoch);
    auto interval_start = Clock::now();
    std::int64_t interval_samples = 0;
    double interval_loss = 0;
    std::int64_t interval_correct = 0;
    for (; position.batch < batches; ++position.batch) {
      if (config.max_steps > 0 && position.step >= config.max_steps) {
        save(checkpoint_path, true);
        progress.line("stopped at step " + std::to_string(position.step) + " (--max-steps): checkpoint " +
                      checkpoint_path);
        stopped = true;
        break;
      }
      const auto step_start = Clock::now();
      const std::int64_t begin = position.batch * batch;
      const Index n = std::min(batch, train.rows - begin);
      const std::int64_t length = train.encoding.char_length;
      for (Index i = 0; i < n; ++i) {
        const std::int64_t row = order[static_cast<std::size_t>(begin + i)];
        std::copy(train.row(row), train.row(row) + length, codes.data() + i * length);
        labels[static_cast<std::size_t>(i)] = train.labels[static_cast<std::size_t>(row)];
      }
      const double lr = learning_rate(config.optimizer, config.schedule, position.epoch, position.step);
      ctx.training = true;
      ctx.step = position.step;
      const float* logits = model.forward(ctx, n, codes.data());
      const double loss_sum =
          backend->softmax_cross_entropy(n, model_config.classes, logits, labels.data(), diff.data());
      std::int64_t correct = 0;
      for (Index i = 0; i < n; ++i)
        correct +=
            argmax(logits + i * model_config.classes, model_config.classes) == labels[static_cast<std::size_t>(i)];
      model.backward(ctx, n, codes.data(), diff.data());
      optimizer.step(*backend, model.params(), lr);
      ++position.step;
      const double step_seconds = seconds_since(step_start);
      position.epoch_loss_sum += loss_sum;
      position.epoch_correct += correct;
      position.epoch_samples += n;
      position.epoch_seconds += step_seconds;
      total_train_seconds += step_seconds;
      total_train_samples += n;
      interval_samples += n;
      interval_loss += loss_sum;
      interval_correct += correct;
      if (!std::isfinite(loss_sum))
        throw Error("the training loss is not finite at step " + std::to_string(position.step));

      const bool last = position.batch + 1 == batches;
      if (config.log_every > 0 && (position.step % config.log_every == 0 || last)) {
        const double seconds = seconds_since(interval_start);
        const double rate = static_cast<double>(interval_samples) / seconds;
        char line[256];
        std::snprintf(line, sizeof line,
                      "epoch %lld/%lld step %lld [%lld/%lld] loss %.4f acc %.4f lr %.5g %.1f samples/s",
                      static_cast<long long>(position.epoch + 1), static_cast<long long>(config.epochs),
                      static_cast<long long>(position.step), static_cast<long long>(position.batch + 1),
                      static_cast<long long>(batches), interval_loss / static_cast<double>(interval_samples),
                      static_cast<double>(interval_correct) / static_cast<double>(interval_samples), lr, rate);
        progress.line(line);
        metrics_file << nlohmann::json{{"type", "interval"},
                                       {"epoch", position.epoch + 1},
                                       {"step", position.step},
                                       {"loss", interval_loss / static_cast<double>(interval_samples)},
                                       {"accuracy",
                                        static_cast<double>(interval_correct) / static_cast<double>(interval_samples)},
                                       {"lr", lr},
                                       {"samples_per_second", rate}}
                            .dump()
                     << "\n"
                     << std::flush;
        interval_start = Clock::now();
        interval_samples = 0;
        interval_loss = 0;
        interval_correct = 0;
      } else {
        progress.update(position.epoch + 1, config.epochs, position.epoch_samples, train.rows,
                        static_cast<double>(position.epoch_samples) / position.epoch_seconds);
      }
      if (const int signal = interrupt_signal()) {
        ++position.batch;
        save(checkpoint_path, true);
        progress.line("interrupted by signal " + std::to_string(signal) + ": checkpoint written to " + checkpoint_path +
                      " (resume with --resume " + checkpoint_path + ")");
        throw Interrupted(signal);
      }
      if (config.checkpoint_every > 0 && position.step % config.checkpoint_every == 0 && !last) {
        ++position.batch;
        save(checkpoint_path, true);
        --position.batch;
      }
    }
    if (stopped) break;

    // --- End of epoch: evaluation, model selection, checkpoint ------------------------------
    nlohmann::json record{
        {"type", "epoch"},
        {"epoch", position.epoch + 1},
        {"step", position.step},
        {"lr", learning_rate(config.optimizer, config.schedule, position.epoch, position.step - 1)},
        {"train_loss", position.epoch_loss_sum / static_cast<double>(position.epoch_samples)},
        {"train_accuracy", static_cast<double>(position.epoch_correct) / static_cast<double>(position.epoch_samples)},
        {"train_seconds", position.epoch_seconds},
        {"samples_per_second", static_cast<double>(position.epoch_samples) / position.epoch_seconds},
        {"gflops", flops_per_sample * static_cast<double>(position.epoch_samples) / position.epoch_seconds / 1e9}};
    char line[320];
    std::snprintf(line, sizeof line, "epoch %lld done: train loss %.4f acc %.4f, %.1f samples/s (%.1f GFLOP/s dense)",
                  static_cast<long long>(position.epoch + 1), record["train_loss"].get<double>(),
                  record["train_accuracy"].get<double>(), record["samples_per_second"].get<double>(),
                  record["gflops"].get<double>());
    std::string summary = line;
    const bool final_epoch = position.epoch + 1 == config.epochs;
    // An interrupt during evaluation keeps the finished epoch: the checkpoint then resumes at the
    // evaluation (batch == batches).
    auto evaluate_or_checkpoint = [&](const CharDataset& data) {
      try {
        return evaluate(model, *backend, data, eval_batch, config.limit_eval);
      } catch (const Interrupted& interrupted) {
        save(checkpoint_path, true);
        progress.line("interrupted by signal " + std::to_string(interrupted.signal()) +
                      " during evaluation: checkpoint written to " + checkpoint_path);
        throw;
      }
    };
    if (!valid.path.empty()) {
      const auto eval_start = Clock::now();
      Metrics m = evaluate_or_checkpoint(valid);
      record["valid"] = nlohmann::json::parse(m.json(train.encoding.classes));
      record["valid"]["seconds"] = seconds_since(eval_start);
      std::snprintf(line, sizeof line, "; validation loss %.4f acc %.4f", m.mean_loss(), m.accuracy());
      summary += line;
      if (m.accuracy() > position.best_valid_accuracy) {
        position.best_valid_accuracy = m.accuracy();
        position.best_epoch = position.epoch + 1;
        const auto saved_batch = position.batch;
        position.batch = batches;
        save(best_path, false);
        position.batch = saved_batch;
        summary += " (best so far, saved)";
      }
    }
    if (!test.path.empty() && (config.test_each_epoch || final_epoch)) {
      const auto eval_start = Clock::now();
      Metrics m = evaluate_or_checkpoint(test);
      record["test"] = nlohmann::json::parse(m.json(train.encoding.classes));
      record["test"]["seconds"] = seconds_since(eval_start);
      if (final_epoch) final_test = m, final_test_seconds = seconds_since(eval_start);
      record["test"]["samples_per_second"] = static_cast<double>(m.samples()) / seconds_since(eval_start);
      std::snprintf(line, sizeof line, "; test loss %.4f acc %.4f", m.mean_loss(), m.accuracy());
      summary += line;
    }
    metrics_file << record.dump() << "\n" << std::flush;
    progress.line(summary);
    // The checkpoint marks the next epoch's start.
    position.batch = 0;
    position.epoch_loss_sum = 0;
    position.epoch_correct = 0;
    position.epoch_samples = 0;
    position.epoch_seconds = 0;
    ++position.epoch;
    save(checkpoint_path, true);
    --position.epoch;
    throw_if_interrupted();  // the checkpoint above is the place to resume from
  }

  // --- Final evaluation ------------------------------------------------------------------------
  nlohmann::json final_record{
      {"type", "final"},
      {"steps", position.step},
      {"train_samples", total_train_samples},
      {"train_seconds", total_train_seconds},
      {"train_samples_per_second",
       total_train_seconds > 0 ? static_cast<double>(total_train_samples) / total_train_seconds : 0.0}};
  if (!test.path.empty()) {
    const auto eval_start = Clock::now();
    Metrics m = final_test ? *final_test : evaluate(model, *backend, test, eval_batch, config.limit_eval);
    const double eval_seconds = final_test ? final_test_seconds : seconds_since(eval_start);
    final_record["test"] = nlohmann::json::parse(m.json(train.encoding.classes));
    final_record["test"]["samples_per_second"] = static_cast<double>(m.samples()) / eval_seconds;
    progress.line("test set (" + config.test_path + "), final weights:\n" + m.table(train.encoding.classes));
    char line[256];
    std::snprintf(line, sizeof line,
                  "accuracy %.4f | training %.1f samples/s (%.1f GFLOP/s dense) | inference %.1f samples/s",
                  m.accuracy(), final_record["train_samples_per_second"].get<double>(),
                  flops_per_sample * final_record["train_samples_per_second"].get<double>() / 1e9,
                  static_cast<double>(m.samples()) / eval_seconds);
    progress.line(line);
  }
  if (position.best_epoch > 0) {
    final_record["best_valid_accuracy"] = position.best_valid_accuracy;
    final_record["best_epoch"] = position.best_epoch;
  }
  metrics_file << final_record.dump() << "\n" << std::flush;
  progress.line("run directory: " + run_dir);
  return 0;
}

}  // namespace textscale::train

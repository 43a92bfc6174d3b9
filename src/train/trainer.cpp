#include "textscale/train/trainer.h"

#include <sched.h>
#include <unistd.h>
#include <csignal>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>

#include "textscale/common/build_info.h"
#include "textscale/common/error.h"
#include "textscale/common/files.h"
#include "textscale/common/hash.h"
#include "textscale/common/interrupt.h"
#include "textscale/common/log.h"
#include "textscale/dist/communicator.h"
#include "textscale/dist/reducer.h"
#include "textscale/engine/cpu/dnnl_backend.h"
#include "textscale/train/backend_factory.h"
#include "textscale/train/checkpoint.h"
#include "textscale/train/sharding.h"
#ifdef TEXTSCALE_WITH_CUDA
#include "textscale/cuda/nccl_communicator.h"
#endif

namespace textscale::train {

using Clock = std::chrono::steady_clock;
using engine::Index;

namespace {

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::int32_t argmax(const float* row, Index classes) {
  return static_cast<std::int32_t>(std::max_element(row, row + classes) - row);
}

// Softmax cross-entropy of one row of logits, in double (the reference backend's formula).
double row_loss(const float* row, Index classes, std::int32_t label) {
  const double max = *std::max_element(row, row + classes);
  double sum = 0;
  for (Index k = 0; k < classes; ++k) sum += std::exp(static_cast<double>(row[k]) - max);
  return std::log(sum) + max - static_cast<double>(row[label]);
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
  const engine::Memory& memory = model.memory();
  engine::Buffer<std::uint8_t> device_codes;  // the batch's codes where the model's memory is not the host's
  std::vector<float> host_logits;
  for (std::int64_t begin = 0; begin < rows; begin += batch) {
    const Index n = std::min(batch, rows - begin);
    const std::uint8_t* codes = data.row(begin);
    const auto code_count = static_cast<std::size_t>(n * model.config().length);
    if (!memory.is_host()) {
      if (device_codes.size() < code_count) device_codes.resize(code_count, memory);
      memory.copy_to_device(device_codes.data(), codes, code_count);
      codes = device_codes.data();
    }
    const float* logits = model.forward(ctx, n, codes);
    if (!memory.is_host()) {
      host_logits.resize(static_cast<std::size_t>(n * classes));
      memory.copy_to_host(host_logits.data(), logits, host_logits.size() * sizeof(float));
      logits = host_logits.data();
    }
    for (Index i = 0; i < n; ++i) {
      const std::int32_t label = data.labels[static_cast<std::size_t>(begin + i)];
      if (label < 0 || label >= classes)
        throw InputError(data.path + ": label " + std::to_string(label) + " of row " + std::to_string(begin + i) +
                         " is outside [0, " + std::to_string(classes) + ")");
      metrics.add(label, argmax(logits + i * classes, classes), row_loss(logits + i * classes, classes, label));
    }
    throw_if_interrupted();
  }
  return metrics;
}

int default_threads(int local_ranks) {
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  int threads = std::max(1, cores / std::max(1, local_ranks));
  cpu_set_t allowed;
  if (sched_getaffinity(0, sizeof allowed, &allowed) == 0)
    threads = std::min(threads, std::max(1, CPU_COUNT(&allowed)));
  return threads;
}

namespace {

// A failure injected by the tests: "throw|kill|nan|term|slow:RANK:STEP" (term: a SIGTERM to this
// rank; slow: from that step on the rank takes 5 ms longer for each of its rows, for --balance).
struct Fault {
  std::string kind;
  int rank = -1;
  std::int64_t step = -1;
};

Fault parse_fault(const std::string& text) {
  if (text.empty()) return {};
  Fault f;
  const auto first = text.find(':'), second = text.find(':', first + 1);
  try {
    if (first == std::string::npos || second == std::string::npos) throw std::invalid_argument(text);
    f.kind = text.substr(0, first);
    f.rank = std::stoi(text.substr(first + 1, second - first - 1));
    f.step = std::stoll(text.substr(second + 1));
  } catch (const std::exception&) {
    throw InputError("--fault expects KIND:RANK:STEP, not '" + text + "'");
  }
  if (f.kind != "throw" && f.kind != "kill" && f.kind != "nan" && f.kind != "term" && f.kind != "slow")
    throw InputError("--fault kind must be throw, kill, nan, term or slow, not '" + f.kind + "'");
  return f;
}

// A file's rows [share) for this rank's part of a distributed evaluation.
CharDataset load_eval_shard(const std::string& path, std::int64_t limit, const dist::World& world) {
  const std::int64_t total = load_char_dataset(path, 0, 0).total_rows;
  if (total == 0) throw InputError(path + ": no rows to evaluate");
  const std::int64_t rows = limit > 0 ? std::min(limit, total) : total;
  const Share share = rank_share(rows, world.rank, world.size);
  CharDataset d = load_char_dataset(path, share.offset, share.offset + share.count);
  d.total_rows = rows;  // what the summed metrics cover
  return d;
}

// Refuses to start when the ranks were not given the same configuration and data.
void check_same_everywhere(dist::Communicator& comm, const std::string& config_json,
                           const std::vector<std::pair<std::string, std::uint64_t>>& files) {
  if (comm.size() == 1) return;
  auto compare = [&](const std::string& what, std::uint64_t mine) {
    const auto all = comm.allgather(mine);
    std::string differ;
    for (std::size_t r = 1; r < all.size(); ++r)
      if (all[r] != all[0]) differ += (differ.empty() ? "" : ", ") + std::to_string(r);
    if (!differ.empty())
      throw InputError("rank(s) " + differ + " were started with a different " + what + " than rank 0");
  };
  // The options, less those that may differ per rank: threads, and the paths of the data files
  // (a node may read its own copy; their contents are compared below).
  nlohmann::json options = nlohmann::json::parse(config_json);
  options.erase("command_line");
  if (options.contains("options"))
    for (const char* name : {"threads", "train", "valid", "test", "run-dir", "progress"})
      options["options"].erase(name);
  compare("configuration", fnv1a(options.dump()));
  for (const auto& [path, fingerprint] : files) compare("file for " + path + " (content differs)", fingerprint);
}

// A resume computes as the checkpoint's run did: a change of backend options that changes an
// algorithm or its rounding is refused, naming each, unless `force`; another thread count (as on
// another number of ranks) only changes the summation order of some reductions, and is reported.
void check_resumed_options(const std::string& path, engine::BackendOptions before, const engine::BackendOptions& now,
                           bool force, bool root) {
  if (before.device == engine::Device::automatic) before.device = now.device;  // not recorded
  std::string changes;
  for (const auto& change : engine::algorithm_changes(before, now))
    changes +=
        (changes.empty() ? "" : ", ") + ("--" + change.option) + " " + change.before + " (now " + change.now + ")";
  if (!changes.empty() && !force)
    throw InputError(
        path + ": was trained with " + changes +
        ", which changes how it computes: give the checkpoint's values, or --force-resume to continue with "
        "the new ones (not bitwise the run it would have been)");
  if (!root) return;
  if (!changes.empty()) TS_LOG(warn, path << ": --force-resume: continuing a run trained with " << changes);
  if (before.threads > 0 && before.threads != now.threads)
    TS_LOG(warn, path << ": was trained with " << before.threads << " threads per rank, resumed with " << now.threads
                      << ": equal up to rounding, not bitwise");
}

}  // namespace

int run_training(const TrainConfig& config, const std::string& config_json) {
  validate(config.optimizer, config.schedule);
  if (config.epochs < 1) throw InputError("--epochs must be at least 1");
  if (config.batch_size < 1) throw InputError("--batch-size must be at least 1");
  if (config.train_path.empty()) throw InputError("--train FILE is required");
  if (!config.resume.empty() && !config.init_from.empty())
    throw InputError("--resume and --init-from exclude each other");
  if (config.lr_scaling != "none" && config.lr_scaling != "linear")
    throw InputError("--lr-scaling must be none or linear, not '" + config.lr_scaling + "'");
  if (config.lr_base_batch < 1) throw InputError("--lr-base-batch must be at least 1");
  if (!(config.bucket_mb >= 0 && config.bucket_mb <= 4096)) throw InputError("--bucket-mb must be in [0, 4096]");
  if (!(config.comm_timeout >= 0 && config.comm_timeout <= 1e7))
    throw InputError("--comm-timeout must be in [0, 1e7] seconds (0: no limit)");
  engine::validate(config.backend);
  if (config.eval_batch_size < 0) throw InputError("--eval-batch-size must be >= 0 (0: the batch size)");
  if (config.progress != "auto" && config.progress != "on" && config.progress != "off")
    throw InputError("--progress must be auto, on or off, not '" + config.progress + "'");
  const ShuffleMode shuffle = parse_shuffle_mode(config.shuffle);
  if (config.shuffle_block < 1) throw InputError("--shuffle-block must be at least 1");
  const Fault fault = parse_fault(config.fault);

  dist::World& world = dist::init_world(false, {config.comm_timeout, config.mpi_progress_us});
  dist::Communicator& comm = *world.comm;
  const bool root = world.root();
  engine::BackendOptions backend_options = config.backend;
  if (backend_options.threads == 0) backend_options.threads = default_threads(world.local_size);
  engine::DnnlBackend::set_threads(backend_options.threads);  // the data readers' threads too

  // --- Data: this rank's shards --------------------------------------------------------------
  ShardReader train(config.train_path, config.limit_train > 0 ? config.limit_train : -1);
  if (train.rows() == 0) throw InputError(config.train_path + ": no training rows");
  const Encoding& encoding = train.encoding();
  std::vector<std::pair<std::string, std::uint64_t>> fingerprints{{"--train", train.fingerprint()}};
  CharDataset valid, test;
  if (!config.valid_path.empty()) {
    valid = load_eval_shard(config.valid_path, config.limit_eval, world);
    encoding.check_compatible(valid.encoding, config.train_path, config.valid_path);
    fingerprints.emplace_back("--valid", file_fingerprint(config.valid_path));
  }
  if (!config.test_path.empty()) {
    test = load_eval_shard(config.test_path, config.limit_eval, world);
    encoding.check_compatible(test.encoding, config.train_path, config.test_path);
    fingerprints.emplace_back("--test", file_fingerprint(config.test_path));
  }
  check_same_everywhere(comm, config_json, fingerprints);

  // --- Model, backend, optimizer -------------------------------------------------------------
  engine::ModelConfig model_config = config.model;
  model_config.classes = encoding.num_classes;
  model_config.length = encoding.char_length;
  model_config.alphabet = static_cast<Index>(encoding.alphabet.size());
  model_config.fuse_input = backend_options.onehot_fusion;
  backend_options = resolve(backend_options, world.local_size);
  auto backend = make_backend(backend_options, world.local_rank, world.local_size);
  const engine::Memory& memory = backend->memory();
  engine::Model<float> model(model_config, memory);
  Optimizer<float> optimizer(config.optimizer, model.params().trained_count(), memory);
  model.params().initialize(config.seed);
  TrainingPosition position;
  if (!config.resume.empty()) {
    const CheckpointInfo info = read_checkpoint_info(config.resume);
    info.encoding.check_compatible(encoding, config.resume, config.train_path);
    check_resumed_options(config.resume, info.backend_options, backend_options, config.force_resume, root);
    load_checkpoint(config.resume, model, &optimizer);
    position = info.position;
  } else if (!config.init_from.empty()) {
    const CheckpointInfo info = read_checkpoint_info(config.init_from);
    info.encoding.check_compatible(encoding, config.init_from, config.train_path);
    load_checkpoint<float>(config.init_from, model, nullptr);
  }
  // Every rank starts from rank 0's parameters, statistics and optimizer state (MPI reads and
  // writes them from the host).
  auto& params = model.params();
  memory.synchronize();
  comm.broadcast(params.values().data(), params.values().size() * sizeof(float), 0);
  if (params.state().size() > 0) comm.broadcast(params.state().data(), params.state().size() * sizeof(float), 0);
  for (int i = 0; i < optimizer.slot_count(); ++i)
    comm.broadcast(optimizer.slot(i).data(), optimizer.slot(i).size() * sizeof(float), 0);

  const std::int64_t batch = config.batch_size;  // global
  const std::int64_t local_batch = rank_share(batch, 0, world.size).count;
  const std::int64_t eval_batch = config.eval_batch_size > 0 ? config.eval_batch_size : local_batch;
  // --balance: the rows a rank may take, 1.5 times its even share (the memory reserved for it).
  const bool balance = config.balance && world.size > 1;
  const std::int64_t capacity =
      balance ? std::min(batch, std::max(local_batch, (3 * batch + 2 * world.size - 1) / (2 * world.size)))
              : local_batch;
  const std::int64_t train_rows = train.rows();
  model.reserve(std::max<std::int64_t>(1, std::min(capacity, train_rows)));
  const std::int64_t batches = (train_rows - 1) / batch + 1;  // train_rows >= 1; no overflow for a huge batch
  if (position.batch > batches)
    throw InputError(config.resume + ": the checkpoint stopped at batch " + std::to_string(position.batch) +
                     " of an epoch, but this run has " + std::to_string(batches) +
                     " batches an epoch: the training file, --limit-train or --batch-size differ");
  if (config.model.sync_bn && world.size > 1) {
    const std::int64_t last = train_rows % batch;
    if (batch < world.size || (last > 0 && last < world.size))
      throw InputError("--sync-bn needs at least one row of every batch on every rank: with " +
                       std::to_string(world.size) + " ranks, " + std::to_string(train_rows) + " rows and batch " +
                       std::to_string(batch) + " the last batch has " + std::to_string(last) +
                       " rows (change --batch-size or --limit-train)");
  }
  const double lr_multiplier =
      config.lr_scaling == "linear" ? static_cast<double>(batch) / static_cast<double>(config.lr_base_batch) : 1.0;

  // --- Run directory (rank 0) -----------------------------------------------------------------
  std::string run_dir = config.run_dir;
  if (run_dir.empty() && !config.resume.empty())
    run_dir = std::filesystem::absolute(config.resume).parent_path().string();
  const bool default_run_dir = run_dir.empty();
  if (default_run_dir) run_dir = "runs/" + model_config.name + "-" + utc_now_compact();
  std::ofstream metrics_file;
  if (root) {
    std::error_code error;
    if (default_run_dir) {
      // Runs started in the same second get their own directories: -2, -3, ...
      const std::string base = run_dir;
      std::filesystem::create_directories(std::filesystem::path(base).parent_path(), error);
      for (int n = 2; !error; ++n) {
        if (std::filesystem::create_directory(run_dir, error)) break;  // a new directory: this run's
        if (!error) run_dir = base + "-" + std::to_string(n);
      }
    } else {
      std::filesystem::create_directories(run_dir, error);
    }
    if (error) throw IoError("cannot create the run directory '" + run_dir + "': " + error.message());
    // A new run does not overwrite a run that can still be resumed.
    if (config.resume.empty() && std::filesystem::exists(run_dir + "/checkpoint.h5", error))
      throw InputError("run directory '" + run_dir + "' holds a run (" + run_dir +
                       "/checkpoint.h5): resume it with --resume, or choose another --run-dir");
    // config.json records how the run was started; a resume (same options, checked by the command
    // line) leaves it as it is.
    const std::string config_path = run_dir + "/config.json";
    if (config.resume.empty() || !std::filesystem::exists(config_path)) {
      nlohmann::json record = nlohmann::json::parse(config_json);
      record["revision"] = version_line();
      record["libraries"] = build_info().libraries;
      record["backend"] = backend->name();
      record["threads"] = engine::DnnlBackend::threads();
      record["device"] = memory.is_host() ? "cpu" : "cuda";
      record["backend_options"] = nlohmann::json::parse(engine::backend_options_json(backend_options));
      record["world_size"] = world.size;
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
    // A resumed run adds to its metrics; a new one (in a directory without a checkpoint) starts them.
    metrics_file.open(run_dir + "/metrics.jsonl", config.resume.empty() ? std::ios::trunc : std::ios::app);
    if (!metrics_file) throw IoError("cannot write " + run_dir + "/metrics.jsonl");
  }
  const std::string checkpoint_path = run_dir + "/checkpoint.h5", best_path = run_dir + "/best.h5";
  // Rank 0 speaks; the others only warn and fail (through the log, tagged with their rank). Under
  // a launcher a rank's stdout is often a pseudo-terminal whatever the job's output is (Open MPI
  // forwards it through one), so "auto" shows the bar only to a single process on a terminal.
  Progress progress(root &&
                    (config.progress == "on" || (config.progress == "auto" && !world.mpi && ::isatty(STDOUT_FILENO))));
  auto say = [&](const std::string& text) {
    if (root) progress.line(text);
  };
  auto write_metrics = [&](const nlohmann::json& record) {
    if (root) metrics_file << record.dump() << "\n" << std::flush;
  };

  CheckpointInfo info;
  info.encoding = encoding;
  info.training_json = config_json;
  info.backend_options = backend_options;
  auto save = [&](const std::string& path, bool with_optimizer) {
    if (!root) return;
    info.model = model_config;
    info.position = position;
    memory.synchronize();  // the checkpoint reads the tensors from the host
    save_checkpoint(path, model, with_optimizer ? &optimizer : nullptr, info);
  };

  // GPU ranks reduce gradients with NCCL on device memory; everything else goes over MPI.
  std::shared_ptr<dist::Communicator> gradient_comm = world.comm;
#ifdef TEXTSCALE_WITH_CUDA
  if (!memory.is_host() && world.size > 1)
    gradient_comm = cuda::make_nccl_communicator(comm, *backend, config.comm_timeout);
#endif
  const double flops_per_sample = 6 * model.forward_macs();  // forward 2, backward 4 per multiply-add
  say(model.summary());
  say("training " + model_config.name + " on " + std::to_string(train_rows) + " rows (" + std::to_string(batches) +
      " batches of " + std::to_string(batch) + "), backend " + backend->name() + ", " +
      (world.size > 1 ? std::to_string(world.size) + " ranks (" + gradient_comm->name() + ") x " : "") +
      std::to_string(engine::DnnlBackend::threads()) + " threads, run directory " + run_dir +
      (config.resume.empty()
           ? ""
           : ", resumed at epoch " + std::to_string(position.epoch + 1) + " batch " + std::to_string(position.batch)));

  // --- Gradient reduction ----------------------------------------------------------------------
  const auto bucket_elements = static_cast<Index>(config.bucket_mb * 1024 * 1024 / sizeof(float));
  dist::GradientReducer reducer(*gradient_comm, params.gradients().data(), params.trained_count(), bucket_elements);
  const bool reduce = world.size > 1;
  // The step's results stay where they are computed and come to the host in one copy at the
  // step's end, after the whole step is queued, so that a GPU is waited for once a step (not for
  // the loss before backward, each bucket and the gradient norm). In order: the loss, the rows
  // classified correctly and a bad label (Backend::softmax_cross_entropy_stats); the reduced
  // gradient's sum of squares, the same on every rank, from which every rank's optimizer decides
  // alike to skip a step that is not finite (Optimizer::queue_step); this rank's sum of squares
  // of each bucket before it is sent, which names the rank a NaN came from.
  constexpr std::size_t kLoss = 0, kCorrect = 1, kBadLabel = 2, kGradient = 3, kBuckets = 4;
  engine::Buffer<double> step_results(kBuckets + reducer.buckets(), memory);
  std::vector<double> step_host(step_results.size(), 0.0);
  memory.copy_to_device(step_results.data(), step_host.data(), step_host.size() * sizeof(double));
  if (reduce)
    reducer.on_start([&](std::size_t bucket, const float* data, Index count) {
      backend->sum_squares_to(count, data, step_results.data() + kBuckets + bucket);
    });
  std::function<void(Index)> gradients_ready = [&](Index offset) { reducer.ready_from(offset); };
  std::function<void(double*, Index)> allreduce_sum = [&](double* data, Index count) {
    comm.allreduce(data, static_cast<std::size_t>(count), dist::ReduceOp::sum);
  };

  engine::Context<float> ctx{backend.get(), nullptr, true, config.seed, 0};
  if (reduce) ctx.on_gradients_ready = &gradients_ready;
  if (reduce) ctx.allreduce_sum = &allreduce_sum;
  const std::int64_t length = encoding.char_length;
  // Two input buffers: the step computes on one while the prefetch thread fills the other. On a
  // GPU they are page-locked and the step's codes and labels are copied to the device
  // asynchronously (the copy of a buffer has finished before the prefetch thread refills it: the
  // step in between waits for the device at its end, when it reads its results).
  struct Input {
    engine::Buffer<std::uint8_t> codes;
    engine::Buffer<std::int32_t> labels;
    Share share;
  };
  Input inputs[2];
  // A rank never takes more rows than the file has, whatever --batch-size says.
  const auto max_rows = static_cast<std::size_t>(std::max<std::int64_t>(std::min(capacity, train_rows), 1));
  for (auto& in : inputs) {
    in.codes.resize(max_rows * static_cast<std::size_t>(length), memory.staging());
    in.labels.resize(max_rows, memory.staging());
  }
  const bool on_host = memory.is_host();
  engine::Buffer<std::uint8_t> device_codes(on_host ? 0 : max_rows * static_cast<std::size_t>(length), memory);
  engine::Buffer<std::int32_t> device_labels(on_host ? 0 : max_rows, memory);
  engine::Buffer<float> diff(max_rows * static_cast<std::size_t>(model_config.classes), memory);
  double total_train_seconds = 0, total_wait_seconds = 0, total_least_wait_seconds = 0;
  std::int64_t total_train_samples = 0, total_steps = 0, skipped_steps = 0;
  bool stopped = false;
  std::optional<Metrics> final_test;  // the last epoch's test evaluation, reused at the end
  double final_test_seconds = 0;

  // Evaluation over every rank's shard; the counts are summed so every rank holds the totals.
  auto evaluate_all = [&](const CharDataset& data) {
    Metrics m = evaluate(model, *backend, data, eval_batch, 0);
    auto packed = m.pack();
    comm.allreduce(packed.data(), packed.size(), dist::ReduceOp::sum);
    m.unpack(packed);
    return m;
  };

  // --balance: every rank's recent samples/s, the same on all ranks (exchanged each step); 0 until
  // measured. The shares of a batch follow them (weighted_shares), so that a slower rank (a busier
  // core, a slower GPU) takes fewer rows and the ranks finish their backward together.
  std::vector<double> rank_rates(static_cast<std::size_t>(world.size), 0.0);
  auto shares_of = [&](std::int64_t rows) {
    const bool measured = std::all_of(rank_rates.begin(), rank_rates.end(), [](double r) { return r > 0; });
    if (balance && measured) return weighted_shares(rows, rank_rates, capacity);
    std::vector<Share> even;
    for (int r = 0; r < world.size; ++r) even.push_back(rank_share(rows, r, world.size));
    return even;
  };

  for (; position.epoch < config.epochs && !stopped; ++position.epoch) {
    const auto order = epoch_order(train_rows, config.seed, position.epoch, shuffle, config.shuffle_block);
    // This rank's share of global batch b (decided on the main thread: the rates change there).
    auto share_of = [&](std::int64_t b) {
      return shares_of(std::min(batch, train_rows - b * batch))[static_cast<std::size_t>(world.rank)];
    };
    // This rank's rows of global batch b, read into `in` (on the prefetch thread).
    auto read_batch = [&](std::int64_t b, Share share, Input& in) {
      in.share = share;
      train.read(order.data() + b * batch + share.offset, share.count, in.codes.data(), in.labels.data());
    };
    std::future<void> next;
    int current = 0;
    if (position.batch < batches)
      next = std::async(std::launch::async, read_batch, position.batch, share_of(position.batch),
                        std::ref(inputs[current]));
    auto interval_start = Clock::now();
    std::int64_t interval_samples = 0, interval_steps = 0;
    double interval_loss = 0, interval_wait = 0, interval_least_wait = 0;
    std::int64_t interval_correct = 0;
    for (; position.batch < batches; ++position.batch) {
      if (config.max_steps > 0 && position.step >= config.max_steps) {
        if (next.valid()) next.wait();
        save(checkpoint_path, true);
        say("stopped at step " + std::to_string(position.step) + " (--max-steps): checkpoint " + checkpoint_path);
        stopped = true;
        break;
      }
      const auto step_start = Clock::now();
      next.get();  // rethrows a read error
      const auto busy_start = Clock::now();
      Input& in = inputs[current];
      current ^= 1;
      if (position.batch + 1 < batches)
        next = std::async(std::launch::async, read_batch, position.batch + 1, share_of(position.batch + 1),
                          std::ref(inputs[current]));
      const std::int64_t global_rows = std::min(batch, train_rows - position.batch * batch);
      const Index n = in.share.count;
      if (fault.rank == world.rank && fault.step == position.step) {
        if (fault.kind == "throw") throw Error("failure injected by --fault at step " + std::to_string(position.step));
        if (fault.kind == "kill") std::raise(SIGKILL);
        if (fault.kind == "term") std::raise(SIGTERM);  // handled: stops after this step
      }
      const double lr = lr_multiplier * learning_rate(config.optimizer, config.schedule, position.epoch, position.step);
      ctx.training = true;
      ctx.step = position.step;
      ctx.sample_offset = in.share.offset;
      if (reduce) reducer.begin();
      if (n > 0) {
        const std::uint8_t* codes = in.codes.data();
        const std::int32_t* labels = in.labels.data();
        if (!on_host) {
          memory.copy_to_device(device_codes.data(), codes, static_cast<std::size_t>(n * length));
          memory.copy_to_device(device_labels.data(), labels, static_cast<std::size_t>(n) * sizeof(std::int32_t));
          codes = device_codes.data();
          labels = device_labels.data();
        }
        const float* logits = model.forward(ctx, n, codes);
        backend->softmax_cross_entropy_stats(n, model_config.classes, logits, labels, diff.data(), step_results.data());
        if (fault.kind == "nan" && fault.rank == world.rank && fault.step == position.step) {
          const double nan = std::nan("");
          memory.copy_to_device(step_results.data() + kLoss, &nan, sizeof nan);
          const std::vector<float> nans(diff.size(), std::nanf(""));
          memory.copy_to_device(diff.data(), nans.data(), nans.size() * sizeof(float));
        }
        // The loss gradient is the mean over this rank's n rows: make it a share of the global
        // batch's mean, so that the sum over ranks is the mean over the global batch.
        if (n != global_rows)
          backend->scale(n * model_config.classes, diff.data(),
                         static_cast<double>(n) / static_cast<double>(global_rows));
        model.backward(ctx, n, codes, diff.data());
      } else {
        params.gradients().zero();
        const double none[kBadLabel + 1] = {0, 0, 0};
        memory.copy_to_device(step_results.data(), none, sizeof none);
      }
      // This rank's compute time for its rows (forward and backward; --fault slow adds 5 ms a row).
      if (fault.kind == "slow" && fault.rank == world.rank && position.step >= fault.step)
        std::this_thread::sleep_for(std::chrono::milliseconds(5 * n));
      if (balance && !on_host) memory.synchronize();
      const double busy = seconds_since(busy_start);
      if (reduce) reducer.finish();
      // Batch-norm running statistics: the mean over ranks, over the gradients' communicator (on
      // GPUs NCCL, in device memory: their pages no longer travel to the host and back each step;
      // MPI on CPUs, as before).
      if (world.size > 1 && params.state().size() > 0) {
        gradient_comm->allreduce(params.state().data(), params.state().size(), dist::ReduceOp::sum);
        backend->scale(static_cast<Index>(params.state().size()), params.state().data(), 1.0 / world.size);
      }
      // Queued whatever the step's results turn out to be: a gradient that is not finite changes
      // nothing (and a bad label or a loss that is not finite makes the gradient NaN on every rank).
      optimizer.queue_step(*backend, params, lr, step_results.data() + kGradient);
      memory.copy_to_host(step_host.data(), step_results.data(), step_host.size() * sizeof(double));  // the wait
      if (step_host[kBadLabel] > 0) {
        const auto row = static_cast<std::size_t>(step_host[kBadLabel]) - 1;
        throw Error("training step " + std::to_string(position.step + 1) + " (epoch " +
                    std::to_string(position.epoch + 1) + ", batch " + std::to_string(position.batch + 1) +
                    "): the label " + std::to_string(in.labels[row]) + " of training row " +
                    std::to_string(order[static_cast<std::size_t>(position.batch * batch + in.share.offset) + row]) +
                    " is outside [0, " + std::to_string(model_config.classes) + ")");
      }
      const double loss_sum = step_host[kLoss];
      const auto correct = static_cast<std::int64_t>(step_host[kCorrect]);
      const bool skipped = !std::isfinite(step_host[kGradient]);  // by the optimizer, on every rank
      if (skipped) optimizer.skipped();
      bool local_nonfinite = !reduce && skipped;
      for (std::size_t b = 0; reduce && b < reducer.buckets(); ++b)
        local_nonfinite = local_nonfinite || !std::isfinite(step_host[kBuckets + b]);
      // One small collective: the global loss and accuracy, and the decisions every rank must
      // take together (a non-finite value somewhere, an interrupt).
      const int signal_now = interrupt_signal();
      std::vector<double> sums(2 + (balance ? static_cast<std::size_t>(world.size) : 0), 0.0);
      sums[0] = loss_sum;
      sums[1] = static_cast<double>(correct);
      if (balance && n > 0 && busy > 0) sums[2 + static_cast<std::size_t>(world.rank)] = static_cast<double>(n) / busy;
      // The wait for the gradients, largest and (negated) smallest over the ranks: the rank that
      // waits least finished its backward last, so its wait is the all-reduce left unhidden; the
      // others' waits add the time they spent waiting for it.
      double flags[5] = {
          std::isfinite(loss_sum) ? -1.0 : static_cast<double>(world.size - world.rank),  // lowest rank wins
          local_nonfinite ? static_cast<double>(world.size - world.rank) : -1.0, static_cast<double>(signal_now),
          reducer.wait_seconds(), -reducer.wait_seconds()};
      comm.allreduce(sums.data(), sums.size(), dist::ReduceOp::sum);
      for (std::size_t r = 0; balance && r < rank_rates.size(); ++r)  // smoothed over steps
        if (sums[2 + r] > 0) rank_rates[r] = rank_rates[r] > 0 ? 0.5 * (rank_rates[r] + sums[2 + r]) : sums[2 + r];
      comm.allreduce(flags, 5, dist::ReduceOp::max);
      // A loss that is not finite made the gradient NaN, so bad_loss implies skipped; a gradient
      // can also overflow only in the sum over ranks (skipped, no rank to name).
      const bool bad_loss = flags[0] > 0, bad_gradient = flags[1] > 0 || skipped;
      if (bad_loss || bad_gradient) {
        const double blamed = bad_loss ? flags[0] : flags[1];
        const std::string what =
            std::string(bad_loss ? "loss" : "gradient") + " is not finite at step " +
            std::to_string(position.step + 1) + " (epoch " + std::to_string(position.epoch + 1) + ", batch " +
            std::to_string(position.batch + 1) + ") " +
            (blamed > 0 ? "on rank " + std::to_string(world.size - static_cast<int>(blamed)) : "after the all-reduce");
        if (!config.skip_nonfinite)
          throw Error("the training " + what + " (--skip-nonfinite skips such steps; lower --lr or set --clip-norm)");
        ++skipped_steps;
        if (root) TS_LOG(warn, "skipped the step: the " << what);
      }
      ++position.step;
      ++total_steps;
      const double step_seconds = seconds_since(step_start);
      const double global_loss = sums[0];
      const auto global_correct = static_cast<std::int64_t>(sums[1]);
      if (!(bad_loss || bad_gradient)) {
        position.epoch_loss_sum += global_loss;
        position.epoch_correct += global_correct;
      }
      position.epoch_samples += global_rows;
      position.epoch_seconds += step_seconds;
      total_train_seconds += step_seconds;
      total_wait_seconds += flags[3];
      total_least_wait_seconds -= flags[4];
      total_train_samples += global_rows;
      interval_samples += global_rows;
      interval_loss += bad_loss ? 0.0 : global_loss;
      interval_correct += global_correct;
      interval_wait += flags[3];
      interval_least_wait -= flags[4];
      ++interval_steps;

      const bool last = position.batch + 1 == batches;
      if (config.log_every > 0 && (position.step % config.log_every == 0 || last)) {
        const double seconds = seconds_since(interval_start);
        const double rate = static_cast<double>(interval_samples) / seconds;
        const double wait_ms = 1000 * interval_wait / static_cast<double>(interval_steps);
        const double least_wait_ms = 1000 * interval_least_wait / static_cast<double>(interval_steps);
        std::string wait;
        if (world.size > 1) {
          char text[64];
          std::snprintf(text, sizeof text, " | comm wait %.1f ms/step (least %.1f)", wait_ms, least_wait_ms);
          wait = text;
        }
        std::vector<std::int64_t> rows_per_rank;
        if (balance) {  // the split of a full batch at the current rates
          for (const Share& share : shares_of(batch)) rows_per_rank.push_back(share.count);
          wait += " | rows a rank";
          for (std::size_t r = 0; r < rows_per_rank.size() && r < 8; ++r)
            wait += (r == 0 ? " " : "/") + std::to_string(rows_per_rank[r]);
          if (rows_per_rank.size() > 8) wait += "/...";
        }
        char line[320];
        std::snprintf(
            line, sizeof line, "epoch %lld/%lld step %lld [%lld/%lld] loss %.4f acc %.4f lr %.5g %.1f samples/s%s",
            static_cast<long long>(position.epoch + 1), static_cast<long long>(config.epochs),
            static_cast<long long>(position.step), static_cast<long long>(position.batch + 1),
            static_cast<long long>(batches), interval_loss / static_cast<double>(interval_samples),
            static_cast<double>(interval_correct) / static_cast<double>(interval_samples), lr, rate, wait.c_str());
        say(line);
        nlohmann::json record{
            {"type", "interval"},
            {"epoch", position.epoch + 1},
            {"step", position.step},
            {"loss", interval_loss / static_cast<double>(interval_samples)},
            {"accuracy", static_cast<double>(interval_correct) / static_cast<double>(interval_samples)},
            {"lr", lr},
            {"samples_per_second", rate}};
        if (world.size > 1) {
          record["comm_wait_ms_per_step"] = wait_ms;
          record["comm_wait_least_ms_per_step"] = least_wait_ms;
        }
        if (balance) record["rows_per_rank"] = rows_per_rank;
        write_metrics(record);
        interval_start = Clock::now();
        interval_samples = interval_steps = interval_correct = 0;
        interval_loss = interval_wait = interval_least_wait = 0;
      } else {
        progress.update(position.epoch + 1, config.epochs, position.epoch_samples, train_rows,
                        static_cast<double>(position.epoch_samples) / position.epoch_seconds);
      }
      if (flags[2] > 0) {  // every rank stops after the same step
        if (next.valid()) next.wait();
        ++position.batch;
        save(checkpoint_path, true);
        say("interrupted by signal " + std::to_string(static_cast<int>(flags[2])) + ": checkpoint written to " +
            checkpoint_path + " (resume with --resume " + checkpoint_path + ")");
        throw Interrupted(static_cast<int>(flags[2]), true);
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
        {"lr", lr_multiplier * learning_rate(config.optimizer, config.schedule, position.epoch, position.step - 1)},
        {"train_loss", position.epoch_loss_sum / static_cast<double>(position.epoch_samples)},
        {"train_accuracy", static_cast<double>(position.epoch_correct) / static_cast<double>(position.epoch_samples)},
        {"train_seconds", position.epoch_seconds},
        {"samples_per_second", static_cast<double>(position.epoch_samples) / position.epoch_seconds},
        {"gflops", flops_per_sample * static_cast<double>(position.epoch_samples) / position.epoch_seconds / 1e9},
        {"ranks", world.size}};
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
        return evaluate_all(data);
      } catch (const Interrupted& interrupted) {
        save(checkpoint_path, true);
        say("interrupted by signal " + std::to_string(interrupted.signal()) +
            " during evaluation: checkpoint written to " + checkpoint_path);
        throw;
      }
    };
    if (!valid.path.empty()) {
      const auto eval_start = Clock::now();
      Metrics m = evaluate_or_checkpoint(valid);
      record["valid"] = nlohmann::json::parse(m.json(encoding.classes));
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
      record["test"] = nlohmann::json::parse(m.json(encoding.classes));
      record["test"]["seconds"] = seconds_since(eval_start);
      if (final_epoch) final_test = m, final_test_seconds = seconds_since(eval_start);
      record["test"]["samples_per_second"] = static_cast<double>(m.samples()) / seconds_since(eval_start);
      std::snprintf(line, sizeof line, "; test loss %.4f acc %.4f", m.mean_loss(), m.accuracy());
      summary += line;
    }
    write_metrics(record);
    say(summary);
    // The checkpoint marks the next epoch's start.
    position.batch = 0;
    position.epoch_loss_sum = 0;
    position.epoch_correct = 0;
    position.epoch_samples = 0;
    position.epoch_seconds = 0;
    ++position.epoch;
    save(checkpoint_path, true);
    --position.epoch;
    // A signal during the epoch's end: every rank stops here together, from the checkpoint above.
    double stop_signal = interrupt_signal();
    comm.allreduce(&stop_signal, 1, dist::ReduceOp::max);
    if (stop_signal > 0) {
      say("interrupted by signal " + std::to_string(static_cast<int>(stop_signal)) + " after epoch " +
          std::to_string(position.epoch + 1) + ": checkpoint written to " + checkpoint_path +
          " (resume with --resume " + checkpoint_path + ")");
      throw Interrupted(static_cast<int>(stop_signal), true);
    }
  }

  // --- Final evaluation ------------------------------------------------------------------------
  nlohmann::json final_record{
      {"type", "final"},
      {"steps", position.step},
      {"ranks", world.size},
      {"train_samples", total_train_samples},
      {"train_seconds", total_train_seconds},
      {"train_samples_per_second",
       total_train_seconds > 0 ? static_cast<double>(total_train_samples) / total_train_seconds : 0.0}};
  if (world.size > 1 && total_steps > 0) {
    final_record["comm_wait_ms_per_step"] = 1000 * total_wait_seconds / static_cast<double>(total_steps);
    final_record["comm_wait_least_ms_per_step"] = 1000 * total_least_wait_seconds / static_cast<double>(total_steps);
  }
  if (skipped_steps > 0) final_record["skipped_steps"] = skipped_steps;
  if (!test.path.empty()) {
    const auto eval_start = Clock::now();
    Metrics m = final_test ? *final_test : evaluate_all(test);
    const double eval_seconds = final_test ? final_test_seconds : seconds_since(eval_start);
    final_record["test"] = nlohmann::json::parse(m.json(encoding.classes));
    final_record["test"]["samples_per_second"] = static_cast<double>(m.samples()) / eval_seconds;
    say("test set (" + config.test_path + "), final weights:\n" + m.table(encoding.classes));
    char line[256];
    std::snprintf(line, sizeof line,
                  "accuracy %.4f | training %.1f samples/s (%.1f GFLOP/s dense) | inference %.1f samples/s",
                  m.accuracy(), final_record["train_samples_per_second"].get<double>(),
                  flops_per_sample * final_record["train_samples_per_second"].get<double>() / 1e9,
                  static_cast<double>(m.samples()) / eval_seconds);
    say(line);
  }
  if (position.best_epoch > 0) {
    final_record["best_valid_accuracy"] = position.best_valid_accuracy;
    final_record["best_epoch"] = position.best_epoch;
  }
  write_metrics(final_record);
  say("run directory: " + run_dir);
  return 0;
}

}  // namespace textscale::train

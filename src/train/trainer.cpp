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
#include "textscale/common/system_memory.h"
#include "textscale/data/dataset_file.h"
#include "textscale/dist/communicator.h"
#include "textscale/dist/reducer.h"
#include "textscale/engine/cpu/dnnl_backend.h"
#include "textscale/engine/model_registry.h"
#include "textscale/train/backend_factory.h"
#include "textscale/train/checkpoint.h"
#include "textscale/train/fault_hooks.h"
#include "textscale/train/pretrained_embeddings.h"
#include "textscale/train/run_directory.h"
#include "textscale/train/sharding.h"
#include "textscale/train/training_step.h"
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

Metrics evaluate(engine::Model<float>& model, engine::Backend<float>& backend, const Dataset& data, std::int64_t batch,
                 std::int64_t limit) {
  const Index classes = model.config().classes;
  const std::int64_t rows = limit > 0 ? std::min(limit, data.rows) : data.rows;
  Metrics metrics(classes);
  model.reserve(std::max(model.max_batch(), std::min(batch, std::max<std::int64_t>(rows, 1))));
  StepSetup setup;
  setup.max_rows = static_cast<Index>(std::min(batch, std::max<std::int64_t>(rows, 1)));
  TrainingStep<float> step(model, backend, nullptr, setup);
  const engine::Memory& memory = model.memory();
  std::vector<float> host_logits;
  std::vector<std::int32_t> scratch;
  for (std::int64_t begin = 0; begin < rows; begin += batch) {
    const Index n = std::min(batch, rows - begin);
    const float* logits = step.infer({data.batch(begin, n, scratch)});
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

// What the ranks agree on after each step, from one sum and one max all-reduce.
struct StepAgreement {
  double loss_sum = 0;             // over the global batch
  std::int64_t correct = 0;        // over the global batch
  std::vector<double> rank_rates;  // --balance: each rank's samples/s in this step (0: none)
  int bad_loss_rank = -1;          // the lowest rank whose loss is not finite, or -1
  int bad_gradient_rank = -1;      // the lowest rank whose own gradient is not finite, or -1
  int signal = 0;                  // a signal some rank received: every rank stops after this step
  double wait_most = 0;            // the longest wait for the gradients over the ranks
  double wait_least = 0;           // the shortest: the all-reduce left unhidden (that rank's
                                   // backward finished last; the others also waited for it)
};

StepAgreement agree_on_step(dist::Communicator& comm, const dist::World& world, const StepResults& result, Index rows,
                            bool balance) {
  const auto size = static_cast<std::size_t>(world.size);
  std::vector<double> sums(2 + (balance ? size : 0), 0.0);
  sums[0] = result.loss_sum;
  sums[1] = static_cast<double>(result.correct);
  if (balance && rows > 0 && result.compute_seconds > 0)
    sums[2 + static_cast<std::size_t>(world.rank)] = static_cast<double>(rows) / result.compute_seconds;
  // Ranks are sent as size - rank, so that the maximum names the lowest one (-1: none).
  const double mine = static_cast<double>(world.size - world.rank);
  enum { kBadLoss, kBadGradient, kSignal, kWaitMost, kWaitLeast, kFlags };
  double flags[kFlags];
  flags[kBadLoss] = std::isfinite(result.loss_sum) ? -1.0 : mine;
  flags[kBadGradient] = result.local_nonfinite ? mine : -1.0;
  flags[kSignal] = static_cast<double>(interrupt_signal());
  flags[kWaitMost] = result.reduce_wait_seconds;
  flags[kWaitLeast] = -result.reduce_wait_seconds;
  comm.allreduce(sums.data(), sums.size(), dist::ReduceOp::sum);
  comm.allreduce(flags, kFlags, dist::ReduceOp::max);
  auto rank_of = [&](double flag) { return flag > 0 ? world.size - static_cast<int>(flag) : -1; };
  StepAgreement a;
  a.loss_sum = sums[0];
  a.correct = static_cast<std::int64_t>(sums[1]);
  if (balance) a.rank_rates.assign(sums.begin() + 2, sums.end());
  a.bad_loss_rank = rank_of(flags[kBadLoss]);
  a.bad_gradient_rank = rank_of(flags[kBadGradient]);
  a.signal = static_cast<int>(flags[kSignal]);
  a.wait_most = flags[kWaitMost];
  a.wait_least = -flags[kWaitLeast];
  return a;
}

// A file's rows [share) for this rank's part of a distributed evaluation.
Dataset load_eval_shard(const std::string& path, engine::IdType ids, std::int64_t limit, const dist::World& world) {
  const std::int64_t total = file_rows(path, ids);
  if (total == 0) throw InputError(path + ": no rows to evaluate");
  const std::int64_t rows = limit > 0 ? std::min(limit, total) : total;
  const Share share = rank_share(rows, world.rank, world.size);
  Dataset d = load_dataset(path, ids, share.offset, share.offset + share.count);
  d.total_rows = rows;  // what the summed metrics cover
  return d;
}

// A data file as one rank sees it: the option naming it, its path there, its fingerprint.
struct FileFingerprint {
  std::string option, path;
  std::uint64_t fingerprint = 0;
};

// Refuses to start when the ranks were not given the same configuration and data.
void check_same_everywhere(dist::Communicator& comm, const std::string& config_json,
                           const std::vector<FileFingerprint>& files) {
  if (comm.size() == 1) return;
  auto compare = [&](const std::string& what, const std::string& detail, std::uint64_t mine) {
    const auto all = comm.allgather(mine);
    std::string differ;
    for (std::size_t r = 1; r < all.size(); ++r)
      if (all[r] != all[0]) differ += (differ.empty() ? "" : ", ") + std::to_string(r);
    if (!differ.empty())
      throw InputError("rank(s) " + differ + " were started with a different " + what + " than rank 0" + detail);
  };
  // The options, less those that may differ per rank: threads, and the paths of the data files
  // (a node may read its own copy; their contents are compared below).
  nlohmann::json options = nlohmann::json::parse(config_json);
  options.erase("command_line");
  if (options.contains("options"))
    for (const char* name : {"threads", "train", "valid", "test", "run-dir", "progress"})
      options["options"].erase(name);
  compare("configuration", "", fnv1a(options.dump()));
  // Each rank names its own path: the same relative path may hold different files on two nodes.
  for (const auto& file : files)
    compare("file for " + file.option, ": the content of '" + file.path + "' differs", file.fingerprint);
}

// A resumed run reads the data its checkpoint was trained on: refuses a file whose content digest
// differs from the one the checkpoint records, and warns when either digest is unknown (a file
// made before content digests, or an older checkpoint), as only the path can then be compared.
void check_same_data(const std::string& checkpoint, const std::string& recorded, const std::string& path,
                     const std::string& digest) {
  if (!recorded.empty() && !digest.empty()) {
    if (recorded != digest)
      throw InputError(path + " is not the data " + checkpoint + " was trained on: its content_sha256 is " + digest +
                       ", the checkpoint records " + recorded +
                       " (the file was re-made or replaced; resume with the original file, or start a new run "
                       "with --init-from)");
    return;
  }
  TS_LOG(warn,
         "cannot check that " << path << " is the data " << checkpoint << " was trained on: "
                              << (digest.empty() ? path + " has no content digest (made before textscale recorded one)"
                                                 : checkpoint + " records no content digest for it")
                              << "; resuming with the file at the same path");
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

namespace {

// Throws OptionError naming the first option out of range.
void check_options(const TrainConfig& config) {
  validate(config.optimizer, config.schedule);
  if (config.epochs < 1) throw OptionError("--epochs must be at least 1");
  if (config.batch_size < 1) throw OptionError("--batch-size must be at least 1");
  if (config.train_path.empty()) throw OptionError("--train FILE is required");
  if (!config.resume.empty() && !config.init_from.empty())
    throw OptionError("--resume and --init-from exclude each other");
  if (!config.embeddings.empty() && !config.init_from.empty())
    throw OptionError(
        "--embeddings and --init-from exclude each other (the checkpoint's table would replace the vectors)");
  if (config.lr_scaling != "none" && config.lr_scaling != "linear")
    throw OptionError("--lr-scaling must be none or linear, not '" + config.lr_scaling + "'");
  if (config.lr_base_batch < 1) throw OptionError("--lr-base-batch must be at least 1");
  if (!(config.bucket_mb == -1 || (config.bucket_mb >= 0 && config.bucket_mb <= 4096)))
    throw OptionError("--bucket-mb must be auto or in [0, 4096]");
  if (config.accumulate < 1) throw OptionError("--accumulate must be at least 1");
  if (config.allreduce_precision != "fp32" && config.allreduce_precision != "bf16")
    throw OptionError("--allreduce-precision must be fp32 or bf16, not '" + config.allreduce_precision + "'");
  if (config.accumulate > config.batch_size)
    throw OptionError("--accumulate " + std::to_string(config.accumulate) + " is more micro-batches than the " +
                      std::to_string(config.batch_size) + " rows of a batch");
  if (!(config.comm_timeout >= 0 && config.comm_timeout <= 1e7))
    throw OptionError("--comm-timeout must be in [0, 1e7] seconds (0: no limit)");
  engine::validate(config.backend);
  if (config.eval_batch_size < 0) throw OptionError("--eval-batch-size must be >= 0 (0: the batch size)");
  if (config.progress != "auto" && config.progress != "on" && config.progress != "off")
    throw OptionError("--progress must be auto, on or off, not '" + config.progress + "'");
  (void)parse_shuffle_mode(config.shuffle);
  if (config.shuffle_block < 1) throw OptionError("--shuffle-block must be at least 1");
  for (const auto& [name, value] : {std::pair{"checkpoint-every", config.checkpoint_every},
                                    {"log-every", config.log_every},
                                    {"max-steps", config.max_steps},
                                    {"limit-train", config.limit_train},
                                    {"limit-eval", config.limit_eval}})
    if (value < 0)
      throw OptionError("--" + std::string(name) + " must be at least 0 (0: off), not " + std::to_string(value));
  (void)FaultHooks(config.fault, 0);
}

// Refuses a model whose parameters, gradients and optimizer state alone need more memory than this
// process may allocate (the node's ranks share it), naming both sizes, before allocating any.
void check_model_fits(const engine::ModelConfig& model, const OptimizerConfig& optimizer, int local_ranks) {
  const Index parameters = engine::trained_parameter_count(model);
  const int slots = optimizer.kind == "adam" ? 2 : optimizer.momentum > 0 ? 1 : 0;
  const double need = static_cast<double>(parameters) * sizeof(float) * (2 + slots) * local_ranks;
  const AvailableMemory available = available_memory();
  if (available.bytes == 0 || need <= static_cast<double>(available.bytes)) return;
  throw InputError("model " + model.name + " has " + std::to_string(parameters) +
                   " parameters with these hyperparameters: their values, gradients and " + optimizer.kind +
                   " state need " + memory_size(need) +
                   (local_ranks > 1 ? " for the " + std::to_string(local_ranks) + " ranks on this node" : "") +
                   ", more than the " + memory_size(static_cast<double>(available.bytes)) + " " + available.limit +
                   " leaves (textscale models lists the published sizes)");
}

// The evaluation files: this rank's shards of them.
struct EvalData {
  Dataset valid, test;
};

// Opens the evaluation files and refuses to start unless every rank has the same configuration
// and data.
EvalData open_eval_data(const TrainConfig& config, const dist::World& world, const ShardReader& train,
                        const std::string& config_json) {
  const Encoding& encoding = train.encoding();
  std::vector<FileFingerprint> fingerprints{{"--train", config.train_path, train.fingerprint()}};
  EvalData d;
  if (!config.valid_path.empty()) {
    d.valid = load_eval_shard(config.valid_path, encoding.ids, config.limit_eval, world);
    encoding.check_compatible(d.valid.encoding, config.train_path, config.valid_path);
    fingerprints.push_back({"--valid", config.valid_path, d.valid.fingerprint});
  }
  if (!config.test_path.empty()) {
    d.test = load_eval_shard(config.test_path, encoding.ids, config.limit_eval, world);
    encoding.check_compatible(d.test.encoding, config.train_path, config.test_path);
    fingerprints.push_back({"--test", config.test_path, d.test.fingerprint});
  }
  check_same_everywhere(*world.comm, config_json, fingerprints);
  return d;
}

// --embeddings: the vectors of the training file's words into the model's embedding table, on
// rank 0 (restore() then gives every rank rank 0's tensors); rows of words the file lacks keep
// their random start. Returns the coverage line for the log.
std::string load_word_vectors(const TrainConfig& config, engine::Model<float>& model) {
  if (model.input_ids() != engine::IdType::words)
    throw OptionError("--embeddings: model " + model.config().name + " reads characters, not words");
  auto& params = model.params();
  const auto& tensors = params.tensors();
  const auto table =
      std::find_if(tensors.begin(), tensors.end(), [](const auto& t) { return t.name == "input.table"; });
  if (table == tensors.end() || table->shape.size() != 2)
    throw OptionError("--embeddings: model " + model.config().name + " has no word embedding table");
  const Index vocab = table->shape[0], dim = table->shape[1];
  const data::DatasetFile file(config.train_path);
  const PretrainedEmbeddings vectors =
      match_pretrained(config.embeddings, file.read_vocabulary(), file.read_vocab_counts(), dim);
  if (vectors.vocab_size != vocab)
    throw InputError("--embeddings: the table has " + std::to_string(vocab) + " rows, the vocabulary of " +
                     config.train_path + " " + std::to_string(vectors.vocab_size));
  float* values = params.value(engine::ParamRef{static_cast<Index>(table - tensors.begin())});
  const engine::Memory& memory = model.memory();
  std::vector<float> host(static_cast<std::size_t>(vocab * dim));
  memory.copy_to_host(host.data(), values, host.size() * sizeof(float));
  for (Index row = 0; row < vocab; ++row)
    if (vectors.matched[static_cast<std::size_t>(row)])
      std::copy_n(vectors.table.begin() + row * dim, dim, host.begin() + row * dim);
  memory.copy_to_device(values, host.data(), host.size() * sizeof(float));
  return vectors.describe();
}

// Loads --resume (parameters, statistics, optimizer state and position) or --init-from
// (parameters and statistics), then gives every rank rank 0's tensors (MPI reads and writes them
// from the host).
TrainingPosition restore(const TrainConfig& config, const engine::BackendOptions& backend_options,
                         const ShardReader& train, const EvalData& eval, engine::Model<float>& model,
                         Optimizer<float>& optimizer, dist::Communicator& comm) {
  const Encoding& encoding = train.encoding();
  TrainingPosition position;
  if (!config.resume.empty()) {
    const CheckpointInfo info = read_checkpoint_info(config.resume);
    info.encoding.check_compatible(encoding, config.resume, config.train_path);
    check_same_data(config.resume, info.train_content_sha256, config.train_path, train.content_sha256());
    if (!config.valid_path.empty())
      check_same_data(config.resume, info.valid_content_sha256, config.valid_path, eval.valid.content_sha256);
    check_resumed_options(config.resume, info.backend_options, backend_options, config.force_resume, comm.rank() == 0);
    load_checkpoint(config.resume, model, &optimizer);
    position = info.position;
  } else if (!config.init_from.empty()) {
    const CheckpointInfo info = read_checkpoint_info(config.init_from);
    info.encoding.check_compatible(encoding, config.init_from, config.train_path);
    load_checkpoint<float>(config.init_from, model, nullptr);
  }
  auto& params = model.params();
  model.memory().synchronize();
  comm.broadcast(params.values().data(), params.values().size() * sizeof(float), 0);
  if (params.state().size() > 0) comm.broadcast(params.state().data(), params.state().size() * sizeof(float), 0);
  for (int i = 0; i < optimizer.slot_count(); ++i)
    comm.broadcast(optimizer.slot(i).data(), optimizer.slot(i).size() * sizeof(float), 0);
  return position;
}

// How an epoch is cut into global batches and each batch into the ranks' shares.
struct BatchPlan {
  std::int64_t batch = 0;    // global
  std::int64_t batches = 0;  // an epoch's
  std::int64_t train_rows = 0;
  std::int64_t capacity = 0;  // the most rows a rank takes in a step (its buffers' size)
  std::int64_t eval_batch = 0;
  bool balance = false;      // --balance with several ranks
  double lr_multiplier = 1;  // --lr-scaling
};

BatchPlan plan_batches(const TrainConfig& config, const dist::World& world, std::int64_t train_rows,
                       const TrainingPosition& position) {
  BatchPlan p;
  p.batch = config.batch_size;
  p.train_rows = train_rows;
  const std::int64_t local_batch = rank_share(p.batch, 0, world.size).count;
  p.eval_batch = config.eval_batch_size > 0 ? config.eval_batch_size : local_batch;
  // --balance: the rows a rank may take, 1.5 times its even share (the memory reserved for it).
  p.balance = config.balance && world.size > 1;
  p.capacity = p.balance
                   ? std::min(p.batch, std::max(local_batch, (3 * p.batch + 2 * world.size - 1) / (2 * world.size)))
                   : local_batch;
  // A rank never takes more rows than the file has, whatever --batch-size says.
  p.capacity = std::max<std::int64_t>(1, std::min(p.capacity, train_rows));
  p.batches = (train_rows - 1) / p.batch + 1;  // train_rows >= 1; no overflow for a huge batch
  if (position.batch > p.batches)
    throw InputError(config.resume + ": the checkpoint stopped at batch " + std::to_string(position.batch) +
                     " of an epoch, but this run has " + std::to_string(p.batches) +
                     " batches an epoch: the training file, --limit-train or --batch-size differ");
  if (config.model.sync_bn && world.size > 1) {
    const std::int64_t last = train_rows % p.batch;
    if (p.batch < world.size || (last > 0 && last < world.size))
      throw OptionError("--sync-bn needs at least one row of every batch on every rank: with " +
                        std::to_string(world.size) + " ranks, " + std::to_string(train_rows) + " rows and batch " +
                        std::to_string(p.batch) + " the last batch has " + std::to_string(last) +
                        " rows (change --batch-size or --limit-train)");
  }
  p.lr_multiplier =
      config.lr_scaling == "linear" ? static_cast<double>(p.batch) / static_cast<double>(config.lr_base_batch) : 1.0;
  return p;
}

// Sums over a log interval, an epoch's evaluation aside (TrainingPosition keeps the epoch's).
struct Interval {
  Clock::time_point start = Clock::now();
  std::int64_t samples = 0, steps = 0, correct = 0;
  double loss = 0, wait = 0, least_wait = 0;
};

// Sums over the whole run, for the final record.
struct Totals {
  double train_seconds = 0, wait_seconds = 0, least_wait_seconds = 0;
  std::int64_t train_samples = 0, steps = 0, skipped_steps = 0;
};

// The epochs of a run and its final evaluation, around the training step: the data order and
// prefetching, the cross-rank decisions after each step, logging, evaluation, model selection and
// the checkpoint policy (every --checkpoint-every steps, each epoch, on a signal).
class EpochLoop {
 public:
  struct Parts {
    const TrainConfig& config;
    dist::World& world;
    ShardReader& train;
    const EvalData& eval;
    engine::Model<float>& model;
    engine::Backend<float>& backend;
    Optimizer<float>& optimizer;
    TrainingStep<float>& step;
    const BatchPlan& plan;
    RunDirectory& dir;
    CheckpointInfo& info;  // what checkpoints record besides the tensors and the position
  };
  EpochLoop(const Parts& parts, TrainingPosition& position, bool show_progress)
      : p_(parts),
        position_(position),
        progress_(show_progress && p_.world.root()),
        rank_rates_(static_cast<std::size_t>(p_.world.size), 0.0) {
    const auto rows = static_cast<std::size_t>(p_.plan.capacity);
    const Encoding& encoding = p_.train.encoding();
    const std::size_t row_bytes =
        static_cast<std::size_t>(encoding.width()) * (encoding.ids == engine::IdType::words ? sizeof(std::int32_t) : 1);
    for (auto& in : inputs_) {
      in.ids.resize(rows * row_bytes, p_.model.memory().staging());
      in.labels.resize(rows, p_.model.memory().staging());
      if (encoding.ids == engine::IdType::words) in.lengths.resize(rows, p_.model.memory().staging());
    }
  }

  void say(const std::string& text) {
    if (p_.world.root()) progress_.line(text);
  }

  // Every epoch from the position on, then the final evaluation.
  void run() {
    // Forward 2, backward 4 per multiply-add, at the model's full row length: the FLOP rate of the
    // character models. The word models compute each batch only up to its longest row, so a rate
    // at W words a row would be no measurement: they report samples/s only (`textscale bench`
    // measures their FLOP rate on full rows).
    const double flops_per_sample = p_.train.encoding().ids == engine::IdType::words ? 0 : 6 * p_.model.forward_macs();
    for (; position_.epoch < p_.config.epochs; ++position_.epoch) {
      if (!train_epoch()) break;
      end_epoch(flops_per_sample);
    }
    final_report(flops_per_sample);
  }

 private:
  // Two input buffers: the step computes on one while the prefetch thread fills the other. On a
  // GPU they are page-locked and the step's codes and labels are copied to the device
  // asynchronously (the copy of a buffer has finished before the prefetch thread refills it: the
  // step in between waits for the device at its end, when it reads its results).
  struct Input {
    engine::Buffer<std::uint8_t> ids;  // (rows, width) character codes or word ids
    engine::Buffer<std::int32_t> labels, lengths;
    Share share;
    std::int64_t width = 0;  // word rows: cut to the longest of the share (cut_to_longest)
    [[nodiscard]] engine::InputBatch batch(engine::IdType type) const {
      if (type == engine::IdType::characters) return engine::InputBatch::characters(ids.data(), share.count, width);
      return engine::InputBatch::words(reinterpret_cast<const std::int32_t*>(ids.data()), share.count, width,
                                       lengths.data());
    }
  };

  void save(const std::string& path, bool with_optimizer) {
    if (!p_.world.root()) return;
    p_.info.position = position_;
    p_.model.memory().synchronize();  // the checkpoint reads the tensors from the host
    save_checkpoint(path, p_.model, with_optimizer ? &p_.optimizer : nullptr, p_.info);
  }

  // The shares of a global batch of `rows` rows. --balance: every rank's recent samples/s, the
  // same on all ranks (exchanged each step; 0 until measured), so that a slower rank (a busier
  // core, a slower GPU) takes fewer rows and the ranks finish their backward together.
  std::vector<Share> shares_of(std::int64_t rows) const {
    const bool measured = std::all_of(rank_rates_.begin(), rank_rates_.end(), [](double r) { return r > 0; });
    if (p_.plan.balance && measured) return weighted_shares(rows, rank_rates_, p_.plan.capacity);
    std::vector<Share> even;
    for (int r = 0; r < p_.world.size; ++r) even.push_back(rank_share(rows, r, p_.world.size));
    return even;
  }

  // The epoch's steps from position_.batch on; false when --max-steps stopped the run.
  bool train_epoch() {
    const TrainConfig& config = p_.config;
    const std::int64_t batch = p_.plan.batch, batches = p_.plan.batches, train_rows = p_.plan.train_rows;
    auto order =
        epoch_order(train_rows, config.seed, position_.epoch, parse_shuffle_mode(config.shuffle), config.shuffle_block);
    if (config.bucket_by_length)
      order = bucket_by_length(std::move(order), p_.train.lengths(), batch, config.seed, position_.epoch);
    // This rank's share of global batch b (decided on the main thread: the rates change there).
    auto share_of = [&](std::int64_t b) {
      return shares_of(std::min(batch, train_rows - b * batch))[static_cast<std::size_t>(p_.world.rank)];
    };
    // This rank's rows of global batch b, read into `in` (on the prefetch thread).
    auto read_batch = [&](std::int64_t b, Share share, Input& in) {
      in.share = share;
      p_.train.read(order.data() + b * batch + share.offset, share.count, in.ids.data(), in.labels.data(),
                    in.lengths.data());
      in.width = p_.train.encoding().width();
      if (p_.train.encoding().ids == engine::IdType::words)
        in.width =
            cut_to_longest(reinterpret_cast<std::int32_t*>(in.ids.data()), share.count, in.width, in.lengths.data());
    };
    std::future<void> next;
    int current = 0;
    if (position_.batch < batches)
      next = std::async(std::launch::async, read_batch, position_.batch, share_of(position_.batch),
                        std::ref(inputs_[current]));
    interval_ = Interval{};
    for (; position_.batch < batches; ++position_.batch) {
      if (config.max_steps > 0 && position_.step >= config.max_steps) {
        if (next.valid()) next.wait();
        save(p_.dir.checkpoint(), true);
        say("stopped at step " + std::to_string(position_.step) + " (--max-steps): checkpoint " + p_.dir.checkpoint());
        return false;
      }
      const auto step_start = Clock::now();
      next.get();  // rethrows a read error
      Input& in = inputs_[current];
      current ^= 1;
      if (position_.batch + 1 < batches)
        next = std::async(std::launch::async, read_batch, position_.batch + 1, share_of(position_.batch + 1),
                          std::ref(inputs_[current]));
      const std::int64_t global_rows = std::min(batch, train_rows - position_.batch * batch);
      const double lr =
          p_.plan.lr_multiplier * learning_rate(config.optimizer, config.schedule, position_.epoch, position_.step);
      const StepResults result = p_.step.run(
          {in.batch(p_.train.encoding().ids), in.labels.data(), static_cast<Index>(global_rows), in.share.offset},
          position_.step, lr);
      if (result.bad_label_row >= 0) {
        const auto row = static_cast<std::size_t>(result.bad_label_row);
        throw Error("training step " + std::to_string(position_.step + 1) + " (epoch " +
                    std::to_string(position_.epoch + 1) + ", batch " + std::to_string(position_.batch + 1) +
                    "): the label " + std::to_string(in.labels[row]) + " of training row " +
                    std::to_string(order[static_cast<std::size_t>(position_.batch * batch + in.share.offset) + row]) +
                    " is outside [0, " + std::to_string(p_.model.config().classes) + ")");
      }
      const StepAgreement agreed = agree_on_step(*p_.world.comm, p_.world, result, in.share.count, p_.plan.balance);
      account(result, agreed, global_rows, seconds_since(step_start), lr);
      if (agreed.signal > 0) {  // every rank stops after the same step
        if (next.valid()) next.wait();
        ++position_.batch;
        save(p_.dir.checkpoint(), true);
        say("interrupted by signal " + std::to_string(agreed.signal) + ": checkpoint written to " +
            p_.dir.checkpoint() + " (resume with --resume " + p_.dir.checkpoint() + ")");
        throw Interrupted(agreed.signal, true);
      }
      if (config.checkpoint_every > 0 && position_.step % config.checkpoint_every == 0 &&
          position_.batch + 1 != batches) {
        ++position_.batch;
        save(p_.dir.checkpoint(), true);
        --position_.batch;
      }
    }
    return true;
  }

  // After a step every rank agreed on: a step that is not finite (stop, or skip with
  // --skip-nonfinite), the position, the sums, the log.
  void account(const StepResults& result, const StepAgreement& agreed, std::int64_t global_rows, double step_seconds,
               double lr) {
    for (std::size_t r = 0; p_.plan.balance && r < rank_rates_.size(); ++r)  // smoothed over steps
      if (agreed.rank_rates[r] > 0)
        rank_rates_[r] = rank_rates_[r] > 0 ? 0.5 * (rank_rates_[r] + agreed.rank_rates[r]) : agreed.rank_rates[r];
    // A loss that is not finite made the gradient NaN, so bad_loss implies skipped; a gradient
    // can also overflow only in the sum over ranks (skipped, no rank to name).
    const bool bad_loss = agreed.bad_loss_rank >= 0, bad_gradient = agreed.bad_gradient_rank >= 0 || result.skipped;
    if (bad_loss || bad_gradient) {
      const int blamed = bad_loss ? agreed.bad_loss_rank : agreed.bad_gradient_rank;
      const std::string what = std::string(bad_loss ? "loss" : "gradient") + " is not finite at step " +
                               std::to_string(position_.step + 1) + " (epoch " + std::to_string(position_.epoch + 1) +
                               ", batch " + std::to_string(position_.batch + 1) + ") " +
                               (blamed >= 0 ? "on rank " + std::to_string(blamed) : "after the all-reduce");
      if (!p_.config.skip_nonfinite)
        throw Error("the training " + what + " (--skip-nonfinite skips such steps; lower --lr or set --clip-norm)");
      ++totals_.skipped_steps;
      if (p_.world.root()) TS_LOG(warn, "skipped the step: the " << what);
    }
    ++position_.step;
    ++totals_.steps;
    if (!(bad_loss || bad_gradient)) {
      position_.epoch_loss_sum += agreed.loss_sum;
      position_.epoch_correct += agreed.correct;
    }
    position_.epoch_samples += global_rows;
    position_.epoch_seconds += step_seconds;
    totals_.train_seconds += step_seconds;
    totals_.wait_seconds += agreed.wait_most;
    totals_.least_wait_seconds += agreed.wait_least;
    totals_.train_samples += global_rows;
    interval_.samples += global_rows;
    interval_.loss += bad_loss ? 0.0 : agreed.loss_sum;
    interval_.correct += agreed.correct;
    interval_.wait += agreed.wait_most;
    interval_.least_wait += agreed.wait_least;
    ++interval_.steps;
    const bool last = position_.batch + 1 == p_.plan.batches;
    if (p_.config.log_every > 0 && (position_.step % p_.config.log_every == 0 || last)) {
      log_interval(lr);
      interval_ = Interval{};
    } else {
      progress_.update(position_.epoch + 1, p_.config.epochs, position_.epoch_samples, p_.plan.train_rows,
                       static_cast<double>(position_.epoch_samples) / position_.epoch_seconds);
    }
  }

  // The interval's line and metrics record.
  void log_interval(double lr) {
    const dist::World& world = p_.world;
    const Interval& in = interval_;
    const double seconds = seconds_since(in.start);
    const double rate = static_cast<double>(in.samples) / seconds;
    const double wait_ms = 1000 * in.wait / static_cast<double>(in.steps);
    const double least_wait_ms = 1000 * in.least_wait / static_cast<double>(in.steps);
    std::string wait;
    if (world.size > 1) {
      char text[64];
      std::snprintf(text, sizeof text, " | comm wait %.1f ms/step (least %.1f)", wait_ms, least_wait_ms);
      wait = text;
    }
    std::vector<std::int64_t> rows_per_rank;
    if (p_.plan.balance) {  // the split of a full batch at the current rates
      for (const Share& share : shares_of(p_.plan.batch)) rows_per_rank.push_back(share.count);
      wait += " | rows a rank";
      for (std::size_t r = 0; r < rows_per_rank.size() && r < 8; ++r)
        wait += (r == 0 ? " " : "/") + std::to_string(rows_per_rank[r]);
      if (rows_per_rank.size() > 8) wait += "/...";
    }
    const double loss = in.loss / static_cast<double>(in.samples);
    const double accuracy = static_cast<double>(in.correct) / static_cast<double>(in.samples);
    char line[320];
    std::snprintf(line, sizeof line,
                  "epoch %lld/%lld step %lld [%lld/%lld] loss %.4f acc %.4f lr %.5g %.1f samples/s%s",
                  static_cast<long long>(position_.epoch + 1), static_cast<long long>(p_.config.epochs),
                  static_cast<long long>(position_.step), static_cast<long long>(position_.batch + 1),
                  static_cast<long long>(p_.plan.batches), loss, accuracy, lr, rate, wait.c_str());
    say(line);
    nlohmann::json record{{"type", "interval"},        {"epoch", position_.epoch + 1},
                          {"step", position_.step},    {"loss", loss},
                          {"accuracy", accuracy},      {"lr", lr},
                          {"samples_per_second", rate}};
    if (world.size > 1) {
      record["comm_wait_ms_per_step"] = wait_ms;
      record["comm_wait_least_ms_per_step"] = least_wait_ms;
    }
    if (p_.plan.balance) record["rows_per_rank"] = rows_per_rank;
    p_.dir.write_metrics(record);
  }

  // Evaluation over every rank's shard; the counts are summed so every rank holds the totals. An
  // interrupt during evaluation keeps the finished epoch: the checkpoint then resumes at the
  // evaluation (batch == batches).
  Metrics evaluate_all(const Dataset& data, bool checkpoint_on_interrupt) {
    try {
      Metrics m = evaluate(p_.model, p_.backend, data, p_.plan.eval_batch, 0);
      auto packed = m.pack();
      p_.world.comm->allreduce(packed.data(), packed.size(), dist::ReduceOp::sum);
      m.unpack(packed);
      return m;
    } catch (const Interrupted& interrupted) {
      if (!checkpoint_on_interrupt) throw;
      save(p_.dir.checkpoint(), true);
      say("interrupted by signal " + std::to_string(interrupted.signal()) +
          " during evaluation: checkpoint written to " + p_.dir.checkpoint());
      throw;
    }
  }

  // End of epoch: evaluation, model selection, the epoch's record, the checkpoint.
  void end_epoch(double flops_per_sample) {
    const TrainConfig& config = p_.config;
    const Encoding& encoding = p_.train.encoding();
    nlohmann::json record{
        {"type", "epoch"},
        {"epoch", position_.epoch + 1},
        {"step", position_.step},
        {"lr",
         p_.plan.lr_multiplier * learning_rate(config.optimizer, config.schedule, position_.epoch, position_.step - 1)},
        {"train_loss", position_.epoch_loss_sum / static_cast<double>(position_.epoch_samples)},
        {"train_accuracy", static_cast<double>(position_.epoch_correct) / static_cast<double>(position_.epoch_samples)},
        {"train_seconds", position_.epoch_seconds},
        {"samples_per_second", static_cast<double>(position_.epoch_samples) / position_.epoch_seconds},
        {"ranks", p_.world.size}};
    char line[320];
    std::snprintf(line, sizeof line, "epoch %lld done: train loss %.4f acc %.4f, %.1f samples/s",
                  static_cast<long long>(position_.epoch + 1), record["train_loss"].get<double>(),
                  record["train_accuracy"].get<double>(), record["samples_per_second"].get<double>());
    std::string summary = line;
    if (flops_per_sample > 0) {
      record["gflops"] =
          flops_per_sample * static_cast<double>(position_.epoch_samples) / position_.epoch_seconds / 1e9;
      std::snprintf(line, sizeof line, " (%.1f GFLOP/s dense)", record["gflops"].get<double>());
      summary += line;
    }
    const bool final_epoch = position_.epoch + 1 == config.epochs;
    if (!p_.eval.valid.path.empty()) {
      const auto eval_start = Clock::now();
      Metrics m = evaluate_all(p_.eval.valid, true);
      record["valid"] = nlohmann::json::parse(m.json(encoding.classes));
      record["valid"]["seconds"] = seconds_since(eval_start);
      std::snprintf(line, sizeof line, "; validation loss %.4f acc %.4f", m.mean_loss(), m.accuracy());
      summary += line;
      if (m.accuracy() > position_.best_valid_accuracy) {
        position_.best_valid_accuracy = m.accuracy();
        position_.best_epoch = position_.epoch + 1;
        const auto saved_batch = position_.batch;
        position_.batch = p_.plan.batches;
        save(p_.dir.best(), false);
        position_.batch = saved_batch;
        summary += " (best so far, saved)";
      }
    }
    if (!p_.eval.test.path.empty() && (config.test_each_epoch || final_epoch)) {
      const auto eval_start = Clock::now();
      Metrics m = evaluate_all(p_.eval.test, true);
      record["test"] = nlohmann::json::parse(m.json(encoding.classes));
      record["test"]["seconds"] = seconds_since(eval_start);
      if (final_epoch) final_test_ = m, final_test_seconds_ = seconds_since(eval_start);
      record["test"]["samples_per_second"] = static_cast<double>(m.samples()) / seconds_since(eval_start);
      std::snprintf(line, sizeof line, "; test loss %.4f acc %.4f", m.mean_loss(), m.accuracy());
      summary += line;
    }
    p_.dir.write_metrics(record);
    say(summary);
    // The checkpoint marks the next epoch's start.
    position_.batch = 0;
    position_.epoch_loss_sum = 0;
    position_.epoch_correct = 0;
    position_.epoch_samples = 0;
    position_.epoch_seconds = 0;
    ++position_.epoch;
    save(p_.dir.checkpoint(), true);
    --position_.epoch;
    // A signal during the epoch's end: every rank stops here together, from the checkpoint above.
    double stop_signal = interrupt_signal();
    p_.world.comm->allreduce(&stop_signal, 1, dist::ReduceOp::max);
    if (stop_signal > 0) {
      say("interrupted by signal " + std::to_string(static_cast<int>(stop_signal)) + " after epoch " +
          std::to_string(position_.epoch + 1) + ": checkpoint written to " + p_.dir.checkpoint() +
          " (resume with --resume " + p_.dir.checkpoint() + ")");
      throw Interrupted(static_cast<int>(stop_signal), true);
    }
  }

  // The final record: totals, and the test set with the final weights.
  void final_report(double flops_per_sample) {
    const int ranks = p_.world.size;
    nlohmann::json record{
        {"type", "final"},
        {"steps", position_.step},
        {"ranks", ranks},
        {"train_samples", totals_.train_samples},
        {"train_seconds", totals_.train_seconds},
        {"train_samples_per_second",
         totals_.train_seconds > 0 ? static_cast<double>(totals_.train_samples) / totals_.train_seconds : 0.0}};
    if (ranks > 1 && totals_.steps > 0) {
      record["comm_wait_ms_per_step"] = 1000 * totals_.wait_seconds / static_cast<double>(totals_.steps);
      record["comm_wait_least_ms_per_step"] = 1000 * totals_.least_wait_seconds / static_cast<double>(totals_.steps);
    }
    if (totals_.skipped_steps > 0) record["skipped_steps"] = totals_.skipped_steps;
    if (!p_.eval.test.path.empty()) {
      const auto eval_start = Clock::now();
      Metrics m = final_test_ ? *final_test_ : evaluate_all(p_.eval.test, false);
      const double eval_seconds = final_test_ ? final_test_seconds_ : seconds_since(eval_start);
      const auto& classes = p_.train.encoding().classes;
      record["test"] = nlohmann::json::parse(m.json(classes));
      record["test"]["samples_per_second"] = static_cast<double>(m.samples()) / eval_seconds;
      say("test set (" + p_.config.test_path + "), final weights:\n" + m.table(classes));
      char flops[64] = "";
      if (flops_per_sample > 0)
        std::snprintf(flops, sizeof flops, " (%.1f GFLOP/s dense)",
                      flops_per_sample * record["train_samples_per_second"].get<double>() / 1e9);
      char line[256];
      std::snprintf(line, sizeof line, "accuracy %.4f | training %.1f samples/s%s | inference %.1f samples/s",
                    m.accuracy(), record["train_samples_per_second"].get<double>(), flops,
                    static_cast<double>(m.samples()) / eval_seconds);
      say(line);
    }
    if (position_.best_epoch > 0) {
      record["best_valid_accuracy"] = position_.best_valid_accuracy;
      record["best_epoch"] = position_.best_epoch;
    }
    p_.dir.write_metrics(record);
    say("run directory: " + p_.dir.path());
  }

  Parts p_;
  TrainingPosition& position_;
  Progress progress_;
  std::vector<double> rank_rates_;
  Input inputs_[2];
  Interval interval_;
  Totals totals_;
  std::optional<Metrics> final_test_;  // the last epoch's test evaluation, reused at the end
  double final_test_seconds_ = 0;
};

// "ranks by host: a: 0, 1; b: 2, 3" when the ranks span several hosts, "" otherwise: a launcher
// that loses a node names the node.
std::string hosts_line(const dist::World& world) {
  std::vector<std::pair<std::string, std::string>> by_host;  // in order of first rank
  for (std::size_t r = 0; r < world.hosts.size(); ++r) {
    auto found = std::find_if(by_host.begin(), by_host.end(), [&](const auto& h) { return h.first == world.hosts[r]; });
    if (found == by_host.end())
      by_host.emplace_back(world.hosts[r], std::to_string(r));
    else
      found->second += ", " + std::to_string(r);
  }
  if (by_host.size() < 2) return "";
  std::string line = "ranks by host:";
  for (std::size_t i = 0; i < by_host.size(); ++i)
    line += (i ? "; " : " ") + by_host[i].first + ": " + by_host[i].second;
  return line;
}

}  // namespace

// The gradient all-reduce's bucket size in elements: --bucket-mb, or with --bucket-mb auto
// (a negative bucket_mb) the size dist::choose_bucket_elements gives for the all-reduce cost
// measured now on every rank. `line` says what was chosen, for the log.
Index gradient_buckets(const TrainConfig& config, dist::Communicator& comm, engine::ParamStore<float>& params,
                       dist::Wire wire, std::string& line) {
  Index dense = params.trained_count();
  for (const auto& s : params.row_sparse()) dense -= s.row_count * s.row_size;
  const auto mib = [](Index elements) { return static_cast<double>(elements) * sizeof(float) / (1024.0 * 1024.0); };
  char text[256];
  if (config.bucket_mb >= 0) {
    const auto elements = static_cast<Index>(config.bucket_mb * 1024 * 1024 / sizeof(float));
    const Index buckets = elements > 0 && elements < dense ? (dense + elements - 1) / elements : 1;
    std::snprintf(text, sizeof text, "gradient all-reduce: %lld bucket(s) of at most %.3g MiB (--bucket-mb)",
                  static_cast<long long>(buckets), buckets > 1 ? config.bucket_mb : mib(dense));
    line = text;
    return elements;
  }
  // The gradient buffer holds no gradient yet (zeros on every rank): a scratch the probe may sum.
  const dist::AllreduceCost cost =
      dist::measure_allreduce(comm, params.gradients().data(), std::max<Index>(dense, 1), wire);
  const Index elements = dist::choose_bucket_elements(dense, cost);
  std::snprintf(text, sizeof text,
                "gradient all-reduce: %lld bucket(s) of %.3g MiB (--bucket-mb auto: measured %.0f us + %.3g GB/s of "
                "gradient a bucket)",
                static_cast<long long>((dense + elements - 1) / std::max<Index>(elements, 1)), mib(elements),
                1e6 * cost.fixed_seconds,
                cost.seconds_per_element > 0 ? sizeof(float) / cost.seconds_per_element / 1e9 : 0.0);
  line = text;
  return elements;
}

int run_training(const TrainConfig& config, const std::string& config_json) {
  check_options(config);
  dist::World& world = dist::init_world(false, {config.comm_timeout, config.mpi_progress_us});
  dist::Communicator& comm = *world.comm;
  FaultHooks faults(config.fault, world.rank);
  engine::BackendOptions backend_options = config.backend;
  if (backend_options.threads == 0) backend_options.threads = default_threads(world.local_size);
  engine::DnnlBackend::set_threads(backend_options.threads);  // the data readers' threads too

  // --- Data: this rank's shards ----------------------------------------------------------------
  ShardReader train(config.train_path, engine::input_ids(config.model.name),
                    config.limit_train > 0 ? config.limit_train : -1);
  if (train.rows() == 0) throw InputError(config.train_path + ": no training rows");
  if (config.bucket_by_length && train.encoding().ids != engine::IdType::words)
    throw OptionError("--bucket-by-length: model " + config.model.name +
                      " reads character rows of one length; bucketing is for the word models");
  const Encoding& encoding = train.encoding();
  const EvalData eval = open_eval_data(config, world, train, config_json);

  // --- Model, backend, optimizer, position -----------------------------------------------------
  engine::ModelConfig model_config = config.model;
  model_config.classes = encoding.num_classes;
  model_config.length = encoding.width();
  model_config.alphabet = static_cast<Index>(encoding.alphabet.size());  // 0 for word models
  model_config.vocab = encoding.vocab_size;                              // 0 for character models
  model_config.fuse_input = backend_options.onehot_fusion;
  backend_options = resolve(backend_options, world.local_size);
  auto backend = make_backend(backend_options, world.local_rank, world.local_size);
  const engine::Memory& memory = backend->memory();
  if (memory.is_host()) check_model_fits(model_config, config.optimizer, world.local_size);
  engine::Model<float> model(model_config, memory);
  Optimizer<float> optimizer(config.optimizer, model.params().trained_count(), memory);
  model.params().initialize(config.seed);
  std::string vectors_line;
  if (!config.embeddings.empty() && config.resume.empty() && world.root())
    vectors_line = load_word_vectors(config, model);
  TrainingPosition position = restore(config, backend_options, train, eval, model, optimizer, comm);
  const BatchPlan plan = plan_batches(config, world, train.rows(), position);
  model.reserve(plan.capacity);

  CheckpointInfo info;
  info.encoding = encoding;
  info.text = read_text_source(config.train_path, encoding.ids);
  info.training_json = config_json;
  info.model = model.config();
  info.backend_options = backend_options;
  info.train_content_sha256 = train.content_sha256();
  info.valid_content_sha256 = eval.valid.content_sha256;

  // --- The step: gradients reduced over the ranks (NCCL on GPUs, MPI otherwise) ----------------
  std::shared_ptr<dist::Communicator> gradient_comm = world.comm;
#ifdef TEXTSCALE_WITH_CUDA
  if (!memory.is_host() && world.size > 1)
    gradient_comm = cuda::make_nccl_communicator(comm, *backend, config.comm_timeout);
#endif
  auto& params = model.params();
  const dist::Wire wire = config.allreduce_precision == "bf16" ? dist::Wire::bf16 : dist::Wire::fp32;
  std::string bucket_line;
  const Index bucket_elements =
      world.size > 1 ? gradient_buckets(config, *gradient_comm, params, wire, bucket_line) : 0;
  std::vector<dist::SparseRange> sparse;
  for (auto& s : params.row_sparse()) sparse.push_back({s.offset, s.row_count, s.row_size, &s.rows});
  dist::GradientReducer reducer(*gradient_comm, params.gradients().data(), params.trained_count(), bucket_elements,
                                sparse, wire);
  std::function<void(double*, Index)> allreduce_sum = [&](double* data, Index count) {
    comm.allreduce(data, static_cast<std::size_t>(count), dist::ReduceOp::sum);
  };
  StepSetup setup;
  setup.seed = config.seed;
  setup.max_rows = static_cast<Index>(plan.capacity);
  // --accumulate: micro-batches of the even share's N-th part (a larger --balance share takes more).
  if (config.accumulate > 1)
    setup.micro_rows =
        static_cast<Index>((rank_share(plan.batch, 0, world.size).count + config.accumulate - 1) / config.accumulate);
  if (world.size > 1) {
    setup.reducer = &reducer;
    setup.stats_comm = gradient_comm.get();
    setup.allreduce_sum = &allreduce_sum;
  }
  setup.time_compute_exactly = plan.balance && !memory.is_host();
  if (faults.any()) setup.hooks = &faults;
  TrainingStep<float> step(model, *backend, &optimizer, setup);

  // --- Run directory (written by rank 0), once nothing above has refused the run ---------------
  RunDirectory dir(config.run_dir, config.resume, model_config.name, world.root(), config.overwrite);
  nlohmann::json record = nlohmann::json::parse(config_json);
  record["revision"] = version_line();
  record["libraries"] = build_info().libraries;
  record["backend"] = backend->name();
  record["threads"] = engine::DnnlBackend::threads();
  record["device"] = memory.is_host() ? "cpu" : "cuda";
  record["backend_options"] = nlohmann::json::parse(engine::backend_options_json(backend_options));
  record["world_size"] = world.size;
  record["hosts"] = world.hosts;
  record["model_resolved"] = nlohmann::json::parse(model_config_json(model.config()));
  record["parameters"] = model.params().trained_count();
  dir.write_config(record);

  // Rank 0 speaks; the others only warn and fail (through the log, tagged with their rank). Under
  // a launcher a rank's stdout is often a pseudo-terminal whatever the job's output is (Open MPI
  // forwards it through one), so "auto" shows the bar only to a single process on a terminal.
  const bool show_progress =
      config.progress == "on" || (config.progress == "auto" && !world.mpi && ::isatty(STDOUT_FILENO));
  EpochLoop loop({config, world, train, eval, model, *backend, optimizer, step, plan, dir, info}, position,
                 show_progress);
  loop.say(model.summary());
  if (!vectors_line.empty()) loop.say(vectors_line);
  if (!bucket_line.empty()) loop.say(bucket_line);
  loop.say(
      "training " + model_config.name + " on " + std::to_string(plan.train_rows) + " rows (" +
      std::to_string(plan.batches) + " batches of " + std::to_string(plan.batch) + "), backend " + backend->name() +
      ", " + (world.size > 1 ? std::to_string(world.size) + " ranks (" + gradient_comm->name() + ") x " : "") +
      std::to_string(engine::DnnlBackend::threads()) + " threads, run directory " + dir.path() +
      (config.resume.empty()
           ? ""
           : ", resumed at epoch " + std::to_string(position.epoch + 1) + " batch " + std::to_string(position.batch)));
  if (const std::string hosts = hosts_line(world); !hosts.empty()) loop.say(hosts);
  loop.run();
  return 0;
}

}  // namespace textscale::train

// `textscale train`: options -> TrainConfig -> run_training.
#include <boost/program_options.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <set>

#include "textscale/cli/commands.h"
#include "textscale/cli/options.h"
#include "textscale/common/error.h"
#include "textscale/dist/communicator.h"
#include "textscale/engine/model_registry.h"
#include "textscale/train/checkpoint.h"
#include "textscale/train/trainer.h"

namespace po = boost::program_options;

namespace textscale::cli {

namespace {

// Every option with its resolved value, as JSON: recorded in the run directory, and accepted back
// by --config to repeat a run.
nlohmann::json resolved_options(const po::variables_map& values) {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [name, value] : values) {
    if (name == "config" || name == "help") continue;
    const auto& any = value.value();
    if (any.type() == typeid(std::string))
      j[name] = value.as<std::string>();
    else if (any.type() == typeid(std::int64_t))
      j[name] = value.as<std::int64_t>();
    else if (any.type() == typeid(double))
      j[name] = value.as<double>();
    else if (any.type() == typeid(bool))
      j[name] = value.as<bool>();
    else if (any.type() == typeid(int))
      j[name] = value.as<int>();
    else if (any.type() == typeid(std::uint64_t))
      j[name] = value.as<std::uint64_t>();
  }
  return j;
}

// Options that shape the training trajectory: a resumed run must keep them. (The backend
// options are compared by the trainer, which refuses a change unless --force-resume.)
// clang-format off
const std::vector<std::string> kTrajectoryOptions{
    "train", "model", "features", "fc", "shortcut", "dropout", "batch-size", "optimizer", "lr", "momentum",
    "weight-decay", "adam-beta1", "adam-beta2", "clip-norm", "schedule", "step-epochs", "step-factor",
    "epoch-factor", "warmup-steps", "seed", "limit-train", "init-from", "shuffle", "shuffle-block", "lr-scaling",
    "lr-base-batch", "sync-bn", "embed-dim", "hidden", "pooling", "bidirectional", "bucket-by-length",
    "embedding-update"};
// clang-format on

// Turns an "options" object back into command-line tokens, leaving out `skip`.
std::vector<std::string> option_tokens(const nlohmann::json& options, const std::vector<std::string>& skip) {
  std::vector<std::string> tokens;
  for (const auto& [name, value] : options.items()) {
    if (std::find(skip.begin(), skip.end(), name) != skip.end()) continue;
    if (value.is_boolean())
      tokens.push_back("--" + name + "=" + (value.get<bool>() ? "true" : "false"));
    else if (value.is_string() && value.get<std::string>().empty())  // "--name=" is no value to the parser
      tokens.insert(tokens.end(), {"--" + name, ""});
    else if (value.is_string())
      tokens.push_back("--" + name + "=" + value.get<std::string>());
    else
      tokens.push_back("--" + name + "=" + value.dump());
  }
  return tokens;
}

// A saved configuration's options (config.json of a run directory, or a bare object of options).
// A run directory stands for its config.json.
nlohmann::json options_from_config(std::string path) {
  std::error_code status;
  if (std::filesystem::is_directory(path, status)) path += "/config.json";
  std::ifstream in(path);
  if (!in || std::filesystem::is_directory(path, status))
    throw InputError(path + ": cannot read the configuration file");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& error) {
    throw InputError(path + ": not valid JSON: " + error.what());
  } catch (const std::exception& error) {
    throw InputError(path + ": cannot read the configuration file: " + error.what());
  }
  const nlohmann::json& options = j.contains("options") ? j["options"] : j;
  if (!options.is_object()) throw InputError(path + ": expected a JSON object of options");
  return options;
}

// The options a checkpoint was trained with. Options given on this command line that would
// change the trajectory are refused; the others come from the checkpoint.
nlohmann::json options_from_checkpoint(const std::string& path, const po::variables_map& given) {
  const train::CheckpointInfo info = train::read_checkpoint_info(path);
  nlohmann::json options;
  try {
    options = nlohmann::json::parse(info.training_json).at("options");
  } catch (const nlohmann::json::exception&) {
    throw InputError(path + ": the checkpoint does not record its training options");
  }
  const nlohmann::json now = resolved_options(given);
  for (const auto& name : kTrajectoryOptions) {
    if (!given.count(name) || given[name].defaulted()) continue;
    const nlohmann::json before = options.contains(name) ? options[name] : nlohmann::json();
    if (now.value(name, nlohmann::json()) != before)
      throw InputError(path + ": was trained with --" + name + " " + before.dump() + ", this command gives " +
                       now.value(name, nlohmann::json()).dump() +
                       " (a resumed run keeps the options that shape training; start a new run with --init-from)");
  }
  return options;
}

// The optimiser's and the learning-rate schedule's options.
void add_optimizer_options(po::options_description& options, train::OptimizerConfig& o, train::ScheduleConfig& sc) {
  options.add_options()                                                                                   //
      ("optimizer", po::value(&o.kind)->default_value("sgd"), "sgd (momentum) | adam")                    //
      ("lr", po::value(&o.lr)->default_value(0.01), "learning rate")                                      //
      ("momentum", po::value(&o.momentum)->default_value(0.9), "SGD momentum")                            //
      ("weight-decay", po::value(&o.weight_decay)->default_value(0.0), "L2 weight decay")                 //
      ("adam-beta1", po::value(&o.beta1)->default_value(0.9), "Adam beta1")                               //
      ("adam-beta2", po::value(&o.beta2)->default_value(0.999), "Adam beta2")                             //
      ("clip-norm", po::value(&o.clip_norm)->default_value(0.0), "clip the gradient's L2 norm (0: off)")  //
      ("embedding-update", po::value(&o.embedding_update)->default_value("dense"),
       "word embeddings: dense (every row moves, as with a dense gradient: momentum, Adam's moments, weight decay) "
       "| lazy (only the rows of the batch's words, with their optimizer state, as PyTorch's SparseAdam)")  //
      ("schedule", po::value(&sc.kind)->default_value("constant"),
       "constant | step (x step-factor every step-epochs epochs; Zhang: 0.5 every 3) | factor (x epoch-factor "
       "per epoch)")                                                                                //
      ("step-epochs", po::value(&sc.step_epochs)->default_value(3), "step schedule period")         //
      ("step-factor", po::value(&sc.step_factor)->default_value(0.5), "step schedule factor")       //
      ("epoch-factor", po::value(&sc.epoch_factor)->default_value(0.94), "factor schedule factor")  //
      ("warmup-steps", po::value(&sc.warmup_steps)->default_value(0), "linear warm-up steps");
}

// --bucket-mb: "auto" (-1) or MiB in [0, 4096].
double parse_bucket_mb(const std::string& text) {
  if (text == "auto") return -1;
  std::size_t used = 0;
  double mib = 0;
  try {
    mib = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != text.size() || !(mib >= 0 && mib <= 4096))
    throw OptionError("--bucket-mb must be auto or in [0, 4096], not '" + text + "'");
  return mib;
}

// Throws UsageError for options missing or given together that do not go together.
void check_combinations(const train::TrainConfig& c, bool resume) {
  if (c.train_path.empty()) throw UsageError{"--train FILE is required"};
  if (c.force_resume && !resume) throw UsageError{"--force-resume goes with --resume"};
  if (c.overwrite && resume)
    throw UsageError{"--overwrite replaces a previous run by a new one: it does not go with --resume"};
  if (c.mpi_progress_us < 0 || c.mpi_progress_us > 10'000'000)
    throw UsageError{"--mpi-progress-us must be in 0..10000000 (0: no progress thread)"};
}

std::string model_names() {
  std::string names;
  for (const auto& name : engine::model_registry().names()) names += (names.empty() ? "" : ", ") + name;
  return names;
}

}  // namespace

int train_command(const std::vector<std::string>& arguments) {
  train::TrainConfig c;
  BackendArguments backend;
  ModelArguments model;
  bool sync_bn = false;
  std::string bucket_mb;
  std::string config_file;
  std::set<std::string> typed;
  po::options_description options(
      "textscale train: train a character model on preprocessed HDF5 files\n\n"
      "usage: textscale train --train TRAIN.h5 [--valid VALID.h5] [--test TEST.h5] --model NAME [options]\n\n"
      "models: " +
      model_names() + " (textscale models: descriptions and sizes)");
  options.add_options()("help,h", "show this help")  //
      ("config", po::value(&config_file),
       "repeat a run: read options from a run directory's config.json "
       "(options given on the command line win)")                                                                 //
      ("train", po::value(&c.train_path), "training file")                                                        //
      ("valid", po::value(&c.valid_path), "validation file, evaluated each epoch; best weights kept as best.h5")  //
      ("test", po::value(&c.test_path), "test file, evaluated each epoch (see --test-each-epoch) and at the end");
  model.add(options);
  options.add_options()  //
      ("sync-bn", po::value(&sync_bn)->default_value(false),
       "data parallel: batch-norm statistics over all ranks (default: each rank's own batch)")  //
      ("epochs", po::value(&c.epochs)->default_value(10), "epochs")                             //
      ("batch-size", po::value(&c.batch_size)->default_value(128),
       "global training batch size (split across ranks)")  //
      ("batch-per-rank", po::value<std::int64_t>()->default_value(0),
       "instead of --batch-size: rows per rank (global batch = this x ranks)")  //
      ("eval-batch-size", po::value(&c.eval_batch_size)->default_value(0), "evaluation batch size (0: batch size)");
  add_optimizer_options(options, c.optimizer, c.schedule);
  options.add_options()                                                                                    //
      ("seed", po::value(&c.seed)->default_value(1), "seed of initialisation, data order and dropout")     //
      ("run-dir", po::value(&c.run_dir), "run directory (default runs/<model>-<UTC time>)")                //
      ("resume", po::value(&c.resume), "continue from a checkpoint (its run directory unless --run-dir)")  //
      ("overwrite", po::bool_switch(&c.overwrite),
       "replace a previous run's files in --run-dir (config.json, metrics.jsonl, checkpoints): they go when "
       "this run, accepted, writes its config.json")  //
      ("force-resume", po::bool_switch(&c.force_resume),
       "with --resume: continue even though a backend option that changes an algorithm or its rounding "
       "(--device, --backend, --precision, --winograd, --onehot-fusion, ...) differs from the checkpoint's")  //
      ("init-from", po::value(&c.init_from), "start a new run from a checkpoint's weights")                   //
      ("embeddings", po::value(&c.embeddings),
       "word models: start the embedding from these word vectors (word2vec/fastText .vec text or word2vec "
       "binary; words missing from the file keep their random start; docs/word-embeddings.md)")  //
      ("checkpoint-every", po::value(&c.checkpoint_every)->default_value(0),
       "also write the checkpoint every N steps (0: each epoch only)")                                              //
      ("log-every", po::value(&c.log_every)->default_value(50), "log line every N steps")                           //
      ("max-steps", po::value(&c.max_steps)->default_value(0), "stop after this global step (0: no limit)")         //
      ("limit-train", po::value(&c.limit_train)->default_value(0), "use only the first N training rows")            //
      ("limit-eval", po::value(&c.limit_eval)->default_value(0), "evaluate on the first N rows only")               //
      ("test-each-epoch", po::value(&c.test_each_epoch)->default_value(true), "evaluate the test file each epoch")  //
      ("progress", po::value(&c.progress)->default_value("auto"),
       "progress bar: auto (a single process on a terminal) | on | off")  //
      ("shuffle", po::value(&c.shuffle)->default_value("rows"),
       "epoch order: rows (a permutation of rows) | blocks (of --shuffle-block consecutive rows: contiguous reads)")  //
      ("shuffle-block", po::value(&c.shuffle_block)->default_value(256), "rows per block with --shuffle blocks")      //
      ("bucket-by-length", po::value(&c.bucket_by_length)->default_value(false),
       "word models: each batch of rows of similar length (sorted within pools of 50 batches; batch order "
       "shuffled), so that less padding is computed")  //
      ("bucket-mb", po::value(&bucket_mb)->default_value("auto"),
       "data parallel: gradient all-reduce bucket size in MiB, overlapped with backward (0: one bucket after "
       "backward; auto: from the gradient's size and the all-reduce's cost measured at start)")  //
      ("comm-timeout", po::value(&c.comm_timeout)->default_value(300.0),
       "data parallel: seconds a collective may wait for the other ranks before the job is ended (0: no limit)")  //
      ("mpi-progress-us", po::value(&c.mpi_progress_us)->default_value(1000),
       "data parallel: the MPI progress thread's polling interval in microseconds (0: no progress thread)")  //
      ("balance", po::value(&c.balance)->default_value(false),
       "data parallel: split each global batch by the ranks' measured speeds, so that a slower rank takes fewer "
       "rows (same samples and mean gradient; not bitwise reproducible)")  //
      ("allreduce-precision", po::value(&c.allreduce_precision)->default_value("fp32"),
       "data parallel: gradient buckets sent as fp32 | bf16 (half the bytes; each value and partial sum "
       "rounded to bf16, 8 significant bits)")  //
      ("accumulate", po::value(&c.accumulate)->default_value(1),
       "gradient accumulation: each rank computes its share of a batch in N micro-batches and sums their "
       "gradients before the all-reduce and the update (the batch's gradient; the memory of one micro-batch)")  //
      ("lr-scaling", po::value(&c.lr_scaling)->default_value("none"),
       "none | linear: lr x global batch / --lr-base-batch (large global batches; combine with --warmup-steps)")  //
      ("lr-base-batch", po::value(&c.lr_base_batch)->default_value(128), "batch size --lr is tuned for")          //
      ("skip-nonfinite", po::value(&c.skip_nonfinite)->default_value(false),
       "skip steps whose loss or gradient is not finite instead of stopping")  //
      ("fault", po::value(&c.fault),
       "for tests: inject a failure, KIND:RANK:STEP with KIND throw, kill, nan, term (SIGTERM) or slow (the rank "
       "takes 5 ms longer a row from that step on)");
  backend.add(options, "CPU threads per rank (0: the node's cores / its ranks)");
  po::variables_map values;
  try {
    store_checked(po::command_line_parser(arguments).options(options).run(), options, values);
    typed = given_options(values);
    if (values.count("config") && values.count("resume"))
      throw UsageError{"--config and --resume exclude each other (a resume takes its checkpoint's options)"};
    if (values.count("config")) {
      // A repeat is a new run, from the same starting weights where the run had --init-from.
      const auto tokens = option_tokens(options_from_config(values["config"].as<std::string>()),
                                        {"resume", "run-dir", "force-resume", "overwrite"});
      store_checked(po::command_line_parser(tokens).options(options).run(), options, values);
    }
    if (values.count("resume")) {
      if (values.count("init-from"))
        throw UsageError{
            "--resume and --init-from exclude each other (a resume takes its weights from the checkpoint)"};
      const auto saved = options_from_checkpoint(values["resume"].as<std::string>(), values);
      // Options not given now come from the checkpoint; --max-steps applies to one invocation.
      const auto tokens =
          option_tokens(saved, {"resume", "run-dir", "max-steps", "progress", "force-resume", "overwrite"});
      store_checked(po::command_line_parser(tokens).options(options).run(), options, values);
    }
    po::notify(values);
  } catch (const po::error& error) {
    throw UsageError{error.what()};
  }
  if (values.count("help")) {
    std::cout << options << "\n";
    return 0;
  }
  if (model.name == "help") return models_command({});
  c.model = model.config(values, typed);
  c.model.sync_bn = sync_bn;
  c.bucket_mb = parse_bucket_mb(bucket_mb);
  check_combinations(c, values.count("resume") > 0);
  c.backend = backend.options();
  nlohmann::json resolved = resolved_options(values);
  resolved.erase("force-resume");  // these two apply to one invocation
  resolved.erase("overwrite");
  // A run started from --init-from records it, and its resume keeps the record, but the weights now
  // come from the checkpoint being resumed.
  if (values.count("resume")) c.init_from.clear();
  // --batch-per-rank is a way of giving the global batch: the run records (and a resume keeps)
  // the global batch it resolves to.
  if (const auto per_rank = values["batch-per-rank"].as<std::int64_t>(); per_rank != 0) {
    if (per_rank < 0) throw UsageError{"--batch-per-rank must be positive"};
    if (values.count("batch-size") && !values["batch-size"].defaulted() && !values.count("resume"))
      throw UsageError{"give --batch-size (global) or --batch-per-rank, not both"};
    const std::int64_t global = per_rank * dist::init_world(false, {c.comm_timeout, c.mpi_progress_us}).size;
    if (values.count("resume") && global != c.batch_size)
      throw InputError(values["resume"].as<std::string>() + ": was trained with a global batch of " +
                       std::to_string(c.batch_size) + ", --batch-per-rank " + std::to_string(per_rank) + " gives " +
                       std::to_string(global) + " on this number of ranks (give --batch-size or nothing)");
    c.batch_size = global;
    resolved["batch-size"] = global;
  }
  resolved.erase("batch-per-rank");
  nlohmann::json record{{"command", "train"}, {"options", resolved}};
  std::string line;
  for (const auto& a : arguments) line += (line.empty() ? "" : " ") + a;
  record["command_line"] = "textscale train " + line;
  return train::run_training(c, record.dump());
}

}  // namespace textscale::cli

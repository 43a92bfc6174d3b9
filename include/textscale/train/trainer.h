// Training and evaluation of the character models, in one process or data-parallel over MPI.
//
// An epoch visits the training rows in an order drawn from (seed, epoch) (sharding.h), in global
// batches of `batch_size` (the last one smaller). With N ranks (mpirun / srun, one per device),
// rank r reads only its slice of each global batch from the training file (a background thread
// prefetches the next one), computes its gradients, and the ranks sum them in buckets overlapped
// with backward (dist/reducer.h); every rank then takes the same optimizer step. Each rank's loss
// gradient is scaled by 1/global batch, so N ranks follow one process's trajectory up to
// floating-point rounding (batch normalisation aside: it normalises with each rank's own batch
// statistics, and the running statistics are averaged over ranks every step). Parameters start
// as rank 0's (broadcast); evaluation is split across ranks and the counts summed; rank 0 alone
// writes the run directory. After each epoch the model is evaluated on the validation
// file (model selection: the best accuracy's weights are kept as best.h5) and, unless disabled, on
// the test file; at the end on the test file. Everything a run produces goes to its run directory:
//   config.json     the resolved configuration, git revision, libraries, command line
//   metrics.jsonl   one JSON object per log interval ("type": "interval") and per epoch ("epoch"),
//                   and the final evaluation ("final")
//   checkpoint.h5   the latest state (every `checkpoint_every` steps, each epoch, on SIGINT/SIGTERM)
//   best.h5         the weights with the best validation accuracy so far
//   .lock           while the run lasts: its host, PID and Slurm job (run_lock.h)
// Resuming from checkpoint.h5 continues at the same batch with the same data order, dropout masks
// and optimizer state, so an interrupted and resumed run ends with bitwise the same weights as an
// uninterrupted one (same backend; any thread count), and on another number of ranks continues
// the same global sample order from the same position.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "textscale/engine/backend.h"
#include "textscale/engine/backend_options.h"
#include "textscale/engine/model.h"
#include "textscale/train/dataset.h"
#include "textscale/train/metrics.h"
#include "textscale/train/optimizer.h"

namespace textscale::train {

struct TrainConfig {
  engine::ModelConfig model;  // classes, length and alphabet come from the training file
  std::string train_path, valid_path, test_path;
  std::int64_t epochs = 10;
  std::int64_t batch_size = 128;
  std::int64_t eval_batch_size = 0;  // 0: batch_size
  std::int64_t max_steps = 0;        // > 0: stop (with a checkpoint) after this global step
  std::int64_t limit_train = 0;      // > 0: use only the first N training rows
  std::int64_t limit_eval = 0;       // > 0: evaluate on the first N rows only
  OptimizerConfig optimizer;
  ScheduleConfig schedule;
  std::uint64_t seed = 1;
  // Device, CPU backend, precision, threads (0: the node's cores / its ranks) and algorithm
  // switches; resolved, they are recorded in config.json and the checkpoints.
  engine::BackendOptions backend;
  std::string run_dir;
  std::int64_t checkpoint_every = 0;  // steps; 0: at the end of each epoch only
  std::int64_t log_every = 50;        // steps
  std::string resume;                 // checkpoint to continue from
  bool force_resume = false;          // resume even where the backend options change an algorithm
  bool overwrite = false;             // a new run replaces a previous run's files in run_dir
  std::string init_from;              // checkpoint whose weights start a new run
  std::string embeddings;             // word vectors (.vec text or word2vec binary) that start a word model's table
  bool test_each_epoch = true;
  std::string progress = "auto";  // auto (when stdout is a terminal) | on | off
  // Data parallelism.
  std::string shuffle = "rows";      // rows | blocks (sharding.h)
  std::int64_t shuffle_block = 256;  // rows per block with shuffle = blocks
  bool bucket_by_length = false;     // word models: batches of rows of similar length (sharding.h)
  double bucket_mb = -1;             // gradient all-reduce bucket size in MiB; 0: one bucket after backward; -1: auto
  double comm_timeout = 300;         // seconds a collective may take before the job is ended
  std::int64_t mpi_progress_us = 1000;       // the MPI progress thread's polling interval (dist::WorldOptions)
  bool balance = false;                      // split each batch by the ranks' measured speeds (sharding.h)
  std::int64_t accumulate = 1;               // micro-batches a rank's share of a batch is computed in (StepSetup)
  std::string allreduce_precision = "fp32";  // fp32 | bf16: how gradient buckets travel (dist::Wire)
  std::string lr_scaling = "none";           // none | linear: lr x batch_size / lr_base_batch
  std::int64_t lr_base_batch = 128;
  bool skip_nonfinite = false;  // skip steps whose loss or gradient is not finite
  std::string fault;            // tests: "throw|kill|nan|term|slow:RANK:STEP" injects a failure
};

// Evaluates `model` on rows of `data` in order, in batches of `batch`. `limit` > 0 caps the rows.
Metrics evaluate(engine::Model<float>& model, engine::Backend<float>& backend, const Dataset& data, std::int64_t batch,
                 std::int64_t limit = 0);

// Threads for this rank when `requested` is 0: the node's cores divided among its ranks, at most
// the cores this process may run on.
int default_threads(int local_ranks);

// Runs training as configured; `config_json` is the resolved configuration recorded in the run
// directory and checkpoints. Returns the process exit code.
int run_training(const TrainConfig& config, const std::string& config_json);

}  // namespace textscale::train

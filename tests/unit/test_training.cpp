// Training pieces with exact expected values: learning-rate schedules, gradient clipping and the
// optimizer steps through the flat buffer, and classification metrics on a hand-made example;
// checkpoints moving between the CPU backends (checkpoint_between.h) and their format versions.
#define BOOST_TEST_MODULE training
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <cstdint>
#include <functional>
#include <vector>

#include "checkpoint_between.h"
#include "textscale/common/error.h"
#include "textscale/common/hdf5.h"
#include "textscale/engine/backend_options.h"
#include "textscale/engine/cpu/dnnl_backend.h"
#include "textscale/engine/reference_backend.h"
#include "textscale/train/metrics.h"
#include "textscale/train/optimizer.h"

using namespace textscale;
using boost::test_tools::tolerance;

BOOST_AUTO_TEST_CASE(learning_rate_schedules) {
  train::OptimizerConfig o;
  o.lr = 0.01;
  train::ScheduleConfig s;
  BOOST_TEST(train::learning_rate(o, s, 7, 500) == 0.01);
  s.kind = "step";  // Zhang: halve every 3 epochs
  BOOST_TEST(train::learning_rate(o, s, 0, 0) == 0.01);
  BOOST_TEST(train::learning_rate(o, s, 2, 0) == 0.01);
  BOOST_TEST(train::learning_rate(o, s, 3, 0) == 0.005);
  BOOST_TEST(train::learning_rate(o, s, 6, 0) == 0.0025);
  s.kind = "factor";
  BOOST_TEST(train::learning_rate(o, s, 2, 0) == 0.01 * 0.94 * 0.94, tolerance(1e-12));
  s.kind = "constant";
  s.warmup_steps = 4;
  BOOST_TEST(train::learning_rate(o, s, 0, 0) == 0.0025, tolerance(1e-12));
  BOOST_TEST(train::learning_rate(o, s, 0, 3) == 0.01, tolerance(1e-12));
  BOOST_TEST(train::learning_rate(o, s, 0, 4) == 0.01, tolerance(1e-12));
}

BOOST_AUTO_TEST_CASE(invalid_settings_are_refused_by_name) {
  train::OptimizerConfig o;
  train::ScheduleConfig s;
  o.kind = "rmsprop";
  BOOST_CHECK_EXCEPTION(train::validate(o, s), OptionError,
                        [](const OptionError& e) { return std::string(e.what()).find("--optimizer") == 0; });
  o.kind = "sgd";
  o.lr = -1;
  BOOST_CHECK_THROW(train::validate(o, s), OptionError);
  o.lr = 0.1;
  s.kind = "cosine";
  BOOST_CHECK_THROW(train::validate(o, s), OptionError);
  s.kind = "constant";
  o.embedding_update = "sparse";
  BOOST_CHECK_EXCEPTION(train::validate(o, s), OptionError,
                        [](const OptionError& e) { return std::string(e.what()).find("--embedding-update") == 0; });
}

// The backend options as recorded in config.json and checkpoints: every field survives JSON, a
// record without a field reads as its default, a bad value is refused naming its option; a
// resume compares them through algorithm_changes (threads and the other device's switches aside).
BOOST_AUTO_TEST_CASE(backend_options_records_and_changes) {
  using engine::BackendOptions;
  const BackendOptions changed{engine::Device::cuda,
                               engine::CpuBackend::reference,
                               engine::Precision::bf16,
                               7,
                               false,
                               32,
                               false,
                               engine::AlgorithmSearch::measure,
                               false};
  BOOST_TEST((engine::backend_options_from_json(engine::backend_options_json(changed)) == changed));
  BOOST_TEST((engine::backend_options_from_json(engine::backend_options_json({})) == BackendOptions{}));
  BOOST_TEST((engine::backend_options_from_json("{}") == BackendOptions{}));
  BOOST_TEST((engine::backend_options_from_json(R"({"winograd": false})") == BackendOptions{.winograd = false}));
  auto refused = [](const std::string& json, const std::string& option) {
    try {
      static_cast<void>(engine::backend_options_from_json(json));
    } catch (const InputError& e) {
      return std::string(e.what()).find(option) != std::string::npos;
    }
    return false;
  };
  BOOST_TEST(refused(R"({"device": "tpu"})", "--device must be auto, cpu or cuda"));
  BOOST_TEST(refused(R"({"cudnn_search": "fast"})", "--cudnn-search"));
  BOOST_TEST(refused(R"({"winograd_min_channels": 0})", "--winograd-min-channels"));
  BOOST_TEST(refused(R"({"threads": -1})", "--threads"));
  BOOST_TEST(refused("[1]", "expected a JSON object"));

  const BackendOptions cpu{.device = engine::Device::cpu}, gpu{.device = engine::Device::cuda};
  auto names = [](const BackendOptions& before, const BackendOptions& now) {
    std::string all;
    for (const auto& c : engine::algorithm_changes(before, now)) all += c.option + " " + c.before + "->" + c.now + ";";
    return all;
  };
  BOOST_TEST(names(cpu, cpu) == "");
  BOOST_TEST(names(cpu, {.device = engine::Device::cpu, .threads = 3}) == "");  // threads: not an algorithm
  BOOST_TEST(names(cpu, {.device = engine::Device::cpu, .winograd = false, .onehot_fusion = false}) ==
             "onehot-fusion on->off;winograd on->off;");
  BOOST_TEST(names(cpu, {.device = engine::Device::cpu, .winograd_min_channels = 32}) ==
             "winograd-min-channels 64->32;");
  BOOST_TEST(names(cpu, {.device = engine::Device::cpu, .cpu_backend = engine::CpuBackend::reference}) ==
             "backend onednn->reference;");
  BOOST_TEST(names(cpu, {.device = engine::Device::cpu, .precision = engine::Precision::fp32}) == "");  // tf32 = fp32
  BOOST_TEST(names(cpu, {.device = engine::Device::cpu, .precision = engine::Precision::bf16}) ==
             "precision tf32->bf16;");
  BOOST_TEST(names(cpu, {.device = engine::Device::cpu, .cudnn_search = engine::AlgorithmSearch::measure}) == "");
  BOOST_TEST(names(gpu, {.device = engine::Device::cuda, .precision = engine::Precision::fp32}) ==
             "precision tf32->fp32;");
  BOOST_TEST(names(gpu, {.device = engine::Device::cuda, .winograd = false}) == "");
  BOOST_TEST(names(gpu, {.device = engine::Device::cuda,
                         .cudnn_search = engine::AlgorithmSearch::measure,
                         .bf16_convolutions = false}) == "cudnn-search heuristic->measure;bf16-conv on->off;");
  BOOST_TEST(names(gpu, cpu) == "device cuda->cpu;");
}

BOOST_AUTO_TEST_CASE(sgd_momentum_weight_decay_and_clipping) {
  engine::ReferenceBackend<double> backend;
  engine::ParamStore<double> params;
  params.add("w", {2}, engine::Init::constant(1.0));
  params.finalize();
  params.initialize(1);
  train::OptimizerConfig config;
  config.momentum = 0.5;
  config.weight_decay = 0.1;
  config.clip_norm = 1.0;
  train::Optimizer<double> optimizer(config, params.trained_count());
  params.gradients()[0] = 3.0;  // norm 5 -> clipped to 1: (0.6, 0.8)
  params.gradients()[1] = 4.0;
  BOOST_TEST(optimizer.step(backend, params, 0.1) == 5.0);
  // g = clipped + 0.1 * w = (0.7, 0.9); v = g; w -= 0.1 v
  BOOST_TEST(params.values()[0] == 1.0 - 0.07, tolerance(1e-12));
  BOOST_TEST(params.values()[1] == 1.0 - 0.09, tolerance(1e-12));
  params.gradients()[0] = 0.0;
  params.gradients()[1] = 0.0;
  optimizer.step(backend, params, 0.1);  // v = 0.5 v + 0.1 w
  BOOST_TEST(params.values()[0] == 0.93 - 0.1 * (0.5 * 0.7 + 0.1 * 0.93), tolerance(1e-12));
  BOOST_TEST(optimizer.steps() == 2);
}

BOOST_AUTO_TEST_CASE(adam_first_step_moves_by_the_learning_rate) {
  engine::ReferenceBackend<double> backend;
  engine::ParamStore<double> params;
  params.add("w", {3}, engine::Init::constant(0.0));
  params.finalize();
  params.initialize(1);
  train::OptimizerConfig config;
  config.kind = "adam";
  train::Optimizer<double> optimizer(config, params.trained_count());
  params.gradients()[0] = 2.0, params.gradients()[1] = -0.5, params.gradients()[2] = 0.0;
  optimizer.step(backend, params, 0.01);
  // Bias-corrected: m_hat = g, v_hat = g^2, step = lr * g / (|g| + eps).
  BOOST_TEST(params.values()[0] == -0.01, tolerance(1e-6));
  BOOST_TEST(params.values()[1] == 0.01, tolerance(1e-6));
  BOOST_TEST(params.values()[2] == 0.0);
}

namespace {

// Values of (5) dense, (6, 3) table and (4) dense tensors after `steps.size()` steps whose table
// gradients touch the listed rows; with `row_sparse`, the table's gradient is row-sparse and only
// the listed rows are written, as backward does. Returns the values and each step's norm.
template <typename T>
std::pair<std::vector<T>, std::vector<double>> steps_on_table(engine::Backend<T>& backend,
                                                              train::OptimizerConfig config, bool row_sparse,
                                                              const std::vector<std::vector<std::int32_t>>& steps) {
  engine::ParamStore<T> params;
  params.add("a", {5}, engine::Init::normal(1));
  params.add("table", {6, 3}, engine::Init::normal(1),
             row_sparse ? engine::Gradient::row_sparse : engine::Gradient::dense);
  params.add("b", {4}, engine::Init::normal(1));
  params.finalize();
  params.initialize(7);
  BOOST_TEST_REQUIRE(params.row_sparse().size() == (row_sparse ? 1u : 0u));
  train::Optimizer<T> optimizer(config, params.trained_count());
  std::vector<double> norms;
  for (std::size_t step = 0; step < steps.size(); ++step) {
    T* grad = params.gradients().data();
    params.zero_gradients();
    for (engine::Index i = 0; i < params.trained_count(); ++i)
      if (i < 5 || i >= 23)
        grad[i] = static_cast<T>(0.1 * static_cast<double>(i) + 0.2 * static_cast<double>(step) - 1);
    for (const std::int32_t row : steps[step])
      for (engine::Index e = 0; e < 3; ++e)
        grad[5 + row * 3 + e] = static_cast<T>(0.3 * static_cast<double>(row - e) + 0.1 * static_cast<double>(step));
    if (row_sparse) params.row_sparse()[0].rows = steps[step];
    norms.push_back(optimizer.step(backend, params, 0.1));
  }
  const T* v = params.values().data();
  return {std::vector<T>(v, v + params.trained_count()), norms};
}

template <typename T>
void check_row_sparse_updates(engine::Backend<T>& backend, double close) {
  const std::vector<std::vector<std::int32_t>> steps{{1, 4}, {2, 4}};
  for (const std::string kind : {"sgd", "adam"})
    for (const double decay : {0.0, 0.01}) {
      train::OptimizerConfig config;
      config.kind = kind;
      config.weight_decay = decay;
      const std::string what = kind + " weight decay " + std::to_string(decay);
      const auto [start, unused] = steps_on_table(backend, config, false, {});
      const auto [dense, dense_norms] = steps_on_table(backend, config, false, steps);
      const auto [sparse, sparse_norms] = steps_on_table(backend, config, true, steps);
      config.embedding_update = "lazy";
      const auto [lazy, lazy_norms] = steps_on_table(backend, config, true, steps);
      // The default update of a row-sparse gradient is the dense one, bitwise; the norm reads the
      // listed rows only, summed in another order.
      BOOST_TEST((sparse == dense), what << ": row-sparse dense update");
      for (std::size_t s = 0; s < steps.size(); ++s) {
        BOOST_TEST(sparse_norms[s] == dense_norms[s], tolerance(1e-6));
        BOOST_TEST(lazy_norms[s] == dense_norms[s], tolerance(1e-6));
      }
      // Lazy: the other tensors as dense; rows never listed keep their start; row 1 (listed in
      // step 1 only) keeps its value after step 1; without weight decay, rows 2 and 4 (listed in the
      // last step) end as the dense update leaves them (a zero gradient moves nothing from a zero
      // state).
      const auto [after_first, unused2] = steps_on_table(backend, config, true, {steps[0]});
      for (std::size_t i = 0; i < dense.size(); ++i) {
        const auto row = static_cast<std::int32_t>((static_cast<std::int64_t>(i) - 5) / 3);
        if (i < 5 || i >= 23)
          BOOST_TEST(lazy[i] == dense[i], what << ": dense tensor element " << i);
        else if (row == 0 || row == 3 || row == 5)
          BOOST_TEST(lazy[i] == start[i], what << ": untouched row " << row);
        else if (row == 1)
          BOOST_TEST(lazy[i] == after_first[i], what << ": row 1 moved after its step");
        else if (decay == 0)
          BOOST_TEST(
              std::abs(static_cast<double>(lazy[i] - dense[i])) <= close * std::abs(static_cast<double>(dense[i])),
              what << ": row " << row);
      }
      // and the dense update moves what the lazy one leaves: row 1 after its step (momentum,
      // moments), the untouched rows with weight decay.
      BOOST_TEST(dense[5 + 3] != after_first[5 + 3], what << ": dense row 1");
      if (decay > 0) BOOST_TEST(dense[5] != start[5], what << ": dense row 0");
    }
}

}  // namespace

// Row-sparse gradients (an embedding table's): the optimizer's default update is the dense one,
// bitwise; --embedding-update lazy updates only the listed rows and their state.
BOOST_AUTO_TEST_CASE(row_sparse_dense_and_lazy_updates) {
  engine::ReferenceBackend<double> reference;
  check_row_sparse_updates(reference, 0.0);
  // oneDNN's backend updates listed rows with its own loop: the same arithmetic, to rounding.
  engine::DnnlBackend dnnl;
  check_row_sparse_updates(dnnl, 1e-6);
}

BOOST_AUTO_TEST_CASE(non_finite_gradient_is_reported) {
  engine::ReferenceBackend<double> backend;
  engine::ParamStore<double> params;
  params.add("w", {1}, engine::Init::constant(0.0));
  params.finalize();
  train::Optimizer<double> optimizer({}, params.trained_count());
  params.gradients()[0] = std::nan("");
  BOOST_CHECK_THROW(optimizer.step(backend, params, 0.1), Error);
  BOOST_TEST(params.values()[0] == 0.0);
  BOOST_TEST(optimizer.steps() == 0);
}

// What a training step queues without waiting for the device: the decision to skip a step whose
// gradient is not finite, and clipping, are taken from a sum of squares in the backend's memory.
BOOST_AUTO_TEST_CASE(queued_steps_skip_non_finite_gradients_and_clip) {
  BOOST_TEST(engine::step_factor(25.0, 0) == 1.0);
  BOOST_TEST(engine::step_factor(25.0, 10.0) == 1.0);
  BOOST_TEST(engine::step_factor(25.0, 1.0) == 0.2, tolerance(1e-15));
  BOOST_TEST(engine::step_factor(std::nan(""), 1.0) == 0.0);
  BOOST_TEST(engine::step_factor(INFINITY, 0) == 0.0);

  engine::ReferenceBackend<double> backend;
  engine::ParamStore<double> params;
  params.add("w", {2}, engine::Init::constant(1.0));
  params.finalize();
  params.initialize(1);
  train::OptimizerConfig config;
  config.kind = "adam";
  config.clip_norm = 1.0;
  train::Optimizer<double> optimizer(config, params.trained_count());
  double sum = -1;
  params.gradients()[0] = 1.0;
  params.gradients()[1] = INFINITY;
  optimizer.queue_step(backend, params, 0.1, &sum);
  BOOST_TEST(std::isinf(sum));
  BOOST_TEST(params.values()[0] == 1.0);  // skipped: nothing changed, the moments neither
  BOOST_TEST(optimizer.slot(0)[0] == 0.0);
  BOOST_TEST(optimizer.slot(1)[0] == 0.0);
  optimizer.skipped();
  BOOST_TEST(optimizer.steps() == 0);
  params.gradients()[0] = 3.0;  // norm 5, clipped to (0.6, 0.8): Adam's first step moves by lr
  params.gradients()[1] = 4.0;
  optimizer.queue_step(backend, params, 0.1, &sum);
  BOOST_TEST(sum == 25.0);
  BOOST_TEST(optimizer.steps() == 1);
  BOOST_TEST(optimizer.slot(0)[0] == 0.1 * 0.6, tolerance(1e-12));  // (1 - beta1) * clipped
  BOOST_TEST(params.values()[0] == 0.9, tolerance(1e-6));
  BOOST_TEST(params.values()[1] == 0.9, tolerance(1e-6));
}

// The loss, the correctly classified rows and a bad label, left in the backend's memory.
BOOST_AUTO_TEST_CASE(loss_statistics) {
  engine::ReferenceBackend<double> backend;
  const engine::Index n = 4, k = 3;
  std::vector<double> logits{0.5,  2.0,  2.0,   // tie: the first largest (1) is the prediction
                             1.0,  -1.0, 0.0,   //
                             0.0,  0.0,  3.0,   //
                             -2.0, 4.0,  1.0};  //
  std::vector<std::int32_t> labels{1, 0, 2, 0};
  std::vector<double> diff(n * k), want_diff(n * k);
  double stats[3] = {-1, -1, -1};
  backend.softmax_cross_entropy_stats(n, k, logits.data(), labels.data(), diff.data(), stats);
  const double want = backend.softmax_cross_entropy(n, k, logits.data(), labels.data(), want_diff.data());
  BOOST_TEST(stats[0] == want);
  BOOST_TEST(stats[1] == 3.0);
  BOOST_TEST(stats[2] == 0.0);
  BOOST_TEST(diff == want_diff);
  labels[1] = 2;  // now the tie at 2 is not a correct prediction
  labels[0] = 2;
  backend.softmax_cross_entropy_stats(n, k, logits.data(), labels.data(), diff.data(), stats);
  BOOST_TEST(stats[1] == 1.0);
  labels[2] = 3;  // out of range: reported, and the gradient makes the step a skipped one
  labels[3] = -1;
  backend.softmax_cross_entropy_stats(n, k, logits.data(), labels.data(), diff.data(), stats);
  BOOST_TEST(stats[2] == 3.0);
  BOOST_TEST(std::isnan(diff[2 * k]));
  labels[2] = 2;
  labels[3] = 0;
  logits[3 * k] = -INFINITY;  // the label's logit: an infinite loss with a finite softmax gradient
  backend.softmax_cross_entropy_stats(n, k, logits.data(), labels.data(), diff.data(), stats);
  BOOST_TEST(std::isinf(stats[0]));
  BOOST_TEST(stats[2] == 0.0);
  BOOST_TEST(std::isnan(diff[3 * k + 1]));
}

BOOST_AUTO_TEST_CASE(metrics_by_hand) {
  // 3 classes; true labels and predictions:
  //   class 0: 0 0 1   class 1: 1 1   class 2: 2 0 0
  train::Metrics m(3);
  for (auto [label, predicted] :
       std::vector<std::pair<int, int>>{{0, 0}, {0, 0}, {0, 1}, {1, 1}, {1, 1}, {2, 2}, {2, 0}, {2, 0}})
    m.add(label, predicted, 0.5);
  BOOST_TEST(m.samples() == 8);
  BOOST_TEST(m.accuracy() == 5.0 / 8);
  BOOST_TEST(m.mean_loss() == 0.5);
  BOOST_TEST(m.precision(0) == 0.5);  // predicted 0: 4, correct 2
  BOOST_TEST(m.recall(0) == 2.0 / 3);
  BOOST_TEST(m.precision(1) == 2.0 / 3);  // predicted 1: 3, correct 2
  BOOST_TEST(m.recall(1) == 1.0);
  BOOST_TEST(m.precision(2) == 1.0);
  BOOST_TEST(m.recall(2) == 1.0 / 3);
  BOOST_TEST(m.f1(2) == 0.5);
  BOOST_TEST(m.confusion(2, 0) == 2);
  BOOST_TEST(m.json({"a", "b", "c"}).find("\"confusion\":[[2,1,0],[0,2,0],[2,0,1]]") != std::string::npos);
  train::Metrics other(3);
  other.add(1, 1, 1.0);
  m.merge(other);
  BOOST_TEST(m.samples() == 9);
  BOOST_TEST(m.accuracy() == 6.0 / 9);
}

// oneDNN and the reference backend in float, full-size models. The logits of the same weights
// differ only by the backends' summation orders (3e-7 and 6e-7 measured on an AVX-512 CPU; the
// bound leaves room for other oneDNN kernels), while a tensor loaded into the wrong place gives 1.
BOOST_AUTO_TEST_CASE(checkpoints_move_between_backends) {
  engine::DnnlBackend dnnl;
  engine::ReferenceBackend<float> reference;
  testing::check_checkpoint_between(dnnl, reference, "vdcnn-9", "oneDNN -> reference", 1e-4);
  testing::check_checkpoint_between(reference, dnnl, "crepe-small", "reference -> oneDNN", 1e-4);
}

// A checkpoint records its data's content digests and its format version. One in the layout
// before format versions (version 1: no format_version, no digests) still loads; a newer version
// is refused, naming both versions.
BOOST_AUTO_TEST_CASE(checkpoint_format_versions) {
  engine::ReferenceBackend<float> backend;
  engine::ModelConfig config = testing::config_of("crepe-small");
  config.hyperparameters = {{"features", 16}, {"fc", 32}};
  train::OptimizerConfig adam;
  adam.kind = "adam";
  engine::Model<float> model(config, backend.memory());
  model.params().initialize(5);
  train::Optimizer<float> optimizer(adam, model.params().trained_count(), backend.memory());
  train::CheckpointInfo info = testing::checkpoint_info(config, adam.kind);
  info.train_content_sha256 = std::string(64, 'a');
  info.valid_content_sha256 = std::string(64, 'b');
  const std::string path =
      (std::filesystem::temp_directory_path() / ("textscale-format-" + std::to_string(getpid()) + ".h5")).string();
  train::save_checkpoint(path, model, &optimizer, info);
  const train::CheckpointInfo saved = train::read_checkpoint_info(path);
  BOOST_TEST(saved.format_version == train::kCheckpointFormatVersion);
  BOOST_TEST(saved.train_content_sha256 == info.train_content_sha256);
  BOOST_TEST(saved.valid_content_sha256 == info.valid_content_sha256);

  const auto edit = [&](const std::function<void(hid_t)>& change) {
    h5::Handle file(H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT));
    BOOST_REQUIRE(file.valid());
    change(file.get());
  };
  engine::Model<float> loaded(config, backend.memory());
  train::Optimizer<float> loaded_optimizer(adam, loaded.params().trained_count(), backend.memory());
  const auto loads = [&](const std::string& what) {
    loaded.params().initialize(6);
    train::load_checkpoint(path, loaded, &loaded_optimizer);
    BOOST_TEST(testing::to_host(loaded.params().values()) == testing::to_host(model.params().values()), what);
  };
  loads("version " + std::to_string(train::kCheckpointFormatVersion));
  // Version 2: the model attribute in the layout of versions 1 and 2 (every model's overrides at
  // its top level), checkpoint_version 1.
  edit([](hid_t file) {
    h5::write_attribute(file, "format_version", std::int64_t{2});
    h5::write_attribute(file, "checkpoint_version", std::int64_t{1});
    h5::write_attribute(file, "model",
                        std::string(R"({"alphabet":69,"classes":4,"dropout":0.5,"embedding":16,)"
                                    R"("fc":32,"features":16,"kmax":8,"length":1014,)"
                                    R"("name":"crepe-small","shortcut":false})"));
  });
  const train::CheckpointInfo two = train::read_checkpoint_info(path);
  BOOST_TEST(two.format_version == 2);
  BOOST_TEST(two.model.hyperparameters == model.config().hyperparameters);
  loads("version 2");
  // Version 1: the attributes of later versions removed.
  edit([](hid_t file) {
    for (const char* name : {"format_version", "train_content_sha256", "valid_content_sha256"})
      BOOST_REQUIRE(H5Adelete(file, name) >= 0);
  });
  const train::CheckpointInfo old = train::read_checkpoint_info(path);
  BOOST_TEST(old.format_version == 1);
  BOOST_TEST(old.train_content_sha256.empty());
  BOOST_TEST(old.valid_content_sha256.empty());
  loads("version 1");

  // A newer version than this build reads.
  edit([](hid_t file) { h5::write_attribute(file, "format_version", train::kCheckpointFormatVersion + 1); });
  const std::string newer = std::to_string(train::kCheckpointFormatVersion + 1);
  const std::string ours = std::to_string(train::kCheckpointFormatVersion);
  for (int attempt = 0; attempt < 2; ++attempt) {
    try {
      if (attempt == 0)
        (void)train::read_checkpoint_info(path);
      else
        train::load_checkpoint(path, loaded, &loaded_optimizer);
      BOOST_FAIL("a checkpoint of format version " << newer << " was read");
    } catch (const InputError& error) {
      const std::string message = error.what();
      BOOST_TEST_MESSAGE(message);
      BOOST_TEST(message.starts_with(path));
      BOOST_TEST(message.find("checkpoint format version " + newer + " is newer than this build reads (versions 1 to " +
                              ours + ")") != std::string::npos);
    }
  }
  std::filesystem::remove(path);
}

// The model attribute of format versions 1 and 2, as those versions wrote it (every model's
// overrides at the top level, features and fc 0 for the published values), builds the model it
// described: the same parameter count and layers as the same model given by its hyperparameters.
BOOST_AUTO_TEST_CASE(model_attribute_of_earlier_versions) {
  struct Case {
    const char* json;
    const char* name;
    nlohmann::json hyperparameters;
    engine::Index parameters;  // 0: not checked here (test_models checks the published counts)
  };
  const Case cases[] = {
      {R"({"alphabet":69,"classes":4,"dropout":0.0,"embedding":16,"fc":64,"features":32,"kmax":8,"length":1014,)"
       R"("name":"crepe-small","shortcut":false})",
       "crepe-small",
       {{"features", 32}, {"fc", 64}, {"dropout", 0.0}},
       0},
      {R"({"alphabet":69,"classes":4,"dropout":0.5,"embedding":16,"fc":0,"features":0,"kmax":8,"length":1014,)"
       R"("name":"crepe-small","shortcut":false})",
       "crepe-small", nlohmann::json::object(), 11337988},
      {R"({"alphabet":69,"classes":4,"dropout":0.5,"embedding":16,"fc":32,"features":8,"kmax":8,"length":1014,)"
       R"("name":"vdcnn-9","shortcut":true})",
       "vdcnn-9",
       {{"features", 8}, {"fc", 32}, {"shortcut", true}},
       0},
      {R"({"alphabet":69,"classes":4,"dropout":0.5,"embedding":16,"fc":0,"features":0,"kmax":8,"length":1014,)"
       R"("name":"vdcnn-29","shortcut":false})",
       "vdcnn-29", nlohmann::json::object(), 16639908},
  };
  for (const Case& c : cases) {
    const engine::ModelConfig read = train::model_config_from_json(c.json);
    engine::ModelConfig given = testing::config_of(c.name);
    given.hyperparameters = c.hyperparameters;
    engine::Model<float> from_checkpoint(read), from_hyperparameters(given);
    BOOST_TEST(read.name == c.name);
    BOOST_TEST(read.hyperparameters == from_hyperparameters.config().hyperparameters, c.json);
    BOOST_TEST(from_checkpoint.summary() == from_hyperparameters.summary(), c.json);
    BOOST_TEST(from_checkpoint.params().trained_count() == from_hyperparameters.params().trained_count());
    if (c.parameters) BOOST_TEST(from_checkpoint.params().trained_count() == c.parameters, c.json);
    // Written again, in this version's layout, it reads back the same.
    const std::string again = train::model_config_json(from_checkpoint.config());
    BOOST_TEST(again.find("\"hyperparameters\"") != std::string::npos);
    BOOST_TEST(nlohmann::json(train::model_config_from_json(again)) == nlohmann::json(read));
  }
}

// Training steps of the published models on the GPU against the oneDNN CPU backend: the same
// initial weights, the same batches (dropout masks are keyed by sample, so they agree), three
// SGD steps with momentum, then every weight, batch-norm statistic and momentum buffer compared.
// In fp32 the two differ only by summation order; |gpu - cpu| <= 2e-3 * (|cpu| + rms(cpu)) holds
// with a wide margin after three steps. TF32 is checked with a looser bound (1e-2).
#define BOOST_TEST_MODULE cuda_training
#define BOOST_TEST_NO_MAIN
#define BOOST_TEST_ALTERNATIVE_INIT_API
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <random>
#include <vector>

#include "../unit/expect_close.h"
#include "gpu_main.h"
#include "textscale/cuda/cuda_backend.h"
#include "textscale/engine/cpu/dnnl_backend.h"
#include "textscale/engine/model.h"
#include "textscale/train/optimizer.h"

using namespace textscale;
using namespace textscale::engine;

int main(int argc, char* argv[]) {
  return gpu_test_main(argc, argv);
}

namespace {

struct Run {
  std::unique_ptr<Backend<float>> backend;
  Model<float> model;
  train::Optimizer<float> optimizer;
  Run(std::unique_ptr<Backend<float>> b, const ModelConfig& config, const train::OptimizerConfig& opt)
      : backend(std::move(b)),
        model(config, backend->memory()),
        optimizer(opt, model.params().trained_count(), backend->memory()) {
    model.params().initialize(3);
  }
  // One step on a host batch; returns the loss.
  double step(Index n, const std::vector<std::uint8_t>& codes, const std::vector<std::int32_t>& labels,
              std::int64_t step_index) {
    const Memory& memory = backend->memory();
    Buffer<std::uint8_t> c(codes.size(), memory);
    Buffer<std::int32_t> l(labels.size(), memory);
    Buffer<float> diff(static_cast<std::size_t>(n * model.config().classes), memory);
    memory.copy_to_device(c.data(), codes.data(), codes.size());
    memory.copy_to_device(l.data(), labels.data(), labels.size() * sizeof(std::int32_t));
    Context<float> ctx{backend.get(), nullptr, true, 11, step_index};
    const float* logits = model.forward(ctx, n, c.data());
    const double loss = backend->softmax_cross_entropy(n, model.config().classes, logits, l.data(), diff.data());
    model.backward(ctx, n, c.data(), diff.data());
    optimizer.step(*backend, model.params(), 0.01);
    return loss;
  }
};

std::vector<float> host_copy(const Buffer<float>& b) {
  std::vector<float> out(b.size());
  b.memory().copy_to_host(out.data(), b.data(), out.size() * sizeof(float));
  return out;
}

void expect_close(const std::string& what, const std::vector<float>& got, const std::vector<float>& want,
                  double tolerance) {
  textscale::testing::expect_close(what, got, want, tolerance, "gpu", "cpu");
}

void check_model(const std::string& name, cuda::Precision precision, double tolerance) {
  ModelConfig config;
  config.name = name;
  config.classes = 4;
  train::OptimizerConfig opt;
  opt.momentum = 0.9;
  opt.weight_decay = 1e-4;
  Run cpu(std::make_unique<DnnlBackend>(), config, opt);
  Run gpu(cuda::make_cuda_backend({0, precision}), config, opt);
  const Index n = 8;
  cpu.model.reserve(n);
  gpu.model.reserve(n);
  std::mt19937_64 rng(21);
  for (std::int64_t s = 0; s < 3; ++s) {
    std::vector<std::uint8_t> codes(static_cast<std::size_t>(n * config.length));
    for (auto& c : codes) c = static_cast<std::uint8_t>(rng() % 70);
    std::vector<std::int32_t> labels(static_cast<std::size_t>(n));
    for (auto& l : labels) l = static_cast<std::int32_t>(rng() % 4);
    const double want = cpu.step(n, codes, labels, s), got = gpu.step(n, codes, labels, s);
    BOOST_CHECK_CLOSE(got, want, 100 * tolerance);
  }
  const std::string label = name + " " + cuda::to_string(precision);
  expect_close(label + " weights", host_copy(gpu.model.params().values()), host_copy(cpu.model.params().values()),
               tolerance);
  if (cpu.model.params().state().size() > 0)
    expect_close(label + " batch-norm statistics", host_copy(gpu.model.params().state()),
                 host_copy(cpu.model.params().state()), tolerance);
  expect_close(label + " momentum", host_copy(gpu.optimizer.slot(0)), host_copy(cpu.optimizer.slot(0)), 10 * tolerance);
}

}  // namespace

BOOST_AUTO_TEST_CASE(crepe_small_fp32) {
  check_model("crepe-small", cuda::Precision::fp32, 2e-3);
}
BOOST_AUTO_TEST_CASE(vdcnn_9_fp32) {
  check_model("vdcnn-9", cuda::Precision::fp32, 2e-3);
}
BOOST_AUTO_TEST_CASE(crepe_small_tf32) {
  check_model("crepe-small", cuda::Precision::tf32, 1e-2);
}
BOOST_AUTO_TEST_CASE(vdcnn_9_tf32) {
  check_model("vdcnn-9", cuda::Precision::tf32, 1e-2);
}

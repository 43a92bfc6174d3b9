// Times the CPU backend's Winograd F(4, 3) convolution (src/engine/cpu/winograd.h) against
// oneDNN's direct convolution on VDCNN's and Crepe's shapes, forward, backward-data and
// backward-weights, with the OpenMP threads of the environment. Prints a markdown table:
// milliseconds per call and dense GFLOP/s (2 * N * T_out * C_in * C_out * K for both algorithms).
//
//   OMP_NUM_THREADS=2 build/bench/winograd_conv [iterations] [batch]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <vector>

#include "textscale/engine/cpu/dnnl_backend.h"
#include "winograd.h"

using namespace textscale::engine;

namespace {

double time_ms(const std::function<void()>& run, int iterations) {
  run();
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < iterations; ++i) run();
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count() / iterations;
}

}  // namespace

int main(int argc, char** argv) {
  const int iterations = argc > 1 ? std::atoi(argv[1]) : 5;
  const Index batch = argc > 2 ? std::atoll(argv[2]) : 128;
  struct Case {
    const char* name;
    Index t, c_in, c_out, kernel, pad;
  };
  const Case cases[] = {
      {"VDCNN stage 1", 1014, 64, 64, 3, 1},  {"VDCNN stage 1->2", 507, 64, 128, 3, 1},
      {"VDCNN stage 2", 507, 128, 128, 3, 1}, {"VDCNN stage 3", 254, 256, 256, 3, 1},
      {"VDCNN stage 4", 127, 512, 512, 3, 1}, {"Crepe conv2", 336, 256, 256, 7, 0},
      {"Crepe conv3-6", 110, 256, 256, 3, 0}, {"VDCNN first", 1014, 16, 64, 3, 1},
  };
  std::printf("batch %lld, %d iterations, threads from OMP_NUM_THREADS\n\n", static_cast<long long>(batch), iterations);
  std::printf(
      "| shape | direction | oneDNN direct ms | Winograd ms | speed-up | direct GFLOP/s | Winograd dense GFLOP/s |\n");
  std::printf("|---|---|---:|---:|---:|---:|---:|\n");
  // The backend's own convolutions run direct (--winograd off); Winograd is called explicitly.
  DnnlBackend backend(BackendOptions{.winograd = false});
  for (const Case& c : cases) {
    const Conv1dShape s{batch, c.t, c.c_in, c.c_out, c.kernel, 1, c.pad};
    std::vector<float> src(static_cast<std::size_t>(s.src().count()), 0.5f),
        dst(static_cast<std::size_t>(s.dst().count()), 0.25f);
    std::vector<float> weights(static_cast<std::size_t>(s.weights_count()), 0.01f), transformed;
    const double gflop = 2.0 * static_cast<double>(s.n * s.t_out() * s.c_in * s.c_out * s.kernel) / 1e9;
    OpStatePtr forward_state, data_state;
    const double direct_forward = time_ms(
        [&] { backend.conv1d_forward(forward_state, s, src.data(), weights.data(), nullptr, dst.data(), true); },
        iterations);
    const double winograd_forward = time_ms(
        [&] {
          cpu::winograd_weights(s, cpu::WinogradPass::forward, weights.data(), transformed);
          cpu::winograd_conv1d(s.n, s.t_in, s.c_in, s.t_out(), s.c_out, s.kernel, s.pad, src.data(), transformed.data(),
                               nullptr, dst.data(), true);
        },
        iterations);
    const double direct_data = time_ms(
        [&] { backend.conv1d_backward_data(data_state, s, dst.data(), weights.data(), src.data()); }, iterations);
    const double winograd_data = time_ms(
        [&] {
          cpu::winograd_weights(s, cpu::WinogradPass::backward_data, weights.data(), transformed);
          cpu::winograd_conv1d(s.n, s.t_out(), s.c_out, s.t_in, s.c_in, s.kernel, s.kernel - 1 - s.pad, dst.data(),
                               transformed.data(), nullptr, src.data(), false);
        },
        iterations);
    std::vector<float> diff_weights(weights.size());
    OpStatePtr weights_state;
    const double direct_weights = time_ms(
        [&] {
          backend.conv1d_backward_weights(weights_state, s, src.data(), dst.data(), diff_weights.data(), nullptr);
        },
        iterations);
    const double winograd_weights = time_ms(
        [&] { cpu::winograd_conv1d_backward_weights(s, src.data(), dst.data(), diff_weights.data()); }, iterations);
    const auto row = [&](const char* direction, double direct, double winograd) {
      std::printf("| %s, %lld->%lld, k%lld, T %lld | %s | %.2f | %.2f | %.2fx | %.0f | %.0f |\n", c.name,
                  static_cast<long long>(c.c_in), static_cast<long long>(c.c_out), static_cast<long long>(c.kernel),
                  static_cast<long long>(c.t), direction, direct, winograd, direct / winograd, gflop / direct * 1e3,
                  gflop / winograd * 1e3);
    };
    row("forward", direct_forward, winograd_forward);
    row("backward data", direct_data, winograd_data);
    row("backward weights", direct_weights, winograd_weights);
  }
  return 0;
}

// Times the CPU backend's recurrent operation (DnnlBackend::rnn_forward / rnn_backward, a
// bidirectional LSTM over (N, T, C_in)): inference forward, training forward, and a training
// forward followed by backward (with the input gradient), with OpenMP's threads (OMP_NUM_THREADS
// or --threads). Each is called --warmup times untimed, then --iterations times; prints one JSON
// line: per call the median and fastest wall-clock milliseconds, the median CPU milliseconds of the
// process (all threads: what the call costs whatever else runs on the machine), and GFLOP/s at the
// median, for each of inference, training_forward and forward_backward:
//   {"batch", "t", "c_in", "hidden", "directions", "threads", "lengths", "precision", "forward_gflop", "cpu_isa",
//    "inference_ms", "inference_fastest_ms", "inference_cpu_ms", "inference_gflops", ...}
// The FLOPs are the GEMMs': forward 2 N T D 4H (C_in + H); backward twice that (the gradients of
// the inputs and states, and of the weights). Lengths: every row T (`full`, as PyTorch's nn.LSTM
// over a padded batch computes), or `varied` (row i: T - (i mod T/2)), which costs the same here.
//
//   build/bench/rnn_speed [--batch 32] [--t 300] [--c-in 200] [--hidden 100] [--unidirectional]
//                         [--threads 2] [--iterations 5] [--warmup 2] [--lengths full|varied]
//                         [--precision fp32|bf16]
// bench/rnn_speed.sh runs it next to PyTorch's nn.LSTM (bench/rnn_speed.py).
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "textscale/engine/cpu/dnnl_backend.h"

using namespace textscale::engine;

namespace {

double process_cpu_seconds() {
  timespec now{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &now);
  return static_cast<double>(now.tv_sec) + 1e-9 * static_cast<double>(now.tv_nsec);
}

// Milliseconds per call of `iterations` calls after `warmup` untimed ones: the median and the
// fastest wall-clock time, and the median CPU time of the process (all threads).
struct Timing {
  double median = 0, fastest = 0, cpu = 0;
};
Timing time_calls(const std::function<void()>& run, int warmup, int iterations) {
  for (int i = 0; i < warmup; ++i) run();
  std::vector<double> wall, cpu;
  for (int i = 0; i < iterations; ++i) {
    const double cpu_start = process_cpu_seconds();
    const auto start = std::chrono::steady_clock::now();
    run();
    wall.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
    cpu.push_back(1e3 * (process_cpu_seconds() - cpu_start));
  }
  std::sort(wall.begin(), wall.end());
  std::sort(cpu.begin(), cpu.end());
  return {wall[wall.size() / 2], wall.front(), cpu[cpu.size() / 2]};
}

std::vector<float> uniform(std::size_t count, float bound, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-bound, bound);
  std::vector<float> values(count);
  for (auto& x : values) x = u(rng);
  return values;
}

}  // namespace

int main(int argc, char** argv) {
  RnnShape s{RnnCell::lstm, 32, 300, 200, 100, true};
  int threads = 2, iterations = 5, warmup = 2;
  std::string lengths_kind = "full";
  Precision precision = Precision::fp32;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", arg.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (arg == "--batch") {
      s.n = std::stoll(value());
    } else if (arg == "--t") {
      s.t = std::stoll(value());
    } else if (arg == "--c-in") {
      s.c_in = std::stoll(value());
    } else if (arg == "--hidden") {
      s.hidden = std::stoll(value());
    } else if (arg == "--unidirectional") {
      s.bidirectional = false;
    } else if (arg == "--threads") {
      threads = std::stoi(value());
    } else if (arg == "--iterations") {
      iterations = std::stoi(value());
    } else if (arg == "--warmup") {
      warmup = std::stoi(value());
    } else if (arg == "--lengths") {
      lengths_kind = value();
    } else if (arg == "--precision") {
      precision = parse_precision(value());
    } else {
      std::fprintf(stderr, "unknown option %s\n", arg.c_str());
      return 2;
    }
  }
  DnnlBackend backend(BackendOptions{.precision = precision, .threads = threads});
  // PyTorch's initialisation: uniform in +-1/sqrt(H).
  const float bound = 1.0f / std::sqrt(static_cast<float>(s.hidden));
  const auto src = uniform(static_cast<std::size_t>(s.src().count()), 1.0f, 1),
             weights = uniform(static_cast<std::size_t>(s.weights_count()), bound, 2),
             bias = uniform(static_cast<std::size_t>(s.bias_count()), bound, 3),
             diff_dst = uniform(static_cast<std::size_t>(s.dst().count()), 1.0f, 4);
  std::vector<std::int32_t> lengths(static_cast<std::size_t>(s.n), static_cast<std::int32_t>(s.t));
  if (lengths_kind == "varied")
    for (Index i = 0; i < s.n; ++i) lengths[static_cast<std::size_t>(i)] -= static_cast<std::int32_t>(i % (s.t / 2));
  std::vector<float> dst(static_cast<std::size_t>(s.dst().count())), diff_src(src.size()), diff_weights(weights.size()),
      diff_bias(bias.size());
  OpStatePtr inference_state, training_state;
  const Timing inference = time_calls(
      [&] {
        backend.rnn_forward(inference_state, s, src.data(), lengths.data(), weights.data(), bias.data(), dst.data(),
                            false);
      },
      warmup, iterations);
  auto forward = [&] {
    backend.rnn_forward(training_state, s, src.data(), lengths.data(), weights.data(), bias.data(), dst.data(), true);
  };
  const Timing training_forward = time_calls(forward, warmup, iterations);
  const Timing forward_backward = time_calls(
      [&] {
        forward();
        backend.rnn_backward(training_state, s, src.data(), lengths.data(), weights.data(), dst.data(), diff_dst.data(),
                             diff_src.data(), diff_weights.data(), diff_bias.data());
      },
      warmup, iterations);
  const double gflop = 2.0 * static_cast<double>(s.n * s.t * s.directions() * 4 * s.hidden * (s.c_in + s.hidden)) / 1e9;
  std::printf(
      "{\"batch\": %lld, \"t\": %lld, \"c_in\": %lld, \"hidden\": %lld, \"directions\": %lld, \"threads\": %d, "
      "\"lengths\": \"%s\", \"precision\": \"%s\", \"forward_gflop\": %.3f, \"cpu_isa\": \"%s\"",
      static_cast<long long>(s.n), static_cast<long long>(s.t), static_cast<long long>(s.c_in),
      static_cast<long long>(s.hidden), static_cast<long long>(s.directions()), DnnlBackend::threads(),
      lengths_kind.c_str(), to_string(precision).c_str(), gflop, DnnlBackend::cpu_isa().c_str());
  for (const auto& [name, timing, flops] :
       {std::tuple{"inference", inference, gflop}, std::tuple{"training_forward", training_forward, gflop},
        std::tuple{"forward_backward", forward_backward, 3 * gflop}})
    std::printf(", \"%s_ms\": %.2f, \"%s_fastest_ms\": %.2f, \"%s_cpu_ms\": %.2f, \"%s_gflops\": %.1f", name,
                timing.median, name, timing.fastest, name, timing.cpu, name, flops / timing.median * 1e3);
  std::printf("}\n");
}

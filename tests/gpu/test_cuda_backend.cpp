// The backend conformance suite (tests/conformance) on the CUDA backend's configurations: fp32,
// TF32 and bf16, each against the reference backend in double (bf16 also against the reference
// that rounds where the GPU rounds), and the cases only a GPU backend has: step results that stay
// in device memory, a convolution's backward in one operation, bitwise repeats, the bf16
// convolution switch. Without a visible GPU the program exits 77 (skipped).
#define BOOST_TEST_MODULE cuda_backend
#define BOOST_TEST_NO_MAIN
#define BOOST_TEST_ALTERNATIVE_INIT_API
#include <algorithm>
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <cstdint>
#include <string>
#include <tuple>
#include <vector>

#include "../conformance/conformance.h"
#include "gpu_main.h"
#include "textscale/common/error.h"
#include "textscale/cuda/cuda_backend.h"

using namespace textscale;
using namespace textscale::engine;
using namespace textscale::testing::conformance;

namespace {

// The CUDA backend on GPU 0 with `precision` and, in bf16, its convolutions in bf16 or TF32.
std::unique_ptr<Backend<float>> make_cuda(cuda::Precision precision, bool bf16_convolutions = true) {
  return cuda::make_cuda_backend({0, precision, cuda::AlgorithmSearch::heuristic, bf16_convolutions});
}

// fp32: 1e-4, the oneDNN backend's bound; TF32 products (10-bit mantissas, fp32 sums): 2e-3.
// bf16 products (7-bit mantissas, fp32 sums): what bf16 costs does not depend on the kernels, so
// the oneDNN bf16 configuration's derivation holds (test_backend_conformance.cpp: 2^-8/sqrt(3)
// of the RMS per element, the largest of 10^6 elements about 5 standard deviations out, measured
// up to 1.5e-2 on convolution_long_reductions); the GPU also rounds the convolutions' results to
// bf16 (2^-9 of each): bound 3e-2. Against the bf16-rounding reference that rounds where the GPU
// rounds (bf16_reference.h with RoundResults) only the fp32 sums differ before a result is
// rounded: up to 1e-4 of it, which may move it across a rounding boundary to the next bf16 number,
// 2^-7 of it at most (round to nearest even on both sides: the backend's conversions, and cuBLAS's
// in the dense layers): bound 2^-7 + 1e-4 < 8e-3. The unfused one-hot weight gradient in bf16
// sums bf16-rounded gradients (2^-9 each) exactly selected: 1.5e-2 holds with a wide margin.
// Batch norm's backward data: 1e-3 (its kernel works in double from fp32 inputs and the saved
// fp32 statistics). The loss and the sum of squares are summed in double: 1e-8 and 1e-11 relative.
constexpr double kFp32 = 1e-4, kTf32 = 2e-3;

std::vector<BackendUnderTest> configurations() {
  const std::map<Need, std::string> lacks = {
      {Need::thread_count, "a GPU has no thread count (runs_repeat_bitwise checks determinism)"}};
  const Tolerances gpu{.products = kFp32, .batch_norm_backward_data = 1e-3, .loss = 1e-8, .sum_squares = 1e-11};
  Tolerances tf32 = gpu, bf16 = gpu;
  tf32.products = tf32.onehot_gradient = kTf32;
  bf16.products = 3e-2;
  bf16.emulated = 8e-3;
  bf16.onehot_gradient = 1.5e-2;
  return {BackendUnderTest{.name = "cuda_fp32",
                           .make = [] { return make_cuda(cuda::Precision::fp32); },
                           .tolerance = gpu,
                           .conv_results = ConvResults::fp32,
                           .lacks = lacks},
          BackendUnderTest{.name = "cuda_tf32",
                           .make = [] { return make_cuda(cuda::Precision::tf32); },
                           .tolerance = tf32,
                           .conv_results = ConvResults::fp32,
                           .lacks = lacks},
          BackendUnderTest{.name = "cuda_bf16",
                           .make = [] { return make_cuda(cuda::Precision::bf16); },
                           .tolerance = bf16,
                           .emulation = Emulation::bf16_operands_and_results,
                           .conv_results = ConvResults::bf16,
                           .lacks = lacks}};
}

bool init() {
  register_suites(configurations());
  return true;
}

}  // namespace

int main(int argc, char* argv[]) {
  return gpu_test_main(argc, argv, &init);
}

// The GPU-only cases below run in each CUDA configuration's suite.

// A convolution layer's backward as one operation (Backend::conv1d_backward): in bf16 the CUDA
// backend converts the (ReLU-masked) output gradient once for both products; the results must be
// the bits of the two separate calls (the base class's conv1d_backward), and the reference's.
// Each case runs on call sites that have run before, with other data and another batch size.
TS_CONFORMANCE_CASE(convolution_backward_in_one_operation) {
  for (const auto& [shape, bias, relu] : {std::tuple{Conv1dShape{4, 50, 16, 32, 7, 1, 0}, true, true},   // Crepe-like
                                          std::tuple{Conv1dShape{3, 33, 8, 16, 3, 1, 1}, false, false},  // VDCNN-like
                                          std::tuple{Conv1dShape{2, 20, 256, 512, 3, 1, 1}, true, false},
                                          // 35,200 output rows: enough rows per chunk of the bias gradient's column
                                          // sums (256, in 137 chunks) for the rows nvcc unrolls, masked in bf16
                                          std::tuple{Conv1dShape{32, 1100, 8, 16, 3, 1, 1}, true, true}})
    for (const bool data : {true, false}) {
      State ws, ds;
      std::uint64_t seed = 20;
      for (const Index n : {shape.n, shape.n - 1, shape.n}) {
        Conv1dShape s = shape;
        s.n = std::max<Index>(n, 1);
        const std::string name = describe(s) + (relu ? " relu" : "") + (data ? "" : " (no data gradient)");
        auto src = h.random(s.src().count(), ++seed), w = h.random(s.weights_count(), ++seed, 0.1),
             diff_dst = h.random(s.dst().count(), ++seed);
        // A ReLU's output: exact zeros (some negative) where the gradient must not pass.
        auto relu_dst = h.random(s.dst().count(), ++seed);
        std::vector<float> out(relu_dst.ref.begin(), relu_dst.ref.end());
        for (std::size_t i = 0; i < out.size(); ++i)
          if (out[i] < 0) out[i] = i % 3 ? 0.0f : -0.0f;
        h.set(relu_dst, out);
        auto masked = h.output(s.dst().count());
        auto dw = h.output(s.weights_count()), db = h.output(s.c_out), dx = h.output(s.src().count());
        auto dw2 = h.output(s.weights_count()), db2 = h.output(s.c_out), dx2 = h.output(s.src().count());
        h.run([&](auto& b, auto at) {
          b.conv1d_backward(at(ws), at(ds), s, at(src), relu ? at(relu_dst) : nullptr, at(diff_dst), at(masked), at(w),
                            at(dw), bias ? at(db) : nullptr, data ? at(dx) : nullptr);
        });
        h.backend().Backend<float>::conv1d_backward(ws.under_test, ds.under_test, s, src.dev.data(),
                                                    relu ? relu_dst.dev.data() : nullptr, diff_dst.dev.data(),
                                                    masked.dev.data(), w.dev.data(), dw2.dev.data(),
                                                    bias ? db2.dev.data() : nullptr, data ? dx2.dev.data() : nullptr);
        BOOST_TEST((h.download(dw) == h.download(dw2)), name << ": weights differ from the separate calls");
        h.expect_conv(name + " backward weights", dw, s, false);
        if (bias) {
          BOOST_TEST((h.download(db) == h.download(db2)), name << ": bias differs from the separate calls");
          h.expect(name + " backward bias", db);
        }
        if (data) {
          BOOST_TEST((h.download(dx) == h.download(dx2)), name << ": data differs from the separate calls");
          h.expect_conv(name + " backward data", dx, s, false);
        }
      }
    }
}

// What a training step leaves in device memory instead of waiting for the device: the loss
// statistics, sums of squares, the step factor, and optimizer steps that read it.
TS_CONFORMANCE_CASE(step_results_stay_on_the_device) {
  for (const Index classes : {Index{4}, Index{45}}) {  // one lane a class, and several classes a lane
    const Index n = 70;                                // more rows than the finishing warp has lanes
    BOOST_TEST_CONTEXT("classes " << classes) {
      auto logits = h.random(n * classes, 110, 3.0);
      std::vector<std::int32_t> labels(static_cast<std::size_t>(n));
      for (Index i = 0; i < n; ++i) labels[static_cast<std::size_t>(i)] = static_cast<std::int32_t>((i * 5) % classes);
      // Ties for the largest logit in rows 0-5, at the label and at another class: the label first
      // in rows 1, 3 and 5 only (a correct prediction), and with 45 classes rows 4 and 5 tie
      // within one lane (classes 8 and 40, 2 and 34).
      const bool wide = classes > 32;
      const std::pair<Index, Index> ties[6] = {{classes - 1, 0},
                                               {0, classes - 1},
                                               {2, 1},
                                               {1, 2},
                                               {wide ? 40 : 3, wide ? 8 : 0},
                                               {wide ? 2 : 0, wide ? 34 : 3}};
      std::vector<float> host(logits.ref.begin(), logits.ref.end());
      for (Index i = 0; i < 6; ++i) {
        const auto [label, other] = ties[i];
        labels[static_cast<std::size_t>(i)] = static_cast<std::int32_t>(label);
        host[static_cast<std::size_t>(i * classes + label)] = 20.0f;
        host[static_cast<std::size_t>(i * classes + other)] = 20.0f;
      }
      h.set(logits, host);
      auto dev_labels = h.data(labels);
      auto diff = h.output(n * classes);
      Buffer<double> stats(3, h.memory());
      h.backend().softmax_cross_entropy_stats(n, classes, logits.dev.data(), dev_labels.dev.data(), diff.dev.data(),
                                              stats.data());
      double got[3] = {}, want[3] = {};
      h.memory().copy_to_host(got, stats.data(), sizeof got);
      h.reference().softmax_cross_entropy_stats(n, classes, logits.ref.data(), labels.data(), diff.ref.data(), want);
      BOOST_CHECK_CLOSE(got[0], want[0], 1e-6);
      BOOST_TEST(got[1] == want[1]);  // the first largest logit, as std::max_element
      BOOST_TEST(got[2] == 0.0);
      h.expect("softmax cross-entropy gradient", diff);
      for (Index i = 0; i < 6; ++i) {  // each tie on its own: correct exactly when the label comes first
        h.backend().softmax_cross_entropy_stats(1, classes, logits.dev.data() + i * classes, dev_labels.dev.data() + i,
                                                nullptr, stats.data());
        h.memory().copy_to_host(got, stats.data(), sizeof got);
        BOOST_TEST(got[1] == (i % 2 == 1 ? 1.0 : 0.0), "tie in row " << i);
      }
      // Bad labels: the first is reported and the rows' gradients are NaN.
      labels[33] = -1;
      labels[12] = static_cast<std::int32_t>(classes);
      auto bad = h.data(labels);
      h.backend().softmax_cross_entropy_stats(n, classes, logits.dev.data(), bad.dev.data(), diff.dev.data(),
                                              stats.data());
      h.memory().copy_to_host(got, stats.data(), sizeof got);
      BOOST_TEST(got[2] == 13.0);
      BOOST_TEST(std::isnan(got[0]));
      const auto diffs = h.download(diff);
      BOOST_TEST(std::isnan(diffs[static_cast<std::size_t>(12 * classes)]));
      BOOST_TEST(std::isnan(diffs[static_cast<std::size_t>(33 * classes + classes - 1)]));
      BOOST_TEST(std::isfinite(diffs[static_cast<std::size_t>(11 * classes)]));
      // The label's logit at minus infinity: an infinite loss, a NaN row, the others intact.
      labels[33] = 0;
      labels[12] = 0;
      auto good = h.data(labels);
      host[static_cast<std::size_t>(40 * classes + labels[40])] = -INFINITY;
      h.memory().copy_to_device(logits.dev.data(), host.data(), host.size() * sizeof(float));
      h.backend().softmax_cross_entropy_stats(n, classes, logits.dev.data(), good.dev.data(), diff.dev.data(),
                                              stats.data());
      h.memory().copy_to_host(got, stats.data(), sizeof got);
      BOOST_TEST(std::isinf(got[0]));
      BOOST_TEST(got[2] == 0.0);
      const auto inf_diffs = h.download(diff);
      BOOST_TEST(std::isnan(inf_diffs[static_cast<std::size_t>(40 * classes + 1)]));
      BOOST_TEST(std::isfinite(inf_diffs[static_cast<std::size_t>(41 * classes + 1)]));
    }
  }

  // Sums of squares into device memory, the step factor from them, and steps that read it.
  const Index count = 3000017;  // several elements for each thread of the sum of squares
  auto grad = h.random(count, 111), param = h.random(count, 112), velocity = h.random(count, 113, 0.1);
  Buffer<double> sums(5, h.memory());
  const std::vector<double> nans(5, std::nan(""));
  h.memory().copy_to_device(sums.data(), nans.data(), 5 * sizeof(double));  // written, not left as it was
  h.backend().sum_squares_to(count, grad.dev.data(), sums.data());
  h.backend().sum_squares_to(0, grad.dev.data(), sums.data() + 1);
  const double host_sums[3] = {std::nan(""), INFINITY, 4.0};
  h.memory().copy_to_device(sums.data() + 2, host_sums, sizeof host_sums);
  double got_sums[5] = {};
  h.memory().copy_to_host(got_sums, sums.data(), sizeof got_sums);
  BOOST_CHECK_CLOSE(got_sums[0], h.reference().sum_squares(count, grad.ref.data()), 1e-9);
  BOOST_TEST(got_sums[1] == 0.0);
  Buffer<float> factors(6, h.memory());
  h.backend().step_factor(sums.data() + 2, 1.0, factors.data());      // NaN: skip
  h.backend().step_factor(sums.data() + 3, 0.0, factors.data() + 1);  // infinite: skip
  h.backend().step_factor(sums.data() + 4, 0.5, factors.data() + 2);  // norm 2 > 0.5: 0.25
  h.backend().step_factor(sums.data() + 4, 3.0, factors.data() + 3);  // norm 2 <= 3: 1
  h.backend().step_factor(sums.data() + 4, 0.0, factors.data() + 4);  // no clipping: 1
  h.backend().step_factor(sums.data(), 0.0, factors.data() + 5);
  std::vector<float> got_factors(6);
  h.memory().copy_to_host(got_factors.data(), factors.data(), 6 * sizeof(float));
  BOOST_TEST(got_factors == (std::vector<float>{0.0f, 0.0f, 0.25f, 1.0f, 1.0f, 1.0f}),
             boost::test_tools::per_element());
  // A skipped step leaves everything bitwise as it was; a factor scales the gradient.
  const auto param_before = h.download(param), velocity_before = h.download(velocity);
  h.backend().sgd_step(count, param.dev.data(), grad.dev.data(), velocity.dev.data(), 0.01, 0.9, 1e-4, factors.data());
  auto m = h.output(count), v = h.output(count);
  h.memory().zero(m.dev.data(), count * sizeof(float));
  h.memory().zero(v.dev.data(), count * sizeof(float));
  h.backend().adam_step(count, param.dev.data(), grad.dev.data(), m.dev.data(), v.dev.data(), 1e-3, 0.9, 0.999, 1e-8, 0,
                        1, factors.data() + 1);
  BOOST_TEST((h.download(param) == param_before && h.download(velocity) == velocity_before));
  BOOST_TEST((h.download(m) == std::vector<float>(static_cast<std::size_t>(count), 0.0f)));
  const double quarter = 0.25;
  h.backend().sgd_step(count, param.dev.data(), grad.dev.data(), velocity.dev.data(), 0.01, 0.9, 1e-4,
                       factors.data() + 2);
  h.reference().sgd_step(count, param.ref.data(), grad.ref.data(), velocity.ref.data(), 0.01, 0.9, 1e-4, &quarter);
  h.backend().adam_step(count, param.dev.data(), grad.dev.data(), m.dev.data(), v.dev.data(), 1e-3, 0.9, 0.999, 1e-8, 0,
                        1, factors.data() + 2);
  h.reference().adam_step(count, param.ref.data(), grad.ref.data(), m.ref.data(), v.ref.data(), 1e-3, 0.9, 0.999, 1e-8,
                          0, 1, &quarter);
  h.expect("sgd and adam with a step factor", param);
  h.expect("sgd velocity with a step factor", velocity);
  h.expect("adam first moment with a step factor", m);
}

// Deterministic algorithms and reductions: the same backward twice gives the same bits.
TS_CONFORMANCE_CASE(runs_repeat_bitwise) {
  const Conv1dShape s{8, 64, 32, 64, 3, 1, 1};
  auto src = h.random(s.src().count(), 110), diff_dst = h.random(s.dst().count(), 111);
  auto first = h.output(s.weights_count()), second = h.output(s.weights_count()), bias = h.output(s.c_out);
  OpStatePtr state;
  h.backend().conv1d_backward_weights(state, s, src.dev.data(), diff_dst.dev.data(), first.dev.data(), bias.dev.data());
  h.backend().conv1d_backward_weights(state, s, src.dev.data(), diff_dst.dev.data(), second.dev.data(),
                                      bias.dev.data());
  BOOST_TEST((h.download(first) == h.download(second)));
}

// --bf16-conv off (CudaOptions::bf16_convolutions) keeps bf16's convolutions in TF32 (to TF32's
// bound, never rounded to bf16).
BOOST_AUTO_TEST_CASE(convolution_bf16_switch) {
  Tolerances tf32{.products = kTf32};
  const BackendUnderTest off{.name = "cuda_bf16_convolutions_off",
                             .make = [] { return make_cuda(cuda::Precision::bf16, false); },
                             .tolerance = tf32,
                             .conv_results = ConvResults::fp32};
  Harness h(off);
  check_conv(h, {3, 33, 8, 16, 3, 1, 1}, false, true);
}

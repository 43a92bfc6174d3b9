// The CUDA backend against the reference backend, operation by operation, forward and backward,
// on random inputs. The reference runs in double on the same float inputs. Every output buffer
// on the device is first filled with NaN, so an element an operation fails to write is caught.
// An element passes when |cuda - reference| <= tol * (|reference| + rms(reference)), with tol
// 1e-4 in fp32 (the oneDNN backend's tolerance), 2e-3 for TF32 products (10-bit mantissas) and
// 1.5e-2 for bf16 products (7-bit mantissas), accumulated in fp32 over at most a few thousand terms.
// bf16 convolutions also round their results to bf16 (2^-9 relative), within the same bound; that
// they ran in bf16 at all is checked separately: every element of a bf16 result is a bf16 number.
#define BOOST_TEST_MODULE cuda_backend
#define BOOST_TEST_NO_MAIN
#define BOOST_TEST_ALTERNATIVE_INIT_API
#include <algorithm>
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <optional>
#include <random>
#include <tuple>
#include <vector>

#include "../unit/expect_close.h"
#include "gpu_main.h"
#include "textscale/common/error.h"
#include "textscale/cuda/cuda_backend.h"
#include "textscale/engine/buffer.h"
#include "textscale/engine/reference_backend.h"

using namespace textscale;
using namespace textscale::engine;

int main(int argc, char* argv[]) {
  return gpu_test_main(argc, argv);
}

namespace {

constexpr double kFp32 = 1e-4, kTf32 = 2e-3, kBf16 = 1.5e-2;

// The same values as float on the device and double on the host.
template <typename T = float>
struct Tensor {
  std::vector<double> ref;
  Buffer<T> dev;
};

struct Fixture {
  std::unique_ptr<Backend<float>> cuda;
  ReferenceBackend<double> ref;
  explicit Fixture(cuda::Precision precision = cuda::Precision::fp32, bool bf16_convolutions = true)
      : cuda(cuda::make_cuda_backend({0, precision, cuda::AlgorithmSearch::heuristic, bf16_convolutions})) {}
  const Memory& memory() { return cuda->memory(); }

  Tensor<> random(Index count, std::uint64_t seed, double scale = 1.0) {
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> normal(0.0f, static_cast<float>(scale));
    std::vector<float> host(static_cast<std::size_t>(count));
    for (auto& x : host) x = normal(rng);
    Tensor<> t{{host.begin(), host.end()}, Buffer<float>(host.size(), memory())};
    memory().copy_to_device(t.dev.data(), host.data(), host.size() * sizeof(float));
    return t;
  }
  // An output: zero on the reference side, NaN on the device.
  Tensor<> output(Index count) {
    Tensor<> t{std::vector<double>(static_cast<std::size_t>(count)),
               Buffer<float>(static_cast<std::size_t>(count), memory())};
    std::vector<float> nan(static_cast<std::size_t>(count), std::numeric_limits<float>::quiet_NaN());
    memory().copy_to_device(t.dev.data(), nan.data(), nan.size() * sizeof(float));
    return t;
  }
  template <typename U>
  Buffer<U> upload(const std::vector<U>& host) {
    Buffer<U> b(host.size(), memory());
    memory().copy_to_device(b.data(), host.data(), host.size() * sizeof(U));
    return b;
  }
  std::vector<float> download(const Buffer<float>& b) {
    std::vector<float> host(b.size());
    memory().copy_to_host(host.data(), b.data(), host.size() * sizeof(float));
    return host;
  }
  void expect_close(const std::string& what, const Tensor<>& t, double tolerance = kFp32) {
    textscale::testing::expect_close(what, download(t.dev), t.ref, tolerance, "cuda", "reference");
  }
};

// Whether every element is a bf16 number (its low 16 bits are zero), as in the result of a bf16
// convolution; fp32 and TF32 results have them set in almost every element.
bool all_bf16(const std::vector<float>& values) {
  return std::all_of(values.begin(), values.end(), [](float x) {
    std::uint32_t bits = 0;
    std::memcpy(&bits, &x, sizeof bits);
    return (bits & 0xffffu) == 0;
  });
}

// Where a convolution's results must be bf16 numbers: `bf16` says whether the backend was to run
// it in bf16; unknown (nullopt) where cuDNN may lack a bf16 algorithm and fall back to TF32.
void expect_precision(Fixture& f, const std::string& what, const Buffer<float>& result, std::optional<bool> bf16) {
  if (!bf16) return;
  const bool is_bf16 = all_bf16(f.download(result));
  BOOST_TEST(is_bf16 == *bf16, what << (*bf16 ? ": not computed in bf16" : ": rounded to bf16"));
}

std::string describe(const Conv1dShape& s) {
  return "conv1d n" + std::to_string(s.n) + " t" + std::to_string(s.t_in) + " " + std::to_string(s.c_in) + "->" +
         std::to_string(s.c_out) + " k" + std::to_string(s.kernel) + " s" + std::to_string(s.stride) + " p" +
         std::to_string(s.pad);
}

// bf16: whether the results must be bf16 (expect_precision); bf16_convolutions: CudaOptions'.
void check_conv(cuda::Precision precision, double tolerance, const Conv1dShape& s, bool bias, bool relu,
                std::optional<bool> bf16, bool bf16_convolutions = true) {
  Fixture f(precision, bf16_convolutions);
  auto src = f.random(s.src().count(), 1), w = f.random(s.weights_count(), 2, 0.1), bs = f.random(s.c_out, 3, 0.1),
       diff_dst = f.random(s.dst().count(), 4);
  auto dst = f.output(s.dst().count()), diff_src = f.output(s.src().count()), dw = f.output(s.weights_count()),
       db = f.output(s.c_out);
  OpStatePtr c1, c2, d2, w2;
  const std::string name = describe(s) + " " + cuda::to_string(precision);
  f.cuda->conv1d_forward(c1, s, src.dev.data(), w.dev.data(), bias ? bs.dev.data() : nullptr, dst.dev.data(), relu);
  f.ref.conv1d_forward(c2, s, src.ref.data(), w.ref.data(), bias ? bs.ref.data() : nullptr, dst.ref.data(), relu);
  f.expect_close(name + " forward", dst, tolerance);
  if (!bias) expect_precision(f, name + " forward", dst.dev, bf16);  // a bias is added in fp32
  f.cuda->conv1d_backward_data(c1, s, diff_dst.dev.data(), w.dev.data(), diff_src.dev.data());
  f.ref.conv1d_backward_data(d2, s, diff_dst.ref.data(), w.ref.data(), diff_src.ref.data());
  f.expect_close(name + " backward data", diff_src, tolerance);
  expect_precision(f, name + " backward data", diff_src.dev, bf16);
  f.cuda->conv1d_backward_weights(c1, s, src.dev.data(), diff_dst.dev.data(), dw.dev.data(),
                                  bias ? db.dev.data() : nullptr);
  f.ref.conv1d_backward_weights(w2, s, src.ref.data(), diff_dst.ref.data(), dw.ref.data(),
                                bias ? db.ref.data() : nullptr);
  f.expect_close(name + " backward weights", dw, tolerance);
  expect_precision(f, name + " backward weights", dw.dev, bf16);
  if (bias) f.expect_close(name + " backward bias", db, tolerance);
}

}  // namespace

// In bf16, shapes whose channel counts are multiples of 8, as all of the published models' are,
// must run in bf16; the others may fall back to TF32 where cuDNN has no bf16 algorithm for them.
BOOST_AUTO_TEST_CASE(convolution) {
  for (auto [precision, tolerance] : {std::pair{cuda::Precision::fp32, kFp32}, std::pair{cuda::Precision::tf32, kTf32},
                                      std::pair{cuda::Precision::bf16, kBf16}}) {
    const bool bf16 = precision == cuda::Precision::bf16;
    const std::optional<bool> other = bf16 ? std::nullopt : std::optional<bool>(false);
    check_conv(precision, tolerance, {4, 50, 16, 32, 7, 1, 0}, true, false, bf16);    // Crepe-like
    check_conv(precision, tolerance, {3, 33, 8, 16, 3, 1, 1}, false, true, bf16);     // VDCNN-like, fused ReLU
    check_conv(precision, tolerance, {2, 31, 5, 6, 4, 2, 2}, true, false, other);     // stride and padding
    check_conv(precision, tolerance, {2, 20, 12, 24, 1, 1, 0}, false, false, other);  // 1x1 projection
    check_conv(precision, tolerance, {2, 20, 256, 512, 3, 1, 1}, false, true, bf16);
  }
}

// A convolution layer's backward as one operation (Backend::conv1d_backward): in bf16 the CUDA
// backend converts the (ReLU-masked) output gradient once for both products; the results must be
// the bits of the two separate calls (the base class's conv1d_backward), and the reference's.
// Each case runs on call sites that have run before, with other data and another batch size.
BOOST_AUTO_TEST_CASE(convolution_backward_in_one_operation) {
  for (auto [precision, tolerance] :
       {std::pair{cuda::Precision::tf32, kTf32}, std::pair{cuda::Precision::bf16, kBf16}}) {
    const bool bf16 = precision == cuda::Precision::bf16;
    for (const auto& [shape, bias, relu] : {std::tuple{Conv1dShape{4, 50, 16, 32, 7, 1, 0}, true, true},   // Crepe-like
                                            std::tuple{Conv1dShape{3, 33, 8, 16, 3, 1, 1}, false, false},  // VDCNN-like
                                            std::tuple{Conv1dShape{2, 20, 256, 512, 3, 1, 1}, true, false},
                                            // 35,200 output rows: enough rows per chunk of the bias gradient's column
                                            // sums (256, in 137 chunks) for the rows nvcc unrolls, masked in bf16
                                            std::tuple{Conv1dShape{32, 1100, 8, 16, 3, 1, 1}, true, true}})
      for (const bool data : {true, false}) {
        Fixture f(precision);
        OpStatePtr ws, ds;
        std::uint64_t seed = 20;
        for (const Index n : {shape.n, shape.n - 1, shape.n}) {
          Conv1dShape s = shape;
          s.n = std::max<Index>(n, 1);
          const std::string name =
              describe(s) + (relu ? " relu" : "") + (data ? " " : " (no data gradient) ") + cuda::to_string(precision);
          auto src = f.random(s.src().count(), ++seed), w = f.random(s.weights_count(), ++seed, 0.1),
               diff_dst = f.random(s.dst().count(), ++seed);
          // A ReLU's output: exact zeros (some negative) where the gradient must not pass.
          auto relu_dst = f.random(s.dst().count(), ++seed);
          std::vector<float> out(relu_dst.ref.begin(), relu_dst.ref.end());
          for (std::size_t i = 0; i < out.size(); ++i)
            if (out[i] < 0) out[i] = i % 3 ? 0.0f : -0.0f;
          relu_dst.ref.assign(out.begin(), out.end());
          f.memory().copy_to_device(relu_dst.dev.data(), out.data(), out.size() * sizeof(float));
          Buffer<float> masked(static_cast<std::size_t>(s.dst().count()), f.memory());
          auto dw = f.output(s.weights_count()), db = f.output(s.c_out), dx = f.output(s.src().count());
          auto dw2 = f.output(s.weights_count()), db2 = f.output(s.c_out), dx2 = f.output(s.src().count());
          f.cuda->conv1d_backward(ws, ds, s, src.dev.data(), relu ? relu_dst.dev.data() : nullptr, diff_dst.dev.data(),
                                  masked.data(), w.dev.data(), dw.dev.data(), bias ? db.dev.data() : nullptr,
                                  data ? dx.dev.data() : nullptr);
          f.cuda->Backend<float>::conv1d_backward(ws, ds, s, src.dev.data(), relu ? relu_dst.dev.data() : nullptr,
                                                  diff_dst.dev.data(), masked.data(), w.dev.data(), dw2.dev.data(),
                                                  bias ? db2.dev.data() : nullptr, data ? dx2.dev.data() : nullptr);
          OpStatePtr ref_ws, ref_ds;
          std::vector<double> ref_masked(static_cast<std::size_t>(s.dst().count()));
          f.ref.conv1d_backward(ref_ws, ref_ds, s, src.ref.data(), relu ? relu_dst.ref.data() : nullptr,
                                diff_dst.ref.data(), ref_masked.data(), w.ref.data(), dw.ref.data(),
                                bias ? db.ref.data() : nullptr, data ? dx.ref.data() : nullptr);
          BOOST_TEST(f.download(dw.dev) == f.download(dw2.dev), name << ": weights differ from the separate calls");
          f.expect_close(name + " backward weights", dw, tolerance);
          expect_precision(f, name + " backward weights", dw.dev, bf16);
          if (bias) {
            BOOST_TEST(f.download(db.dev) == f.download(db2.dev), name << ": bias differs from the separate calls");
            f.expect_close(name + " backward bias", db, tolerance);
          }
          if (data) {
            BOOST_TEST(f.download(dx.dev) == f.download(dx2.dev), name << ": data differs from the separate calls");
            f.expect_close(name + " backward data", dx, tolerance);
            expect_precision(f, name + " backward data", dx.dev, bf16);
          }
        }
      }
  }
}

// CudaOptions::bf16_convolutions = false (--bf16-conv off) keeps bf16's convolutions in TF32.
BOOST_AUTO_TEST_CASE(convolution_bf16_switch) {
  check_conv(cuda::Precision::bf16, kTf32, {3, 33, 8, 16, 3, 1, 1}, false, true, false, false);
}

// One call site, batch sizes and lengths changing back and forth: each (batch size, length) has
// its own descriptors, algorithms (and, in bf16, data type), set again when it returns.
BOOST_AUTO_TEST_CASE(convolution_shape_changes) {
  for (auto [precision, tolerance] :
       {std::pair{cuda::Precision::fp32, kFp32}, std::pair{cuda::Precision::bf16, kBf16}}) {
    Fixture f(precision);
    OpStatePtr s1, s2;
    for (auto [n, t] : {std::pair<Index, Index>{5, 20}, {2, 20}, {5, 20}, {5, 37}, {5, 20}}) {
      const Conv1dShape s{n, t, 8, 16, 3, 1, 0};
      auto src = f.random(s.src().count(), 10 + static_cast<std::uint64_t>(n * t)), w = f.random(s.weights_count(), 11);
      auto dst = f.output(s.dst().count());
      f.cuda->conv1d_forward(s1, s, src.dev.data(), w.dev.data(), nullptr, dst.dev.data(), false);
      f.ref.conv1d_forward(s2, s, src.ref.data(), w.ref.data(), nullptr, dst.ref.data(), false);
      const std::string name =
          "conv1d n" + std::to_string(n) + " t" + std::to_string(t) + " " + cuda::to_string(precision);
      f.expect_close(name, dst, tolerance);
      expect_precision(f, name, dst.dev, precision == cuda::Precision::bf16);
    }
  }
}

BOOST_AUTO_TEST_CASE(onehot_convolution) {
  for (auto [precision, tolerance] :
       {std::pair{cuda::Precision::fp32, kFp32}, std::pair{cuda::Precision::bf16, kBf16}}) {
    Fixture f(precision);
    const Conv1dShape s{3, 40, 69, 48, 7, 1, 0};
    std::mt19937_64 rng(5);
    std::vector<std::uint8_t> codes(static_cast<std::size_t>(s.n * s.t_in));
    for (auto& c : codes) c = static_cast<std::uint8_t>(rng() % 70);
    auto dev_codes = f.upload(codes);
    auto w = f.random(s.weights_count(), 6), bs = f.random(s.c_out, 7), diff_dst = f.random(s.dst().count(), 8);
    for (bool relu : {false, true}) {
      auto dst = f.output(s.dst().count()), dw = f.output(s.weights_count()), db = f.output(s.c_out);
      OpStatePtr a, b;
      f.cuda->onehot_conv1d_forward(a, s, dev_codes.data(), w.dev.data(), bs.dev.data(), dst.dev.data(), relu);
      f.ref.onehot_conv1d_forward(b, s, codes.data(), w.ref.data(), bs.ref.data(), dst.ref.data(), relu);
      f.expect_close("onehot forward", dst);
      f.cuda->onehot_conv1d_backward_weights(a, s, dev_codes.data(), diff_dst.dev.data(), dw.dev.data(), db.dev.data());
      f.ref.onehot_conv1d_backward_weights(b, s, codes.data(), diff_dst.ref.data(), dw.ref.data(), db.ref.data());
      f.expect_close("onehot backward weights " + cuda::to_string(precision), dw, tolerance);
      f.expect_close("onehot backward bias", db);
    }
  }
}

// The fused one-hot block (one-hot convolution, ReLU, max pooling) against the reference
// backend's composition of the three operations, as in the CPU test (exact ties, windows whose
// maximum is 0): Crepe's shape (a 60 KiB shared-memory slice per block), channels that do not fill
// a 32-wide tile, overlapping windows, and an alphabet too large for shared memory (the
// global-memory path). The block does no products, so fp32's tolerance holds in every precision.
// The gradients repeat bitwise.
BOOST_AUTO_TEST_CASE(onehot_convolution_relu_pool) {
  for (const OneHotPoolShape& s :
       {OneHotPoolShape{{4, 1014, 69, 256, 7, 1, 0}, 3, 3}, OneHotPoolShape{{3, 60, 69, 48, 7, 1, 0}, 3, 3},
        OneHotPoolShape{{2, 41, 10, 37, 3, 1, 0}, 4, 2}, OneHotPoolShape{{2, 30, 255, 40, 8, 1, 0}, 3, 3}}) {
    Fixture f(cuda::Precision::tf32);
    const Conv1dShape& c = s.conv;
    const std::string name = "one-hot block " + describe(c);
    std::mt19937_64 rng(5);
    std::vector<std::uint8_t> codes(static_cast<std::size_t>(c.n * c.t_in));
    for (auto& code : codes) code = static_cast<std::uint8_t>(rng() % static_cast<std::uint64_t>(c.c_in + 1));
    for (Index t = 0; t < c.t_in; ++t) codes[static_cast<std::size_t>(t)] = t < c.t_in / 2 ? 1 : 0;
    auto dev_codes = f.upload(codes);
    auto w = f.random(c.weights_count(), 6), bs = f.random(c.c_out, 7), diff_dst = f.random(s.dst().count(), 8);
    auto dst = f.output(s.dst().count()), dw = f.output(c.weights_count()), db = f.output(c.c_out);
    OpStatePtr a, b;
    f.cuda->onehot_conv1d_relu_pool_forward(a, s, dev_codes.data(), w.dev.data(), bs.dev.data(), dst.dev.data(), true);
    f.ref.onehot_conv1d_relu_pool_forward(b, s, codes.data(), w.ref.data(), bs.ref.data(), dst.ref.data(), true);
    f.expect_close(name + " forward", dst);
    BOOST_TEST(std::count(dst.ref.begin(), dst.ref.end(), 0.0) > 0, "some windows have a maximum of 0");
    f.cuda->onehot_conv1d_relu_pool_backward_weights(a, s, dev_codes.data(), dst.dev.data(), diff_dst.dev.data(),
                                                     dw.dev.data(), db.dev.data());
    f.ref.onehot_conv1d_relu_pool_backward_weights(b, s, codes.data(), dst.ref.data(), diff_dst.ref.data(),
                                                   dw.ref.data(), db.ref.data());
    f.expect_close(name + " backward weights", dw);
    f.expect_close(name + " backward bias", db);
    const std::vector<float> first = f.download(dw.dev);
    f.cuda->onehot_conv1d_relu_pool_backward_weights(a, s, dev_codes.data(), dst.dev.data(), diff_dst.dev.data(),
                                                     dw.dev.data(), db.dev.data());
    BOOST_CHECK(f.download(dw.dev) == first);
    auto inference = f.output(s.dst().count());
    inference.ref = dst.ref;
    OpStatePtr e;
    f.cuda->onehot_conv1d_relu_pool_forward(e, s, dev_codes.data(), w.dev.data(), bs.dev.data(), inference.dev.data(),
                                            false);
    f.expect_close(name + " inference", inference);
  }
}

BOOST_AUTO_TEST_CASE(pooling) {
  Fixture f;
  for (const Pool1dShape s : {Pool1dShape{3, 30, 8, 3, 3, 0}, Pool1dShape{2, 33, 16, 3, 2, 1}}) {
    auto src = f.random(s.src().count(), 20), diff_dst = f.random(s.dst().count(), 21);
    auto dst = f.output(s.dst().count()), diff_src = f.output(s.src().count());
    OpStatePtr a, b;
    f.cuda->max_pool_forward(a, s, src.dev.data(), dst.dev.data(), true);
    f.ref.max_pool_forward(b, s, src.ref.data(), dst.ref.data(), true);
    f.expect_close("max pool forward", dst);
    f.cuda->max_pool_backward(a, s, diff_dst.dev.data(), diff_src.dev.data());
    f.ref.max_pool_backward(b, s, diff_dst.ref.data(), diff_src.ref.data());
    f.expect_close("max pool backward", diff_src);
  }
}

BOOST_AUTO_TEST_CASE(kmax_pooling) {
  Fixture f;
  const Dims d{3, 37, 10};
  const Index k = 8;
  auto src = f.random(d.count(), 30), diff_dst = f.random(d.n * k * d.c, 31);
  auto dst = f.output(d.n * k * d.c), diff_src = f.output(d.count());
  Buffer<std::int32_t> dev_indices(static_cast<std::size_t>(d.n * k * d.c), f.memory());
  std::vector<std::int32_t> indices(static_cast<std::size_t>(d.n * k * d.c));
  f.cuda->kmax_pool_forward(d, k, src.dev.data(), dst.dev.data(), dev_indices.data());
  f.ref.kmax_pool_forward(d, k, src.ref.data(), dst.ref.data(), indices.data());
  f.expect_close("k-max forward", dst);
  std::vector<std::int32_t> got(indices.size());
  f.memory().copy_to_host(got.data(), dev_indices.data(), got.size() * sizeof(std::int32_t));
  BOOST_CHECK(got == indices);
  f.cuda->kmax_pool_backward(d, k, diff_dst.dev.data(), dev_indices.data(), diff_src.dev.data());
  f.ref.kmax_pool_backward(d, k, diff_dst.ref.data(), indices.data(), diff_src.ref.data());
  f.expect_close("k-max backward", diff_src);
}

BOOST_AUTO_TEST_CASE(kmax_ties_keep_the_earlier_position) {
  Fixture f;
  const Dims d{1, 6, 1};
  const std::vector<float> values{1, 3, 3, 2, 3, 0};
  auto src = f.upload(values);
  Buffer<float> dst(2, f.memory());
  Buffer<std::int32_t> indices(2, f.memory());
  f.cuda->kmax_pool_forward(d, 2, src.data(), dst.data(), indices.data());
  std::vector<std::int32_t> got(2);
  f.memory().copy_to_host(got.data(), indices.data(), 2 * sizeof(std::int32_t));
  BOOST_CHECK_EQUAL(got[0], 1);
  BOOST_CHECK_EQUAL(got[1], 2);
}

// The second shape has enough rows per chunk of the column sums (257) for the rows nvcc unrolls,
// and 171 chunks.
BOOST_AUTO_TEST_CASE(batch_norm) {
  Fixture f;
  for (const Dims d : {Dims{4, 25, 12}, Dims{40, 1100, 36}})
    for (bool relu : {false, true}) {
      auto src = f.random(d.count(), 40, 2.0), gamma = f.random(d.c, 41), beta = f.random(d.c, 42),
           diff_dst = f.random(d.count(), 43);
      auto rm = f.random(d.c, 44, 0.1), rv = f.output(d.c);
      {
        std::vector<float> ones(static_cast<std::size_t>(d.c), 1.0f);
        f.memory().copy_to_device(rv.dev.data(), ones.data(), ones.size() * sizeof(float));
        rv.ref.assign(ones.begin(), ones.end());
      }
      auto dst = f.output(d.count()), mean = f.output(d.c), var = f.output(d.c), diff_src = f.output(d.count()),
           dg = f.output(d.c), db = f.output(d.c);
      OpStatePtr a, b;
      f.cuda->batch_norm_forward(a, d, src.dev.data(), gamma.dev.data(), beta.dev.data(), dst.dev.data(),
                                 mean.dev.data(), var.dev.data(), rm.dev.data(), rv.dev.data(), true, 0.1, 1e-5, relu);
      f.ref.batch_norm_forward(b, d, src.ref.data(), gamma.ref.data(), beta.ref.data(), dst.ref.data(), mean.ref.data(),
                               var.ref.data(), rm.ref.data(), rv.ref.data(), true, 0.1, 1e-5, relu);
      f.expect_close("batch norm forward", dst);
      f.expect_close("batch norm saved mean", mean);
      f.expect_close("batch norm saved variance", var);
      f.expect_close("batch norm running mean", rm);
      f.expect_close("batch norm running variance (unbiased)", rv);
      f.cuda->batch_norm_backward(a, d, src.dev.data(), dst.dev.data(), diff_dst.dev.data(), gamma.dev.data(),
                                  mean.dev.data(), var.dev.data(), diff_src.dev.data(), dg.dev.data(), db.dev.data(),
                                  1e-5, relu);
      f.ref.batch_norm_backward(b, d, src.ref.data(), dst.ref.data(), diff_dst.ref.data(), gamma.ref.data(),
                                mean.ref.data(), var.ref.data(), diff_src.ref.data(), dg.ref.data(), db.ref.data(),
                                1e-5, relu);
      f.expect_close("batch norm backward data", diff_src, 1e-3);
      f.expect_close("batch norm backward gamma", dg);
      f.expect_close("batch norm backward beta", db);
      auto inference = f.output(d.count());
      f.cuda->batch_norm_forward(a, d, src.dev.data(), gamma.dev.data(), beta.dev.data(), inference.dev.data(), nullptr,
                                 nullptr, rm.dev.data(), rv.dev.data(), false, 0.1, 1e-5, relu);
      f.ref.batch_norm_forward(b, d, src.ref.data(), gamma.ref.data(), beta.ref.data(), inference.ref.data(), nullptr,
                               nullptr, rm.ref.data(), rv.ref.data(), false, 0.1, 1e-5, relu);
      f.expect_close("batch norm inference", inference);
    }
}

BOOST_AUTO_TEST_CASE(synchronised_batch_norm_pieces) {
  Fixture f;
  const Index rows = 300, c = 7;
  auto a = f.random(rows * c, 50), b = f.random(rows * c, 51), gamma = f.random(c, 52);
  std::vector<double> sa(c), sab(c), ra(c), rab(c);
  f.cuda->channel_sums(rows, c, a.dev.data(), b.dev.data(), sa.data(), sab.data());
  f.ref.channel_sums(rows, c, a.ref.data(), b.ref.data(), ra.data(), rab.data());
  for (Index k = 0; k < c; ++k) {
    BOOST_CHECK_CLOSE(sa[k], ra[k], 1e-9);
    BOOST_CHECK_CLOSE(sab[k], rab[k], 1e-9);
  }
  f.cuda->channel_sums(rows, c, a.dev.data(), nullptr, sa.data(), sab.data());
  f.ref.channel_sums(rows, c, a.ref.data(), nullptr, ra.data(), rab.data());
  for (Index k = 0; k < c; ++k) BOOST_CHECK_CLOSE(sab[k], rab[k], 1e-9);
  std::vector<double> mean(c, 0.1), inv_std(c, 1.3), mean_dy(c, -0.2), mean_dy_xhat(c, 0.05);
  auto diff = f.output(rows * c);
  f.cuda->batch_norm_backward_data(rows, c, a.dev.data(), b.dev.data(), mean.data(), inv_std.data(), gamma.dev.data(),
                                   mean_dy.data(), mean_dy_xhat.data(), diff.dev.data());
  f.ref.batch_norm_backward_data(rows, c, a.ref.data(), b.ref.data(), mean.data(), inv_std.data(), gamma.ref.data(),
                                 mean_dy.data(), mean_dy_xhat.data(), diff.ref.data());
  f.expect_close("batch norm backward data (global statistics)", diff);
}

BOOST_AUTO_TEST_CASE(element_wise) {
  Fixture f;
  const Index n = 1000;
  auto a = f.random(n, 60), b = f.random(n, 61);
  auto relu = f.output(n), relu_back = f.output(n), sum = f.output(n), product = f.output(n), copy = f.output(n);
  f.cuda->relu_forward(n, a.dev.data(), relu.dev.data());
  f.ref.relu_forward(n, a.ref.data(), relu.ref.data());
  f.expect_close("relu forward", relu);
  f.cuda->relu_backward(n, relu.dev.data(), b.dev.data(), relu_back.dev.data());
  f.ref.relu_backward(n, relu.ref.data(), b.ref.data(), relu_back.ref.data());
  f.expect_close("relu backward", relu_back);
  f.cuda->add(n, a.dev.data(), b.dev.data(), sum.dev.data());
  f.ref.add(n, a.ref.data(), b.ref.data(), sum.ref.data());
  f.expect_close("add", sum);
  f.cuda->multiply(n, a.dev.data(), b.dev.data(), product.dev.data());
  f.ref.multiply(n, a.ref.data(), b.ref.data(), product.ref.data());
  f.expect_close("multiply", product);
  f.cuda->copy(n, a.dev.data(), copy.dev.data());
  f.ref.copy(n, a.ref.data(), copy.ref.data());
  f.expect_close("copy", copy);
  auto dst = f.output(n), mask = f.output(n);
  f.cuda->dropout_forward(n, 0.3, 77, 1234, a.dev.data(), dst.dev.data(), mask.dev.data());
  f.ref.dropout_forward(n, 0.3, 77, 1234, a.ref.data(), dst.ref.data(), mask.ref.data());
  f.expect_close("dropout output (same mask as the CPU)", dst);
  f.expect_close("dropout mask", mask);
  const double squares = f.cuda->sum_squares(n, a.dev.data());
  BOOST_CHECK_CLOSE(squares, f.ref.sum_squares(n, a.ref.data()), 1e-9);
  f.cuda->scale(n, a.dev.data(), 0.25);
  f.ref.scale(n, a.ref.data(), 0.25);
  f.expect_close("scale", a);
}

BOOST_AUTO_TEST_CASE(linear) {
  for (auto [precision, tolerance] : {std::pair{cuda::Precision::fp32, kFp32}, std::pair{cuda::Precision::tf32, kTf32},
                                      std::pair{cuda::Precision::bf16, kBf16}}) {
    Fixture f(precision);
    const LinearShape s{6, 40, 24};
    for (bool relu : {false, true}) {
      auto src = f.random(s.n * s.in, 70), w = f.random(s.out * s.in, 71, 0.2), bias = f.random(s.out, 72),
           diff_dst = f.random(s.n * s.out, 73);
      auto dst = f.output(s.n * s.out), diff_src = f.output(s.n * s.in), dw = f.output(s.out * s.in),
           db = f.output(s.out);
      OpStatePtr a, b;
      const std::string name = "linear " + cuda::to_string(precision);
      f.cuda->linear_forward(a, s, src.dev.data(), w.dev.data(), bias.dev.data(), dst.dev.data(), relu);
      f.ref.linear_forward(b, s, src.ref.data(), w.ref.data(), bias.ref.data(), dst.ref.data(), relu);
      f.expect_close(name + " forward", dst, tolerance);
      f.cuda->linear_backward_data(a, s, diff_dst.dev.data(), w.dev.data(), diff_src.dev.data());
      f.ref.linear_backward_data(b, s, diff_dst.ref.data(), w.ref.data(), diff_src.ref.data());
      f.expect_close(name + " backward data", diff_src, tolerance);
      f.cuda->linear_backward_weights(a, s, src.dev.data(), diff_dst.dev.data(), dw.dev.data(), db.dev.data());
      f.ref.linear_backward_weights(b, s, src.ref.data(), diff_dst.ref.data(), dw.ref.data(), db.ref.data());
      f.expect_close(name + " backward weights", dw, tolerance);
      f.expect_close(name + " backward bias", db);
    }
  }
}

BOOST_AUTO_TEST_CASE(embedding) {
  Fixture f;
  const Index n = 3, t = 50, vocab = 70, dim = 16;
  std::mt19937_64 rng(80);
  std::vector<std::uint8_t> codes(static_cast<std::size_t>(n * t));
  for (auto& c : codes) c = static_cast<std::uint8_t>(rng() % vocab);
  auto dev_codes = f.upload(codes);
  auto table = f.random(vocab * dim, 81), diff_dst = f.random(n * t * dim, 82);
  auto dst = f.output(n * t * dim), diff_table = f.output(vocab * dim);
  f.cuda->embedding_forward(n, t, vocab, dim, dev_codes.data(), table.dev.data(), dst.dev.data());
  f.ref.embedding_forward(n, t, vocab, dim, codes.data(), table.ref.data(), dst.ref.data());
  f.expect_close("embedding forward", dst);
  f.cuda->embedding_backward(n, t, vocab, dim, dev_codes.data(), diff_dst.dev.data(), diff_table.dev.data());
  f.ref.embedding_backward(n, t, vocab, dim, codes.data(), diff_dst.ref.data(), diff_table.ref.data());
  f.expect_close("embedding backward", diff_table);
}

BOOST_AUTO_TEST_CASE(loss) {
  Fixture f;
  const Index n = 9, classes = 5;
  auto logits = f.random(n * classes, 90, 3.0);
  std::vector<std::int32_t> labels(static_cast<std::size_t>(n));
  for (Index i = 0; i < n; ++i) labels[static_cast<std::size_t>(i)] = static_cast<std::int32_t>((i * 7) % classes);
  auto dev_labels = f.upload(labels);
  auto diff = f.output(n * classes);
  const double got = f.cuda->softmax_cross_entropy(n, classes, logits.dev.data(), dev_labels.data(), diff.dev.data());
  const double want = f.ref.softmax_cross_entropy(n, classes, logits.ref.data(), labels.data(), diff.ref.data());
  BOOST_CHECK_CLOSE(got, want, 1e-6);
  f.expect_close("softmax cross-entropy gradient", diff);
  labels[4] = 5;
  auto bad = f.upload(labels);
  BOOST_CHECK_THROW(f.cuda->softmax_cross_entropy(n, classes, logits.dev.data(), bad.data(), nullptr), Error);
}

BOOST_AUTO_TEST_CASE(optimizers) {
  Fixture f;
  const Index n = 777;
  auto param = f.random(n, 100), grad = f.random(n, 101), velocity = f.random(n, 102, 0.1);
  for (int step = 0; step < 3; ++step) {
    f.cuda->sgd_step(n, param.dev.data(), grad.dev.data(), velocity.dev.data(), 0.01, 0.9, 1e-4, nullptr);
    f.ref.sgd_step(n, param.ref.data(), grad.ref.data(), velocity.ref.data(), 0.01, 0.9, 1e-4, nullptr);
  }
  f.expect_close("sgd parameters", param);
  f.expect_close("sgd velocity", velocity);
  auto m = f.output(n), v = f.output(n);
  f.memory().zero(m.dev.data(), n * sizeof(float));
  f.memory().zero(v.dev.data(), n * sizeof(float));
  for (std::int64_t step = 1; step <= 3; ++step) {
    f.cuda->adam_step(n, param.dev.data(), grad.dev.data(), m.dev.data(), v.dev.data(), 1e-3, 0.9, 0.999, 1e-8, 0, step,
                      nullptr);
    f.ref.adam_step(n, param.ref.data(), grad.ref.data(), m.ref.data(), v.ref.data(), 1e-3, 0.9, 0.999, 1e-8, 0, step,
                    nullptr);
  }
  f.expect_close("adam parameters", param);
  f.expect_close("adam first moment", m);
  f.expect_close("adam second moment", v);
}

// What a training step leaves in device memory instead of waiting for the device: the loss
// statistics, sums of squares, the step factor, and optimizer steps that read it.
BOOST_AUTO_TEST_CASE(step_results_stay_on_the_device) {
  Fixture f;
  for (const Index classes : {Index{4}, Index{45}}) {  // one lane a class, and several classes a lane
    const Index n = 70;                                // more rows than the finishing warp has lanes
    BOOST_TEST_CONTEXT("classes " << classes) {
      auto logits = f.random(n * classes, 110, 3.0);
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
      logits.ref.assign(host.begin(), host.end());
      f.memory().copy_to_device(logits.dev.data(), host.data(), host.size() * sizeof(float));
      auto dev_labels = f.upload(labels);
      auto diff = f.output(n * classes);
      Buffer<double> stats(3, f.memory());
      f.cuda->softmax_cross_entropy_stats(n, classes, logits.dev.data(), dev_labels.data(), diff.dev.data(),
                                          stats.data());
      double got[3] = {}, want[3] = {};
      f.memory().copy_to_host(got, stats.data(), sizeof got);
      f.ref.softmax_cross_entropy_stats(n, classes, logits.ref.data(), labels.data(), diff.ref.data(), want);
      BOOST_CHECK_CLOSE(got[0], want[0], 1e-6);
      BOOST_TEST(got[1] == want[1]);  // the first largest logit, as std::max_element
      BOOST_TEST(got[2] == 0.0);
      f.expect_close("softmax cross-entropy gradient", diff);
      for (Index i = 0; i < 6; ++i) {  // each tie on its own: correct exactly when the label comes first
        f.cuda->softmax_cross_entropy_stats(1, classes, logits.dev.data() + i * classes, dev_labels.data() + i, nullptr,
                                            stats.data());
        f.memory().copy_to_host(got, stats.data(), sizeof got);
        BOOST_TEST(got[1] == (i % 2 == 1 ? 1.0 : 0.0), "tie in row " << i);
      }
      // Bad labels: the first is reported and the rows' gradients are NaN.
      labels[33] = -1;
      labels[12] = static_cast<std::int32_t>(classes);
      auto bad = f.upload(labels);
      f.cuda->softmax_cross_entropy_stats(n, classes, logits.dev.data(), bad.data(), diff.dev.data(), stats.data());
      f.memory().copy_to_host(got, stats.data(), sizeof got);
      BOOST_TEST(got[2] == 13.0);
      BOOST_TEST(std::isnan(got[0]));
      const auto diffs = f.download(diff.dev);
      BOOST_TEST(std::isnan(diffs[static_cast<std::size_t>(12 * classes)]));
      BOOST_TEST(std::isnan(diffs[static_cast<std::size_t>(33 * classes + classes - 1)]));
      BOOST_TEST(std::isfinite(diffs[static_cast<std::size_t>(11 * classes)]));
      // The label's logit at minus infinity: an infinite loss, a NaN row, the others intact.
      labels[33] = 0;
      labels[12] = 0;
      auto good = f.upload(labels);
      host[static_cast<std::size_t>(40 * classes + labels[40])] = -INFINITY;
      f.memory().copy_to_device(logits.dev.data(), host.data(), host.size() * sizeof(float));
      f.cuda->softmax_cross_entropy_stats(n, classes, logits.dev.data(), good.data(), diff.dev.data(), stats.data());
      f.memory().copy_to_host(got, stats.data(), sizeof got);
      BOOST_TEST(std::isinf(got[0]));
      BOOST_TEST(got[2] == 0.0);
      const auto inf_diffs = f.download(diff.dev);
      BOOST_TEST(std::isnan(inf_diffs[static_cast<std::size_t>(40 * classes + 1)]));
      BOOST_TEST(std::isfinite(inf_diffs[static_cast<std::size_t>(41 * classes + 1)]));
    }
  }

  // Sums of squares into device memory, the step factor from them, and steps that read it.
  const Index count = 3000017;  // several elements for each thread of the sum of squares
  auto grad = f.random(count, 111), param = f.random(count, 112), velocity = f.random(count, 113, 0.1);
  Buffer<double> sums(5, f.memory());
  const std::vector<double> nans(5, std::nan(""));
  f.memory().copy_to_device(sums.data(), nans.data(), 5 * sizeof(double));  // written, not left as it was
  f.cuda->sum_squares_to(count, grad.dev.data(), sums.data());
  f.cuda->sum_squares_to(0, grad.dev.data(), sums.data() + 1);
  const double host_sums[3] = {std::nan(""), INFINITY, 4.0};
  f.memory().copy_to_device(sums.data() + 2, host_sums, sizeof host_sums);
  double got_sums[5] = {};
  f.memory().copy_to_host(got_sums, sums.data(), sizeof got_sums);
  BOOST_CHECK_CLOSE(got_sums[0], f.ref.sum_squares(count, grad.ref.data()), 1e-9);
  BOOST_TEST(got_sums[1] == 0.0);
  Buffer<float> factors(6, f.memory());
  f.cuda->step_factor(sums.data() + 2, 1.0, factors.data());      // NaN: skip
  f.cuda->step_factor(sums.data() + 3, 0.0, factors.data() + 1);  // infinite: skip
  f.cuda->step_factor(sums.data() + 4, 0.5, factors.data() + 2);  // norm 2 > 0.5: 0.25
  f.cuda->step_factor(sums.data() + 4, 3.0, factors.data() + 3);  // norm 2 <= 3: 1
  f.cuda->step_factor(sums.data() + 4, 0.0, factors.data() + 4);  // no clipping: 1
  f.cuda->step_factor(sums.data(), 0.0, factors.data() + 5);
  std::vector<float> got_factors(6);
  f.memory().copy_to_host(got_factors.data(), factors.data(), 6 * sizeof(float));
  BOOST_TEST(got_factors == (std::vector<float>{0.0f, 0.0f, 0.25f, 1.0f, 1.0f, 1.0f}),
             boost::test_tools::per_element());
  // A skipped step leaves everything bitwise as it was; a factor scales the gradient.
  const auto param_before = f.download(param.dev), velocity_before = f.download(velocity.dev);
  f.cuda->sgd_step(count, param.dev.data(), grad.dev.data(), velocity.dev.data(), 0.01, 0.9, 1e-4, factors.data());
  auto m = f.output(count), v = f.output(count);
  f.memory().zero(m.dev.data(), count * sizeof(float));
  f.memory().zero(v.dev.data(), count * sizeof(float));
  f.cuda->adam_step(count, param.dev.data(), grad.dev.data(), m.dev.data(), v.dev.data(), 1e-3, 0.9, 0.999, 1e-8, 0, 1,
                    factors.data() + 1);
  BOOST_TEST((f.download(param.dev) == param_before && f.download(velocity.dev) == velocity_before));
  BOOST_TEST((f.download(m.dev) == std::vector<float>(static_cast<std::size_t>(count), 0.0f)));
  const double quarter = 0.25;
  f.cuda->sgd_step(count, param.dev.data(), grad.dev.data(), velocity.dev.data(), 0.01, 0.9, 1e-4, factors.data() + 2);
  f.ref.sgd_step(count, param.ref.data(), grad.ref.data(), velocity.ref.data(), 0.01, 0.9, 1e-4, &quarter);
  f.cuda->adam_step(count, param.dev.data(), grad.dev.data(), m.dev.data(), v.dev.data(), 1e-3, 0.9, 0.999, 1e-8, 0, 1,
                    factors.data() + 2);
  f.ref.adam_step(count, param.ref.data(), grad.ref.data(), m.ref.data(), v.ref.data(), 1e-3, 0.9, 0.999, 1e-8, 0, 1,
                  &quarter);
  f.expect_close("sgd and adam with a step factor", param);
  f.expect_close("sgd velocity with a step factor", velocity);
  f.expect_close("adam first moment with a step factor", m);
}

BOOST_AUTO_TEST_CASE(runs_repeat_bitwise) {
  // Deterministic algorithms and reductions: the same backward twice gives the same bits.
  Fixture f(cuda::Precision::tf32);
  const Conv1dShape s{8, 64, 32, 64, 3, 1, 1};
  auto src = f.random(s.src().count(), 110), diff_dst = f.random(s.dst().count(), 111);
  auto first = f.output(s.weights_count()), second = f.output(s.weights_count()), bias = f.output(s.c_out);
  OpStatePtr state;
  f.cuda->conv1d_backward_weights(state, s, src.dev.data(), diff_dst.dev.data(), first.dev.data(), bias.dev.data());
  f.cuda->conv1d_backward_weights(state, s, src.dev.data(), diff_dst.dev.data(), second.dev.data(), bias.dev.data());
  BOOST_CHECK(f.download(first.dev) == f.download(second.dev));
}

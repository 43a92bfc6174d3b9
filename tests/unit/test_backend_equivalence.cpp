// The oneDNN CPU backend against the reference backend, operation by operation, forward and
// backward, on random inputs. The reference runs in double on the same float inputs; an element
// passes when |onednn - reference| <= 1e-4 * (|reference| + rms(reference)) — float accumulation
// over at most a few thousand terms stays well inside that.
#define BOOST_TEST_MODULE backend_equivalence
#include <algorithm>
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <random>
#include <vector>

#include "expect_close.h"
#include "textscale/common/error.h"
#include "textscale/engine/cpu/dnnl_backend.h"
#include "textscale/engine/dropout_mask.h"
#include "textscale/engine/reference_backend.h"

using namespace textscale::engine;

namespace {

constexpr double kTolerance = 1e-4;

struct Pair {
  std::vector<float> f;
  std::vector<double> d;
};

Pair random_pair(Index count, std::uint64_t seed, double scale = 1.0) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, static_cast<float>(scale));
  Pair p;
  p.f.resize(static_cast<std::size_t>(count));
  for (auto& x : p.f) x = normal(rng);
  p.d.assign(p.f.begin(), p.f.end());
  return p;
}

Pair zeros(Index count) {
  return {std::vector<float>(static_cast<std::size_t>(count)), std::vector<double>(static_cast<std::size_t>(count))};
}

void expect_close(const std::string& what, const std::vector<float>& got, const std::vector<double>& want) {
  textscale::testing::expect_close(what, got, want, kTolerance, "onednn", "reference");
}

struct Backends {
  explicit Backends(const BackendOptions& options = {}) : dnnl(options) {}
  DnnlBackend dnnl;
  ReferenceBackend<double> ref;
};

// `options`: the oneDNN backend's (the defaults: Winograd on from 64 channels).
void check_conv(const Conv1dShape& s, bool bias, bool relu, bool relu_input = false,
                const BackendOptions& options = {}) {
  Backends b(options);
  auto src = random_pair(s.src().count(), 1);
  if (relu_input)  // the output of a ReLU: non-negative, so long sums do not cancel
    for (std::size_t i = 0; i < src.f.size(); ++i) src.f[i] = static_cast<float>(src.d[i] = std::abs(src.d[i]));
  auto w = random_pair(s.weights_count(), 2, 0.1), bs = random_pair(s.c_out, 3, 0.1),
       diff_dst = random_pair(s.dst().count(), 4);
  auto dst = zeros(s.dst().count()), diff_src = zeros(s.src().count()), dw = zeros(s.weights_count()),
       db = zeros(s.c_out);
  OpStatePtr f1, f2, d1, d2, w1, w2;
  b.dnnl.conv1d_forward(f1, s, src.f.data(), w.f.data(), bias ? bs.f.data() : nullptr, dst.f.data(), relu);
  b.ref.conv1d_forward(f2, s, src.d.data(), w.d.data(), bias ? bs.d.data() : nullptr, dst.d.data(), relu);
  const std::string name = "conv1d n" + std::to_string(s.n) + " t" + std::to_string(s.t_in) + " " +
                           std::to_string(s.c_in) + "->" + std::to_string(s.c_out) + " k" + std::to_string(s.kernel) +
                           " s" + std::to_string(s.stride) + " p" + std::to_string(s.pad);
  expect_close(name + " forward", dst.f, dst.d);
  b.dnnl.conv1d_backward_data(d1, s, diff_dst.f.data(), w.f.data(), diff_src.f.data());
  b.ref.conv1d_backward_data(d2, s, diff_dst.d.data(), w.d.data(), diff_src.d.data());
  expect_close(name + " backward data", diff_src.f, diff_src.d);
  b.dnnl.conv1d_backward_weights(w1, s, src.f.data(), diff_dst.f.data(), dw.f.data(), bias ? db.f.data() : nullptr);
  b.ref.conv1d_backward_weights(w2, s, src.d.data(), diff_dst.d.data(), dw.d.data(), bias ? db.d.data() : nullptr);
  expect_close(name + " backward weights", dw.f, dw.d);
  if (bias) expect_close(name + " backward bias", db.f, db.d);
}

}  // namespace

BOOST_AUTO_TEST_CASE(convolution) {
  check_conv({4, 50, 16, 32, 7, 1, 0}, true, false);   // Crepe-like
  check_conv({3, 33, 8, 16, 3, 1, 1}, false, true);    // VDCNN-like, fused ReLU
  check_conv({2, 31, 5, 6, 4, 2, 2}, true, false);     // stride and asymmetric padding
  check_conv({2, 20, 12, 24, 1, 1, 0}, false, false);  // 1x1 projection
  // 512 channels: forward and backward-data run in oneDNN's blocked layout, with reorders.
  check_conv({2, 20, 512, 512, 3, 1, 1}, false, true);
  check_conv({2, 20, 256, 512, 3, 1, 1}, false, false);
  check_conv({2, 20, 512, 256, 1, 1, 0}, true, false);
  // Kernel 3, stride 1, >= 64 channels in and out: forward and backward-data run as Winograd
  // F(4, 3) (src/engine/cpu/winograd.h), backward-weights too from 128 channels; these shapes
  // cover several blocks of tiles, partial last tiles, channel counts that are not multiples of
  // 16, and padding 0, 1 and 2.
  check_conv({5, 70, 128, 136, 3, 1, 1}, true, true);
  check_conv({3, 37, 256, 128, 3, 1, 0}, true, false);
  check_conv({2, 3, 128, 128, 3, 1, 0}, false, false);
  check_conv({2, 9, 144, 128, 3, 1, 2}, false, false);
  check_conv({9, 240, 128, 136, 3, 1, 1}, true, false);  // 540 tiles: two blocks of the weight gradient
  // Longer kernels run as groups of three taps (the last group padded with zero taps).
  check_conv({3, 60, 128, 136, 7, 1, 0}, true, true);  // Crepe's kernel 7
  check_conv({2, 33, 128, 128, 7, 1, 6}, false, false);
  check_conv({2, 30, 144, 128, 5, 1, 2}, true, false);
  check_conv({2, 26, 128, 128, 4, 1, 1}, false, false);
}

// --winograd on and off (BackendOptions::winograd) both match the reference on shapes Winograd
// applies to, forward, backward-data and (128 channels and more) backward-weights; and the
// options do choose the algorithm: on and off round differently, and a threshold above the
// shape's channels (--winograd-min-channels) gives the direct convolution's bits.
BOOST_AUTO_TEST_CASE(convolution_winograd_on_and_off) {
  for (const bool winograd : {true, false}) {
    const BackendOptions options{.winograd = winograd};
    check_conv({5, 70, 128, 136, 3, 1, 1}, true, true, false, options);
    check_conv({3, 60, 128, 136, 7, 1, 0}, true, true, false, options);  // Crepe's kernel 7
    check_conv({4, 90, 64, 64, 3, 1, 1}, false, true, true, options);    // VDCNN's first stage
  }
  const Conv1dShape s{4, 90, 128, 128, 3, 1, 1};
  auto src = random_pair(s.src().count(), 91), w = random_pair(s.weights_count(), 92, 0.1);
  auto forward = [&](const BackendOptions& options) {
    DnnlBackend dnnl(options);
    std::vector<float> dst(static_cast<std::size_t>(s.dst().count()));
    OpStatePtr state;
    dnnl.conv1d_forward(state, s, src.f.data(), w.f.data(), nullptr, dst.data(), false);
    return dst;
  };
  const auto on = forward({}), off = forward({.winograd = false});
  BOOST_TEST((on != off), "--winograd on and off give bitwise the same convolution: the switch did nothing");
  BOOST_TEST((forward({.winograd_min_channels = 256}) == off), "a threshold above 128 channels runs direct");
  BOOST_TEST((forward({.winograd_min_channels = 128}) == on), "a threshold of 128 channels runs Winograd");
}

// VDCNN's first layers at batch 32: the weight gradients sum over 32k positions.
BOOST_AUTO_TEST_CASE(convolution_long_reductions) {
  check_conv({32, 1014, 16, 64, 3, 1, 1}, true, false);         // temporal convolution (oneDNN direct)
  check_conv({32, 1014, 64, 64, 3, 1, 1}, false, true, true);   // Winograd; weight gradient direct
  check_conv({32, 254, 128, 128, 3, 1, 1}, false, true, true);  // Winograd weight gradient
}

BOOST_AUTO_TEST_CASE(convolution_batch_size_changes) {
  // The last batch of an epoch is smaller: primitives are rebuilt per batch size.
  Backends b;
  OpStatePtr state1, state2;
  for (Index n : {5, 2, 5}) {
    Conv1dShape s{n, 20, 4, 8, 3, 1, 0};
    auto src = random_pair(s.src().count(), 10 + static_cast<std::uint64_t>(n)), w = random_pair(s.weights_count(), 11);
    auto dst = zeros(s.dst().count());
    b.dnnl.conv1d_forward(state1, s, src.f.data(), w.f.data(), nullptr, dst.f.data(), false);
    b.ref.conv1d_forward(state2, s, src.d.data(), w.d.data(), nullptr, dst.d.data(), false);
    expect_close("conv1d n" + std::to_string(n), dst.f, dst.d);
  }
}

BOOST_AUTO_TEST_CASE(onehot_convolution) {
  Backends b;
  const Conv1dShape s{3, 40, 69, 48, 7, 1, 0};
  std::mt19937_64 rng(5);
  std::vector<std::uint8_t> codes(static_cast<std::size_t>(s.n * s.t_in));
  for (auto& c : codes) c = static_cast<std::uint8_t>(rng() % 70);
  auto w = random_pair(s.weights_count(), 6), bs = random_pair(s.c_out, 7), diff_dst = random_pair(s.dst().count(), 8);
  for (bool relu : {false, true}) {
    auto dst = zeros(s.dst().count()), dw = zeros(s.weights_count()), db = zeros(s.c_out);
    OpStatePtr a1, a2, g1, g2;
    b.dnnl.onehot_conv1d_forward(a1, s, codes.data(), w.f.data(), bs.f.data(), dst.f.data(), relu);
    b.ref.onehot_conv1d_forward(a2, s, codes.data(), w.d.data(), bs.d.data(), dst.d.data(), relu);
    expect_close("one-hot conv forward", dst.f, dst.d);
    b.dnnl.onehot_conv1d_backward_weights(g1, s, codes.data(), diff_dst.f.data(), dw.f.data(), db.f.data());
    b.ref.onehot_conv1d_backward_weights(g2, s, codes.data(), diff_dst.d.data(), dw.d.data(), db.d.data());
    expect_close("one-hot conv backward weights", dw.f, dw.d);
    expect_close("one-hot conv backward bias", db.f, db.d);
  }
}

// Crepe's first block fused (one-hot convolution, ReLU, max pooling) against the reference
// backend's composition of the three operations: training and inference forward, and the weight
// and bias gradients. Sample 0 repeats one code over its first half and ends in padding, so that
// windows tie exactly (the earliest position must win); negative biases leave windows whose
// maximum is 0 (no gradient passes the ReLU there).
BOOST_AUTO_TEST_CASE(onehot_convolution_relu_pool) {
  for (const OneHotPoolShape& s : {OneHotPoolShape{{3, 60, 69, 48, 7, 1, 0}, 3, 3},  // Crepe's, smaller
                                   OneHotPoolShape{{2, 41, 10, 37, 3, 1, 0}, 4, 2},  // overlapping windows
                                   OneHotPoolShape{{2, 20, 5, 33, 2, 1, 0}, 2, 3}}) {
    Backends b;
    const Conv1dShape& c = s.conv;
    std::mt19937_64 rng(5);
    std::vector<std::uint8_t> codes(static_cast<std::size_t>(c.n * c.t_in));
    for (auto& code : codes) code = static_cast<std::uint8_t>(rng() % static_cast<std::uint64_t>(c.c_in + 1));
    for (Index t = 0; t < c.t_in; ++t) codes[static_cast<std::size_t>(t)] = t < c.t_in / 2 ? 1 : 0;
    auto w = random_pair(c.weights_count(), 6), bs = random_pair(c.c_out, 7),
         diff_dst = random_pair(s.dst().count(), 8);
    auto dst = zeros(s.dst().count()), dw = zeros(c.weights_count()), db = zeros(c.c_out);
    OpStatePtr a1, a2;
    b.dnnl.onehot_conv1d_relu_pool_forward(a1, s, codes.data(), w.f.data(), bs.f.data(), dst.f.data(), true);
    b.ref.onehot_conv1d_relu_pool_forward(a2, s, codes.data(), w.d.data(), bs.d.data(), dst.d.data(), true);
    expect_close("one-hot conv + pool forward", dst.f, dst.d);
    BOOST_TEST(std::count(dst.d.begin(), dst.d.end(), 0.0) > 0, "some windows have a maximum of 0");
    b.dnnl.onehot_conv1d_relu_pool_backward_weights(a1, s, codes.data(), dst.f.data(), diff_dst.f.data(), dw.f.data(),
                                                    db.f.data());
    b.ref.onehot_conv1d_relu_pool_backward_weights(a2, s, codes.data(), dst.d.data(), diff_dst.d.data(), dw.d.data(),
                                                   db.d.data());
    expect_close("one-hot conv + pool backward weights", dw.f, dw.d);
    expect_close("one-hot conv + pool backward bias", db.f, db.d);
    auto inference = zeros(s.dst().count());
    OpStatePtr a3;
    b.dnnl.onehot_conv1d_relu_pool_forward(a3, s, codes.data(), w.f.data(), bs.f.data(), inference.f.data(), false);
    expect_close("one-hot conv + pool inference", inference.f, dst.d);
    BOOST_CHECK_THROW(b.dnnl.onehot_conv1d_relu_pool_backward_weights(a3, s, codes.data(), dst.f.data(),
                                                                      diff_dst.f.data(), dw.f.data(), db.f.data()),
                      textscale::Error);
  }
}

BOOST_AUTO_TEST_CASE(max_pooling) {
  for (Pool1dShape s : {Pool1dShape{3, 30, 8, 3, 3, 0}, Pool1dShape{2, 25, 5, 3, 2, 1}}) {
    Backends b;
    auto src = random_pair(s.src().count(), 21), diff_dst = random_pair(s.dst().count(), 22);
    auto dst = zeros(s.dst().count()), diff_src = zeros(s.src().count());
    OpStatePtr p1, p2;
    b.dnnl.max_pool_forward(p1, s, src.f.data(), dst.f.data(), true);
    b.ref.max_pool_forward(p2, s, src.d.data(), dst.d.data(), true);
    expect_close("max pool forward", dst.f, dst.d);
    b.dnnl.max_pool_backward(p1, s, diff_dst.f.data(), diff_src.f.data());
    b.ref.max_pool_backward(p2, s, diff_dst.d.data(), diff_src.d.data());
    expect_close("max pool backward", diff_src.f, diff_src.d);
    auto inference = zeros(s.dst().count());
    b.dnnl.max_pool_forward(p1, s, src.f.data(), inference.f.data(), false);
    expect_close("max pool inference", inference.f, dst.d);
  }
}

BOOST_AUTO_TEST_CASE(max_pooling_ties_go_to_the_earliest) {
  Backends b;
  const Pool1dShape s{2, 12, 3, 3, 3, 0};
  auto src = random_pair(s.src().count(), 23);
  for (std::size_t i = 0; i < src.f.size(); ++i) src.d[i] = src.f[i] = std::round(src.f[i]);  // many ties
  auto diff_dst = random_pair(s.dst().count(), 24);
  auto dst = zeros(s.dst().count()), diff_src = zeros(s.src().count());
  OpStatePtr p1, p2;
  b.dnnl.max_pool_forward(p1, s, src.f.data(), dst.f.data(), true);
  b.ref.max_pool_forward(p2, s, src.d.data(), dst.d.data(), true);
  b.dnnl.max_pool_backward(p1, s, diff_dst.f.data(), diff_src.f.data());
  b.ref.max_pool_backward(p2, s, diff_dst.d.data(), diff_src.d.data());
  expect_close("max pool backward with ties", diff_src.f, diff_src.d);
}

BOOST_AUTO_TEST_CASE(kmax_pooling_with_and_without_ties) {
  // The oneDNN backend keeps lists for blocks of 16 channels: fewer than 16, two full blocks and a
  // remainder, and T == k.
  for (const Dims d : {Dims{3, 40, 6}, Dims{2, 30, 37}, Dims{2, 8, 20}})
    for (bool ties : {false, true}) {
      Backends b;
      const Index k = 8;
      auto src = random_pair(d.count(), 31);
      if (ties)
        for (std::size_t i = 0; i < src.f.size(); ++i) src.d[i] = src.f[i] = std::round(src.f[i]);
      auto diff_dst = random_pair(d.n * k * d.c, 32);
      auto dst = zeros(d.n * k * d.c), diff_src = zeros(d.count());
      std::vector<std::int32_t> i1(dst.f.size()), i2(dst.f.size());
      b.dnnl.kmax_pool_forward(d, k, src.f.data(), dst.f.data(), i1.data());
      b.ref.kmax_pool_forward(d, k, src.d.data(), dst.d.data(), i2.data());
      expect_close(ties ? "k-max forward, ties" : "k-max forward", dst.f, dst.d);
      BOOST_TEST(i1 == i2, "chosen positions agree");
      b.dnnl.kmax_pool_backward(d, k, diff_dst.f.data(), i1.data(), diff_src.f.data());
      b.ref.kmax_pool_backward(d, k, diff_dst.d.data(), i2.data(), diff_src.d.data());
      expect_close("k-max backward", diff_src.f, diff_src.d);
    }
}

void check_batch_norm(bool relu, Dims d = {4, 15, 12}, double offset = 0, double forward_tolerance = kTolerance) {
  Backends b;
  auto src = random_pair(d.count(), 41, 2.0);
  for (std::size_t i = 0; i < src.f.size(); ++i)  // channel means of several standard deviations
    src.f[i] = static_cast<float>(src.d[i] += offset * static_cast<double>(i % static_cast<std::size_t>(d.c)) /
                                              static_cast<double>(d.c));
  auto gamma = random_pair(d.c, 42), beta = random_pair(d.c, 43), diff_dst = random_pair(d.count(), 44);
  auto dst = zeros(d.count()), mean = zeros(d.c), var = zeros(d.c), diff_src = zeros(d.count()), dgamma = zeros(d.c),
       dbeta = zeros(d.c);
  auto running_mean = zeros(d.c), running_var = random_pair(d.c, 45);
  for (std::size_t i = 0; i < running_var.f.size(); ++i)
    running_var.f[i] = static_cast<float>(running_var.d[i] = 1.0 + std::abs(running_var.d[i]));
  OpStatePtr s1, s2;
  b.dnnl.batch_norm_forward(s1, d, src.f.data(), gamma.f.data(), beta.f.data(), dst.f.data(), mean.f.data(),
                            var.f.data(), running_mean.f.data(), running_var.f.data(), true, 0.1, 1e-5, relu);
  b.ref.batch_norm_forward(s2, d, src.d.data(), gamma.d.data(), beta.d.data(), dst.d.data(), mean.d.data(),
                           var.d.data(), running_mean.d.data(), running_var.d.data(), true, 0.1, 1e-5, relu);
  textscale::testing::expect_close("batch norm training forward", dst.f, dst.d, forward_tolerance, "onednn",
                                   "reference");
  expect_close("batch norm mean", mean.f, mean.d);
  expect_close("batch norm variance", var.f, var.d);
  expect_close("batch norm running mean", running_mean.f, running_mean.d);
  expect_close("batch norm running variance", running_var.f, running_var.d);
  b.dnnl.batch_norm_backward(s1, d, src.f.data(), dst.f.data(), diff_dst.f.data(), gamma.f.data(), mean.f.data(),
                             var.f.data(), diff_src.f.data(), dgamma.f.data(), dbeta.f.data(), 1e-5, relu);
  b.ref.batch_norm_backward(s2, d, src.d.data(), dst.d.data(), diff_dst.d.data(), gamma.d.data(), mean.d.data(),
                            var.d.data(), diff_src.d.data(), dgamma.d.data(), dbeta.d.data(), 1e-5, relu);
  expect_close("batch norm backward data", diff_src.f, diff_src.d);
  expect_close("batch norm backward gamma", dgamma.f, dgamma.d);
  expect_close("batch norm backward beta", dbeta.f, dbeta.d);
  auto inference = zeros(d.count());
  b.dnnl.batch_norm_forward(s1, d, src.f.data(), gamma.f.data(), beta.f.data(), inference.f.data(), nullptr, nullptr,
                            running_mean.f.data(), running_var.f.data(), false, 0.1, 1e-5, relu);
  b.ref.batch_norm_forward(s2, d, src.d.data(), gamma.d.data(), beta.d.data(), inference.d.data(), nullptr, nullptr,
                           running_mean.d.data(), running_var.d.data(), false, 0.1, 1e-5, relu);
  expect_close("batch norm inference", inference.f, inference.d);
}

BOOST_AUTO_TEST_CASE(batch_normalisation) {
  check_batch_norm(false);
}

// VDCNN's first stage at batch 32: 32k values per channel whose mean is large against their
// spread. The training forward must be exact to float rounding (2e-6): oneDNN 2.6's primitive
// was off by up to 1.5e-5 here, which over VDCNN's eight batch-norm layers moved the loss of a
// training step by 5e-4, and its ReLU mask then flipped values near zero, moving the gamma and
// beta gradients by 0.2-0.3%.
BOOST_AUTO_TEST_CASE(batch_normalisation_long_channels) {
  check_batch_norm(true, {32, 1014, 64}, 12.0, 2e-6);
  check_batch_norm(false, {32, 1014, 64}, 12.0, 2e-6);
}
BOOST_AUTO_TEST_CASE(batch_normalisation_fused_relu) {
  check_batch_norm(true);
}

BOOST_AUTO_TEST_CASE(linear) {
  Backends b;
  for (bool relu : {false, true}) {
    const LinearShape s{7, 50, 13};
    auto src = random_pair(s.n * s.in, 51), w = random_pair(s.out * s.in, 52), bs = random_pair(s.out, 53),
         diff_dst = random_pair(s.n * s.out, 54);
    auto dst = zeros(s.n * s.out), diff_src = zeros(s.n * s.in), dw = zeros(s.out * s.in), db = zeros(s.out);
    OpStatePtr a, c;
    b.dnnl.linear_forward(a, s, src.f.data(), w.f.data(), bs.f.data(), dst.f.data(), relu);
    b.ref.linear_forward(c, s, src.d.data(), w.d.data(), bs.d.data(), dst.d.data(), relu);
    expect_close("linear forward", dst.f, dst.d);
    b.dnnl.linear_backward_data(a, s, diff_dst.f.data(), w.f.data(), diff_src.f.data());
    b.ref.linear_backward_data(c, s, diff_dst.d.data(), w.d.data(), diff_src.d.data());
    expect_close("linear backward data", diff_src.f, diff_src.d);
    b.dnnl.linear_backward_weights(a, s, src.f.data(), diff_dst.f.data(), dw.f.data(), db.f.data());
    b.ref.linear_backward_weights(c, s, src.d.data(), diff_dst.d.data(), dw.d.data(), db.d.data());
    expect_close("linear backward weights", dw.f, dw.d);
    expect_close("linear backward bias", db.f, db.d);
  }
}

void check_embedding(Index n, Index t, double padding, double gradient_mean, double tolerance = kTolerance) {
  Backends b;
  const Index vocab = 70, dim = 16;
  std::mt19937_64 rng(61);
  std::vector<std::uint8_t> codes(static_cast<std::size_t>(n * t));
  for (std::size_t i = 0; i < codes.size(); ++i)  // the last `padding` of each row is code 0
    codes[i] = static_cast<double>(static_cast<Index>(i) % t) >= (1 - padding) * static_cast<double>(t)
                   ? 0
                   : static_cast<std::uint8_t>(rng() % vocab);
  auto table = random_pair(vocab * dim, 62), diff_dst = random_pair(n * t * dim, 63);
  for (std::size_t i = 0; i < diff_dst.f.size(); ++i)
    diff_dst.f[i] = static_cast<float>(diff_dst.d[i] += gradient_mean);
  auto dst = zeros(n * t * dim), diff_table = zeros(vocab * dim);
  b.dnnl.embedding_forward(n, t, vocab, dim, codes.data(), table.f.data(), dst.f.data());
  b.ref.embedding_forward(n, t, vocab, dim, codes.data(), table.d.data(), dst.d.data());
  expect_close("embedding forward", dst.f, dst.d);
  b.dnnl.embedding_backward(n, t, vocab, dim, codes.data(), diff_dst.f.data(), diff_table.f.data());
  b.ref.embedding_backward(n, t, vocab, dim, codes.data(), diff_dst.d.data(), diff_table.d.data());
  textscale::testing::expect_close("embedding backward", diff_table.f, diff_table.d, tolerance, "onednn", "reference");
}

BOOST_AUTO_TEST_CASE(embedding) {
  check_embedding(3, 20, 0.0, 0.0);
  // AG News at batch 32: most positions are padding, so code 0 sums 26k gradients. Float sums
  // were off by 3.4e-6 here; the double ones by 5e-8.
  check_embedding(32, 1014, 0.8, 0.3, 1e-6);
}

// The pieces of batch normalisation synchronised over ranks: per-channel sums (in an order that
// does not depend on the thread count) and the input gradient from given statistics.
BOOST_AUTO_TEST_CASE(synchronised_batch_norm_pieces) {
  Backends b;
  const Index rows = 1013, c = 24;  // several 256-row blocks and a remainder
  auto x = random_pair(rows * c, 81), dy = random_pair(rows * c, 82), gamma = random_pair(c, 83);
  std::vector<double> fa(c), fab(c), da(c), dab(c), fsq(c), dsq(c);
  b.dnnl.channel_sums(rows, c, dy.f.data(), x.f.data(), fa.data(), fab.data());
  b.ref.channel_sums(rows, c, dy.d.data(), x.d.data(), da.data(), dab.data());
  b.dnnl.channel_sums(rows, c, x.f.data(), nullptr, fa.data(), fsq.data());
  b.ref.channel_sums(rows, c, x.d.data(), nullptr, da.data(), dsq.data());
  for (Index k = 0; k < c; ++k) {
    const auto i = static_cast<std::size_t>(k);
    BOOST_TEST(fab[i] == dab[i], boost::test_tools::tolerance(1e-9));
    BOOST_TEST(fsq[i] == dsq[i], boost::test_tools::tolerance(1e-9));
    BOOST_TEST(std::abs(fa[i] - da[i]) < 1e-9 * rows);
  }
  std::vector<double> again_a(c), again_ab(c);
  DnnlBackend::set_threads(3);
  b.dnnl.channel_sums(rows, c, dy.f.data(), x.f.data(), again_a.data(), again_ab.data());
  DnnlBackend::set_threads(2);
  b.dnnl.channel_sums(rows, c, dy.f.data(), x.f.data(), fa.data(), fab.data());
  BOOST_TEST(again_ab == fab);  // bitwise, whatever the thread count
  std::vector<double> mean(c), inv_std(c), mean_dy(c), mean_dy_xhat(c);
  for (Index k = 0; k < c; ++k) {
    const auto i = static_cast<std::size_t>(k);
    mean[i] = 0.1 * static_cast<double>(k);
    inv_std[i] = 1.0 + 0.05 * static_cast<double>(k);
    mean_dy[i] = 0.01 * static_cast<double>(k);
    mean_dy_xhat[i] = -0.02 * static_cast<double>(k);
  }
  auto out = zeros(rows * c);
  b.dnnl.batch_norm_backward_data(rows, c, x.f.data(), dy.f.data(), mean.data(), inv_std.data(), gamma.f.data(),
                                  mean_dy.data(), mean_dy_xhat.data(), out.f.data());
  b.ref.batch_norm_backward_data(rows, c, x.d.data(), dy.d.data(), mean.data(), inv_std.data(), gamma.d.data(),
                                 mean_dy.data(), mean_dy_xhat.data(), out.d.data());
  expect_close("batch-norm backward from global statistics", out.f, out.d);
}

BOOST_AUTO_TEST_CASE(elementwise_loss_and_optimizers) {
  Backends b;
  const Index count = 200003;  // several of the blocks the loops are split into, and a remainder
  auto x = random_pair(count, 71), y = random_pair(count, 72);
  auto out = zeros(count), mask = zeros(count);
  b.dnnl.relu_forward(count, x.f.data(), out.f.data());
  b.ref.relu_forward(count, x.d.data(), out.d.data());
  expect_close("relu forward", out.f, out.d);
  b.dnnl.relu_backward(count, x.f.data(), y.f.data(), out.f.data());
  b.ref.relu_backward(count, x.d.data(), y.d.data(), out.d.data());
  expect_close("relu backward", out.f, out.d);
  b.dnnl.add(count, x.f.data(), y.f.data(), out.f.data());
  b.ref.add(count, x.d.data(), y.d.data(), out.d.data());
  expect_close("add", out.f, out.d);
  b.dnnl.multiply(count, x.f.data(), y.f.data(), out.f.data());
  b.ref.multiply(count, x.d.data(), y.d.data(), out.d.data());
  expect_close("multiply", out.f, out.d);
  b.dnnl.dropout_forward(count, 0.3, 1234, 77, x.f.data(), out.f.data(), mask.f.data());
  b.ref.dropout_forward(count, 0.3, 1234, 77, x.d.data(), out.d.data(), mask.d.data());
  expect_close("dropout forward", out.f, out.d);
  expect_close("dropout mask", mask.f, mask.d);
  // A slice starting at element `first` of a larger batch gets that batch's masks (data-parallel
  // ranks hold slices of the global batch).
  auto whole = zeros(count + 77);
  auto whole_out = zeros(count + 77);
  auto whole_x = random_pair(count + 77, 5);
  b.dnnl.dropout_forward(count + 77, 0.3, 1234, 0, whole_x.f.data(), whole_out.f.data(), whole.f.data());
  BOOST_TEST(std::equal(mask.f.begin(), mask.f.end(), whole.f.begin() + 77));
  BOOST_TEST(std::abs(b.dnnl.sum_squares(count, x.f.data()) - b.ref.sum_squares(count, x.d.data())) <
             1e-6 * b.ref.sum_squares(count, x.d.data()));

  const Index n = 9, k = 5;
  auto logits = random_pair(n * k, 73, 3.0);
  std::vector<std::int32_t> labels{0, 1, 2, 3, 4, 4, 3, 2, 1};
  auto diff = zeros(n * k);
  double l1 = b.dnnl.softmax_cross_entropy(n, k, logits.f.data(), labels.data(), diff.f.data());
  double l2 = b.ref.softmax_cross_entropy(n, k, logits.d.data(), labels.data(), diff.d.data());
  BOOST_TEST(l1 == l2, boost::test_tools::tolerance(1e-5));
  expect_close("softmax cross-entropy gradient", diff.f, diff.d);

  auto param = random_pair(count, 74), grad = random_pair(count, 75), velocity = zeros(count), m = zeros(count),
       v = zeros(count);
  for (int step = 1; step <= 3; ++step) {
    b.dnnl.sgd_step(count, param.f.data(), grad.f.data(), velocity.f.data(), 0.1, 0.9, 1e-4, nullptr);
    b.ref.sgd_step(count, param.d.data(), grad.d.data(), velocity.d.data(), 0.1, 0.9, 1e-4, nullptr);
  }
  expect_close("sgd momentum", param.f, param.d);
  for (int step = 1; step <= 3; ++step) {
    b.dnnl.adam_step(count, param.f.data(), grad.f.data(), m.f.data(), v.f.data(), 1e-3, 0.9, 0.999, 1e-8, 1e-4, step,
                     nullptr);
    b.ref.adam_step(count, param.d.data(), grad.d.data(), m.d.data(), v.d.data(), 1e-3, 0.9, 0.999, 1e-8, 1e-4, step,
                    nullptr);
  }
  expect_close("adam", param.f, param.d);
  // A step factor (clipping) multiplies the gradient; 0 skips the step.
  const float half_f = 0.5f, zero_f = 0.0f;
  const double half_d = 0.5, zero_d = 0.0;
  for (int step = 4; step <= 5; ++step) {
    b.dnnl.adam_step(count, param.f.data(), grad.f.data(), m.f.data(), v.f.data(), 1e-3, 0.9, 0.999, 1e-8, 1e-4, step,
                     &half_f);
    b.ref.adam_step(count, param.d.data(), grad.d.data(), m.d.data(), v.d.data(), 1e-3, 0.9, 0.999, 1e-8, 1e-4, step,
                    &half_d);
    b.dnnl.sgd_step(count, param.f.data(), grad.f.data(), velocity.f.data(), 0.1, 0.9, 1e-4, &half_f);
    b.ref.sgd_step(count, param.d.data(), grad.d.data(), velocity.d.data(), 0.1, 0.9, 1e-4, &half_d);
  }
  expect_close("adam and sgd with a step factor", param.f, param.d);
  const auto before = param.f, velocity_before = velocity.f, m_before = m.f;
  b.dnnl.sgd_step(count, param.f.data(), grad.f.data(), velocity.f.data(), 0.1, 0.9, 1e-4, &zero_f);
  b.dnnl.adam_step(count, param.f.data(), grad.f.data(), m.f.data(), v.f.data(), 1e-3, 0.9, 0.999, 1e-8, 1e-4, 6,
                   &zero_f);
  b.ref.sgd_step(count, param.d.data(), grad.d.data(), velocity.d.data(), 0.1, 0.9, 1e-4, &zero_d);
  BOOST_TEST((param.f == before && velocity.f == velocity_before && m.f == m_before));
  expect_close("a skipped step", param.f, param.d);
}

// The masks are a hash of (seed, element), not a generator's stream, so check that they have the
// distribution PyTorch's Bernoulli masks have: each element kept with probability 1 - p and then
// scaled by exactly 1 / (1 - p), independently of its neighbour, of the next step's mask and of the
// other layer's mask. Fractions over 2^20 elements must lie within 5 standard errors.
BOOST_AUTO_TEST_CASE(dropout_mask_statistics) {
  DnnlBackend backend;
  const Index count = Index{1} << 20;
  const std::vector<float> ones(static_cast<std::size_t>(count), 1.0f);
  auto within = [&](const std::string& what, double got, double want) {
    const double error = std::sqrt(want * (1 - want) / static_cast<double>(count));
    BOOST_TEST_INFO(what << ": " << got << ", expected " << want << " +- 5 x " << error);
    BOOST_TEST(std::abs(got - want) <= 5 * error);
  };
  for (double p : {0.1, 0.5, 0.75}) {
    auto mask = [&](std::uint64_t layer, std::uint64_t step) {
      std::vector<float> out(static_cast<std::size_t>(count)), m(static_cast<std::size_t>(count));
      backend.dropout_forward(count, p, dropout_seed(1, layer, step), 0, ones.data(), out.data(), m.data());
      BOOST_TEST(std::equal(out.begin(), out.end(), m.begin()));  // input 1: the output is the mask
      return m;
    };
    const auto a = mask(1, 10), next_step = mask(1, 11), other_layer = mask(2, 10);
    const float scale = static_cast<float>(1 / (1 - p));
    BOOST_TEST(std::all_of(a.begin(), a.end(), [&](float v) { return v == 0.0f || v == scale; }));
    double kept = 0, both_neighbours = 0, same_next = 0, same_other = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
      kept += a[i] != 0;
      both_neighbours += a[i] != 0 && a[(i + 1) % a.size()] != 0;
      same_next += (a[i] != 0) == (next_step[i] != 0);
      same_other += (a[i] != 0) == (other_layer[i] != 0);
    }
    const double n = static_cast<double>(count), agree = p * p + (1 - p) * (1 - p);
    const std::string at = " (p " + std::to_string(p) + ")";
    within("kept" + at, kept / n, 1 - p);
    within("neighbours both kept" + at, both_neighbours / n, (1 - p) * (1 - p));
    within("same decision at the next step" + at, same_next / n, agree);
    within("same decision in the other layer" + at, same_other / n, agree);
  }
}

BOOST_AUTO_TEST_CASE(results_do_not_depend_on_the_thread_count) {
  // The hand-written loops split work in fixed blocks and combine partial sums in order.
  const int threads = DnnlBackend::threads();
  const Conv1dShape s{8, 60, 69, 64, 7, 1, 0};
  std::mt19937_64 rng(81);
  std::vector<std::uint8_t> codes(static_cast<std::size_t>(s.n * s.t_in));
  for (auto& c : codes) c = static_cast<std::uint8_t>(rng() % 70);
  auto diff_dst = random_pair(s.dst().count(), 82), big = random_pair(300000, 83);
  auto run = [&](int t) {
    DnnlBackend::set_threads(t);
    DnnlBackend dnnl;
    std::vector<float> dw(static_cast<std::size_t>(s.weights_count())), db(static_cast<std::size_t>(s.c_out));
    OpStatePtr state;
    dnnl.onehot_conv1d_backward_weights(state, s, codes.data(), diff_dst.f.data(), dw.data(), db.data());
    // Winograd convolutions, forward: several blocks of tiles, and a single block.
    for (const Conv1dShape w : {Conv1dShape{5, 70, 128, 136, 3, 1, 1}, Conv1dShape{1, 20, 64, 64, 3, 1, 1}}) {
      std::vector<float> wdst(static_cast<std::size_t>(w.dst().count()));
      OpStatePtr wstate;
      dnnl.conv1d_forward(wstate, w, big.f.data(), big.f.data() + w.src().count(), nullptr, wdst.data(), false);
      dw.insert(dw.end(), wdst.begin(), wdst.end());
    }
    dw.push_back(static_cast<float>(dnnl.sum_squares(static_cast<Index>(big.f.size()), big.f.data())));
    dw.insert(dw.end(), db.begin(), db.end());
    return dw;
  };
  const auto one = run(1), two = run(2), three = run(3);
  DnnlBackend::set_threads(threads);
  BOOST_TEST((one == two), "1 and 2 threads give bitwise the same results");
  BOOST_TEST((one == three), "1 and 3 threads give bitwise the same results");
}

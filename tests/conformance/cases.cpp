// The conformance cases (conformance.h): each runs on every backend configuration, against the
// reference backend in double on the same float inputs.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "conformance.h"
#include "textscale/common/error.h"
#include "textscale/engine/dropout_mask.h"

using namespace textscale::testing::conformance;

void textscale::testing::conformance::check_conv(Harness& h, const Conv1dShape& s, bool bias, bool relu,
                                                 bool relu_input) {
  auto src = h.random(s.src().count(), 1);
  if (relu_input) {
    std::vector<float> values(src.ref.begin(), src.ref.end());
    for (auto& x : values) x = std::abs(x);
    h.set(src, values);
  }
  auto w = h.random(s.weights_count(), 2, 0.1), bs = h.random(s.c_out, 3, 0.1), diff_dst = h.random(s.dst().count(), 4);
  auto dst = h.output(s.dst().count()), diff_src = h.output(s.src().count()), dw = h.output(s.weights_count()),
       db = h.output(s.c_out);
  State forward, data, weights;  // one per operation, as a convolution layer keeps them
  const std::string name = describe(s) + (relu ? " relu" : "");
  h.run([&](auto& b, auto at) {
    b.conv1d_forward(at(forward), s, at(src), at(w), bias ? at(bs) : nullptr, at(dst), relu);
  });
  h.expect_conv(name + " forward", dst, s, bias);
  h.run([&](auto& b, auto at) { b.conv1d_backward_data(at(data), s, at(diff_dst), at(w), at(diff_src)); });
  h.expect_conv(name + " backward data", diff_src, s, false);
  h.run([&](auto& b, auto at) {
    b.conv1d_backward_weights(at(weights), s, at(src), at(diff_dst), at(dw), bias ? at(db) : nullptr);
  });
  h.expect_conv(name + " backward weights", dw, s, false);
  // The bias gradient is summed from the fp32 incoming gradient in every precision.
  if (bias) h.expect(name + " backward bias", db);
}

// Convolutions of the published models' kinds, and the shapes each backend treats specially.
TS_CONFORMANCE_CASE(convolution) {
  check_conv(h, {4, 50, 16, 32, 7, 1, 0}, true, false);  // Crepe-like
  check_conv(h, {4, 60, 64, 96, 7, 1, 0}, true, true);   // Crepe's kernel 7
  check_conv(h, {3, 33, 8, 16, 3, 1, 1}, false, true);   // VDCNN-like, fused ReLU
  check_conv(h, {3, 33, 16, 64, 3, 1, 1}, false, true);  // VDCNN's first convolution
  check_conv(h, {2, 31, 5, 6, 4, 2, 2}, true, false);    // stride and asymmetric padding
  check_conv(h, {2, 31, 24, 40, 4, 2, 2}, true, false);
  check_conv(h, {2, 20, 12, 24, 1, 1, 0}, false, false);  // 1x1 projection
  check_conv(h, {2, 20, 48, 24, 1, 1, 0}, false, false);
  // 512 channels: the oneDNN backend runs forward and backward-data in its blocked layout.
  check_conv(h, {2, 20, 512, 512, 3, 1, 1}, false, true);
  check_conv(h, {2, 20, 256, 512, 3, 1, 1}, false, false);
  check_conv(h, {2, 20, 256, 512, 3, 1, 1}, false, true);
  check_conv(h, {2, 20, 512, 256, 1, 1, 0}, true, false);
  // Kernel 3, stride 1, >= 64 channels in and out: the oneDNN backend's fp32 forward and
  // backward-data run as Winograd F(4, 3) (src/engine/cpu/winograd.h), backward-weights too from
  // 128 channels; these shapes cover several blocks of tiles, partial last tiles, channel counts
  // that are not multiples of 16, and padding 0, 1 and 2.
  check_conv(h, {5, 70, 128, 136, 3, 1, 1}, true, true);
  check_conv(h, {3, 70, 128, 136, 3, 1, 1}, true, false);
  check_conv(h, {3, 37, 256, 128, 3, 1, 0}, true, false);
  check_conv(h, {2, 3, 128, 128, 3, 1, 0}, false, false);
  check_conv(h, {2, 9, 144, 128, 3, 1, 2}, false, false);
  check_conv(h, {9, 240, 128, 136, 3, 1, 1}, true, false);  // 540 tiles: two blocks of the weight gradient
  // Longer kernels run as groups of three taps there (the last group padded with zero taps).
  check_conv(h, {3, 60, 128, 136, 7, 1, 0}, true, true);  // Crepe's kernel 7
  check_conv(h, {2, 33, 128, 128, 7, 1, 6}, false, false);
  check_conv(h, {2, 30, 144, 128, 5, 1, 2}, true, false);
  check_conv(h, {2, 26, 128, 128, 4, 1, 1}, false, false);
}

// VDCNN's first layers at batch 32: the weight gradients sum over 32k positions.
TS_CONFORMANCE_CASE(convolution_long_reductions) {
  check_conv(h, {32, 1014, 16, 64, 3, 1, 1}, true, false);         // temporal convolution (oneDNN direct)
  check_conv(h, {32, 1014, 64, 64, 3, 1, 1}, false, true, true);   // Winograd; weight gradient direct
  check_conv(h, {32, 254, 128, 128, 3, 1, 1}, false, true, true);  // Winograd weight gradient
}

// One call site, batch sizes and lengths changing back and forth (an epoch's last batch is
// smaller): each (batch size, length) has its own primitives, descriptors and algorithms (and,
// in bf16 on the GPU, data type), set again when it returns.
TS_CONFORMANCE_CASE(convolution_shape_changes) {
  for (const auto& [base, bias, relu] : {std::tuple{Conv1dShape{0, 0, 8, 16, 3, 1, 0}, false, false},
                                         std::tuple{Conv1dShape{0, 0, 32, 48, 3, 1, 1}, true, true}}) {
    State forward, data, weights;
    for (const auto& [n, t] : {std::pair<Index, Index>{5, 20}, {2, 20}, {5, 20}, {5, 37}, {5, 20}}) {
      Conv1dShape s = base;
      s.n = n;
      s.t_in = t;
      const auto seed = 10 + static_cast<std::uint64_t>(n * t);
      auto src = h.random(s.src().count(), seed), w = h.random(s.weights_count(), 11, 0.1),
           bs = h.random(s.c_out, 12, 0.1), diff_dst = h.random(s.dst().count(), seed + 1);
      auto dst = h.output(s.dst().count()), diff_src = h.output(s.src().count()), dw = h.output(s.weights_count()),
           db = h.output(s.c_out);
      const std::string name = describe(s);
      h.run([&](auto& b, auto at) {
        b.conv1d_forward(at(forward), s, at(src), at(w), bias ? at(bs) : nullptr, at(dst), relu);
      });
      h.expect_conv(name + " forward", dst, s, bias);
      h.run([&](auto& b, auto at) { b.conv1d_backward_data(at(data), s, at(diff_dst), at(w), at(diff_src)); });
      h.expect_conv(name + " backward data", diff_src, s, false);
      h.run([&](auto& b, auto at) {
        b.conv1d_backward_weights(at(weights), s, at(src), at(diff_dst), at(dw), bias ? at(db) : nullptr);
      });
      h.expect_conv(name + " backward weights", dw, s, false);
      if (bias) h.expect(name + " backward bias", db);
    }
  }
}

TS_CONFORMANCE_CASE(onehot_convolution) {
  const Conv1dShape s{3, 40, 69, 48, 7, 1, 0};
  std::mt19937_64 rng(5);
  std::vector<std::uint8_t> host(static_cast<std::size_t>(s.n * s.t_in));
  for (auto& c : host) c = static_cast<std::uint8_t>(rng() % 70);
  auto codes = h.data(host);
  auto w = h.random(s.weights_count(), 6), bs = h.random(s.c_out, 7), diff_dst = h.random(s.dst().count(), 8);
  const double gradient = h.tolerance().onehot_gradient > 0 ? h.tolerance().onehot_gradient : h.tolerance().fp32;
  for (bool relu : {false, true}) {
    auto dst = h.output(s.dst().count()), dw = h.output(s.weights_count()), db = h.output(s.c_out);
    State forward, weights;
    const std::string name = std::string("one-hot conv") + (relu ? " relu" : "");
    // A gather of fp32 weights in every precision.
    h.run([&](auto& b, auto at) { b.onehot_conv1d_forward(at(forward), s, at(codes), at(w), at(bs), at(dst), relu); });
    h.expect(name + " forward", dst);
    h.run([&](auto& b, auto at) {
      b.onehot_conv1d_backward_weights(at(weights), s, at(codes), at(diff_dst), at(dw), at(db));
    });
    h.expect(name + " backward weights", dw, gradient);
    h.expect(name + " backward bias", db);
  }
}

// Crepe's first block fused (one-hot convolution, ReLU, max pooling) against the reference
// backend's composition of the three operations: training and inference forward, and the weight
// and bias gradients. Sample 0 repeats one code over its first half and ends in padding, so that
// windows tie exactly (the earliest position must win); negative biases leave windows whose
// maximum is 0 (no gradient passes the ReLU there). The block does no products, so fp32's
// tolerance holds in every precision. The gradients repeat bitwise, and backward after an
// inference forward is refused.
TS_CONFORMANCE_CASE(onehot_convolution_relu_pool) {
  for (const OneHotPoolShape& s : {OneHotPoolShape{{4, 1014, 69, 256, 7, 1, 0}, 3, 3},  // Crepe's
                                   OneHotPoolShape{{3, 60, 69, 48, 7, 1, 0}, 3, 3},     // Crepe's, smaller
                                   OneHotPoolShape{{2, 41, 10, 37, 3, 1, 0}, 4, 2},     // overlapping windows
                                   OneHotPoolShape{{2, 20, 5, 33, 2, 1, 0}, 2, 3},
                                   // an alphabet too large for the GPU's shared memory
                                   OneHotPoolShape{{2, 30, 255, 40, 8, 1, 0}, 3, 3}}) {
    const Conv1dShape& c = s.conv;
    const std::string name = "one-hot block " + describe(c);
    std::mt19937_64 rng(5);
    std::vector<std::uint8_t> host(static_cast<std::size_t>(c.n * c.t_in));
    for (auto& code : host) code = static_cast<std::uint8_t>(rng() % static_cast<std::uint64_t>(c.c_in + 1));
    for (Index t = 0; t < c.t_in; ++t) host[static_cast<std::size_t>(t)] = t < c.t_in / 2 ? 1 : 0;
    auto codes = h.data(host);
    auto w = h.random(c.weights_count(), 6), bs = h.random(c.c_out, 7), diff_dst = h.random(s.dst().count(), 8);
    auto dst = h.output(s.dst().count()), dw = h.output(c.weights_count()), db = h.output(c.c_out);
    State block;
    h.run([&](auto& b, auto at) {
      b.onehot_conv1d_relu_pool_forward(at(block), s, at(codes), at(w), at(bs), at(dst), true);
    });
    h.expect(name + " forward", dst);
    BOOST_TEST(std::count(dst.ref.begin(), dst.ref.end(), 0.0) > 0, "some windows have a maximum of 0");
    h.run([&](auto& b, auto at) {
      b.onehot_conv1d_relu_pool_backward_weights(at(block), s, at(codes), at(dst), at(diff_dst), at(dw), at(db));
    });
    h.expect(name + " backward weights", dw);
    h.expect(name + " backward bias", db);
    const std::vector<float> first = h.download(dw);
    h.backend().onehot_conv1d_relu_pool_backward_weights(block.under_test, s, codes.dev.data(), dst.dev.data(),
                                                         diff_dst.dev.data(), dw.dev.data(), db.dev.data());
    BOOST_TEST((h.download(dw) == first), name << ": the weight gradient repeats bitwise");
    auto inference = h.output(s.dst().count());
    inference.ref = dst.ref;
    OpStatePtr fresh;
    h.backend().onehot_conv1d_relu_pool_forward(fresh, s, codes.dev.data(), w.dev.data(), bs.dev.data(),
                                                inference.dev.data(), false);
    h.expect(name + " inference", inference);
    BOOST_CHECK_THROW(
        h.backend().onehot_conv1d_relu_pool_backward_weights(fresh, s, codes.dev.data(), dst.dev.data(),
                                                             diff_dst.dev.data(), dw.dev.data(), db.dev.data()),
        textscale::Error);
  }
}

namespace {

// Training forward, backward and inference forward of max pooling; with `ties`, the source is
// rounded to integers, so that windows tie often (the earliest position must win).
void check_max_pool(Harness& h, const Pool1dShape& s, bool ties) {
  auto src = h.random(s.src().count(), ties ? 23 : 21), diff_dst = h.random(s.dst().count(), ties ? 24 : 22);
  if (ties) {
    std::vector<float> values(src.ref.begin(), src.ref.end());
    for (auto& x : values) x = std::round(x);
    h.set(src, values);
  }
  auto dst = h.output(s.dst().count()), diff_src = h.output(s.src().count());
  const std::string name = "max pool n" + std::to_string(s.n) + " t" + std::to_string(s.t_in) + " c" +
                           std::to_string(s.c) + " k" + std::to_string(s.kernel) + " s" + std::to_string(s.stride) +
                           " p" + std::to_string(s.pad) + (ties ? " with ties" : "");
  State pool;
  h.run([&](auto& b, auto at) { b.max_pool_forward(at(pool), s, at(src), at(dst), true); });
  h.expect(name + " forward", dst);
  h.run([&](auto& b, auto at) { b.max_pool_backward(at(pool), s, at(diff_dst), at(diff_src)); });
  h.expect(name + " backward", diff_src);
  auto inference = h.output(s.dst().count());
  inference.ref = dst.ref;
  h.backend().max_pool_forward(pool.under_test, s, src.dev.data(), inference.dev.data(), false);
  h.expect(name + " inference", inference);
}

}  // namespace

TS_CONFORMANCE_CASE(max_pooling) {
  for (const Pool1dShape s :
       {Pool1dShape{3, 30, 8, 3, 3, 0}, Pool1dShape{2, 25, 5, 3, 2, 1}, Pool1dShape{2, 33, 16, 3, 2, 1}})
    check_max_pool(h, s, false);
}

TS_CONFORMANCE_CASE(max_pooling_ties_go_to_the_earliest) {
  for (const Pool1dShape s : {Pool1dShape{2, 12, 3, 3, 3, 0}, Pool1dShape{2, 25, 5, 3, 2, 1}})
    check_max_pool(h, s, true);
}

// Fewer than 16 channels, two full blocks of 16 and a remainder (the oneDNN backend keeps lists
// for blocks of 16 channels), T == k, and a length that is not a multiple of anything.
TS_CONFORMANCE_CASE(kmax_pooling_with_and_without_ties) {
  for (const Dims d : {Dims{3, 40, 6}, Dims{2, 30, 37}, Dims{2, 8, 20}, Dims{3, 37, 10}})
    for (bool ties : {false, true}) {
      const Index k = 8;
      auto src = h.random(d.count(), 31), diff_dst = h.random(d.n * k * d.c, 32);
      if (ties) {
        std::vector<float> values(src.ref.begin(), src.ref.end());
        for (auto& x : values) x = std::round(x);
        h.set(src, values);
      }
      auto dst = h.output(d.n * k * d.c), diff_src = h.output(d.count());
      auto indices = h.data(std::vector<std::int32_t>(static_cast<std::size_t>(d.n * k * d.c)));
      const std::string name = "k-max n" + std::to_string(d.n) + " t" + std::to_string(d.t) + " c" +
                               std::to_string(d.c) + (ties ? ", ties" : "");
      h.run([&](auto& b, auto at) { b.kmax_pool_forward(d, k, at(src), at(dst), at(indices)); });
      h.expect(name + " forward", dst);
      BOOST_TEST((h.download(indices) == indices.host), name << ": chosen positions agree");
      h.run([&](auto& b, auto at) { b.kmax_pool_backward(d, k, at(diff_dst), at(indices), at(diff_src)); });
      h.expect(name + " backward", diff_src);
    }
  // Three equal largest values: the two earlier ones are kept.
  auto src = h.tensor({1, 3, 3, 2, 3, 0});
  auto dst = h.output(2);
  auto indices = h.data(std::vector<std::int32_t>(2));
  h.backend().kmax_pool_forward(Dims{1, 6, 1}, 2, src.dev.data(), dst.dev.data(), indices.dev.data());
  BOOST_TEST((h.download(indices) == std::vector<std::int32_t>{1, 2}), "ties keep the earlier positions");
}

namespace {

// Channel means of `offset` times k / C standard deviations, running variances of 1 + |normal|.
void check_batch_norm(Harness& h, Dims d, bool relu, double offset = 0,
                      std::optional<double> forward_tolerance = std::nullopt) {
  std::vector<float> values(static_cast<std::size_t>(d.count()));
  {
    std::mt19937_64 rng(41);
    std::normal_distribution<float> normal(0.0f, 2.0f);
    for (std::size_t i = 0; i < values.size(); ++i)
      values[i] = static_cast<float>(static_cast<double>(normal(rng)) +
                                     offset * static_cast<double>(i % static_cast<std::size_t>(d.c)) /
                                         static_cast<double>(d.c));
  }
  auto src = h.tensor(values);
  auto gamma = h.random(d.c, 42), beta = h.random(d.c, 43), diff_dst = h.random(d.count(), 44);
  auto dst = h.output(d.count()), mean = h.output(d.c), var = h.output(d.c), diff_src = h.output(d.count()),
       dgamma = h.output(d.c), dbeta = h.output(d.c);
  auto running_mean = h.tensor(std::vector<float>(static_cast<std::size_t>(d.c))), running_var = h.random(d.c, 45);
  std::vector<float> variances(running_var.ref.begin(), running_var.ref.end());
  for (auto& v : variances) v = 1.0f + std::abs(v);
  h.set(running_var, variances);
  const std::string name = "batch norm n" + std::to_string(d.n) + " t" + std::to_string(d.t) + " c" +
                           std::to_string(d.c) + (relu ? " relu" : "");
  State state;
  h.run([&](auto& b, auto at) {
    b.batch_norm_forward(at(state), d, at(src), at(gamma), at(beta), at(dst), at(mean), at(var), at(running_mean),
                         at(running_var), true, 0.1, 1e-5, relu);
  });
  h.expect(name + " training forward", dst, forward_tolerance);
  h.expect(name + " mean", mean);
  h.expect(name + " variance", var);
  h.expect(name + " running mean", running_mean);
  h.expect(name + " running variance (unbiased)", running_var);
  h.run([&](auto& b, auto at) {
    b.batch_norm_backward(at(state), d, at(src), at(dst), at(diff_dst), at(gamma), at(mean), at(var), at(diff_src),
                          at(dgamma), at(dbeta), 1e-5, relu);
  });
  h.expect(name + " backward data", diff_src, h.tolerance().batch_norm_backward_data);
  h.expect(name + " backward gamma", dgamma);
  h.expect(name + " backward beta", dbeta);
  auto inference = h.output(d.count());
  h.run([&](auto& b, auto at) {
    b.batch_norm_forward(at(state), d, at(src), at(gamma), at(beta), at(inference), nullptr, nullptr, at(running_mean),
                         at(running_var), false, 0.1, 1e-5, relu);
  });
  h.expect(name + " inference", inference);
}

}  // namespace

// The second shape has enough rows per chunk of the GPU's column sums (257) for the rows nvcc
// unrolls, and 171 chunks.
TS_CONFORMANCE_CASE(batch_normalisation) {
  for (const Dims d : {Dims{4, 15, 12}, Dims{4, 25, 12}, Dims{40, 1100, 36}})
    for (bool relu : {false, true}) check_batch_norm(h, d, relu);
}

// VDCNN's first stage at batch 32: 32k values per channel whose mean is large against their
// spread. The training forward must be exact to float rounding (2e-6): oneDNN 2.6's primitive
// was off by up to 1.5e-5 here, which over VDCNN's eight batch-norm layers moved the loss of a
// training step by 5e-4, and its ReLU mask then flipped values near zero, moving the gamma and
// beta gradients by 0.2-0.3%.
TS_CONFORMANCE_CASE(batch_normalisation_long_channels) {
  check_batch_norm(h, {32, 1014, 64}, true, 12.0, 2e-6);
  check_batch_norm(h, {32, 1014, 64}, false, 12.0, 2e-6);
}

// The pieces of batch normalisation synchronised over ranks: per-channel sums (in an order that
// does not depend on the thread count) and the input gradient from given statistics. The sums are
// in double of exact products of floats: each side is within rows x 2^-53 of the sum of the
// terms' magnitudes, whatever its order, so two sides are within twice that.
TS_CONFORMANCE_CASE(synchronised_batch_norm_pieces) {
  for (const auto& [rows, c] : {std::pair<Index, Index>{1013, 24},  // several 256-row blocks and a remainder
                                std::pair<Index, Index>{300, 7}}) {
    auto x = h.random(rows * c, 81), dy = h.random(rows * c, 82), gamma = h.random(c, 83);
    const auto channels = static_cast<std::size_t>(c);
    PerSide<std::vector<double>> sum_a, sum_ab, sum_x, sum_xx;
    for (auto* p : {&sum_a, &sum_ab, &sum_x, &sum_xx})
      p->under_test = p->reference = p->emulated = std::vector<double>(channels);
    h.run([&](auto& b, auto at) {
      b.channel_sums(rows, c, at(dy), at(x), at(sum_a).data(), at(sum_ab).data());
      b.channel_sums(rows, c, at(x), nullptr, at(sum_x).data(), at(sum_xx).data());
    });
    const double bound = 2.0 * static_cast<double>(rows) * std::ldexp(1.0, -53);
    for (std::size_t k = 0; k < channels; ++k) {
      double magnitude_a = 0, magnitude_ab = 0, magnitude_x = 0, magnitude_xx = 0;
      for (Index r = 0; r < rows; ++r) {
        const auto i = static_cast<std::size_t>(r) * channels + k;
        magnitude_a += std::abs(dy.ref[i]);
        magnitude_ab += std::abs(dy.ref[i] * x.ref[i]);
        magnitude_x += std::abs(x.ref[i]);
        magnitude_xx += x.ref[i] * x.ref[i];
      }
      BOOST_TEST(std::abs(sum_a.under_test[k] - sum_a.reference[k]) <= bound * magnitude_a);
      BOOST_TEST(std::abs(sum_ab.under_test[k] - sum_ab.reference[k]) <= bound * magnitude_ab);
      BOOST_TEST(std::abs(sum_x.under_test[k] - sum_x.reference[k]) <= bound * magnitude_x);
      BOOST_TEST(std::abs(sum_xx.under_test[k] - sum_xx.reference[k]) <= bound * magnitude_xx);
    }
    if (h.config().set_threads) {
      std::vector<double> again_a(channels), again_ab(channels), threads2_a(channels), threads2_ab(channels);
      const int before = h.config().set_threads(3);
      h.backend().channel_sums(rows, c, dy.dev.data(), x.dev.data(), again_a.data(), again_ab.data());
      h.config().set_threads(2);
      h.backend().channel_sums(rows, c, dy.dev.data(), x.dev.data(), threads2_a.data(), threads2_ab.data());
      h.config().set_threads(before);
      BOOST_TEST((again_ab == threads2_ab && again_a == threads2_a), "bitwise the same with 2 and 3 threads");
    } else {
      BOOST_TEST_MESSAGE(h.config().name << ": no thread count to vary");
    }
    std::vector<double> mean(channels), inv_std(channels), mean_dy(channels), mean_dy_xhat(channels);
    for (std::size_t k = 0; k < channels; ++k) {
      mean[k] = 0.1 * static_cast<double>(k);
      inv_std[k] = 1.0 + 0.05 * static_cast<double>(k);
      mean_dy[k] = 0.01 * static_cast<double>(k) - 0.02;
      mean_dy_xhat[k] = -0.02 * static_cast<double>(k) + 0.05;
    }
    auto out = h.output(rows * c);
    h.run([&](auto& b, auto at) {
      b.batch_norm_backward_data(rows, c, at(x), at(dy), mean.data(), inv_std.data(), at(gamma), mean_dy.data(),
                                 mean_dy_xhat.data(), at(out));
    });
    h.expect("batch-norm backward from global statistics, rows " + std::to_string(rows), out);
  }
}

// Dense layers; one state per backend for all three passes, as a linear layer keeps it.
TS_CONFORMANCE_CASE(linear) {
  for (const auto& [s, bias, relu] :
       {std::tuple{LinearShape{7, 50, 13}, true, false}, std::tuple{LinearShape{7, 50, 13}, true, true},
        std::tuple{LinearShape{6, 40, 24}, true, true}, std::tuple{LinearShape{16, 300, 70}, true, true},
        std::tuple{LinearShape{5, 64, 4}, true, false}, std::tuple{LinearShape{7, 130, 33}, false, false}}) {
    auto src = h.random(s.n * s.in, 51), w = h.random(s.out * s.in, 52, 0.1), bs = h.random(s.out, 53, 0.1),
         diff_dst = h.random(s.n * s.out, 54);
    auto dst = h.output(s.n * s.out), diff_src = h.output(s.n * s.in), dw = h.output(s.out * s.in),
         db = h.output(s.out);
    const std::string name = "linear n" + std::to_string(s.n) + " " + std::to_string(s.in) + "->" +
                             std::to_string(s.out) + (relu ? " relu" : "");
    State state;
    h.run([&](auto& b, auto at) {
      b.linear_forward(at(state), s, at(src), at(w), bias ? at(bs) : nullptr, at(dst), relu);
    });
    h.expect_product(name + " forward", dst);
    h.run([&](auto& b, auto at) { b.linear_backward_data(at(state), s, at(diff_dst), at(w), at(diff_src)); });
    h.expect_product(name + " backward data", diff_src);
    h.run([&](auto& b, auto at) {
      b.linear_backward_weights(at(state), s, at(src), at(diff_dst), at(dw), bias ? at(db) : nullptr);
    });
    h.expect_product(name + " backward weights", dw);
    // The bias gradient is summed from the fp32 incoming gradient in every precision.
    if (bias) h.expect(name + " backward bias", db);
  }
}

namespace {

// The last `padding` of each row is code 0; `gradient_mean` is added to the incoming gradient.
void check_embedding(Harness& h, Index n, Index t, double padding, double gradient_mean,
                     std::optional<double> tolerance = std::nullopt) {
  const Index vocab = 70, dim = 16;
  std::mt19937_64 rng(61);
  std::vector<std::uint8_t> host(static_cast<std::size_t>(n * t));
  for (std::size_t i = 0; i < host.size(); ++i)
    host[i] = static_cast<double>(static_cast<Index>(i) % t) >= (1 - padding) * static_cast<double>(t)
                  ? 0
                  : static_cast<std::uint8_t>(rng() % vocab);
  auto codes = h.data(host);
  auto table = h.random(vocab * dim, 62), diff_dst = h.random(n * t * dim, 63);
  std::vector<float> gradient(diff_dst.ref.begin(), diff_dst.ref.end());
  for (auto& g : gradient) g = static_cast<float>(static_cast<double>(g) + gradient_mean);
  h.set(diff_dst, gradient);
  auto dst = h.output(n * t * dim), diff_table = h.output(vocab * dim);
  const std::string name = "embedding n" + std::to_string(n) + " t" + std::to_string(t);
  h.run([&](auto& b, auto at) { b.embedding_forward(n, t, vocab, dim, at(codes), at(table), at(dst)); });
  h.expect(name + " forward", dst);
  h.run([&](auto& b, auto at) { b.embedding_backward(n, t, vocab, dim, at(codes), at(diff_dst), at(diff_table)); });
  h.expect(name + " backward", diff_table, tolerance);
}

}  // namespace

TS_CONFORMANCE_CASE(embedding) {
  check_embedding(h, 3, 20, 0.0, 0.0);
  check_embedding(h, 3, 50, 0.0, 0.0);
}

// AG News at batch 32: most positions are padding, so code 0 sums 26k gradients. Float sums
// were off by 3.4e-6 here; the double ones by 5e-8.
TS_CONFORMANCE_CASE_NEEDS(embedding_long_sums, Need::long_sums_in_double) {
  check_embedding(h, 32, 1014, 0.8, 0.3, 1e-6);
}

// Word ids (int32) into a table of 50k+ rows: forward is a gather; backward sums the rows of
// repeated ids (a third of the positions draw from 8 frequent ids, padding id 0 fills the row
// ends) and writes 0 to the rest of the dense table.
TS_CONFORMANCE_CASE(word_embedding) {
  const Index n = 6, t = 57, vocab = 50021, dim = 40;
  std::mt19937_64 rng(64);
  std::vector<std::int32_t> host(static_cast<std::size_t>(n * t));
  for (std::size_t i = 0; i < host.size(); ++i) {
    const auto position = static_cast<Index>(i) % t;
    if (position >= t - 9)
      host[i] = 0;
    else if (rng() % 3 == 0)
      host[i] = static_cast<std::int32_t>(1 + rng() % 8);
    else
      host[i] = static_cast<std::int32_t>(rng() % static_cast<std::uint64_t>(vocab));
  }
  host[5] = static_cast<std::int32_t>(vocab - 1);  // the last row of the table
  auto ids = h.data(host);
  auto table = h.random(vocab * dim, 65), diff_dst = h.random(n * t * dim, 66);
  auto dst = h.output(n * t * dim), diff_table = h.output(vocab * dim);
  h.run([&](auto& b, auto at) { b.embedding_forward(n, t, vocab, dim, at(ids), at(table), at(dst)); });
  h.expect("word embedding forward", dst);
  h.run([&](auto& b, auto at) { b.embedding_backward(n, t, vocab, dim, at(ids), at(diff_dst), at(diff_table)); });
  h.expect("word embedding backward", diff_table);
  // Twice the same call gives bitwise the same gradient (backend.h: deterministic).
  const std::vector<float> first = h.download(diff_table);
  h.run([&](auto& b, auto at) { b.embedding_backward(n, t, vocab, dim, at(ids), at(diff_dst), at(diff_table)); });
  BOOST_TEST((h.download(diff_table) == first), "word embedding backward is not deterministic");
}

// The row-sparse word embedding gradient (host memory): over two batches in a row, each call
// clears the rows it listed before, writes bitwise the dense operation's rows of the batch's ids,
// and lists them; the table then equals the dense operation's whole result. A bad id throws
// before anything is written.
TS_CONFORMANCE_CASE(word_embedding_rows) {
  if (!h.memory().is_host()) return;  // row-sparse gradients live in host memory (params.h)
  const Index n = 5, t = 31, vocab = 20011, dim = 24;
  Backend<float>& b = h.backend();
  std::vector<float> rows_table(static_cast<std::size_t>(vocab * dim), 0.0f), dense(rows_table.size());
  std::vector<std::int32_t> rows;
  for (std::uint64_t batch = 0; batch < 2; ++batch) {
    std::mt19937_64 rng(70 + batch);
    std::vector<std::int32_t> ids(static_cast<std::size_t>(n * t));
    for (auto& id : ids)
      id = rng() % 4 == 0 ? static_cast<std::int32_t>(rng() % 6)
                          : static_cast<std::int32_t>(rng() % static_cast<std::uint64_t>(vocab));
    auto diff_dst = h.random(n * t * dim, 71 + batch);
    const std::vector<float> gradient = h.download(diff_dst);
    b.embedding_backward(n, t, vocab, dim, ids.data(), gradient.data(), dense.data());
    b.embedding_backward_rows(n, t, vocab, dim, ids.data(), gradient.data(), rows_table.data(), rows);
    std::vector<std::int32_t> expected = ids;
    std::sort(expected.begin(), expected.end());
    expected.erase(std::unique(expected.begin(), expected.end()), expected.end());
    BOOST_TEST((rows == expected), "batch " << batch << ": the rows listed are the batch's distinct ids");
    BOOST_TEST((rows_table == dense), "batch " << batch << ": the table differs from the dense gradient");
  }
  std::vector<std::int32_t> bad{3, 5, static_cast<std::int32_t>(vocab)};
  const std::vector<std::int32_t> before = rows;
  const std::vector<float> gradient(static_cast<std::size_t>(3 * dim), 1.0f);
  BOOST_CHECK_THROW(b.embedding_backward_rows(1, 3, vocab, dim, bad.data(), gradient.data(), rows_table.data(), rows),
                    textscale::Error);
  BOOST_TEST((rows == before && rows_table == dense), "a bad id changed the gradient");
}

// An id outside [0, V) is an error (backend.h): the CPU backends throw; a GPU backend writes NaN
// to that position's row and leaves it out of the gradient.
TS_CONFORMANCE_CASE(word_embedding_bad_ids) {
  const Index n = 1, t = 4, vocab = 10, dim = 3;
  auto ids = h.data(std::vector<std::int32_t>{3, -1, 7, 10});
  auto table = h.random(vocab * dim, 67), diff_dst = h.random(n * t * dim, 68);
  auto dst = h.output(n * t * dim), diff_table = h.output(vocab * dim);
  Backend<float>& b = h.backend();
  if (h.memory().is_host()) {
    BOOST_CHECK_THROW(b.embedding_forward(n, t, vocab, dim, ids.dev.data(), table.dev.data(), dst.dev.data()),
                      textscale::Error);
    BOOST_CHECK_THROW(
        b.embedding_backward(n, t, vocab, dim, ids.dev.data(), diff_dst.dev.data(), diff_table.dev.data()),
        textscale::Error);
    return;
  }
  b.embedding_forward(n, t, vocab, dim, ids.dev.data(), table.dev.data(), dst.dev.data());
  b.embedding_backward(n, t, vocab, dim, ids.dev.data(), diff_dst.dev.data(), diff_table.dev.data());
  const std::vector<float> out = h.download(dst), grad = h.download(diff_table);
  for (Index e = 0; e < dim; ++e) {
    const auto at = [&](Index row) { return static_cast<std::size_t>(row * dim + e); };
    BOOST_TEST(out[at(0)] == static_cast<float>(table.ref[at(3)]));
    BOOST_TEST(std::isnan(out[at(1)]));
    BOOST_TEST(out[at(2)] == static_cast<float>(table.ref[at(7)]));
    BOOST_TEST(std::isnan(out[at(3)]));
    for (Index row = 0; row < vocab; ++row) {
      const double want = row == 3 ? diff_dst.ref[at(0)] : row == 7 ? diff_dst.ref[at(2)] : 0.0;
      BOOST_TEST(grad[at(row)] == static_cast<float>(want), "row " << row << " feature " << e);
    }
  }
}

// --- Recurrent layers and sequence pooling --------------------------------------------------------

namespace {

std::string describe(const RnnShape& s) {
  return std::string(s.bidirectional ? "bidirectional" : "unidirectional") + " lstm n" + std::to_string(s.n) + " t" +
         std::to_string(s.t) + " " + std::to_string(s.c_in) + "->" + std::to_string(s.hidden);
}

Index row_length(const std::vector<std::int32_t>& lengths, Index i, Index t) {
  return lengths.empty() ? t : lengths[static_cast<std::size_t>(i)];
}

// The values of (N, T, C) `values` at each row's real steps, row after row (`lengths` empty: all T).
template <typename V>
std::vector<float> real_steps(const std::vector<V>& values, Index t, Index c,
                              const std::vector<std::int32_t>& lengths) {
  std::vector<float> kept;
  const auto n = static_cast<Index>(values.size()) / (t * c);
  for (Index i = 0; i < n; ++i)
    for (Index j = 0; j < row_length(lengths, i, t) * c; ++j)
      kept.push_back(static_cast<float>(values[static_cast<std::size_t>(i * t * c + j)]));
  return kept;
}

// Whether (N, T, C) `values` is exactly 0 at every padding step.
bool zero_at_padding(const std::vector<float>& values, Index t, Index c, const std::vector<std::int32_t>& lengths) {
  const auto n = static_cast<Index>(values.size()) / (t * c);
  for (Index i = 0; i < n; ++i)
    for (Index j = row_length(lengths, i, t) * c; j < t * c; ++j)
      if (values[static_cast<std::size_t>(i * t * c + j)] != 0.0f) return false;
  return true;
}

// (N, T', C): each row's real steps from (N, T, C) `values`, then normal values from `seed` at
// every padding step (T' >= T).
std::vector<float> repadded(const std::vector<double>& values, Index t, Index c, Index new_t,
                            const std::vector<std::int32_t>& lengths, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const auto n = static_cast<Index>(values.size()) / (t * c);
  std::vector<float> out(static_cast<std::size_t>(n * new_t * c));
  for (Index i = 0; i < n; ++i)
    for (Index j = 0; j < new_t * c; ++j)
      out[static_cast<std::size_t>(i * new_t * c + j)] =
          j < row_length(lengths, i, t) * c ? static_cast<float>(values[static_cast<std::size_t>(i * t * c + j)])
                                            : normal(rng);
  return out;
}

struct RnnResults {
  Tensor dst, diff_src, diff_weights, diff_bias;
};

// A training forward, backward and an inference forward of `s` over rows of `lengths` (empty: null,
// every row T), against the reference; dst and diff_src must be exactly 0 at the padding steps,
// whatever src and diff_dst hold there, and the same calls again give bitwise the same results.
RnnResults check_rnn(Harness& h, const RnnShape& s, const std::vector<std::int32_t>& lengths, Tensor& src,
                     Tensor& weights, Tensor& bias, Tensor& diff_dst) {
  const Tolerances& tolerance = h.tolerance();
  auto length_data = h.data(lengths);
  RnnResults r{h.output(s.dst().count()), h.output(s.src().count()), h.output(s.weights_count()),
               h.output(s.bias_count())};
  State state;
  const std::string name = describe(s) + (lengths.empty() ? "" : " with lengths");
  auto forward = [&](auto& b, auto at, Tensor& dst, bool training) {
    b.rnn_forward(at(state), s, at(src), lengths.empty() ? nullptr : at(length_data), at(weights), at(bias), at(dst),
                  training);
  };
  auto backward = [&](auto& b, auto at) {
    b.rnn_backward(at(state), s, at(src), lengths.empty() ? nullptr : at(length_data), at(weights), at(r.dst),
                   at(diff_dst), at(r.diff_src), at(r.diff_weights), at(r.diff_bias));
  };
  h.run([&](auto& b, auto at) { forward(b, at, r.dst, true); });
  h.expect(name + " forward", r.dst, tolerance.recurrent);
  const std::vector<float> dst = h.download(r.dst);
  BOOST_TEST(zero_at_padding(dst, s.t, s.dst().c, lengths), name << ": dst is 0 at the padding steps");
  h.run(backward);
  h.expect(name + " backward data", r.diff_src, tolerance.recurrent);
  h.expect(name + " backward weights", r.diff_weights, tolerance.recurrent);
  h.expect(name + " backward bias", r.diff_bias, tolerance.recurrent);
  const std::vector<float> diff_src = h.download(r.diff_src), diff_weights = h.download(r.diff_weights);
  BOOST_TEST(zero_at_padding(diff_src, s.t, s.c_in, lengths), name << ": diff_src is 0 at the padding steps");
  forward(h.backend(), At<float>{Side::under_test}, r.dst, true);
  backward(h.backend(), At<float>{Side::under_test});
  BOOST_TEST(
      (h.download(r.dst) == dst && h.download(r.diff_src) == diff_src && h.download(r.diff_weights) == diff_weights),
      name << ": the same calls again give bitwise the same results");
  auto inference = h.output(s.dst().count());
  h.run([&](auto& b, auto at) { forward(b, at, inference, false); });
  h.expect(name + " inference", inference, tolerance.recurrent);
  BOOST_TEST(zero_at_padding(h.download(inference), s.t, s.dst().c, lengths), name << ": inference 0 at padding");
  return r;
}

// Weights and bias of PyTorch's initialisation's spread (uniform in +-1/sqrt(H): standard
// deviation 1/sqrt(3H)), so that the gates are neither saturated nor linear.
void check_rnn(Harness& h, const RnnShape& s, const std::vector<std::int32_t>& lengths) {
  const double spread = 1 / std::sqrt(3.0 * static_cast<double>(s.hidden));
  auto src = h.random(s.src().count(), 91), weights = h.random(s.weights_count(), 92, spread),
       bias = h.random(s.bias_count(), 93, spread), diff_dst = h.random(s.dst().count(), 94);
  check_rnn(h, s, lengths, src, weights, bias, diff_dst);
}

}  // namespace

// One and two directions; lengths 0, 1, T and between in one batch; every row T (lengths null);
// a layer of the benchmark's width (200 -> 100) over long rows.
TS_CONFORMANCE_CASE(rnn) {
  check_rnn(h, {RnnCell::lstm, 5, 13, 7, 6, false}, {13, 0, 1, 7, 12});
  check_rnn(h, {RnnCell::lstm, 6, 17, 10, 8, true}, {17, 1, 0, 9, 17, 4});
  check_rnn(h, {RnnCell::lstm, 3, 9, 5, 4, true}, {});
  check_rnn(h, {RnnCell::lstm, 3, 9, 5, 4, false}, {});
  check_rnn(h, {RnnCell::lstm, 4, 60, 200, 100, true}, {60, 33, 1, 59});
}

// A row's results do not depend on the padding after it: the same rows with 19 more padding steps,
// and other values at every padding step of src and diff_dst, give the same outputs at the real
// steps and the same gradients (to the rounding of the sums over the batch, which now include
// zero terms at other places).
TS_CONFORMANCE_CASE(rnn_padding_invariance) {
  for (bool bidirectional : {false, true}) {
    const RnnShape s{RnnCell::lstm, 5, 12, 9, 7, bidirectional}, longer{RnnCell::lstm, 5, 31, 9, 7, bidirectional};
    const std::vector<std::int32_t> lengths{12, 0, 1, 5, 11};
    const double spread = 1 / std::sqrt(3.0 * static_cast<double>(s.hidden));  // as check_rnn's
    auto src = h.random(s.src().count(), 95), weights = h.random(s.weights_count(), 96, spread),
         bias = h.random(s.bias_count(), 97, spread), diff_dst = h.random(s.dst().count(), 98);
    auto long_src = h.tensor(repadded(src.ref, s.t, s.c_in, longer.t, lengths, 99)),
         long_diff_dst = h.tensor(repadded(diff_dst.ref, s.t, s.dst().c, longer.t, lengths, 100));
    const RnnResults base = check_rnn(h, s, lengths, src, weights, bias, diff_dst);
    const RnnResults padded = check_rnn(h, longer, lengths, long_src, weights, bias, long_diff_dst);
    const std::string name = describe(s) + " with 19 more padding steps";
    const double tolerance = h.tolerance().recurrent;
    textscale::testing::expect_close(name + ": dst", real_steps(h.download(padded.dst), longer.t, s.dst().c, lengths),
                                     real_steps(h.download(base.dst), s.t, s.dst().c, lengths), tolerance,
                                     h.config().name.c_str(), "shorter");
    textscale::testing::expect_close(
        name + ": diff_src", real_steps(h.download(padded.diff_src), longer.t, s.c_in, lengths),
        real_steps(h.download(base.diff_src), s.t, s.c_in, lengths), tolerance, h.config().name.c_str(), "shorter");
    textscale::testing::expect_close(name + ": diff_weights", h.download(padded.diff_weights),
                                     h.download(base.diff_weights), tolerance, h.config().name.c_str(), "shorter");
    textscale::testing::expect_close(name + ": diff_bias", h.download(padded.diff_bias), h.download(base.diff_bias),
                                     tolerance, h.config().name.c_str(), "shorter");
  }
}

// The oneDNN backend runs two directions at the same time on 2 or 3 threads and in turn on 1 or
// 4 and more: each way, against the reference.
TS_CONFORMANCE_CASE_NEEDS(rnn_thread_counts, Need::thread_count) {
  const int before = h.config().set_threads(1);
  for (int threads : {1, 2, 3, 4}) {
    h.config().set_threads(threads);
    BOOST_TEST_MESSAGE(threads << " threads");
    check_rnn(h, {RnnCell::lstm, 6, 17, 10, 8, true}, {17, 1, 0, 9, 17, 4});
  }
  h.config().set_threads(before);
}

// Last, max and mean over each row's real steps, with one and two direction blocks (block 1's
// last state is at step 0), a row of length 0 (pools to 0, passes no gradient back) and ties in
// the maximum (the earliest step wins). Every padding step holds a value larger than any real one.
TS_CONFORMANCE_CASE(sequence_pooling) {
  const std::vector<std::int32_t> lengths{9, 0, 1, 4, 7};
  for (Index directions : {1, 2})
    for (bool ties : {false, true})
      for (SequencePooling mode : {SequencePooling::last, SequencePooling::max, SequencePooling::mean}) {
        const Dims d{5, 9, 6 * directions};
        auto src = h.random(d.count(), 101), diff_dst = h.random(d.n * d.c, 102);
        std::vector<float> values(src.ref.begin(), src.ref.end());
        for (Index i = 0; i < d.n; ++i)
          for (Index j = 0; j < d.t * d.c; ++j) {
            auto& x = values[static_cast<std::size_t>(i * d.t * d.c + j)];
            x = j >= lengths[static_cast<std::size_t>(i)] * d.c ? 100.0f : ties ? std::round(x) : x;
          }
        h.set(src, values);
        auto length_data = h.data(lengths);
        auto argmax = h.data(std::vector<std::int32_t>(static_cast<std::size_t>(d.n * d.c), -7));
        auto dst = h.output(d.n * d.c), diff_src = h.output(d.count());
        const bool max = mode == SequencePooling::max;
        const char* mode_name = max ? "max" : mode == SequencePooling::last ? "last" : "mean";
        const std::string name = std::string(mode_name) + " pooling, " + std::to_string(directions) + " direction(s)" +
                                 (ties ? ", ties" : "");
        h.run([&](auto& b, auto at) {
          b.sequence_pool_forward(mode, d, directions, at(src), at(length_data), at(dst), max ? at(argmax) : nullptr);
        });
        h.expect(name + " forward", dst);
        if (max) BOOST_TEST((h.download(argmax) == argmax.host), name << ": the winning steps agree");
        h.run([&](auto& b, auto at) {
          b.sequence_pool_backward(mode, d, directions, at(length_data), max ? at(argmax) : nullptr, at(diff_dst),
                                   at(diff_src));
        });
        h.expect(name + " backward", diff_src);
        BOOST_TEST(zero_at_padding(h.download(diff_src), d.t, d.c, lengths), name << ": no gradient to padding");
      }
}

// Several of the blocks the CPU's loops are split into, and a remainder.
TS_CONFORMANCE_CASE(element_wise) {
  const Index count = 200003;
  auto x = h.random(count, 71), y = h.random(count, 72);
  auto relu = h.output(count), relu_back = h.output(count), sum = h.output(count), product = h.output(count),
       copy = h.output(count);
  h.run([&](auto& b, auto at) { b.relu_forward(count, at(x), at(relu)); });
  h.expect("relu forward", relu);
  h.run([&](auto& b, auto at) { b.relu_backward(count, at(relu), at(y), at(relu_back)); });
  h.expect("relu backward", relu_back);
  h.run([&](auto& b, auto at) { b.relu_backward(count, at(x), at(y), at(y)); });  // in place
  h.expect("relu backward in place", y);
  h.run([&](auto& b, auto at) { b.add(count, at(x), at(relu_back), at(sum)); });
  h.expect("add", sum);
  h.run([&](auto& b, auto at) { b.multiply(count, at(x), at(relu_back), at(product)); });
  h.expect("multiply", product);
  h.run([&](auto& b, auto at) { b.copy(count, at(x), at(copy)); });
  h.expect("copy", copy);
  PerSide<double> squares;
  h.run([&](auto& b, auto at) { at(squares) = b.sum_squares(count, at(x)); });
  BOOST_TEST(std::abs(squares.under_test - squares.reference) <= h.tolerance().sum_squares * squares.reference,
             "sum of squares " << squares.under_test << ", reference " << squares.reference);
  h.run([&](auto& b, auto at) { b.scale(count, at(x), 0.25); });
  h.expect("scale", x);
}

// Inverted dropout: the same masks as the reference's (a hash of seed and element), and a slice
// starting at element `first` of a larger batch gets that batch's masks (data-parallel ranks hold
// slices of the global batch).
TS_CONFORMANCE_CASE(dropout) {
  const Index count = 200003;
  for (const auto& [seed, first] : {std::pair<std::uint64_t, std::uint64_t>{1234, 77}, {77, 1234}}) {
    auto x = h.random(count, 71);
    auto out = h.output(count), mask = h.output(count);
    h.run([&](auto& b, auto at) { b.dropout_forward(count, 0.3, seed, first, at(x), at(out), at(mask)); });
    h.expect("dropout forward", out);
    h.expect("dropout mask", mask);
    const auto offset = static_cast<Index>(first);
    auto whole_x = h.random(count + offset, 5);
    auto whole_out = h.output(count + offset), whole_mask = h.output(count + offset);
    h.backend().dropout_forward(count + offset, 0.3, seed, 0, whole_x.dev.data(), whole_out.dev.data(),
                                whole_mask.dev.data());
    const auto part = h.download(mask), whole = h.download(whole_mask);
    BOOST_TEST(std::equal(part.begin(), part.end(), whole.begin() + offset), "a slice has its batch's masks");
  }
}

// The masks are a hash of (seed, element), not a generator's stream, so check that they have the
// distribution PyTorch's Bernoulli masks have: each element kept with probability 1 - p and then
// scaled by exactly 1 / (1 - p), independently of its neighbour, of the next step's mask and of the
// other layer's mask. Fractions over 2^20 elements must lie within 5 standard errors.
TS_CONFORMANCE_CASE(dropout_mask_statistics) {
  const Index count = Index{1} << 20;
  auto ones = h.tensor(std::vector<float>(static_cast<std::size_t>(count), 1.0f));
  auto within = [&](const std::string& what, double got, double want) {
    const double error = std::sqrt(want * (1 - want) / static_cast<double>(count));
    BOOST_TEST_INFO(what << ": " << got << ", expected " << want << " +- 5 x " << error);
    BOOST_TEST(std::abs(got - want) <= 5 * error);
  };
  for (double p : {0.1, 0.5, 0.75}) {
    auto mask = [&](std::uint64_t layer, std::uint64_t step) {
      auto out = h.output(count), m = h.output(count);
      h.backend().dropout_forward(count, p, dropout_seed(1, layer, step), 0, ones.dev.data(), out.dev.data(),
                                  m.dev.data());
      const auto values = h.download(m);
      BOOST_TEST((h.download(out) == values), "input 1: the output is the mask");
      return values;
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

// The summed loss and its gradient; a label outside [0, K) is refused.
TS_CONFORMANCE_CASE(loss) {
  const Index n = 9, classes = 5;
  auto logits = h.random(n * classes, 73, 3.0);
  for (const auto& host :
       {std::vector<std::int32_t>{0, 1, 2, 3, 4, 4, 3, 2, 1}, std::vector<std::int32_t>{0, 2, 4, 1, 3, 0, 2, 4, 1}}) {
    auto labels = h.data(host);
    auto diff = h.output(n * classes);
    PerSide<double> loss;
    h.run([&](auto& b, auto at) { at(loss) = b.softmax_cross_entropy(n, classes, at(logits), at(labels), at(diff)); });
    BOOST_TEST(std::abs(loss.under_test - loss.reference) <= h.tolerance().loss * std::abs(loss.reference),
               "loss " << loss.under_test << ", reference " << loss.reference);
    h.expect("softmax cross-entropy gradient", diff);
  }
  std::vector<std::int32_t> host{0, 1, 2, 3, 5, 4, 3, 2, 1};
  auto bad = h.data(host);
  BOOST_CHECK_THROW(h.backend().softmax_cross_entropy(n, classes, logits.dev.data(), bad.dev.data(), nullptr),
                    textscale::Error);
}

// SGD with momentum and Adam, then both with a step factor of 0.5 (clipping), then a factor of 0,
// which skips the step: parameters, velocity and moments stay bitwise as they were.
TS_CONFORMANCE_CASE(optimizers) {
  const Index count = 200003;
  auto param = h.random(count, 74), grad = h.random(count, 75), velocity = h.random(count, 76, 0.1);
  const std::vector<float> zeros(static_cast<std::size_t>(count));
  auto m = h.tensor(zeros), v = h.tensor(zeros), half = h.tensor({0.5f}), zero = h.tensor({0.0f});
  for (int step = 1; step <= 3; ++step)
    h.run([&](auto& b, auto at) { b.sgd_step(count, at(param), at(grad), at(velocity), 0.1, 0.9, 1e-4, nullptr); });
  h.expect("sgd parameters", param);
  h.expect("sgd velocity", velocity);
  for (int step = 1; step <= 3; ++step)
    h.run([&](auto& b, auto at) {
      b.adam_step(count, at(param), at(grad), at(m), at(v), 1e-3, 0.9, 0.999, 1e-8, 1e-4, step, nullptr);
    });
  h.expect("adam parameters", param);
  h.expect("adam first moment", m);
  h.expect("adam second moment", v);
  for (int step = 4; step <= 5; ++step)
    h.run([&](auto& b, auto at) {
      b.adam_step(count, at(param), at(grad), at(m), at(v), 1e-3, 0.9, 0.999, 1e-8, 1e-4, step, at(half));
      b.sgd_step(count, at(param), at(grad), at(velocity), 0.1, 0.9, 1e-4, at(half));
    });
  h.expect("adam and sgd with a step factor", param);
  h.expect("sgd velocity with a step factor", velocity);
  h.expect("adam first moment with a step factor", m);
  const auto before = h.download(param), velocity_before = h.download(velocity), m_before = h.download(m),
             v_before = h.download(v);
  h.backend().sgd_step(count, param.dev.data(), grad.dev.data(), velocity.dev.data(), 0.1, 0.9, 1e-4, zero.dev.data());
  h.backend().adam_step(count, param.dev.data(), grad.dev.data(), m.dev.data(), v.dev.data(), 1e-3, 0.9, 0.999, 1e-8,
                        1e-4, 6, zero.dev.data());
  BOOST_TEST((h.download(param) == before && h.download(velocity) == velocity_before && h.download(m) == m_before &&
              h.download(v) == v_before),
             "a step with factor 0 changes nothing");
}

// The hand-written loops split work in fixed blocks and combine partial sums in order: the one-hot
// weight gradient, Winograd convolutions (several blocks of tiles, and a single block) and the sum
// of squares give bitwise the same results with 1, 2 and 3 threads.
TS_CONFORMANCE_CASE_NEEDS(results_do_not_depend_on_the_thread_count, Need::thread_count) {
  const Conv1dShape s{8, 60, 69, 64, 7, 1, 0};
  std::mt19937_64 rng(81);
  std::vector<std::uint8_t> host(static_cast<std::size_t>(s.n * s.t_in));
  for (auto& c : host) c = static_cast<std::uint8_t>(rng() % 70);
  auto codes = h.data(host);
  auto diff_dst = h.random(s.dst().count(), 82), big = h.random(300000, 83);
  // Word ids with repeats: the embedding gradient's per-id sums.
  const Index word_rows = 40, words = 50, vocab = 3000, dim = 24;
  std::vector<std::int32_t> word_host(static_cast<std::size_t>(word_rows * words));
  for (auto& id : word_host) id = static_cast<std::int32_t>(rng() % 2 ? rng() % 5 : rng() % vocab);
  auto word_ids = h.data(word_host);
  auto run = [&](int threads) {
    h.config().set_threads(threads);
    auto backend = h.config().make();
    auto dw = h.output(s.weights_count()), db = h.output(s.c_out);
    OpStatePtr state;
    backend->onehot_conv1d_backward_weights(state, s, codes.dev.data(), diff_dst.dev.data(), dw.dev.data(),
                                            db.dev.data());
    std::vector<float> results = h.download(dw);
    for (const Conv1dShape w : {Conv1dShape{5, 70, 128, 136, 3, 1, 1}, Conv1dShape{1, 20, 64, 64, 3, 1, 1}}) {
      auto wdst = h.output(w.dst().count());
      OpStatePtr wstate;
      backend->conv1d_forward(wstate, w, big.dev.data(), big.dev.data() + w.src().count(), nullptr, wdst.dev.data(),
                              false);
      const auto values = h.download(wdst);
      results.insert(results.end(), values.begin(), values.end());
    }
    results.push_back(static_cast<float>(backend->sum_squares(static_cast<Index>(big.dev.size()), big.dev.data())));
    const auto bias = h.download(db);
    results.insert(results.end(), bias.begin(), bias.end());
    auto diff_table = h.output(vocab * dim);
    backend->embedding_backward(word_rows, words, vocab, dim, word_ids.dev.data(), big.dev.data(),
                                diff_table.dev.data());
    const auto table = h.download(diff_table);
    results.insert(results.end(), table.begin(), table.end());
    return results;
  };
  const int before = h.config().set_threads(1);
  const auto one = run(1), two = run(2), three = run(3);
  h.config().set_threads(before);
  BOOST_TEST((one == two), "1 and 2 threads give bitwise the same results");
  BOOST_TEST((one == three), "1 and 3 threads give bitwise the same results");
}

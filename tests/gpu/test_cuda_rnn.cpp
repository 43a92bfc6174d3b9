// The CUDA backend's recurrent layer (cuDNN's LSTM) and masked sequence pooling, called directly,
// against the reference backend in double, in each precision: one and two directions, rows of
// lengths 0, 1, T and between in one batch, forward and backward, a call site reused with another
// batch, padding that holds garbage (which must not matter), and the pooling kernels bit for bit
// against the default host bodies of backend.h. Without a visible GPU the program exits 77
// (skipped).
//
// Tolerances (expect_close.h: relative to |reference| + rms(reference)). Weights are scaled by
// 0.5 / sqrt(C_in + H), so that a gate's pre-activation is about 0.5 (the gates work away from
// saturation) and the recurrent matrices' norms (about 2 sqrt(H) times the scale) are at most 1:
// each step's rounding errors add up over the steps rather than grow.
//  - fp32 (CUDNN_FMA_MATH): a result goes through at most T (C_in + H + 1) + N T = 781 roundings
//    of 2^-24 (T = 11, C_in = H = 32 in the largest case; the weight gradient's N T terms); as
//    independent errors about sqrt(781) 2^-24 = 1.7e-6 of it, 5 standard deviations 8.4e-6, and
//    a few ulp from each gate's sigmoid or tanh: bound 1e-4 (the other fp32 operations' bound).
//  - TF32 (CUDNN_DEFAULT_MATH; bf16 runs the LSTM in TF32 too, cuda_backend.cu): both operands of
//    a product are rounded to 10-bit mantissas (2^-11 each), so a sum of products is off by about
//    2^-10 / sqrt(3) = 5.6e-4 of its RMS; over T = 11 steps sqrt(11) times that, 1.9e-3; the worst
//    of 10^4 elements within 5 standard deviations: bound 1e-2.
// Exact, whatever the precision: dst and diff_src are 0 at the padding, and the pooling kernels
// give the bits of the host loops (the same fp32 operations in the same order).
#define BOOST_TEST_MODULE cuda_rnn
#define BOOST_TEST_NO_MAIN
#define BOOST_TEST_ALTERNATIVE_INIT_API
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "../conformance/conformance.h"
#include "gpu_main.h"
#include "textscale/common/error.h"
#include "textscale/cuda/cuda_backend.h"

using namespace textscale;
using namespace textscale::engine;
using namespace textscale::testing::conformance;

namespace {

constexpr double kLstmFp32 = 1e-4, kLstmTf32 = 1e-2;

std::unique_ptr<Backend<float>> make_cuda(cuda::Precision precision) {
  return cuda::make_cuda_backend({0, precision, cuda::AlgorithmSearch::heuristic, true});
}

// `products` is the LSTM's bound; the pooling is compared bit for bit.
std::vector<BackendUnderTest> configurations() {
  const Tolerances fp32{.products = kLstmFp32}, tf32{.products = kLstmTf32};
  return {
      BackendUnderTest{.name = "cuda_fp32", .make = [] { return make_cuda(cuda::Precision::fp32); }, .tolerance = fp32},
      BackendUnderTest{.name = "cuda_tf32", .make = [] { return make_cuda(cuda::Precision::tf32); }, .tolerance = tf32},
      BackendUnderTest{
          .name = "cuda_bf16", .make = [] { return make_cuda(cuda::Precision::bf16); }, .tolerance = tf32}};
}

bool init() {
  register_suites(configurations());
  return true;
}

std::string describe(const RnnShape& s, const std::vector<std::int32_t>& lengths) {
  std::string text = std::string(s.bidirectional ? "bidirectional" : "unidirectional") + " lstm n" +
                     std::to_string(s.n) + " t" + std::to_string(s.t) + " " + std::to_string(s.c_in) + "->" +
                     std::to_string(s.hidden) + " lengths";
  if (lengths.empty()) return text + " all T";
  for (const auto l : lengths) text += " " + std::to_string(l);
  return text;
}

// Row i's length (lengths empty: T).
Index length_of(const std::vector<std::int32_t>& lengths, Index i, Index t) {
  return lengths.empty() ? t : lengths[static_cast<std::size_t>(i)];
}

// `values` (N, T, C) with `garbage` at every step t >= L of row i.
void fill_padding(std::vector<float>& values, Index n, Index t, Index c, const std::vector<std::int32_t>& lengths,
                  float garbage) {
  for (Index i = 0; i < n; ++i)
    for (Index step = length_of(lengths, i, t); step < t; ++step)
      for (Index k = 0; k < c; ++k) values[static_cast<std::size_t>((i * t + step) * c + k)] = garbage;
}

// Whether `values` (N, T, C) is exactly 0 at every step t >= L.
bool zero_padding(const std::vector<float>& values, Index n, Index t, Index c,
                  const std::vector<std::int32_t>& lengths) {
  for (Index i = 0; i < n; ++i)
    for (Index step = length_of(lengths, i, t); step < t; ++step)
      for (Index k = 0; k < c; ++k)
        if (values[static_cast<std::size_t>((i * t + step) * c + k)] != 0.0f) return false;
  return true;
}

// One forward and backward pass of `s` on the call sites `state`, against the reference.
void check_lstm(Harness& h, State& state, const RnnShape& s, const std::vector<std::int32_t>& lengths,
                std::uint64_t seed) {
  const std::string name = describe(s, lengths);
  BOOST_TEST_CONTEXT(name) {
    const double tolerance = h.tolerance().products;
    const Index width = s.hidden * s.directions();
    auto src = h.random(s.src().count(), seed);
    std::vector<float> values(src.ref.begin(), src.ref.end());
    fill_padding(values, s.n, s.t, s.c_in, lengths, 1e3f);  // never read
    h.set(src, values);
    auto w = h.random(s.weights_count(), seed + 1, 0.5 / std::sqrt(static_cast<double>(s.c_in + s.hidden)));
    auto b = h.random(s.bias_count(), seed + 2, 0.1);
    auto lens = h.data(lengths);
    auto dst = h.output(s.dst().count());
    auto length_ptr = [&](auto at) { return lengths.empty() ? nullptr : at(lens); };
    h.run([&](auto& backend, auto at) {
      backend.rnn_forward(at(state), s, at(src), length_ptr(at), at(w), at(b), at(dst), true);
    });
    h.expect(name + " forward", dst, tolerance);
    BOOST_TEST(zero_padding(h.download(dst), s.n, s.t, width, lengths), name << ": dst is not 0 at the padding");

    auto diff_dst = h.random(s.dst().count(), seed + 3);
    std::vector<float> grads(diff_dst.ref.begin(), diff_dst.ref.end());
    fill_padding(grads, s.n, s.t, width, lengths, -1e3f);  // ignored
    h.set(diff_dst, grads);
    auto diff_src = h.output(s.src().count()), dw = h.output(s.weights_count()), db = h.output(s.bias_count());
    h.run([&](auto& backend, auto at) {
      backend.rnn_backward(at(state), s, at(src), length_ptr(at), at(w), at(dst), at(diff_dst), at(diff_src), at(dw),
                           at(db));
    });
    h.expect(name + " backward data", diff_src, tolerance);
    h.expect(name + " backward weights", dw, tolerance);
    h.expect(name + " backward bias", db, tolerance);
    BOOST_TEST(zero_padding(h.download(diff_src), s.n, s.t, s.c_in, lengths),
               name << ": diff_src is not 0 at the padding");

    // Again without the input gradient: the same bits (deterministic, and no dependence on it).
    auto dw2 = h.output(s.weights_count()), db2 = h.output(s.bias_count());
    h.backend().rnn_backward(state.under_test, s, src.dev.data(), lengths.empty() ? nullptr : lens.dev.data(),
                             w.dev.data(), dst.dev.data(), diff_dst.dev.data(), nullptr, dw2.dev.data(),
                             db2.dev.data());
    BOOST_TEST((h.download(dw2) == h.download(dw)), name << ": weight gradients differ between two runs");
    BOOST_TEST((h.download(db2) == h.download(db)), name << ": bias gradients differ between two runs");

    // Inference on a call site of its own; backward after it is refused.
    OpStatePtr inference;
    auto out = h.output(s.dst().count());
    h.backend().rnn_forward(inference, s, src.dev.data(), lengths.empty() ? nullptr : lens.dev.data(), w.dev.data(),
                            b.dev.data(), out.dev.data(), false);
    textscale::testing::expect_close(name + " inference", h.download(out), dst.ref, tolerance, h.config().name.c_str());
    BOOST_CHECK_THROW(h.backend().rnn_backward(
                          inference, s, src.dev.data(), lengths.empty() ? nullptr : lens.dev.data(), w.dev.data(),
                          out.dev.data(), diff_dst.dev.data(), nullptr, dw2.dev.data(), db2.dev.data()),
                      Error);
  }
}

}  // namespace

int main(int argc, char* argv[]) {
  return gpu_test_main(argc, argv, &init);
}

// Each layer runs two batches on the same call sites: the second smaller, with other lengths
// (a training run's last batch), so that the descriptors and workspaces are set again.
TS_CONFORMANCE_CASE(lstm_against_reference) {
  struct Layer {
    RnnShape shape;
    std::vector<std::int32_t> first, second;  // lengths; empty: every row T
  };
  const std::vector<Layer> layers = {
      {{RnnCell::lstm, 6, 9, 12, 10, false}, {9, 0, 1, 5, 9, 3}, {2, 9, 0, 0, 1}},
      {{RnnCell::lstm, 6, 9, 12, 10, true}, {9, 0, 1, 5, 9, 3}, {2, 9, 0, 0, 1}},
      {{RnnCell::lstm, 4, 7, 32, 32, true}, {}, {7, 7, 1}},  // sizes for tensor cores
      {{RnnCell::lstm, 5, 11, 16, 24, false}, {11, 1, 0, 0, 6}, {}},
      {{RnnCell::lstm, 3, 1, 8, 8, true}, {1, 0, 1}, {0, 0}},  // T = 1; a batch of empty rows
  };
  std::uint64_t seed = 300;
  for (const Layer& layer : layers) {
    State state;
    check_lstm(h, state, layer.shape, layer.first, seed += 10);
    RnnShape smaller = layer.shape;
    smaller.n = layer.second.empty() ? layer.shape.n - 1 : static_cast<Index>(layer.second.size());
    check_lstm(h, state, smaller, layer.second, seed += 10);
  }
}

// Lengths outside [0, T] are refused, as on the reference backend.
TS_CONFORMANCE_CASE(lstm_refuses_bad_lengths) {
  const RnnShape s{RnnCell::lstm, 2, 4, 3, 5, false};
  auto src = h.random(s.src().count(), 1), w = h.random(s.weights_count(), 2, 0.3), b = h.random(s.bias_count(), 3);
  auto dst = h.output(s.dst().count());
  for (const std::int32_t bad : {-1, 5}) {
    auto lens = h.data(std::vector<std::int32_t>{2, bad});
    OpStatePtr state;
    BOOST_CHECK_THROW(h.backend().rnn_forward(state, s, src.dev.data(), lens.dev.data(), w.dev.data(), b.dev.data(),
                                              dst.dev.data(), true),
                      Error);
  }
}

// The pooling kernels against the default host bodies (the reference backend in float runs them):
// the same bits, the same winners (ties: the earliest step; values are rounded to halves so that
// ties occur), and against the reference in double.
TS_CONFORMANCE_CASE(sequence_pooling_matches_the_host_loops) {
  struct Batch {
    Dims dims;
    std::vector<std::int32_t> lengths;  // empty: every row T
  };
  std::vector<std::int32_t> many(64);
  for (std::size_t i = 0; i < many.size(); ++i) many[i] = static_cast<std::int32_t>((i * 37) % 51);  // 0 .. 50
  const std::vector<Batch> batches = {{{6, 7, 10}, {7, 0, 1, 4, 6, 2}}, {{3, 5, 4}, {}}, {{64, 50, 96}, many}};
  ReferenceBackend<float> host;
  std::uint64_t seed = 500;
  for (const Batch& batch : batches)
    for (const Index directions : {Index{1}, Index{2}})
      for (const auto mode : {SequencePooling::last, SequencePooling::max, SequencePooling::mean}) {
        const Dims d = batch.dims;
        const std::string name = std::string(mode == SequencePooling::last  ? "last"
                                             : mode == SequencePooling::max ? "max"
                                                                            : "mean") +
                                 " pooling of " + d.str() + " in " + std::to_string(directions) + " directions" +
                                 (batch.lengths.empty() ? ", every row T" : "");
        BOOST_TEST_CONTEXT(name) {
          auto src = h.random(d.count(), ++seed, 2.0);
          std::vector<float> values(src.ref.begin(), src.ref.end());
          if (mode == SequencePooling::max)
            for (auto& v : values) v = std::round(2.0f * v) / 2.0f;
          fill_padding(values, d.n, d.t, d.c, batch.lengths, 1e3f);  // the maximum, were it read
          h.set(src, values);
          auto lens = h.data(batch.lengths);
          auto argmax = h.data(std::vector<std::int32_t>(static_cast<std::size_t>(d.n * d.c), 12345));
          auto dst = h.output(d.n * d.c);
          const bool max = mode == SequencePooling::max;
          auto length_ptr = [&](auto at) { return batch.lengths.empty() ? nullptr : at(lens); };
          h.run([&](auto& backend, auto at) {
            backend.sequence_pool_forward(mode, d, directions, at(src), length_ptr(at), at(dst),
                                          max ? at(argmax) : nullptr);
          });
          h.expect(name + " forward", dst);
          const std::int32_t* host_lengths = batch.lengths.empty() ? nullptr : batch.lengths.data();
          std::vector<float> want(static_cast<std::size_t>(d.n * d.c));
          std::vector<std::int32_t> want_argmax(want.size(), 12345);
          host.sequence_pool_forward(mode, d, directions, values.data(), host_lengths, want.data(),
                                     max ? want_argmax.data() : nullptr);
          BOOST_TEST((h.download(dst) == want), name << ": forward differs from the host loops");
          BOOST_TEST((h.download(argmax) == want_argmax), name << ": winners differ from the host loops");

          auto diff_dst = h.random(d.n * d.c, ++seed);
          auto diff_src = h.output(d.count());
          h.run([&](auto& backend, auto at) {
            backend.sequence_pool_backward(mode, d, directions, length_ptr(at), max ? at(argmax) : nullptr,
                                           at(diff_dst), at(diff_src));
          });
          h.expect(name + " backward", diff_src);
          const std::vector<float> grads(diff_dst.ref.begin(), diff_dst.ref.end());
          std::vector<float> want_src(static_cast<std::size_t>(d.count()));
          host.sequence_pool_backward(mode, d, directions, host_lengths, max ? want_argmax.data() : nullptr,
                                      grads.data(), want_src.data());
          BOOST_TEST((h.download(diff_src) == want_src), name << ": backward differs from the host loops");
        }
      }
}

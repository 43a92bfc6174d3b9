// The backend conformance suite: every operation of backend.h on every backend configuration,
// against the reference backend in double, from one list of cases.
//
// A configuration (BackendUnderTest) names a backend, how to make it and the tolerance of each
// class of operation; a case (TS_CONFORMANCE_CASE in cases.cpp) is written once against a
// Harness and runs in every configuration's Boost.Test suite: `onednn_bf16/convolution`. A
// configuration that lacks what a case needs (`lacks`) reports that case as skipped, with the
// reason, and never as passed; so does every case of a configuration that is unavailable here.
//
// Adding a case: write it in tests/conformance/cases.cpp as
//   TS_CONFORMANCE_CASE(name) { ... }
// using the harness's tensors (random, output, upload), h.run(op) to call the operation on the
// backend under test and on the references, and h.expect* to compare. `op` is a generic lambda
// `[&](auto& backend, auto at) { backend.op(at(state), ..., at(src), at(dst)); }`: `at` turns a
// harness tensor into the pointer of the side it is called for (the backend's memory, float; the
// reference's host memory, double). A case that needs a property not every backend has (a thread
// count to vary) names it: TS_CONFORMANCE_CASE_NEEDS(name, Need::thread_count).
//
// Element checks (expect_close.h): element i passes when |got - want| <= tolerance * (|want| +
// rms(want)). Every output buffer of the backend under test is first filled with NaN, so an
// element an operation fails to write is caught.
#pragma once

#include <boost/test/unit_test.hpp>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "../unit/bf16_reference.h"
#include "../unit/expect_close.h"
#include "textscale/engine/backend.h"
#include "textscale/engine/buffer.h"
#include "textscale/engine/reference_backend.h"

namespace textscale::testing::conformance {

using namespace textscale::engine;

// Bounds per class of operation, each relative to |reference| + rms(reference) (expect_close.h)
// unless said otherwise. The configurations give each number with its derivation.
struct Tolerances {
  double products;             // convolutions and dense layers: forward, data and weight gradients
  double emulated = 0;         // products against the bf16-rounding reference (0: none)
  double onehot_gradient = 0;  // the unfused one-hot convolution's weight gradient (0: `fp32`)
  double fp32 = 1e-4;          // everything else in fp32: bias gradients, pooling, batch norm, ...
  double batch_norm_backward_data = 1e-4;
  double loss = 1e-5;         // the summed softmax cross-entropy, relative
  double sum_squares = 1e-6;  // sum_squares, relative
  // rnn_forward and rnn_backward in fp32. A result at step t is the end of a chain of t steps of
  // sums of K = C_in + H + 1 terms (backward: the chain back from the row's end; the weight
  // gradients then sum N x T of those). Roundings of 2^-24 with independent signs add up like a
  // random walk, at most sqrt(T x K) x 2^-24 of the result's magnitude (the forget gate shrinks
  // older errors): 8e-6 for the largest case (T 60, K 301; measured 2.8e-6 at worst over 240k
  // elements, oneDNN and the float loops alike), and the worst of 10^5 elements lies about 5 of
  // those out, 4e-5. Bound 1e-4, which also holds the smaller cases' worst case T x K x 2^-24
  // (17 x 19 x 2^-24 = 2e-5).
  double recurrent = 1e-4;
};

// What a backend rounds like, for the bf16-rounding reference (bf16_reference.h).
enum class Emulation {
  none,
  bf16_operands,              // products of bf16 operands, fp32 results (oneDNN)
  bf16_operands_and_results,  // ... and convolutions' results rounded to bf16 (cuDNN)
};

// Which convolution results must be bf16 numbers (a cuDNN bf16 convolution writes bf16).
enum class ConvResults {
  unchecked,  // results are fp32 whatever the products (the CPU)
  fp32,       // never bf16 (fp32, TF32)
  bf16,       // bf16 for the published models' shapes; others may fall back to TF32
};

// Properties a case may need and a configuration may lack.
enum class Need {
  thread_count,         // a thread count to vary (results must not depend on it)
  long_sums_in_double,  // the embedding gradient's long sums accumulated in double
};

struct BackendUnderTest {
  std::string name;  // the Boost.Test suite's name: letters, digits, '_'
  std::function<std::unique_ptr<Backend<float>>()> make;
  Tolerances tolerance;
  Emulation emulation = Emulation::none;
  ConvResults conv_results = ConvResults::unchecked;
  // Sets the number of threads every backend of this kind uses and returns the number before;
  // null when the configuration has no thread count (then it lacks Need::thread_count).
  std::function<int(int)> set_threads{};
  std::map<Need, std::string> lacks{};  // what this configuration lacks, and why
  std::string unavailable{};            // not empty: every case is skipped, with this reason
};

// The three sides an operation runs on: the backend under test, the reference in double and,
// for bf16 configurations, the bf16-rounding reference in double.
enum class Side { under_test, reference, emulated };

// The same values on every side.
struct Tensor {
  Buffer<float> dev;             // in the memory of the backend under test
  std::vector<double> ref, emu;  // emu: only where the configuration has an emulation
};

// Integer data (codes, labels, chosen positions): on the device and on the host.
template <typename U>
struct Data {
  Buffer<U> dev;
  std::vector<U> host;
};

// Something every side has its own of: an OpState, host arrays of double.
template <typename V>
struct PerSide {
  V under_test{}, reference{}, emulated{};
};
using State = PerSide<OpStatePtr>;

// The pointers of one side (float for the backend under test, double for the references).
template <typename T>
struct At {
  Side side;
  T* operator()(Tensor& t) const {
    if constexpr (std::is_same_v<T, float>)
      return t.dev.data();
    else
      return side == Side::emulated ? t.emu.data() : t.ref.data();
  }
  template <typename U>
  U* operator()(Data<U>& d) const {
    return side == Side::under_test ? d.dev.data() : d.host.data();
  }
  template <typename V>
  V& operator()(PerSide<V>& p) const {
    return side == Side::under_test ? p.under_test : side == Side::reference ? p.reference : p.emulated;
  }
};

// Whether every element is a bf16 number (its low 16 bits are zero), as in the result of a bf16
// convolution; fp32 and TF32 results have them set in almost every element.
bool all_bf16(const std::vector<float>& values);

std::string describe(const Conv1dShape& s);

// One case on one configuration: the backend under test, the references, and tensors on all sides.
class Harness {
 public:
  explicit Harness(const BackendUnderTest& config);
  [[nodiscard]] const BackendUnderTest& config() const { return config_; }
  [[nodiscard]] const Tolerances& tolerance() const { return config_.tolerance; }
  [[nodiscard]] Backend<float>& backend() { return *backend_; }
  [[nodiscard]] ReferenceBackend<double>& reference() { return reference_; }
  [[nodiscard]] const Memory& memory() const { return backend_->memory(); }
  [[nodiscard]] bool emulates() const { return emulated_ != nullptr; }

  // Normal values (mean 0, standard deviation `scale`) from `seed`, the same on every side.
  Tensor random(Index count, std::uint64_t seed, double scale = 1.0);
  // Given values on every side.
  Tensor tensor(const std::vector<float>& values);
  // An output: NaN on the backend under test, 0 on the references.
  Tensor output(Index count);
  template <typename U>
  Data<U> data(std::vector<U> host) {
    Data<U> d{Buffer<U>(host.size(), memory()), std::move(host)};
    if (!d.host.empty()) memory().copy_to_device(d.dev.data(), d.host.data(), d.host.size() * sizeof(U));
    return d;
  }
  // Sets every side's values (after the case changed `t.ref`, say).
  void set(Tensor& t, const std::vector<float>& values);

  // Calls op(backend, At) on the backend under test and on the references.
  template <typename Op>
  void run(Op op) {
    op(*backend_, At<float>{Side::under_test});
    op(reference_, At<double>{Side::reference});
    if (emulated_) op(*emulated_, At<double>{Side::emulated});
  }

  [[nodiscard]] std::vector<float> download(const Tensor& t) const;
  template <typename U>
  [[nodiscard]] std::vector<U> download(const Data<U>& d) const {
    std::vector<U> host(d.dev.size());
    if (!host.empty()) memory().copy_to_host(host.data(), d.dev.data(), host.size() * sizeof(U));
    return host;
  }

  // The backend's values of `t` against the reference's, to `tolerance` (default: fp32's).
  void expect(const std::string& what, const Tensor& t, std::optional<double> tolerance = std::nullopt);
  // A dense layer's product: against the reference to `products`, and against the
  // bf16-rounding reference to `emulated` where there is one.
  void expect_product(const std::string& what, const Tensor& t);
  // A convolution's result (forward, data or weight gradient of `s`): as expect_product, and on
  // configurations that check it, whether its elements are bf16 numbers (not after a bias is added
  // in fp32: `bias_added`). Where a bf16 configuration may fall back to TF32 for `s`, the
  // comparison with the bf16-rounding reference is made only when the result shows it ran in bf16.
  void expect_conv(const std::string& what, const Tensor& t, const Conv1dShape& s, bool bias_added);

 private:
  const BackendUnderTest& config_;
  std::unique_ptr<Backend<float>> backend_;
  ReferenceBackend<double> reference_;
  std::unique_ptr<Backend<double>> emulated_;
};

// --- Registry ----------------------------------------------------------------------------------
struct Case {
  std::string name;
  void (*run)(Harness&);
  std::vector<Need> needs;
};
std::vector<Case>& cases();
bool add_case(Case c);

// A convolution forward, backward-data and backward-weights on src seed 1, weights seed 2 and
// bias seed 3 (scale 0.1), diff_dst seed 4; with `relu_input` the source is non-negative (the
// output of a ReLU), so that long sums do not cancel.
void check_conv(Harness& h, const Conv1dShape& s, bool bias, bool relu, bool relu_input = false);

// One Boost.Test suite per configuration, holding every registered case (call from init()).
void register_suites(const std::vector<BackendUnderTest>& configurations);

}  // namespace textscale::testing::conformance

#define TS_CONFORMANCE_CASE_NEEDS(case_name, ...)                                           \
  static void case_name(::textscale::testing::conformance::Harness& h);                     \
  [[maybe_unused]] static const bool case_name##_registered =                               \
      ::textscale::testing::conformance::add_case({#case_name, &case_name, {__VA_ARGS__}}); \
  static void case_name([[maybe_unused]] ::textscale::testing::conformance::Harness& h)
#define TS_CONFORMANCE_CASE(case_name) TS_CONFORMANCE_CASE_NEEDS(case_name)

// The backend conformance suite (tests/conformance) on the CPU's configurations: the reference
// backend in float, and the oneDNN backend in fp32 and in bf16, each against the reference
// backend in double. Each configuration is a Boost.Test suite: --run_test=onednn_bf16 runs one.
//
// The bf16 configuration needs bf16 instructions (DnnlBackend::bf16_supported); on a CPU without
// them its cases are reported as skipped, with the reason.
#define BOOST_TEST_MODULE backend_conformance
#define BOOST_TEST_NO_MAIN
#define BOOST_TEST_ALTERNATIVE_INIT_API
#include <boost/test/unit_test.hpp>
#include <cstdio>
#include <string>
#include <vector>

#include "../conformance/conformance.h"
#include "cpu_features.h"
#include "textscale/engine/backend_options.h"
#include "textscale/engine/cpu/dnnl_backend.h"
#include "textscale/engine/reference_backend.h"

using namespace textscale;
using namespace textscale::engine;
using namespace textscale::testing::conformance;

namespace {

int set_dnnl_threads(int threads) {
  const int before = DnnlBackend::threads();
  DnnlBackend::set_threads(threads);
  return before;
}

std::vector<BackendUnderTest> configurations() {
  std::vector<BackendUnderTest> all;

  // The reference backend in float against itself in double: float rounding of the same loops,
  // to the oneDNN fp32 bounds. Its sums run in the order of the loops, single-threaded.
  BackendUnderTest reference{.name = "reference_float",
                             .make = [] { return std::make_unique<ReferenceBackend<float>>(); },
                             .tolerance = {.products = 1e-4}};
  reference.lacks = {{Need::thread_count, "one thread"},
                     {Need::long_sums_in_double, "its embedding gradient sums in float, in the loops' order"}};
  all.push_back(reference);

  // oneDNN in fp32: an element passes when |onednn - reference| <= 1e-4 * (|reference| +
  // rms(reference)); float accumulation over at most a few thousand terms stays well inside that,
  // and the long reductions of convolution_long_reductions (oneDNN's blocked sums) measured within
  // it too. The loss to 1e-5 and the sum of squares (fp32 blocks summed in double) to 1e-6, relative.
  BackendUnderTest fp32{
      .name = "onednn_fp32", .make = [] { return std::make_unique<DnnlBackend>(); }, .tolerance = {.products = 1e-4}};
  fp32.set_threads = set_dnnl_threads;
  all.push_back(fp32);

  // oneDNN in fp32 with --winograd off: every convolution direct (oneDNN's own), to the same bounds.
  BackendUnderTest direct{.name = "onednn_fp32_winograd_off",
                          .make = [] { return std::make_unique<DnnlBackend>(BackendOptions{.winograd = false}); },
                          .tolerance = {.products = 1e-4}};
  direct.set_threads = set_dnnl_threads;
  all.push_back(direct);

  // oneDNN in bf16 (--precision bf16): convolutions and dense layers multiply bf16 copies of their
  // operands with fp32 sums and write fp32; everything else is the fp32 backend's.
  //
  // Against the bf16-rounding reference (bf16_reference.h: the operands of every product rounded
  // to bf16, round to nearest even, then summed exactly in double) only the sums differ (fp32 in
  // oneDNN, whichever order its AVX512_BF16 or AMX kernels take), so the products must agree to
  // 1e-4 per element, like the fp32 backend against the plain reference: fp32 round-off 2^-24
  // times reductions of up to 1536 terms is 9e-5 of the sum of their magnitudes. That also shows
  // the products really are bf16: fp32 products are 2e-3 away from it. Against the plain reference
  // the error is what bf16 costs, and it does not depend on the kernels: each product's operands
  // are rounded by at most 2^-9 each, so a term is off by up to 2^-8 of itself; over a reduction
  // with independent signs that is about 2^-8/sqrt(3) = 2.3e-3 of the result's RMS (measured: 2.1e-3
  // to 2.9e-3 as a relative norm on every operation here, on both kinds of kernel), and the largest
  // of up to 10^6 elements lies about 5 standard deviations out: 1.1e-2 (measured: at most
  // 1.2e-2; 1.5e-2 among the 2 x 10^6 of convolution_long_reductions). Bound: 3e-2 per element.
  // The one-hot layer is a gather of fp32 weights, and bias gradients are fp32 sums of the fp32
  // gradient: fp32's bounds.
  //
  // The LSTM runs on oneDNN's bf16 kernels: x, the weights and h (the output, and an operand of
  // the next step) are rounded to bf16, 2^-9 each, c and the sums stay fp32; backward multiplies
  // bf16 copies of its gradients too. Each step's sums are then off by about 2^-8/sqrt(3) = 2.3e-3
  // of their RMS, as above; the recurrence carries older errors along, shrunk by the forget gate
  // (about 1/2 with PyTorch's initialisation), which doubles that: 5e-3 forward, and backward adds
  // its own on top of the forward's errors in the gates, 7e-3. The worst of 10^5 elements about 5
  // of those out: 2.5e-2 forward, 3.5e-2 backward (measured: 2.4e-2 and 3.8e-2). Bound: 8e-2.
  BackendUnderTest bf16{.name = "onednn_bf16",
                        .make = [] { return std::make_unique<DnnlBackend>(Precision::bf16); },
                        .tolerance = {.products = 3e-2, .emulated = 1e-4, .recurrent = 8e-2},
                        .emulation = Emulation::bf16_operands};
  bf16.set_threads = set_dnnl_threads;
  if (!DnnlBackend::bf16_supported())
    bf16.unavailable = "oneDNN finds " + DnnlBackend::cpu_isa() + " on this CPU; bf16 needs AVX512-BF16 or AMX";
  all.push_back(bf16);
  return all;
}

bool init() {
  register_suites(configurations());
  return true;
}

}  // namespace

// The options choose the algorithm: Winograd (the default from 64 channels) and the direct
// convolution round differently, and a threshold above the shape's channels
// (--winograd-min-channels) gives the direct convolution's bits. (Both match the reference: the
// onednn_fp32 and onednn_fp32_winograd_off suites.)
BOOST_AUTO_TEST_CASE(winograd_options_choose_the_algorithm) {
  const Conv1dShape s{4, 90, 128, 128, 3, 1, 1};
  std::vector<float> src(static_cast<std::size_t>(s.src().count())),
      weights(static_cast<std::size_t>(s.weights_count()));
  for (std::size_t i = 0; i < src.size(); ++i)
    src[i] = static_cast<float>(static_cast<double>(i * 7919 % 1000) / 500.0 - 1.0);
  for (std::size_t i = 0; i < weights.size(); ++i)
    weights[i] = static_cast<float>(static_cast<double>(i * 104729 % 1000) / 5000.0 - 0.1);
  auto forward = [&](const BackendOptions& options) {
    DnnlBackend dnnl(options);
    std::vector<float> dst(static_cast<std::size_t>(s.dst().count()));
    OpStatePtr state;
    dnnl.conv1d_forward(state, s, src.data(), weights.data(), nullptr, dst.data(), false);
    return dst;
  };
  const auto on = forward({}), off = forward({.winograd = false});
  BOOST_TEST((on != off), "--winograd on and off give bitwise the same convolution: the switch did nothing");
  BOOST_TEST((forward({.winograd_min_channels = 256}) == off), "a threshold above 128 channels runs direct");
  BOOST_TEST((forward({.winograd_min_channels = 128}) == on), "a threshold of 128 channels runs Winograd");
}

// --only-if-amx (first argument): skipped unless the CPU has AMX (cpu_features.h).
int main(int argc, char* argv[]) {
  std::vector<char*> args(argv, argv + argc);
  if (testing::skip_unless_amx(args)) return 77;
  std::printf("oneDNN instruction set: %s\n", DnnlBackend::cpu_isa().c_str());
  return boost::unit_test::unit_test_main(&init, static_cast<int>(args.size()), args.data());
}

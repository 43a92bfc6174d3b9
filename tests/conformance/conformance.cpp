#include "conformance.h"

#include <algorithm>

namespace textscale::testing::conformance {

bool all_bf16(const std::vector<float>& values) {
  return std::all_of(values.begin(), values.end(), [](float x) {
    std::uint32_t bits = 0;
    std::memcpy(&bits, &x, sizeof bits);
    return (bits & 0xffffu) == 0;
  });
}

std::string describe(const Conv1dShape& s) {
  return "conv1d n" + std::to_string(s.n) + " t" + std::to_string(s.t_in) + " " + std::to_string(s.c_in) + "->" +
         std::to_string(s.c_out) + " k" + std::to_string(s.kernel) + " s" + std::to_string(s.stride) + " p" +
         std::to_string(s.pad);
}

Harness::Harness(const BackendUnderTest& config) : config_(config), backend_(config.make()) {
  if (config.emulation == Emulation::bf16_operands)
    emulated_ = std::make_unique<Bf16Reference<double>>();
  else if (config.emulation == Emulation::bf16_operands_and_results)
    emulated_ = std::make_unique<Bf16Reference<double, true>>();
}

Tensor Harness::random(Index count, std::uint64_t seed, double scale) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, static_cast<float>(scale));
  std::vector<float> values(static_cast<std::size_t>(count));
  for (auto& x : values) x = normal(rng);
  return tensor(values);
}

Tensor Harness::tensor(const std::vector<float>& values) {
  Tensor t{Buffer<float>(values.size(), memory()), {}, {}};
  set(t, values);
  return t;
}

void Harness::set(Tensor& t, const std::vector<float>& values) {
  BOOST_REQUIRE_EQUAL(values.size(), t.dev.size());
  if (!values.empty()) memory().copy_to_device(t.dev.data(), values.data(), values.size() * sizeof(float));
  t.ref.assign(values.begin(), values.end());
  if (emulated_) t.emu = t.ref;
}

Tensor Harness::output(Index count) {
  const auto size = static_cast<std::size_t>(count);
  Tensor t{Buffer<float>(size, memory()), std::vector<double>(size), {}};
  const std::vector<float> nan(size, std::numeric_limits<float>::quiet_NaN());
  if (size) memory().copy_to_device(t.dev.data(), nan.data(), size * sizeof(float));
  if (emulated_) t.emu = t.ref;
  return t;
}

std::vector<float> Harness::download(const Tensor& t) const {
  std::vector<float> host(t.dev.size());
  if (!host.empty()) memory().copy_to_host(host.data(), t.dev.data(), host.size() * sizeof(float));
  return host;
}

void Harness::expect(const std::string& what, const Tensor& t, std::optional<double> tolerance) {
  expect_close(what, download(t), t.ref, tolerance.value_or(config_.tolerance.fp32), config_.name.c_str(), "reference");
}

void Harness::expect_product(const std::string& what, const Tensor& t) {
  const std::vector<float> got = download(t);
  expect_close(what, got, t.ref, config_.tolerance.products, config_.name.c_str(), "reference");
  if (emulated_)
    expect_close(what + " vs bf16 reference", got, t.emu, config_.tolerance.emulated, config_.name.c_str(),
                 "bf16 reference");
}

namespace {

// The published models' convolutions (channels multiples of 8, stride 1, no padding or "same"
// padding): a bf16 configuration must run these in bf16.
bool models_shape(const Conv1dShape& s) {
  return s.c_in % 8 == 0 && s.c_out % 8 == 0 && s.stride == 1 && (s.pad == 0 || 2 * s.pad + 1 == s.kernel);
}

}  // namespace

void Harness::expect_conv(const std::string& what, const Tensor& t, const Conv1dShape& s, bool bias_added) {
  const std::vector<float> got = download(t);
  expect_close(what, got, t.ref, config_.tolerance.products, config_.name.c_str(), "reference");
  bool compare_emulated = emulated_ != nullptr;
  if (config_.conv_results != ConvResults::unchecked) {
    const bool is_bf16 = !bias_added && all_bf16(got);
    if (config_.conv_results == ConvResults::fp32) {
      if (!bias_added) BOOST_TEST(!is_bf16, what << ": rounded to bf16");
    } else if (models_shape(s)) {
      if (!bias_added) BOOST_TEST(is_bf16, what << ": not computed in bf16");
    } else if (!is_bf16) {
      BOOST_TEST_MESSAGE(what << ": " << (bias_added ? "a bias was added, so" : "TF32 (no bf16 algorithm):")
                              << " not compared with the bf16 reference");
      compare_emulated = false;
    }
  }
  if (compare_emulated)
    expect_close(what + " vs bf16 reference", got, t.emu, config_.tolerance.emulated, config_.name.c_str(),
                 "bf16 reference");
}

// --- Registry ----------------------------------------------------------------------------------

std::vector<Case>& cases() {
  static std::vector<Case> all;
  return all;
}

bool add_case(Case c) {
  cases().push_back(std::move(c));
  return true;
}

namespace {

boost::unit_test::test_unit::precondition_t skip_because(const std::string& reason) {
  return [reason](boost::unit_test::test_unit_id) {
    boost::test_tools::assertion_result result(false);
    result.message() << reason;
    return result;
  };
}

}  // namespace

void register_suites(const std::vector<BackendUnderTest>& configurations) {
  namespace utf = boost::unit_test;
  for (const BackendUnderTest& config : configurations) {
    utf::test_suite* suite = BOOST_TEST_SUITE(config.name);
    if (!config.unavailable.empty()) suite->add_precondition(skip_because(config.name + ": " + config.unavailable));
    for (const Case& c : cases()) {
      auto run = c.run;
      utf::test_case* test = utf::make_test_case(
          [config, run] {
            Harness h(config);
            run(h);
          },
          c.name, __FILE__, __LINE__);
      for (const Need need : c.needs)
        if (const auto lack = config.lacks.find(need); lack != config.lacks.end())
          test->add_precondition(skip_because(config.name + " lacks what this case needs: " + lack->second));
      suite->add(test);
    }
    utf::framework::master_test_suite().add(suite);
  }
}

}  // namespace textscale::testing::conformance

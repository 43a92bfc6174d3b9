// Finite-difference gradient checking for layers on ReferenceBackend<double>.
//
// The scalar checked is L = sum(dst * R) for a fixed random R, so dL/d(dst) = R is what backward
// receives. Each sampled input or parameter element x is perturbed by +-h; the central difference
// (L(x+h) - L(x-h)) / 2h is compared with the analytic gradient. At a kink (ReLU at 0, a change of
// winner in max or k-max pooling) the one-sided differences disagree; elements where they do and
// the central difference misses the analytic value are skipped and counted, and a check fails if more than 5% of its
// samples are kinks.
#pragma once

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include <boost/test/unit_test.hpp>

#include "textscale/engine/layer.h"
#include "textscale/engine/reference_backend.h"

namespace textscale::engine::testing {

struct GradcheckOptions {
  double step = 1e-5;
  double tolerance = 1e-6;  // on |numeric - analytic| / max(1, |numeric|, |analytic|)
  int samples = 60;         // elements checked per tensor (all if fewer)
};

inline std::vector<double> random_vector(std::size_t count, std::uint64_t seed, double scale = 1.0) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> normal(0.0, scale);
  std::vector<double> v(count);
  for (auto& x : v) x = normal(rng);
  return v;
}

// Compares numeric and analytic derivatives of `loss` w.r.t. `data[i]` for sampled i.
// `loss()` evaluates L at the current data; `analytic[i]` is dL/d data[i].
template <typename Loss>
void check_elements(const std::string& what, double* data, const double* analytic, std::size_t count, Loss loss,
                    const GradcheckOptions& options, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<std::size_t> indices;
  if (count <= static_cast<std::size_t>(options.samples)) {
    for (std::size_t i = 0; i < count; ++i) indices.push_back(i);
  } else {
    std::uniform_int_distribution<std::size_t> pick(0, count - 1);
    for (int s = 0; s < options.samples; ++s) indices.push_back(pick(rng));
  }
  int kinks = 0, failures = 0;
  double worst = 0;
  for (std::size_t i : indices) {
    const double saved = data[i];
    const double base = loss();
    data[i] = saved + options.step;
    const double plus = loss();
    data[i] = saved - options.step;
    const double minus = loss();
    data[i] = saved;
    const double right = (plus - base) / options.step, left = (base - minus) / options.step;
    const double numeric = (plus - minus) / (2 * options.step);
    const double scale = std::max({1.0, std::abs(numeric), std::abs(analytic[i])});
    const double error = std::abs(numeric - analytic[i]) / scale;
    if (error > options.tolerance && std::abs(right - left) / scale > 1e-3) {
      ++kinks;
      BOOST_TEST_MESSAGE(what << "[" << i << "]: kink (left " << left << ", right " << right << ", analytic "
                              << analytic[i] << ")");
      continue;
    }
    worst = std::max(worst, error);
    if (error > options.tolerance) {
      ++failures;
      if (failures <= 5)
        BOOST_ERROR(what << "[" << i << "]: numeric " << numeric << " vs analytic " << analytic[i]
                         << " (relative error " << error << ")");
    }
  }
  BOOST_TEST_MESSAGE(what << ": " << indices.size() << " elements, worst relative error " << worst << ", " << kinks
                          << " kinks skipped");
  BOOST_CHECK_MESSAGE(kinks * 20 <= static_cast<int>(indices.size()),
                      what << ": too many kinks (" << kinks << " of " << indices.size() << ")");
  BOOST_CHECK_EQUAL(failures, 0);
}

// Checks diff_src and every parameter gradient of `layer` on a batch of n samples of shape `src`;
// with `lengths` (n), the rows' real steps (Context::lengths) for the layers that read them.
inline void gradcheck_layer(Layer<double>& layer, Index n, Dims src, const GradcheckOptions& options = {},
                            std::uint64_t seed = 1, bool training = true,
                            const std::vector<std::int32_t>& lengths = {}) {
  ReferenceBackend<double> backend;
  ParamStore<double> params;
  const Dims dst = layer.setup(params, "layer.", src);
  params.finalize();
  params.initialize(seed);
  // Random parameters (not the layer's init, which may be constant) so every path is exercised.
  auto random_params = random_vector(params.values().size(), seed + 1, 0.5);
  std::copy(random_params.begin(), random_params.end(), params.values().data());
  layer.reserve(n, engine::host_memory());
  Context<double> ctx{&backend, &params, training, seed, 7};
  ctx.steps = src.t;
  if (!lengths.empty()) ctx.lengths = lengths.data();

  auto x = random_vector(static_cast<std::size_t>(n * src.per_sample()), seed + 2);
  auto r = random_vector(static_cast<std::size_t>(n * dst.per_sample()), seed + 3);
  std::vector<double> y(r.size()), diff_src(x.size());
  auto loss = [&]() {
    // Running statistics change on every training forward; restore them so L is a function of
    // the inputs only.
    std::vector<double> state(params.state().data(), params.state().data() + params.state().size());
    layer.forward(ctx, n, x.data(), y.data());
    std::copy(state.begin(), state.end(), params.state().data());
    double sum = 0;
    for (std::size_t i = 0; i < y.size(); ++i) sum += y[i] * r[i];
    return sum;
  };
  loss();
  layer.backward(ctx, n, x.data(), y.data(), r.data(), diff_src.data());
  std::vector<double> grads(params.gradients().data(), params.gradients().data() + params.gradients().size());
  check_elements(layer.describe() + " diff_src", x.data(), diff_src.data(), x.size(), loss, options, seed + 4);
  for (const auto& t : params.tensors()) {
    if (!t.trained) continue;
    check_elements(layer.describe() + " " + t.name, params.values().data() + t.offset, grads.data() + t.offset,
                   static_cast<std::size_t>(t.count), loss, options, seed + 5);
  }
}

}  // namespace textscale::engine::testing

// Model construction: parameter counts against the published architectures (computed here layer
// by layer from the papers' tables, and equal to PyTorch's count of the same models in
// bench/peer_models.py), shapes, and the whole model on oneDNN against the reference backend.
#define BOOST_TEST_MODULE models
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "textscale/engine/cpu/dnnl_backend.h"
#include "textscale/engine/model.h"
#include "textscale/engine/model_registry.h"
#include "textscale/engine/reference_backend.h"

using namespace textscale::engine;

namespace {

Index conv(Index in, Index out, Index k, bool bias) {
  return out * in * k + (bias ? out : 0);
}
Index linear(Index in, Index out) {
  return in * out + out;
}
Index bn(Index c) {
  return 2 * c;
}

Index crepe(Index features, Index fc, Index classes) {
  // Zhang et al. 2015, tables 1-2: 1014 -> conv7 1008 -> pool 336 -> conv7 330 -> pool 110 ->
  // conv3 x4 102 -> pool 34.
  return conv(69, features, 7, true) + conv(features, features, 7, true) + 4 * conv(features, features, 3, true) +
         linear(34 * features, fc) + linear(fc, fc) + linear(fc, classes);
}

Index vdcnn(std::vector<int> blocks, Index classes, bool shortcut) {
  // Conneau et al. 2017, figure 1 and table 2: embedding 16, temp conv 64, stages 64/128/256/512.
  Index total = 70 * 16 + conv(16, 64, 3, true);
  Index channels = 64;
  for (int stage = 0; stage < 4; ++stage) {
    const Index out = 64 << stage;
    for (int b = 0; b < blocks[static_cast<std::size_t>(stage)]; ++b) {
      total += conv(channels, out, 3, false) + bn(out) + conv(out, out, 3, false) + bn(out);
      if (shortcut && channels != out) total += conv(channels, out, 1, false) + bn(out);
      channels = out;
    }
  }
  return total + linear(512 * 8, 2048) + linear(2048, 2048) + linear(2048, classes);
}

Index count(const std::string& name, Index classes, bool shortcut = false) {
  ModelConfig c;
  c.name = name, c.classes = classes;
  if (shortcut) c.hyperparameters["shortcut"] = true;
  return Model<float>(c).params().trained_count();
}

}  // namespace

BOOST_AUTO_TEST_CASE(parameter_counts_match_the_papers) {
  BOOST_TEST(count("crepe-small", 4) == crepe(256, 1024, 4));
  BOOST_TEST(count("crepe-large", 4) == crepe(1024, 2048, 4));
  BOOST_TEST(count("crepe-small", 4) == 11337988);  // PyTorch, bench/peer_models.py
  BOOST_TEST(count("crepe-large", 4) == 95933444);
  BOOST_TEST(count("vdcnn-9", 4) == vdcnn({1, 1, 1, 1}, 4, false));
  BOOST_TEST(count("vdcnn-17", 4) == vdcnn({2, 2, 2, 2}, 4, false));
  BOOST_TEST(count("vdcnn-29", 4) == vdcnn({5, 5, 2, 2}, 4, false));
  BOOST_TEST(count("vdcnn-29", 14, true) == vdcnn({5, 5, 2, 2}, 14, true));
  BOOST_TEST(count("vdcnn-9", 4) == 14176164);
  BOOST_TEST(count("vdcnn-17", 4) == 16268964);
  BOOST_TEST(count("vdcnn-29", 4) == 16639908);
  BOOST_TEST(count("vdcnn-9", 4, true) == 14349988);
}

// The registry lists every model once, each at its published size, counted as `textscale models`
// counts (trained_parameter_count of listing_config; tests/cli/test_models.sh checks its output)
// and by the model itself.
BOOST_AUTO_TEST_CASE(registry_lists_every_model_at_its_published_size) {
  const std::map<std::string, Index> published{{"crepe-small", crepe(256, 1024, 4)},
                                               {"crepe-large", crepe(1024, 2048, 4)},
                                               {"vdcnn-9", vdcnn({1, 1, 1, 1}, 4, false)},
                                               {"vdcnn-17", vdcnn({2, 2, 2, 2}, 4, false)},
                                               {"vdcnn-29", vdcnn({5, 5, 2, 2}, 4, false)},
                                               // 50,000 x 200 table, two directions of 4H x (E + H)
                                               // weights and 4H biases, linear 2H -> 4.
                                               {"bilstm", 50000 * 200 + 2 * (400 * 300 + 400) + 200 * 4 + 4}};
  const std::vector<std::string> expected{"crepe-small", "crepe-large", "vdcnn-9", "vdcnn-17", "vdcnn-29", "bilstm"};
  BOOST_TEST(model_registry().names() == expected, boost::test_tools::per_element());
  for (const auto& entry : model_registry().entries()) {
    BOOST_TEST(!entry.description.empty());
    BOOST_TEST((entry.defaults.is_object() && !entry.defaults.empty()), entry.name);
    BOOST_REQUIRE(published.count(entry.name));
    const ModelConfig listed = listing_config(entry.name);
    BOOST_TEST(trained_parameter_count(listed) == published.at(entry.name), entry.name);
    BOOST_TEST(Model<float>(listed).params().trained_count() == published.at(entry.name), entry.name);
  }
}

BOOST_AUTO_TEST_CASE(hyperparameters_are_completed_and_checked) {
  ModelConfig c;
  c.name = "crepe-large", c.classes = 4;
  BOOST_TEST(complete_hyperparameters(c).hyperparameters ==
             nlohmann::json({{"features", 1024}, {"fc", 2048}, {"dropout", 0.5}}));
  c.hyperparameters = {{"fc", 100}};
  BOOST_TEST(complete_hyperparameters(c).hyperparameters ==
             nlohmann::json({{"features", 1024}, {"fc", 100}, {"dropout", 0.5}}));
  // The published values given explicitly build the same model as none given.
  c.name = "crepe-small", c.length = 200, c.hyperparameters = {{"features", 256}, {"fc", 1024}};
  ModelConfig implicit = c;
  implicit.hyperparameters = nlohmann::json::object();
  BOOST_TEST(Model<float>(c).summary() == Model<float>(implicit).summary());
  const auto refused = [](ModelConfig config, const std::string& why) {
    try {
      Model<float> model(config);
      BOOST_ERROR(config.name << " " << config.hyperparameters.dump() << " was built");
    } catch (const textscale::Error& error) {  // InputError, or OptionError for a value out of range
      BOOST_TEST(std::string(error.what()).find(why) != std::string::npos, error.what() << " names " << why);
    }
  };
  c.name = "vdcnn-9", c.hyperparameters = {{"dropout", 0.1}};
  refused(c,
          "model vdcnn-9 has no hyperparameter 'dropout' (its hyperparameters: embedding, fc, features, kmax, "
          "shortcut)");
  c.name = "crepe-small", c.hyperparameters = {{"features", "wide"}};
  refused(c, "model crepe-small: hyperparameters");
  c.hyperparameters = {{"dropout", 1.0}};
  refused(c, "--dropout must be in [0, 1)");
  c.hyperparameters = {{"fc", -3}};
  refused(c, "--fc must be positive");
  c.hyperparameters = nlohmann::json::array();
  refused(c, "hyperparameters must be a JSON object");
}

BOOST_AUTO_TEST_CASE(summary_shows_shapes_and_count) {
  ModelConfig c;
  c.name = "vdcnn-9", c.classes = 4;
  const std::string summary = Model<float>(c).summary();
  BOOST_TEST_MESSAGE(summary);
  for (const char* expected : {"embedding 70x16 -> 1014x16", "max-pool k3 s2 p1 -> 507x64",
                               "max-pool k3 s2 p1 -> 254x128", "max-pool k3 s2 p1 -> 127x256", "k-max pool k8 -> 8x512",
                               "linear 4096->2048 +relu", "parameters: 14176164 trained"})
    BOOST_TEST(summary.find(expected) != std::string::npos, "'" << expected << "' in the summary");
  c.name = "crepe-small";
  const std::string crepe = Model<float>(c).summary();
  BOOST_TEST_MESSAGE(crepe);
  for (const char* expected : {"one-hot conv1d 69->256 k7 +relu +max-pool k3 s3 -> 336x256",
                               "conv1d 256->256 k7 +relu -> 330x256", "linear 8704->1024 +relu"})
    BOOST_TEST(crepe.find(expected) != std::string::npos, "'" << expected << "' in the summary");
}

// Crepe's first max pooling is part of its input layer; the parameters keep the names they had
// when it was a layer of its own (checkpoints and bench/peer_models.py rely on them).
BOOST_AUTO_TEST_CASE(crepe_parameter_names) {
  ModelConfig c;
  c.name = "crepe-small", c.classes = 4;
  Model<float> model(c);
  std::vector<std::string> names;
  for (const auto& t : model.params().tensors()) names.push_back(t.name);
  const std::vector<std::string> expected{"input.weights", "input.bias", "1.weights", "1.bias",    "3.weights",
                                          "3.bias",        "4.weights",  "4.bias",    "5.weights", "5.bias",
                                          "6.weights",     "6.bias",     "8.weights", "8.bias",    "10.weights",
                                          "10.bias",       "12.weights", "12.bias"};
  BOOST_TEST(names == expected, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(unknown_model_and_too_short_input_are_refused) {
  ModelConfig c;
  c.name = "vdcnn-10", c.classes = 4;
  BOOST_CHECK_THROW(Model<float>{c}, textscale::InputError);
  c.name = "crepe-small", c.length = 50;
  BOOST_CHECK_THROW(Model<float>{c}, textscale::InputError);
}

// Model `c` on backend x vs model `d` (the same parameters) on backend y: the loss, every
// gradient, the inference logits and the running statistics.
void compare_models(const ModelConfig& c, Backend<float>& dnnl, const ModelConfig& d, Backend<float>& ref) {
  Model<float> a(c), b(d);
  a.params().initialize(5);
  b.params().initialize(5);
  const Index n = 6;
  a.reserve(n);
  b.reserve(n);
  Context<float> ca{&dnnl, nullptr, true, 3, 17}, cb{&ref, nullptr, true, 3, 17};
  std::mt19937_64 rng(4);
  std::vector<std::uint8_t> codes(static_cast<std::size_t>(n * c.length));
  for (auto& x : codes) x = static_cast<std::uint8_t>(rng() % 70);
  const auto batch = InputBatch::characters(codes.data(), n, c.length);
  std::vector<std::int32_t> labels{0, 1, 2, 3, 0, 1};
  const float* la = a.forward(ca, batch);
  const float* lb = b.forward(cb, batch);
  std::vector<float> da(static_cast<std::size_t>(n * c.classes)), db(da.size());
  const double loss_a = dnnl.softmax_cross_entropy(n, c.classes, la, labels.data(), da.data());
  const double loss_b = ref.softmax_cross_entropy(n, c.classes, lb, labels.data(), db.data());
  BOOST_TEST(loss_a == loss_b, boost::test_tools::tolerance(1e-4));
  a.backward(ca, batch, da.data());
  b.backward(cb, batch, db.data());
  for (const auto& t : a.params().tensors()) {
    if (!t.trained) continue;
    const float* ga = a.params().gradients().data() + t.offset;
    const float* gb = b.params().gradients().data() + t.offset;
    double squares = 0, error = 0;
    for (Index i = 0; i < t.count; ++i) {
      squares += static_cast<double>(gb[i]) * gb[i];
      error = std::max(error, std::abs(static_cast<double>(ga[i]) - gb[i]));
    }
    const double rms = std::sqrt(squares / static_cast<double>(t.count));
    // Float sums in different orders through a dozen layers: 1% of the gradient's RMS.
    BOOST_TEST(error <= 1e-2 * rms + 1e-7, c.name << " " << t.name << ": max difference " << error << ", rms " << rms);
  }
  // Inference: running statistics (updated by the training pass above), no dropout.
  ca.training = cb.training = false;
  const float* ia = a.forward(ca, batch);
  const float* ib = b.forward(cb, batch);
  double squares = 0, error = 0;
  for (Index i = 0; i < n * c.classes; ++i) {
    squares += static_cast<double>(ib[i]) * ib[i];
    error = std::max(error, std::abs(static_cast<double>(ia[i]) - ib[i]));
  }
  const double rms = std::sqrt(squares / static_cast<double>(n * c.classes));
  BOOST_TEST(error <= 1e-3 * rms + 1e-6, c.name << " inference logits: max difference " << error << ", rms " << rms);
  for (Index i = 0; i < a.params().state_count(); ++i)
    BOOST_TEST(a.params().state()[static_cast<std::size_t>(i)] == b.params().state()[static_cast<std::size_t>(i)],
               boost::test_tools::tolerance(1e-4f));
}

// The whole model on oneDNN vs the reference backend (float both).
void compare_backends(const ModelConfig& c) {
  DnnlBackend dnnl;
  ReferenceBackend<float> ref;
  compare_models(c, dnnl, c, ref);
}

// Crepe with its first block as one operation and as three layers, from the same weights.
BOOST_AUTO_TEST_CASE(crepe_fused_input_matches_three_layers) {
  ModelConfig fused;
  fused.name = "crepe-small", fused.classes = 4, fused.length = 160;
  fused.hyperparameters = {{"features", 32}, {"fc", 32}};
  ModelConfig layers = fused;
  layers.fuse_input = false;
  BOOST_TEST(Model<float>(fused).summary().find("+max-pool k3 s3") != std::string::npos);
  BOOST_TEST(Model<float>(layers).summary().find("+max-pool k3 s3") == std::string::npos);
  Model<float> one(fused), three(layers);
  std::vector<std::string> a, b;
  for (const auto& t : one.params().tensors()) a.push_back(t.name);
  for (const auto& t : three.params().tensors()) b.push_back(t.name);
  BOOST_TEST(a == b, boost::test_tools::per_element());
  DnnlBackend x, y;
  compare_models(fused, x, layers, y);
  ReferenceBackend<float> r;
  compare_models(fused, x, layers, r);
}

BOOST_AUTO_TEST_CASE(crepe_onednn_matches_reference) {
  ModelConfig c;
  c.name = "crepe-small", c.classes = 4, c.length = 160, c.hyperparameters = {{"features", 16}, {"fc", 32}};
  compare_backends(c);
}

BOOST_AUTO_TEST_CASE(vdcnn_onednn_matches_reference) {
  ModelConfig c;
  c.name = "vdcnn-9", c.classes = 4, c.length = 128;
  c.hyperparameters = {{"features", 8}, {"fc", 32}, {"shortcut", true}};
  compare_backends(c);
}

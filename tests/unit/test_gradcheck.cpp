// Finite-difference gradient checks of every layer, the loss and whole models, in double on the
// reference backend (see gradcheck.h for the method and tolerance).
#define BOOST_TEST_MODULE gradcheck
#include <boost/test/unit_test.hpp>

#include "gradcheck.h"
#include "textscale/engine/layers/activation.h"
#include "textscale/engine/layers/batch_norm.h"
#include "textscale/engine/layers/conv1d.h"
#include "textscale/engine/layers/embedding.h"
#include "textscale/engine/layers/linear.h"
#include "textscale/engine/layers/pooling.h"
#include "textscale/engine/layers/recurrent.h"
#include "textscale/engine/layers/residual.h"
#include "textscale/engine/model.h"

using namespace textscale::engine;
using namespace textscale::engine::testing;

namespace {

Conv1d<double> conv(Index out, Index kernel, Index stride, Index pad, bool bias, bool relu) {
  return Conv1d<double>({out, kernel, stride, pad, bias, relu, Init::normal(0.1), Init::normal(0.1)});
}

}  // namespace

BOOST_AUTO_TEST_CASE(conv1d_plain) {
  auto layer = conv(5, 3, 1, 0, true, false);
  gradcheck_layer(layer, 2, {0, 11, 4});
}

BOOST_AUTO_TEST_CASE(conv1d_stride_and_padding) {
  auto layer = conv(3, 4, 2, 2, true, false);
  gradcheck_layer(layer, 2, {0, 13, 3});
}

BOOST_AUTO_TEST_CASE(conv1d_no_bias_fused_relu) {
  auto layer = conv(6, 3, 1, 1, false, true);
  gradcheck_layer(layer, 3, {0, 9, 5});
}

BOOST_AUTO_TEST_CASE(conv1d_pointwise) {
  auto layer = conv(7, 1, 1, 0, false, false);
  gradcheck_layer(layer, 2, {0, 6, 4});
}

BOOST_AUTO_TEST_CASE(max_pool_non_overlapping) {
  MaxPool1d<double> layer(3, 3);
  gradcheck_layer(layer, 2, {0, 12, 4});
}

BOOST_AUTO_TEST_CASE(max_pool_overlapping_padded) {
  // Overlapping windows: one input can win two windows, its gradient is the sum.
  MaxPool1d<double> layer(3, 2, 1);
  gradcheck_layer(layer, 2, {0, 11, 3});
}

BOOST_AUTO_TEST_CASE(kmax_pool) {
  KMaxPool<double> layer(4);
  gradcheck_layer(layer, 3, {0, 10, 5});
}

BOOST_AUTO_TEST_CASE(kmax_pool_k_equals_length) {
  KMaxPool<double> layer(6);
  gradcheck_layer(layer, 2, {0, 6, 3});
}

BOOST_AUTO_TEST_CASE(batch_norm_training) {
  BatchNorm<double> layer(false);
  gradcheck_layer(layer, 4, {0, 5, 3}, {.step = 1e-5, .tolerance = 1e-5});
}

BOOST_AUTO_TEST_CASE(batch_norm_training_fused_relu) {
  BatchNorm<double> layer(true);
  gradcheck_layer(layer, 4, {0, 5, 3}, {.step = 1e-5, .tolerance = 1e-5});
}

// The decomposed form used for batch norm synchronised over ranks (one process: local sums).
BOOST_AUTO_TEST_CASE(batch_norm_synchronised_form) {
  BatchNorm<double> layer(false, 0.1, 1e-5, true);
  gradcheck_layer(layer, 4, {0, 5, 3}, {.step = 1e-5, .tolerance = 1e-5});
}

BOOST_AUTO_TEST_CASE(batch_norm_synchronised_form_fused_relu) {
  BatchNorm<double> layer(true, 0.1, 1e-5, true);
  gradcheck_layer(layer, 4, {0, 5, 3}, {.step = 1e-5, .tolerance = 1e-5});
}

BOOST_AUTO_TEST_CASE(relu) {
  Relu<double> layer;
  gradcheck_layer(layer, 3, {0, 4, 5});
}

BOOST_AUTO_TEST_CASE(dropout_training) {
  Dropout<double> layer(0.4, 1);
  gradcheck_layer(layer, 3, {0, 1, 40});
}

BOOST_AUTO_TEST_CASE(linear_with_and_without_relu) {
  Linear<double> plain(6, false, Init::normal(0.1), Init::normal(0.1));
  gradcheck_layer(plain, 3, {0, 2, 5});
  Linear<double> rectified(6, true, Init::normal(0.1), Init::normal(0.1));
  gradcheck_layer(rectified, 3, {0, 2, 5});
}

// Rows of 6, 3, 1 and 0 real steps in one batch: each direction runs over its row's steps only,
// and the padding gets neither output nor gradient.
BOOST_AUTO_TEST_CASE(lstm_unidirectional_with_lengths) {
  Lstm<double> layer(3, false);
  gradcheck_layer(layer, 4, {0, 6, 5}, {}, 1, true, {6, 3, 1, 0});
}

BOOST_AUTO_TEST_CASE(lstm_bidirectional_with_lengths) {
  Lstm<double> layer(3, true);
  gradcheck_layer(layer, 4, {0, 6, 5}, {}, 2, true, {6, 3, 1, 0});
}

BOOST_AUTO_TEST_CASE(lstm_bidirectional_full_rows) {
  Lstm<double> layer(4, true);
  gradcheck_layer(layer, 2, {0, 5, 3}, {}, 3);
}

BOOST_AUTO_TEST_CASE(sequence_pooling_with_lengths) {
  for (const auto mode : {SequencePooling::last, SequencePooling::max, SequencePooling::mean}) {
    SequencePool<double> layer(mode, 2);
    BOOST_TEST_CONTEXT("pooling " << to_string(mode)) gradcheck_layer(layer, 4, {0, 5, 6}, {}, 4, true, {5, 2, 1, 0});
  }
}

BOOST_AUTO_TEST_CASE(residual_identity_and_projection) {
  auto body = std::make_unique<Sequential<double>>();
  body->append(std::make_unique<Conv1d<double>>(conv(4, 3, 1, 1, false, false)));
  body->append(std::make_unique<BatchNorm<double>>(true));
  Residual<double> identity(std::move(body), nullptr);
  gradcheck_layer(identity, 3, {0, 7, 4}, {.step = 1e-5, .tolerance = 1e-5});

  auto body2 = std::make_unique<Sequential<double>>();
  body2->append(std::make_unique<Conv1d<double>>(conv(6, 3, 1, 1, false, false)));
  auto projection = std::make_unique<Sequential<double>>();
  projection->append(std::make_unique<Conv1d<double>>(conv(6, 1, 1, 0, false, false)));
  projection->append(std::make_unique<BatchNorm<double>>(false));
  Residual<double> projected(std::move(body2), std::move(projection));
  gradcheck_layer(projected, 3, {0, 7, 4}, {.step = 1e-5, .tolerance = 1e-5});
}

// Input layers have no diff_src: check their parameter gradients through a tiny model-like pass.
template <typename Layer>
void gradcheck_input(Layer& layer, Index n, Index length, Index alphabet) {
  ReferenceBackend<double> backend;
  ParamStore<double> params;
  const Dims dst = layer.setup(params, "input.", length);
  params.finalize();
  auto values = random_vector(params.values().size(), 11, 0.5);
  std::copy(values.begin(), values.end(), params.values().data());
  layer.reserve(n, host_memory());
  Context<double> ctx{&backend, &params, true, 1, 0};
  std::mt19937_64 rng(5);
  std::vector<std::uint8_t> codes(static_cast<std::size_t>(n * length));
  for (auto& c : codes) c = static_cast<std::uint8_t>(rng() % static_cast<std::uint64_t>(alphabet + 1));
  codes[3] = 0;  // padding / unknown somewhere for sure
  auto r = random_vector(static_cast<std::size_t>(n * dst.per_sample()), 12);
  std::vector<double> y(r.size());
  auto loss = [&]() {
    layer.forward(ctx, InputBatch::characters(codes.data(), n, length), y.data());
    double sum = 0;
    for (std::size_t i = 0; i < y.size(); ++i) sum += y[i] * r[i];
    return sum;
  };
  loss();
  auto diff = r;  // backward may overwrite its diff_dst
  layer.backward(ctx, InputBatch::characters(codes.data(), n, length), y.data(), diff.data());
  std::vector<double> grads(params.gradients().data(), params.gradients().data() + params.gradients().size());
  for (const auto& t : params.tensors())
    check_elements(layer.describe() + " " + t.name, params.values().data() + t.offset, grads.data() + t.offset,
                   static_cast<std::size_t>(t.count), loss, {}, 13);
}

BOOST_AUTO_TEST_CASE(onehot_conv1d) {
  OneHotConv1d<double> plain(6, 5, 3, false, Init::normal(0.1), Init::normal(0.1));
  gradcheck_input(plain, 2, 10, 6);
  OneHotConv1d<double> rectified(6, 5, 3, true, Init::normal(0.1), Init::normal(0.1));
  gradcheck_input(rectified, 2, 10, 6);
  OneHotConv1d<double> pooled(6, 5, 3, true, Init::normal(0.1), Init::normal(0.1), {3, 2});  // Crepe's first block
  gradcheck_input(pooled, 2, 14, 6);
}

BOOST_AUTO_TEST_CASE(onehot_conv1d_equals_dense_conv_on_onehot_input) {
  ReferenceBackend<double> backend;
  const Conv1dShape s{2, 9, 5, 4, 3, 1, 0};
  auto weights = random_vector(static_cast<std::size_t>(s.weights_count()), 3);
  auto bias = random_vector(4, 4);
  std::vector<std::uint8_t> codes{0, 1, 2, 3, 4, 5, 5, 0, 2, 3, 3, 1, 0, 0, 4, 2, 1, 5};
  std::vector<double> onehot(static_cast<std::size_t>(s.src().count()), 0.0);
  for (std::size_t i = 0; i < codes.size(); ++i)
    if (codes[i] > 0) onehot[i * 5 + codes[i] - 1] = 1.0;
  std::vector<double> gather(static_cast<std::size_t>(s.dst().count())), dense(gather.size());
  OpStatePtr a, b;
  backend.onehot_conv1d_forward(a, s, codes.data(), weights.data(), bias.data(), gather.data(), false);
  backend.conv1d_forward(b, s, onehot.data(), weights.data(), bias.data(), dense.data(), false);
  for (std::size_t i = 0; i < dense.size(); ++i) BOOST_TEST(gather[i] == dense[i], boost::test_tools::tolerance(1e-12));
}

BOOST_AUTO_TEST_CASE(embedding) {
  Embedding<double> layer(7, 4, Init::normal(1));
  gradcheck_input(layer, 3, 5, 6);
}

// A word table's gradient is row-sparse (params.h): after a backward over other words, the next
// batch's gradient still matches finite differences in every row (the rows of the batch before
// are cleared), and exactly that batch's words are listed.
BOOST_AUTO_TEST_CASE(word_embedding_row_sparse) {
  ReferenceBackend<double> backend;
  ParamStore<double> params;
  Embedding<double> layer(12, 3, Init::normal(1), IdType::words, true);
  const Index n = 2, length = 5;
  layer.setup(params, "input.", length);
  params.finalize();
  BOOST_TEST_REQUIRE(params.row_sparse().size() == 1u);
  auto values = random_vector(params.values().size(), 31, 0.5);
  std::copy(values.begin(), values.end(), params.values().data());
  layer.reserve(n, host_memory());
  Context<double> ctx{&backend, &params, true, 1, 0};
  std::vector<std::int32_t> first{1, 2, 3, 4, 5, 6, 7, 1, 1, 0}, second{8, 9, 8, 2, 0, 11, 9, 9, 2, 2};
  std::vector<std::int32_t> lengths{5, 4};
  auto r = random_vector(static_cast<std::size_t>(n * length * 3), 32);
  std::vector<double> y(r.size());
  auto loss = [&](std::vector<std::int32_t>& ids) {
    layer.forward(ctx, InputBatch::words(ids.data(), n, length, lengths.data()), y.data());
    double sum = 0;
    for (std::size_t i = 0; i < y.size(); ++i) sum += y[i] * r[i];
    return sum;
  };
  for (auto* ids : {&first, &second}) {
    loss(*ids);
    auto diff = r;
    layer.backward(ctx, InputBatch::words(ids->data(), n, length, lengths.data()), y.data(), diff.data());
  }
  BOOST_TEST((params.row_sparse()[0].rows == std::vector<std::int32_t>{0, 2, 8, 9, 11}));
  std::vector<double> grads(params.gradients().data(), params.gradients().data() + params.gradients().size());
  check_elements(
      "row-sparse word embedding", params.values().data(), grads.data(), grads.size(), [&] { return loss(second); },
      {.samples = 100}, 33);
}

BOOST_AUTO_TEST_CASE(softmax_cross_entropy) {
  ReferenceBackend<double> backend;
  const Index n = 4, k = 5;
  auto logits = random_vector(static_cast<std::size_t>(n * k), 21, 2.0);
  std::vector<std::int32_t> labels{0, 4, 2, 2};
  std::vector<double> diff(logits.size());
  double total = backend.softmax_cross_entropy(n, k, logits.data(), labels.data(), diff.data());
  BOOST_TEST(total > 0);
  auto loss = [&]() { return backend.softmax_cross_entropy(n, k, logits.data(), labels.data(), nullptr) / n; };
  check_elements("softmax cross-entropy", logits.data(), diff.data(), logits.size(), loss, {}, 22);
}

// Whole models at reduced sizes: checks the wiring (flattening, residual sums, input layers).
void gradcheck_model(ModelConfig config) {
  ReferenceBackend<double> backend;
  Model<double> model(config);
  model.params().initialize(3);
  const Index n = 3;
  model.reserve(n);
  Context<double> ctx{&backend, nullptr, true, 9, 1};
  std::mt19937_64 rng(8);
  std::vector<std::uint8_t> codes(static_cast<std::size_t>(n * config.length));
  for (auto& c : codes) c = static_cast<std::uint8_t>(rng() % 70);
  // Word models: ids over the vocabulary, rows of the full length, a few words and none.
  std::vector<std::int32_t> words(static_cast<std::size_t>(n * config.length)),
      lengths{static_cast<std::int32_t>(config.length), 2, 0};
  for (auto& w : words)
    w = static_cast<std::int32_t>(rng() % static_cast<std::uint64_t>(std::max<Index>(config.vocab, 1)));
  const auto batch = model.input_ids() == IdType::words
                         ? InputBatch::words(words.data(), n, config.length, lengths.data())
                         : InputBatch::characters(codes.data(), n, config.length);
  std::vector<std::int32_t> labels{0, 1, 2};
  auto& params = model.params();
  auto loss = [&]() {
    std::vector<double> state(params.state().data(), params.state().data() + params.state().size());
    const double* logits = model.forward(ctx, batch);
    std::copy(state.begin(), state.end(), params.state().data());
    return backend.softmax_cross_entropy(n, config.classes, logits, labels.data(), nullptr) / n;
  };
  loss();
  std::vector<double> diff(static_cast<std::size_t>(n * config.classes));
  const double* logits = model.forward(ctx, batch);
  backend.softmax_cross_entropy(n, config.classes, logits, labels.data(), diff.data());
  model.backward(ctx, batch, diff.data());
  std::vector<double> grads(params.gradients().data(), params.gradients().data() + params.gradients().size());
  for (const auto& t : params.tensors())
    if (t.trained)
      check_elements(config.name + " " + t.name, params.values().data() + t.offset, grads.data() + t.offset,
                     static_cast<std::size_t>(t.count), loss, {.step = 1e-5, .tolerance = 2e-5, .samples = 8}, 31);
}

BOOST_AUTO_TEST_CASE(tiny_crepe) {
  ModelConfig c;
  c.name = "crepe-small", c.classes = 3, c.length = 128;
  c.hyperparameters = {{"features", 6}, {"fc", 8}, {"dropout", 0.5}};
  gradcheck_model(c);
}

BOOST_AUTO_TEST_CASE(tiny_vdcnn_with_shortcuts) {
  ModelConfig c;
  // Order-preserving k-max pooling is discontinuous where the k-th and (k+1)-th values tie (the kept
  // values shift slots); after a ReLU, zeros tie whenever fewer than k values are positive. A
  // small k over a longer final length keeps such ties away from the sampled points.
  c.name = "vdcnn-9", c.classes = 3, c.length = 128;
  c.hyperparameters = {{"features", 3}, {"fc", 8}, {"embedding", 3}, {"kmax", 2}, {"shortcut", true}};
  gradcheck_model(c);
}

BOOST_AUTO_TEST_CASE(tiny_bilstm_each_pooling) {
  for (const char* pooling : {"last", "max", "mean"}) {
    ModelConfig c;
    c.name = "bilstm", c.classes = 3, c.length = 7, c.vocab = 11;
    c.hyperparameters = {{"embedding", 4}, {"hidden", 3}, {"pooling", pooling}, {"dropout", 0.5}};
    BOOST_TEST_CONTEXT("pooling " << pooling) gradcheck_model(c);
  }
}

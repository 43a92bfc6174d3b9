// A batch of word ids (input.h) through the word embedding and a linear layer: finite-difference
// gradients in double on the reference backend, and the same pass on every CPU backend against
// it; the input checks (a layer or model given ids of the other type, a malformed batch); and a
// word dataset read from a preprocessed file.
#define BOOST_TEST_MODULE word_input
#include <boost/test/unit_test.hpp>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <vector>

#include "gradcheck.h"
#include "textscale/common/error.h"
#include "textscale/engine/cpu/dnnl_backend.h"
#include "textscale/engine/layers/embedding.h"
#include "textscale/engine/layers/linear.h"
#include "textscale/engine/model.h"
#include "textscale/preprocess/pipeline.h"
#include "textscale/train/dataset.h"

using namespace textscale::engine;
using namespace textscale::engine::testing;

namespace {

constexpr Index kVocab = 50007, kDim = 5, kWords = 6, kRows = 3, kClasses = 4;

// Word ids with repeats within and across rows, padding (0) at the row ends, and the table's last row.
std::vector<std::int32_t> word_ids() {
  return {17,   4242, 17, 50006, 0,     0,  //
          4242, 9,    9,  9,     31000, 0,  //
          17,   1,    2,  50006, 4242,  0};
}
const std::vector<std::int32_t> kLengths{4, 5, 6};

// Word embedding (N, W) -> (N, W, E), then a linear layer over the flattened (N, W * E).
template <typename T>
struct WordNet {
  Embedding<T> embedding{kVocab, kDim, Init::normal(0.5), IdType::words};
  Linear<T> linear{kClasses, false, Init::normal(0.3), Init::normal(0.3)};
  ParamStore<T> params;
  std::vector<T> embedded, logits, diff_embedded;

  WordNet() {
    const Dims e = embedding.setup(params, "input.", kWords);
    linear.setup(params, "0.", e);
    params.finalize();
    params.initialize(3);
    linear.reserve(kRows, host_memory());
    embedded.resize(static_cast<std::size_t>(kRows * e.per_sample()));
    diff_embedded.resize(embedded.size());
    logits.resize(static_cast<std::size_t>(kRows * kClasses));
  }
  // L = sum(logits * r).
  double loss(Context<T>& ctx, const InputBatch& in, const std::vector<T>& r) {
    ctx.params = &params;
    embedding.forward(ctx, in, embedded.data());
    linear.forward(ctx, in.n, embedded.data(), logits.data());
    double sum = 0;
    for (std::size_t i = 0; i < logits.size(); ++i) sum += static_cast<double>(logits[i]) * static_cast<double>(r[i]);
    return sum;
  }
  // Gradients of L (after loss()).
  void backward(Context<T>& ctx, const InputBatch& in, const std::vector<T>& r) {
    linear.backward(ctx, in.n, embedded.data(), logits.data(), r.data(), diff_embedded.data());
    embedding.backward(ctx, in, embedded.data(), diff_embedded.data());
  }
};

}  // namespace

BOOST_AUTO_TEST_CASE(word_embedding_and_linear_gradcheck) {
  ReferenceBackend<double> backend;
  WordNet<double> net;
  Context<double> ctx{&backend, &net.params, true, 1, 0};
  const auto ids = word_ids();
  const auto in = InputBatch::words(ids.data(), kRows, kWords, kLengths.data());
  const auto r = random_vector(static_cast<std::size_t>(kRows * kClasses), 12);
  auto loss = [&]() { return net.loss(ctx, in, r); };
  loss();
  net.backward(ctx, in, r);
  const std::vector<double> grads(net.params.gradients().data(),
                                  net.params.gradients().data() + net.params.gradients().size());
  double* values = net.params.values().data();
  for (const auto& t : net.params.tensors())
    check_elements("word net " + t.name, values + t.offset, grads.data() + t.offset, static_cast<std::size_t>(t.count),
                   loss, {}, 13);
  // The table's rows the batch selects (a random sample of 250k elements rarely hits them),
  // repeated ids summing several positions' gradients.
  const auto& table = net.params.tensors().front();
  for (const std::int32_t id : std::set<std::int32_t>(ids.begin(), ids.end()))
    check_elements("word net table row " + std::to_string(id), values + table.offset + id * kDim,
                   grads.data() + table.offset + id * kDim, kDim, loss, {}, 14);
  // Rows no id selects have a zero gradient.
  for (Index id : {Index{3}, Index{49999}})
    for (Index e = 0; e < kDim; ++e) BOOST_TEST(grads[static_cast<std::size_t>(table.offset + id * kDim + e)] == 0.0);
}

// The float pass on each CPU backend against the double reference: the logits and every gradient.
BOOST_AUTO_TEST_CASE(word_embedding_and_linear_on_every_cpu_backend) {
  ReferenceBackend<double> oracle;
  WordNet<double> want;
  Context<double> want_ctx{&oracle, &want.params, true, 1, 0};
  const auto ids = word_ids();
  const auto in = InputBatch::words(ids.data(), kRows, kWords, kLengths.data());
  const auto r = random_vector(static_cast<std::size_t>(kRows * kClasses), 12);
  const std::vector<float> r_float(r.begin(), r.end());
  std::vector<double> r_rounded(r_float.begin(), r_float.end());
  ReferenceBackend<float> reference;
  DnnlBackend dnnl;
  for (Backend<float>* backend : std::vector<Backend<float>*>{&reference, &dnnl}) {
    WordNet<float> got;
    // The same float parameters on both sides.
    for (std::size_t i = 0; i < got.params.values().size(); ++i)
      want.params.values()[i] = static_cast<double>(got.params.values()[i]);
    want.loss(want_ctx, in, r_rounded);
    want.backward(want_ctx, in, r_rounded);
    Context<float> ctx{backend, &got.params, true, 1, 0};
    got.loss(ctx, in, r_float);
    got.backward(ctx, in, r_float);
    // Sums of at most W * E = 30 products, or 3 repeats of a row of such: fp32 round-off (2^-24)
    // times the length, under 1e-5 of |value| + the rms of the nonzero values (a margin of 5).
    auto compare = [&](const std::string& what, const auto& a, const auto& b, std::size_t count) {
      double squares = 0, nonzero = 0, worst = 0;
      for (std::size_t i = 0; i < count; ++i) {
        squares += static_cast<double>(b[i]) * static_cast<double>(b[i]);
        nonzero += b[i] != 0;
      }
      const double rms = std::sqrt(squares / std::max(nonzero, 1.0));
      for (std::size_t i = 0; i < count; ++i) {
        const double want_i = static_cast<double>(b[i]);
        worst = std::max(worst, std::abs(static_cast<double>(a[i]) - want_i) / (std::abs(want_i) + rms));
      }
      BOOST_TEST(worst <= 1e-5, backend->name() << " " << what << ": relative difference " << worst);
    };
    compare("logits", got.logits, want.logits, got.logits.size());
    for (const auto& t : got.params.tensors())
      compare(t.name, got.params.gradients().data() + t.offset, want.params.gradients().data() + t.offset,
              static_cast<std::size_t>(t.count));
  }
}

BOOST_AUTO_TEST_CASE(ids_of_the_other_type_are_refused) {
  ReferenceBackend<double> backend;
  WordNet<double> net;
  Context<double> ctx{&backend, &net.params, true, 1, 0};
  std::vector<std::uint8_t> codes(static_cast<std::size_t>(kRows * kWords), 1);
  const auto characters = InputBatch::characters(codes.data(), kRows, kWords);
  BOOST_CHECK_THROW(net.embedding.forward(ctx, characters, net.embedded.data()), textscale::InputError);

  // The character models read character codes only.
  const auto ids = word_ids();
  for (const char* name : {"crepe-small", "vdcnn-9"}) {
    ModelConfig config;
    config.name = name;
    config.classes = 2;
    Model<double> model(config);
    model.reserve(1);
    BOOST_TEST((model.input_ids() == IdType::characters));
    std::vector<std::int32_t> words(static_cast<std::size_t>(config.length), 1);
    Context<double> model_ctx{&backend, nullptr, false, 1, 0};
    BOOST_CHECK_THROW(model.forward(model_ctx, InputBatch::words(words.data(), 1, config.length)),
                      textscale::InputError);
    std::vector<std::uint8_t> short_row(10, 1);
    BOOST_CHECK_THROW(model.forward(model_ctx, InputBatch::characters(short_row.data(), 1, 10)), textscale::InputError);
  }
}

BOOST_AUTO_TEST_CASE(word_ids_outside_the_table_are_errors) {
  ReferenceBackend<double> backend;
  DnnlBackend dnnl;
  WordNet<double> net;
  Context<double> ctx{&backend, &net.params, true, 1, 0};
  auto ids = word_ids();
  ids[7] = static_cast<std::int32_t>(kVocab);
  BOOST_CHECK_THROW(net.embedding.forward(ctx, InputBatch::words(ids.data(), kRows, kWords), net.embedded.data()),
                    textscale::Error);
  ids[7] = -2;
  std::vector<float> table(static_cast<std::size_t>(kVocab * kDim)), dst(ids.size() * kDim);
  BOOST_CHECK_THROW(dnnl.embedding_forward(kRows, kWords, kVocab, kDim, ids.data(), table.data(), dst.data()),
                    textscale::Error);
}

BOOST_AUTO_TEST_CASE(sentence_structure_is_validated) {
  std::vector<std::int32_t> ids(2 * 3 * 4, 1), sentence_lengths(2 * 3, 4), lengths{3, 2};
  const auto good = InputBatch::sentence_words(ids.data(), 2, 3, 4, sentence_lengths.data(), lengths.data());
  BOOST_TEST(good.width == 12);
  BOOST_CHECK_NO_THROW(good.validate());
  auto bad = good;
  bad.sentences.width = 5;  // 3 sentences of 5 words are not rows of 12
  BOOST_CHECK_THROW(bad.validate(), textscale::InputError);
  auto characters = good;
  characters.type = IdType::characters;  // sentences hold words
  BOOST_CHECK_THROW(characters.validate(), textscale::InputError);
  std::vector<std::uint8_t> codes(8, 1);
  BOOST_CHECK_THROW(InputBatch::characters(codes.data(), 2, 0).validate(), textscale::InputError);
  BOOST_CHECK_THROW(InputBatch::characters(nullptr, 2, 4).validate(), textscale::InputError);
}

// A file from `textscale preprocess` read as a word dataset, its rows through the word embedding.
BOOST_AUTO_TEST_CASE(word_dataset_from_a_preprocessed_file) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("textscale-word-input-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  {
    std::ofstream csv(dir / "train.csv");
    const char* words[] = {"alpha", "beta", "gamma", "delta", "news", "film", "good", "bad"};
    for (int r = 0; r < 12; ++r) {
      csv << '"' << 1 + r % 3 << "\",\"";
      for (int w = 0; w < 3 + r % 7; ++w) csv << (w ? " " : "") << words[(r * 5 + w * 3) % 8];
      csv << "\"\n";
    }
  }
  textscale::preprocess::PreprocessOptions options;
  options.input = (dir / "train.csv").string();
  options.output = (dir / "train.h5").string();
  options.char_length = 16;
  options.word_length = 6;
  options.vocab_size = 7;  // fewer than the words: some are out of vocabulary (id 1)
  options.threads = 1;
  options.quiet = true;
  textscale::preprocess::run_preprocess(options);

  const auto data = textscale::train::load_dataset(options.output, IdType::words, 2, 10);
  const Index word_length = data.encoding.word_length, vocab_size = data.encoding.vocab_size;
  BOOST_TEST(data.rows == 8);
  BOOST_TEST(word_length == 6);
  BOOST_TEST(vocab_size == 7);
  BOOST_TEST(data.lengths.size() == 8u);
  for (std::size_t r = 0; r < 8; ++r) {
    // Row 2 + r holds 3 + (2 + r) % 7 words, at most W of them.
    BOOST_TEST(data.lengths[r] == std::min<std::int32_t>(6, 3 + static_cast<std::int32_t>((2 + r) % 7)));
    for (std::int64_t w = 0; w < word_length; ++w) {
      const std::int32_t id = data.words[r * 6 + static_cast<std::size_t>(w)];
      BOOST_TEST((id >= 0 && id < vocab_size));
      BOOST_TEST(((w < data.lengths[r]) == (id != 0)), "row " << r << " word " << w << ": id " << id);
    }
  }
  // Rows 1..4 cut to the longest of them (the row of 2 + 4 = 6 words: 3 + 6 % 7 > W = 6 words).
  std::vector<std::int32_t> scratch;
  const auto in = data.batch(1, 4, scratch);
  BOOST_TEST(in.n == 4);
  BOOST_TEST(in.lengths == data.lengths.data() + 1);
  const Index longest = *std::max_element(data.lengths.begin() + 1, data.lengths.begin() + 5);
  BOOST_TEST(in.width == longest);
  const auto* cut = static_cast<const std::int32_t*>(in.ids);
  for (Index r = 0; r < 4; ++r)
    for (Index w = 0; w < longest; ++w) BOOST_TEST(cut[r * longest + w] == data.words[(1 + r) * word_length + w]);
  ReferenceBackend<double> backend;
  ParamStore<double> params;
  Embedding<double> embedding(vocab_size, 3, Init::normal(1), IdType::words, true);
  embedding.setup(params, "input.", word_length);
  params.finalize();
  params.initialize(1);
  Context<double> ctx{&backend, &params, false, 1, 0};
  std::vector<double> dst(static_cast<std::size_t>(4 * in.width * 3));
  embedding.forward(ctx, in, dst.data());
  const std::int32_t first = data.words[static_cast<std::size_t>(word_length)];  // row 1, word 0
  for (Index e = 0; e < 3; ++e) BOOST_TEST(dst[static_cast<std::size_t>(e)] == params.values()[first * 3 + e]);
  BOOST_CHECK_THROW(static_cast<void>(data.batch(6, 4, scratch)), textscale::Error);
  fs::remove_all(dir);
}

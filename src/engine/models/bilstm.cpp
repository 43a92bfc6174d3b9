// A word-level bidirectional LSTM classifier: word embedding -> LSTM over each row's real words
// -> pooling of its states (the final states by default; max or mean over the real words) ->
// dropout -> linear to the classes. The published values are those of the Amazon-reviews BiLSTM
// (200-d embeddings, 100 units a direction); the Keras IMDB example is --embed-dim 128
// --hidden 64 (docs/word-models.md). Registered as bilstm.
#include <memory>
#include <nlohmann/json.hpp>

#include "textscale/common/error.h"
#include "textscale/engine/layers/activation.h"
#include "textscale/engine/layers/embedding.h"
#include "textscale/engine/layers/linear.h"
#include "textscale/engine/layers/recurrent.h"
#include "textscale/engine/model_registry.h"

namespace textscale::engine {

namespace {

struct BiLstmHyperparameters {
  Index embedding = 200;           // word vector size (--embed-dim)
  Index hidden = 100;              // LSTM units a direction (--hidden)
  bool bidirectional = true;       // a second LSTM backward in time (--bidirectional)
  std::string pooling = "last";    // last | max | mean over the real words (--pooling)
  double dropout = 0.5;            // before the linear layer (--dropout)
  bool freeze_embeddings = false;  // the word vectors stay as they start (--freeze-embeddings)
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(BiLstmHyperparameters, embedding, hidden, bidirectional, pooling,
                                                dropout, freeze_embeddings)

// Embedding U(-0.1, 0.1) (PyTorch's N(0, 1) puts 200-d inputs at norm ~14 and saturates the
// gates: on AG News it learns several times slower), LSTM and linear layer U(-1/sqrt(fan_in), +)
// (PyTorch's defaults), as the PyTorch peer (bench/peer_word_models.py) draws them.
template <typename T>
std::unique_ptr<InputLayer<T>> build_bilstm(const ModelConfig& c, const BiLstmHyperparameters& h, Sequential<T>& body) {
  if (c.vocab < 2)
    throw InputError("model bilstm reads word ids: the data file needs a vocabulary (preprocess without --no-words)");
  if (h.embedding < 1) throw OptionError("--embed-dim must be positive");
  if (h.hidden < 1) throw OptionError("--hidden must be positive");
  if (!(h.dropout >= 0 && h.dropout < 1)) throw OptionError("--dropout must be in [0, 1)");  // NaN too
  const SequencePooling pooling = parse_sequence_pooling(h.pooling);
  const Index directions = h.bidirectional ? 2 : 1;
  body.append(std::make_unique<Lstm<T>>(h.hidden, h.bidirectional));
  body.append(std::make_unique<SequencePool<T>>(pooling, directions));
  body.append(std::make_unique<Dropout<T>>(h.dropout, 1));
  const Init linear = Init::fan_in_uniform(directions * h.hidden);
  body.append(std::make_unique<Linear<T>>(c.classes, false, linear, linear));
  const Init embedding{Init::Kind::uniform, 0.1, 1};
  return std::make_unique<Embedding<T>>(c.vocab, h.embedding, embedding, IdType::words, true, h.freeze_embeddings);
}

}  // namespace

void register_bilstm(ModelRegistry& registry) {
  registry.add(
      "bilstm", "word embedding, bidirectional LSTM over each row's real words, pooled states, dropout, linear",
      BiLstmHyperparameters{},
      [](const ModelConfig& c, const BiLstmHyperparameters& h, auto& body) { return build_bilstm(c, h, body); },
      {"dropout"});
}

}  // namespace textscale::engine

// VDCNN (Conneau, Schwenk, Barrault and LeCun 2017): 16-d character embedding, a 3-wide "temporal"
// convolution to 64 features, four stages of convolutional blocks (conv3 + BN + ReLU, twice) with
// 64/128/256/512 features and max-pool /2 between stages, k-max pooling, three fully connected
// layers. Kaiming init for convolutions (He et al. 2015, as the paper says). Registered as
// vdcnn-9, vdcnn-17 and vdcnn-29: the depth fixes the blocks per stage.
#include <array>
#include <memory>
#include <nlohmann/json.hpp>

#include "textscale/common/error.h"
#include "textscale/engine/layers/batch_norm.h"
#include "textscale/engine/layers/conv1d.h"
#include "textscale/engine/layers/embedding.h"
#include "textscale/engine/layers/linear.h"
#include "textscale/engine/layers/pooling.h"
#include "textscale/engine/layers/residual.h"
#include "textscale/engine/model_registry.h"

namespace textscale::engine {

namespace {

struct VdcnnHyperparameters {
  Index features = 64;    // features of the first stage, doubled at each of the next three (--features)
  Index fc = 2048;        // width of the two hidden fully connected layers (--fc)
  Index embedding = 16;   // character embedding size
  Index kmax = 8;         // k of the k-max pooling
  bool shortcut = false;  // residual blocks, with 1x1 conv + BN projections where channels change (--shortcut)
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(VdcnnHyperparameters, features, fc, embedding, kmax, shortcut)

template <typename T>
std::unique_ptr<InputLayer<T>> build_vdcnn(const ModelConfig& c, const VdcnnHyperparameters& h,
                                           const std::array<int, 4>& blocks, Sequential<T>& body) {
  if (h.features < 1) throw OptionError("--features must be positive (0 = the published value)");
  if (h.fc < 1) throw OptionError("--fc must be positive (0 = the published value)");
  if (h.embedding < 1 || h.kmax < 1) throw InputError("the embedding size and k of k-max must be positive");
  auto input = std::make_unique<Embedding<T>>(c.alphabet + 1, h.embedding, Init::normal(1.0));
  body.append(std::make_unique<Conv1d<T>>(typename Conv1d<T>::Options{
      h.features, 3, 1, 1, true, false, Init::kaiming(h.embedding * 3), Init::constant(0)}));
  auto conv3 = [](Index in, Index out) {
    return std::make_unique<Conv1d<T>>(
        typename Conv1d<T>::Options{out, 3, 1, 1, false, false, Init::kaiming(in * 3), Init::constant(0)});
  };
  Index channels = h.features;
  for (int stage = 0; stage < 4; ++stage) {
    const Index out = h.features << stage;
    if (stage > 0) body.append(std::make_unique<MaxPool1d<T>>(3, 2, 1));
    for (int b = 0; b < blocks[static_cast<std::size_t>(stage)]; ++b) {
      auto block = std::make_unique<Sequential<T>>();
      Sequential<T>& target = h.shortcut ? *block : body;
      target.append(conv3(channels, out));
      target.append(std::make_unique<BatchNorm<T>>(true, 0.1, 1e-5, c.sync_bn));
      target.append(conv3(out, out));
      target.append(std::make_unique<BatchNorm<T>>(true, 0.1, 1e-5, c.sync_bn));
      if (h.shortcut) {
        auto shortcut = std::make_unique<Sequential<T>>();
        if (channels != out) {
          shortcut->append(std::make_unique<Conv1d<T>>(
              typename Conv1d<T>::Options{out, 1, 1, 0, false, false, Init::kaiming(channels), Init::constant(0)}));
          shortcut->append(std::make_unique<BatchNorm<T>>(false, 0.1, 1e-5, c.sync_bn));
        }
        body.append(std::make_unique<Residual<T>>(std::move(block), std::move(shortcut)));
      }
      channels = out;
    }
  }
  body.append(std::make_unique<KMaxPool<T>>(h.kmax));
  // Linear layers: Torch's default init, as in the authors' code (He init there makes SGD at
  // lr 0.01 diverge in the first steps).
  auto linear = [](Index in, Index out, bool relu) {
    return std::make_unique<Linear<T>>(out, relu, Init::fan_in_uniform(in), Init::fan_in_uniform(in));
  };
  body.append(linear(channels * h.kmax, h.fc, true));
  body.append(linear(h.fc, h.fc, true));
  body.append(linear(h.fc, c.classes, false));
  return input;
}

}  // namespace

void register_vdcnn(ModelRegistry& registry) {
  // Conneau et al. 2017, table 2: convolutional blocks per stage.
  for (const auto& [depth, blocks] : {std::pair{9, std::array{1, 1, 1, 1}}, std::pair{17, std::array{2, 2, 2, 2}},
                                      std::pair{29, std::array{5, 5, 2, 2}}}) {
    registry.add("vdcnn-" + std::to_string(depth),
                 "Conneau, Schwenk, Barrault and LeCun 2017, depth " + std::to_string(depth) +
                     ": character embedding, convolutional blocks in four stages, k-max pooling",
                 VdcnnHyperparameters{}, [blocks](const ModelConfig& c, const VdcnnHyperparameters& h, auto& body) {
                   return build_vdcnn(c, h, blocks, body);
                 });
  }
}

}  // namespace textscale::engine

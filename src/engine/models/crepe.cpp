// Crepe (Zhang, Zhao and LeCun 2015, tables 1 and 2): six convolutions over the one-hot input,
// max-pool 3 after layers 1, 2 and 6, two fully connected layers with dropout, Gaussian init of
// every weight and bias. Registered as crepe-small and crepe-large.
#include <memory>
#include <nlohmann/json.hpp>

#include "textscale/common/error.h"
#include "textscale/engine/layers/activation.h"
#include "textscale/engine/layers/conv1d.h"
#include "textscale/engine/layers/linear.h"
#include "textscale/engine/layers/pooling.h"
#include "textscale/engine/model_registry.h"

namespace textscale::engine {

namespace {

// The published values are the small model's; crepe-large registers its own.
struct CrepeHyperparameters {
  Index features = 256;  // convolution features (--features)
  Index fc = 1024;       // width of the two hidden fully connected layers (--fc)
  double dropout = 0.5;  // dropout after each hidden fully connected layer (--dropout)
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE_WITH_DEFAULT(CrepeHyperparameters, features, fc, dropout)

// Crepe after its first max pooling.
template <typename T, typename Conv>
void append_crepe_body(const CrepeHyperparameters& h, Index classes, Conv& conv, const Init& init,
                       Sequential<T>& body) {
  body.append(conv(7));
  body.append(std::make_unique<MaxPool1d<T>>(3, 3));
  for (int i = 0; i < 4; ++i) body.append(conv(3));
  body.append(std::make_unique<MaxPool1d<T>>(3, 3));
  body.append(std::make_unique<Linear<T>>(h.fc, true, init, init));
  body.append(std::make_unique<Dropout<T>>(h.dropout, 1));
  body.append(std::make_unique<Linear<T>>(h.fc, true, init, init));
  body.append(std::make_unique<Dropout<T>>(h.dropout, 2));
  body.append(std::make_unique<Linear<T>>(classes, false, init, init));
}

// The first max pooling is part of the input layer (one operation with the one-hot convolution)
// unless ModelConfig::fuse_input is off; the body is then numbered from 1, as when the pooling
// was its first layer, so that parameter names and checkpoints are the same.
template <typename T>
std::unique_ptr<InputLayer<T>> build_crepe(const ModelConfig& c, const CrepeHyperparameters& h, double init_std,
                                           Sequential<T>& body) {
  if (h.features < 1) throw OptionError("--features must be positive (0 = the published value)");
  if (h.fc < 1) throw OptionError("--fc must be positive (0 = the published value)");
  if (!(h.dropout >= 0 && h.dropout < 1)) throw OptionError("--dropout must be in [0, 1)");  // NaN too
  const Init init = Init::normal(init_std);
  auto conv = [&](Index kernel) {
    return std::make_unique<Conv1d<T>>(typename Conv1d<T>::Options{h.features, kernel, 1, 0, true, true, init, init});
  };
  if (!c.fuse_input) {
    auto input = std::make_unique<OneHotConv1d<T>>(c.alphabet, h.features, 7, true, init, init);
    body.append(std::make_unique<MaxPool1d<T>>(3, 3));
    append_crepe_body(h, c.classes, conv, init, body);
    return input;
  }
  auto input = std::make_unique<OneHotConv1d<T>>(c.alphabet, h.features, 7, true, init, init,
                                                 typename OneHotConv1d<T>::Pool{3, 3});
  body.number_from(1);
  append_crepe_body(h, c.classes, conv, init, body);
  return input;
}

}  // namespace

void register_crepe(ModelRegistry& registry) {
  for (const bool large : {false, true}) {
    const CrepeHyperparameters published =
        large ? CrepeHyperparameters{.features = 1024, .fc = 2048} : CrepeHyperparameters{};
    const double init_std = large ? 0.02 : 0.05;
    registry.add(large ? "crepe-large" : "crepe-small",
                 std::string("Zhang, Zhao and LeCun 2015, ") + (large ? "large" : "small") +
                     ": one-hot input, six convolutions, two fully connected layers with dropout",
                 published,
                 [init_std](const ModelConfig& c, const CrepeHyperparameters& h, auto& body) {
                   return build_crepe(c, h, init_std, body);
                 },
                 {"dropout"});
  }
}

}  // namespace textscale::engine

#include "textscale/engine/model.h"

#include <cmath>
#include <cstdlib>
#include <functional>
#include <sstream>

#include "textscale/common/error.h"
#include "textscale/engine/layers/activation.h"
#include "textscale/engine/layers/batch_norm.h"
#include "textscale/engine/layers/conv1d.h"
#include "textscale/engine/layers/embedding.h"
#include "textscale/engine/layers/linear.h"
#include "textscale/engine/layers/pooling.h"
#include "textscale/engine/layers/residual.h"

namespace textscale::engine {

std::vector<std::string> ModelConfig::names() {
  return {"crepe-small", "crepe-large", "vdcnn-9", "vdcnn-17", "vdcnn-29"};
}

namespace {

// Crepe after its first max pooling.
template <typename T, typename Conv>
void append_crepe_body(const ModelConfig& c, Conv& conv, const Init& init, Index fc, Sequential<T>& body) {
  body.append(conv(7));
  body.append(std::make_unique<MaxPool1d<T>>(3, 3));
  for (int i = 0; i < 4; ++i) body.append(conv(3));
  body.append(std::make_unique<MaxPool1d<T>>(3, 3));
  body.append(std::make_unique<Linear<T>>(fc, true, init, init));
  body.append(std::make_unique<Dropout<T>>(c.dropout, 1));
  body.append(std::make_unique<Linear<T>>(fc, true, init, init));
  body.append(std::make_unique<Dropout<T>>(c.dropout, 2));
  body.append(std::make_unique<Linear<T>>(c.classes, false, init, init));
}

// Crepe (Zhang, Zhao and LeCun 2015, table 1 and 2): six convolutions over the one-hot input,
// max-pool 3 after layers 1, 2 and 6, two fully connected layers with dropout, Gaussian init of
// every weight and bias. The first max pooling is part of the input layer (one operation with the
// one-hot convolution) unless ModelConfig::fuse_input is off; the body is then numbered from 1, as
// when the pooling was its first layer, so that parameter names and checkpoints are the same.
template <typename T>
std::unique_ptr<InputLayer<T>> build_crepe(const ModelConfig& c, bool large, Sequential<T>& body) {
  const Index features = c.features ? c.features : (large ? 1024 : 256);
  const Index fc = c.fc ? c.fc : (large ? 2048 : 1024);
  const Init init = Init::normal(large ? 0.02 : 0.05);
  auto conv = [&](Index kernel) {
    return std::make_unique<Conv1d<T>>(typename Conv1d<T>::Options{features, kernel, 1, 0, true, true, init, init});
  };
  if (!c.fuse_input) {
    auto input = std::make_unique<OneHotConv1d<T>>(c.alphabet, features, 7, true, init, init);
    body.append(std::make_unique<MaxPool1d<T>>(3, 3));
    append_crepe_body(c, conv, init, fc, body);
    return input;
  }
  auto input = std::make_unique<OneHotConv1d<T>>(c.alphabet, features, 7, true, init, init,
                                                 typename OneHotConv1d<T>::Pool{3, 3});
  body.number_from(1);
  append_crepe_body(c, conv, init, fc, body);
  return input;
}

// VDCNN (Conneau, Schwenk, Barrault and LeCun 2017): 16-d character embedding, a 3-wide "temporal"
// convolution to 64 features, four stages of convolutional blocks (conv3 + BN + ReLU, twice) with
// 64/128/256/512 features and max-pool /2 between stages, k-max pooling, three fully connected
// layers. Kaiming init for convolutions (He et al. 2015, as the paper says).
template <typename T>
std::unique_ptr<InputLayer<T>> build_vdcnn(const ModelConfig& c, int depth, Sequential<T>& body) {
  std::vector<int> blocks;
  if (depth == 9) blocks = {1, 1, 1, 1};
  if (depth == 17) blocks = {2, 2, 2, 2};
  if (depth == 29) blocks = {5, 5, 2, 2};
  const Index base = c.features ? c.features : 64;
  const Index fc = c.fc ? c.fc : 2048;
  auto input = std::make_unique<Embedding<T>>(c.alphabet + 1, c.embedding, Init::normal(1.0));
  body.append(std::make_unique<Conv1d<T>>(
      typename Conv1d<T>::Options{base, 3, 1, 1, true, false, Init::kaiming(c.embedding * 3), Init::constant(0)}));
  auto conv3 = [](Index in, Index out) {
    return std::make_unique<Conv1d<T>>(
        typename Conv1d<T>::Options{out, 3, 1, 1, false, false, Init::kaiming(in * 3), Init::constant(0)});
  };
  Index channels = base;
  for (int stage = 0; stage < 4; ++stage) {
    const Index out = base << stage;
    if (stage > 0) body.append(std::make_unique<MaxPool1d<T>>(3, 2, 1));
    for (int b = 0; b < blocks[static_cast<std::size_t>(stage)]; ++b) {
      auto block = std::make_unique<Sequential<T>>();
      Sequential<T>& target = c.shortcut ? *block : body;
      target.append(conv3(channels, out));
      target.append(std::make_unique<BatchNorm<T>>(true, 0.1, 1e-5, c.sync_bn));
      target.append(conv3(out, out));
      target.append(std::make_unique<BatchNorm<T>>(true, 0.1, 1e-5, c.sync_bn));
      if (c.shortcut) {
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
  body.append(std::make_unique<KMaxPool<T>>(c.kmax));
  // Linear layers: Torch's default init, as in the authors' code (He init there makes SGD at
  // lr 0.01 diverge in the first steps).
  auto linear = [](Index in, Index out, bool relu) {
    return std::make_unique<Linear<T>>(out, relu, Init::fan_in_uniform(in), Init::fan_in_uniform(in));
  };
  body.append(linear(channels * c.kmax, fc, true));
  body.append(linear(fc, fc, true));
  body.append(linear(fc, c.classes, false));
  return input;
}

}  // namespace

template <typename T>
Model<T>::Model(const ModelConfig& config, const Memory& memory) : config_(config), memory_(&memory) {
  if (config.classes < 2) throw InputError("a classifier needs at least 2 classes");
  if (config.features < 0) throw InputError("--features must not be negative (0 = the published value)");
  if (config.fc < 0) throw InputError("--fc must not be negative (0 = the published value)");
  if (config.embedding < 1 || config.kmax < 1) throw InputError("the embedding size and k of k-max must be positive");
  if (!(config.dropout >= 0 && config.dropout < 1)) throw InputError("--dropout must be in [0, 1)");  // NaN too
  if (config.alphabet < 1 || config.alphabet > 255) throw InputError("the alphabet must have 1 to 255 symbols");
  const std::string& name = config.name;
  if (name == "crepe-small" || name == "crepe-large")
    input_ = build_crepe<T>(config_, name == "crepe-large", body_);
  else if (name == "vdcnn-9" || name == "vdcnn-17" || name == "vdcnn-29")
    input_ = build_vdcnn<T>(config, std::stoi(name.substr(6)), body_);
  else
    throw InputError("unknown model '" + name + "' (known: crepe-small, crepe-large, vdcnn-9, vdcnn-17, vdcnn-29)");
  try {
    input_dims_ = input_->setup(params_, "input.", config.length);
    body_.setup(params_, "", input_dims_);
    body_.report_gradients(true);
  } catch (const Error& e) {
    throw InputError("model " + name + " with input length " + std::to_string(config.length) + ": " + e.what());
  }
  params_.finalize(memory);
}

template <typename T>
void Model<T>::reserve(Index max_batch) {
  if (max_batch == max_batch_) return;
  max_batch_ = max_batch;
  input_->reserve(max_batch, *memory_);
  body_.reserve(max_batch, *memory_);
  input_out_.resize(static_cast<std::size_t>(max_batch * input_dims_.per_sample()), *memory_);
  diff_input_.resize(static_cast<std::size_t>(max_batch * input_dims_.per_sample()), *memory_);
  logits_.resize(static_cast<std::size_t>(max_batch * config_.classes), *memory_);
}

template <typename T>
void Model<T>::check(const InputBatch& in) const {
  in.validate();
  if (in.type != input_->ids())
    throw InputError("model " + config_.name + " reads " + to_string(input_->ids()) + ", but the batch holds " +
                     to_string(in.type));
  if (in.width != config_.length)
    throw InputError("model " + config_.name + " reads rows of " + std::to_string(config_.length) +
                     " ids, but the batch's rows hold " + std::to_string(in.width));
  if (in.n > max_batch_)
    throw Error("batch of " + std::to_string(in.n) + " exceeds the reserved " + std::to_string(max_batch_));
}

template <typename T>
const T* Model<T>::forward(Context<T>& ctx, const InputBatch& in) {
  check(in);
  ctx.params = &params_;
  const std::size_t begin = ctx.profile ? ctx.backend->memory().mark() : 0;
  input_->forward(ctx, in, input_out_.data());
  if (ctx.profile) {
    const std::size_t slot = ctx.profile->slot("input");
    ctx.profile->entries[slot].layer = input_->describe();
    ctx.profile->entries[slot].calls += 1;
    ctx.profile->add(slot, true, begin, ctx.backend->memory().mark());
  }
  body_.forward(ctx, in.n, input_out_.data(), logits_.data());
  return logits_.data();
}

template <typename T>
void Model<T>::backward(Context<T>& ctx, const InputBatch& in, const T* diff_logits) {
  check(in);
  ctx.params = &params_;
  body_.backward(ctx, in.n, input_out_.data(), logits_.data(), diff_logits, diff_input_.data());
  const std::size_t begin = ctx.profile ? ctx.backend->memory().mark() : 0;
  input_->backward(ctx, in, input_out_.data(), diff_input_.data());
  if (ctx.profile) ctx.profile->add(ctx.profile->slot("input"), false, begin, ctx.backend->memory().mark());
  if (ctx.on_gradients_ready) (*ctx.on_gradients_ready)(0);
}

template <typename T>
double Model<T>::forward_macs() const {
  return input_->forward_macs() + body_.forward_macs();
}

template <typename T>
std::string Model<T>::summary() const {
  std::ostringstream out;
  out << config_.name << ": input (" << config_.length << " characters)\n";
  out << "  " << input_->describe() << " -> " << input_dims_.t << "x" << input_dims_.c << "\n";
  std::function<void(const Sequential<T>&, const std::string&)> walk = [&](const Sequential<T>& s,
                                                                           const std::string& indent) {
    for (std::size_t i = 0; i < s.layers().size(); ++i) {
      const auto& layer = *s.layers()[i];
      out << indent << layer.describe() << " -> " << s.shapes()[i].t << "x" << s.shapes()[i].c << "\n";
      if (auto* residual = dynamic_cast<const Residual<T>*>(&layer)) walk(residual->body(), indent + "    ");
    }
  };
  walk(body_, "  ");
  out << "parameters: " << params_.trained_count() << " trained, " << params_.state_count() << " state; "
      << std::llround(2 * forward_macs() / 1e6) << " MFLOP per sample forward (dense)";
  return out.str();
}

template class Model<float>;
template class Model<double>;

}  // namespace textscale::engine

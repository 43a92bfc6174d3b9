#include "textscale/engine/model.h"

#include <cmath>
#include <functional>
#include <sstream>

#include "textscale/common/error.h"
#include "textscale/engine/layers/residual.h"
#include "textscale/engine/model_registry.h"

namespace textscale::engine {

void to_json(nlohmann::json& j, const ModelConfig& c) {
  j = nlohmann::json{{"name", c.name},         {"classes", c.classes}, {"length", c.length},
                     {"alphabet", c.alphabet}, {"vocab", c.vocab},     {"hyperparameters", c.hyperparameters}};
}

void from_json(const nlohmann::json& j, ModelConfig& c) {
  j.at("name").get_to(c.name);
  j.at("classes").get_to(c.classes);
  j.at("length").get_to(c.length);
  j.at("alphabet").get_to(c.alphabet);
  c.vocab = j.value("vocab", Index{0});
  j.at("hyperparameters").get_to(c.hyperparameters);
}

template <typename T>
Model<T>::Model(const ModelConfig& config, const Memory& memory)
    : config_(complete_hyperparameters(config)), memory_(&memory) {
  if (config.classes < 2) throw InputError("a classifier needs at least 2 classes");
  const std::string& name = config.name;
  input_ = model_registry().at(name).builder<T>()(config_, body_);
  if (input_->ids() == IdType::characters && (config.alphabet < 1 || config.alphabet > 255))
    throw InputError("the alphabet must have 1 to 255 symbols");
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
  if (in.width != config_.length && !(input_->any_width() && in.width >= 1 && in.width <= config_.length))
    throw InputError("model " + config_.name + " reads rows of " + (input_->any_width() ? "1 to " : "") +
                     std::to_string(config_.length) + " ids, but the batch's rows hold " + std::to_string(in.width));
  if (in.n > max_batch_)
    throw Error("batch of " + std::to_string(in.n) + " exceeds the reserved " + std::to_string(max_batch_));
}

template <typename T>
const T* Model<T>::forward(Context<T>& ctx, const InputBatch& in) {
  check(in);
  ctx.params = &params_;
  ctx.steps = in.width;
  ctx.lengths = in.lengths;
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
  ctx.steps = in.width;
  ctx.lengths = in.lengths;
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
  out << config_.name << ": input (" << config_.length
      << (input_->ids() == IdType::words ? " words of " + std::to_string(config_.vocab) : std::string(" characters"))
      << ")\n";
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

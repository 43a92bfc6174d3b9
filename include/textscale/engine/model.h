// A classifier: an input layer over a batch of ids (input.h), a chain of layers, logits (N, classes).
//
// Models are built by name from the registry (model_registry.h; `textscale models` lists them),
// each with its family's hyperparameters, overridable for experiments and tests.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "textscale/engine/layers/sequential.h"

namespace textscale::engine {

struct ModelConfig {
  std::string name = "crepe-small";
  Index classes = 0;
  Index length = 1014;  // characters per sample
  Index alphabet = 69;  // codes 1..alphabet; 0 = padding / unknown
  Index vocab = 0;      // word ids 0..vocab-1 (word models; the data file's vocabulary size)
  // The family's hyperparameters as JSON (its struct in src/engine/models/): members left out take
  // the published values of `name`. The model completes them (Model::config() has every member);
  // {"features": 32, "fc": 64} is a small Crepe.
  nlohmann::json hyperparameters = nlohmann::json::object();
  // Batch normalisation with statistics over all data-parallel ranks (a training choice, not
  // part of the architecture: not stored with the model).
  bool sync_bn = false;
  // Crepe's one-hot convolution, its ReLU and the first max pooling as one operation
  // (Backend::onehot_conv1d_relu_pool_forward) rather than three. The same function and parameter
  // names either way (not stored with the model); BackendOptions::onehot_fusion (--onehot-fusion)
  // sets it.
  bool fuse_input = true;
};

// The stored part of a ModelConfig (checkpoints, config.json): name, classes, length, alphabet,
// hyperparameters, each required, and vocab (0 when absent: a character model).
void to_json(nlohmann::json& j, const ModelConfig& config);
void from_json(const nlohmann::json& j, ModelConfig& config);

template <typename T>
class Model {
 public:
  // Builds the layers and declares (but does not initialise) the parameters, which live in
  // `memory` (the backend's: Backend::memory()) together with the activations. Throws InputError
  // for an unknown model or hyperparameters it cannot build.
  explicit Model(const ModelConfig& config, const Memory& memory = host_memory());

  // The configuration with every hyperparameter (complete_hyperparameters).
  [[nodiscard]] const ModelConfig& config() const { return config_; }
  [[nodiscard]] ParamStore<T>& params() { return params_; }
  // Allocates activations for batches of up to `max_batch` samples.
  void reserve(Index max_batch);
  [[nodiscard]] Index max_batch() const { return max_batch_; }

  [[nodiscard]] const Memory& memory() const { return *memory_; }
  // The kind of ids the model reads (its input layer's): character codes for the models above.
  [[nodiscard]] IdType input_ids() const { return input_->ids(); }
  // A batch (input.h) of `in.n` rows of `length` ids -> logits (N, classes), valid until the next
  // forward. The batch's arrays and the logits are in the model's memory. Throws InputError for a
  // batch of the other id type or another width, Error for more rows than reserved.
  const T* forward(Context<T>& ctx, const InputBatch& in);
  // Gradients of all parameters from diff_logits (N, classes), after forward on the same batch.
  void backward(Context<T>& ctx, const InputBatch& in, const T* diff_logits);

  // Multiply-adds of one dense forward pass per sample (training step = 3x forward).
  [[nodiscard]] double forward_macs() const;
  // Layer-by-layer description with output shapes and the parameter count.
  [[nodiscard]] std::string summary() const;

 private:
  void check(const InputBatch& in) const;
  ModelConfig config_;
  const Memory* memory_;
  ParamStore<T> params_;
  std::unique_ptr<InputLayer<T>> input_;
  Sequential<T> body_;
  Dims input_dims_;
  Index max_batch_ = 0;
  Buffer<T> input_out_, logits_, diff_input_;
};

extern template class Model<float>;
extern template class Model<double>;

}  // namespace textscale::engine

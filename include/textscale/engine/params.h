// All parameters, their gradients and the non-trained state (batch-norm running statistics) of a
// model, each in one flat buffer.
//
// Layers declare their tensors while the model is built, in a fixed order; `finalize()` then
// allocates three buffers (values, gradients, state) and layers keep offsets into them. One flat
// gradient buffer is what lets data-parallel training all-reduce gradients in a few large,
// fixed-order buckets, and lets optimizers and checkpoints treat the model as one array.
// Each tensor's layout is the canonical one named by the layer that declares it.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "textscale/engine/buffer.h"
#include "textscale/engine/dims.h"

namespace textscale::engine {

// How a tensor is initialised. Random draws use a counter-based generator keyed by the run seed
// and the tensor's name, so a model initialises identically in float and double, on every backend
// and for every thread count.
struct Init {
  enum class Kind { constant, normal, kaiming_normal, uniform } kind = Kind::constant;
  double value = 0;  // constant value, standard deviation of `normal`, bound of `uniform`
  Index fan_in = 1;  // kaiming_normal: std = sqrt(2 / fan_in)

  static Init constant(double v) { return {Kind::constant, v, 1}; }
  static Init normal(double std) { return {Kind::normal, std, 1}; }
  static Init kaiming(Index fan_in) { return {Kind::kaiming_normal, 0, fan_in}; }
  // U(-1/sqrt(fan_in), 1/sqrt(fan_in)): Torch's default for linear layers.
  static Init fan_in_uniform(Index fan_in) {
    return {Kind::uniform, 1.0 / std::sqrt(static_cast<double>(fan_in)), fan_in};
  }
};

struct TensorInfo {
  std::string name;          // "conv1.weights", unique within the model
  std::vector<Index> shape;  // canonical layout, outermost first
  Index offset = 0;          // into values/gradients (trained) or state (not trained)
  Index count = 0;
  Init init;
  bool trained = true;
};

// An offset into a ParamStore's buffers, valid after finalize().
struct ParamRef {
  Index index = -1;
};

template <typename T>
class ParamStore {
 public:
  // Declares a trained tensor (value + gradient).
  ParamRef add(const std::string& name, std::vector<Index> shape, Init init);
  // Declares a tensor that is saved and restored but not trained (e.g. running statistics).
  ParamRef add_state(const std::string& name, std::vector<Index> shape, Init init);
  // Allocates the buffers in `memory`; no more tensors can be added.
  void finalize(const Memory& memory = host_memory());
  // Draws every tensor's initial values from `seed`; resets the state tensors.
  void initialize(std::uint64_t seed);

  [[nodiscard]] T* value(ParamRef r);
  [[nodiscard]] T* grad(ParamRef r);  // trained tensors only
  [[nodiscard]] const TensorInfo& info(ParamRef r) const { return tensors_.at(static_cast<std::size_t>(r.index)); }
  [[nodiscard]] const std::vector<TensorInfo>& tensors() const { return tensors_; }

  [[nodiscard]] Buffer<T>& values() { return values_; }
  [[nodiscard]] Buffer<T>& gradients() { return gradients_; }
  [[nodiscard]] Buffer<T>& state() { return state_; }
  [[nodiscard]] Index trained_count() const { return trained_count_; }
  [[nodiscard]] Index state_count() const { return state_count_; }

 private:
  ParamRef declare(const std::string& name, std::vector<Index> shape, Init init, bool trained);

  std::vector<TensorInfo> tensors_;
  Index trained_count_ = 0, state_count_ = 0;
  bool finalized_ = false;
  Buffer<T> values_, gradients_, state_;
};

extern template class ParamStore<float>;
extern template class ParamStore<double>;

}  // namespace textscale::engine

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
  bool row_sparse = false;  // its gradient is row-sparse (RowSparse)
};

// How a trained tensor's gradient is kept.
enum class Gradient {
  dense,       // every element written by each backward
  row_sparse,  // a table's gradient where a batch touches few rows (RowSparse)
};

// An offset into a ParamStore's buffers, valid after finalize().
struct ParamRef {
  Index index = -1;
};

// A trained (rows, row_size) tensor whose gradient is dense in layout but zero outside `rows`:
// backward clears the rows it listed the step before and lists the rows it writes (an embedding
// table: the words of the batch). Readers that know it (the gradient reducer, the optimizer's
// norm and its lazy update) touch only those rows; any other reader sees the full, correct
// gradient. Only in host memory: a tensor declared row-sparse in a GPU's memory has a dense
// gradient.
struct RowSparse {
  ParamRef tensor;
  Index offset = 0;  // of the tensor in the gradient buffer
  Index row_count = 0, row_size = 0;
  std::vector<std::int32_t> rows;  // sorted, distinct: the only rows that may be non-zero
};

template <typename T>
class ParamStore {
 public:
  // Declares a trained tensor (value + gradient). A row-sparse gradient needs a 2-D shape.
  ParamRef add(const std::string& name, std::vector<Index> shape, Init init, Gradient gradient = Gradient::dense);
  // Declares a tensor that is saved and restored but not trained (e.g. running statistics).
  ParamRef add_state(const std::string& name, std::vector<Index> shape, Init init);
  // Allocates the buffers in `memory`; no more tensors can be added.
  void finalize(const Memory& memory = host_memory());
  // Draws every tensor's initial values from `seed`; resets the state tensors.
  void initialize(std::uint64_t seed);
  // Zeroes every gradient (row-sparse ones list no rows).
  void zero_gradients();

  [[nodiscard]] T* value(ParamRef r);
  [[nodiscard]] T* grad(ParamRef r);  // trained tensors only
  [[nodiscard]] const TensorInfo& info(ParamRef r) const { return tensors_.at(static_cast<std::size_t>(r.index)); }
  [[nodiscard]] const std::vector<TensorInfo>& tensors() const { return tensors_; }

  [[nodiscard]] Buffer<T>& values() { return values_; }
  [[nodiscard]] Buffer<T>& gradients() { return gradients_; }
  [[nodiscard]] Buffer<T>& state() { return state_; }
  [[nodiscard]] Index trained_count() const { return trained_count_; }
  [[nodiscard]] Index state_count() const { return state_count_; }
  // The row-sparse gradients, in declaration order (none before finalize(), none on a GPU).
  [[nodiscard]] std::vector<RowSparse>& row_sparse() { return row_sparse_; }
  // `r`'s, or null when its gradient is dense.
  [[nodiscard]] RowSparse* row_sparse(ParamRef r);

 private:
  ParamRef declare(const std::string& name, std::vector<Index> shape, Init init, bool trained, bool row_sparse);

  std::vector<TensorInfo> tensors_;
  Index trained_count_ = 0, state_count_ = 0;
  bool finalized_ = false;
  Buffer<T> values_, gradients_, state_;
  std::vector<RowSparse> row_sparse_;
};

extern template class ParamStore<float>;
extern template class ParamStore<double>;

}  // namespace textscale::engine

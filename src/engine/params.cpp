#include "textscale/engine/params.h"

#include <vector>
#include "textscale/common/hash.h"

#include <cmath>
#include <functional>
#include <numbers>

#include "textscale/common/error.h"
#include "textscale/engine/dropout_mask.h"

namespace textscale::engine {

namespace {

// Standard normal draw i of stream `key`: Box-Muller on two counter-based uniforms.
double normal_draw(std::uint64_t key, std::uint64_t i) {
  double u1 = (static_cast<double>(mix64(key ^ mix64(2 * i)) >> 11) + 0.5) * (1.0 / 9007199254740992.0);
  double u2 = static_cast<double>(mix64(key ^ mix64(2 * i + 1)) >> 11) * (1.0 / 9007199254740992.0);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
}

}  // namespace

template <typename T>
ParamRef ParamStore<T>::declare(const std::string& name, std::vector<Index> shape, Init init, bool trained,
                                bool row_sparse) {
  if (finalized_) throw Error("parameter '" + name + "' declared after the model was finalised");
  for (const auto& t : tensors_)
    if (t.name == name) throw Error("parameter '" + name + "' declared twice");
  if (row_sparse && shape.size() != 2)
    throw Error("parameter '" + name + "': a row-sparse gradient needs 2 dimensions");
  Index count = 1;
  for (Index d : shape) count *= d;
  TensorInfo info{name, std::move(shape), trained ? trained_count_ : state_count_, count, init, trained, row_sparse};
  (trained ? trained_count_ : state_count_) += count;
  tensors_.push_back(std::move(info));
  return ParamRef{static_cast<Index>(tensors_.size() - 1)};
}

template <typename T>
ParamRef ParamStore<T>::add(const std::string& name, std::vector<Index> shape, Init init, Gradient gradient) {
  return declare(name, std::move(shape), init, true, gradient == Gradient::row_sparse);
}

template <typename T>
ParamRef ParamStore<T>::add_state(const std::string& name, std::vector<Index> shape, Init init) {
  return declare(name, std::move(shape), init, false, false);
}

template <typename T>
void ParamStore<T>::finalize(const Memory& memory) {
  values_.resize(static_cast<std::size_t>(trained_count_), memory);
  gradients_.resize(static_cast<std::size_t>(trained_count_), memory);
  state_.resize(static_cast<std::size_t>(state_count_), memory);
  gradients_.zero();
  row_sparse_.clear();
  for (std::size_t i = 0; i < tensors_.size(); ++i) {
    TensorInfo& t = tensors_[i];
    if (!t.row_sparse) continue;
    if (!memory.is_host()) {
      t.row_sparse = false;
      continue;
    }
    row_sparse_.push_back(RowSparse{ParamRef{static_cast<Index>(i)}, t.offset, t.shape[0], t.shape[1], {}});
  }
  finalized_ = true;
}

template <typename T>
void ParamStore<T>::zero_gradients() {
  gradients_.zero();
  for (auto& sparse : row_sparse_) sparse.rows.clear();
}

template <typename T>
RowSparse* ParamStore<T>::row_sparse(ParamRef r) {
  for (auto& sparse : row_sparse_)
    if (sparse.tensor.index == r.index) return &sparse;
  return nullptr;
}

template <typename T>
void ParamStore<T>::initialize(std::uint64_t seed) {
  if (!finalized_) throw Error("ParamStore::initialize before finalize");
  // Drawn on the host, then copied to the backend's memory.
  std::vector<T> values(values_.size()), state(state_.size());
  for (const auto& t : tensors_) {
    T* data = (t.trained ? values.data() : state.data()) + t.offset;
    std::uint64_t key = mix64(seed ^ fnv1a(t.name));
    double std = t.init.kind == Init::Kind::normal ? t.init.value : std::sqrt(2.0 / static_cast<double>(t.init.fan_in));
    for (Index i = 0; i < t.count; ++i) {
      const auto u = static_cast<std::uint64_t>(i);
      switch (t.init.kind) {
        case Init::Kind::constant:
          data[i] = static_cast<T>(t.init.value);
          break;
        case Init::Kind::uniform:
          data[i] = static_cast<T>(t.init.value * (2 * uniform01(key, u) - 1));
          break;
        default:
          data[i] = static_cast<T>(std * normal_draw(key, u));
      }
    }
  }
  values_.memory().copy_to_device(values_.data(), values.data(), values.size() * sizeof(T));
  state_.memory().copy_to_device(state_.data(), state.data(), state.size() * sizeof(T));
}

template <typename T>
T* ParamStore<T>::value(ParamRef r) {
  const auto& t = info(r);
  return (t.trained ? values_.data() : state_.data()) + t.offset;
}

template <typename T>
T* ParamStore<T>::grad(ParamRef r) {
  const auto& t = info(r);
  if (!t.trained) throw Error("parameter '" + t.name + "' is not trained and has no gradient");
  return gradients_.data() + t.offset;
}

template class ParamStore<float>;
template class ParamStore<double>;

}  // namespace textscale::engine

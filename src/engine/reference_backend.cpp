#include "textscale/engine/reference_backend.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

#include "textscale/common/error.h"
#include "textscale/engine/dropout_mask.h"

namespace textscale::engine {

namespace {

// Max pooling's winners, one source position per output element.
struct PoolWinners final : OpState {
  std::vector<Index> source;
};

// The fused one-hot block as its parts: the convolution's output and the pooling's state.
template <typename T>
struct OneHotPoolParts final : OpState {
  std::vector<T> conv;
  OpStatePtr pool;
  bool trained = false;
};

// What an LSTM's backward reads from its training forward, per (row, direction, step): the
// activated gates i, f, g, o (4H) and the cell state c (H).
template <typename T>
struct LstmTrace final : OpState {
  std::vector<T> gates, cells;
};

template <typename T>
T sigmoid(T x) {
  return T(1) / (T(1) + std::exp(-x));
}

// Row i's real steps (lengths null: all of them), checked against the contract.
Index real_steps(const std::int32_t* lengths, Index i, Index steps, const char* op) {
  const Index length = lengths ? lengths[i] : steps;
  if (length < 0 || length > steps)
    throw Error(std::string(op) + ": row " + std::to_string(i) + " has length " + std::to_string(length) +
                ", outside [0, " + std::to_string(steps) + "]");
  return length;
}

}  // namespace

template <typename T>
std::string ReferenceBackend<T>::name() const {
  return sizeof(T) == sizeof(double) ? "reference-double" : "reference-float";
}

template <typename T>
void ReferenceBackend<T>::conv1d_forward(OpStatePtr&, const Conv1dShape& s, const T* src, const T* weights,
                                         const T* bias, T* dst, bool relu) {
  const Index t_out = s.t_out();
  for (Index n = 0; n < s.n; ++n)
    for (Index t = 0; t < t_out; ++t)
      for (Index o = 0; o < s.c_out; ++o) {
        T sum = bias ? bias[o] : T(0);
        for (Index k = 0; k < s.kernel; ++k) {
          Index ti = t * s.stride + k - s.pad;
          if (ti < 0 || ti >= s.t_in) continue;
          for (Index c = 0; c < s.c_in; ++c)
            sum += weights[(o * s.c_in + c) * s.kernel + k] * src[(n * s.t_in + ti) * s.c_in + c];
        }
        dst[(n * t_out + t) * s.c_out + o] = relu ? std::max(sum, T(0)) : sum;
      }
}

template <typename T>
void ReferenceBackend<T>::conv1d_backward_data(OpStatePtr&, const Conv1dShape& s, const T* diff_dst, const T* weights,
                                               T* diff_src) {
  const Index t_out = s.t_out();
  std::fill(diff_src, diff_src + s.src().count(), T(0));
  for (Index n = 0; n < s.n; ++n)
    for (Index t = 0; t < t_out; ++t)
      for (Index o = 0; o < s.c_out; ++o) {
        T g = diff_dst[(n * t_out + t) * s.c_out + o];
        for (Index k = 0; k < s.kernel; ++k) {
          Index ti = t * s.stride + k - s.pad;
          if (ti < 0 || ti >= s.t_in) continue;
          for (Index c = 0; c < s.c_in; ++c)
            diff_src[(n * s.t_in + ti) * s.c_in + c] += g * weights[(o * s.c_in + c) * s.kernel + k];
        }
      }
}

template <typename T>
void ReferenceBackend<T>::conv1d_backward_weights(OpStatePtr&, const Conv1dShape& s, const T* src, const T* diff_dst,
                                                  T* diff_weights, T* diff_bias) {
  const Index t_out = s.t_out();
  std::fill(diff_weights, diff_weights + s.weights_count(), T(0));
  if (diff_bias) std::fill(diff_bias, diff_bias + s.c_out, T(0));
  for (Index n = 0; n < s.n; ++n)
    for (Index t = 0; t < t_out; ++t)
      for (Index o = 0; o < s.c_out; ++o) {
        T g = diff_dst[(n * t_out + t) * s.c_out + o];
        if (diff_bias) diff_bias[o] += g;
        for (Index k = 0; k < s.kernel; ++k) {
          Index ti = t * s.stride + k - s.pad;
          if (ti < 0 || ti >= s.t_in) continue;
          for (Index c = 0; c < s.c_in; ++c)
            diff_weights[(o * s.c_in + c) * s.kernel + k] += g * src[(n * s.t_in + ti) * s.c_in + c];
        }
      }
}

template <typename T>
void ReferenceBackend<T>::onehot_conv1d_forward(OpStatePtr&, const Conv1dShape& s, const std::uint8_t* codes,
                                                const T* weights, const T* bias, T* dst, bool relu) {
  const Index t_out = s.t_out();
  for (Index n = 0; n < s.n; ++n)
    for (Index t = 0; t < t_out; ++t)
      for (Index o = 0; o < s.c_out; ++o) {
        T sum = bias ? bias[o] : T(0);
        for (Index k = 0; k < s.kernel; ++k) {
          Index code = codes[n * s.t_in + t + k];
          if (code == 0) continue;
          if (code > s.c_in) throw Error("one-hot convolution: code " + std::to_string(code) + " outside the alphabet");
          sum += weights[(o * s.c_in + (code - 1)) * s.kernel + k];
        }
        dst[(n * t_out + t) * s.c_out + o] = relu ? std::max(sum, T(0)) : sum;
      }
}

template <typename T>
void ReferenceBackend<T>::onehot_conv1d_backward_weights(OpStatePtr&, const Conv1dShape& s, const std::uint8_t* codes,
                                                         const T* diff_dst, T* diff_weights, T* diff_bias) {
  const Index t_out = s.t_out();
  std::fill(diff_weights, diff_weights + s.weights_count(), T(0));
  if (diff_bias) std::fill(diff_bias, diff_bias + s.c_out, T(0));
  for (Index n = 0; n < s.n; ++n)
    for (Index t = 0; t < t_out; ++t)
      for (Index o = 0; o < s.c_out; ++o) {
        T g = diff_dst[(n * t_out + t) * s.c_out + o];
        if (diff_bias) diff_bias[o] += g;
        for (Index k = 0; k < s.kernel; ++k) {
          Index code = codes[n * s.t_in + t + k];
          if (code != 0) diff_weights[(o * s.c_in + (code - 1)) * s.kernel + k] += g;
        }
      }
}

template <typename T>
void ReferenceBackend<T>::onehot_conv1d_relu_pool_forward(OpStatePtr& state, const OneHotPoolShape& s,
                                                          const std::uint8_t* codes, const T* weights, const T* bias,
                                                          T* dst, bool training) {
  if (s.conv.stride != 1 || s.conv.pad != 0) throw Error("one-hot convolution: stride 1 and no padding only");
  if (!state) state = std::make_unique<OneHotPoolParts<T>>();
  auto& parts = static_cast<OneHotPoolParts<T>&>(*state);
  parts.conv.resize(static_cast<std::size_t>(s.conv.dst().count()));
  OpStatePtr no_state;
  onehot_conv1d_forward(no_state, s.conv, codes, weights, bias, parts.conv.data(), true);
  max_pool_forward(parts.pool, s.pool(), parts.conv.data(), dst, training);
  parts.trained = training;
}

template <typename T>
void ReferenceBackend<T>::onehot_conv1d_relu_pool_backward_weights(OpStatePtr& state, const OneHotPoolShape& s,
                                                                   const std::uint8_t* codes, const T* /*dst*/,
                                                                   const T* diff_dst, T* diff_weights, T* diff_bias) {
  auto* parts = dynamic_cast<OneHotPoolParts<T>*>(state.get());
  if (!parts || !parts->trained) throw Error("one-hot convolution and pooling: backward without a training forward");
  std::vector<T> diff(parts->conv.size());
  max_pool_backward(parts->pool, s.pool(), diff_dst, diff.data());
  relu_backward(static_cast<Index>(diff.size()), parts->conv.data(), diff.data(), diff.data());
  OpStatePtr no_state;
  onehot_conv1d_backward_weights(no_state, s.conv, codes, diff.data(), diff_weights, diff_bias);
}

template <typename T>
void ReferenceBackend<T>::max_pool_forward(OpStatePtr& state, const Pool1dShape& s, const T* src, T* dst,
                                           bool training) {
  if (!state) state = std::make_unique<PoolWinners>();
  auto& winners = static_cast<PoolWinners&>(*state).source;
  const Index t_out = s.t_out();
  if (training) winners.assign(static_cast<std::size_t>(s.dst().count()), 0);
  for (Index n = 0; n < s.n; ++n)
    for (Index t = 0; t < t_out; ++t)
      for (Index c = 0; c < s.c; ++c) {
        T best = -std::numeric_limits<T>::infinity();
        Index best_at = -1;
        for (Index k = 0; k < s.kernel; ++k) {
          Index ti = t * s.stride + k - s.pad;
          if (ti < 0 || ti >= s.t_in) continue;
          Index at = (n * s.t_in + ti) * s.c + c;
          if (best_at < 0 || src[at] > best) best = src[at], best_at = at;
        }
        Index out = (n * t_out + t) * s.c + c;
        dst[out] = best;
        if (training) winners[static_cast<std::size_t>(out)] = best_at;
      }
}

template <typename T>
void ReferenceBackend<T>::max_pool_backward(OpStatePtr& state, const Pool1dShape& s, const T* diff_dst, T* diff_src) {
  if (!state) throw Error("max_pool_backward called without a training forward pass");
  const auto& winners = static_cast<PoolWinners&>(*state).source;
  std::fill(diff_src, diff_src + s.src().count(), T(0));
  for (Index i = 0; i < s.dst().count(); ++i) diff_src[winners[static_cast<std::size_t>(i)]] += diff_dst[i];
}

template <typename T>
void ReferenceBackend<T>::kmax_pool_forward(Dims d, Index k, const T* src, T* dst, std::int32_t* indices) {
  std::vector<Index> order(static_cast<std::size_t>(d.t));
  for (Index n = 0; n < d.n; ++n)
    for (Index c = 0; c < d.c; ++c) {
      auto value = [&](Index t) { return src[(n * d.t + t) * d.c + c]; };
      std::iota(order.begin(), order.end(), Index(0));
      // Larger value first; among equal values the earlier position.
      std::stable_sort(order.begin(), order.end(), [&](Index a, Index b) { return value(a) > value(b); });
      std::sort(order.begin(), order.begin() + k);
      for (Index j = 0; j < k; ++j) {
        Index t = order[static_cast<std::size_t>(j)];
        dst[(n * k + j) * d.c + c] = value(t);
        indices[(n * k + j) * d.c + c] = static_cast<std::int32_t>(t);
      }
    }
}

template <typename T>
void ReferenceBackend<T>::kmax_pool_backward(Dims d, Index k, const T* diff_dst, const std::int32_t* indices,
                                             T* diff_src) {
  std::fill(diff_src, diff_src + d.count(), T(0));
  for (Index n = 0; n < d.n; ++n)
    for (Index j = 0; j < k; ++j)
      for (Index c = 0; c < d.c; ++c) {
        Index i = (n * k + j) * d.c + c;
        diff_src[(n * d.t + indices[i]) * d.c + c] += diff_dst[i];
      }
}

template <typename T>
void ReferenceBackend<T>::batch_norm_forward(OpStatePtr&, Dims d, const T* src, const T* gamma, const T* beta, T* dst,
                                             T* save_mean, T* save_var, T* running_mean, T* running_var, bool training,
                                             double momentum, double epsilon, bool relu) {
  const Index rows = d.n * d.t;
  for (Index c = 0; c < d.c; ++c) {
    double mean, var;
    if (training) {
      double sum = 0;
      for (Index r = 0; r < rows; ++r) sum += static_cast<double>(src[r * d.c + c]);
      mean = sum / static_cast<double>(rows);
      double squares = 0;
      for (Index r = 0; r < rows; ++r) {
        double x = static_cast<double>(src[r * d.c + c]) - mean;
        squares += x * x;
      }
      var = squares / static_cast<double>(rows);
      save_mean[c] = static_cast<T>(mean);
      save_var[c] = static_cast<T>(var);
      double unbiased = rows > 1 ? var * static_cast<double>(rows) / static_cast<double>(rows - 1) : var;
      running_mean[c] = static_cast<T>((1 - momentum) * static_cast<double>(running_mean[c]) + momentum * mean);
      running_var[c] = static_cast<T>((1 - momentum) * static_cast<double>(running_var[c]) + momentum * unbiased);
    } else {
      mean = static_cast<double>(running_mean[c]);
      var = static_cast<double>(running_var[c]);
    }
    double inv_std = 1.0 / std::sqrt(var + epsilon);
    for (Index r = 0; r < rows; ++r) {
      const T y =
          static_cast<T>((static_cast<double>(src[r * d.c + c]) - mean) * inv_std * static_cast<double>(gamma[c]) +
                         static_cast<double>(beta[c]));
      dst[r * d.c + c] = relu ? std::max(y, T(0)) : y;
    }
  }
}

template <typename T>
void ReferenceBackend<T>::channel_sums(Index rows, Index c, const T* a, const T* b, double* sum_a, double* sum_ab) {
  for (Index k = 0; k < c; ++k) sum_a[k] = sum_ab[k] = 0;
  for (Index r = 0; r < rows; ++r)
    for (Index k = 0; k < c; ++k) {
      const double x = static_cast<double>(a[r * c + k]);
      sum_a[k] += x;
      sum_ab[k] += x * (b ? static_cast<double>(b[r * c + k]) : x);
    }
}

template <typename T>
void ReferenceBackend<T>::batch_norm_backward_data(Index rows, Index c, const T* src, const T* dy, const double* mean,
                                                   const double* inv_std, const T* gamma, const double* mean_dy,
                                                   const double* mean_dy_xhat, T* diff_src) {
  for (Index r = 0; r < rows; ++r)
    for (Index k = 0; k < c; ++k) {
      const double xhat = (static_cast<double>(src[r * c + k]) - mean[k]) * inv_std[k];
      diff_src[r * c + k] = static_cast<T>(static_cast<double>(gamma[k]) * inv_std[k] *
                                           (static_cast<double>(dy[r * c + k]) - mean_dy[k] - xhat * mean_dy_xhat[k]));
    }
}

template <typename T>
void ReferenceBackend<T>::batch_norm_backward(OpStatePtr&, Dims d, const T* src, const T* dst, const T* diff_dst_in,
                                              const T* gamma, const T* save_mean, const T* save_var, T* diff_src,
                                              T* diff_gamma, T* diff_beta, double epsilon, bool relu) {
  const Index rows = d.n * d.t;
  std::vector<T> masked;
  const T* diff_dst = diff_dst_in;
  if (relu) {
    masked.resize(static_cast<std::size_t>(d.count()));
    for (Index i = 0; i < d.count(); ++i) masked[static_cast<std::size_t>(i)] = dst[i] > T(0) ? diff_dst_in[i] : T(0);
    diff_dst = masked.data();
  }
  for (Index c = 0; c < d.c; ++c) {
    double mean = static_cast<double>(save_mean[c]);
    double inv_std = 1.0 / std::sqrt(static_cast<double>(save_var[c]) + epsilon);
    double sum_g = 0, sum_gx = 0;
    for (Index r = 0; r < rows; ++r) {
      double g = static_cast<double>(diff_dst[r * d.c + c]);
      sum_g += g;
      sum_gx += g * (static_cast<double>(src[r * d.c + c]) - mean) * inv_std;
    }
    diff_gamma[c] = static_cast<T>(sum_gx);
    diff_beta[c] = static_cast<T>(sum_g);
    double m = static_cast<double>(rows);
    for (Index r = 0; r < rows; ++r) {
      double xhat = (static_cast<double>(src[r * d.c + c]) - mean) * inv_std;
      double g = static_cast<double>(diff_dst[r * d.c + c]);
      diff_src[r * d.c + c] =
          static_cast<T>(static_cast<double>(gamma[c]) * inv_std * (g - sum_g / m - xhat * sum_gx / m));
    }
  }
}

template <typename T>
void ReferenceBackend<T>::relu_forward(Index count, const T* src, T* dst) {
  for (Index i = 0; i < count; ++i) dst[i] = std::max(src[i], T(0));
}

template <typename T>
void ReferenceBackend<T>::relu_backward(Index count, const T* dst, const T* diff_dst, T* diff_src) {
  for (Index i = 0; i < count; ++i) diff_src[i] = dst[i] > T(0) ? diff_dst[i] : T(0);
}

template <typename T>
void ReferenceBackend<T>::copy(Index count, const T* src, T* dst) {
  std::copy(src, src + count, dst);
}

template <typename T>
void ReferenceBackend<T>::add(Index count, const T* a, const T* b, T* dst) {
  for (Index i = 0; i < count; ++i) dst[i] = a[i] + b[i];
}

template <typename T>
void ReferenceBackend<T>::dropout_forward(Index count, double p, std::uint64_t seed, std::uint64_t first, const T* src,
                                          T* dst, T* mask) {
  const T keep_scale = static_cast<T>(1.0 / (1.0 - p));
  for (Index i = 0; i < count; ++i) {
    mask[i] = dropout_keep(seed, first + static_cast<std::uint64_t>(i), p) ? keep_scale : T(0);
    dst[i] = src[i] * mask[i];
  }
}

template <typename T>
void ReferenceBackend<T>::multiply(Index count, const T* a, const T* b, T* dst) {
  for (Index i = 0; i < count; ++i) dst[i] = a[i] * b[i];
}

template <typename T>
void ReferenceBackend<T>::linear_forward(OpStatePtr&, const LinearShape& s, const T* src, const T* weights,
                                         const T* bias, T* dst, bool relu) {
  for (Index n = 0; n < s.n; ++n)
    for (Index o = 0; o < s.out; ++o) {
      T sum = bias ? bias[o] : T(0);
      for (Index i = 0; i < s.in; ++i) sum += src[n * s.in + i] * weights[o * s.in + i];
      dst[n * s.out + o] = relu ? std::max(sum, T(0)) : sum;
    }
}

template <typename T>
void ReferenceBackend<T>::linear_backward_data(OpStatePtr&, const LinearShape& s, const T* diff_dst, const T* weights,
                                               T* diff_src) {
  for (Index n = 0; n < s.n; ++n)
    for (Index i = 0; i < s.in; ++i) {
      T sum = 0;
      for (Index o = 0; o < s.out; ++o) sum += diff_dst[n * s.out + o] * weights[o * s.in + i];
      diff_src[n * s.in + i] = sum;
    }
}

template <typename T>
void ReferenceBackend<T>::linear_backward_weights(OpStatePtr&, const LinearShape& s, const T* src, const T* diff_dst,
                                                  T* diff_weights, T* diff_bias) {
  for (Index o = 0; o < s.out; ++o) {
    for (Index i = 0; i < s.in; ++i) {
      T sum = 0;
      for (Index n = 0; n < s.n; ++n) sum += diff_dst[n * s.out + o] * src[n * s.in + i];
      diff_weights[o * s.in + i] = sum;
    }
    if (diff_bias) {
      T sum = 0;
      for (Index n = 0; n < s.n; ++n) sum += diff_dst[n * s.out + o];
      diff_bias[o] = sum;
    }
  }
}

namespace {

// Both id types: the definitions of backend.h, checking every id.
template <typename T, typename Id>
void embedding_forward_loop(Index n, Index t, Index vocab, Index dim, const Id* ids, const T* table, T* dst) {
  for (Index i = 0; i < n * t; ++i) {
    const auto id = static_cast<Index>(ids[i]);
    if (id < 0 || id >= vocab)
      throw Error("embedding: id " + std::to_string(id) + " outside the table of " + std::to_string(vocab));
    std::copy(table + id * dim, table + (id + 1) * dim, dst + i * dim);
  }
}

template <typename T, typename Id>
void embedding_backward_loop(Index n, Index t, Index vocab, Index dim, const Id* ids, const T* diff_dst,
                             T* diff_table) {
  std::fill(diff_table, diff_table + vocab * dim, T(0));
  for (Index i = 0; i < n * t; ++i) {
    const auto id = static_cast<Index>(ids[i]);
    if (id < 0 || id >= vocab)
      throw Error("embedding: id " + std::to_string(id) + " outside the table of " + std::to_string(vocab));
    for (Index e = 0; e < dim; ++e) diff_table[id * dim + e] += diff_dst[i * dim + e];
  }
}

}  // namespace

template <typename T>
void ReferenceBackend<T>::embedding_forward(Index n, Index t, Index vocab, Index dim, const std::uint8_t* codes,
                                            const T* table, T* dst) {
  embedding_forward_loop(n, t, vocab, dim, codes, table, dst);
}

template <typename T>
void ReferenceBackend<T>::embedding_forward(Index n, Index t, Index vocab, Index dim, const std::int32_t* ids,
                                            const T* table, T* dst) {
  embedding_forward_loop(n, t, vocab, dim, ids, table, dst);
}

template <typename T>
void ReferenceBackend<T>::embedding_backward(Index n, Index t, Index vocab, Index dim, const std::uint8_t* codes,
                                             const T* diff_dst, T* diff_table) {
  embedding_backward_loop(n, t, vocab, dim, codes, diff_dst, diff_table);
}

template <typename T>
void ReferenceBackend<T>::embedding_backward(Index n, Index t, Index vocab, Index dim, const std::int32_t* ids,
                                             const T* diff_dst, T* diff_table) {
  embedding_backward_loop(n, t, vocab, dim, ids, diff_dst, diff_table);
}

template <typename T>
double ReferenceBackend<T>::softmax_cross_entropy(Index n, Index classes, const T* logits, const std::int32_t* labels,
                                                  T* diff_logits) {
  double total = 0;
  for (Index i = 0; i < n; ++i) {
    const T* row = logits + i * classes;
    if (labels[i] < 0 || labels[i] >= classes)
      throw Error("softmax_cross_entropy: label " + std::to_string(labels[i]) + " outside [0, " +
                  std::to_string(classes) + ")");
    double max = static_cast<double>(*std::max_element(row, row + classes));
    double sum = 0;
    for (Index k = 0; k < classes; ++k) sum += std::exp(static_cast<double>(row[k]) - max);
    double log_sum = std::log(sum) + max;
    total += log_sum - static_cast<double>(row[labels[i]]);
    if (diff_logits)
      for (Index k = 0; k < classes; ++k) {
        double p = std::exp(static_cast<double>(row[k]) - log_sum);
        diff_logits[i * classes + k] = static_cast<T>((p - (k == labels[i] ? 1.0 : 0.0)) / static_cast<double>(n));
      }
  }
  return total;
}

template <typename T>
void ReferenceBackend<T>::sgd_step(Index count, T* param, const T* grad, T* velocity, double lr, double momentum,
                                   double weight_decay, const T* factor) {
  const T f = factor ? *factor : T(1);
  if (f == T(0)) return;
  const T wd = static_cast<T>(weight_decay), mu = static_cast<T>(momentum), rate = static_cast<T>(lr);
  for (Index i = 0; i < count; ++i) {
    T g = f * grad[i] + wd * param[i];
    velocity[i] = mu * velocity[i] + g;
    param[i] -= rate * velocity[i];
  }
}

template <typename T>
void ReferenceBackend<T>::adam_step(Index count, T* param, const T* grad, T* m, T* v, double lr, double beta1,
                                    double beta2, double epsilon, double weight_decay, std::int64_t step,
                                    const T* factor) {
  const T f = factor ? *factor : T(1);
  if (f == T(0)) return;
  const double c1 = 1.0 - std::pow(beta1, static_cast<double>(step));
  const double c2 = 1.0 - std::pow(beta2, static_cast<double>(step));
  const T b1 = static_cast<T>(beta1), b2 = static_cast<T>(beta2), wd = static_cast<T>(weight_decay);
  const T step_size = static_cast<T>(lr / c1), sqrt_c2 = static_cast<T>(std::sqrt(c2)), eps = static_cast<T>(epsilon);
  for (Index i = 0; i < count; ++i) {
    T g = f * grad[i] + wd * param[i];
    m[i] = b1 * m[i] + (T(1) - b1) * g;
    v[i] = b2 * v[i] + (T(1) - b2) * g * g;
    param[i] -= step_size * m[i] / (std::sqrt(v[i]) / sqrt_c2 + eps);
  }
}

template <typename T>
double ReferenceBackend<T>::sum_squares(Index count, const T* data) {
  double sum = 0;
  for (Index i = 0; i < count; ++i) sum += static_cast<double>(data[i]) * static_cast<double>(data[i]);
  return sum;
}

template <typename T>
void ReferenceBackend<T>::scale(Index count, T* data, double factor) {
  const T f = static_cast<T>(factor);
  for (Index i = 0; i < count; ++i) data[i] *= f;
}

// The LSTM as the contract in backend.h writes it, one (row, direction) at a time.
template <typename T>
void ReferenceBackend<T>::rnn_forward(OpStatePtr& state, const RnnShape& s, const T* src, const std::int32_t* lengths,
                                      const T* weights, const T* bias, T* dst, bool training) {
  const Index H = s.hidden, G = s.gates() * H, D = s.directions(), C = s.c_in, width = D * H;
  LstmTrace<T>* trace = nullptr;
  if (training) {
    if (!dynamic_cast<LstmTrace<T>*>(state.get())) state = std::make_unique<LstmTrace<T>>();
    trace = static_cast<LstmTrace<T>*>(state.get());
    trace->gates.assign(static_cast<std::size_t>(s.n * D * s.t * G), T(0));
    trace->cells.assign(static_cast<std::size_t>(s.n * D * s.t * H), T(0));
  }
  std::fill(dst, dst + s.dst().count(), T(0));
  std::vector<T> a(static_cast<std::size_t>(G)), h(static_cast<std::size_t>(H)), c(static_cast<std::size_t>(H));
  for (Index i = 0; i < s.n; ++i) {
    const Index length = real_steps(lengths, i, s.t, "rnn_forward");
    for (Index d = 0; d < D; ++d) {
      const T* wx = weights + d * s.direction_weights();
      const T* wh = wx + G * C;
      const T* b = bias + d * G;
      std::fill(h.begin(), h.end(), T(0));
      std::fill(c.begin(), c.end(), T(0));
      for (Index step = 0; step < length; ++step) {
        const Index t = d == 0 ? step : length - 1 - step;
        const T* x = src + (i * s.t + t) * C;
        for (Index g = 0; g < G; ++g) {
          T sum = b[g];
          for (Index k = 0; k < C; ++k) sum += wx[g * C + k] * x[k];
          for (Index k = 0; k < H; ++k) sum += wh[g * H + k] * h[k];
          a[g] = sum;
        }
        for (Index k = 0; k < H; ++k) {
          const T in = sigmoid(a[k]), forget = sigmoid(a[H + k]), cand = std::tanh(a[2 * H + k]),
                  out = sigmoid(a[3 * H + k]);
          a[k] = in, a[H + k] = forget, a[2 * H + k] = cand, a[3 * H + k] = out;
          c[k] = forget * c[k] + in * cand;
          h[k] = out * std::tanh(c[k]);
          dst[(i * s.t + t) * width + d * H + k] = h[k];
        }
        if (trace) {
          const Index at = (i * D + d) * s.t + t;
          std::copy(a.begin(), a.end(), trace->gates.begin() + at * G);
          std::copy(c.begin(), c.end(), trace->cells.begin() + at * H);
        }
      }
    }
  }
}

template <typename T>
void ReferenceBackend<T>::rnn_backward(OpStatePtr& state, const RnnShape& s, const T* src, const std::int32_t* lengths,
                                       const T* weights, const T* /*dst*/, const T* diff_dst, T* diff_src,
                                       T* diff_weights, T* diff_bias) {
  auto* trace = dynamic_cast<LstmTrace<T>*>(state.get());
  if (!trace) throw Error("rnn_backward: no training forward ran with this state");
  const Index H = s.hidden, G = s.gates() * H, D = s.directions(), C = s.c_in, width = D * H;
  std::fill(diff_weights, diff_weights + s.weights_count(), T(0));
  std::fill(diff_bias, diff_bias + s.bias_count(), T(0));
  if (diff_src) std::fill(diff_src, diff_src + s.src().count(), T(0));
  std::vector<T> da(static_cast<std::size_t>(G)), dh(static_cast<std::size_t>(H)), dc(static_cast<std::size_t>(H));
  for (Index i = 0; i < s.n; ++i) {
    const Index length = real_steps(lengths, i, s.t, "rnn_backward");
    for (Index d = 0; d < D; ++d) {
      const T* wx = weights + d * s.direction_weights();
      const T* wh = wx + G * C;
      T* dwx = diff_weights + d * s.direction_weights();
      T* dwh = dwx + G * C;
      T* db = diff_bias + d * G;
      std::fill(dh.begin(), dh.end(), T(0));
      std::fill(dc.begin(), dc.end(), T(0));
      for (Index step = length - 1; step >= 0; --step) {
        const Index t = d == 0 ? step : length - 1 - step;
        const Index prev_t = d == 0 ? t - 1 : t + 1;  // the step visited before (when step > 0)
        const Index at = (i * D + d) * s.t + t;
        const T* a = trace->gates.data() + at * G;
        const T* c = trace->cells.data() + at * H;
        const T* c_prev = step > 0 ? trace->cells.data() + ((i * D + d) * s.t + prev_t) * H : nullptr;
        for (Index k = 0; k < H; ++k) {
          const T in = a[k], forget = a[H + k], cand = a[2 * H + k], out = a[3 * H + k];
          const T grad_h = dh[k] + diff_dst[(i * s.t + t) * width + d * H + k];
          const T tc = std::tanh(c[k]);
          const T grad_c = dc[k] + grad_h * out * (T(1) - tc * tc);
          const T cp = c_prev ? c_prev[k] : T(0);
          da[k] = grad_c * cand * in * (T(1) - in);
          da[H + k] = grad_c * cp * forget * (T(1) - forget);
          da[2 * H + k] = grad_c * in * (T(1) - cand * cand);
          da[3 * H + k] = grad_h * tc * out * (T(1) - out);
          dc[k] = grad_c * forget;
        }
        const T* x = src + (i * s.t + t) * C;
        // h before this step: the output of the previous visited step, or 0.
        const T* h_prev = nullptr;
        std::vector<T> h_prev_row;
        if (step > 0) {
          const T* prev_a = trace->gates.data() + ((i * D + d) * s.t + prev_t) * G;
          const T* prev_c = trace->cells.data() + ((i * D + d) * s.t + prev_t) * H;
          h_prev_row.resize(static_cast<std::size_t>(H));
          for (Index k = 0; k < H; ++k) h_prev_row[k] = prev_a[3 * H + k] * std::tanh(prev_c[k]);
          h_prev = h_prev_row.data();
        }
        for (Index g = 0; g < G; ++g) {
          db[g] += da[g];
          for (Index k = 0; k < C; ++k) dwx[g * C + k] += da[g] * x[k];
          if (h_prev)
            for (Index k = 0; k < H; ++k) dwh[g * H + k] += da[g] * h_prev[k];
        }
        if (diff_src) {
          T* dx = diff_src + (i * s.t + t) * C;
          for (Index g = 0; g < G; ++g)
            for (Index k = 0; k < C; ++k) dx[k] += wx[g * C + k] * da[g];
        }
        for (Index k = 0; k < H; ++k) {
          T sum = 0;
          for (Index g = 0; g < G; ++g) sum += wh[g * H + k] * da[g];
          dh[k] = sum;
        }
      }
    }
  }
}

template class ReferenceBackend<float>;
template class ReferenceBackend<double>;

}  // namespace textscale::engine

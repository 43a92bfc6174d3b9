// The backend interface: the coarse operations every layer is built from.
//
// Layers never call a library directly; they call these operations, and a backend implements them:
//  - ReferenceBackend<T>: plain loops, float or double; the oracle every other backend is tested
//    against and the one finite-difference gradient checks run on.
//  - DnnlBackend: oneDNN primitives on the CPU (float), plus hand-written loops for what oneDNN has
//    no primitive for (one-hot convolution, k-max pooling, embedding, loss, optimizer steps).
//  - the CUDA backend (cuDNN, cuBLAS) implements the same list.
//
// Conventions for every operation:
//  - Shapes are given explicitly (dims.h); pointers point to memory of this backend's device.
//  - Activations are (N, T, C); weights are in the canonical layout given per operation, the same
//    in memory, in checkpoints and for every backend (a backend reorders into its library's layout).
//  - `diff_*` outputs for parameters are overwritten (=), not accumulated: each parameter is used
//    once per forward pass. Sequence ops that reuse weights over time accumulate internally.
//  - `state` is a per-call-site cache the backend may fill (primitives, workspaces, reordered
//    weights). A layer owns one OpState per operation it calls and passes the same one to the
//    matching forward and backward calls; backward may rely on what forward left there.
//  - Operations are deterministic: the same inputs and thread count give bitwise the same outputs.
//
// Adding an operation: declare it here with its contract, implement it in ReferenceBackend, then in
// the other backends, and add a case to the conformance suite (tests/conformance/cases.cpp: it runs
// on every backend configuration) and a finite-difference check of the layer that uses it.
// An operation with a default body here (one composed of others, or a host-memory version of one
// that a GPU keeps on the device) is overridden only where a backend does it differently, and
// tested there against the default.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "textscale/common/error.h"
#include "textscale/engine/dims.h"
#include "textscale/engine/memory.h"

namespace textscale::engine {

// Backend-specific cache attached to one call site; see above.
class OpState {
 public:
  virtual ~OpState() = default;
};
using OpStatePtr = std::unique_ptr<OpState>;

// The factor an optimizer step applies to a gradient whose sum of squares is `sum_squares`: 0 when
// that is not finite (the step is skipped), clip_norm / norm when 0 < clip_norm < norm, else 1.
// A finite gradient's factor is at least float's smallest normal number, so that it never rounds
// to the 0 that means "skip".
inline double step_factor(double sum_squares, double clip_norm) {
  if (!std::isfinite(sum_squares)) return 0;
  const double norm = std::sqrt(sum_squares);
  return clip_norm > 0 && norm > clip_norm ? std::max<double>(clip_norm / norm, std::numeric_limits<float>::min()) : 1;
}

template <typename T>
class Backend {
 public:
  virtual ~Backend() = default;
  [[nodiscard]] virtual std::string name() const = 0;
  // Where this backend's tensors live (memory.h): every pointer passed to an operation points
  // into it, except the double arrays of the synchronised batch-norm pieces, which are host memory.
  [[nodiscard]] virtual const Memory& memory() const { return host_memory(); }

  // --- Convolution -------------------------------------------------------------------------
  // See Conv1dShape. `bias` may be null (no bias). With `relu`, dst = max(0, conv(src)).
  virtual void conv1d_forward(OpStatePtr& state, const Conv1dShape& shape, const T* src, const T* weights,
                              const T* bias, T* dst, bool relu) = 0;
  // diff_src (N, T_in, C_in) from diff_dst (N, T_out, C_out); diff_dst is the gradient of the
  // convolution's output (apply relu_backward first when forward fused a ReLU).
  virtual void conv1d_backward_data(OpStatePtr& state, const Conv1dShape& shape, const T* diff_dst, const T* weights,
                                    T* diff_src) = 0;
  // diff_weights (C_out, C_in, K) and diff_bias (C_out, may be null) from src and diff_dst.
  virtual void conv1d_backward_weights(OpStatePtr& state, const Conv1dShape& shape, const T* src, const T* diff_dst,
                                       T* diff_weights, T* diff_bias) = 0;
  // A convolution layer's backward: conv1d_backward_weights (weights_state), then, when diff_src
  // is not null, conv1d_backward_data (data_state), from diff_dst masked by the forward's ReLU
  // when `relu_dst` (the forward's output) is not null, for which `masked` holds dst().count()
  // elements of scratch. A backend may share work between the two products; the default runs
  // them in turn.
  virtual void conv1d_backward(OpStatePtr& weights_state, OpStatePtr& data_state, const Conv1dShape& shape,
                               const T* src, const T* relu_dst, const T* diff_dst, T* masked, const T* weights,
                               T* diff_weights, T* diff_bias, T* diff_src) {
    const T* grad = diff_dst;
    if (relu_dst) {
      relu_backward(shape.dst().count(), relu_dst, diff_dst, masked);
      grad = masked;
    }
    conv1d_backward_weights(weights_state, shape, src, grad, diff_weights, diff_bias);
    if (diff_src) conv1d_backward_data(data_state, shape, grad, weights, diff_src);
  }

  // Convolution over one-hot codes, computed as a gather: codes (N, T_in) with values in [0, A];
  // code 0 is the all-zero column, code a >= 1 is channel a-1 of an A-channel one-hot input.
  // `shape.c_in` = A; weights (C_out, A, K) as for conv1d. dst (N, T_out, C_out). stride 1, pad 0.
  virtual void onehot_conv1d_forward(OpStatePtr& state, const Conv1dShape& shape, const std::uint8_t* codes,
                                     const T* weights, const T* bias, T* dst, bool relu) = 0;
  virtual void onehot_conv1d_backward_weights(OpStatePtr& state, const Conv1dShape& shape, const std::uint8_t* codes,
                                              const T* diff_dst, T* diff_weights, T* diff_bias) = 0;

  // Crepe's first block in one operation (see OneHotPoolShape): the one-hot convolution with a ReLU,
  // then max pooling, without the convolution's output in memory. dst (N, T_pool, C_out) equals
  // onehot_conv1d_forward (relu) followed by max_pool_forward, ties going to the earliest position.
  // Training forward remembers the winners in `state` for backward.
  virtual void onehot_conv1d_relu_pool_forward(OpStatePtr& state, const OneHotPoolShape& shape,
                                               const std::uint8_t* codes, const T* weights, const T* bias, T* dst,
                                               bool training) = 0;
  // Weight and bias gradients from diff_dst (N, T_pool, C_out) after a training forward with the
  // same `state`: each element goes to its window's winner, unless dst (forward's output) is 0 there
  // (the ReLU's gradient), and from there to the weights the codes select.
  virtual void onehot_conv1d_relu_pool_backward_weights(OpStatePtr& state, const OneHotPoolShape& shape,
                                                        const std::uint8_t* codes, const T* dst, const T* diff_dst,
                                                        T* diff_weights, T* diff_bias) = 0;

  // --- Pooling ------------------------------------------------------------------------------
  // See Pool1dShape. Training forward remembers the winners in `state` for backward; ties go to
  // the earliest position in the window.
  virtual void max_pool_forward(OpStatePtr& state, const Pool1dShape& shape, const T* src, T* dst, bool training) = 0;
  // diff_src = 0, then each diff_dst element is added to its window's winner.
  virtual void max_pool_backward(OpStatePtr& state, const Pool1dShape& shape, const T* diff_dst, T* diff_src) = 0;

  // Order-preserving k-max pooling over time: src (N, T, C) -> dst (N, k, C) holding, per (n, c),
  // the k largest values in their original time order (ties: the earlier position is larger).
  // Requires k <= T. `indices` (N, k, C) receives the chosen time positions.
  virtual void kmax_pool_forward(Dims src, Index k, const T* src_data, T* dst, std::int32_t* indices) = 0;
  virtual void kmax_pool_backward(Dims src, Index k, const T* diff_dst, const std::int32_t* indices, T* diff_src) = 0;

  // --- Normalisation --------------------------------------------------------------------------
  // Batch normalisation over (N, T) per channel, src/dst (N, T, C), gamma/beta (C).
  // Training: mean/var are the batch statistics (biased variance), written to save_mean and
  // save_var (C); running_mean/var (C) are updated in place: r = (1 - momentum) r + momentum b,
  // with the unbiased variance for running_var. Inference uses running_mean/var.
  // With `relu`, dst = max(0, normalised) (fused: one pass over memory instead of three).
  virtual void batch_norm_forward(OpStatePtr& state, Dims dims, const T* src, const T* gamma, const T* beta, T* dst,
                                  T* save_mean, T* save_var, T* running_mean, T* running_var, bool training,
                                  double momentum, double epsilon, bool relu) = 0;
  // Training-mode backward: diff_src, diff_gamma, diff_beta from src, diff_dst and the saved
  // statistics; with `relu` (as in forward), diff_dst counts only where dst > 0.
  virtual void batch_norm_backward(OpStatePtr& state, Dims dims, const T* src, const T* dst, const T* diff_dst,
                                   const T* gamma, const T* save_mean, const T* save_var, T* diff_src, T* diff_gamma,
                                   T* diff_beta, double epsilon, bool relu) = 0;

  // Pieces of batch normalisation with statistics over several data-parallel ranks (the layer
  // sums the per-rank moments over the ranks between the calls):
  // per-channel sums over the rows of (rows, c) arrays, accumulated in double in an order that
  // does not depend on the thread count: sum_a[c] = sum of a, sum_ab[c] = sum of a * b
  // (b null: a * a).
  virtual void channel_sums(Index rows, Index c, const T* a, const T* b, double* sum_a, double* sum_ab) = 0;
  // Training-mode input gradient from global statistics:
  // diff_src = gamma * inv_std * (dy - mean_dy - (src - mean) * inv_std * mean_dy_xhat).
  virtual void batch_norm_backward_data(Index rows, Index c, const T* src, const T* dy, const double* mean,
                                        const double* inv_std, const T* gamma, const double* mean_dy,
                                        const double* mean_dy_xhat, T* diff_src) = 0;

  // --- Element-wise ---------------------------------------------------------------------------
  virtual void relu_forward(Index count, const T* src, T* dst) = 0;
  // diff_src = diff_dst where dst > 0, else 0. diff_src may alias diff_dst.
  virtual void relu_backward(Index count, const T* dst, const T* diff_dst, T* diff_src) = 0;
  // dst = src.
  virtual void copy(Index count, const T* src, T* dst) = 0;
  // dst = a + b (any may alias).
  virtual void add(Index count, const T* a, const T* b, T* dst) = 0;
  // Inverted dropout: mask[i] = keep ? 1/(1-p) : 0 from dropout_keep(seed, first + i, p)
  // (dropout_mask.h), dst = src * mask. `first` is the element's index in the global batch, so
  // that a sample gets the same mask whichever rank of a data-parallel run holds it.
  virtual void dropout_forward(Index count, double p, std::uint64_t seed, std::uint64_t first, const T* src, T* dst,
                               T* mask) = 0;
  virtual void multiply(Index count, const T* a, const T* b, T* dst) = 0;  // dst = a * b

  // --- Dense --------------------------------------------------------------------------------
  // See LinearShape. `bias` may be null. With `relu`, dst = max(0, ...).
  virtual void linear_forward(OpStatePtr& state, const LinearShape& shape, const T* src, const T* weights,
                              const T* bias, T* dst, bool relu) = 0;
  virtual void linear_backward_data(OpStatePtr& state, const LinearShape& shape, const T* diff_dst, const T* weights,
                                    T* diff_src) = 0;
  virtual void linear_backward_weights(OpStatePtr& state, const LinearShape& shape, const T* src, const T* diff_dst,
                                       T* diff_weights, T* diff_bias) = 0;

  // --- Embedding ------------------------------------------------------------------------------
  // Two id types (input.h): character codes (uint8, V <= 256) and word ids (int32, V up to
  // millions); the same contract for both.
  // ids (N, T) in [0, V); table (V, E); dst (N, T, E) = table[ids].
  // An id outside [0, V) is an error: the CPU backends throw Error naming it; a GPU backend, which
  // does not wait for the device inside an operation, fills that position's row of dst with NaN
  // (the loss is then NaN and the step is skipped, as for a bad label) and leaves it out of backward.
  virtual void embedding_forward(Index n, Index t, Index vocab, Index dim, const std::uint8_t* codes, const T* table,
                                 T* dst) = 0;
  virtual void embedding_forward(Index n, Index t, Index vocab, Index dim, const std::int32_t* ids, const T* table,
                                 T* dst) = 0;
  // diff_table (V, E) = sum of diff_dst rows per id, over every position holding it (rows no id
  // selects are 0). The whole table is written each call, which costs V * E even when the batch
  // selects a few rows: embedding_backward_rows writes only those.
  virtual void embedding_backward(Index n, Index t, Index vocab, Index dim, const std::uint8_t* codes,
                                  const T* diff_dst, T* diff_table) = 0;
  virtual void embedding_backward(Index n, Index t, Index vocab, Index dim, const std::int32_t* ids, const T* diff_dst,
                                  T* diff_table) = 0;
  // A row-sparse gradient (params.h: RowSparse; host memory): zeroes the rows of diff_table listed
  // in `rows`, writes embedding_backward's rows of the ids in the batch (bitwise the same values)
  // and lists those ids in `rows`, sorted. If every row not listed on entry was 0, diff_table then
  // equals embedding_backward's result. An id outside [0, V) throws before anything is written.
  virtual void embedding_backward_rows(Index n, Index t, Index vocab, Index dim, const std::int32_t* ids,
                                       const T* diff_dst, T* diff_table, std::vector<std::int32_t>& rows);

  // --- Recurrent -----------------------------------------------------------------------------
  // See RnnShape. Row i has L = lengths[i] real steps, 0 <= L <= T (lengths null: every row T);
  // `lengths` is in this backend's memory like every other array. For each direction, h and c
  // start at 0; direction 0 visits t = 0 .. L-1, direction 1 visits t = L-1 .. 0, and at each
  //   a = W_x[d] x_t + W_h[d] h + b[d];  i = sigmoid(a_i), f = sigmoid(a_f), g = tanh(a_g),
  //   o = sigmoid(a_o);  c = f * c + i * g;  h = o * tanh(c);  dst[i, t, d*H ..] = h.
  // dst is 0 at the steps t >= L: a row's result does not depend on how much padding follows it.
  // A training forward keeps in `state` what backward needs.
  virtual void rnn_forward(OpStatePtr& state, const RnnShape& shape, const T* src, const std::int32_t* lengths,
                           const T* weights, const T* bias, T* dst, bool training) = 0;
  // After a training forward with the same state and arguments: diff_weights and diff_bias
  // (overwritten), and diff_src (N, T, C_in) when not null, 0 at t >= L. diff_dst at t >= L is
  // ignored.
  virtual void rnn_backward(OpStatePtr& state, const RnnShape& shape, const T* src, const std::int32_t* lengths,
                            const T* weights, const T* dst, const T* diff_dst, T* diff_src, T* diff_weights,
                            T* diff_bias) = 0;
  // See SequencePooling: src (N, T, C) over each row's L = lengths[i] steps (null: T) -> dst (N, C).
  // `argmax` (N, C) receives the winning step of each max (-1 for a row with L = 0); unused by the
  // other modes, may be null for them. The default bodies are for host memory.
  virtual void sequence_pool_forward(SequencePooling mode, Dims src, Index directions, const T* src_data,
                                     const std::int32_t* lengths, T* dst, std::int32_t* argmax);
  // diff_src (N, T, C) from diff_dst (N, C): every step that contributed gets its share, the
  // others 0.
  virtual void sequence_pool_backward(SequencePooling mode, Dims src, Index directions, const std::int32_t* lengths,
                                      const std::int32_t* argmax, const T* diff_dst, T* diff_src);
  // --- Loss ---------------------------------------------------------------------------------
  // Mean softmax cross-entropy over the batch: logits (N, K), labels (N) in [0, K).
  // Returns the summed (not mean) loss over the batch; writes diff_logits = (softmax - onehot) / N
  // when diff_logits is not null.
  virtual double softmax_cross_entropy(Index n, Index classes, const T* logits, const std::int32_t* labels,
                                       T* diff_logits) = 0;

  // --- Optimizer steps over a flat parameter buffer ---------------------------------------------
  // `factor` is null, or one value in this backend's memory (written by step_factor): 0 skips the
  // step (nothing changes), any other value multiplies the gradient first (clipping).
  // SGD with momentum and L2 weight decay (PyTorch's convention):
  //   g = factor * grad + wd * param;  v = momentum * v + g;  param -= lr * v.
  virtual void sgd_step(Index count, T* param, const T* grad, T* velocity, double lr, double momentum,
                        double weight_decay, const T* factor) = 0;
  // Adam (PyTorch's convention, L2 weight decay added to the gradient), `step` counted from 1.
  virtual void adam_step(Index count, T* param, const T* grad, T* m, T* v, double lr, double beta1, double beta2,
                         double epsilon, double weight_decay, std::int64_t step, const T* factor) = 0;
  // The same steps on rows rows[0 .. row_count) of (V, row_size) tensors only (host memory: the
  // lazy update of a row-sparse gradient, as PyTorch's SparseAdam); the other rows, and their
  // velocity or moments, do not change.
  virtual void sgd_step_rows(Index row_count, const std::int32_t* rows, Index row_size, T* param, const T* grad,
                             T* velocity, double lr, double momentum, double weight_decay, const T* factor) {
    for (Index r = 0; r < row_count; ++r) {
      const Index o = static_cast<Index>(rows[r]) * row_size;
      sgd_step(row_size, param + o, grad + o, velocity + o, lr, momentum, weight_decay, factor);
    }
  }
  virtual void adam_step_rows(Index row_count, const std::int32_t* rows, Index row_size, T* param, const T* grad, T* m,
                              T* v, double lr, double beta1, double beta2, double epsilon, double weight_decay,
                              std::int64_t step, const T* factor) {
    for (Index r = 0; r < row_count; ++r) {
      const Index o = static_cast<Index>(rows[r]) * row_size;
      adam_step(row_size, param + o, grad + o, m + o, v + o, lr, beta1, beta2, epsilon, weight_decay, step, factor);
    }
  }
  // Sum of squares of `count` elements (gradient clipping).
  virtual double sum_squares(Index count, const T* data) = 0;
  // data *= factor.
  virtual void scale(Index count, T* data, double factor) = 0;

  // --- Step results left in this backend's memory ---------------------------------------------
  // On a GPU, returning a value to the host waits until the device has run everything queued
  // before it, and the device then idles until the host queues more. A training step therefore
  // leaves its loss, accuracy and gradient norms where they are computed and the host reads them
  // in one copy after queueing the whole step (PyTorch's loss.item() and clip_grad_norm_ wait
  // for the device instead). The defaults are for backends whose memory is the host's.
  //
  // softmax_cross_entropy with its results in `stats` (3 doubles): stats[0] the summed loss,
  // stats[1] the rows whose largest logit (the first, on ties) is the label's, stats[2] 0, or 1 +
  // the first row whose label is outside [0, K). A row with such a label or a loss that is not
  // finite gets NaN in diff_logits (other rows may too), so that a step taken from this gradient
  // is skipped on every rank (step_factor) and the caller can report it afterwards.
  virtual void softmax_cross_entropy_stats(Index n, Index classes, const T* logits, const std::int32_t* labels,
                                           T* diff_logits, double* stats);
  // *total = sum_squares(count, data).
  virtual void sum_squares_to(Index count, const T* data, double* total) { *total = sum_squares(count, data); }
  // *factor for sgd_step / adam_step from a gradient's sum of squares: 0 when it is not finite (the
  // step is skipped), clip_norm / norm when 0 < clip_norm < norm, else 1.
  virtual void step_factor(const double* sum_squares, double clip_norm, T* factor) {
    *factor = static_cast<T>(engine::step_factor(*sum_squares, clip_norm));
  }
};

template <typename T>
void Backend<T>::softmax_cross_entropy_stats(Index n, Index classes, const T* logits, const std::int32_t* labels,
                                             T* diff_logits, double* stats) {
  const auto nan = std::numeric_limits<T>::quiet_NaN();
  for (Index i = 0; i < n; ++i)
    if (labels[i] < 0 || labels[i] >= classes) {
      stats[0] = std::numeric_limits<double>::quiet_NaN();
      stats[1] = 0;
      stats[2] = static_cast<double>(i + 1);
      if (diff_logits) std::fill(diff_logits, diff_logits + n * classes, nan);
      return;
    }
  stats[0] = softmax_cross_entropy(n, classes, logits, labels, diff_logits);
  if (!std::isfinite(stats[0]) && diff_logits) std::fill(diff_logits, diff_logits + n * classes, nan);
  double correct = 0;
  for (Index i = 0; i < n; ++i) {
    const T* row = logits + i * classes;
    correct += std::max_element(row, row + classes) - row == labels[i];
  }
  stats[1] = correct;
  stats[2] = 0;
}

template <typename T>
void Backend<T>::embedding_backward_rows(Index n, Index t, Index vocab, Index dim, const std::int32_t* ids,
                                         const T* diff_dst, T* diff_table, std::vector<std::int32_t>& rows) {
  const Index count = n * t;
  for (Index i = 0; i < count; ++i)
    if (ids[i] < 0 || ids[i] >= vocab)
      throw Error("word id " + std::to_string(ids[i]) + " at position " + std::to_string(i) +
                  " outside the embedding table of " + std::to_string(vocab));
  for (const std::int32_t row : rows) std::fill(diff_table + row * dim, diff_table + (row + 1) * dim, T(0));
  // Positions by id, then position: each id's rows are summed in position order (as the reference
  // backend's embedding_backward does).
  std::vector<Index> order(static_cast<std::size_t>(count));
  for (Index i = 0; i < count; ++i) order[static_cast<std::size_t>(i)] = i;
  std::stable_sort(order.begin(), order.end(), [ids](Index a, Index b) { return ids[a] < ids[b]; });
  rows.clear();
  for (std::size_t i = 0; i < order.size();) {
    const std::int32_t id = ids[order[i]];
    T* row = diff_table + id * dim;
    std::fill(row, row + dim, T(0));
    for (; i < order.size() && ids[order[i]] == id; ++i)
      for (Index e = 0; e < dim; ++e) row[e] += diff_dst[order[i] * dim + e];
    rows.push_back(id);
  }
}

template <typename T>
void Backend<T>::sequence_pool_forward(SequencePooling mode, Dims src, Index directions, const T* src_data,
                                       const std::int32_t* lengths, T* dst, std::int32_t* argmax) {
  const Index steps = src.t, c = src.c, block = c / directions;
  for (Index i = 0; i < src.n; ++i) {
    const Index length = lengths ? lengths[i] : steps;
    const T* row = src_data + i * steps * c;
    T* out = dst + i * c;
    if (length <= 0) {
      std::fill(out, out + c, T(0));
      if (mode == SequencePooling::max) std::fill(argmax + i * c, argmax + (i + 1) * c, -1);
      continue;
    }
    switch (mode) {
      case SequencePooling::last:
        for (Index k = 0; k < c; ++k) out[k] = row[(k / block == 0 ? length - 1 : 0) * c + k];
        break;
      case SequencePooling::max:
        for (Index k = 0; k < c; ++k) {
          Index best = 0;
          for (Index t = 1; t < length; ++t)
            if (row[t * c + k] > row[best * c + k]) best = t;
          out[k] = row[best * c + k];
          argmax[i * c + k] = static_cast<std::int32_t>(best);
        }
        break;
      case SequencePooling::mean:
        for (Index k = 0; k < c; ++k) {
          T sum = 0;
          for (Index t = 0; t < length; ++t) sum += row[t * c + k];
          out[k] = sum / static_cast<T>(length);
        }
        break;
    }
  }
}

template <typename T>
void Backend<T>::sequence_pool_backward(SequencePooling mode, Dims src, Index directions, const std::int32_t* lengths,
                                        const std::int32_t* argmax, const T* diff_dst, T* diff_src) {
  const Index steps = src.t, c = src.c, block = c / directions;
  std::fill(diff_src, diff_src + src.count(), T(0));
  for (Index i = 0; i < src.n; ++i) {
    const Index length = lengths ? lengths[i] : steps;
    if (length <= 0) continue;
    T* row = diff_src + i * steps * c;
    const T* grad = diff_dst + i * c;
    switch (mode) {
      case SequencePooling::last:
        for (Index k = 0; k < c; ++k) row[(k / block == 0 ? length - 1 : 0) * c + k] = grad[k];
        break;
      case SequencePooling::max:
        for (Index k = 0; k < c; ++k) row[argmax[i * c + k] * c + k] = grad[k];
        break;
      case SequencePooling::mean:
        for (Index k = 0; k < c; ++k) {
          const T share = grad[k] / static_cast<T>(length);
          for (Index t = 0; t < length; ++t) row[t * c + k] = share;
        }
        break;
    }
  }
}

}  // namespace textscale::engine

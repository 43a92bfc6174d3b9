// Plain-loop implementation of every backend operation, in float or double.
//
// Written for obviousness, not speed: each loop is the operation's definition from backend.h.
// It is the oracle the oneDNN and CUDA backends are compared with, and gradient checks run on
// ReferenceBackend<double>. Single-threaded and therefore trivially deterministic. Not final: a
// test derives a bf16 emulation from it (tests/unit/bf16_reference.h).
#pragma once

#include "textscale/engine/backend.h"

namespace textscale::engine {

template <typename T>
class ReferenceBackend : public Backend<T> {
 public:
  [[nodiscard]] std::string name() const override;

  void conv1d_forward(OpStatePtr& state, const Conv1dShape& shape, const T* src, const T* weights, const T* bias,
                      T* dst, bool relu) override;
  void conv1d_backward_data(OpStatePtr& state, const Conv1dShape& shape, const T* diff_dst, const T* weights,
                            T* diff_src) override;
  void conv1d_backward_weights(OpStatePtr& state, const Conv1dShape& shape, const T* src, const T* diff_dst,
                               T* diff_weights, T* diff_bias) override;
  void onehot_conv1d_forward(OpStatePtr& state, const Conv1dShape& shape, const std::uint8_t* codes, const T* weights,
                             const T* bias, T* dst, bool relu) override;
  void onehot_conv1d_backward_weights(OpStatePtr& state, const Conv1dShape& shape, const std::uint8_t* codes,
                                      const T* diff_dst, T* diff_weights, T* diff_bias) override;
  // The composition of onehot_conv1d_forward and max_pool_forward (the oracle of the fused versions).
  void onehot_conv1d_relu_pool_forward(OpStatePtr& state, const OneHotPoolShape& shape, const std::uint8_t* codes,
                                       const T* weights, const T* bias, T* dst, bool training) override;
  void onehot_conv1d_relu_pool_backward_weights(OpStatePtr& state, const OneHotPoolShape& shape,
                                                const std::uint8_t* codes, const T* dst, const T* diff_dst,
                                                T* diff_weights, T* diff_bias) override;
  void max_pool_forward(OpStatePtr& state, const Pool1dShape& shape, const T* src, T* dst, bool training) override;
  void max_pool_backward(OpStatePtr& state, const Pool1dShape& shape, const T* diff_dst, T* diff_src) override;
  void kmax_pool_forward(Dims src, Index k, const T* src_data, T* dst, std::int32_t* indices) override;
  void kmax_pool_backward(Dims src, Index k, const T* diff_dst, const std::int32_t* indices, T* diff_src) override;
  void batch_norm_forward(OpStatePtr& state, Dims dims, const T* src, const T* gamma, const T* beta, T* dst,
                          T* save_mean, T* save_var, T* running_mean, T* running_var, bool training, double momentum,
                          double epsilon, bool relu) override;
  void channel_sums(Index rows, Index c, const T* a, const T* b, double* sum_a, double* sum_ab) override;
  void batch_norm_backward_data(Index rows, Index c, const T* src, const T* dy, const double* mean,
                                const double* inv_std, const T* gamma, const double* mean_dy,
                                const double* mean_dy_xhat, T* diff_src) override;
  void batch_norm_backward(OpStatePtr& state, Dims dims, const T* src, const T* dst, const T* diff_dst, const T* gamma,
                           const T* save_mean, const T* save_var, T* diff_src, T* diff_gamma, T* diff_beta,
                           double epsilon, bool relu) override;
  void relu_forward(Index count, const T* src, T* dst) override;
  void relu_backward(Index count, const T* dst, const T* diff_dst, T* diff_src) override;
  void copy(Index count, const T* src, T* dst) override;
  void add(Index count, const T* a, const T* b, T* dst) override;
  void dropout_forward(Index count, double p, std::uint64_t seed, std::uint64_t first, const T* src, T* dst,
                       T* mask) override;
  void multiply(Index count, const T* a, const T* b, T* dst) override;
  void linear_forward(OpStatePtr& state, const LinearShape& shape, const T* src, const T* weights, const T* bias,
                      T* dst, bool relu) override;
  void linear_backward_data(OpStatePtr& state, const LinearShape& shape, const T* diff_dst, const T* weights,
                            T* diff_src) override;
  void linear_backward_weights(OpStatePtr& state, const LinearShape& shape, const T* src, const T* diff_dst,
                               T* diff_weights, T* diff_bias) override;
  void embedding_forward(Index n, Index t, Index vocab, Index dim, const std::uint8_t* codes, const T* table,
                         T* dst) override;
  void embedding_backward(Index n, Index t, Index vocab, Index dim, const std::uint8_t* codes, const T* diff_dst,
                          T* diff_table) override;
  void embedding_forward(Index n, Index t, Index vocab, Index dim, const std::int32_t* ids, const T* table,
                         T* dst) override;
  void embedding_backward(Index n, Index t, Index vocab, Index dim, const std::int32_t* ids, const T* diff_dst,
                          T* diff_table) override;
  void rnn_forward(OpStatePtr& state, const RnnShape& shape, const T* src, const std::int32_t* lengths,
                   const T* weights, const T* bias, T* dst, bool training) override;
  void rnn_backward(OpStatePtr& state, const RnnShape& shape, const T* src, const std::int32_t* lengths,
                    const T* weights, const T* dst, const T* diff_dst, T* diff_src, T* diff_weights,
                    T* diff_bias) override;

  double softmax_cross_entropy(Index n, Index classes, const T* logits, const std::int32_t* labels,
                               T* diff_logits) override;
  void sgd_step(Index count, T* param, const T* grad, T* velocity, double lr, double momentum, double weight_decay,
                const T* factor) override;
  void adam_step(Index count, T* param, const T* grad, T* m, T* v, double lr, double beta1, double beta2,
                 double epsilon, double weight_decay, std::int64_t step, const T* factor) override;
  double sum_squares(Index count, const T* data) override;
  void scale(Index count, T* data, double factor) override;
};

extern template class ReferenceBackend<float>;
extern template class ReferenceBackend<double>;

}  // namespace textscale::engine

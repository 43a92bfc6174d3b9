// The CPU backend: oneDNN primitives for convolution, pooling and the LSTM, oneDNN's SGEMM for the
// dense layers and for the 1-D Winograd convolutions that replace oneDNN's direct ones from 64
// channels (src/engine/cpu/winograd.h), and OpenMP loops for the operations oneDNN has no primitive
// for, or whose primitive is not accurate enough (one-hot convolution as a gather, k-max pooling,
// batch normalisation, embedding, loss, optimizer steps).
//
// Activations stay in the canonical (N, T, C) layout, which is oneDNN's `nwc`; weights are
// reordered between the canonical (C_out, C_in, K) layout and the layout each primitive prefers,
// once per call. Primitives are created on first use for each batch size and cached in the call
// site's OpState. Threads: OpenMP's (BackendOptions::threads, set_threads or OMP_NUM_THREADS).
//
// The recurrent operation (src/engine/cpu/lstm.h) runs each direction as oneDNN's left-to-right
// LSTM over rows aligned at their start, direction 1 over each row reversed within its own length,
// so that rows of any length are exact (oneDNN 2.6 has no per-row lengths); inputs and outputs go
// through time-major scratch copies that do the reversal and zero the padding steps. With two
// directions and 2 or 3 threads the directions run at the same time, one thread each.
//
// Precision (precision.h): fp32 by default (tf32, a GPU format, is computed in fp32). With bf16,
// convolutions and dense layers multiply bf16 copies of their inputs and weights with fp32
// accumulation and write fp32 outputs and gradients, on oneDNN's AVX512-BF16 or AMX kernels
// (about twice the fp32 rate on such CPUs); the LSTM runs on oneDNN's bf16 kernels, with its
// input, weights and hidden state h (its output) in bf16 and the cell state, the sums and every
// gradient in fp32 (1.5x the fp32 speed on AVX512-BF16); activations, master weights, batch norm,
// pooling, the loss and the optimizer stay fp32. The one-hot input layer is a gather and stays
// exact.
#pragma once

#include <memory>

#include "textscale/common/error.h"
#include "textscale/engine/backend.h"
#include "textscale/engine/backend_options.h"
#include "textscale/engine/precision.h"

namespace textscale::engine {

// A oneDNN call failed: message names the call, the source location and oneDNN's status.
class DnnlError : public Error {
 public:
  using Error::Error;
};

class DnnlBackend final : public Backend<float> {
 public:
  // Takes the precision (tf32 computes in fp32), the thread count (> 0: set_threads) and the
  // Winograd switches of `options`. Throws InputError for bf16 on a CPU without bf16
  // instructions (bf16_supported()).
  explicit DnnlBackend(const BackendOptions& options);
  // BackendOptions' defaults with this precision.
  explicit DnnlBackend(Precision precision = Precision::fp32);
  ~DnnlBackend() override;
  [[nodiscard]] std::string name() const override { return bf16_ ? "onednn (bf16)" : "onednn"; }

  // Whether oneDNN can use bf16 instructions on this CPU (AVX512-BF16 or AMX); without them its
  // bf16 kernels are emulated or reference code, slower than fp32.
  [[nodiscard]] static bool bf16_supported();
  // oneDNN's name for the instruction set it uses on this CPU, for messages.
  [[nodiscard]] static std::string cpu_isa();

  // Sets the number of OpenMP threads every operation uses (0: leave the runtime's default).
  static void set_threads(int threads);
  [[nodiscard]] static int threads();

  // The rate (GFLOP/s) of a square product of `size`, best of three, on this process's threads:
  // oneDNN's SGEMM (fp32, tf32), or its matmul of bf16 operands with an fp32 result (bf16; needs
  // bf16_supported()). The peak `textscale bench --gemm` compares models with.
  [[nodiscard]] static double gemm_gflops(Index size, Precision precision);

  void conv1d_forward(OpStatePtr& state, const Conv1dShape& shape, const float* src, const float* weights,
                      const float* bias, float* dst, bool relu) override;
  void conv1d_backward_data(OpStatePtr& state, const Conv1dShape& shape, const float* diff_dst, const float* weights,
                            float* diff_src) override;
  void conv1d_backward_weights(OpStatePtr& state, const Conv1dShape& shape, const float* src, const float* diff_dst,
                               float* diff_weights, float* diff_bias) override;
  void onehot_conv1d_forward(OpStatePtr& state, const Conv1dShape& shape, const std::uint8_t* codes,
                             const float* weights, const float* bias, float* dst, bool relu) override;
  void onehot_conv1d_backward_weights(OpStatePtr& state, const Conv1dShape& shape, const std::uint8_t* codes,
                                      const float* diff_dst, float* diff_weights, float* diff_bias) override;
  void onehot_conv1d_relu_pool_forward(OpStatePtr& state, const OneHotPoolShape& shape, const std::uint8_t* codes,
                                       const float* weights, const float* bias, float* dst, bool training) override;
  void onehot_conv1d_relu_pool_backward_weights(OpStatePtr& state, const OneHotPoolShape& shape,
                                                const std::uint8_t* codes, const float* dst, const float* diff_dst,
                                                float* diff_weights, float* diff_bias) override;
  void max_pool_forward(OpStatePtr& state, const Pool1dShape& shape, const float* src, float* dst,
                        bool training) override;
  void max_pool_backward(OpStatePtr& state, const Pool1dShape& shape, const float* diff_dst, float* diff_src) override;
  void kmax_pool_forward(Dims src, Index k, const float* src_data, float* dst, std::int32_t* indices) override;
  void kmax_pool_backward(Dims src, Index k, const float* diff_dst, const std::int32_t* indices,
                          float* diff_src) override;
  void batch_norm_forward(OpStatePtr& state, Dims dims, const float* src, const float* gamma, const float* beta,
                          float* dst, float* save_mean, float* save_var, float* running_mean, float* running_var,
                          bool training, double momentum, double epsilon, bool relu) override;
  void channel_sums(Index rows, Index c, const float* a, const float* b, double* sum_a, double* sum_ab) override;
  void batch_norm_backward_data(Index rows, Index c, const float* src, const float* dy, const double* mean,
                                const double* inv_std, const float* gamma, const double* mean_dy,
                                const double* mean_dy_xhat, float* diff_src) override;
  void batch_norm_backward(OpStatePtr& state, Dims dims, const float* src, const float* dst, const float* diff_dst,
                           const float* gamma, const float* save_mean, const float* save_var, float* diff_src,
                           float* diff_gamma, float* diff_beta, double epsilon, bool relu) override;
  void relu_forward(Index count, const float* src, float* dst) override;
  void relu_backward(Index count, const float* dst, const float* diff_dst, float* diff_src) override;
  void copy(Index count, const float* src, float* dst) override;
  void add(Index count, const float* a, const float* b, float* dst) override;
  void dropout_forward(Index count, double p, std::uint64_t seed, std::uint64_t first, const float* src, float* dst,
                       float* mask) override;
  void multiply(Index count, const float* a, const float* b, float* dst) override;
  void linear_forward(OpStatePtr& state, const LinearShape& shape, const float* src, const float* weights,
                      const float* bias, float* dst, bool relu) override;
  void linear_backward_data(OpStatePtr& state, const LinearShape& shape, const float* diff_dst, const float* weights,
                            float* diff_src) override;
  void linear_backward_weights(OpStatePtr& state, const LinearShape& shape, const float* src, const float* diff_dst,
                               float* diff_weights, float* diff_bias) override;
  void embedding_forward(Index n, Index t, Index vocab, Index dim, const std::uint8_t* codes, const float* table,
                         float* dst) override;
  void embedding_backward(Index n, Index t, Index vocab, Index dim, const std::uint8_t* codes, const float* diff_dst,
                          float* diff_table) override;
  // Word ids: oneDNN 2.6 has no gather primitive; a parallel loop (cpu_kernels.h).
  void embedding_forward(Index n, Index t, Index vocab, Index dim, const std::int32_t* ids, const float* table,
                         float* dst) override;
  void embedding_backward(Index n, Index t, Index vocab, Index dim, const std::int32_t* ids, const float* diff_dst,
                          float* diff_table) override;
  void embedding_backward_rows(Index n, Index t, Index vocab, Index dim, const std::int32_t* ids, const float* diff_dst,
                               float* diff_table, std::vector<std::int32_t>& rows) override;
  void rnn_forward(OpStatePtr& state, const RnnShape& shape, const float* src, const std::int32_t* lengths,
                   const float* weights, const float* bias, float* dst, bool training) override;
  void rnn_backward(OpStatePtr& state, const RnnShape& shape, const float* src, const std::int32_t* lengths,
                    const float* weights, const float* dst, const float* diff_dst, float* diff_src, float* diff_weights,
                    float* diff_bias) override;
  double softmax_cross_entropy(Index n, Index classes, const float* logits, const std::int32_t* labels,
                               float* diff_logits) override;
  void sgd_step(Index count, float* param, const float* grad, float* velocity, double lr, double momentum,
                double weight_decay, const float* factor) override;
  void adam_step(Index count, float* param, const float* grad, float* m, float* v, double lr, double beta1,
                 double beta2, double epsilon, double weight_decay, std::int64_t step, const float* factor) override;
  void sgd_step_rows(Index row_count, const std::int32_t* rows, Index row_size, float* param, const float* grad,
                     float* velocity, double lr, double momentum, double weight_decay, const float* factor) override;
  void adam_step_rows(Index row_count, const std::int32_t* rows, Index row_size, float* param, const float* grad,
                      float* m, float* v, double lr, double beta1, double beta2, double epsilon, double weight_decay,
                      std::int64_t step, const float* factor) override;
  double sum_squares(Index count, const float* data) override;
  void scale(Index count, float* data, double factor) override;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
  bool bf16_ = false;
  Index winograd_min_channels_ = 0;  // 0: no Winograd convolutions
};

}  // namespace textscale::engine

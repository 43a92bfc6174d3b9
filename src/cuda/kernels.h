// Kernels for what cuDNN and cuBLAS do not provide, each launched on the caller's stream.
//
// Every reduction is deterministic: a fixed grid whose partial sums (in double) are added in a
// fixed order, never atomics, so that a run repeats bitwise and resumes bitwise.
// Shapes use the engine's conventions (dims.h): activations (N, T, C), channels fastest.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "textscale/engine/dims.h"

namespace textscale::cuda::kernels {

using Index = std::int64_t;
using bf16 = __nv_bfloat16;

// Doubles of scratch the reductions below need (partial sums).
constexpr Index reduction_blocks = 1024;
[[nodiscard]] Index column_sums_scratch(Index rows, Index cols);

// dst[i] = relu ? max(0, dst[i] + bias[i % cols]) : dst[i] + bias[i % cols] over rows x cols
// (bias may be null).
void bias_activation(Index rows, Index cols, const float* bias, float* dst, bool relu, cudaStream_t stream);
// The same from a bf16 `src` (a bf16 convolution's output) into fp32 `dst`, bias or not.
void bias_activation(Index rows, Index cols, const float* bias, const bf16* src, float* dst, bool relu,
                     cudaStream_t stream);
// Element-wise fp32 -> bf16 (round to nearest even) and back: the operands and results of the
// bf16 convolutions (--precision bf16).
void to_bf16(Index count, const float* src, bf16* dst, cudaStream_t stream);
void to_float(Index count, const bf16* src, float* dst, cudaStream_t stream);
// dst = bf16(dst_of_relu[i] > 0 ? src[i] : 0): a ReLU's gradient converted in the same pass.
void relu_backward_to_bf16(Index count, const float* dst_of_relu, const float* src, bf16* dst, cudaStream_t stream);
void relu_forward(Index count, const float* src, float* dst, cudaStream_t stream);
void relu_backward(Index count, const float* dst, const float* diff_dst, float* diff_src, cudaStream_t stream);
void add(Index count, const float* a, const float* b, float* dst, cudaStream_t stream);
void multiply(Index count, const float* a, const float* b, float* dst, cudaStream_t stream);
void scale(Index count, float* data, float factor, cudaStream_t stream);
void dropout_forward(Index count, double p, std::uint64_t seed, std::uint64_t first, const float* src, float* dst,
                     float* mask, cudaStream_t stream);

// Per-column sums of a (rows, cols) array: sum_a[c] = sum_r a[r, c], and, when sum_ab is not
// null, sum_ab[c] = sum_r a[r, c] * (b ? b[r, c] : a[r, c]). `scratch` holds
// column_sums_scratch(rows, cols) doubles. Outputs in device memory, float or double. With a
// `mask`, a[r, c] counts only where mask[r, c] > 0 (a ReLU's gradient, without a masked copy).
void column_sums(Index rows, Index cols, const float* a, const float* b, double* sum_a, double* sum_ab, double* scratch,
                 cudaStream_t stream, const float* mask = nullptr);
void column_sums(Index rows, Index cols, const float* a, float* sum_a, double* scratch, cudaStream_t stream,
                 const float* mask = nullptr);
// total[0] = sum of squares of `count` elements; scratch holds reduction_blocks doubles.
void sum_squares(Index count, const float* data, double* total, double* scratch, cudaStream_t stream);

// Canonical convolution weights (O, I, K) <-> cuDNN's NHWC filter layout (O, 1, K, I), in fp32
// or, for the bf16 convolutions, converted on the way.
void weights_to_okc(Index out, Index in, Index k, const float* oik, float* oki, cudaStream_t stream);
void weights_to_okc(Index out, Index in, Index k, const float* oik, bf16* oki, cudaStream_t stream);
void weights_from_okc(Index out, Index in, Index k, const float* oki, float* oik, cudaStream_t stream);
void weights_from_okc(Index out, Index in, Index k, const bf16* oki, float* oik, cudaStream_t stream);

// Convolution over one-hot codes as a gather (backend.h): dst (N, T_out, O). `transposed` is
// scratch for out * alphabet * k floats: the weights (O, A, K) rearranged to (K, A, O), so that
// the threads of a warp, which compute neighbouring output channels, read neighbouring weights.
void onehot_conv_forward(Index n, Index t_in, Index alphabet, Index out, Index k, const std::uint8_t* codes,
                         const float* weights, const float* bias, float* dst, bool relu, float* transposed,
                         cudaStream_t stream);
// The unfolded one-hot input of rows [row0, row0 + rows) of the (N * T_out) output positions:
// unfolded[r, a * K + j] = (codes[n, t + j] == a + 1), a (rows, A * K) matrix for a GEMM.
void onehot_unfold(Index row0, Index rows, Index t_in, Index t_out, Index alphabet, Index k, const std::uint8_t* codes,
                   float* unfolded, cudaStream_t stream);

// The fused one-hot block (backend.h's onehot_conv1d_relu_pool_*): convolution (stride 1), ReLU
// and max pooling (no padding) to dst (N, T_pool, O), with `winners` (N, T_pool, O) the offset of
// each output's maximum in its window when not null (training); `transposed` as for
// onehot_conv_forward. Backward writes diff_weights (O, A, K) and diff_bias (O) from the pooled
// gradient; `scratch` holds onehot_pool_backward_scratch(...) floats.
void onehot_pool_forward(Index n, Index t_in, Index alphabet, Index out, Index k, Index pool_kernel, Index pool_stride,
                         const std::uint8_t* codes, const float* weights, const float* bias, float* dst,
                         std::uint8_t* winners, float* transposed, cudaStream_t stream);
[[nodiscard]] Index onehot_pool_backward_scratch(Index n, Index t_in, Index alphabet, Index out, Index k,
                                                 Index pool_kernel, Index pool_stride);
void onehot_pool_backward(Index n, Index t_in, Index alphabet, Index out, Index k, Index pool_kernel, Index pool_stride,
                          const std::uint8_t* codes, const float* dst, const float* diff_dst,
                          const std::uint8_t* winners, float* diff_weights, float* diff_bias, float* scratch,
                          cudaStream_t stream);

// Max pooling over time (backend.h): dst (N, T_out, C). When `winners` is not null (training),
// winners[(n, t, c)] is the time index of the window's first maximum, the reference backend's
// choice; padding never wins.
void max_pool_forward(Index n, Index t_in, Index c, Index kernel, Index stride, Index pad, const float* src, float* dst,
                      std::int32_t* winners, cudaStream_t stream);
// diff_src (N, T_in, C): every source element sums, in window order, the gradients of the
// windows it won (a gather: no atomics, deterministic).
void max_pool_backward(Index n, Index t_in, Index c, Index kernel, Index stride, Index pad, const float* diff_dst,
                       const std::int32_t* winners, float* diff_src, cudaStream_t stream);

// Order-preserving k-max pooling over time (backend.h).
void kmax_forward(Index n, Index t, Index c, Index k, const float* src, float* dst, std::int32_t* indices,
                  cudaStream_t stream);
void kmax_backward(Index n, Index t, Index c, Index k, const float* diff_dst, const std::int32_t* indices,
                   float* diff_src, cudaStream_t stream);

// dst (N, T, E) = table[codes]; diff_table (V, E) = per-code sums of diff_dst rows.
void embedding_forward(Index rows, Index dim, const std::uint8_t* codes, const float* table, float* dst,
                       cudaStream_t stream);
// `scratch` holds embedding_backward_scratch(rows, vocab, dim) doubles.
[[nodiscard]] Index embedding_backward_scratch(Index rows, Index vocab, Index dim);
void embedding_backward(Index rows, Index vocab, Index dim, const std::uint8_t* codes, const float* diff_dst,
                        float* diff_table, double* scratch, cudaStream_t stream);
// Word ids (int32, V up to millions): dst (N, T, E) = table[ids], NaN rows for ids outside [0, V).
void embedding_forward(Index rows, Index vocab, Index dim, const std::int32_t* ids, const float* table, float* dst,
                       cudaStream_t stream);
// diff_table (V, E) = per-id sums of diff_dst rows (ids outside [0, V) left out). The positions are
// sorted by id (a stable radix sort), and one block sums each id's rows in a fixed order; the
// table is cleared first (a dense gradient). `scratch` holds word_embedding_backward_scratch bytes.
[[nodiscard]] std::size_t word_embedding_backward_scratch(Index rows, Index vocab);
void embedding_backward(Index rows, Index vocab, Index dim, const std::int32_t* ids, const float* diff_dst,
                        float* diff_table, void* scratch, cudaStream_t stream);

// --- Recurrent layers (cuDNN's RNN API in cuda_backend.cu) ------------------------------------
// One contiguous block of a recurrent layer's parameters: `count` floats at `canonical` in the
// canonical weights (or, with `bias`, in the canonical bias) and at `packed` (in floats) in cuDNN's
// weight space. A layer's blocks cover every canonical parameter once.
struct RnnBlock {
  Index canonical = 0, packed = 0, count = 0;
  int bias = 0;
};
// The canonical weights and bias into cuDNN's weight space (`blocks`, in device memory, `largest`
// the largest count); and a weight-space gradient back into the canonical diff_weights and
// diff_bias (overwritten).
void rnn_to_packed(const RnnBlock* blocks, int block_count, Index largest, const float* weights, const float* bias,
                   float* packed, cudaStream_t stream);
void rnn_from_packed(const RnnBlock* blocks, int block_count, Index largest, const float* packed, float* weights,
                     float* bias, cudaStream_t stream);
// The lengths cuDNN runs (devSeqLengths): max(lengths[i], 1), cuDNN refusing empty rows (the
// backend masks the rows with L = 0), or t for every row when lengths is null.
void rnn_lengths(Index n, Index t, const std::int32_t* lengths, std::int32_t* cudnn_lengths, cudaStream_t stream);
// dst (N, T, C) = src at the steps t < lengths[i], 0 at the others (padding); dst may be src.
void mask_padding(Index n, Index t, Index c, const std::int32_t* lengths, const float* src, float* dst,
                  cudaStream_t stream);

// Masked pooling over time (Backend::sequence_pool_*), the default host bodies of backend.h
// computed on the device, with the same results bit for bit: src (N, T, C) over each row's
// L = lengths[i] steps (null: T) -> dst (N, C); `argmax` (N, C) (max only, may be null otherwise)
// the first step of each maximum, -1 in rows with L = 0. The mean adds the steps in time order in
// fp32, as the host does. Backward writes every element of diff_src (N, T, C) (a gather).
void sequence_pool_forward(engine::SequencePooling mode, Index n, Index t, Index c, Index directions, const float* src,
                           const std::int32_t* lengths, float* dst, std::int32_t* argmax, cudaStream_t stream);
void sequence_pool_backward(engine::SequencePooling mode, Index n, Index t, Index c, Index directions,
                            const std::int32_t* lengths, const std::int32_t* argmax, const float* diff_dst,
                            float* diff_src, cudaStream_t stream);

// Softmax cross-entropy with its results in device memory (Backend::softmax_cross_entropy_stats):
// stats[0..2] = the summed loss, the correctly classified rows, 1 + the first row with a label out
// of range (0: none); diff_logits (may be null) as in backend.h, NaN in a row with such a label or
// a loss that is not finite. `scratch` holds 2n + 1 doubles.
void softmax_cross_entropy_stats(Index n, Index classes, const float* logits, const std::int32_t* labels,
                                 float* diff_logits, double* stats, double* scratch, cudaStream_t stream);

// Batch norm over (rows, c), channels fastest (backend.h), as the reference backend computes it.
// Training (sum and sum_squares, the column sums of src, not null): save_mean, save_var (biased)
// and the running statistics (momentum, unbiased variance) are updated from the batch. Inference
// (sum null): the running statistics are used. Either way scale = gamma * inv_std and
// shift = beta - mean * scale, per channel, for batch_norm_apply.
void batch_norm_statistics(Index rows, Index c, const double* sum, const double* sum_squares, const float* gamma,
                           const float* beta, float* save_mean, float* save_var, float* running_mean,
                           float* running_var, double momentum, double epsilon, float* scale, float* shift,
                           cudaStream_t stream);
// dst = src * scale + shift per channel, then max(0, .) when relu.
void batch_norm_apply(Index rows, Index c, const float* src, const float* scale, const float* shift, float* dst,
                      bool relu, cudaStream_t stream);
// From sum_dy and sum_dy_x (column sums of dy and dy * src) and the saved statistics:
// diff_beta = sum dy, diff_gamma = sum dy * xhat, and the per-channel doubles mean, inv_std,
// mean_dy and mean_dy_xhat that batch_norm_backward_data takes.
void batch_norm_backward_statistics(Index rows, Index c, const double* sum_dy, const double* sum_dy_x,
                                    const float* save_mean, const float* save_var, double epsilon, float* diff_gamma,
                                    float* diff_beta, double* mean, double* inv_std, double* mean_dy,
                                    double* mean_dy_xhat, cudaStream_t stream);
// diff_src = gamma * inv_std * (dy - mean_dy - (src - mean) * inv_std * mean_dy_xhat) (backend.h);
// the per-channel arrays are double, in device memory. With a `mask`, dy is 0 where mask <= 0.
void batch_norm_backward_data(Index rows, Index c, const float* src, const float* dy, const double* mean,
                              const double* inv_std, const float* gamma, const double* mean_dy,
                              const double* mean_dy_xhat, float* diff_src, cudaStream_t stream,
                              const float* mask = nullptr);

// Fused optimizer steps (backend.h); `factor` null or one device value, 0 skipping the step.
void sgd_step(Index count, float* param, const float* grad, float* velocity, float lr, float momentum,
              float weight_decay, const float* factor, cudaStream_t stream);
void adam_step(Index count, float* param, const float* grad, float* m, float* v, float step_size, float beta1,
               float beta2, float sqrt_c2, float epsilon, float weight_decay, const float* factor, cudaStream_t stream);
// factor[0] = engine::step_factor(sum_squares[0], clip_norm), on the device.
void step_factor(const double* sum_squares, double clip_norm, float* factor, cudaStream_t stream);

}  // namespace textscale::cuda::kernels

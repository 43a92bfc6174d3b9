// Hand-written CPU loops (OpenMP, vectorised by the compiler) for the operations oneDNN has no
// primitive for, or whose primitive falls short: the one-hot convolution as a gather, k-max
// pooling, batch normalisation, embedding, the loss, element-wise operations and optimizer steps.
// Their contracts are in backend.h.
//
// Every reduction has a fixed order (threads own disjoint outputs, or partial sums over fixed
// blocks are combined serially), so results do not depend on the thread count.
#pragma once

#include <cstdint>
#include <vector>

#include "textscale/engine/backend.h"

// The build targets generic x86-64, so the compiler would vectorise these loops for SSE2 only.
// The hot inner loops are compiled for AVX-512 and AVX2 as well and picked at load time for the
// CPU at hand (GCC's target_clones); oneDNN does the same for its own kernels with its JIT.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define TS_VECTOR_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define TS_VECTOR_CLONES
#endif

namespace textscale::engine::cpu {

void onehot_conv1d_forward(OpStatePtr& state, const Conv1dShape& s, const std::uint8_t* codes, const float* weights,
                           const float* bias, float* dst, bool relu);
void onehot_conv1d_backward_weights(OpStatePtr& state, const Conv1dShape& s, const std::uint8_t* codes,
                                    const float* diff_dst, float* diff_weights, float* diff_bias);
void onehot_conv1d_relu_pool_forward(OpStatePtr& state, const OneHotPoolShape& s, const std::uint8_t* codes,
                                     const float* weights, const float* bias, float* dst, bool training);
void onehot_conv1d_relu_pool_backward_weights(OpStatePtr& state, const OneHotPoolShape& s, const std::uint8_t* codes,
                                              const float* dst, const float* diff_dst, float* diff_weights,
                                              float* diff_bias);
void kmax_pool_forward(Dims src, Index k, const float* src_data, float* dst, std::int32_t* indices);
void kmax_pool_backward(Dims src, Index k, const float* diff_dst, const std::int32_t* indices, float* diff_src);
// Batch normalisation (contracts in backend.h), statistics and reductions in double.
void batch_norm_forward(Dims d, const float* src, const float* gamma, const float* beta, float* dst, float* save_mean,
                        float* save_var, float* running_mean, float* running_var, bool training, double momentum,
                        double epsilon, bool relu);
void batch_norm_backward(Dims d, const float* src, const float* dst, const float* diff_dst, const float* gamma,
                         const float* save_mean, const float* save_var, float* diff_src, float* diff_gamma,
                         float* diff_beta, double epsilon, bool relu);
// Training-mode input gradient from given statistics (backend.h's batch_norm_backward_data), with
// dy counted only where mask > 0 when `mask` is not null (the fused ReLU's output).
void batch_norm_input_gradient(Index rows, Index c, const float* src, const float* mask, const float* dy,
                               const double* mean, const double* inv_std, const float* gamma, const double* mean_dy,
                               const double* mean_dy_xhat, float* diff_src);
// Per-channel sums over the rows of (rows, c) arrays in double, in fixed blocks added in order:
// sum_a = sum of a', sum_ab = sum of a' * b (b null: a' * a), where a' = a, or 0 where mask <= 0.
void channel_sums(Index rows, Index c, const float* a, const float* b, const float* mask, double* sum_a,
                  double* sum_ab);
void update_running_statistics(Index channels, Index rows, const float* mean, const float* var, float* running_mean,
                               float* running_var, double momentum);
// dst (columns, rows) = transpose(src (rows, columns)) + bias (rows), then optionally ReLU.
void transpose_add_bias(Index rows, Index columns, const float* src, const float* bias, float* dst, bool relu);
void column_sums(Index rows, Index columns, const float* data, float* sums);
void relu_forward(Index count, const float* src, float* dst);
void relu_backward(Index count, const float* dst, const float* diff_dst, float* diff_src);
void copy(Index count, const float* src, float* dst);
void add(Index count, const float* a, const float* b, float* dst);
void multiply(Index count, const float* a, const float* b, float* dst);
void dropout_forward(Index count, double p, std::uint64_t seed, std::uint64_t first, const float* src, float* dst,
                     float* mask);
void embedding_forward(Index n, Index t, Index vocab, Index dim, const std::uint8_t* codes, const float* table,
                       float* dst);
void embedding_backward(Index n, Index t, Index vocab, Index dim, const std::uint8_t* codes, const float* diff_dst,
                        float* diff_table);
// Word ids: forward a parallel copy of rows; backward sorts the positions by id (stable, so each
// id's rows are summed in position order, in double) and threads own disjoint ids, so the result
// does not depend on the thread count. Costs O(N T log(N T) + V E): the table is dense.
void embedding_forward(Index n, Index t, Index vocab, Index dim, const std::int32_t* ids, const float* table,
                       float* dst);
void embedding_backward(Index n, Index t, Index vocab, Index dim, const std::int32_t* ids, const float* diff_dst,
                        float* diff_table);
// embedding_backward's rows of the batch's ids only, after zeroing the rows listed in `rows`;
// `rows` then lists the ids written (Backend::embedding_backward_rows).
void embedding_backward_rows(Index n, Index t, Index vocab, Index dim, const std::int32_t* ids, const float* diff_dst,
                             float* diff_table, std::vector<std::int32_t>& rows);
double softmax_cross_entropy(Index n, Index classes, const float* logits, const std::int32_t* labels,
                             float* diff_logits);
// The gradient is multiplied by `factor` first (clipping; exact when 1).
void sgd_step(Index count, float* param, const float* grad, float* velocity, double lr, double momentum,
              double weight_decay, float factor);
void adam_step(Index count, float* param, const float* grad, float* m, float* v, double lr, double beta1, double beta2,
               double epsilon, double weight_decay, std::int64_t step, float factor);
// The same steps on the listed rows of a (V, row_size) tensor (Backend::sgd_step_rows).
void sgd_step_rows(Index row_count, const std::int32_t* rows, Index row_size, float* param, const float* grad,
                   float* velocity, double lr, double momentum, double weight_decay, float factor);
void adam_step_rows(Index row_count, const std::int32_t* rows, Index row_size, float* param, const float* grad,
                    float* m, float* v, double lr, double beta1, double beta2, double epsilon, double weight_decay,
                    std::int64_t step, float factor);
double sum_squares(Index count, const float* data);
void scale(Index count, float* data, double factor);

}  // namespace textscale::engine::cpu

// The CPU backend's recurrent operation (Backend::rnn_forward / rnn_backward, backend.h): oneDNN's
// LSTM primitives over rows of different lengths.
//
// oneDNN 2.6 has no per-row lengths, so each direction runs as a left-to-right unidirectional LSTM
// over left-aligned rows: direction 0 over the rows as they are, direction 1 over each row reversed
// within its own length ([x_{L-1} .. x_0, padding]). A left-to-right LSTM's output at step t
// depends on steps 0 .. t only, so its outputs at the real steps are exact whatever follows them;
// they are copied out (direction 1's back in time order) and dst is set to 0 at the padding steps.
// Backward takes the incoming gradient in the same order, 0 at every padding step, with no gradient
// into the final state: the gradient that flows back through the padding steps is then exactly 0
// (their inputs are set to 0, so every product there is finite), and the weight, bias and input
// gradients are those of LSTMs over each row's own length. A row's results do not depend on how much
// padding follows it beyond the rounding of the sums over the batch.
//
// oneDNN gets its inputs and outputs time-major, (T, N, C), in scratch memory: in that layout its
// primitives compute the input-to-hidden products of all steps as one GEMM (forward) and the weight
// gradients as one GEMM each (backward). The copies into and out of it reverse direction 1 and
// zero the padding; direction 0 of an fp32 inference reads src and writes dst where they are. Weights are reordered
// from the canonical layout (dims.h: PyTorch's, whose gates i, f, g, o are oneDNN's i, f, c~, o) into each primitive's
// once per call, and the gradients reordered back into the canonical layout.
//
// Threads: with two directions and 2 or 3 OpenMP threads the directions run at the same time, one
// thread each, and no time step waits at a barrier between threads: a step's GEMM (N x 4H x H) is
// too small to split. On the 2-core development machine, with other processes running, the
// directions in turn on two threads each took 2.4 to 9 times as long (N 32 and 128, T 300, 200 ->
// 100). With more threads, one direction after the other, each on all threads (oneDNN runs on one
// thread inside a parallel region). The results depend on the thread count only through oneDNN's
// GEMMs.
//
// Precision: fp32, or with `bf16` oneDNN's bf16 kernels (input, weights and h in bf16; the cell
// state, the sums and every gradient in fp32), 1.5 times as fast on AVX512-BF16.
//
// `state` caches the primitives per (N, T) and, per direction, the input and output in oneDNN's
// order and the training forward's workspace, which backward reads, and the weights in the
// primitives' layouts; `scratch` (one per backend) holds what a call needs only while it runs. Both
// grow to the largest shape seen. Backward needs the last forward with the state to have been a
// training one with the same shape and lengths (an inference forward reuses the memory).
//
// Memory: oneDNN 2.6 books far more workspace and scratchpad than its LSTM touches (at N 128,
// T 300, 200 -> 100 a direction: a training workspace of 461 MB, of which forward and backward write
// 188, and a backward scratchpad of 308 MB, of which they write 61), so both are allocated without
// being written (UnwrittenBytes): the pages oneDNN never writes never take memory. When the
// directions run in turn they share one `scratch` direction, and backward adds each direction's
// input gradient into diff_src as soon as it has it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <oneapi/dnnl/dnnl.hpp>

#include "textscale/engine/backend.h"
#include "textscale/engine/buffer.h"

namespace textscale::engine::cpu {

// Host bytes for what oneDNN writes before it reads (a workspace, a scratchpad): unlike a Buffer,
// not zero-filled, so that the pages nobody writes are never made resident.
class UnwrittenBytes {
 public:
  // At least `bytes`, 64-byte aligned; the contents are kept when it does not grow, else undefined.
  std::uint8_t* at_least(std::size_t bytes);
  [[nodiscard]] std::uint8_t* data() { return data_.get(); }

 private:
  struct Free {
    void operator()(std::uint8_t* p) const { std::free(p); }
  };
  std::unique_ptr<std::uint8_t[], Free> data_;
  std::size_t size_ = 0;
};

// Memory every LSTM call site of a backend shares (its operations run one at a time): oneDNN's
// scratchpad, zeros for the initial states, and backward's gradients in oneDNN's order; one per
// direction when the directions run at the same time, else directions[0] serves both.
struct LstmScratch {
  struct Direction {
    UnwrittenBytes scratchpad;
    Buffer<float> zeros;         // (N, H): the initial h and c (lstm.cpp says why they are given)
    Buffer<float> diff_initial;  // (2, N, H): their gradients, unused
    Buffer<float> diff_dst;      // (T, N, H): the incoming gradient in this direction's order, 0 at padding
    Buffer<float> diff_src;      // (T, N, C_in): the input gradient in that order
  };
  Direction directions[2];
};

// `bf16`: oneDNN's bf16 kernels (the input, the weights and h in bf16; c, the sums and every
// gradient in fp32).
void lstm_forward(const dnnl::engine& engine, LstmScratch& scratch, OpStatePtr& state, const RnnShape& shape,
                  const float* src, const std::int32_t* lengths, const float* weights, const float* bias, float* dst,
                  bool training, bool bf16);

// Reads the input from what the training forward kept in `state`, not from the caller's src.
void lstm_backward(const dnnl::engine& engine, LstmScratch& scratch, OpStatePtr& state, const RnnShape& shape,
                   const std::int32_t* lengths, const float* weights, const float* diff_dst, float* diff_src,
                   float* diff_weights, float* diff_bias);

}  // namespace textscale::engine::cpu

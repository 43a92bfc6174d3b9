// 1-D Winograd convolution F(4, 3) for the CPU backend (Lavin and Gray, "Fast Algorithms for
// Convolutional Neural Networks", 2016): four outputs of a 3-tap filter from six products instead
// of twelve, so a stride-1, kernel-3 convolution needs half the multiply-adds of the direct one.
// The products become six GEMMs (oneDNN's SGEMM) between transformed input tiles and transformed
// weights; the transforms are a few additions per element, memory-bound.
//
// oneDNN implements Winograd only for 2-D 3x3 convolutions; this is the 1-D form VDCNN's and
// Crepe's layers need, for forward and backward-data (which is itself a stride-1 correlation, with
// the weights flipped in time and transposed), and backward-weights (six GEMMs between
// transformed inputs and transformed output gradients, reduced over tiles). A longer kernel is
// split into groups of three taps (Crepe's kernel 7: taps 0-2, 3-5 and 6), each group a kernel-3
// correlation of the input shifted by three positions; the groups' products add up before the
// output transform, so kernel 7 costs 18 products per 4 outputs instead of 28.
//
// Numerics: the transforms use the interpolation points 0, +-1, +-2 and infinity, whose
// constants are exact in binary floating point except 1/6, 1/12 and 1/24 in the weight
// transform; the results differ from the direct convolution by a few float roundings
// (tests/conformance/cases.cpp bounds it). Scratch space is one buffer per thread,
// shared by all calls.
#pragma once

#include <vector>

#include "textscale/engine/dims.h"

namespace textscale::engine::cpu {

enum class WinogradPass { forward, backward_data, backward_weights };

// Whether the CPU backend runs `pass` of `s` through Winograd: stride 1, kernel >= 3, padding at
// most kernel - 1, and both channel counts at least `min_channels` (BackendOptions::
// winograd_min_channels, default 64; twice that for backward-weights). Below 64 the GEMMs are too
// thin to gain: 16 -> 64 channels runs 1.5x slower forward, and the weight gradient of 64 -> 64
// channels 1.7x slower (bench/winograd_conv.cpp). BackendOptions::winograd (--winograd off) turns
// it off in the backend.
[[nodiscard]] bool winograd_applies(const Conv1dShape& s, WinogradPass pass, Index min_channels = 64);

// Transforms the canonical weights (C_out, C_in, K) into six matrices V_e, e < 6, per group of
// three taps, stored one after the other, for the pass's GEMM: (C_in x C_out) for forward,
// (C_out x C_in) with the taps reversed for backward-data. `transformed` is resized to
// ceil(K / 3) * 6 * C_in * C_out.
void winograd_weights(const Conv1dShape& s, WinogradPass pass, const float* weights, std::vector<float>& transformed);

// dst (N, T_dst, C_dst) = bias + sum over taps j < K and channels c < C_src of
// src[n, t - pad + j, c] * w_j[c, c_dst] (src read as zero outside [0, T_src)), then ReLU when
// `relu`. `transformed` holds the V_e of winograd_weights; bias may be null.
// Forward: (src, T_src, C_src) = (src, T_in, C_in), pad = shape.pad, T_dst = T_out.
// Backward-data: (diff_dst, T_out, C_out), pad = K - 1 - shape.pad, T_dst = T_in, no bias or ReLU.
// Work is split into fixed blocks of tiles, so the result does not depend on the thread count.
void winograd_conv1d(Index n, Index t_src, Index c_src, Index t_dst, Index c_dst, Index kernel, Index pad,
                     const float* src, const float* transformed, const float* bias, float* dst, bool relu);

// diff_weights (C_out, C_in, K) = the weight gradient of the stride-1 convolution `s` given src (N, T_in, C_in) and
// diff_dst (N, T_out, C_out); overwritten, not accumulated. The bias gradient is not computed here. Blocks of 512 tiles
// are reduced one after the other; each block's SGEMMs use all threads, so, as with oneDNN's own backward-weights, the
// last bits may depend on the thread count.
void winograd_conv1d_backward_weights(const Conv1dShape& s, const float* src, const float* diff_dst,
                                      float* diff_weights);

}  // namespace textscale::engine::cpu

#include "winograd.h"

#include <omp.h>

#include <oneapi/dnnl/dnnl.h>
#include <algorithm>
#include <string>

#include "cpu_kernels.h"
#include "textscale/engine/cpu/dnnl_backend.h"

namespace textscale::engine::cpu {

namespace {

constexpr Index kTile = 4;    // outputs per tile
constexpr Index kInputs = 6;  // inputs per tile = products per tile
// Tiles per GEMM block: a block's transformed inputs and products (6 x 64 x C floats each) stay in
// the core's L2 between the transforms and the GEMMs. Fixed, so results do not depend on threads.
constexpr Index kBlockTiles = 64;
// The six matrices of a block lie this many floats further apart than their size: with a size of
// 64 x C floats they would otherwise all start on the same 4 KiB boundary and compete for the
// same L1 sets in the transforms, which touch all six at once.
constexpr Index kMatrixPad = 48;
// Tiles per block of the weight gradient, whose SGEMMs reduce over tiles: long enough for
// efficient SGEMMs (C_in x C_out x 512), short enough that a block's transformed inputs and
// gradients (6 x 512 x C floats each) are still in the cache shared by the cores when read.
constexpr Index kGradientBlockTiles = 512;

// Scratch space shared by every Winograd call of the thread (the backend runs a model's layers one
// after the other), so it costs the largest layer's need, not the sum over layers.
std::vector<float>& scratch() {
  static thread_local std::vector<float> work;
  return work;
}

// u_e = (B^T d)_e for one tile and every channel; the six rows of u are `stride` floats apart.
TS_VECTOR_CLONES void input_tile(Index c, const float* __restrict d0, const float* __restrict d1,
                                 const float* __restrict d2, const float* __restrict d3, const float* __restrict d4,
                                 const float* __restrict d5, float* __restrict u, Index stride) {
  float* __restrict u0 = u;
  float* __restrict u1 = u + stride;
  float* __restrict u2 = u + 2 * stride;
  float* __restrict u3 = u + 3 * stride;
  float* __restrict u4 = u + 4 * stride;
  float* __restrict u5 = u + 5 * stride;
#pragma omp simd
  for (Index i = 0; i < c; ++i) {
    u0[i] = 4.0f * d0[i] - 5.0f * d2[i] + d4[i];
    u1[i] = -4.0f * (d1[i] + d2[i]) + d3[i] + d4[i];
    u2[i] = 4.0f * (d1[i] - d2[i]) - d3[i] + d4[i];
    u3[i] = 2.0f * (d3[i] - d1[i]) - d2[i] + d4[i];
    u4[i] = 2.0f * (d1[i] - d3[i]) - d2[i] + d4[i];
    u5[i] = 4.0f * d1[i] - 5.0f * d3[i] + d5[i];
  }
}

// y_i = (A^T m)_i + bias for one tile and every channel, then ReLU; the six rows of m are
// `stride` floats apart. `bias` must not be null: with `bias ? bias[i] : 0` the compiler emits a
// masked load from the null pointer, and every fault it suppresses costs a microcode assist
// (measured: this transform ran ~6x slower).
TS_VECTOR_CLONES void output_tile(Index c, const float* __restrict m, Index stride, const float* __restrict bias,
                                  bool relu, float* __restrict y0, float* __restrict y1, float* __restrict y2,
                                  float* __restrict y3) {
  const float* __restrict m0 = m;
  const float* __restrict m1 = m + stride;
  const float* __restrict m2 = m + 2 * stride;
  const float* __restrict m3 = m + 3 * stride;
  const float* __restrict m4 = m + 4 * stride;
  const float* __restrict m5 = m + 5 * stride;
  const float lower = relu ? 0.0f : -__builtin_inff();
#pragma omp simd
  for (Index i = 0; i < c; ++i) {
    const float b = bias[i];
    const float p = m1[i] + m2[i], q = m1[i] - m2[i], r = m3[i] + m4[i], s = m3[i] - m4[i];
    y0[i] = std::max(m0[i] + p + r + b, lower);
    y1[i] = std::max(q + 2.0f * s + b, lower);
    y2[i] = std::max(p + 4.0f * r + b, lower);
    y3[i] = std::max(q + 8.0f * s + m5[i] + b, lower);
  }
}

// z_e = (A dy)_e for one tile and every channel (A = the transpose of the output transform): the
// tile's share of the weight gradient is G^T (u .* z). Rows of dy past the end of the sequence
// point at a row of zeros. The six rows of z are `stride` floats apart.
TS_VECTOR_CLONES void gradient_tile(Index c, const float* __restrict dy0, const float* __restrict dy1,
                                    const float* __restrict dy2, const float* __restrict dy3, float* __restrict z,
                                    Index stride) {
  float* __restrict z0 = z;
  float* __restrict z1 = z + stride;
  float* __restrict z2 = z + 2 * stride;
  float* __restrict z3 = z + 3 * stride;
  float* __restrict z4 = z + 4 * stride;
  float* __restrict z5 = z + 5 * stride;
#pragma omp simd
  for (Index i = 0; i < c; ++i) {
    const float even = dy0[i] + dy2[i], odd = dy1[i] + dy3[i];
    const float even4 = dy0[i] + 4.0f * dy2[i], odd8 = 2.0f * dy1[i] + 8.0f * dy3[i];
    z0[i] = dy0[i];
    z1[i] = even + odd;
    z2[i] = even - odd;
    z3[i] = even4 + odd8;
    z4[i] = even4 - odd8;
    z5[i] = dy3[i];
  }
}

}  // namespace

Index winograd_groups(Index kernel) {
  return (kernel + 2) / 3;
}

bool winograd_applies(const Conv1dShape& s, WinogradPass pass, Index min_channels) {
  const Index needed = pass == WinogradPass::backward_weights ? 2 * min_channels : min_channels;
  return s.kernel >= 3 && s.stride == 1 && s.pad >= 0 && s.pad <= s.kernel - 1 && s.c_in >= needed &&
         s.c_out >= needed && s.t_out() >= 1;
}

void winograd_weights(const Conv1dShape& s, WinogradPass pass, const float* weights, std::vector<float>& transformed) {
  // Per group of three taps (g0, g1, g2), V_e = (G g)_e with
  // G = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6; 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1].
  const Index c_in = s.c_in, c_out = s.c_out, plane = c_in * c_out, k = s.kernel, groups = winograd_groups(k);
  transformed.resize(static_cast<std::size_t>(groups * kInputs * plane));
  const bool backward = pass == WinogradPass::backward_data;
#pragma omp parallel for schedule(static)
  for (Index o = 0; o < c_out; ++o)
    for (Index c = 0; c < c_in; ++c) {
      const float* w = weights + (o * c_in + c) * k;
      const Index at = backward ? o * c_in + c : c * c_out + o;  // (C_out x C_in) or (C_in x C_out)
      for (Index group = 0; group < groups; ++group) {
        // Tap j of the correlation: w[j] forward, w[k - 1 - j] for backward-data (the taps
        // reversed); taps past the kernel's end are zero.
        double g[3];
        for (Index i = 0; i < 3; ++i) {
          const Index j = 3 * group + i;
          g[i] = j < k ? (backward ? w[k - 1 - j] : w[j]) : 0.0;
        }
        float* v = transformed.data() + group * kInputs * plane + at;
        v[0] = static_cast<float>(g[0] / 4);
        v[plane] = static_cast<float>(-(g[0] + g[1] + g[2]) / 6);
        v[2 * plane] = static_cast<float>(-(g[0] - g[1] + g[2]) / 6);
        v[3 * plane] = static_cast<float>(g[0] / 24 + g[1] / 12 + g[2] / 6);
        v[4 * plane] = static_cast<float>(g[0] / 24 - g[1] / 12 + g[2] / 6);
        v[5 * plane] = static_cast<float>(g[2]);
      }
    }
}

void winograd_conv1d(Index n, Index t_src, Index c_src, Index t_dst, Index c_dst, Index kernel, Index pad,
                     const float* src, const float* transformed, const float* bias, float* dst, bool relu) {
  const Index groups = winograd_groups(kernel);
  std::vector<float>& work = scratch();
  const Index tiles = (t_dst + kTile - 1) / kTile;  // per sample
  const Index rows = n * tiles;                     // GEMM rows: one per tile
  const Index blocks = (rows + kBlockTiles - 1) / kBlockTiles;
  // The whole team even when there are fewer blocks than threads: inside an active parallel region
  // oneDNN's SGEMM runs on its calling thread, so a block's sums never depend on the thread count.
  const auto threads = static_cast<std::size_t>(omp_get_max_threads());
  // Per thread: transformed inputs (6 x block x C_src), products (6 x block x C_dst), a spill
  // area of three rows; and one zero row shared by all, read in place of positions outside the
  // sequence and of a missing bias.
  const Index u_size = kInputs * (kBlockTiles * c_src + kMatrixPad),
              m_size = kInputs * (kBlockTiles * c_dst + kMatrixPad);
  const auto per_thread = static_cast<std::size_t>(u_size + m_size + 3 * c_dst);
  if (work.size() < per_thread * threads) work.resize(per_thread * threads);
  const std::vector<float> zeros(static_cast<std::size_t>(std::max(c_src, c_dst)), 0.0f);
  if (!bias) bias = zeros.data();
  const Index plane = c_src * c_dst;
  dnnl_status_t failed = dnnl_success;
#pragma omp parallel
  {
    float* u = work.data() + per_thread * static_cast<std::size_t>(omp_get_thread_num());
    float* m = u + u_size;
    float* spill = m + m_size;
#pragma omp for schedule(dynamic)
    for (Index block = 0; block < blocks; ++block) {
      const Index first = block * kBlockTiles, count = std::min(kBlockTiles, rows - first);
      const Index u_stride = count * c_src + kMatrixPad, m_stride = count * c_dst + kMatrixPad;
      // Each group of three taps reads the input three positions further on; its products add up
      // in the same six matrices, which the output transform then turns into outputs once.
      for (Index group = 0; group < groups; ++group) {
        for (Index r = 0; r < count; ++r) {
          const Index sample = (first + r) / tiles, t0 = (first + r) % tiles * kTile - pad + 3 * group;
          const float* d[kInputs];
          for (Index i = 0; i < kInputs; ++i) {
            const Index t = t0 + i;
            d[i] = t >= 0 && t < t_src ? src + (sample * t_src + t) * c_src : zeros.data();
          }
          input_tile(c_src, d[0], d[1], d[2], d[3], d[4], d[5], u + r * c_src, u_stride);
        }
        for (Index e = 0; e < kInputs; ++e) {
          const dnnl_status_t status = dnnl_sgemm('N', 'N', count, c_dst, c_src, 1.0f, u + e * u_stride, c_src,
                                                  transformed + (group * kInputs + e) * plane, c_dst,
                                                  group == 0 ? 0.0f : 1.0f, m + e * m_stride, c_dst);
          if (status != dnnl_success) {
#pragma omp critical(textscale_winograd_status)
            failed = status;
          }
        }
      }
      for (Index r = 0; r < count; ++r) {
        const Index sample = (first + r) / tiles, t = (first + r) % tiles * kTile;
        float* y = dst + (sample * t_dst + t) * c_dst;
        // A partial last tile writes its missing rows to the spill rows, so output_tile has no branch.
        output_tile(c_dst, m + r * c_dst, m_stride, bias, relu, y, t + 1 < t_dst ? y + c_dst : spill,
                    t + 2 < t_dst ? y + 2 * c_dst : spill + c_dst, t + 3 < t_dst ? y + 3 * c_dst : spill + 2 * c_dst);
      }
    }
  }
  if (failed != dnnl_success)
    throw DnnlError("oneDNN: dnnl_sgemm in the Winograd convolution (" + std::to_string(kBlockTiles) + "x" +
                    std::to_string(c_dst) + "x" + std::to_string(c_src) + ") failed with status " +
                    std::to_string(static_cast<int>(failed)));
}

void winograd_conv1d_backward_weights(const Conv1dShape& s, const float* src, const float* diff_dst,
                                      float* diff_weights) {
  // diff_weights[o][c][3g + i] = sum over tiles and e of G[e][i] * U_{g,e}[tile][c] * Z_e[tile][o],
  // with U_g the transformed inputs of tap group g (shifted by 3g): for each block of tiles, six
  // SGEMMs U_{g,e}^T Z_e per group accumulate into six (C_in x C_out) sums per group, which G^T
  // turns into taps at the end. Blocks run one after the other, each SGEMM on all threads (its
  // reduction is over the block's tiles); the transforms of a block run in parallel.
  const std::vector<float> zeros(static_cast<std::size_t>(std::max(s.c_in, s.c_out)), 0.0f);
  const Index t_out = s.t_out(), tiles = (t_out + kTile - 1) / kTile, rows = s.n * tiles;
  const Index c_in = s.c_in, c_out = s.c_out, plane = c_in * c_out, k = s.kernel, groups = winograd_groups(k);
  const Index block = kGradientBlockTiles;
  const Index u_size = kInputs * (block * c_in + kMatrixPad), z_size = kInputs * (block * c_out + kMatrixPad);
  std::vector<float>& work = scratch();
  const auto needed = static_cast<std::size_t>(u_size + z_size + groups * kInputs * plane);
  if (work.size() < needed) work.resize(needed);
  float* u = work.data();
  float* z = u + u_size;
  float* sums = z + z_size;  // per group, six (C_in x C_out) matrices
  for (Index first = 0; first < rows; first += block) {
    const Index count = std::min(block, rows - first);
    const Index u_stride = count * c_in + kMatrixPad, z_stride = count * c_out + kMatrixPad;
#pragma omp parallel for schedule(static)
    for (Index r = 0; r < count; ++r) {
      const Index sample = (first + r) / tiles, t = (first + r) % tiles * kTile;
      const float* dy[kTile];
      for (Index i = 0; i < kTile; ++i)
        dy[i] = t + i < t_out ? diff_dst + (sample * t_out + t + i) * c_out : zeros.data();
      gradient_tile(c_out, dy[0], dy[1], dy[2], dy[3], z + r * c_out, z_stride);
    }
    for (Index group = 0; group < groups; ++group) {
#pragma omp parallel for schedule(static)
      for (Index r = 0; r < count; ++r) {
        const Index sample = (first + r) / tiles, t = (first + r) % tiles * kTile;
        const float* d[kInputs];
        for (Index i = 0; i < kInputs; ++i) {
          const Index at = t - s.pad + 3 * group + i;
          d[i] = at >= 0 && at < s.t_in ? src + (sample * s.t_in + at) * c_in : zeros.data();
        }
        input_tile(c_in, d[0], d[1], d[2], d[3], d[4], d[5], u + r * c_in, u_stride);
      }
      for (Index e = 0; e < kInputs; ++e) {
        const dnnl_status_t status =
            dnnl_sgemm('T', 'N', c_in, c_out, count, 1.0f, u + e * u_stride, c_in, z + e * z_stride, c_out,
                       first == 0 ? 0.0f : 1.0f, sums + (group * kInputs + e) * plane, c_out);
        if (status != dnnl_success)
          throw DnnlError("oneDNN: dnnl_sgemm in the Winograd weight gradient (" + std::to_string(c_in) + "x" +
                          std::to_string(c_out) + "x" + std::to_string(count) + ") failed with status " +
                          std::to_string(static_cast<int>(status)));
      }
    }
  }
  // G^T per group: tap 3g + i = sum over e of G[e][i] * sums_{g,e}, with G as in winograd_weights.
#pragma omp parallel for schedule(static)
  for (Index o = 0; o < c_out; ++o)
    for (Index c = 0; c < c_in; ++c) {
      float* w = diff_weights + (o * c_in + c) * k;
      for (Index group = 0; group < groups; ++group) {
        const float* m = sums + group * kInputs * plane + c * c_out + o;
        const double m0 = m[0], m1 = m[plane], m2 = m[2 * plane], m3 = m[3 * plane], m4 = m[4 * plane],
                     m5 = m[5 * plane];
        const double taps[3] = {m0 / 4 - (m1 + m2) / 6 + (m3 + m4) / 24, (m2 - m1) / 6 + (m3 - m4) / 12,
                                -(m1 + m2) / 6 + (m3 + m4) / 6 + m5};
        for (Index i = 0; i < 3 && 3 * group + i < k; ++i) w[3 * group + i] = static_cast<float>(taps[i]);
      }
    }
}

}  // namespace textscale::engine::cpu

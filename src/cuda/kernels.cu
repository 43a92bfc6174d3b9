#include "kernels.h"

#include <algorithm>
#include <cfloat>
#include <cub/device/device_radix_sort.cuh>
#include <limits>

#include "check.h"
#include "textscale/engine/dropout_mask.h"

namespace textscale::cuda::kernels {

namespace {

constexpr int threads = 256;

// Blocks for a grid-stride loop over `count` elements.
unsigned blocks_for(Index count) {
  return static_cast<unsigned>(std::clamp<Index>((count + threads - 1) / threads, 1, Index{1} << 20));
}

// Row chunks of the embedding gradient's reduction: enough blocks to fill a GPU, a fixed function
// of `rows`.
Index column_chunks(Index rows) {
  return std::clamp<Index>((rows + 63) / 64, 1, 256);
}
// Row chunks of column_sums: a fixed function of (rows, cols), so the summation order is too. At
// least 256 rows a chunk (8 for each of a block's 32 row lanes) and about 512 blocks of 32 columns
// in all, at most 256 chunks. (Chunks from the rows alone gave a 512-channel batch norm 16 times
// the blocks of a 64-channel one over as many elements, each block summing a few rows; on an H200
// it took 50 us longer each way than the 64-channel one, results/gpu.md.)
Index column_sum_chunks(Index rows, Index cols) {
  const Index column_blocks = (cols + 31) / 32;
  return std::clamp<Index>(std::min(rows / 256, 512 / column_blocks), 1, 256);
}

#define TS_GRID_STRIDE(i, count)                                                         \
  for (Index i = blockIdx.x * static_cast<Index>(blockDim.x) + threadIdx.x; i < (count); \
       i += static_cast<Index>(blockDim.x) * gridDim.x)
// The same with the index type I of a kernel template (below).
#define TS_GRID_STRIDE_I(i, count)                                               \
  for (I i = static_cast<I>(blockIdx.x * blockDim.x + threadIdx.x); i < (count); \
       i += static_cast<I>(blockDim.x * gridDim.x))

// The GPU divides 64-bit integers in software (tens of instructions), so kernels that split a
// flat index into coordinates are templates on their index type and run with 32-bit signed
// indices whenever every index, plus a grid stride (at most 2^28), fits.
bool fits_32(Index count) {
  return count <= (Index{1} << 31) - 1 - (Index{1} << 28);
}
#define TS_LAUNCH_INDEXED(kernel, count, grid, block, stream, ...)         \
  do {                                                                     \
    if (fits_32(count))                                                    \
      kernel<std::int32_t><<<(grid), (block), 0, (stream)>>>(__VA_ARGS__); \
    else                                                                   \
      kernel<Index><<<(grid), (block), 0, (stream)>>>(__VA_ARGS__);        \
    TS_CHECK_LAUNCH();                                                     \
  } while (0)

// Element conversions: fp32 <-> bf16 (round to nearest even), and the identity.
__device__ __forceinline__ float to_float(float x) {
  return x;
}
__device__ __forceinline__ float to_float(bf16 x) {
  return __bfloat162float(x);
}
template <typename T>
__device__ __forceinline__ T from_float(float x);
template <>
__device__ __forceinline__ float from_float<float>(float x) {
  return x;
}
template <>
__device__ __forceinline__ bf16 from_float<bf16>(float x) {
  return __float2bfloat16_rn(x);
}

// `src` may be `dst` (in place, fp32).
template <typename I, typename S>
__global__ void bias_activation_kernel(I rows, I cols, const float* bias, const S* src, float* dst, bool relu) {
  TS_GRID_STRIDE_I(i, rows * cols) {
    float v = to_float(src[i]) + (bias ? bias[i % cols] : 0.0f);
    dst[i] = relu ? fmaxf(v, 0.0f) : v;
  }
}
template <typename From, typename To>
__global__ void convert_kernel(Index count, const From* src, To* dst) {
  TS_GRID_STRIDE(i, count) dst[i] = from_float<To>(to_float(src[i]));
}
__global__ void relu_forward_kernel(Index count, const float* src, float* dst) {
  TS_GRID_STRIDE(i, count) dst[i] = fmaxf(src[i], 0.0f);
}
__global__ void relu_backward_kernel(Index count, const float* dst, const float* diff_dst, float* diff_src) {
  TS_GRID_STRIDE(i, count) diff_src[i] = dst[i] > 0.0f ? diff_dst[i] : 0.0f;
}
__global__ void relu_backward_to_bf16_kernel(Index count, const float* dst, const float* diff_dst, bf16* diff_src) {
  TS_GRID_STRIDE(i, count) diff_src[i] = from_float<bf16>(dst[i] > 0.0f ? diff_dst[i] : 0.0f);
}
__global__ void add_kernel(Index count, const float* a, const float* b, float* dst) {
  TS_GRID_STRIDE(i, count) dst[i] = a[i] + b[i];
}
__global__ void multiply_kernel(Index count, const float* a, const float* b, float* dst) {
  TS_GRID_STRIDE(i, count) dst[i] = a[i] * b[i];
}
__global__ void scale_kernel(Index count, float* data, float factor) {
  TS_GRID_STRIDE(i, count) data[i] *= factor;
}
__global__ void dropout_kernel(Index count, double p, std::uint64_t seed, std::uint64_t first, const float* src,
                               float* dst, float* mask) {
  const auto keep_scale = static_cast<float>(1.0 / (1.0 - p));
  TS_GRID_STRIDE(i, count) {
    const float m = engine::dropout_keep(seed, first + static_cast<std::uint64_t>(i), p) ? keep_scale : 0.0f;
    mask[i] = m;
    dst[i] = src[i] * m;
  }
}

// Stage 1 of a column reduction: block (32, 32) sums 32 columns over one chunk of rows.
__global__ void column_partials_kernel(Index rows, Index cols, Index chunks, const float* a, const float* b,
                                       const float* mask, bool with_ab, double* partial_a, double* partial_ab) {
  __shared__ double shared_a[32][33], shared_ab[32][33];
  const Index col = blockIdx.x * 32 + threadIdx.x;
  const Index chunk = blockIdx.y;
  const Index begin = rows * chunk / chunks, end = rows * (chunk + 1) / chunks;
  double sa = 0, sab = 0;
  if (col < cols)
    for (Index r = begin + threadIdx.y; r < end; r += 32) {
      const Index i = r * cols + col;
      // a[i] is loaded whatever the mask says, so that the loads of the rows nvcc unrolls do not
      // wait for their masks (with the mask, one load at a time per warp).
      const float v = a[i];
      const double x = mask && !(mask[i] > 0.0f) ? 0.0 : v;
      sa += x;
      if (with_ab) sab += x * (b ? static_cast<double>(b[i]) : x);
    }
  shared_a[threadIdx.y][threadIdx.x] = sa;
  shared_ab[threadIdx.y][threadIdx.x] = sab;
  __syncthreads();
  if (threadIdx.y == 0 && col < cols) {
    double ta = 0, tab = 0;
    for (int y = 0; y < 32; ++y) ta += shared_a[y][threadIdx.x], tab += shared_ab[y][threadIdx.x];
    partial_a[chunk * cols + col] = ta;
    if (with_ab) partial_ab[chunk * cols + col] = tab;
  }
}
// Stage 2: one warp per column; lane l adds chunks l, l + 32, ... and the warp adds the lanes in a
// fixed butterfly, so the order is the same in every run. (A thread per column reading the chunks
// one after another waited on each load: 150 us for 64 columns on an H200.)
template <typename Out>
__global__ void column_finish_kernel(Index cols, Index chunks, const double* partial_a, const double* partial_ab,
                                     Out* sum_a, Out* sum_ab) {
  const int lane = static_cast<int>(threadIdx.x % 32);
  const Index warps = static_cast<Index>(blockDim.x) * gridDim.x / 32;
  // col is the same for the 32 lanes of a warp, so whole warps enter and leave the loop.
  for (Index col = (blockIdx.x * static_cast<Index>(blockDim.x) + threadIdx.x) / 32; col < cols; col += warps) {
    double ta = 0, tab = 0;
    for (Index chunk = lane; chunk < chunks; chunk += 32) {
      ta += partial_a[chunk * cols + col];
      if (sum_ab) tab += partial_ab[chunk * cols + col];
    }
    for (int offset = 16; offset > 0; offset /= 2) {
      ta += __shfl_xor_sync(0xffffffffu, ta, offset);
      tab += __shfl_xor_sync(0xffffffffu, tab, offset);
    }
    if (lane == 0) {
      sum_a[col] = static_cast<Out>(ta);
      if (sum_ab) sum_ab[col] = static_cast<Out>(tab);
    }
  }
}

__global__ void sum_squares_partials_kernel(Index count, const float* data, double* partial) {
  __shared__ double shared[threads];
  double s = 0;
  TS_GRID_STRIDE(i, count) {
    const double x = data[i];
    s += x * x;
  }
  shared[threadIdx.x] = s;
  __syncthreads();
  for (int half = threads / 2; half > 0; half /= 2) {
    if (threadIdx.x < half) shared[threadIdx.x] += shared[threadIdx.x + half];
    __syncthreads();
  }
  if (threadIdx.x == 0) partial[blockIdx.x] = shared[0];
}
// One warp: strided lane sums, then a fixed butterfly (as column_finish_kernel).
__global__ void sum_partials_kernel(Index count, const double* partial, double* total) {
  const int lane = static_cast<int>(threadIdx.x % 32);
  double s = 0;
  for (Index i = lane; i < count; i += 32) s += partial[i];
  for (int offset = 16; offset > 0; offset /= 2) s += __shfl_xor_sync(0xffffffffu, s, offset);
  if (lane == 0) total[0] = s;
}

template <typename To>
__global__ void weights_to_okc_kernel(Index out, Index in, Index k, const float* oik, To* oki) {
  TS_GRID_STRIDE(i, out * in * k) {
    const Index o = i / (in * k), c = (i / k) % in, j = i % k;
    oki[(o * k + j) * in + c] = from_float<To>(oik[i]);
  }
}
template <typename From>
__global__ void weights_from_okc_kernel(Index out, Index in, Index k, const From* oki, float* oik) {
  TS_GRID_STRIDE(i, out * in * k) {
    const Index o = i / (in * k), c = (i / k) % in, j = i % k;
    oik[i] = to_float(oki[(o * k + j) * in + c]);
  }
}

__global__ void onehot_transpose_kernel(Index out, Index alphabet, Index k, const float* oak, float* kao) {
  TS_GRID_STRIDE(i, out * alphabet * k) {
    const Index o = i / (alphabet * k), a = (i / k) % alphabet, j = i % k;
    kao[(j * alphabet + a) * out + o] = oak[i];
  }
}
// Weights in (K, A, O): the threads of a warp share a position (same codes) and read
// consecutive output channels.
template <typename I>
__global__ void onehot_conv_forward_kernel(I n, I t_in, I t_out, I alphabet, I out, I k, const std::uint8_t* codes,
                                           const float* kao, const float* bias, float* dst, bool relu) {
  TS_GRID_STRIDE_I(i, n * t_out * out) {
    const I o = i % out, position = i / out;
    const I sample = position / t_out, t = position % t_out;
    const std::uint8_t* row = codes + sample * t_in + t;
    float sum = bias ? bias[o] : 0.0f;
    for (I j = 0; j < k; ++j) {
      const int code = row[j];
      if (code > 0 && code <= alphabet) sum += kao[(j * alphabet + code - 1) * out + o];
    }
    dst[i] = relu ? fmaxf(sum, 0.0f) : sum;
  }
}

template <typename I>
__global__ void max_pool_forward_kernel(I n, I t_in, I c, I kernel, I stride, I pad, I t_out, const float* src,
                                        float* dst, std::int32_t* winners) {
  TS_GRID_STRIDE_I(i, n * t_out * c) {
    const I ch = i % c, position = i / c;
    const I sample = position / t_out, t = position % t_out;
    float best = -INFINITY;
    I best_at = -1;
    for (I j = 0; j < kernel; ++j) {
      const I ti = t * stride + j - pad;
      if (ti < 0 || ti >= t_in) continue;
      const float v = src[(sample * t_in + ti) * c + ch];
      if (best_at < 0 || v > best) best = v, best_at = ti;
    }
    dst[i] = best;
    if (winners) winners[i] = static_cast<std::int32_t>(best_at);
  }
}
template <typename I>
__global__ void max_pool_backward_kernel(I n, I t_in, I c, I kernel, I stride, I pad, I t_out, const float* diff_dst,
                                         const std::int32_t* winners, float* diff_src) {
  TS_GRID_STRIDE_I(i, n * t_in * c) {
    const I ch = i % c, position = i / c;
    const I sample = position / t_in, ti = position % t_in;
    // Windows t with t * stride - pad <= ti <= t * stride - pad + kernel - 1.
    const I last = min((ti + pad) / stride, t_out - 1);
    const I low = ti + pad - kernel + 1;
    const I first = low <= 0 ? 0 : (low + stride - 1) / stride;
    float sum = 0.0f;
    for (I t = first; t <= last; ++t) {
      const I o = (sample * t_out + t) * c + ch;
      if (winners[o] == ti) sum += diff_dst[o];
    }
    diff_src[i] = sum;
  }
}
template <typename I>
__global__ void onehot_unfold_kernel(I row0, I rows, I t_in, I t_out, I alphabet, I k, const std::uint8_t* codes,
                                     float* unfolded) {
  const I width = alphabet * k;
  TS_GRID_STRIDE_I(i, rows * width) {
    const I r = i / width, col = i % width, a = col / k, j = col % k;
    const I position = row0 + r, sample = position / t_out, t = position % t_out;
    unfolded[i] = codes[sample * t_in + t + j] == a + 1 ? 1.0f : 0.0f;
  }
}

// The fused one-hot block (backend.h's onehot_conv1d_relu_pool_*), in tiles of 32 output
// channels: the 32 lanes of a warp are a tile's channels, and a block keeps the tile's (K, A, 32)
// slice of the weights (forward) or of the weight gradient (backward) in shared memory, K * A *
// 128 bytes (60 KiB for Crepe), so that the K lookups per convolution output are shared-memory
// accesses, not reads of the whole (K, A, O) table (480 KiB) through the caches. The unfused path
// (--onehot-fusion off) writes and re-reads the convolution's output (3x the pooled size) four
// times and builds the weight gradient as a GEMM over an unfolded one-hot matrix of 490 floats
// per position.
// When the slice does not fit in shared memory, `Shared = false` reads and accumulates in global
// memory instead (same arithmetic, same order).
constexpr int onehot_tile = 32;
constexpr int onehot_warps = 8;

template <bool Shared>
__global__ void __launch_bounds__(onehot_tile* onehot_warps)
    onehot_pool_forward_kernel(Index rows, Index rows_per_block, Index t_pool, Index t_in, Index alphabet, Index out,
                               Index k, Index pool_kernel, Index pool_stride, const std::uint8_t* __restrict__ codes,
                               const float* __restrict__ kao, const float* __restrict__ bias, float* __restrict__ dst,
                               std::uint8_t* __restrict__ winners) {
  extern __shared__ float table[];  // (K, A, 32): this tile's weights
  const int lane = static_cast<int>(threadIdx.x % onehot_tile), warp = static_cast<int>(threadIdx.x / onehot_tile);
  const Index tile0 = static_cast<Index>(blockIdx.x) * onehot_tile, o = tile0 + lane;
  const bool active = o < out;
  const Index width = k * alphabet;
  if (Shared) {
    for (Index i = threadIdx.x; i < width * onehot_tile; i += blockDim.x) {
      const Index column = tile0 + i % onehot_tile;
      table[i] = column < out ? kao[(i / onehot_tile) * out + column] : 0.0f;
    }
    __syncthreads();
  }
  const float b = active && bias ? bias[o] : 0.0f;
  const Index first_row = static_cast<Index>(blockIdx.y) * rows_per_block;
  const Index last_row = min(rows, first_row + rows_per_block);
  // Row r is output position t of sample n; stepping r by the warp count moves (n, t) without a
  // division per row (64-bit division is a software routine on the GPU).
  Index r = first_row + warp, n = r / t_pool, t = r % t_pool;
  for (; r < last_row; r += onehot_warps) {
    const std::uint8_t* window = codes + n * t_in + t * pool_stride;
    float best = 0.0f;
    int best_at = 0;
    for (Index w = 0; w < pool_kernel; ++w) {
      float sum = b;  // bias first, then the taps in order: onehot_conv_forward_kernel's sum
#pragma unroll 4
      for (Index j = 0; j < k; ++j) {
        const int code = window[w + j];
        if (code > 0 && code <= alphabet) {
          const Index at = j * alphabet + code - 1;
          if (Shared)
            sum += table[at * onehot_tile + lane];
          else if (active)
            sum += kao[at * out + o];
        }
      }
      sum = fmaxf(sum, 0.0f);
      if (w == 0 || sum > best) best = sum, best_at = static_cast<int>(w);  // ties: the earliest
    }
    if (active) {
      dst[r * out + o] = best;
      if (winners) winners[r * out + o] = static_cast<std::uint8_t>(best_at);
    }
    for (t += onehot_warps; t >= t_pool; t -= t_pool) ++n;
  }
}

// Warp j of a block owns tap j (and j + 8, ...) of the tile's gradient slice, lane l its channel:
// every accumulator has one writer, which adds the rows in order (deterministic, no atomics).
// Rows go in groups of 16 whose loads are issued together (the warps of a block read the same
// rows, from L1 after the first). Each block writes its slice to `partial` (chunk, tile, K, A, 32)
// and its bias sums (tap 0's warp) to `partial_bias` (chunk, O).
constexpr int onehot_group = 16;
template <bool Shared>
__global__ void __launch_bounds__(onehot_tile* onehot_warps)
    onehot_pool_backward_kernel(Index rows, Index rows_per_block, Index t_pool, Index t_in, Index alphabet, Index out,
                                Index k, Index pool_stride, const std::uint8_t* __restrict__ codes,
                                const float* __restrict__ dst, const float* __restrict__ diff_dst,
                                const std::uint8_t* __restrict__ winners, float* __restrict__ partial,
                                float* __restrict__ partial_bias) {
  extern __shared__ float slice[];  // (K, A, 32)
  const int lane = static_cast<int>(threadIdx.x % onehot_tile), warp = static_cast<int>(threadIdx.x / onehot_tile);
  const Index tile0 = static_cast<Index>(blockIdx.x) * onehot_tile, o = tile0 + lane;
  const bool active = o < out;
  const Index width = k * alphabet, tiles = gridDim.x;
  float* block_partial = partial + (static_cast<Index>(blockIdx.y) * tiles + blockIdx.x) * width * onehot_tile;
  float* acc = Shared ? slice : block_partial;
  for (Index i = threadIdx.x; i < width * onehot_tile; i += blockDim.x) acc[i] = 0.0f;
  __syncthreads();
  const Index first_row = static_cast<Index>(blockIdx.y) * rows_per_block;
  const Index last_row = min(rows, first_row + rows_per_block);
  float bias_sum = 0.0f;
  if (active)
    for (Index j = warp; j < k; j += onehot_warps) {
      float* column = acc + j * alphabet * onehot_tile + lane;
      Index n = first_row / t_pool, t = first_row % t_pool;  // of row r0, advanced without division
      for (Index r0 = first_row; r0 < last_row; r0 += onehot_group) {
        float g[onehot_group];
        int at[onehot_group], code[onehot_group];
        Index first[onehot_group];  // where the codes of row u's window start, plus j
        bool on[onehot_group];
        Index tn = n, tt = t;
#pragma unroll
        for (int u = 0; u < onehot_group; ++u) {
          const Index r = r0 + u, i = r * out + o;
          on[u] = r < last_row;
          g[u] = on[u] ? diff_dst[i] : 0.0f;
          on[u] = on[u] && dst[i] > 0.0f;  // the ReLU: a window whose maximum is 0 passes nothing
          at[u] = on[u] ? static_cast<int>(winners[i]) : 0;
          first[u] = tn * t_in + tt * pool_stride + j;
          if (++tt == t_pool) tt = 0, ++tn;
        }
#pragma unroll
        for (int u = 0; u < onehot_group; ++u) code[u] = on[u] ? codes[first[u] + at[u]] : 0;
#pragma unroll
        for (int u = 0; u < onehot_group; ++u) {
          if (code[u] > 0 && code[u] <= alphabet) column[(code[u] - 1) * onehot_tile] += g[u];
          if (j == 0 && on[u]) bias_sum += g[u];
        }
        for (t += onehot_group; t >= t_pool; t -= t_pool) ++n;
      }
    }
  __syncthreads();
  if (Shared)
    for (Index i = threadIdx.x; i < width * onehot_tile; i += blockDim.x) block_partial[i] = slice[i];
  if (warp == 0 && active) partial_bias[static_cast<Index>(blockIdx.y) * out + o] = bias_sum;
}

// diff_weights (O, A, K) and diff_bias (O): the chunks' partial sums added in chunk order.
__global__ void onehot_pool_finish_kernel(Index chunks, Index tiles, Index alphabet, Index out, Index k,
                                          const float* __restrict__ partial, const float* __restrict__ partial_bias,
                                          float* __restrict__ diff_weights, float* __restrict__ diff_bias) {
  const Index width = k * alphabet, per_chunk = tiles * width * onehot_tile;
  // i = ((tile * K + j) * A + a) * 32 + lane: consecutive threads read consecutive partials.
  TS_GRID_STRIDE(i, per_chunk) {
    const Index lane = i % onehot_tile, row = (i / onehot_tile) % width, tile = i / (width * onehot_tile);
    const Index o = tile * onehot_tile + lane, j = row / alphabet, a = row % alphabet;
    if (o >= out) continue;
    double sum = 0;
    for (Index c = 0; c < chunks; ++c) sum += partial[c * per_chunk + i];
    diff_weights[(o * alphabet + a) * k + j] = static_cast<float>(sum);
  }
  if (diff_bias) TS_GRID_STRIDE(o, out) {
      double sum = 0;
      for (Index c = 0; c < chunks; ++c) sum += partial_bias[c * out + o];
      diff_bias[o] = static_cast<float>(sum);
    }
}

constexpr int kmax_limit = 64;

__global__ void kmax_forward_kernel(Index n, Index t, Index c, Index k, const float* src, float* dst,
                                    std::int32_t* indices) {
  TS_GRID_STRIDE(i, n * c) {
    const Index sample = i / c, channel = i % c;
    const float* column = src + sample * t * c + channel;
    float value[kmax_limit];
    std::int32_t position[kmax_limit];
    // Ranking: larger value first, then the earlier position. `low` is the lowest-ranked slot.
    int low = 0;
    for (Index j = 0; j < t; ++j) {
      const float v = column[j * c];
      if (j < k) {
        value[j] = v;
        position[j] = static_cast<std::int32_t>(j);
      } else if (v > value[low]) {  // an equal value at a later position ranks lower
        value[low] = v;
        position[low] = static_cast<std::int32_t>(j);
      } else {
        continue;
      }
      if (j >= k - 1) {
        low = 0;
        for (int s = 1; s < k; ++s)
          if (value[s] < value[low] || (value[s] == value[low] && position[s] > position[low])) low = s;
      }
    }
    // Back into time order.
    for (int s = 1; s < k; ++s)
      for (int r = s; r > 0 && position[r - 1] > position[r]; --r) {
        const float v = value[r];
        value[r] = value[r - 1], value[r - 1] = v;
        const std::int32_t p = position[r];
        position[r] = position[r - 1], position[r - 1] = p;
      }
    for (int s = 0; s < k; ++s) {
      dst[(sample * k + s) * c + channel] = value[s];
      indices[(sample * k + s) * c + channel] = position[s];
    }
  }
}
__global__ void kmax_backward_kernel(Index n, Index t, Index c, Index k, const float* diff_dst,
                                     const std::int32_t* indices, float* diff_src) {
  TS_GRID_STRIDE(i, n * k * c) {
    const Index sample = i / (k * c), channel = i % c;
    diff_src[(sample * t + indices[i]) * c + channel] = diff_dst[i];
  }
}

__global__ void embedding_forward_kernel(Index rows, Index dim, const std::uint8_t* codes, const float* table,
                                         float* dst) {
  TS_GRID_STRIDE(i, rows * dim) dst[i] = table[static_cast<Index>(codes[i / dim]) * dim + i % dim];
}
// Block (32, 32) per (code, 32 features): the rows holding that code, summed in a fixed order.
// Stage 1 of the embedding gradient: block (dims blockIdx.x * 32.., code blockIdx.y, row chunk
// blockIdx.z) sums the rows of its chunk whose code is blockIdx.y; stage 2 is column_finish_kernel
// over the (code, dim) columns. (One block per code scanning every row would be 70 blocks on a
// 132-multiprocessor GPU, each thread walking 4,000 rows.)
__global__ void embedding_partials_kernel(Index rows, Index vocab, Index dim, Index chunks, const std::uint8_t* codes,
                                          const float* diff_dst, double* partial) {
  __shared__ double shared[32][33];
  const Index e = blockIdx.x * 32 + threadIdx.x, code = blockIdx.y, chunk = blockIdx.z;
  const Index begin = rows * chunk / chunks, end = rows * (chunk + 1) / chunks;
  double s = 0;
  if (e < dim)
    for (Index r = begin + threadIdx.y; r < end; r += 32)
      if (codes[r] == code) s += diff_dst[r * dim + e];
  shared[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y == 0 && e < dim) {
    double total = 0;
    for (int y = 0; y < 32; ++y) total += shared[y][threadIdx.x];
    partial[(chunk * vocab + code) * dim + e] = total;
  }
}

__global__ void word_embedding_forward_kernel(Index rows, Index vocab, Index dim, const std::int32_t* ids,
                                              const float* table, float* dst) {
  TS_GRID_STRIDE(i, rows * dim) {
    const Index id = ids[i / dim];
    dst[i] = id >= 0 && id < vocab ? table[id * dim + i % dim] : NAN;
  }
}
// Sort keys: the id, or `vocab` for an id outside [0, V) (sorted last, then skipped); values: the
// positions.
__global__ void word_embedding_keys_kernel(Index rows, Index vocab, const std::int32_t* ids, std::int32_t* keys,
                                           std::int32_t* positions) {
  TS_GRID_STRIDE(i, rows) {
    const std::int32_t id = ids[i];
    keys[i] = id >= 0 && id < vocab ? id : static_cast<std::int32_t>(vocab);
    positions[i] = static_cast<std::int32_t>(i);
  }
}
// Block (32, 8) per (sorted position blockIdx.x, 32 features blockIdx.y): the block at the first
// position of an id's run sums that run's rows, lane y taking every 8th, then a fixed-order sum of
// the 8 lanes; the other blocks return at once.
__global__ void word_embedding_runs_kernel(Index rows, Index vocab, Index dim, const std::int32_t* keys,
                                           const std::int32_t* positions, const float* diff_dst, float* diff_table) {
  __shared__ double shared[8][33];
  const Index first = blockIdx.x, e = blockIdx.y * 32 + threadIdx.x;
  const std::int32_t key = keys[first];
  if (key >= vocab || (first > 0 && keys[first - 1] == key)) return;
  double s = 0;
  if (e < dim)
    for (Index r = first + threadIdx.y; r < rows && keys[r] == key; r += 8)
      s += diff_dst[static_cast<Index>(positions[r]) * dim + e];
  shared[threadIdx.y][threadIdx.x] = s;
  __syncthreads();
  if (threadIdx.y == 0 && e < dim) {
    double total = 0;
    for (int y = 0; y < 8; ++y) total += shared[y][threadIdx.x];
    diff_table[static_cast<Index>(key) * dim + e] = static_cast<float>(total);
  }
}

// Bits of the sort keys: enough for 0..vocab (vocab marks a bad id).
int key_bits(Index vocab) {
  int bits = 1;
  while ((Index{1} << bits) <= vocab) ++bits;
  return bits;
}

// The word embedding's scratch: four arrays of `rows` int32 (keys and positions, before and after
// the sort), each 256-byte aligned, then the radix sort's own (sort_scratch_bytes).
std::size_t align_up(std::size_t bytes) {
  return (bytes + 255) / 256 * 256;
}
std::size_t sort_scratch_bytes(Index rows, Index vocab) {
  std::size_t bytes = 0;
  TS_CHECK_CUDA(
      cub::DeviceRadixSort::SortPairs(nullptr, bytes, static_cast<const std::int32_t*>(nullptr),
                                      static_cast<std::int32_t*>(nullptr), static_cast<const std::int32_t*>(nullptr),
                                      static_cast<std::int32_t*>(nullptr), static_cast<int>(rows), 0, key_bits(vocab)));
  return bytes;
}

constexpr int no_bad_row = 0x7f7f7f7f;  // what cudaMemsetAsync(p, 0x7f, sizeof(int)) writes

// One warp per row: the row's loss, its gradient (NaN for a row that cannot be trained on) and
// whether its first largest logit is the label's (std::max_element's choice).
__global__ void softmax_cross_entropy_stats_kernel(Index n, Index classes, const float* logits,
                                                   const std::int32_t* labels, double* row_loss, double* row_correct,
                                                   float* diff_logits, int* first_bad) {
  const Index row = (blockIdx.x * static_cast<Index>(blockDim.x) + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (row >= n) return;
  const float* x = logits + row * classes;
  const std::int32_t label = labels[row];
  if (label < 0 || label >= classes) {
    if (lane == 0) {
      atomicMin(first_bad, static_cast<int>(row));
      row_loss[row] = NAN;
      row_correct[row] = 0;
    }
    if (diff_logits)
      for (Index j = lane; j < classes; j += 32) diff_logits[row * classes + j] = NAN;
    return;
  }
  double max = -INFINITY;
  float best = -INFINITY;
  Index best_at = classes;  // none yet
  for (Index j = lane; j < classes; j += 32) {
    max = fmax(max, static_cast<double>(x[j]));
    if (best_at == classes || x[j] > best) {
      best = x[j];
      best_at = j;
    }
  }
  for (int offset = 16; offset > 0; offset /= 2) {
    max = fmax(max, __shfl_xor_sync(0xffffffffu, max, offset));
    const float other = __shfl_xor_sync(0xffffffffu, best, offset);
    const Index other_at = __shfl_xor_sync(0xffffffffu, best_at, offset);
    if (other_at < classes && (best_at == classes || other > best || (other == best && other_at < best_at))) {
      best = other;
      best_at = other_at;
    }
  }
  double sum = 0;
  for (Index j = lane; j < classes; j += 32) sum += exp(static_cast<double>(x[j]) - max);
  for (int offset = 16; offset > 0; offset /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, offset);
  const double log_sum = log(sum) + max;
  const double loss = log_sum - static_cast<double>(x[label]);
  if (lane == 0) {
    row_loss[row] = loss;
    row_correct[row] = best_at == label ? 1.0 : 0.0;
  }
  if (diff_logits)
    for (Index j = lane; j < classes; j += 32) {
      const double p = exp(static_cast<double>(x[j]) - log_sum);
      diff_logits[row * classes + j] =
          isfinite(loss) ? static_cast<float>((p - (j == label ? 1.0 : 0.0)) / static_cast<double>(n)) : NAN;
    }
}
// One warp: the rows' sums in a fixed order (as sum_partials_kernel).
__global__ void softmax_cross_entropy_finish_kernel(Index n, const double* row_loss, const double* row_correct,
                                                    const int* first_bad, double* stats) {
  const int lane = static_cast<int>(threadIdx.x % 32);
  double loss = 0, correct = 0;
  for (Index i = lane; i < n; i += 32) {
    loss += row_loss[i];
    correct += row_correct[i];
  }
  for (int offset = 16; offset > 0; offset /= 2) {
    loss += __shfl_xor_sync(0xffffffffu, loss, offset);
    correct += __shfl_xor_sync(0xffffffffu, correct, offset);
  }
  if (lane == 0) {
    stats[0] = loss;
    stats[1] = correct;
    stats[2] = first_bad[0] == no_bad_row ? 0.0 : static_cast<double>(first_bad[0]) + 1.0;
  }
}

__global__ void batch_norm_statistics_kernel(Index rows, Index c, const double* sum, const double* sum_squares,
                                             const float* gamma, const float* beta, float* save_mean, float* save_var,
                                             float* running_mean, float* running_var, double momentum, double epsilon,
                                             float* scale, float* shift) {
  TS_GRID_STRIDE(k, c) {
    double mean, var;
    if (sum) {
      const double count = static_cast<double>(rows);
      mean = sum[k] / count;
      var = fmax(0.0, sum_squares[k] / count - mean * mean);
      save_mean[k] = static_cast<float>(mean);
      save_var[k] = static_cast<float>(var);
      const double unbiased = rows > 1 ? var * count / (count - 1) : var;
      running_mean[k] = static_cast<float>((1 - momentum) * static_cast<double>(running_mean[k]) + momentum * mean);
      running_var[k] = static_cast<float>((1 - momentum) * static_cast<double>(running_var[k]) + momentum * unbiased);
    } else {
      mean = running_mean[k];
      var = running_var[k];
    }
    const double s = static_cast<double>(gamma[k]) / sqrt(var + epsilon);
    scale[k] = static_cast<float>(s);
    shift[k] = static_cast<float>(static_cast<double>(beta[k]) - mean * s);
  }
}
template <typename I>
__global__ void batch_norm_apply_kernel(I rows, I c, const float* src, const float* scale, const float* shift,
                                        float* dst, bool relu) {
  TS_GRID_STRIDE_I(i, rows * c) {
    const I k = i % c;
    const float y = fmaf(src[i], scale[k], shift[k]);
    dst[i] = relu ? fmaxf(y, 0.0f) : y;
  }
}
__global__ void batch_norm_backward_statistics_kernel(Index rows, Index c, const double* sum_dy, const double* sum_dy_x,
                                                      const float* save_mean, const float* save_var, double epsilon,
                                                      float* diff_gamma, float* diff_beta, double* mean,
                                                      double* inv_std, double* mean_dy, double* mean_dy_xhat) {
  TS_GRID_STRIDE(k, c) {
    const double m = save_mean[k], s = 1.0 / sqrt(static_cast<double>(save_var[k]) + epsilon);
    // sum dy * xhat = inv_std * (sum dy * x - mean * sum dy)
    const double dy_xhat = s * (sum_dy_x[k] - m * sum_dy[k]);
    diff_gamma[k] = static_cast<float>(dy_xhat);
    diff_beta[k] = static_cast<float>(sum_dy[k]);
    mean[k] = m;
    inv_std[k] = s;
    mean_dy[k] = sum_dy[k] / static_cast<double>(rows);
    mean_dy_xhat[k] = dy_xhat / static_cast<double>(rows);
  }
}
template <typename I>
__global__ void batch_norm_backward_data_kernel(I rows, I c, const float* src, const float* dy, const double* mean,
                                                const double* inv_std, const float* gamma, const double* mean_dy,
                                                const double* mean_dy_xhat, float* diff_src, const float* mask) {
  TS_GRID_STRIDE_I(i, rows * c) {
    const I k = i % c;
    const double xhat_scale = (static_cast<double>(src[i]) - mean[k]) * inv_std[k];
    const double g = mask && !(mask[i] > 0.0f) ? 0.0 : static_cast<double>(dy[i]);
    diff_src[i] = static_cast<float>(static_cast<double>(gamma[k]) * inv_std[k] *
                                     (g - mean_dy[k] - xhat_scale * mean_dy_xhat[k]));
  }
}

__global__ void sgd_kernel(Index count, float* param, const float* grad, float* velocity, float lr, float momentum,
                           float weight_decay, const float* factor) {
  const float f = factor ? *factor : 1.0f;
  if (f == 0.0f) return;
  TS_GRID_STRIDE(i, count) {
    const float g = f * grad[i] + weight_decay * param[i];
    const float v = momentum * velocity[i] + g;
    velocity[i] = v;
    param[i] -= lr * v;
  }
}
__global__ void adam_kernel(Index count, float* param, const float* grad, float* m, float* v, float step_size,
                            float beta1, float beta2, float sqrt_c2, float epsilon, float weight_decay,
                            const float* factor) {
  const float f = factor ? *factor : 1.0f;
  if (f == 0.0f) return;
  TS_GRID_STRIDE(i, count) {
    const float g = f * grad[i] + weight_decay * param[i];
    const float mi = beta1 * m[i] + (1.0f - beta1) * g;
    const float vi = beta2 * v[i] + (1.0f - beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    param[i] -= step_size * mi / (sqrtf(vi) / sqrt_c2 + epsilon);
  }
}
__global__ void step_factor_kernel(const double* sum_squares, double clip_norm, float* factor) {
  const double s = sum_squares[0];
  double f = 0;  // not finite: skip
  if (isfinite(s)) {
    const double norm = sqrt(s);
    f = clip_norm > 0 && norm > clip_norm ? fmax(clip_norm / norm, static_cast<double>(FLT_MIN)) : 1.0;
  }
  factor[0] = static_cast<float>(f);
}

}  // namespace

Index column_sums_scratch(Index rows, Index cols) {
  return 2 * column_sum_chunks(rows, cols) * cols;
}

namespace {
template <typename S>
void launch_bias_activation(Index rows, Index cols, const float* bias, const S* src, float* dst, bool relu,
                            cudaStream_t stream) {
  const Index count = rows * cols;
  if (fits_32(count))
    bias_activation_kernel<std::int32_t, S><<<blocks_for(count), threads, 0, stream>>>(
        static_cast<std::int32_t>(rows), static_cast<std::int32_t>(cols), bias, src, dst, relu);
  else
    bias_activation_kernel<Index, S><<<blocks_for(count), threads, 0, stream>>>(rows, cols, bias, src, dst, relu);
  TS_CHECK_LAUNCH();
}
}  // namespace
void bias_activation(Index rows, Index cols, const float* bias, float* dst, bool relu, cudaStream_t stream) {
  if (bias || relu) launch_bias_activation(rows, cols, bias, dst, dst, relu, stream);
}
void bias_activation(Index rows, Index cols, const float* bias, const bf16* src, float* dst, bool relu,
                     cudaStream_t stream) {
  launch_bias_activation(rows, cols, bias, src, dst, relu, stream);
}
void to_bf16(Index count, const float* src, bf16* dst, cudaStream_t stream) {
  convert_kernel<<<blocks_for(count), threads, 0, stream>>>(count, src, dst);
  TS_CHECK_LAUNCH();
}
void to_float(Index count, const bf16* src, float* dst, cudaStream_t stream) {
  convert_kernel<<<blocks_for(count), threads, 0, stream>>>(count, src, dst);
  TS_CHECK_LAUNCH();
}
void relu_forward(Index count, const float* src, float* dst, cudaStream_t stream) {
  relu_forward_kernel<<<blocks_for(count), threads, 0, stream>>>(count, src, dst);
  TS_CHECK_LAUNCH();
}
void relu_backward_to_bf16(Index count, const float* dst_of_relu, const float* src, bf16* dst, cudaStream_t stream) {
  relu_backward_to_bf16_kernel<<<blocks_for(count), threads, 0, stream>>>(count, dst_of_relu, src, dst);
  TS_CHECK_LAUNCH();
}
void relu_backward(Index count, const float* dst, const float* diff_dst, float* diff_src, cudaStream_t stream) {
  relu_backward_kernel<<<blocks_for(count), threads, 0, stream>>>(count, dst, diff_dst, diff_src);
  TS_CHECK_LAUNCH();
}
void add(Index count, const float* a, const float* b, float* dst, cudaStream_t stream) {
  add_kernel<<<blocks_for(count), threads, 0, stream>>>(count, a, b, dst);
  TS_CHECK_LAUNCH();
}
void multiply(Index count, const float* a, const float* b, float* dst, cudaStream_t stream) {
  multiply_kernel<<<blocks_for(count), threads, 0, stream>>>(count, a, b, dst);
  TS_CHECK_LAUNCH();
}
void scale(Index count, float* data, float factor, cudaStream_t stream) {
  scale_kernel<<<blocks_for(count), threads, 0, stream>>>(count, data, factor);
  TS_CHECK_LAUNCH();
}
void dropout_forward(Index count, double p, std::uint64_t seed, std::uint64_t first, const float* src, float* dst,
                     float* mask, cudaStream_t stream) {
  dropout_kernel<<<blocks_for(count), threads, 0, stream>>>(count, p, seed, first, src, dst, mask);
  TS_CHECK_LAUNCH();
}

void column_sums(Index rows, Index cols, const float* a, const float* b, double* sum_a, double* sum_ab, double* scratch,
                 cudaStream_t stream, const float* mask) {
  const Index chunks = column_sum_chunks(rows, cols);
  double* partial_a = scratch;
  double* partial_ab = scratch + chunks * cols;
  const dim3 grid(static_cast<unsigned>((cols + 31) / 32), static_cast<unsigned>(chunks));
  column_partials_kernel<<<grid, dim3(32, 32), 0, stream>>>(rows, cols, chunks, a, b, mask, sum_ab != nullptr,
                                                            partial_a, partial_ab);
  TS_CHECK_LAUNCH();
  column_finish_kernel<double>
      <<<blocks_for(32 * cols), threads, 0, stream>>>(cols, chunks, partial_a, partial_ab, sum_a, sum_ab);
  TS_CHECK_LAUNCH();
}
void column_sums(Index rows, Index cols, const float* a, float* sum_a, double* scratch, cudaStream_t stream,
                 const float* mask) {
  const Index chunks = column_sum_chunks(rows, cols);
  const dim3 grid(static_cast<unsigned>((cols + 31) / 32), static_cast<unsigned>(chunks));
  column_partials_kernel<<<grid, dim3(32, 32), 0, stream>>>(rows, cols, chunks, a, nullptr, mask, false, scratch,
                                                            nullptr);
  TS_CHECK_LAUNCH();
  column_finish_kernel<float><<<blocks_for(32 * cols), threads, 0, stream>>>(cols, chunks, scratch, nullptr, sum_a,
                                                                             static_cast<float*>(nullptr));
  TS_CHECK_LAUNCH();
}
void sum_squares(Index count, const float* data, double* total, double* scratch, cudaStream_t stream) {
  sum_squares_partials_kernel<<<reduction_blocks, threads, 0, stream>>>(count, data, scratch);
  TS_CHECK_LAUNCH();
  sum_partials_kernel<<<1, 32, 0, stream>>>(reduction_blocks, scratch, total);
  TS_CHECK_LAUNCH();
}

void weights_to_okc(Index out, Index in, Index k, const float* oik, float* oki, cudaStream_t stream) {
  weights_to_okc_kernel<<<blocks_for(out * in * k), threads, 0, stream>>>(out, in, k, oik, oki);
  TS_CHECK_LAUNCH();
}
void weights_to_okc(Index out, Index in, Index k, const float* oik, bf16* oki, cudaStream_t stream) {
  weights_to_okc_kernel<<<blocks_for(out * in * k), threads, 0, stream>>>(out, in, k, oik, oki);
  TS_CHECK_LAUNCH();
}
void weights_from_okc(Index out, Index in, Index k, const float* oki, float* oik, cudaStream_t stream) {
  weights_from_okc_kernel<<<blocks_for(out * in * k), threads, 0, stream>>>(out, in, k, oki, oik);
  TS_CHECK_LAUNCH();
}
void weights_from_okc(Index out, Index in, Index k, const bf16* oki, float* oik, cudaStream_t stream) {
  weights_from_okc_kernel<<<blocks_for(out * in * k), threads, 0, stream>>>(out, in, k, oki, oik);
  TS_CHECK_LAUNCH();
}

void onehot_conv_forward(Index n, Index t_in, Index alphabet, Index out, Index k, const std::uint8_t* codes,
                         const float* weights, const float* bias, float* dst, bool relu, float* transposed,
                         cudaStream_t stream) {
  const Index t_out = t_in - k + 1;
  onehot_transpose_kernel<<<blocks_for(out * alphabet * k), threads, 0, stream>>>(out, alphabet, k, weights,
                                                                                  transposed);
  TS_CHECK_LAUNCH();
  weights = transposed;
  TS_LAUNCH_INDEXED(onehot_conv_forward_kernel, std::max(n * t_in * out, out * alphabet * k),
                    blocks_for(n * t_out * out), threads, stream, n, t_in, t_out, alphabet, out, k, codes, weights,
                    bias, dst, relu);
}
void onehot_unfold(Index row0, Index rows, Index t_in, Index t_out, Index alphabet, Index k, const std::uint8_t* codes,
                   float* unfolded, cudaStream_t stream) {
  const Index positions = row0 + rows, samples = (positions + t_out - 1) / t_out;
  TS_LAUNCH_INDEXED(onehot_unfold_kernel, std::max({rows * alphabet * k, samples * t_in, positions}),
                    blocks_for(rows * alphabet * k), threads, stream, row0, rows, t_in, t_out, alphabet, k, codes,
                    unfolded);
}

namespace {

// The grid of the fused one-hot kernels: blocks of 32 output channels (x) by chunks of rows of the
// pooled output (y). Rows per chunk are a fixed function of the row count (the backward's partial
// sums, hence its rounding, depend on it), with at most 65,535 chunks (the grid's y limit).
struct OneHotGrid {
  Index t_pool, rows, per_block, chunks, tiles;
  OneHotGrid(Index n, Index t_in, Index out, Index k, Index pool_kernel, Index pool_stride)
      : t_pool((t_in - k + 1 - pool_kernel) / pool_stride + 1),
        rows(n * t_pool),
        per_block(std::max<Index>(1024, (rows + 65534) / 65535)),
        chunks((rows + per_block - 1) / per_block),
        tiles((out + onehot_tile - 1) / onehot_tile) {}
  [[nodiscard]] dim3 grid() const { return {static_cast<unsigned>(tiles), static_cast<unsigned>(chunks)}; }
};

// Shared memory for a (K, A, 32) slice, 0 when it does not fit (the kernels then use global memory).
// Slices over 48 KiB need the kernel's opt-in, granted once per size (one device per process).
template <typename Kernel>
std::size_t onehot_shared_bytes(Kernel kernel, Index alphabet, Index k) {
  static std::size_t granted = 48 * 1024, limit = 0;
  const auto bytes = static_cast<std::size_t>(k * alphabet * onehot_tile) * sizeof(float);
  if (bytes <= granted) return bytes;
  if (limit == 0) {
    int device = 0, optin = 0;
    TS_CHECK_CUDA(cudaGetDevice(&device));
    TS_CHECK_CUDA(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, device));
    limit = static_cast<std::size_t>(optin);
  }
  if (bytes > limit) return 0;
  TS_CHECK_CUDA(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
  granted = bytes;
  return bytes;
}

}  // namespace

void onehot_pool_forward(Index n, Index t_in, Index alphabet, Index out, Index k, Index pool_kernel, Index pool_stride,
                         const std::uint8_t* codes, const float* weights, const float* bias, float* dst,
                         std::uint8_t* winners, float* transposed, cudaStream_t stream) {
  const OneHotGrid g(n, t_in, out, k, pool_kernel, pool_stride);
  onehot_transpose_kernel<<<blocks_for(out * alphabet * k), threads, 0, stream>>>(out, alphabet, k, weights,
                                                                                  transposed);
  TS_CHECK_LAUNCH();
  const std::size_t shared = onehot_shared_bytes(onehot_pool_forward_kernel<true>, alphabet, k);
  auto* kernel = shared ? onehot_pool_forward_kernel<true> : onehot_pool_forward_kernel<false>;
  kernel<<<g.grid(), onehot_tile * onehot_warps, shared, stream>>>(g.rows, g.per_block, g.t_pool, t_in, alphabet, out,
                                                                   k, pool_kernel, pool_stride, codes, transposed, bias,
                                                                   dst, winners);
  TS_CHECK_LAUNCH();
}

Index onehot_pool_backward_scratch(Index n, Index t_in, Index alphabet, Index out, Index k, Index pool_kernel,
                                   Index pool_stride) {
  const OneHotGrid g(n, t_in, out, k, pool_kernel, pool_stride);
  return g.chunks * (g.tiles * k * alphabet * onehot_tile + out);
}

void onehot_pool_backward(Index n, Index t_in, Index alphabet, Index out, Index k, Index pool_kernel, Index pool_stride,
                          const std::uint8_t* codes, const float* dst, const float* diff_dst,
                          const std::uint8_t* winners, float* diff_weights, float* diff_bias, float* scratch,
                          cudaStream_t stream) {
  const OneHotGrid g(n, t_in, out, k, pool_kernel, pool_stride);
  float* partial = scratch;
  float* partial_bias = scratch + g.chunks * g.tiles * k * alphabet * onehot_tile;
  const std::size_t shared = onehot_shared_bytes(onehot_pool_backward_kernel<true>, alphabet, k);
  auto* kernel = shared ? onehot_pool_backward_kernel<true> : onehot_pool_backward_kernel<false>;
  kernel<<<g.grid(), onehot_tile * onehot_warps, shared, stream>>>(g.rows, g.per_block, g.t_pool, t_in, alphabet, out,
                                                                   k, pool_stride, codes, dst, diff_dst, winners,
                                                                   partial, partial_bias);
  TS_CHECK_LAUNCH();
  onehot_pool_finish_kernel<<<blocks_for(g.tiles * k * alphabet * onehot_tile), threads, 0, stream>>>(
      g.chunks, g.tiles, alphabet, out, k, partial, partial_bias, diff_weights, diff_bias);
  TS_CHECK_LAUNCH();
}

void max_pool_forward(Index n, Index t_in, Index c, Index kernel, Index stride, Index pad, const float* src, float* dst,
                      std::int32_t* winners, cudaStream_t stream) {
  const Index t_out = (t_in + 2 * pad - kernel) / stride + 1;
  TS_LAUNCH_INDEXED(max_pool_forward_kernel, std::max(n * t_in, n * t_out) * c + kernel, blocks_for(n * t_out * c),
                    threads, stream, n, t_in, c, kernel, stride, pad, t_out, src, dst, winners);
}
void max_pool_backward(Index n, Index t_in, Index c, Index kernel, Index stride, Index pad, const float* diff_dst,
                       const std::int32_t* winners, float* diff_src, cudaStream_t stream) {
  const Index t_out = (t_in + 2 * pad - kernel) / stride + 1;
  TS_LAUNCH_INDEXED(max_pool_backward_kernel, std::max(n * t_in, n * t_out) * c + kernel, blocks_for(n * t_in * c),
                    threads, stream, n, t_in, c, kernel, stride, pad, t_out, diff_dst, winners, diff_src);
}

void kmax_forward(Index n, Index t, Index c, Index k, const float* src, float* dst, std::int32_t* indices,
                  cudaStream_t stream) {
  if (k > kmax_limit || k > t)
    throw Error("k-max pooling on the GPU needs k <= " + std::to_string(kmax_limit) + " and k <= T (k " +
                std::to_string(k) + ", T " + std::to_string(t) + ")");
  kmax_forward_kernel<<<blocks_for(n * c), threads, 0, stream>>>(n, t, c, k, src, dst, indices);
  TS_CHECK_LAUNCH();
}
void kmax_backward(Index n, Index t, Index c, Index k, const float* diff_dst, const std::int32_t* indices,
                   float* diff_src, cudaStream_t stream) {
  TS_CHECK_CUDA(cudaMemsetAsync(diff_src, 0, static_cast<std::size_t>(n * t * c) * sizeof(float), stream));
  kmax_backward_kernel<<<blocks_for(n * k * c), threads, 0, stream>>>(n, t, c, k, diff_dst, indices, diff_src);
  TS_CHECK_LAUNCH();
}

void embedding_forward(Index rows, Index dim, const std::uint8_t* codes, const float* table, float* dst,
                       cudaStream_t stream) {
  embedding_forward_kernel<<<blocks_for(rows * dim), threads, 0, stream>>>(rows, dim, codes, table, dst);
  TS_CHECK_LAUNCH();
}
Index embedding_backward_scratch(Index rows, Index vocab, Index dim) {
  return column_chunks(rows) * vocab * dim;
}
void embedding_backward(Index rows, Index vocab, Index dim, const std::uint8_t* codes, const float* diff_dst,
                        float* diff_table, double* scratch, cudaStream_t stream) {
  const Index chunks = column_chunks(rows);
  const dim3 grid(static_cast<unsigned>((dim + 31) / 32), static_cast<unsigned>(vocab), static_cast<unsigned>(chunks));
  embedding_partials_kernel<<<grid, dim3(32, 32), 0, stream>>>(rows, vocab, dim, chunks, codes, diff_dst, scratch);
  TS_CHECK_LAUNCH();
  column_finish_kernel<float><<<blocks_for(32 * vocab * dim), threads, 0, stream>>>(
      vocab * dim, chunks, scratch, nullptr, diff_table, static_cast<float*>(nullptr));
  TS_CHECK_LAUNCH();
}

void embedding_forward(Index rows, Index vocab, Index dim, const std::int32_t* ids, const float* table, float* dst,
                       cudaStream_t stream) {
  word_embedding_forward_kernel<<<blocks_for(rows * dim), threads, 0, stream>>>(rows, vocab, dim, ids, table, dst);
  TS_CHECK_LAUNCH();
}
std::size_t word_embedding_backward_scratch(Index rows, Index vocab) {
  return 4 * align_up(static_cast<std::size_t>(rows) * sizeof(std::int32_t)) + sort_scratch_bytes(rows, vocab);
}
void embedding_backward(Index rows, Index vocab, Index dim, const std::int32_t* ids, const float* diff_dst,
                        float* diff_table, void* scratch, cudaStream_t stream) {
  if (rows > std::numeric_limits<std::int32_t>::max() || vocab >= std::numeric_limits<std::int32_t>::max())
    throw Error("word embedding: " + std::to_string(rows) + " positions or a table of " + std::to_string(vocab) +
                " rows exceed 32-bit indices");
  TS_CHECK_CUDA(cudaMemsetAsync(diff_table, 0, static_cast<std::size_t>(vocab * dim) * sizeof(float), stream));
  if (rows == 0) return;
  const std::size_t array = align_up(static_cast<std::size_t>(rows) * sizeof(std::int32_t));
  auto* base = static_cast<unsigned char*>(scratch);
  auto* keys_in = reinterpret_cast<std::int32_t*>(base);
  auto* keys = reinterpret_cast<std::int32_t*>(base + array);
  auto* positions_in = reinterpret_cast<std::int32_t*>(base + 2 * array);
  auto* positions = reinterpret_cast<std::int32_t*>(base + 3 * array);
  std::size_t sort_bytes = sort_scratch_bytes(rows, vocab);
  word_embedding_keys_kernel<<<blocks_for(rows), threads, 0, stream>>>(rows, vocab, ids, keys_in, positions_in);
  TS_CHECK_LAUNCH();
  TS_CHECK_CUDA(cub::DeviceRadixSort::SortPairs(base + 4 * array, sort_bytes, keys_in, keys, positions_in, positions,
                                                static_cast<int>(rows), 0, key_bits(vocab), stream));
  const dim3 grid(static_cast<unsigned>(rows), static_cast<unsigned>((dim + 31) / 32));
  word_embedding_runs_kernel<<<grid, dim3(32, 8), 0, stream>>>(rows, vocab, dim, keys, positions, diff_dst, diff_table);
  TS_CHECK_LAUNCH();
}

void softmax_cross_entropy_stats(Index n, Index classes, const float* logits, const std::int32_t* labels,
                                 float* diff_logits, double* stats, double* scratch, cudaStream_t stream) {
  int* first_bad = reinterpret_cast<int*>(scratch + 2 * n);
  TS_CHECK_CUDA(cudaMemsetAsync(first_bad, 0x7f, sizeof(int), stream));
  if (n > 0) {
    const auto grid = static_cast<unsigned>((n * 32 + threads - 1) / threads);
    softmax_cross_entropy_stats_kernel<<<grid, threads, 0, stream>>>(n, classes, logits, labels, scratch, scratch + n,
                                                                     diff_logits, first_bad);
    TS_CHECK_LAUNCH();
  }
  softmax_cross_entropy_finish_kernel<<<1, 32, 0, stream>>>(n, scratch, scratch + n, first_bad, stats);
  TS_CHECK_LAUNCH();
}

void batch_norm_statistics(Index rows, Index c, const double* sum, const double* sum_squares, const float* gamma,
                           const float* beta, float* save_mean, float* save_var, float* running_mean,
                           float* running_var, double momentum, double epsilon, float* scale, float* shift,
                           cudaStream_t stream) {
  batch_norm_statistics_kernel<<<blocks_for(c), threads, 0, stream>>>(rows, c, sum, sum_squares, gamma, beta, save_mean,
                                                                      save_var, running_mean, running_var, momentum,
                                                                      epsilon, scale, shift);
  TS_CHECK_LAUNCH();
}
void batch_norm_apply(Index rows, Index c, const float* src, const float* scale, const float* shift, float* dst,
                      bool relu, cudaStream_t stream) {
  TS_LAUNCH_INDEXED(batch_norm_apply_kernel, rows * c, blocks_for(rows * c), threads, stream, rows, c, src, scale,
                    shift, dst, relu);
}
void batch_norm_backward_statistics(Index rows, Index c, const double* sum_dy, const double* sum_dy_x,
                                    const float* save_mean, const float* save_var, double epsilon, float* diff_gamma,
                                    float* diff_beta, double* mean, double* inv_std, double* mean_dy,
                                    double* mean_dy_xhat, cudaStream_t stream) {
  batch_norm_backward_statistics_kernel<<<blocks_for(c), threads, 0, stream>>>(rows, c, sum_dy, sum_dy_x, save_mean,
                                                                               save_var, epsilon, diff_gamma, diff_beta,
                                                                               mean, inv_std, mean_dy, mean_dy_xhat);
  TS_CHECK_LAUNCH();
}
void batch_norm_backward_data(Index rows, Index c, const float* src, const float* dy, const double* mean,
                              const double* inv_std, const float* gamma, const double* mean_dy,
                              const double* mean_dy_xhat, float* diff_src, cudaStream_t stream, const float* mask) {
  TS_LAUNCH_INDEXED(batch_norm_backward_data_kernel, rows * c, blocks_for(rows * c), threads, stream, rows, c, src, dy,
                    mean, inv_std, gamma, mean_dy, mean_dy_xhat, diff_src, mask);
}

void sgd_step(Index count, float* param, const float* grad, float* velocity, float lr, float momentum,
              float weight_decay, const float* factor, cudaStream_t stream) {
  sgd_kernel<<<blocks_for(count), threads, 0, stream>>>(count, param, grad, velocity, lr, momentum, weight_decay,
                                                        factor);
  TS_CHECK_LAUNCH();
}
void adam_step(Index count, float* param, const float* grad, float* m, float* v, float step_size, float beta1,
               float beta2, float sqrt_c2, float epsilon, float weight_decay, const float* factor,
               cudaStream_t stream) {
  adam_kernel<<<blocks_for(count), threads, 0, stream>>>(count, param, grad, m, v, step_size, beta1, beta2, sqrt_c2,
                                                         epsilon, weight_decay, factor);
  TS_CHECK_LAUNCH();
}
void step_factor(const double* sum_squares, double clip_norm, float* factor, cudaStream_t stream) {
  step_factor_kernel<<<1, 1, 0, stream>>>(sum_squares, clip_norm, factor);
  TS_CHECK_LAUNCH();
}

// --- Recurrent layers and sequence pooling -----------------------------------------------------

namespace {

// Block blockIdx.y of the parameters, its elements over blockIdx.x's threads.
__global__ void rnn_to_packed_kernel(const RnnBlock* blocks, const float* weights, const float* bias, float* packed) {
  const RnnBlock b = blocks[blockIdx.y];
  const float* from = (b.bias ? bias : weights) + b.canonical;
  for (Index i = blockIdx.x * static_cast<Index>(blockDim.x) + threadIdx.x; i < b.count;
       i += static_cast<Index>(blockDim.x) * gridDim.x)
    packed[b.packed + i] = from[i];
}
__global__ void rnn_from_packed_kernel(const RnnBlock* blocks, const float* packed, float* weights, float* bias) {
  const RnnBlock b = blocks[blockIdx.y];
  float* to = (b.bias ? bias : weights) + b.canonical;
  for (Index i = blockIdx.x * static_cast<Index>(blockDim.x) + threadIdx.x; i < b.count;
       i += static_cast<Index>(blockDim.x) * gridDim.x)
    to[i] = packed[b.packed + i];
}
__global__ void rnn_lengths_kernel(Index n, Index t, const std::int32_t* lengths, std::int32_t* cudnn_lengths) {
  TS_GRID_STRIDE(i, n) cudnn_lengths[i] = lengths ? max(lengths[i], 1) : static_cast<std::int32_t>(t);
}
template <typename I>
__global__ void mask_padding_kernel(I n, I t, I c, const std::int32_t* lengths, const float* src, float* dst) {
  TS_GRID_STRIDE_I(i, n * t * c) {
    const I position = i / c, row = position / t, step = position % t;
    if (step >= lengths[row])
      dst[i] = 0.0f;
    else if (src != dst)
      dst[i] = src[i];
  }
}

// One thread per (row, channel), channels fastest: the loops of Backend::sequence_pool_forward.
__global__ void sequence_pool_forward_kernel(engine::SequencePooling mode, Index n, Index t, Index c, Index block,
                                             const float* src, const std::int32_t* lengths, float* dst,
                                             std::int32_t* argmax) {
  TS_GRID_STRIDE(i, n * c) {
    const Index row = i / c, k = i % c;
    const Index length = min(lengths ? static_cast<Index>(lengths[row]) : t, t);  // min: never past the row
    const float* x = src + row * t * c + k;
    if (length <= 0) {
      dst[i] = 0.0f;
      if (mode == engine::SequencePooling::max && argmax) argmax[i] = -1;
      continue;
    }
    switch (mode) {
      case engine::SequencePooling::last:
        dst[i] = x[(k / block == 0 ? length - 1 : 0) * c];
        break;
      case engine::SequencePooling::max: {
        Index best = 0;
        for (Index step = 1; step < length; ++step)
          if (x[step * c] > x[best * c]) best = step;
        dst[i] = x[best * c];
        if (argmax) argmax[i] = static_cast<std::int32_t>(best);
        break;
      }
      case engine::SequencePooling::mean: {  // the host's fp32 additions in its order, IEEE division
        float sum = 0.0f;
        for (Index step = 0; step < length; ++step) sum = __fadd_rn(sum, x[step * c]);
        dst[i] = __fdiv_rn(sum, static_cast<float>(length));
        break;
      }
    }
  }
}
// One thread per element of diff_src: its share of its row's gradient, or 0.
template <typename I>
__global__ void sequence_pool_backward_kernel(engine::SequencePooling mode, I n, I t, I c, I block,
                                              const std::int32_t* lengths, const std::int32_t* argmax,
                                              const float* diff_dst, float* diff_src) {
  TS_GRID_STRIDE_I(i, n * t * c) {
    const I k = i % c, position = i / c, row = position / t, step = position % t;
    const I length = min(lengths ? static_cast<I>(lengths[row]) : t, t);
    float value = 0.0f;
    if (step < length) {
      const float grad = diff_dst[row * c + k];
      switch (mode) {
        case engine::SequencePooling::last:
          if (step == (k / block == 0 ? length - 1 : 0)) value = grad;
          break;
        case engine::SequencePooling::max:
          if (step == argmax[row * c + k]) value = grad;
          break;
        case engine::SequencePooling::mean:
          value = __fdiv_rn(grad, static_cast<float>(length));
          break;
      }
    }
    diff_src[i] = value;
  }
}

// Blocks of the grid's x dimension for `count` elements of each parameter block.
unsigned rnn_grid_x(Index largest) {
  return static_cast<unsigned>(std::clamp<Index>((largest + threads - 1) / threads, 1, 4096));
}

}  // namespace

void rnn_to_packed(const RnnBlock* blocks, int block_count, Index largest, const float* weights, const float* bias,
                   float* packed, cudaStream_t stream) {
  if (block_count == 0) return;
  const dim3 grid(rnn_grid_x(largest), static_cast<unsigned>(block_count));
  rnn_to_packed_kernel<<<grid, threads, 0, stream>>>(blocks, weights, bias, packed);
  TS_CHECK_LAUNCH();
}
void rnn_from_packed(const RnnBlock* blocks, int block_count, Index largest, const float* packed, float* weights,
                     float* bias, cudaStream_t stream) {
  if (block_count == 0) return;
  const dim3 grid(rnn_grid_x(largest), static_cast<unsigned>(block_count));
  rnn_from_packed_kernel<<<grid, threads, 0, stream>>>(blocks, packed, weights, bias);
  TS_CHECK_LAUNCH();
}
void rnn_lengths(Index n, Index t, const std::int32_t* lengths, std::int32_t* cudnn_lengths, cudaStream_t stream) {
  rnn_lengths_kernel<<<blocks_for(n), threads, 0, stream>>>(n, t, lengths, cudnn_lengths);
  TS_CHECK_LAUNCH();
}
void mask_padding(Index n, Index t, Index c, const std::int32_t* lengths, const float* src, float* dst,
                  cudaStream_t stream) {
  if (n * t * c == 0) return;
  TS_LAUNCH_INDEXED(mask_padding_kernel, n * t * c, blocks_for(n * t * c), threads, stream, n, t, c, lengths, src, dst);
}

void sequence_pool_forward(engine::SequencePooling mode, Index n, Index t, Index c, Index directions, const float* src,
                           const std::int32_t* lengths, float* dst, std::int32_t* argmax, cudaStream_t stream) {
  if (directions < 1 || c % directions != 0)
    throw Error("sequence pooling: " + std::to_string(c) + " channels do not split into " + std::to_string(directions) +
                " directions");
  if (n * c == 0) return;
  sequence_pool_forward_kernel<<<blocks_for(n * c), threads, 0, stream>>>(mode, n, t, c, c / directions, src, lengths,
                                                                          dst, argmax);
  TS_CHECK_LAUNCH();
}
void sequence_pool_backward(engine::SequencePooling mode, Index n, Index t, Index c, Index directions,
                            const std::int32_t* lengths, const std::int32_t* argmax, const float* diff_dst,
                            float* diff_src, cudaStream_t stream) {
  if (directions < 1 || c % directions != 0)
    throw Error("sequence pooling: " + std::to_string(c) + " channels do not split into " + std::to_string(directions) +
                " directions");
  if (n * t * c == 0) return;
  TS_LAUNCH_INDEXED(sequence_pool_backward_kernel, n * t * c, blocks_for(n * t * c), threads, stream, mode, n, t, c,
                    c / directions, lengths, argmax, diff_dst, diff_src);
}

}  // namespace textscale::cuda::kernels

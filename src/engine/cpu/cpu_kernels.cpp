#include "cpu_kernels.h"

#include <omp.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "textscale/common/error.h"
#include "textscale/engine/buffer.h"
#include "textscale/engine/dropout_mask.h"

namespace textscale::engine::cpu {

namespace {

// One output position of the one-hot convolution: out = bias + sum of the K weight rows that the
// codes select (K rows of the (K, A, C_out) weights), then an optional ReLU.
TS_VECTOR_CLONES void gather_row(float* out, const float* w, const std::uint8_t* codes, Index k, Index a, Index o,
                                 const float* bias, bool relu) {
  // The null test stays outside the loops here and below: `bias ? bias[i] : 0` inside a vectorised
  // loop becomes a masked load from the null pointer, whose suppressed faults are slow.
  if (bias)
    std::copy(bias, bias + o, out);
  else
    std::fill(out, out + o, 0.0f);
  for (Index j = 0; j < k; ++j) {
    const Index code = codes[j];
    if (code == 0) continue;
    const float* column = w + (j * a + code - 1) * o;
    for (Index oc = 0; oc < o; ++oc) out[oc] += column[oc];
  }
  if (relu)
    for (Index oc = 0; oc < o; ++oc) out[oc] = std::max(out[oc], 0.0f);
}

// Channels [begin, end) of the one-hot convolution's weight gradient, over all positions.
TS_VECTOR_CLONES void scatter_slice(float* g, const float* diff_dst, const std::uint8_t* codes, Index rows, Index t_out,
                                    Index t_in, Index k, Index a, Index o, Index begin, Index end) {
  for (Index row = 0; row < rows; ++row) {
    const Index n = row / t_out, t = row % t_out;
    const float* grad = diff_dst + row * o;
    for (Index j = 0; j < k; ++j) {
      const Index code = codes[n * t_in + t + j];
      if (code == 0) continue;
      float* column = g + (j * a + code - 1) * o;
      for (Index oc = begin; oc < end; ++oc) column[oc] += grad[oc];
    }
  }
}

TS_VECTOR_CLONES void add_rows(float* sums, const float* data, Index rows, Index columns, Index begin, Index end) {
  for (Index r = 0; r < rows; ++r)
    for (Index c = begin; c < end; ++c) sums[c] += data[r * columns + c];
}

// Max pooling of the fused one-hot block, one more position of a window: `out` keeps the larger
// value (the earlier position on ties), `winner` the window offset it came from.
TS_VECTOR_CLONES void pool_candidate(float* __restrict out, std::uint8_t* __restrict winner,
                                     const float* __restrict candidate, Index o, std::uint8_t offset) {
  if (winner) {
    for (Index oc = 0; oc < o; ++oc) {
      const bool wins = candidate[oc] > out[oc];
      out[oc] = wins ? candidate[oc] : out[oc];
      winner[oc] = wins ? offset : winner[oc];
    }
  } else {
    for (Index oc = 0; oc < o; ++oc) out[oc] = std::max(out[oc], candidate[oc]);
  }
}

// The fused block's gradients for `lanes` channels, window offset `offset` of one output row: the
// gradient of the channels whose winner is there (and whose output is positive) is added to the
// bias and to the K rows of `acc` (K * A, lanes) that the codes at that position select.
TS_VECTOR_CLONES void scatter_winners(float* __restrict acc, float* __restrict bias, float* __restrict masked,
                                      const float* __restrict grad, const float* __restrict out,
                                      const std::uint8_t* __restrict winner, const std::uint8_t* codes, Index k,
                                      Index a, Index lanes, std::uint8_t offset) {
  // Branch-free (the winners are data: a branch per lane mispredicted a third of the time).
#pragma omp simd
  for (Index l = 0; l < lanes; ++l) {
    const bool takes = (winner[l] == offset) & (out[l] > 0.0f);
    masked[l] = takes ? grad[l] : 0.0f;
  }
  for (Index l = 0; l < lanes; ++l) bias[l] += masked[l];
  for (Index j = 0; j < k; ++j) {
    const Index code = codes[j];
    if (code == 0) continue;
    float* row = acc + (j * a + code - 1) * lanes;
    for (Index l = 0; l < lanes; ++l) row[l] += masked[l];
  }
}

TS_VECTOR_CLONES void relu_chunk(const float* src, float* dst, Index count) {
  for (Index i = 0; i < count; ++i) dst[i] = std::max(src[i], 0.0f);
}
TS_VECTOR_CLONES void relu_backward_chunk(const float* dst, const float* diff_dst, float* diff_src, Index count) {
  for (Index i = 0; i < count; ++i) diff_src[i] = dst[i] > 0.0f ? diff_dst[i] : 0.0f;
}
TS_VECTOR_CLONES void add_chunk(const float* a, const float* b, float* dst, Index count) {
  for (Index i = 0; i < count; ++i) dst[i] = a[i] + b[i];
}
TS_VECTOR_CLONES void multiply_chunk(const float* a, const float* b, float* dst, Index count) {
  for (Index i = 0; i < count; ++i) dst[i] = a[i] * b[i];
}
TS_VECTOR_CLONES void sgd_chunk(float* param, const float* grad, float* velocity, float rate, float mu, float wd,
                                float f, Index count) {
  for (Index i = 0; i < count; ++i) {
    const float g = f * grad[i] + wd * param[i];
    velocity[i] = mu * velocity[i] + g;
    param[i] -= rate * velocity[i];
  }
}
TS_VECTOR_CLONES void adam_chunk(float* param, const float* grad, float* m, float* v, float b1, float b2, float wd,
                                 float step_size, float sqrt_c2, float eps, float f, Index count) {
  for (Index i = 0; i < count; ++i) {
    const float g = f * grad[i] + wd * param[i];
    m[i] = b1 * m[i] + (1.0f - b1) * g;
    v[i] = b2 * v[i] + (1.0f - b2) * g * g;
    param[i] -= step_size * m[i] / (std::sqrt(v[i]) / sqrt_c2 + eps);
  }
}

// Runs fn(begin, count) over [0, count) in blocks of a fixed size spread over the threads.
template <typename Fn>
void parallel_blocks(Index count, Fn fn) {
  constexpr Index block = 1 << 14;
  const Index blocks = (count + block - 1) / block;
#pragma omp parallel for schedule(static)
  for (Index b = 0; b < blocks; ++b) fn(b * block, std::min(block, count - b * block));
}

// The one-hot convolution's weights as (K, A, C_out): for a code, the C_out weights of one kernel
// tap are contiguous, so forward adds K contiguous rows per output position.
struct GatherWeights final : OpState {
  Buffer<float> transposed;
};

Buffer<float>& gather_buffer(OpStatePtr& state, std::size_t count) {
  if (!state) state = std::make_unique<GatherWeights>();
  auto& buffer = static_cast<GatherWeights&>(*state).transposed;
  if (buffer.size() != count) buffer.resize(count);
  return buffer;
}

// weights (O, A, K) -> w (K, A, O), the layout gather_row reads.
void gather_weights(const float* weights, Index a, Index k, Index o, float* w) {
#pragma omp parallel for schedule(static)
  for (Index oc = 0; oc < o; ++oc)
    for (Index c = 0; c < a; ++c)
      for (Index j = 0; j < k; ++j) w[(j * a + c) * o + oc] = weights[(oc * a + c) * k + j];
}

void check_codes(const std::uint8_t* codes, Index count, Index alphabet) {
  for (Index i = 0; i < count; ++i)
    if (codes[i] > alphabet)
      throw Error("character code " + std::to_string(codes[i]) + " outside the model's alphabet of " +
                  std::to_string(alphabet));
}

}  // namespace

void onehot_conv1d_forward(OpStatePtr& state, const Conv1dShape& s, const std::uint8_t* codes, const float* weights,
                           const float* bias, float* dst, bool relu) {
  const Index a = s.c_in, k = s.kernel, o = s.c_out, t_out = s.t_out();
  check_codes(codes, s.n * s.t_in, a);
  float* w = gather_buffer(state, static_cast<std::size_t>(s.weights_count())).data();
  gather_weights(weights, a, k, o, w);
#pragma omp parallel for schedule(static)
  for (Index row = 0; row < s.n * t_out; ++row) {
    const Index n = row / t_out, t = row % t_out;
    gather_row(dst + row * o, w, codes + n * s.t_in + t, k, a, o, bias, relu);
  }
}

void onehot_conv1d_backward_weights(OpStatePtr& state, const Conv1dShape& s, const std::uint8_t* codes,
                                    const float* diff_dst, float* diff_weights, float* diff_bias) {
  const Index a = s.c_in, k = s.kernel, o = s.c_out, t_out = s.t_out(), rows = s.n * t_out;
  auto& wt = gather_buffer(state, static_cast<std::size_t>(s.weights_count()));
  wt.zero();
  float* g = wt.data();
  // Threads own disjoint slices of output channels and scan every position: no atomics, and the
  // summation order per weight is the same for any thread count.
  constexpr Index slice = 32;
  const Index slices = (o + slice - 1) / slice;
#pragma omp parallel for schedule(static)
  for (Index sl = 0; sl < slices; ++sl) {
    const Index begin = sl * slice, end = std::min(o, begin + slice);
    scatter_slice(g, diff_dst, codes, rows, t_out, s.t_in, k, a, o, begin, end);
  }
#pragma omp parallel for schedule(static)
  for (Index oc = 0; oc < o; ++oc)
    for (Index c = 0; c < a; ++c)
      for (Index j = 0; j < k; ++j) diff_weights[(oc * a + c) * k + j] = g[(j * a + c) * o + oc];
  if (diff_bias) column_sums(rows, o, diff_dst, diff_bias);
}

namespace {

// The fused one-hot block: the transposed weights (as GatherWeights) and the winners' offsets in
// their windows, (N, T_pool, C_out), from the last training forward pass.
struct OneHotPoolState final : OpState {
  Buffer<float> transposed;
  std::vector<std::uint8_t> winners;
  OneHotPoolShape shape;
  bool trained = false;
};

OneHotPoolState& onehot_pool_state(OpStatePtr& state, const OneHotPoolShape& s) {
  if (s.conv.stride != 1 || s.conv.pad != 0) throw Error("one-hot convolution: stride 1 and no padding only");
  if (s.pool_kernel < 1 || s.pool_kernel > 255 || s.pool_stride < 1 || s.pool().t_out() < 1)
    throw Error("one-hot convolution with pooling: window 1 to 255, stride >= 1, at least one output");
  if (!dynamic_cast<OneHotPoolState*>(state.get())) state = std::make_unique<OneHotPoolState>();
  return static_cast<OneHotPoolState&>(*state);
}

}  // namespace

void onehot_conv1d_relu_pool_forward(OpStatePtr& state, const OneHotPoolShape& s, const std::uint8_t* codes,
                                     const float* weights, const float* bias, float* dst, bool training) {
  const Conv1dShape& c = s.conv;
  const Index a = c.c_in, k = c.kernel, o = c.c_out, t_pool = s.pool().t_out(), rows = c.n * t_pool;
  auto& st = onehot_pool_state(state, s);
  check_codes(codes, c.n * c.t_in, a);
  if (st.transposed.size() != static_cast<std::size_t>(c.weights_count()))
    st.transposed.resize(static_cast<std::size_t>(c.weights_count()));
  float* w = st.transposed.data();
  gather_weights(weights, a, k, o, w);
  std::uint8_t* winners = nullptr;
  if (training) {
    st.winners.assign(static_cast<std::size_t>(rows * o), 0);
    winners = st.winners.data();
  }
  st.shape = s;
  st.trained = training;
#pragma omp parallel
  {
    std::vector<float> candidate(static_cast<std::size_t>(o));
#pragma omp for schedule(static)
    for (Index row = 0; row < rows; ++row) {
      const Index n = row / t_pool, first = (row % t_pool) * s.pool_stride;
      const std::uint8_t* sample = codes + n * c.t_in;
      float* out = dst + row * o;
      gather_row(out, w, sample + first, k, a, o, bias, true);
      for (Index offset = 1; offset < s.pool_kernel; ++offset) {
        gather_row(candidate.data(), w, sample + first + offset, k, a, o, bias, true);
        pool_candidate(out, winners ? winners + row * o : nullptr, candidate.data(), o,
                       static_cast<std::uint8_t>(offset));
      }
    }
  }
}

void onehot_conv1d_relu_pool_backward_weights(OpStatePtr& state, const OneHotPoolShape& s, const std::uint8_t* codes,
                                              const float* dst, const float* diff_dst, float* diff_weights,
                                              float* diff_bias) {
  auto* st = dynamic_cast<OneHotPoolState*>(state.get());
  if (!st || !st->trained || !(st->shape == s))
    throw Error("one-hot convolution and pooling: backward without a training forward pass of this shape");
  const Conv1dShape& c = s.conv;
  const Index a = c.c_in, k = c.kernel, o = c.c_out, t_pool = s.pool().t_out(), rows = c.n * t_pool;
  const std::uint8_t* winners = st->winners.data();
  // Each thread owns a range of output channels (a multiple of 16, one AVX-512 register) with
  // its own compact (K * A, range) accumulator, and walks every row in order: each row is read
  // once, contiguously, and the sums do not depend on the thread count.
  const Index threads = std::max(1, omp_get_max_threads());
  const Index width = std::max<Index>(16, ((o + threads - 1) / threads + 15) / 16 * 16);
  const Index parts = (o + width - 1) / width;
#pragma omp parallel for schedule(static)
  for (Index part = 0; part < parts; ++part) {
    const Index begin = part * width, lanes = std::min(width, o - begin);
    std::vector<float> acc(static_cast<std::size_t>(k * a * lanes)), bias(static_cast<std::size_t>(lanes)),
        masked(static_cast<std::size_t>(lanes));
    for (Index row = 0; row < rows; ++row) {
      const Index n = row / t_pool, first = (row % t_pool) * s.pool_stride, at = row * o + begin;
      for (Index offset = 0; offset < s.pool_kernel; ++offset)
        scatter_winners(acc.data(), bias.data(), masked.data(), diff_dst + at, dst + at, winners + at,
                        codes + n * c.t_in + first + offset, k, a, lanes, static_cast<std::uint8_t>(offset));
    }
    if (diff_bias) std::copy(bias.begin(), bias.end(), diff_bias + begin);
    for (Index l = 0; l < lanes; ++l)
      for (Index ch = 0; ch < a; ++ch)
        for (Index j = 0; j < k; ++j)
          diff_weights[((begin + l) * a + ch) * k + j] = acc[static_cast<std::size_t>((j * a + ch) * lanes + l)];
  }
}

namespace {

constexpr Index kKmaxLanes = 16;  // channels a k-max list block holds side by side (one AVX-512 register)

// k-max pooling, one time step of one block of `lanes` channels of one sample: every channel's list
// of its k largest values so far (value descending; among equal values the earlier position
// first) takes v's value if it beats the list's k-th. A block's lists are k rows of 16 lanes, so a
// step is a few compares and selects per row of the list, with no branch on the data (the old
// per-element loop spent its time in mispredicted branches). The portable form; with AVX-512,
// full blocks take kmax_full_blocks_avx512.
TS_VECTOR_CLONES void kmax_block_step(Index lanes, Index k, const float* __restrict v, float* __restrict val,
                                      std::int32_t* __restrict pos, std::int32_t t) {
  // Walk the list from its end: entry j takes its upper neighbour's (v beats both) or v itself
  // (v beats it but not the neighbour). Stores are unconditional selects.
  for (Index j = k - 1; j > 0; --j) {
    float* vj = val + j * kKmaxLanes;
    const float* up = vj - kKmaxLanes;
    std::int32_t* pj = pos + j * kKmaxLanes;
    const std::int32_t* pup = pj - kKmaxLanes;
#pragma omp simd
    for (Index l = 0; l < lanes; ++l) {
      const float x = vj[l];
      const std::int32_t p = pj[l];
      const bool enters = v[l] > x, beats_up = v[l] > up[l];
      vj[l] = enters ? (beats_up ? up[l] : v[l]) : x;
      pj[l] = enters ? (beats_up ? pup[l] : t) : p;
    }
  }
#pragma omp simd
  for (Index l = 0; l < lanes; ++l) {
    const bool enters = v[l] > val[l];
    val[l] = enters ? v[l] : val[l];
    pos[l] = enters ? t : pos[l];
  }
}

#if defined(__x86_64__) && defined(__GNUC__)
// Full blocks of 16 channels with AVX-512 intrinsics, chosen at run time. Written portably (with
// `omp simd` or GCC's vector types) the compiler turned the selects into branches on masks or
// into scalar code, 5-30x slower than this.
__attribute__((target("avx512f"))) void kmax_full_blocks_avx512(Index blocks, Index k, const float* row, float* values,
                                                                std::int32_t* positions, std::int32_t t) {
  const __m512i tv = _mm512_set1_epi32(t);
  for (Index block = 0; block < blocks; ++block) {
    float* val = values + block * k * kKmaxLanes;
    std::int32_t* pos = positions + block * k * kKmaxLanes;
    const __m512 v = _mm512_loadu_ps(row + block * kKmaxLanes);
    __m512 below = _mm512_loadu_ps(val + (k - 1) * kKmaxLanes);
    __m512i below_pos = _mm512_loadu_si512(pos + (k - 1) * kKmaxLanes);
    __mmask16 enters = _mm512_cmp_ps_mask(v, below, _CMP_GT_OQ);
    if (enters == 0) continue;  // usual once the lists hold large values
    for (Index j = k - 1; j > 0; --j) {
      const __m512 up = _mm512_loadu_ps(val + (j - 1) * kKmaxLanes);
      const __m512i up_pos = _mm512_loadu_si512(pos + (j - 1) * kKmaxLanes);
      const __mmask16 beats_up = _mm512_cmp_ps_mask(v, up, _CMP_GT_OQ);
      // entry j = enters ? (beats_up ? up : v) : below
      _mm512_storeu_ps(val + j * kKmaxLanes,
                       _mm512_mask_blend_ps(enters, below, _mm512_mask_blend_ps(beats_up, v, up)));
      _mm512_storeu_si512(pos + j * kKmaxLanes,
                          _mm512_mask_blend_epi32(enters, below_pos, _mm512_mask_blend_epi32(beats_up, tv, up_pos)));
      below = up;
      below_pos = up_pos;
      enters = beats_up;  // v enters at j - 1 exactly when it beats entry j - 1
    }
    _mm512_storeu_ps(val, _mm512_mask_blend_ps(enters, below, v));
    _mm512_storeu_si512(pos, _mm512_mask_blend_epi32(enters, below_pos, tv));
  }
}
#endif

// One time step of one sample over all channels (`row`, C floats).
void kmax_step(Index c, Index k, const float* row, float* values, std::int32_t* positions, std::int32_t t) {
  Index done = 0;
#if defined(__x86_64__) && defined(__GNUC__)
  static const bool avx512 = __builtin_cpu_supports("avx512f");
  if (avx512) {
    done = c / kKmaxLanes;
    kmax_full_blocks_avx512(done, k, row, values, positions, t);
  }
#endif
  for (Index block = done; block * kKmaxLanes < c; ++block)
    kmax_block_step(std::min(kKmaxLanes, c - block * kKmaxLanes), k, row + block * kKmaxLanes,
                    values + block * k * kKmaxLanes, positions + block * k * kKmaxLanes, t);
}

// Puts every channel's k entries back in time order (odd-even transposition sort on positions,
// values carried along) and writes them to dst and indices (k rows of `c`).
TS_VECTOR_CLONES void kmax_finish(Index c, Index k, float* __restrict values, std::int32_t* __restrict positions,
                                  float* __restrict dst, std::int32_t* __restrict indices) {
  for (Index block = 0; block * kKmaxLanes < c; ++block) {
    const Index lanes = std::min(kKmaxLanes, c - block * kKmaxLanes);
    float* val = values + block * k * kKmaxLanes;
    std::int32_t* pos = positions + block * k * kKmaxLanes;
    for (Index pass = 0; pass < k; ++pass)
      for (Index j = pass % 2; j + 1 < k; j += 2) {
        float* va = val + j * kKmaxLanes;
        float* vb = va + kKmaxLanes;
        std::int32_t* pa = pos + j * kKmaxLanes;
        std::int32_t* pb = pa + kKmaxLanes;
#pragma omp simd
        for (Index l = 0; l < lanes; ++l) {
          const bool swap = pa[l] > pb[l];
          const float x = va[l], y = vb[l];
          const std::int32_t p = pa[l], q = pb[l];
          va[l] = swap ? y : x;
          vb[l] = swap ? x : y;
          pa[l] = swap ? q : p;
          pb[l] = swap ? p : q;
        }
      }
    for (Index j = 0; j < k; ++j)
      for (Index l = 0; l < lanes; ++l) {
        dst[j * c + block * kKmaxLanes + l] = val[j * kKmaxLanes + l];
        indices[j * c + block * kKmaxLanes + l] = pos[j * kKmaxLanes + l];
      }
  }
}

}  // namespace

void kmax_pool_forward(Dims d, Index k, const float* src, float* dst, std::int32_t* indices) {
  // Per sample, one pass over time with channels innermost (contiguous in (N, T, C)), keeping each
  // channel's k largest values in a sorted list (kmax_step), then restoring time order. A value
  // enters only if it beats the channel's current k-th: a NaN never does. Lists start at
  // -infinity.
  // Per-thread lists, allocated here: nothing may throw inside the parallel region.
  const Index blocks = (d.c + kKmaxLanes - 1) / kKmaxLanes;
  const auto per_thread = static_cast<std::size_t>(blocks * k * kKmaxLanes);
  std::vector<float> values(per_thread * static_cast<std::size_t>(omp_get_max_threads()));
  std::vector<std::int32_t> positions(values.size());
#pragma omp parallel
  {
    float* value = values.data() + per_thread * static_cast<std::size_t>(omp_get_thread_num());
    std::int32_t* position = positions.data() + per_thread * static_cast<std::size_t>(omp_get_thread_num());
#pragma omp for schedule(static)
    for (Index n = 0; n < d.n; ++n) {
      std::fill(value, value + per_thread, -std::numeric_limits<float>::infinity());
      std::fill(position, position + per_thread, 0);
      const float* sample = src + n * d.t * d.c;
      for (Index t = 0; t < d.t; ++t)
        kmax_step(d.c, k, sample + t * d.c, value, position, static_cast<std::int32_t>(t));
      kmax_finish(d.c, k, value, position, dst + n * k * d.c, indices + n * k * d.c);
    }
  }
}

void kmax_pool_backward(Dims d, Index k, const float* diff_dst, const std::int32_t* indices, float* diff_src) {
#pragma omp parallel for schedule(static)
  for (Index n = 0; n < d.n; ++n) {
    std::memset(diff_src + n * d.t * d.c, 0, static_cast<std::size_t>(d.t * d.c) * sizeof(float));
    for (Index j = 0; j < k; ++j)
      for (Index c = 0; c < d.c; ++c) {
        const Index i = (n * k + j) * d.c + c;
        diff_src[(n * d.t + indices[i]) * d.c + c] += diff_dst[i];
      }
  }
}

void update_running_statistics(Index channels, Index rows, const float* mean, const float* var, float* running_mean,
                               float* running_var, double momentum) {
  const double correction = rows > 1 ? static_cast<double>(rows) / static_cast<double>(rows - 1) : 1.0;
  for (Index c = 0; c < channels; ++c) {
    running_mean[c] = static_cast<float>((1 - momentum) * running_mean[c] + momentum * mean[c]);
    running_var[c] = static_cast<float>((1 - momentum) * running_var[c] + momentum * var[c] * correction);
  }
}

void transpose_add_bias(Index rows, Index columns, const float* src, const float* bias, float* dst, bool relu) {
  const std::vector<float> no_bias(bias ? 0 : static_cast<std::size_t>(rows), 0.0f);
  if (!bias) bias = no_bias.data();
#pragma omp parallel for schedule(static)
  for (Index c = 0; c < columns; ++c) {
    float* out = dst + c * rows;
    for (Index r = 0; r < rows; ++r) {
      const float v = src[r * columns + c] + bias[r];
      out[r] = relu ? std::max(v, 0.0f) : v;
    }
  }
}

// --- Batch normalisation -------------------------------------------------------------------------
// Hand-written rather than oneDNN's primitive: at VDCNN's sizes (32k-130k values a channel, means
// large against their spread) oneDNN 2.6's training forward is off by up to 1.5e-5. Over VDCNN's
// eight batch-norm layers that moved a training step's loss by 5e-4 against PyTorch and the
// reference backend (bench/trajectory.sh), and the fused ReLU's mask flipped values near zero
// (the test batch_normalisation_long_channels). Here every reduction runs in double over fixed
// blocks of rows, added in order: exact to float rounding, and the same for any thread count.

namespace {

constexpr Index kBnBlockRows = 256;

// Sums of one block of rows into pa, pab; the branches on null pointers stay outside the loops so
// that each loop vectorises.
TS_VECTOR_CLONES void bn_sums_rows(const float* a, const float* b, const float* mask, Index rows, Index c,
                                   double* __restrict pa, double* __restrict pab) {
  for (Index r = 0; r < rows; ++r) {
    const float* __restrict ar = a + r * c;
    const float* __restrict br = b ? b + r * c : ar;
    if (mask) {
      const float* __restrict mr = mask + r * c;
#pragma omp simd
      for (Index k = 0; k < c; ++k) {
        // A product with 0 or 1: GCC leaves the loop scalar for a select here.
        const double x = ar[k] * static_cast<float>(mr[k] > 0.0f);
        pa[k] += x;
        pab[k] += x * static_cast<double>(br[k]);
      }
    } else {
#pragma omp simd
      for (Index k = 0; k < c; ++k) {
        const double x = ar[k];
        pa[k] += x;
        pab[k] += x * static_cast<double>(br[k]);
      }
    }
  }
}

TS_VECTOR_CLONES void bn_apply_rows(const float* src, const float* mean, const float* scale, const float* beta,
                                    Index rows, Index c, bool relu, float* dst) {
  for (Index r = 0; r < rows; ++r) {
    const float* x = src + r * c;
    float* y = dst + r * c;
#pragma omp simd
    for (Index k = 0; k < c; ++k) {
      const float v = (x[k] - mean[k]) * scale[k] + beta[k];
      y[k] = relu ? (v > 0.0f ? v : 0.0f) : v;
    }
  }
}

TS_VECTOR_CLONES void bn_backward_rows(const float* src, const float* dst, const float* dy, const float* mean,
                                       const float* a, const float* b, const float* shift, Index rows, Index c,
                                       float* diff_src) {
  for (Index r = 0; r < rows; ++r) {
    const float* __restrict x = src + r * c;
    const float* __restrict g = dy + r * c;
    float* __restrict out = diff_src + r * c;
    if (dst) {
      const float* __restrict y = dst + r * c;
#pragma omp simd
      for (Index k = 0; k < c; ++k) {
        const float gk = g[k] * static_cast<float>(y[k] > 0.0f);
        out[k] = a[k] * gk - b[k] * (x[k] - mean[k]) - shift[k];
      }
    } else {
#pragma omp simd
      for (Index k = 0; k < c; ++k) out[k] = a[k] * g[k] - b[k] * (x[k] - mean[k]) - shift[k];
    }
  }
}

}  // namespace

void channel_sums(Index rows, Index c, const float* a, const float* b, const float* mask, double* sum_a,
                  double* sum_ab) {
  // At most kMaxBlocks blocks of rows, their count a function of `rows` alone; the partial sums
  // live in a buffer kept between calls (fresh pages for every call cost as much as the sums).
  constexpr Index kMaxBlocks = 64;
  const Index blocks = std::min(kMaxBlocks, (rows + kBnBlockRows - 1) / kBnBlockRows);
  const Index block_rows = blocks > 0 ? (rows + blocks - 1) / blocks : 0;
  thread_local std::vector<double> partial;
  partial.assign(static_cast<std::size_t>(2 * blocks * c), 0.0);
  double* sums = partial.data();
#pragma omp parallel for schedule(static)
  for (Index blk = 0; blk < blocks; ++blk) {
    const Index begin = blk * block_rows;
    if (begin < rows)
      bn_sums_rows(a + begin * c, b ? b + begin * c : nullptr, mask ? mask + begin * c : nullptr,
                   std::min(block_rows, rows - begin), c, sums + 2 * blk * c, sums + 2 * blk * c + c);
  }
  for (Index k = 0; k < c; ++k) sum_a[k] = sum_ab[k] = 0;
  for (Index blk = 0; blk < blocks; ++blk)
    for (Index k = 0; k < c; ++k) {
      sum_a[k] += sums[2 * blk * c + k];
      sum_ab[k] += sums[2 * blk * c + c + k];
    }
}

void batch_norm_forward(Dims d, const float* src, const float* gamma, const float* beta, float* dst, float* save_mean,
                        float* save_var, float* running_mean, float* running_var, bool training, double momentum,
                        double epsilon, bool relu) {
  const Index rows = d.n * d.t;
  const auto channels = static_cast<std::size_t>(d.c);
  std::vector<float> mean(channels), scale(channels);
  if (training) {
    std::vector<double> sum(channels), squares(channels);
    channel_sums(rows, d.c, src, nullptr, nullptr, sum.data(), squares.data());
    for (std::size_t k = 0; k < channels; ++k) {
      const double m = sum[k] / static_cast<double>(rows);
      const double v = std::max(0.0, squares[k] / static_cast<double>(rows) - m * m);
      save_mean[k] = mean[k] = static_cast<float>(m);
      save_var[k] = static_cast<float>(v);
      scale[k] = static_cast<float>(static_cast<double>(gamma[k]) / std::sqrt(v + epsilon));
    }
    update_running_statistics(d.c, rows, save_mean, save_var, running_mean, running_var, momentum);
  } else {
    for (std::size_t k = 0; k < channels; ++k) {
      mean[k] = running_mean[k];
      scale[k] =
          static_cast<float>(static_cast<double>(gamma[k]) / std::sqrt(static_cast<double>(running_var[k]) + epsilon));
    }
  }
  const Index blocks = (rows + kBnBlockRows - 1) / kBnBlockRows;
#pragma omp parallel for schedule(static)
  for (Index blk = 0; blk < blocks; ++blk) {
    const Index begin = blk * kBnBlockRows;
    bn_apply_rows(src + begin * d.c, mean.data(), scale.data(), beta, std::min(kBnBlockRows, rows - begin), d.c, relu,
                  dst + begin * d.c);
  }
}

void batch_norm_backward(Dims d, const float* src, const float* dst, const float* diff_dst, const float* gamma,
                         const float* save_mean, const float* save_var, float* diff_src, float* diff_gamma,
                         float* diff_beta, double epsilon, bool relu) {
  const Index rows = d.n * d.t;
  const auto channels = static_cast<std::size_t>(d.c);
  const float* mask = relu ? dst : nullptr;
  std::vector<double> sum_dy(channels), sum_dy_x(channels);
  channel_sums(rows, d.c, diff_dst, src, mask, sum_dy.data(), sum_dy_x.data());
  std::vector<double> mean(channels), inv_std(channels), mean_dy(channels), mean_dy_xhat(channels);
  const auto m = static_cast<double>(rows);
  for (std::size_t k = 0; k < channels; ++k) {
    mean[k] = save_mean[k];
    inv_std[k] = 1.0 / std::sqrt(static_cast<double>(save_var[k]) + epsilon);
    const double dy_xhat = (sum_dy_x[k] - mean[k] * sum_dy[k]) * inv_std[k];  // sum of dy xhat
    diff_beta[k] = static_cast<float>(sum_dy[k]);
    diff_gamma[k] = static_cast<float>(dy_xhat);
    mean_dy[k] = sum_dy[k] / m;
    mean_dy_xhat[k] = dy_xhat / m;
  }
  batch_norm_input_gradient(rows, d.c, src, mask, diff_dst, mean.data(), inv_std.data(), gamma, mean_dy.data(),
                            mean_dy_xhat.data(), diff_src);
}

void batch_norm_input_gradient(Index rows, Index c, const float* src, const float* mask, const float* dy,
                               const double* mean, const double* inv_std, const float* gamma, const double* mean_dy,
                               const double* mean_dy_xhat, float* diff_src) {
  // gamma inv_std (dy - mean_dy - xhat mean_dy_xhat) = a dy - b (x - mean) - shift, per channel.
  const auto channels = static_cast<std::size_t>(c);
  std::vector<float> mean_f(channels), a(channels), b(channels), shift(channels);
  for (std::size_t k = 0; k < channels; ++k) {
    const double g = static_cast<double>(gamma[k]) * inv_std[k];
    mean_f[k] = static_cast<float>(mean[k]);
    a[k] = static_cast<float>(g);
    b[k] = static_cast<float>(g * inv_std[k] * mean_dy_xhat[k]);
    shift[k] = static_cast<float>(g * mean_dy[k]);
  }
  const Index blocks = (rows + kBnBlockRows - 1) / kBnBlockRows;
#pragma omp parallel for schedule(static)
  for (Index blk = 0; blk < blocks; ++blk) {
    const Index begin = blk * kBnBlockRows;
    bn_backward_rows(src + begin * c, mask ? mask + begin * c : nullptr, dy + begin * c, mean_f.data(), a.data(),
                     b.data(), shift.data(), std::min(kBnBlockRows, rows - begin), c, diff_src + begin * c);
  }
}

void column_sums(Index rows, Index columns, const float* data, float* sums) {
  // Threads own column slices; each column is summed in row order.
  constexpr Index slice = 64;
  const Index slices = (columns + slice - 1) / slice;
#pragma omp parallel for schedule(static)
  for (Index sl = 0; sl < slices; ++sl) {
    const Index begin = sl * slice, end = std::min(columns, begin + slice);
    for (Index c = begin; c < end; ++c) sums[c] = 0;
    add_rows(sums, data, rows, columns, begin, end);
  }
}

void relu_forward(Index count, const float* src, float* dst) {
  parallel_blocks(count, [&](Index b, Index c) { relu_chunk(src + b, dst + b, c); });
}

void relu_backward(Index count, const float* dst, const float* diff_dst, float* diff_src) {
  parallel_blocks(count, [&](Index b, Index c) { relu_backward_chunk(dst + b, diff_dst + b, diff_src + b, c); });
}

void copy(Index count, const float* src, float* dst) {
  if (src != dst) std::memcpy(dst, src, static_cast<std::size_t>(count) * sizeof(float));
}

void add(Index count, const float* a, const float* b, float* dst) {
  parallel_blocks(count, [&](Index i, Index c) { add_chunk(a + i, b + i, dst + i, c); });
}

void multiply(Index count, const float* a, const float* b, float* dst) {
  parallel_blocks(count, [&](Index i, Index c) { multiply_chunk(a + i, b + i, dst + i, c); });
}

void dropout_forward(Index count, double p, std::uint64_t seed, std::uint64_t first, const float* src, float* dst,
                     float* mask) {
  const float keep_scale = static_cast<float>(1.0 / (1.0 - p));
#pragma omp parallel for schedule(static)
  for (Index i = 0; i < count; ++i) {
    mask[i] = dropout_keep(seed, first + static_cast<std::uint64_t>(i), p) ? keep_scale : 0.0f;
    dst[i] = src[i] * mask[i];
  }
}

void embedding_forward(Index n, Index t, Index vocab, Index dim, const std::uint8_t* codes, const float* table,
                       float* dst) {
  check_codes(codes, n * t, vocab - 1);
#pragma omp parallel for schedule(static)
  for (Index i = 0; i < n * t; ++i)
    std::memcpy(dst + i * dim, table + codes[i] * dim, static_cast<std::size_t>(dim) * sizeof(float));
}

void embedding_backward(Index n, Index t, Index vocab, Index dim, const std::uint8_t* codes, const float* diff_dst,
                        float* diff_table) {
  // Sequential in position order (the table is tiny: characters) so that the result does not
  // depend on the thread count, and in double: the padding code alone collects most positions of
  // a batch (26k terms at batch 32 for AG News), too long a sum for float.
  thread_local std::vector<double> sums;
  sums.assign(static_cast<std::size_t>(vocab * dim), 0.0);
  for (Index i = 0; i < n * t; ++i) {
    double* row = sums.data() + codes[i] * dim;
    const float* grad = diff_dst + i * dim;
#pragma omp simd
    for (Index e = 0; e < dim; ++e) row[e] += static_cast<double>(grad[e]);
  }
  for (Index i = 0; i < vocab * dim; ++i) diff_table[i] = static_cast<float>(sums[static_cast<std::size_t>(i)]);
}

namespace {

void check_ids(const std::int32_t* ids, Index count, Index vocab) {
  for (Index i = 0; i < count; ++i)
    if (ids[i] < 0 || ids[i] >= vocab)
      throw Error("word id " + std::to_string(ids[i]) + " at position " + std::to_string(i) +
                  " outside the embedding table of " + std::to_string(vocab));
}

}  // namespace

void embedding_forward(Index n, Index t, Index vocab, Index dim, const std::int32_t* ids, const float* table,
                       float* dst) {
  check_ids(ids, n * t, vocab);
#pragma omp parallel for schedule(static)
  for (Index i = 0; i < n * t; ++i)
    std::memcpy(dst + i * dim, table + static_cast<Index>(ids[i]) * dim, static_cast<std::size_t>(dim) * sizeof(float));
}

namespace {

// The positions of `ids` ordered by id, then by position (`order`), and where each distinct id's
// run starts in it (`runs`, closed by count); the arrays are the calling thread's.
struct IdRuns {
  const std::int64_t* order;
  const std::int64_t* starts;
  Index count;  // distinct ids
};

IdRuns sort_ids(Index count, const std::int32_t* ids) {
  thread_local std::vector<std::int64_t> order;
  order.resize(static_cast<std::size_t>(count));
  for (Index i = 0; i < count; ++i) order[static_cast<std::size_t>(i)] = i;
  std::stable_sort(order.begin(), order.end(), [ids](std::int64_t a, std::int64_t b) { return ids[a] < ids[b]; });
  thread_local std::vector<std::int64_t> runs;
  runs.clear();
  for (Index i = 0; i < count; ++i)
    if (i == 0 || ids[order[static_cast<std::size_t>(i)]] != ids[order[static_cast<std::size_t>(i - 1)]])
      runs.push_back(i);
  runs.push_back(count);
  return {order.data(), runs.data(), static_cast<Index>(runs.size()) - 1};
}

// Each distinct id's row of diff_table = the sum of its positions' diff_dst rows, in position
// order, in double.
void write_id_sums(const IdRuns& runs, Index dim, const std::int32_t* ids, const float* diff_dst, float* diff_table) {
#pragma omp parallel
  {
    std::vector<double> sum(static_cast<std::size_t>(dim));
    double* s = sum.data();
#pragma omp for schedule(static)
    for (Index r = 0; r < runs.count; ++r) {
      std::fill(sum.begin(), sum.end(), 0.0);
      for (Index i = runs.starts[r]; i < runs.starts[r + 1]; ++i) {
        const float* grad = diff_dst + runs.order[i] * dim;
#pragma omp simd
        for (Index e = 0; e < dim; ++e) s[e] += static_cast<double>(grad[e]);
      }
      float* row = diff_table + static_cast<Index>(ids[runs.order[runs.starts[r]]]) * dim;
      for (Index e = 0; e < dim; ++e) row[e] = static_cast<float>(s[e]);
    }
  }
}

}  // namespace

void embedding_backward(Index n, Index t, Index vocab, Index dim, const std::int32_t* ids, const float* diff_dst,
                        float* diff_table) {
  const Index count = n * t;
  check_ids(ids, count, vocab);
  const IdRuns runs = sort_ids(count, ids);
  // Rows no id selects are 0: clear the table in parallel blocks, then write the selected rows.
  constexpr Index block = Index{1} << 16;
  const Index blocks = (vocab * dim + block - 1) / block;
#pragma omp parallel for schedule(static)
  for (Index b = 0; b < blocks; ++b) {
    const Index begin = b * block, end = std::min(vocab * dim, begin + block);
    std::memset(diff_table + begin, 0, static_cast<std::size_t>(end - begin) * sizeof(float));
  }
  write_id_sums(runs, dim, ids, diff_dst, diff_table);
}

void embedding_backward_rows(Index n, Index t, Index vocab, Index dim, const std::int32_t* ids, const float* diff_dst,
                             float* diff_table, std::vector<std::int32_t>& rows) {
  const Index count = n * t;
  check_ids(ids, count, vocab);
  for (const std::int32_t row : rows)
    std::memset(diff_table + static_cast<Index>(row) * dim, 0, static_cast<std::size_t>(dim) * sizeof(float));
  const IdRuns runs = sort_ids(count, ids);
  rows.resize(static_cast<std::size_t>(runs.count));
  for (Index r = 0; r < runs.count; ++r) rows[static_cast<std::size_t>(r)] = ids[runs.order[runs.starts[r]]];
  write_id_sums(runs, dim, ids, diff_dst, diff_table);
}

double softmax_cross_entropy(Index n, Index classes, const float* logits, const std::int32_t* labels,
                             float* diff_logits) {
  double total = 0;
  for (Index i = 0; i < n; ++i) {
    const float* row = logits + i * classes;
    if (labels[i] < 0 || labels[i] >= classes)
      throw Error("label " + std::to_string(labels[i]) + " outside [0, " + std::to_string(classes) + ")");
    double max = *std::max_element(row, row + classes);
    double sum = 0;
    for (Index k = 0; k < classes; ++k) sum += std::exp(row[k] - max);
    const double log_sum = std::log(sum) + max;
    total += log_sum - row[labels[i]];
    if (diff_logits)
      for (Index k = 0; k < classes; ++k)
        diff_logits[i * classes + k] =
            static_cast<float>((std::exp(row[k] - log_sum) - (k == labels[i] ? 1.0 : 0.0)) / static_cast<double>(n));
  }
  return total;
}

void sgd_step(Index count, float* param, const float* grad, float* velocity, double lr, double momentum,
              double weight_decay, float factor) {
  const float wd = static_cast<float>(weight_decay), mu = static_cast<float>(momentum), rate = static_cast<float>(lr);
  parallel_blocks(count,
                  [&](Index b, Index c) { sgd_chunk(param + b, grad + b, velocity + b, rate, mu, wd, factor, c); });
}

void sgd_step_rows(Index row_count, const std::int32_t* rows, Index row_size, float* param, const float* grad,
                   float* velocity, double lr, double momentum, double weight_decay, float factor) {
  const float wd = static_cast<float>(weight_decay), mu = static_cast<float>(momentum), rate = static_cast<float>(lr);
#pragma omp parallel for schedule(static)
  for (Index r = 0; r < row_count; ++r) {
    const Index o = static_cast<Index>(rows[r]) * row_size;
    sgd_chunk(param + o, grad + o, velocity + o, rate, mu, wd, factor, row_size);
  }
}

namespace {

// Adam's per-step constants, in the precision adam_chunk uses.
struct AdamConstants {
  float b1, b2, wd, step_size, sqrt_c2, eps;
  AdamConstants(double lr, double beta1, double beta2, double epsilon, double weight_decay, std::int64_t step) {
    const double c1 = 1.0 - std::pow(beta1, static_cast<double>(step));
    const double c2 = 1.0 - std::pow(beta2, static_cast<double>(step));
    b1 = static_cast<float>(beta1);
    b2 = static_cast<float>(beta2);
    wd = static_cast<float>(weight_decay);
    step_size = static_cast<float>(lr / c1);
    sqrt_c2 = static_cast<float>(std::sqrt(c2));
    eps = static_cast<float>(epsilon);
  }
};

}  // namespace

void adam_step(Index count, float* param, const float* grad, float* m, float* v, double lr, double beta1, double beta2,
               double epsilon, double weight_decay, std::int64_t step, float factor) {
  const AdamConstants k(lr, beta1, beta2, epsilon, weight_decay, step);
  parallel_blocks(count, [&](Index b, Index c) {
    adam_chunk(param + b, grad + b, m + b, v + b, k.b1, k.b2, k.wd, k.step_size, k.sqrt_c2, k.eps, factor, c);
  });
}

void adam_step_rows(Index row_count, const std::int32_t* rows, Index row_size, float* param, const float* grad,
                    float* m, float* v, double lr, double beta1, double beta2, double epsilon, double weight_decay,
                    std::int64_t step, float factor) {
  const AdamConstants k(lr, beta1, beta2, epsilon, weight_decay, step);
#pragma omp parallel for schedule(static)
  for (Index r = 0; r < row_count; ++r) {
    const Index o = static_cast<Index>(rows[r]) * row_size;
    adam_chunk(param + o, grad + o, m + o, v + o, k.b1, k.b2, k.wd, k.step_size, k.sqrt_c2, k.eps, factor, row_size);
  }
}

double sum_squares(Index count, const float* data) {
  // Fixed blocks, summed in order: the same result for any thread count.
  constexpr Index block = 1 << 16;
  const Index blocks = (count + block - 1) / block;
  std::vector<double> partial(static_cast<std::size_t>(blocks), 0.0);
#pragma omp parallel for schedule(static)
  for (Index b = 0; b < blocks; ++b) {
    // 16 running sums, element i into sum i % 16, added up at the end: a fixed order the compiler
    // vectorises (one sum would chain every addition on the one before; the gradient's norm and
    // each all-reduce bucket's check read the whole gradient every step).
    constexpr Index lanes = 16;
    double sums[lanes] = {};
    const Index begin = b * block, end = std::min(count, (b + 1) * block);
    Index i = begin;
    for (; i + lanes <= end; i += lanes)
#pragma omp simd
      for (Index k = 0; k < lanes; ++k) sums[k] += static_cast<double>(data[i + k]) * static_cast<double>(data[i + k]);
    for (Index k = 0; i < end; ++i, ++k) sums[k] += static_cast<double>(data[i]) * static_cast<double>(data[i]);
    double sum = 0;
    for (double s : sums) sum += s;
    partial[static_cast<std::size_t>(b)] = sum;
  }
  double total = 0;
  for (double p : partial) total += p;
  return total;
}

void scale(Index count, float* data, double factor) {
  const float f = static_cast<float>(factor);
#pragma omp parallel for simd schedule(static)
  for (Index i = 0; i < count; ++i) data[i] *= f;
}

}  // namespace textscale::engine::cpu

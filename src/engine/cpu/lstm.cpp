#include "lstm.h"

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <exception>
#include <list>
#include <new>
#include <string>
#include <unordered_map>
#include <vector>

#include "dnnl_check.h"
#include "textscale/common/error.h"
#include "textscale/engine/buffer.h"

namespace textscale::engine::cpu {
namespace {

using tag = dnnl::memory::format_tag;
using dt = dnnl::memory::data_type;
using Desc = dnnl::memory::desc;

// The primitives of one shape; both directions run them, each on its own memory.
struct LstmPrimitives {
  RnnShape shape;
  bool bf16 = false;
  dnnl::lstm_forward::primitive_desc training_pd, inference_pd, direct_pd;
  dnnl::lstm_forward training, inference, direct;  // direct: fp32 inference of direction 0 (direct_descs)
  dnnl::lstm_backward::primitive_desc backward_pd;
  dnnl::lstm_backward backward;
  bool has_training = false, has_inference = false, has_direct = false, has_backward = false;
};

// One direction's memory at a call site, for all its shapes (grown to the largest).
struct LstmDirection {
  dnnl::stream stream;
  // fp32, or bf16 in bf16 precision:
  Buffer<std::uint8_t> src;  // (T, N, C_in): the rows in the order this direction visits them, 0 at padding
  Buffer<std::uint8_t> dst;  // (T, N, H): its output, in that order
  UnwrittenBytes workspace;  // the training forward's, for backward
  // Weights, bias and their gradients in the primitives' layouts (made again when a layout changes).
  dnnl::memory weights_layer, weights_iter, bias, diff_weights_layer, diff_weights_iter, diff_bias, zero_bias;
};

struct LstmState final : OpState {
  std::list<LstmPrimitives> cache;  // a list: references stay valid
  LstmDirection directions[2];
  std::vector<Index> lengths;               // per row, of the last forward
  const LstmPrimitives* trained = nullptr;  // the last forward's primitives, when it was a training one
};

LstmState& lstm_state(OpStatePtr& state, const dnnl::engine& engine) {
  if (!dynamic_cast<LstmState*>(state.get())) {
    auto made = std::make_unique<LstmState>();
    for (auto& direction : made->directions) direction.stream = dnnl::stream(engine);
    state = std::move(made);
  }
  return static_cast<LstmState&>(*state);
}

Desc time_major(Index t, Index n, Index c) {
  return {{t, n, c}, dt::f32, tag::tnc};
}

// The canonical layouts of one direction (dims.h): W_x (G*H, C_in) and W_h (G*H, H) row-major with
// the rows in gate order are oneDNN's ldgoi; the bias (G*H) is ldgo.
Desc canonical_weights(Index in, Index hidden) {
  return {{1, 1, in, 4, hidden}, dt::f32, tag::ldgoi};
}
Desc canonical_bias(Index hidden) {
  return {{1, 1, 4, hidden}, dt::f32, tag::ldgo};
}

dnnl::memory user_memory(const Desc& desc, const dnnl::engine& engine, const void* data) {
  return {desc, engine, const_cast<void*>(data)};
}

// `from` reordered into `kept`, made with `wanted` (when it has another layout).
void reorder_into(const dnnl::memory& from, const Desc& wanted, dnnl::memory& kept, dnnl::stream& stream) {
  if (!kept || kept.get_desc() != wanted) kept = dnnl::memory(wanted, from.get_engine());
  TS_DNNL(dnnl::reorder(from, kept).execute(stream, const_cast<dnnl::memory&>(from), kept));
}

// A user buffer as a primitive's argument: itself when the layouts agree, else `kept` (reordered
// from it when `fill`).
dnnl::memory argument(const dnnl::memory& user, const Desc& wanted, dnnl::memory& kept, dnnl::stream& stream,
                      bool fill) {
  if (user.get_desc() == wanted) return user;
  if (fill) {
    reorder_into(user, wanted, kept, stream);
  } else if (!kept || kept.get_desc() != wanted) {
    kept = dnnl::memory(wanted, user.get_engine());
  }
  return kept;
}

void zero(dnnl::memory& m) {
  std::memset(m.get_data_handle(), 0, m.get_desc().get_size());
}

template <typename T>
T* at_least(Buffer<T>& buffer, std::size_t count) {
  if (buffer.size() < count) buffer.resize(count);
  return buffer.data();
}

// --- Copies between the caller's (N, T, C) arrays and a direction's time-major scratch ----------

// The step a direction reaches at its `step`-th real step of a row of `length` steps.
Index visited(Index direction, Index length, Index step) {
  return direction == 0 ? step : length - 1 - step;
}

// bf16, as oneDNN's conversions round: to nearest even (the inputs are finite).
struct Bf16 {
  std::uint16_t bits;
};
inline void convert(float x, float& to) {
  to = x;
}
inline void convert(float x, Bf16& to) {
  std::uint32_t bits = 0;
  std::memcpy(&bits, &x, sizeof bits);
  to.bits = static_cast<std::uint16_t>((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
}
inline void convert(Bf16 x, float& to) {
  const std::uint32_t bits = std::uint32_t{x.bits} << 16;
  std::memcpy(&to, &bits, sizeof to);
}

// to (T, N, width) = the `width` channels from `offset` of from (N, T, stride), each row's real
// steps in the order `direction` visits them, then 0 at the padding steps.
template <typename To>
void gather(Index n, Index t, Index width, Index stride, Index offset, Index direction, const Index* lengths,
            const float* from, To* to) {
#pragma omp parallel for schedule(static)
  for (Index i = 0; i < n; ++i) {
    const Index length = lengths[i];
    for (Index step = 0; step < t; ++step) {
      To* out = to + (step * n + i) * width;
      if (step < length) {
        const float* in = from + (i * t + visited(direction, length, step)) * stride + offset;
        for (Index k = 0; k < width; ++k) convert(in[k], out[k]);
      } else {
        std::fill_n(out, width, To{});
      }
    }
  }
}

// The inverse: the `width` channels from `offset` of to (N, T, stride) from (T, N, width), 0 at the
// padding steps.
template <typename From>
void scatter(Index n, Index t, Index width, Index stride, Index offset, Index direction, const Index* lengths,
             const From* from, float* to) {
#pragma omp parallel for schedule(static)
  for (Index i = 0; i < n; ++i) {
    const Index length = lengths[i];
    for (Index step = 0; step < t; ++step) {
      float* out = to + (i * t + step) * stride + offset;
      if (step < length) {
        const From* in = from + (visited(direction, length, step) * n + i) * width;
        for (Index k = 0; k < width; ++k) convert(in[k], out[k]);
      } else {
        std::fill_n(out, width, 0.0f);
      }
    }
  }
}

// 0 in the first `width` channels of (N, T, stride) `data` at the padding steps.
void zero_padding(Index n, Index t, Index width, Index stride, const Index* lengths, float* data) {
#pragma omp parallel for schedule(static)
  for (Index i = 0; i < n; ++i)
    for (Index step = lengths[i]; step < t; ++step) std::fill_n(data + (i * t + step) * stride, width, 0.0f);
}

// diff_src (N, T, C_in) from a direction's input gradient `from` (time-major, in its visiting
// order): direction 0's, 0 at the padding steps; then direction 1's added at the real steps (the
// sum of the two, as one expression would round it).
void add_diff_src(Index direction, Index n, Index t, Index c, const Index* lengths, const float* from,
                  float* diff_src) {
#pragma omp parallel for schedule(static)
  for (Index i = 0; i < n; ++i) {
    const Index length = lengths[i];
    for (Index step = 0; step < t; ++step) {
      float* out = diff_src + (i * t + step) * c;
      if (step >= length) {
        if (direction == 0) std::fill_n(out, c, 0.0f);
        continue;
      }
      const float* in = from + (visited(direction, length, step) * n + i) * c;
      if (direction == 0)
        std::copy_n(in, c, out);
      else
        for (Index k = 0; k < c; ++k) out[k] += in[k];
    }
  }
}

// --- Primitives -------------------------------------------------------------------------------

// An LSTM over all T steps of the (T, N, C_in) input, without final states. The initial h and c are
// given (zeros) although oneDNN would take zeros for missing ones: oneDNN 2.6's fp32 backward pairs
// each step's gate gradient with the previous step's h in one GEMM, and when the first h is not
// given it pairs them with the same step's h instead, which gives a wrong W_h gradient
// (src/cpu/rnn/ref_rnn.cpp, merge_gemm_iter with the outputs of a left-to-right LSTM in dst).
struct LstmDescs {
  Desc src, src_iter, src_iter_c, dst, weights_layer, weights_iter, bias, none;
  // Gradients, always fp32.
  Desc diff_src, diff_src_iter, diff_dst, diff_weights_layer, diff_weights_iter;
  LstmDescs(const RnnShape& s, bool bf16)
      : src({s.t, s.n, s.c_in}, bf16 ? dt::bf16 : dt::f32, tag::tnc),
        src_iter({1, 1, s.n, s.hidden}, bf16 ? dt::bf16 : dt::f32, tag::ldnc),
        src_iter_c({1, 1, s.n, s.hidden}, dt::f32, tag::ldnc),
        dst({s.t, s.n, s.hidden}, bf16 ? dt::bf16 : dt::f32, tag::tnc),
        weights_layer({1, 1, s.c_in, 4, s.hidden}, bf16 ? dt::bf16 : dt::f32, tag::any),
        weights_iter({1, 1, s.hidden, 4, s.hidden}, bf16 ? dt::bf16 : dt::f32, tag::any),
        bias(canonical_bias(s.hidden)),
        diff_src(time_major(s.t, s.n, s.c_in)),
        diff_src_iter(src_iter_c),
        diff_dst(time_major(s.t, s.n, s.hidden)),
        diff_weights_layer({1, 1, s.c_in, 4, s.hidden}, dt::f32, tag::any),
        diff_weights_iter({1, 1, s.hidden, 4, s.hidden}, dt::f32, tag::any) {}
};

dnnl::primitive_attr user_scratchpad() {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attr;
}

// `direct`: the caller's src (N, T, C_in) and dst (N, T, D*H) in place of the time-major copies,
// viewed as (T, N, C) with strides: direction 0 of an fp32 inference reads and writes them where
// they are (its outputs at the padding steps are set to 0 afterwards), which saves two copies.
// Training cannot: backward wants its input and output time-major.
dnnl::lstm_forward::primitive_desc forward_pd(const RnnShape& s, bool bf16, dnnl::prop_kind kind, bool direct,
                                              const dnnl::engine& engine) {
  LstmDescs d(s, bf16);
  if (direct) {
    d.src = Desc({s.t, s.n, s.c_in}, dt::f32, dnnl::memory::dims{s.c_in, s.t * s.c_in, 1});
    d.dst = Desc({s.t, s.n, s.hidden}, dt::f32, dnnl::memory::dims{s.dst().c, s.t * s.dst().c, 1});
  }
  const dnnl::lstm_forward::desc desc(kind, dnnl::rnn_direction::unidirectional_left2right, d.src, d.src_iter,
                                      d.src_iter_c, d.weights_layer, d.weights_iter, d.bias, d.dst, d.none, d.none);
  dnnl::lstm_forward::primitive_desc pd;
  TS_DNNL(pd = dnnl::lstm_forward::primitive_desc(desc, user_scratchpad(), engine));
  return pd;
}

LstmPrimitives& primitives(LstmState& state, const RnnShape& s, bool bf16, bool training, const dnnl::engine& engine) {
  LstmPrimitives* p = nullptr;
  for (auto& cached : state.cache)
    if (cached.shape == s && cached.bf16 == bf16) p = &cached;
  if (!p) {
    p = &state.cache.emplace_back();
    p->shape = s;
    p->bf16 = bf16;
  }
  if (training && !p->has_training) {
    p->training_pd = forward_pd(s, bf16, dnnl::prop_kind::forward_training, false, engine);
    p->training = dnnl::lstm_forward(p->training_pd);
    p->has_training = true;
  }
  if (!training && !p->has_inference) {
    p->inference_pd = forward_pd(s, bf16, dnnl::prop_kind::forward_inference, false, engine);
    p->inference = dnnl::lstm_forward(p->inference_pd);
    p->has_inference = true;
  }
  if (!training && !bf16 && !p->has_direct) {
    p->direct_pd = forward_pd(s, false, dnnl::prop_kind::forward_inference, true, engine);
    p->direct = dnnl::lstm_forward(p->direct_pd);
    p->has_direct = true;
  }
  return *p;
}

void make_backward(LstmPrimitives& p, const dnnl::engine& engine) {
  if (p.has_backward) return;
  const LstmDescs d(p.shape, p.bf16);
  const dnnl::lstm_backward::desc desc(dnnl::prop_kind::backward, dnnl::rnn_direction::unidirectional_left2right, d.src,
                                       d.src_iter, d.src_iter_c, d.weights_layer, d.weights_iter, d.bias, d.dst, d.none,
                                       d.none, d.diff_src, d.diff_src_iter, d.diff_src_iter, d.diff_weights_layer,
                                       d.diff_weights_iter, d.bias, d.diff_dst, d.none, d.none);
  TS_DNNL(p.backward_pd = dnnl::lstm_backward::primitive_desc(desc, user_scratchpad(), engine, p.training_pd));
  p.backward = dnnl::lstm_backward(p.backward_pd);
  p.has_backward = true;
}

// --- Running the directions ---------------------------------------------------------------------

// Whether the directions run at the same time, one thread each: two directions and 2 or 3 threads
// (see lstm.h). Else they run in turn and share one scratch direction.
bool directions_together(Index directions) {
  const int threads = omp_get_max_threads();
  return directions == 2 && threads >= 2 && threads <= 3;
}

// The scratch memory direction d uses.
LstmScratch::Direction& scratch_of(LstmScratch& scratch, Index d, bool together) {
  return scratch.directions[together ? d : 0];
}

// work(d) for each direction d, at the same time or in turn (directions_together), then done(d) on
// the calling thread, in order; in turn, done(d) runs before work(d + 1), which may reuse the
// scratch memory of d. Inside a parallel region oneDNN and the copies run on the calling thread
// alone.
template <typename Work, typename Done>
void for_each_direction(Index directions, const Work& work, const Done& done) {
  if (!directions_together(directions)) {
    for (Index d = 0; d < directions; ++d) {
      work(d);
      done(d);
    }
    return;
  }
  std::exception_ptr failed[2];
#pragma omp parallel num_threads(2)
  {
    // A region that got one thread (nested in another) runs both directions on it.
    for (int d = omp_get_thread_num(); d < 2; d += omp_get_num_threads()) {
      try {
        work(d);
      } catch (...) {
        failed[d] = std::current_exception();
      }
    }
  }
  for (const auto& f : failed)
    if (f) std::rethrow_exception(f);
  for (Index d = 0; d < directions; ++d) done(d);
}

std::vector<Index> checked_lengths(const std::int32_t* lengths, const RnnShape& s, const char* op) {
  std::vector<Index> checked(static_cast<std::size_t>(s.n), s.t);
  if (!lengths) return checked;
  for (Index i = 0; i < s.n; ++i) {
    if (lengths[i] < 0 || lengths[i] > s.t)
      throw Error(std::string(op) + ": row " + std::to_string(i) + " has length " + std::to_string(lengths[i]) +
                  ", outside [0, " + std::to_string(s.t) + "]");
    checked[static_cast<std::size_t>(i)] = lengths[i];
  }
  return checked;
}

void check_shape(const RnnShape& s, const char* op) {
  if (s.cell != RnnCell::lstm) throw Error(std::string(op) + ": the CPU backend implements LSTM cells only");
  if (s.n < 0 || s.t < 0 || s.c_in <= 0 || s.hidden <= 0)
    throw Error(std::string(op) + ": invalid shape n " + std::to_string(s.n) + " t " + std::to_string(s.t) + " c_in " +
                std::to_string(s.c_in) + " hidden " + std::to_string(s.hidden));
}

}  // namespace

std::uint8_t* UnwrittenBytes::at_least(std::size_t bytes) {
  if (size_ >= bytes && data_) return data_.get();
  data_.reset();
  size_ = 0;
  auto* p = static_cast<std::uint8_t*>(std::aligned_alloc(64, (std::max<std::size_t>(bytes, 1) + 63) / 64 * 64));
  if (p == nullptr) throw std::bad_alloc();
  data_.reset(p);
  size_ = bytes;
  return p;
}

void lstm_forward(const dnnl::engine& engine, LstmScratch& scratch, OpStatePtr& state, const RnnShape& s,
                  const float* src, const std::int32_t* lengths, const float* weights, const float* bias, float* dst,
                  bool training, bool bf16) {
  check_shape(s, "rnn_forward");
  LstmState& st = lstm_state(state, engine);
  st.lengths = checked_lengths(lengths, s, "rnn_forward");
  st.trained = nullptr;
  if (s.n == 0 || s.t == 0) return;
  LstmPrimitives& p = primitives(st, s, bf16, training, engine);
  const auto& pd = training ? p.training_pd : p.inference_pd;
  const dnnl::lstm_forward& primitive = training ? p.training : p.inference;
  const Index H = s.hidden, G = 4 * H, C = s.c_in, D = s.directions();
  const bool together = directions_together(D);
  for (Index d = 0; d < D; ++d) {  // allocations before the threads
    LstmDirection& dir = st.directions[d];
    at_least(dir.src, pd.src_layer_desc().get_size());
    at_least(dir.dst, pd.dst_layer_desc().get_size());
    if (training) dir.workspace.at_least(pd.workspace_desc().get_size());
    LstmScratch::Direction& shared = scratch_of(scratch, d, together);
    at_least(shared.zeros, static_cast<std::size_t>(s.n * H));  // nothing writes them
    shared.scratchpad.at_least(std::max(pd.scratchpad_desc().get_size(),
                                        p.has_direct ? p.direct_pd.scratchpad_desc().get_size() : std::size_t{0}));
  }
  const auto work = [&](Index d) {
    LstmDirection& dir = st.directions[d];
    LstmScratch::Direction& shared = scratch_of(scratch, d, together);
    const bool direct = d == 0 && !training && !bf16;
    const auto& dpd = direct ? p.direct_pd : pd;
    void* layer_in = direct ? static_cast<void*>(const_cast<float*>(src)) : dir.src.data();
    void* layer_out = direct ? static_cast<void*>(dst) : dir.dst.data();
    if (bf16)
      gather(s.n, s.t, C, C, 0, d, st.lengths.data(), src, static_cast<Bf16*>(layer_in));
    else if (!direct)
      gather(s.n, s.t, C, C, 0, d, st.lengths.data(), src, static_cast<float*>(layer_in));
    const float* wx = weights + d * s.direction_weights();
    const dnnl::memory user_wx = user_memory(canonical_weights(C, H), engine, wx),
                       user_wh = user_memory(canonical_weights(H, H), engine, wx + G * C),
                       user_bias = user_memory(canonical_bias(H), engine, bias + d * G);
    reorder_into(user_wx, dpd.weights_layer_desc(), dir.weights_layer, dir.stream);
    reorder_into(user_wh, dpd.weights_iter_desc(), dir.weights_iter, dir.stream);
    std::unordered_map<int, dnnl::memory> args{
        {DNNL_ARG_SRC_LAYER, user_memory(dpd.src_layer_desc(), engine, layer_in)},
        {DNNL_ARG_SRC_ITER, user_memory(dpd.src_iter_desc(), engine, shared.zeros.data())},
        {DNNL_ARG_SRC_ITER_C, user_memory(dpd.src_iter_c_desc(), engine, shared.zeros.data())},
        {DNNL_ARG_WEIGHTS_LAYER, dir.weights_layer},
        {DNNL_ARG_WEIGHTS_ITER, dir.weights_iter},
        {DNNL_ARG_BIAS, argument(user_bias, dpd.bias_desc(), dir.bias, dir.stream, true)},
        {DNNL_ARG_DST_LAYER, user_memory(dpd.dst_layer_desc(), engine, layer_out)},
        {DNNL_ARG_SCRATCHPAD, user_memory(dpd.scratchpad_desc(), engine, shared.scratchpad.data())}};
    if (training) args[DNNL_ARG_WORKSPACE] = user_memory(pd.workspace_desc(), engine, dir.workspace.data());
    TS_DNNL((direct ? p.direct : primitive).execute(dir.stream, args));
    dir.stream.wait();
    if (direct)
      zero_padding(s.n, s.t, H, D * H, st.lengths.data(), dst);
    else if (bf16)
      scatter(s.n, s.t, H, D * H, d * H, d, st.lengths.data(), static_cast<const Bf16*>(layer_out), dst);
    else
      scatter(s.n, s.t, H, D * H, d * H, d, st.lengths.data(), static_cast<const float*>(layer_out), dst);
  };
  for_each_direction(D, work, [](Index) {});
  if (training) st.trained = &p;
}

void lstm_backward(const dnnl::engine& engine, LstmScratch& scratch, OpStatePtr& state, const RnnShape& s,
                   const std::int32_t* lengths, const float* weights, const float* diff_dst, float* diff_src,
                   float* diff_weights, float* diff_bias) {
  check_shape(s, "rnn_backward");
  auto* st = dynamic_cast<LstmState*>(state.get());
  if (!st || !st->trained || !(st->trained->shape == s))
    throw Error("rnn_backward: the last forward with this state was not a training forward of this shape");
  if (checked_lengths(lengths, s, "rnn_backward") != st->lengths)
    throw Error("rnn_backward: the lengths differ from the training forward's");
  std::fill_n(diff_weights, s.weights_count(), 0.0f);
  std::fill_n(diff_bias, s.bias_count(), 0.0f);
  if (s.n == 0 || s.t == 0) return;
  // The forward's primitives: `trained` points into the cache.
  auto& p = const_cast<LstmPrimitives&>(*st->trained);
  make_backward(p, engine);
  const auto& pd = p.backward_pd;
  const Index H = s.hidden, G = 4 * H, C = s.c_in, D = s.directions();
  const auto rows = static_cast<std::size_t>(s.n * s.t);
  const bool together = directions_together(D);
  for (Index d = 0; d < (together ? D : 1); ++d) {  // allocations before the threads
    LstmScratch::Direction& shared = scratch.directions[d];
    at_least(shared.diff_dst, rows * static_cast<std::size_t>(H));
    at_least(shared.diff_src, rows * static_cast<std::size_t>(C));
    at_least(shared.zeros, static_cast<std::size_t>(s.n * H));
    at_least(shared.diff_initial, static_cast<std::size_t>(2 * s.n * H));
    shared.scratchpad.at_least(pd.scratchpad_desc().get_size());
  }
  const auto work = [&](Index d) {
    LstmDirection& dir = st->directions[d];
    LstmScratch::Direction& shared = scratch_of(scratch, d, together);
    gather(s.n, s.t, H, D * H, d * H, d, st->lengths.data(), diff_dst, shared.diff_dst.data());
    float* wx = const_cast<float*>(weights) + d * s.direction_weights();
    float* dwx = diff_weights + d * s.direction_weights();
    dnnl::memory user_wx = user_memory(canonical_weights(C, H), engine, wx),
                 user_wh = user_memory(canonical_weights(H, H), engine, wx + G * C),
                 user_dwx = user_memory(canonical_weights(C, H), engine, dwx),
                 user_dwh = user_memory(canonical_weights(H, H), engine, dwx + G * C),
                 user_diff_bias = user_memory(canonical_bias(H), engine, diff_bias + d * G);
    reorder_into(user_wx, pd.weights_layer_desc(), dir.weights_layer, dir.stream);
    reorder_into(user_wh, pd.weights_iter_desc(), dir.weights_iter, dir.stream);
    // oneDNN adds the gradients to these: they start at 0 (the user's bias gradient already is).
    if (!dir.diff_weights_layer || dir.diff_weights_layer.get_desc() != pd.diff_weights_layer_desc())
      dir.diff_weights_layer = dnnl::memory(pd.diff_weights_layer_desc(), engine);
    if (!dir.diff_weights_iter || dir.diff_weights_iter.get_desc() != pd.diff_weights_iter_desc())
      dir.diff_weights_iter = dnnl::memory(pd.diff_weights_iter_desc(), engine);
    zero(dir.diff_weights_layer);
    zero(dir.diff_weights_iter);
    dnnl::memory diff_bias_memory = argument(user_diff_bias, pd.diff_bias_desc(), dir.diff_bias, dir.stream, false);
    zero(diff_bias_memory);
    // LSTM backward reads the gates from the workspace, not the bias; it gets zeros.
    if (!dir.zero_bias || dir.zero_bias.get_desc() != pd.bias_desc()) {
      dir.zero_bias = dnnl::memory(pd.bias_desc(), engine);
      zero(dir.zero_bias);
    }
    std::unordered_map<int, dnnl::memory> args{
        {DNNL_ARG_SRC_LAYER, user_memory(pd.src_layer_desc(), engine, dir.src.data())},
        {DNNL_ARG_SRC_ITER, user_memory(pd.src_iter_desc(), engine, shared.zeros.data())},
        {DNNL_ARG_SRC_ITER_C, user_memory(pd.src_iter_c_desc(), engine, shared.zeros.data())},
        {DNNL_ARG_WEIGHTS_LAYER, dir.weights_layer},
        {DNNL_ARG_WEIGHTS_ITER, dir.weights_iter},
        {DNNL_ARG_BIAS, dir.zero_bias},
        {DNNL_ARG_DST_LAYER, user_memory(pd.dst_layer_desc(), engine, dir.dst.data())},
        {DNNL_ARG_WORKSPACE, user_memory(pd.workspace_desc(), engine, dir.workspace.data())},
        {DNNL_ARG_DIFF_DST_LAYER, user_memory(pd.diff_dst_layer_desc(), engine, shared.diff_dst.data())},
        {DNNL_ARG_DIFF_SRC_LAYER, user_memory(pd.diff_src_layer_desc(), engine, shared.diff_src.data())},
        {DNNL_ARG_DIFF_SRC_ITER, user_memory(pd.diff_src_iter_desc(), engine, shared.diff_initial.data())},
        {DNNL_ARG_DIFF_SRC_ITER_C,
         user_memory(pd.diff_src_iter_c_desc(), engine, shared.diff_initial.data() + s.n * H)},
        {DNNL_ARG_DIFF_WEIGHTS_LAYER, dir.diff_weights_layer},
        {DNNL_ARG_DIFF_WEIGHTS_ITER, dir.diff_weights_iter},
        {DNNL_ARG_DIFF_BIAS, diff_bias_memory},
        {DNNL_ARG_SCRATCHPAD, user_memory(pd.scratchpad_desc(), engine, shared.scratchpad.data())}};
    TS_DNNL(p.backward.execute(dir.stream, args));
    TS_DNNL(dnnl::reorder(dir.diff_weights_layer, user_dwx).execute(dir.stream, dir.diff_weights_layer, user_dwx));
    TS_DNNL(dnnl::reorder(dir.diff_weights_iter, user_dwh).execute(dir.stream, dir.diff_weights_iter, user_dwh));
    if (diff_bias_memory.get_data_handle() != user_diff_bias.get_data_handle())
      TS_DNNL(dnnl::reorder(diff_bias_memory, user_diff_bias).execute(dir.stream, diff_bias_memory, user_diff_bias));
    dir.stream.wait();
  };
  for_each_direction(D, work, [&](Index d) {
    if (diff_src)
      add_diff_src(d, s.n, s.t, C, st->lengths.data(), scratch_of(scratch, d, together).diff_src.data(), diff_src);
  });
}

}  // namespace textscale::engine::cpu

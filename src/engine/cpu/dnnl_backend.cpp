#include "textscale/engine/cpu/dnnl_backend.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <list>
#include <oneapi/dnnl/dnnl.hpp>
#include <tuple>
#include <vector>

#include "cpu_kernels.h"
#include "dnnl_check.h"
#include "lstm.h"
#include "textscale/engine/buffer.h"
#include "winograd.h"

// oneDNN's memory objects are spelled dnnl::memory: inside the backend, `memory` is Backend::memory().
namespace textscale::engine {

using tag = dnnl::memory::format_tag;
using dt = dnnl::memory::data_type;

struct DnnlBackend::Impl {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};
  // bf16 copies of the operands of the product being computed, shared by every call site (the
  // operations run one at a time): two slots, as a backward-weights product converts both of its
  // operands. Grown to the largest operand, never shrunk: the copies cost the memory of the two
  // largest operands, not of one per layer and direction.
  Buffer<std::uint16_t> bf16_slots[2];
  cpu::LstmScratch lstm_scratch;  // the recurrent operation's scratch memory, shared the same way
};

namespace {

dnnl::memory::desc ntc(Index n, Index t, Index c) {
  return dnnl::memory::desc({n, c, t}, dt::f32, tag::nwc);
}

// A (N, C, T) activation of `type` as a primitive is asked to take it: channels-last, or `any`
// for oneDNN's blocked layout.
dnnl::memory::desc activation_desc(Index n, Index c, Index t, dt type, bool blocked) {
  return dnnl::memory::desc({n, c, t}, type, blocked ? tag::any : tag::nwc);
}

// A user buffer viewed as oneDNN memory; the data handle is set per call.
dnnl::memory user_memory(const dnnl::memory::desc& desc, const dnnl::engine& engine, const void* data) {
  return dnnl::memory(desc, engine, const_cast<void*>(data));
}

// Reorders `from` into a memory of `desc` (or returns `from` itself when the layouts agree).
dnnl::memory reordered(const dnnl::memory& from, const dnnl::memory::desc& desc, dnnl::memory& scratch,
                       dnnl::stream& stream) {
  if (from.get_desc() == desc) return from;
  if (!scratch || scratch.get_desc() != desc) scratch = dnnl::memory(desc, from.get_engine());
  dnnl::reorder(from, scratch).execute(stream, const_cast<dnnl::memory&>(from), scratch);
  return scratch;
}

void copy_back(const dnnl::memory& from, dnnl::memory& to, dnnl::stream& stream) {
  if (from.get_data_handle() == to.get_data_handle()) return;
  dnnl::reorder(from, to).execute(stream, const_cast<dnnl::memory&>(from), to);
}

dnnl::memory::dims right_padding(Index t_in, Index t_out, Index kernel, Index stride, Index pad) {
  return {(t_out - 1) * stride + kernel - t_in - pad};
}

// --- Convolution ------------------------------------------------------------------------------

// Activation layout of a convolution, per direction. oneDNN's channels-last (`nwc`) kernels run
// at the machine's GEMM rate up to 256 channels, but forward and backward-data at half of it
// with 512-channel inputs or outputs, where its blocked layout (nCw16c, chosen through `any`)
// keeps the rate; reordering the activations in and out costs ~3% of such a convolution. For
// backward-weights `nwc` is the faster one at every width (bench/conv_layouts.cpp,
// results/speed.md). In bf16 the `nwc` kernels keep the rate at 512 channels too, and the
// activations are converted anyway, so bf16 stays in `nwc`. The rule depends on the shape and
// precision only, so every run picks the same kernels.
enum class ConvDirection { forward, backward_data, backward_weights };
bool use_blocked_layout(const Conv1dShape& s, ConvDirection direction, bool bf16) {
  return !bf16 && direction != ConvDirection::backward_weights && (s.c_in >= 512 || s.c_out >= 512);
}

struct ConvPrimitives {
  bool blocked = false;
  dnnl::convolution_forward::primitive_desc forward_pd;
  dnnl::convolution_forward forward;
  dnnl::convolution_backward_data::primitive_desc data_pd;
  dnnl::convolution_backward_data backward_data;
  dnnl::convolution_backward_weights::primitive_desc weights_pd;
  dnnl::convolution_backward_weights backward_weights;
  bool has_data = false, has_weights = false;
  // Reordered copies, kept between calls: weights, and activations in the blocked layout.
  dnnl::memory weights_scratch, diff_weights_scratch, src_scratch, dst_scratch;
};

// Everything a convolution primitive depends on. A call site normally sees one key per batch
// size (the last batch of an epoch is smaller).
struct ConvKey {
  Conv1dShape shape;
  bool bias = false, relu = false, bf16 = false;
  ConvDirection direction = ConvDirection::forward;
  bool operator==(const ConvKey&) const = default;
};

struct ConvState final : OpState {
  std::list<std::pair<ConvKey, ConvPrimitives>> cache;  // a list: references stay valid
  std::vector<float> winograd_weights;                  // six matrices per group of 3 taps (winograd.h)
};

ConvState& conv_state(OpStatePtr& state) {
  if (!state) state = std::make_unique<ConvState>();
  return static_cast<ConvState&>(*state);
}

// `in`: the type of the multiplied operands (source and weights); the output is fp32 either way.
dnnl::convolution_forward::desc conv_forward_desc(const Conv1dShape& s, bool bias, bool blocked, dt in) {
  const dnnl::memory::desc src = activation_desc(s.n, s.c_in, s.t_in, in, blocked);
  const dnnl::memory::desc dst = activation_desc(s.n, s.c_out, s.t_out(), dt::f32, blocked);
  dnnl::memory::desc weights({s.c_out, s.c_in, s.kernel}, in, tag::any);
  dnnl::memory::desc bias_md({s.c_out}, dt::f32, tag::x);
  auto pad_r = right_padding(s.t_in, s.t_out(), s.kernel, s.stride, s.pad);
  if (bias)
    return {dnnl::prop_kind::forward_training,
            dnnl::algorithm::convolution_direct,
            src,
            weights,
            bias_md,
            dst,
            {s.stride},
            {s.pad},
            pad_r};
  return {dnnl::prop_kind::forward_training,
          dnnl::algorithm::convolution_direct,
          src,
          weights,
          dst,
          {s.stride},
          {s.pad},
          pad_r};
}

ConvPrimitives& conv_primitives(OpStatePtr& state, const Conv1dShape& s, bool bias, bool relu, bool bf16,
                                ConvDirection direction, const dnnl::engine& engine) {
  auto& cache = conv_state(state).cache;
  const ConvKey key{s, bias, relu, bf16, direction};
  for (auto& [k, primitives] : cache)
    if (k == key) return primitives;
  ConvPrimitives p;
  p.blocked = use_blocked_layout(s, direction, bf16);
  dnnl::primitive_attr attr;
  if (relu) {
    dnnl::post_ops ops;
    ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0.0f, 0.0f);
    attr.set_post_ops(ops);
  }
  TS_DNNL(p.forward_pd = dnnl::convolution_forward::primitive_desc(
              conv_forward_desc(s, bias, p.blocked, bf16 ? dt::bf16 : dt::f32), attr, engine));
  p.forward = dnnl::convolution_forward(p.forward_pd);
  return cache.emplace_back(key, std::move(p)).second;
}

// `from` converted by a oneDNN reorder into `wanted` (bf16, in any layout), stored in `slot`.
dnnl::memory converted(const dnnl::memory& from, const dnnl::memory::desc& wanted, Buffer<std::uint16_t>& slot,
                       dnnl::stream& stream) {
  const std::size_t elements = (wanted.get_size() + 1) / 2;
  if (slot.size() < elements) slot.resize(elements);
  dnnl::memory to(wanted, from.get_engine(), slot.data());
  dnnl::reorder(from, to).execute(stream, const_cast<dnnl::memory&>(from), to);
  return to;
}

// A user (N, T, C) buffer as the memory a primitive wants: itself, or a reordered copy in `scratch`.
dnnl::memory activation_in(const dnnl::memory::desc& user, const dnnl::memory::desc& wanted, const void* data,
                           dnnl::memory& scratch, const dnnl::engine& engine, dnnl::stream& stream) {
  return reordered(user_memory(user, engine, data), wanted, scratch, stream);
}

// Memory for a primitive's output: the user buffer, or `scratch` to be reordered back afterwards.
dnnl::memory activation_out(const dnnl::memory::desc& user, const dnnl::memory::desc& produced, void* data,
                            dnnl::memory& scratch, const dnnl::engine& engine) {
  if (produced == user) return user_memory(user, engine, data);
  if (!scratch || scratch.get_desc() != produced) scratch = dnnl::memory(produced, engine);
  return scratch;
}

// A user (N, T, C) operand of a convolution: in fp32 as activation_in; converted to bf16 in the
// backend's shared `slot` when the primitive multiplies bf16.
dnnl::memory operand_in(DnnlBackend::Impl& impl, const dnnl::memory::desc& user, const dnnl::memory::desc& wanted,
                        const void* data, dnnl::memory& scratch, int slot) {
  if (wanted.data_type() == dt::bf16)
    return converted(user_memory(user, impl.engine, data), wanted, impl.bf16_slots[slot], impl.stream);
  return activation_in(user, wanted, data, scratch, impl.engine, impl.stream);
}

// GFLOP/s of a square product of `size` done by multiply(), best of 3 after a warm-up call.
double timed_gflops(Index size, const std::function<void()>& multiply) {
  double best = 0;
  for (int i = 0; i < 4; ++i) {
    const auto start = std::chrono::steady_clock::now();
    multiply();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (i > 0) best = std::max(best, 2.0 * static_cast<double>(size * size * size) / s / 1e9);
  }
  return best;
}

// Whether `pass` of `s` runs through Winograd; `min_channels` 0: never (--winograd off).
bool use_winograd(Index min_channels, const Conv1dShape& s, cpu::WinogradPass pass) {
  return min_channels > 0 && cpu::winograd_applies(s, pass, min_channels);
}

}  // namespace

DnnlBackend::DnnlBackend(Precision precision) : DnnlBackend(BackendOptions{.precision = precision}) {}

DnnlBackend::DnnlBackend(const BackendOptions& options)
    : impl_(std::make_unique<Impl>()),
      bf16_(options.precision == Precision::bf16),
      winograd_min_channels_(options.winograd ? options.winograd_min_channels : 0) {
  validate(options);
  set_threads(options.threads);
  if (bf16_ && !bf16_supported())
    throw InputError("--precision bf16 on the CPU needs AVX512-BF16 or AMX instructions, and oneDNN finds " +
                     cpu_isa() + " on this one: use --precision fp32");
}
DnnlBackend::~DnnlBackend() = default;

bool DnnlBackend::bf16_supported() {
  const auto isa = dnnl::get_effective_cpu_isa();  // honours DNNL_MAX_CPU_ISA
  return isa == dnnl::cpu_isa::avx512_core_bf16 || isa == dnnl::cpu_isa::avx512_core_amx;
}

std::string DnnlBackend::cpu_isa() {
  switch (dnnl::get_effective_cpu_isa()) {
    case dnnl::cpu_isa::sse41:
      return "SSE4.1";
    case dnnl::cpu_isa::avx:
      return "AVX";
    case dnnl::cpu_isa::avx2:
      return "AVX2";
    case dnnl::cpu_isa::avx2_vnni:
      return "AVX2 with VNNI";
    case dnnl::cpu_isa::avx512_mic:
    case dnnl::cpu_isa::avx512_mic_4ops:
      return "AVX-512 (Xeon Phi)";
    case dnnl::cpu_isa::avx512_core:
      return "AVX-512";
    case dnnl::cpu_isa::avx512_core_vnni:
      return "AVX-512 with VNNI";
    case dnnl::cpu_isa::avx512_core_bf16:
      return "AVX-512 with BF16";
    case dnnl::cpu_isa::avx512_core_amx:
      return "AVX-512 with AMX";
    default:
      return "an instruction set it does not name";
  }
}

void DnnlBackend::set_threads(int threads) {
  if (threads > 0) omp_set_num_threads(threads);
}

int DnnlBackend::threads() {
  return omp_get_max_threads();
}

double DnnlBackend::gemm_gflops(Index size, Precision precision) {
  if (precision != Precision::bf16) {  // oneDNN's SGEMM, as the dense layers and Winograd use it
    std::vector<float> a(static_cast<std::size_t>(size * size), 1.0f), b(a.size(), 0.5f), c(a.size());
    return timed_gflops(size, [&] {
      if (dnnl_sgemm('N', 'N', size, size, size, 1.0f, a.data(), size, b.data(), size, 0.0f, c.data(), size) !=
          dnnl_success)
        throw DnnlError("dnnl_sgemm failed");
    });
  }
  // oneDNN's matmul with bf16 operands and an fp32 result, the products of --precision bf16.
  dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  dnnl::stream stream(engine);
  const dnnl::memory::desc a({size, size}, dt::bf16, tag::ab), b({size, size}, dt::bf16, tag::ab),
      c({size, size}, dt::f32, tag::ab);
  const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a, b, c), engine);
  dnnl::memory ma(pd.src_desc(), engine), mb(pd.weights_desc(), engine), mc(pd.dst_desc(), engine);
  for (dnnl::memory* m : {&ma, &mb}) {  // 1.0 in bf16
    auto* bits = static_cast<std::uint16_t*>(m->get_data_handle());
    std::fill(bits, bits + size * size, std::uint16_t{0x3f80});
  }
  const dnnl::matmul matmul(pd);
  return timed_gflops(size, [&] {
    matmul.execute(stream, {{DNNL_ARG_SRC, ma}, {DNNL_ARG_WEIGHTS, mb}, {DNNL_ARG_DST, mc}});
    stream.wait();
  });
}

void DnnlBackend::conv1d_forward(OpStatePtr& state, const Conv1dShape& s, const float* src, const float* weights,
                                 const float* bias, float* dst, bool relu) {
  if (!bf16_ &&
      use_winograd(winograd_min_channels_, s, cpu::WinogradPass::forward)) {  // half the multiply-adds (winograd.h)
    auto& transformed = conv_state(state).winograd_weights;
    cpu::winograd_weights(s, cpu::WinogradPass::forward, weights, transformed);
    cpu::winograd_conv1d(s.n, s.t_in, s.c_in, s.t_out(), s.c_out, s.kernel, s.pad, src, transformed.data(), bias, dst,
                         relu);
    return;
  }
  auto& e = impl_->engine;
  auto& strm = impl_->stream;
  auto& p = conv_primitives(state, s, bias != nullptr, relu, bf16_, ConvDirection::forward, e);
  dnnl::memory user_weights =
      user_memory(dnnl::memory::desc({s.c_out, s.c_in, s.kernel}, dt::f32, tag::oiw), e, weights);
  const dnnl::memory::desc user_dst = ntc(s.n, s.t_out(), s.c_out);
  dnnl::memory out = activation_out(user_dst, p.forward_pd.dst_desc(), dst, p.dst_scratch, e);
  std::unordered_map<int, dnnl::memory> args{
      {DNNL_ARG_SRC, operand_in(*impl_, ntc(s.n, s.t_in, s.c_in), p.forward_pd.src_desc(), src, p.src_scratch, 0)},
      {DNNL_ARG_WEIGHTS, reordered(user_weights, p.forward_pd.weights_desc(), p.weights_scratch, strm)},
      {DNNL_ARG_DST, out}};
  if (bias) args[DNNL_ARG_BIAS] = user_memory(dnnl::memory::desc({s.c_out}, dt::f32, tag::x), e, bias);
  TS_DNNL(p.forward.execute(strm, args));
  dnnl::memory user_out = user_memory(user_dst, e, dst);
  copy_back(out, user_out, strm);
  strm.wait();
}

void DnnlBackend::conv1d_backward_data(OpStatePtr& state, const Conv1dShape& s, const float* diff_dst,
                                       const float* weights, float* diff_src) {
  if (!bf16_ && use_winograd(winograd_min_channels_, s, cpu::WinogradPass::backward_data)) {
    auto& transformed = conv_state(state).winograd_weights;
    cpu::winograd_weights(s, cpu::WinogradPass::backward_data, weights, transformed);
    cpu::winograd_conv1d(s.n, s.t_out(), s.c_out, s.t_in, s.c_in, s.kernel, s.kernel - 1 - s.pad, diff_dst,
                         transformed.data(), nullptr, diff_src, false);
    return;
  }
  auto& e = impl_->engine;
  auto& strm = impl_->stream;
  // Each call site has its own state; the forward descriptor built there only serves as the hint.
  auto& p = conv_primitives(state, s, false, false, bf16_, ConvDirection::backward_data, e);
  if (!p.has_data) {
    auto pad_r = right_padding(s.t_in, s.t_out(), s.kernel, s.stride, s.pad);
    // fp32: the forward hint's layouts. bf16: a bf16 incoming gradient and an fp32 outgoing one.
    const dt in = bf16_ ? dt::bf16 : dt::f32;
    const dnnl::memory::desc diff_src_md =
        bf16_ ? activation_desc(s.n, s.c_in, s.t_in, dt::f32, p.blocked) : p.forward_pd.src_desc();
    const dnnl::memory::desc diff_dst_md =
        bf16_ ? activation_desc(s.n, s.c_out, s.t_out(), in, p.blocked) : p.forward_pd.dst_desc();
    dnnl::convolution_backward_data::desc desc(dnnl::algorithm::convolution_direct, diff_src_md,
                                               dnnl::memory::desc({s.c_out, s.c_in, s.kernel}, in, tag::any),
                                               diff_dst_md, {s.stride}, {s.pad}, pad_r);
    TS_DNNL(p.data_pd = dnnl::convolution_backward_data::primitive_desc(desc, e, p.forward_pd));
    p.backward_data = dnnl::convolution_backward_data(p.data_pd);
    p.has_data = true;
  }
  dnnl::memory user_weights =
      user_memory(dnnl::memory::desc({s.c_out, s.c_in, s.kernel}, dt::f32, tag::oiw), e, weights);
  const dnnl::memory::desc user_diff_src = ntc(s.n, s.t_in, s.c_in);
  dnnl::memory out = activation_out(user_diff_src, p.data_pd.diff_src_desc(), diff_src, p.src_scratch, e);
  std::unordered_map<int, dnnl::memory> args{
      {DNNL_ARG_DIFF_DST,
       operand_in(*impl_, ntc(s.n, s.t_out(), s.c_out), p.data_pd.diff_dst_desc(), diff_dst, p.dst_scratch, 0)},
      {DNNL_ARG_WEIGHTS, reordered(user_weights, p.data_pd.weights_desc(), p.weights_scratch, strm)},
      {DNNL_ARG_DIFF_SRC, out}};
  TS_DNNL(p.backward_data.execute(strm, args));
  dnnl::memory user_out = user_memory(user_diff_src, e, diff_src);
  copy_back(out, user_out, strm);
  strm.wait();
}

void DnnlBackend::conv1d_backward_weights(OpStatePtr& state, const Conv1dShape& s, const float* src,
                                          const float* diff_dst, float* diff_weights, float* diff_bias) {
  if (!bf16_ && use_winograd(winograd_min_channels_, s, cpu::WinogradPass::backward_weights)) {
    cpu::winograd_conv1d_backward_weights(s, src, diff_dst, diff_weights);
    if (diff_bias) cpu::column_sums(s.n * s.t_out(), s.c_out, diff_dst, diff_bias);
    return;
  }
  auto& e = impl_->engine;
  auto& strm = impl_->stream;
  // bf16: oneDNN would sum the bias gradient from the rounded incoming gradient; it is summed
  // here in fp32 instead (below), at the cost of one more read of the incoming gradient.
  const bool primitive_bias = diff_bias != nullptr && !bf16_;
  auto& p = conv_primitives(state, s, primitive_bias, false, bf16_, ConvDirection::backward_weights, e);
  if (!p.has_weights) {
    auto pad_r = right_padding(s.t_in, s.t_out(), s.kernel, s.stride, s.pad);
    dnnl::memory::desc weights({s.c_out, s.c_in, s.kernel}, dt::f32, tag::any);
    // The forward hint's source (bf16 in bf16 mode) and, for the incoming gradient, its output
    // layout in the multiplied type.
    const dnnl::memory::desc src_md = p.forward_pd.src_desc();
    const dnnl::memory::desc dst_md =
        bf16_ ? activation_desc(s.n, s.c_out, s.t_out(), dt::bf16, p.blocked) : p.forward_pd.dst_desc();
    auto desc = primitive_bias ? dnnl::convolution_backward_weights::desc(
                                     dnnl::algorithm::convolution_direct, src_md, weights,
                                     dnnl::memory::desc({s.c_out}, dt::f32, tag::x), dst_md, {s.stride}, {s.pad}, pad_r)
                               : dnnl::convolution_backward_weights::desc(dnnl::algorithm::convolution_direct, src_md,
                                                                          weights, dst_md, {s.stride}, {s.pad}, pad_r);
    TS_DNNL(p.weights_pd = dnnl::convolution_backward_weights::primitive_desc(desc, e, p.forward_pd));
    p.backward_weights = dnnl::convolution_backward_weights(p.weights_pd);
    p.has_weights = true;
  }
  dnnl::memory user_diff_weights =
      user_memory(dnnl::memory::desc({s.c_out, s.c_in, s.kernel}, dt::f32, tag::oiw), e, diff_weights);
  dnnl::memory diff_weights_memory = activation_out(user_diff_weights.get_desc(), p.weights_pd.diff_weights_desc(),
                                                    diff_weights, p.diff_weights_scratch, e);
  std::unordered_map<int, dnnl::memory> args{
      {DNNL_ARG_SRC, operand_in(*impl_, ntc(s.n, s.t_in, s.c_in), p.weights_pd.src_desc(), src, p.src_scratch, 0)},
      {DNNL_ARG_DIFF_DST,
       operand_in(*impl_, ntc(s.n, s.t_out(), s.c_out), p.weights_pd.diff_dst_desc(), diff_dst, p.dst_scratch, 1)},
      {DNNL_ARG_DIFF_WEIGHTS, diff_weights_memory}};
  if (primitive_bias)
    args[DNNL_ARG_DIFF_BIAS] = user_memory(dnnl::memory::desc({s.c_out}, dt::f32, tag::x), e, diff_bias);
  TS_DNNL(p.backward_weights.execute(strm, args));
  copy_back(diff_weights_memory, user_diff_weights, strm);
  strm.wait();
  if (diff_bias && !primitive_bias) cpu::column_sums(s.n * s.t_out(), s.c_out, diff_dst, diff_bias);
}

// --- Pooling ----------------------------------------------------------------------------------

namespace {

struct PoolPrimitives {
  dnnl::pooling_forward::primitive_desc training_pd, inference_pd;
  dnnl::pooling_forward training, inference;
  dnnl::pooling_backward backward;
  bool has_backward = false;
  dnnl::memory workspace;
};

struct PoolState final : OpState {
  std::list<std::pair<Pool1dShape, PoolPrimitives>> cache;
};

PoolPrimitives& pool_primitives(OpStatePtr& state, const Pool1dShape& s, const dnnl::engine& engine) {
  if (!state) state = std::make_unique<PoolState>();
  auto& cache = static_cast<PoolState&>(*state).cache;
  for (auto& [shape, primitives] : cache)
    if (shape == s) return primitives;
  PoolPrimitives p;
  auto pad_r = right_padding(s.t_in, s.t_out(), s.kernel, s.stride, s.pad);
  for (auto kind : {dnnl::prop_kind::forward_training, dnnl::prop_kind::forward_inference}) {
    dnnl::pooling_forward::desc desc(kind, dnnl::algorithm::pooling_max, ntc(s.n, s.t_in, s.c),
                                     ntc(s.n, s.t_out(), s.c), {s.stride}, {s.kernel}, {s.pad}, pad_r);
    dnnl::pooling_forward::primitive_desc pd;
    TS_DNNL(pd = dnnl::pooling_forward::primitive_desc(desc, engine));
    (kind == dnnl::prop_kind::forward_training ? p.training_pd : p.inference_pd) = pd;
  }
  p.training = dnnl::pooling_forward(p.training_pd);
  p.inference = dnnl::pooling_forward(p.inference_pd);
  p.workspace = dnnl::memory(p.training_pd.workspace_desc(), engine);
  return cache.emplace_back(s, std::move(p)).second;
}

}  // namespace

void DnnlBackend::max_pool_forward(OpStatePtr& state, const Pool1dShape& s, const float* src, float* dst,
                                   bool training) {
  auto& e = impl_->engine;
  auto& p = pool_primitives(state, s, e);
  std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_SRC, user_memory(ntc(s.n, s.t_in, s.c), e, src)},
                                             {DNNL_ARG_DST, user_memory(ntc(s.n, s.t_out(), s.c), e, dst)}};
  if (training) {
    args[DNNL_ARG_WORKSPACE] = p.workspace;
    TS_DNNL(p.training.execute(impl_->stream, args));
  } else {
    TS_DNNL(p.inference.execute(impl_->stream, args));
  }
  impl_->stream.wait();
}

void DnnlBackend::max_pool_backward(OpStatePtr& state, const Pool1dShape& s, const float* diff_dst, float* diff_src) {
  auto& e = impl_->engine;
  if (!state) throw Error("max_pool_backward called without a training forward pass");
  auto& p = pool_primitives(state, s, e);
  if (!p.has_backward) {
    auto pad_r = right_padding(s.t_in, s.t_out(), s.kernel, s.stride, s.pad);
    dnnl::pooling_backward::desc desc(dnnl::algorithm::pooling_max, ntc(s.n, s.t_in, s.c), ntc(s.n, s.t_out(), s.c),
                                      {s.stride}, {s.kernel}, {s.pad}, pad_r);
    dnnl::pooling_backward::primitive_desc pd;
    TS_DNNL(pd = dnnl::pooling_backward::primitive_desc(desc, e, p.training_pd));
    p.backward = dnnl::pooling_backward(pd);
    p.has_backward = true;
  }
  std::unordered_map<int, dnnl::memory> args{{DNNL_ARG_DIFF_DST, user_memory(ntc(s.n, s.t_out(), s.c), e, diff_dst)},
                                             {DNNL_ARG_DIFF_SRC, user_memory(ntc(s.n, s.t_in, s.c), e, diff_src)},
                                             {DNNL_ARG_WORKSPACE, p.workspace}};
  TS_DNNL(p.backward.execute(impl_->stream, args));
  impl_->stream.wait();
}

// --- Batch normalisation: own loops with double reductions (cpu_kernels.cpp says why) ------------

void DnnlBackend::batch_norm_forward(OpStatePtr&, Dims d, const float* src, const float* gamma, const float* beta,
                                     float* dst, float* save_mean, float* save_var, float* running_mean,
                                     float* running_var, bool training, double momentum, double epsilon, bool relu) {
  cpu::batch_norm_forward(d, src, gamma, beta, dst, save_mean, save_var, running_mean, running_var, training, momentum,
                          epsilon, relu);
}

void DnnlBackend::batch_norm_backward(OpStatePtr&, Dims d, const float* src, const float* dst, const float* diff_dst,
                                      const float* gamma, const float* save_mean, const float* save_var,
                                      float* diff_src, float* diff_gamma, float* diff_beta, double epsilon, bool relu) {
  cpu::batch_norm_backward(d, src, dst, diff_dst, gamma, save_mean, save_var, diff_src, diff_gamma, diff_beta, epsilon,
                           relu);
}

// --- Dense: oneDNN's SGEMM (row-major) ----------------------------------------------------------

namespace {

void sgemm(char transa, char transb, Index m, Index n, Index k, const float* a, Index lda, const float* b, Index ldb,
           float* c, Index ldc) {
  dnnl_status_t status = dnnl_sgemm(transa, transb, m, n, k, 1.0f, a, lda, b, ldb, 0.0f, c, ldc);
  if (status != dnnl_success)
    throw DnnlError("oneDNN: dnnl_sgemm(" + std::to_string(m) + "x" + std::to_string(n) + "x" + std::to_string(k) +
                    ") failed with status " + std::to_string(status));
}

}  // namespace

// --- Dense in bf16: oneDNN's matmul ---------------------------------------------------------------

namespace {

// What a bf16 product computes, for the primitive cache.
enum class MatmulUse { forward, backward_data, backward_weights };
struct MatmulKey {
  LinearShape shape;
  MatmulUse use = MatmulUse::forward;
  bool operator==(const MatmulKey&) const = default;
};
struct MatmulPrimitive {
  dnnl::matmul::primitive_desc pd;
  dnnl::matmul matmul;
};

struct LinearState final : OpState {
  Buffer<float> transposed;  // fp32: dst^T (O, N)
  std::list<std::pair<MatmulKey, MatmulPrimitive>> matmuls;
};

LinearState& linear_state(OpStatePtr& state) {
  if (!state) state = std::make_unique<LinearState>();
  return static_cast<LinearState&>(*state);
}

// c (m, n, row-major fp32) = a (m, k) * b (k, n), multiplying bf16 copies of a and b with fp32
// accumulation. `a_user` and `b_user` describe the fp32 operands as they lie in memory (a
// transposed operand is a `ba` view); oneDNN reorders convert them, `a` into a row-major bf16
// copy, `b` into the primitive's packed layout. A transposing conversion of a large operand is
// slow, so callers orient the product to keep the weights untransposed: VDCNN-9's 4096 -> 2048
// layer took 7.9 ms forward at batch 64 with its weights as a transposed `b`, 3.2 ms as `a`.
void bf16_matmul(DnnlBackend::Impl& impl, LinearState& state, const MatmulKey& key, const dnnl::memory::desc& a_user,
                 const float* a, const dnnl::memory::desc& b_user, const float* b, float* c) {
  const dnnl::engine& engine = impl.engine;
  dnnl::stream& stream = impl.stream;
  const auto a_dims = a_user.dims(), b_dims = b_user.dims();
  const Index m = a_dims[0], k = a_dims[1], n = b_dims[1];
  MatmulPrimitive* p = nullptr;
  for (auto& [cached, primitive] : state.matmuls)
    if (cached == key) p = &primitive;
  if (!p) {
    MatmulPrimitive made;
    const dnnl::memory::desc a_md({m, k}, dt::bf16, tag::ab), b_md({k, n}, dt::bf16, tag::any),
        c_md({m, n}, dt::f32, tag::ab);
    TS_DNNL(made.pd = dnnl::matmul::primitive_desc(dnnl::matmul::desc(a_md, b_md, c_md), engine));
    made.matmul = dnnl::matmul(made.pd);
    p = &state.matmuls.emplace_back(key, std::move(made)).second;
  }
  std::unordered_map<int, dnnl::memory> args{
      {DNNL_ARG_SRC, converted(user_memory(a_user, engine, a), p->pd.src_desc(), impl.bf16_slots[0], stream)},
      {DNNL_ARG_WEIGHTS, converted(user_memory(b_user, engine, b), p->pd.weights_desc(), impl.bf16_slots[1], stream)},
      {DNNL_ARG_DST, user_memory(dnnl::memory::desc({m, n}, dt::f32, tag::ab), engine, c)}};
  TS_DNNL(p->matmul.execute(stream, args));
  stream.wait();
}

// An fp32 row-major (rows, cols) matrix, or its transpose (cols, rows) as a view.
dnnl::memory::desc matrix(Index rows, Index cols) {
  return dnnl::memory::desc({rows, cols}, dt::f32, tag::ab);
}
dnnl::memory::desc transposed_view(Index rows, Index cols) {
  return dnnl::memory::desc({cols, rows}, dt::f32, tag::ba);
}

}  // namespace

void DnnlBackend::linear_forward(OpStatePtr& state, const LinearShape& s, const float* src, const float* weights,
                                 const float* bias, float* dst, bool relu) {
  // dst^T (O, N) = weights (O, I) * src^T, then transposed with the bias and ReLU: SGEMM runs at
  // 150 GFLOP/s in this orientation and at 100 in the direct one, dst = src * weights^T
  // (4096 -> 2048 at batch 128, 2 threads); the transpose of the small (O, N) result is cheap.
  // bf16 takes the same orientation, which converts the weights without transposing them.
  auto& linear = linear_state(state);
  auto& transposed = linear.transposed;
  if (transposed.size() < static_cast<std::size_t>(s.n * s.out))
    transposed.resize(static_cast<std::size_t>(s.n * s.out));
  if (bf16_)
    bf16_matmul(*impl_, linear, {s, MatmulUse::forward}, matrix(s.out, s.in), weights, transposed_view(s.n, s.in), src,
                transposed.data());
  else
    sgemm('N', 'T', s.out, s.n, s.in, weights, s.in, src, s.in, transposed.data(), s.n);
  cpu::transpose_add_bias(s.out, s.n, transposed.data(), bias, dst, relu);
}

void DnnlBackend::linear_backward_data(OpStatePtr& state, const LinearShape& s, const float* diff_dst,
                                       const float* weights, float* diff_src) {
  if (bf16_) {  // diff_src (N, I) = diff_dst (N, O) * weights (O, I)
    bf16_matmul(*impl_, linear_state(state), {s, MatmulUse::backward_data}, matrix(s.n, s.out), diff_dst,
                matrix(s.out, s.in), weights, diff_src);
    return;
  }
  sgemm('N', 'N', s.n, s.in, s.out, diff_dst, s.out, weights, s.in, diff_src, s.in);
}

void DnnlBackend::linear_backward_weights(OpStatePtr& state, const LinearShape& s, const float* src,
                                          const float* diff_dst, float* diff_weights, float* diff_bias) {
  if (bf16_) {  // diff_weights (O, I) = diff_dst^T (O, N) * src (N, I)
    bf16_matmul(*impl_, linear_state(state), {s, MatmulUse::backward_weights}, transposed_view(s.n, s.out), diff_dst,
                matrix(s.n, s.in), src, diff_weights);
    if (diff_bias) cpu::column_sums(s.n, s.out, diff_dst, diff_bias);
    return;
  }
  sgemm('T', 'N', s.out, s.in, s.n, diff_dst, s.out, src, s.in, diff_weights, s.in);
  if (diff_bias) cpu::column_sums(s.n, s.out, diff_dst, diff_bias);
}

// --- Hand-written operations (cpu_kernels.cpp) ---------------------------------------------------

void DnnlBackend::onehot_conv1d_forward(OpStatePtr& state, const Conv1dShape& s, const std::uint8_t* codes,
                                        const float* weights, const float* bias, float* dst, bool relu) {
  cpu::onehot_conv1d_forward(state, s, codes, weights, bias, dst, relu);
}
void DnnlBackend::onehot_conv1d_backward_weights(OpStatePtr& state, const Conv1dShape& s, const std::uint8_t* codes,
                                                 const float* diff_dst, float* diff_weights, float* diff_bias) {
  cpu::onehot_conv1d_backward_weights(state, s, codes, diff_dst, diff_weights, diff_bias);
}
void DnnlBackend::onehot_conv1d_relu_pool_forward(OpStatePtr& state, const OneHotPoolShape& s,
                                                  const std::uint8_t* codes, const float* weights, const float* bias,
                                                  float* dst, bool training) {
  cpu::onehot_conv1d_relu_pool_forward(state, s, codes, weights, bias, dst, training);
}
void DnnlBackend::onehot_conv1d_relu_pool_backward_weights(OpStatePtr& state, const OneHotPoolShape& s,
                                                           const std::uint8_t* codes, const float* dst,
                                                           const float* diff_dst, float* diff_weights,
                                                           float* diff_bias) {
  cpu::onehot_conv1d_relu_pool_backward_weights(state, s, codes, dst, diff_dst, diff_weights, diff_bias);
}
void DnnlBackend::kmax_pool_forward(Dims src, Index k, const float* src_data, float* dst, std::int32_t* indices) {
  cpu::kmax_pool_forward(src, k, src_data, dst, indices);
}
void DnnlBackend::kmax_pool_backward(Dims src, Index k, const float* diff_dst, const std::int32_t* indices,
                                     float* diff_src) {
  cpu::kmax_pool_backward(src, k, diff_dst, indices, diff_src);
}
void DnnlBackend::relu_forward(Index count, const float* src, float* dst) {
  cpu::relu_forward(count, src, dst);
}
void DnnlBackend::relu_backward(Index count, const float* dst, const float* diff_dst, float* diff_src) {
  cpu::relu_backward(count, dst, diff_dst, diff_src);
}
void DnnlBackend::copy(Index count, const float* src, float* dst) {
  cpu::copy(count, src, dst);
}
void DnnlBackend::add(Index count, const float* a, const float* b, float* dst) {
  cpu::add(count, a, b, dst);
}
void DnnlBackend::channel_sums(Index rows, Index c, const float* a, const float* b, double* sum_a, double* sum_ab) {
  cpu::channel_sums(rows, c, a, b, nullptr, sum_a, sum_ab);
}

void DnnlBackend::batch_norm_backward_data(Index rows, Index c, const float* src, const float* dy, const double* mean,
                                           const double* inv_std, const float* gamma, const double* mean_dy,
                                           const double* mean_dy_xhat, float* diff_src) {
  cpu::batch_norm_input_gradient(rows, c, src, nullptr, dy, mean, inv_std, gamma, mean_dy, mean_dy_xhat, diff_src);
}

void DnnlBackend::dropout_forward(Index count, double p, std::uint64_t seed, std::uint64_t first, const float* src,
                                  float* dst, float* mask) {
  cpu::dropout_forward(count, p, seed, first, src, dst, mask);
}
void DnnlBackend::multiply(Index count, const float* a, const float* b, float* dst) {
  cpu::multiply(count, a, b, dst);
}
void DnnlBackend::embedding_forward(Index n, Index t, Index vocab, Index dim, const std::uint8_t* codes,
                                    const float* table, float* dst) {
  cpu::embedding_forward(n, t, vocab, dim, codes, table, dst);
}
void DnnlBackend::embedding_backward(Index n, Index t, Index vocab, Index dim, const std::uint8_t* codes,
                                     const float* diff_dst, float* diff_table) {
  cpu::embedding_backward(n, t, vocab, dim, codes, diff_dst, diff_table);
}
void DnnlBackend::embedding_forward(Index n, Index t, Index vocab, Index dim, const std::int32_t* ids,
                                    const float* table, float* dst) {
  cpu::embedding_forward(n, t, vocab, dim, ids, table, dst);
}
void DnnlBackend::embedding_backward(Index n, Index t, Index vocab, Index dim, const std::int32_t* ids,
                                     const float* diff_dst, float* diff_table) {
  cpu::embedding_backward(n, t, vocab, dim, ids, diff_dst, diff_table);
}
void DnnlBackend::embedding_backward_rows(Index n, Index t, Index vocab, Index dim, const std::int32_t* ids,
                                          const float* diff_dst, float* diff_table, std::vector<std::int32_t>& rows) {
  cpu::embedding_backward_rows(n, t, vocab, dim, ids, diff_dst, diff_table, rows);
}
// --- Recurrent: oneDNN's LSTM primitives (lstm.h) ---------------------------------------------

void DnnlBackend::rnn_forward(OpStatePtr& state, const RnnShape& shape, const float* src, const std::int32_t* lengths,
                              const float* weights, const float* bias, float* dst, bool training) {
  cpu::lstm_forward(impl_->engine, impl_->lstm_scratch, state, shape, src, lengths, weights, bias, dst, training,
                    bf16_);
}

void DnnlBackend::rnn_backward(OpStatePtr& state, const RnnShape& shape, const float* /*src*/,
                               const std::int32_t* lengths, const float* weights, const float* /*dst*/,
                               const float* diff_dst, float* diff_src, float* diff_weights, float* diff_bias) {
  cpu::lstm_backward(impl_->engine, impl_->lstm_scratch, state, shape, lengths, weights, diff_dst, diff_src,
                     diff_weights, diff_bias);
}

double DnnlBackend::softmax_cross_entropy(Index n, Index classes, const float* logits, const std::int32_t* labels,
                                          float* diff_logits) {
  return cpu::softmax_cross_entropy(n, classes, logits, labels, diff_logits);
}
void DnnlBackend::sgd_step(Index count, float* param, const float* grad, float* velocity, double lr, double momentum,
                           double weight_decay, const float* factor) {
  const float f = factor ? *factor : 1.0f;
  if (f != 0) cpu::sgd_step(count, param, grad, velocity, lr, momentum, weight_decay, f);
}
void DnnlBackend::adam_step(Index count, float* param, const float* grad, float* m, float* v, double lr, double beta1,
                            double beta2, double epsilon, double weight_decay, std::int64_t step, const float* factor) {
  const float f = factor ? *factor : 1.0f;
  if (f != 0) cpu::adam_step(count, param, grad, m, v, lr, beta1, beta2, epsilon, weight_decay, step, f);
}
void DnnlBackend::sgd_step_rows(Index row_count, const std::int32_t* rows, Index row_size, float* param,
                                const float* grad, float* velocity, double lr, double momentum, double weight_decay,
                                const float* factor) {
  const float f = factor ? *factor : 1.0f;
  if (f != 0) cpu::sgd_step_rows(row_count, rows, row_size, param, grad, velocity, lr, momentum, weight_decay, f);
}
void DnnlBackend::adam_step_rows(Index row_count, const std::int32_t* rows, Index row_size, float* param,
                                 const float* grad, float* m, float* v, double lr, double beta1, double beta2,
                                 double epsilon, double weight_decay, std::int64_t step, const float* factor) {
  const float f = factor ? *factor : 1.0f;
  if (f != 0)
    cpu::adam_step_rows(row_count, rows, row_size, param, grad, m, v, lr, beta1, beta2, epsilon, weight_decay, step, f);
}
double DnnlBackend::sum_squares(Index count, const float* data) {
  return cpu::sum_squares(count, data);
}
void DnnlBackend::scale(Index count, float* data, double factor) {
  cpu::scale(count, data, factor);
}

}  // namespace textscale::engine

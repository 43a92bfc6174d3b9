// The CUDA backend: cuDNN for convolution and the recurrent layers (its RNN API), cuBLAS for the
// dense layers and the one-hot convolution's weight gradient, kernels.cu for the rest (pooling and
// batch normalisation too: cuDNN's channels-last fp32 versions ran 10-50x slower than their memory
// traffic on an H200: results/gpu.md).
//
// cuDNN API: the legacy (v7-style) convolution calls, which cuDNN 9 still ships (libcudnn_cnn)
// and which need no frontend headers (not installed here). The graph API would allow fusions
// (bias + ReLU epilogues) we do with a kernel instead; the operation list of backend.h is small
// enough that switching later touches only this file.
//
// Precision (precision.h): fp32 and TF32 convolutions read and write fp32 tensors. In bf16 a
// convolution multiplies bf16 copies of its operands with fp32 accumulation (cuDNN's
// PSEUDO_BFLOAT16 configuration, the only bf16 one of the legacy API: inputs and output bf16,
// compute fp32), and its bf16 output is widened to fp32 by the kernel that adds the bias (or by
// a conversion); weight gradients are rounded to bf16 once, after cuDNN's fp32 sum, as under
// PyTorch's autocast. Bias gradients are summed from the fp32 gradient. A shape for which cuDNN
// offers no bf16 algorithm, or refuses to run the one it offered, runs in TF32 (a warning for
// each call site and shape: forward, backward-data and backward-filter choose separately),
// as do all convolutions with CudaOptions::bf16_convolutions off (--bf16-conv off).
//
// Memory: cudaMallocManaged, so that the few host accesses outside the step loop (initialisation,
// checkpoints, MPI collectives on host data) need no staging code; pages are first touched by the
// device (cudaMemsetAsync at allocation) and stay there while only kernels use them. Input codes
// and labels reach the device through copy_to_device, logits and losses come back through
// copy_to_host. Workspaces and reduction scratch are plain device memory.
//
// One stream per backend; nothing in an operation synchronises the device except the operations
// that return a host value (softmax_cross_entropy, sum_squares, channel_sums) and a recurrent
// forward pass over rows of given lengths (cuDNN wants them on the host), which wait for their
// stream only. A training step uses their variants that leave the value in device memory
// (softmax_cross_entropy_stats, sum_squares_to, step_factor), and waits once, at its end.
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <utility>
#include <vector>

#include "check.h"
#include "kernels.h"
#include "textscale/common/log.h"
#include "textscale/cuda/cuda_backend.h"

namespace textscale::cuda {

using engine::Conv1dShape;
using engine::Dims;
using engine::Index;
using engine::LinearShape;
using engine::OpState;
using engine::OpStatePtr;
using engine::Pool1dShape;

int device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no device" error
    return 0;
  }
  return count;
}

namespace {

// Grows on demand; plain device memory for the device's own use.
class DeviceArea {
 public:
  DeviceArea() = default;
  DeviceArea(const DeviceArea&) = delete;
  DeviceArea& operator=(const DeviceArea&) = delete;
  ~DeviceArea() {
    if (data_) cudaFree(data_);
  }
  void* get(std::size_t bytes) {
    if (bytes > bytes_) {
      if (data_) TS_CHECK_CUDA(cudaFree(data_));
      data_ = nullptr;
      bytes_ = 0;
      TS_CHECK_CUDA(cudaMalloc(&data_, bytes));
      bytes_ = bytes;
    }
    return data_;
  }
  template <typename T>
  T* as(Index count) {
    return static_cast<T*>(get(static_cast<std::size_t>(count) * sizeof(T)));
  }

 private:
  void* data_ = nullptr;
  std::size_t bytes_ = 0;
};

// Page-locked host memory: input batches are read into it and copied to the device
// asynchronously.
class PinnedMemory final : public engine::Memory {
 public:
  [[nodiscard]] std::string name() const override { return "cuda-pinned-host"; }
  [[nodiscard]] void* allocate(std::size_t bytes) const override {
    void* p = nullptr;
    TS_CHECK_CUDA(cudaMallocHost(&p, std::max<std::size_t>(bytes, 1)));
    std::memset(p, 0, bytes);
    return p;
  }
  void release(void* pointer) const noexcept override { cudaFreeHost(pointer); }
  void zero(void* pointer, std::size_t bytes) const override { std::memset(pointer, 0, bytes); }
  void copy_to_device(void* dst, const void* src, std::size_t bytes) const override {
    if (bytes) std::memcpy(dst, src, bytes);
  }
  void copy_to_host(void* dst, const void* src, std::size_t bytes) const override {
    if (bytes) std::memcpy(dst, src, bytes);
  }
  [[nodiscard]] bool is_host() const override { return true; }
};

class CudaMemory final : public engine::Memory {
 public:
  explicit CudaMemory(cudaStream_t stream) : stream_(stream) {}
  ~CudaMemory() override {
    for (cudaEvent_t event : events_) cudaEventDestroy(event);  // errors at teardown are not actionable
  }
  CudaMemory(const CudaMemory&) = delete;
  CudaMemory& operator=(const CudaMemory&) = delete;
  [[nodiscard]] const engine::Memory& staging() const override { return pinned_; }
  [[nodiscard]] std::string name() const override { return "cuda-managed"; }
  [[nodiscard]] void* allocate(std::size_t bytes) const override {
    // Managed memory beyond the device's free memory would be paged (or, on some systems, hang
    // the device): refuse it with a clear message instead.
    std::size_t free = 0, total = 0;
    TS_CHECK_CUDA(cudaMemGetInfo(&free, &total));
    if (bytes > free)
      throw CudaError("cannot allocate " + std::to_string(bytes >> 20) +
                      " MiB on the GPU: " + std::to_string(free >> 20) + " MiB of " + std::to_string(total >> 20) +
                      " MiB are free (lower --batch-size)");
    void* p = nullptr;
    TS_CHECK_CUDA(cudaMallocManaged(&p, std::max<std::size_t>(bytes, 1)));
    // Zeroed on the device (its pages start there); allocations are rare, so wait for it: the
    // host may write the memory next (initialisation, checkpoints).
    TS_CHECK_CUDA(cudaMemsetAsync(p, 0, bytes, stream_));
    TS_CHECK_CUDA(cudaStreamSynchronize(stream_));
    return p;
  }
  void release(void* pointer) const noexcept override {
    cudaFree(pointer);  // synchronises the device; errors at teardown are not actionable
  }
  void zero(void* pointer, std::size_t bytes) const override {
    if (bytes) TS_CHECK_CUDA(cudaMemsetAsync(pointer, 0, bytes, stream_));
  }
  void copy_to_device(void* dst, const void* src, std::size_t bytes) const override {
    // From pageable host memory cudaMemcpyAsync returns once `src` has been staged; from pinned
    // memory (staging()) it returns at once.
    if (bytes) TS_CHECK_CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, stream_));
  }
  void copy_to_host(void* dst, const void* src, std::size_t bytes) const override {
    if (!bytes) return;
    TS_CHECK_CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, stream_));
    TS_CHECK_CUDA(cudaStreamSynchronize(stream_));
  }
  void synchronize() const override { TS_CHECK_CUDA(cudaStreamSynchronize(stream_)); }
  // Events on the stream, kept for reuse after forget_marks().
  std::size_t mark() const override {
    if (used_ == events_.size()) {
      cudaEvent_t event = nullptr;
      TS_CHECK_CUDA(cudaEventCreate(&event));
      events_.push_back(event);
    }
    TS_CHECK_CUDA(cudaEventRecord(events_[used_], stream_));
    return used_++;
  }
  [[nodiscard]] double seconds_between(std::size_t a, std::size_t b) const override {
    if (a >= used_ || b >= used_) throw Error("seconds_between: no such mark");
    TS_CHECK_CUDA(cudaEventSynchronize(events_[b]));
    float ms = 0;
    TS_CHECK_CUDA(cudaEventElapsedTime(&ms, events_[a], events_[b]));
    return 1e-3 * static_cast<double>(ms);
  }
  void forget_marks() const override { used_ = 0; }

 private:
  cudaStream_t stream_;
  PinnedMemory pinned_;
  mutable std::vector<cudaEvent_t> events_;
  mutable std::size_t used_ = 0;
};

// RAII for the cuDNN descriptors a call site keeps.
struct TensorDesc {
  cudnnTensorDescriptor_t desc = nullptr;
  TensorDesc() { TS_CHECK_CUDNN(cudnnCreateTensorDescriptor(&desc)); }
  ~TensorDesc() { cudnnDestroyTensorDescriptor(desc); }
  TensorDesc(const TensorDesc&) = delete;
  TensorDesc& operator=(const TensorDesc&) = delete;
  // (N, T, C) activations as cuDNN's NHWC with H = 1, W = T.
  void set(Index n, Index t, Index c, cudnnDataType_t type) {
    TS_CHECK_CUDNN(cudnnSetTensor4dDescriptor(desc, CUDNN_TENSOR_NHWC, type, static_cast<int>(n), static_cast<int>(c),
                                              1, static_cast<int>(t)));
  }
};

// The algorithms chosen for one convolution shape, and their workspaces.
struct ConvAlgos {
  cudnnConvolutionFwdAlgo_t forward{};
  cudnnConvolutionBwdDataAlgo_t backward_data{};
  cudnnConvolutionBwdFilterAlgo_t backward_filter{};
  cudnnMathType_t forward_math{}, data_math{}, filter_math{};
  std::size_t forward_bytes = 0, data_bytes = 0, filter_bytes = 0;
  bool bf16 = false;  // bf16 operands and output (the descriptors' data type)
};

struct ConvState final : OpState {
  TensorDesc src, dst;
  cudnnFilterDescriptor_t filter = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  Conv1dShape shape;  // the descriptors' shape
  bool bf16 = false;  // the descriptors' data type
  // Per batch size and input length (the channels, kernel, stride and padding of a call site are
  // fixed).
  std::map<std::pair<Index, Index>, ConvAlgos> algos;
  DeviceArea weights_okc, diff_okc;  // fp32 or bf16
  ConvState() {
    TS_CHECK_CUDNN(cudnnCreateFilterDescriptor(&filter));
    TS_CHECK_CUDNN(cudnnCreateConvolutionDescriptor(&conv));
  }
  ~ConvState() override {
    cudnnDestroyFilterDescriptor(filter);
    cudnnDestroyConvolutionDescriptor(conv);
  }
};

// Max pooling: the winners of the last training forward pass, for backward.
struct PoolState final : OpState {
  Pool1dShape shape;
  DeviceArea winners;
  bool has_winners = false;
};

// The fused one-hot block: the winners' offsets of the last training forward pass, and the
// backward's partial sums.
struct OneHotPoolState final : OpState {
  engine::OneHotPoolShape shape;
  DeviceArea winners, scratch;
  bool trained = false;
};

// Batch norm: per-channel sums (double) and the scale and shift of the last forward pass.
struct NormState final : OpState {
  DeviceArea sums, affine;
};

// A recurrent call site: cuDNN's descriptors for its layer (input size, hidden size, directions),
// the layer's parameters in cuDNN's weight space and where each canonical block lies in it, and
// what the last forward pass leaves for backward: the shape, the lengths cuDNN ran
// (devSeqLengths), the reserve space of a training pass and, when a row had no steps, the masked
// input cuDNN read.
struct RnnState final : OpState {
  cudnnRNNDescriptor_t rnn = nullptr;
  cudnnDropoutDescriptor_t dropout = nullptr;
  cudnnRNNDataDescriptor_t x = nullptr, y = nullptr;
  TensorDesc h;            // (D, N, H) for h and c; no initial or final state is passed
  engine::RnnShape layer;  // the RNN descriptor's input size, hidden size and directions (n, t unused)
  bool has_layer = false;
  std::size_t weight_bytes = 0;
  std::vector<kernels::RnnBlock> blocks;  // host copy of `device_blocks`
  Index largest_block = 0;
  DeviceArea device_blocks, weight_space, diff_weight_space;

  engine::RnnShape shape;  // of the last forward pass
  bool trained = false;    // it was a training pass: `reserve` holds what backward reads
  bool padded = false;     // some row had L < T
  bool masked = false;     // some row had L = 0: cuDNN read `masked_src` (step 0 of those rows zeroed)
  std::size_t work_bytes = 0, reserve_bytes = 0;
  DeviceArea lengths, reserve, masked_src, masked_diff_dst, diff_src_scratch;

  RnnState() {
    TS_CHECK_CUDNN(cudnnCreateRNNDescriptor(&rnn));
    TS_CHECK_CUDNN(cudnnCreateDropoutDescriptor(&dropout));
    TS_CHECK_CUDNN(cudnnCreateRNNDataDescriptor(&x));
    TS_CHECK_CUDNN(cudnnCreateRNNDataDescriptor(&y));
  }
  ~RnnState() override {
    cudnnDestroyRNNDataDescriptor(y);
    cudnnDestroyRNNDataDescriptor(x);
    cudnnDestroyDropoutDescriptor(dropout);
    cudnnDestroyRNNDescriptor(rnn);
  }
  RnnState(const RnnState&) = delete;
  RnnState& operator=(const RnnState&) = delete;
};

// cuDNN offers no algorithm for a convolution's shape and data type (within the workspace limit,
// deterministic where it must be).
class NoAlgorithm : public Error {
 public:
  using Error::Error;
};

// The status of a bf16 convolution call: true when cuDNN refuses it as unsupported (after its
// heuristics offered the algorithm), false on success; any other failure throws.
bool unsupported(cudnnStatus_t status, const char* call, int line) {
  if (status == CUDNN_STATUS_NOT_SUPPORTED) return true;
  if (status != CUDNN_STATUS_SUCCESS) detail::throw_cudnn(status, call, __FILE__, line);
  return false;
}

struct LinearState final : OpState {
  DeviceArea masked;
};

std::pair<Index, Index> key(const Conv1dShape& shape) {
  return {shape.n, shape.t_in};
}

template <typename S>
S& state_as(OpStatePtr& state) {
  if (auto* s = dynamic_cast<S*>(state.get())) return *s;
  state = std::make_unique<S>();
  return static_cast<S&>(*state);
}

class CudaBackend final : public engine::Backend<float> {
 public:
  explicit CudaBackend(const CudaOptions& options) : options_(options) {
    TS_CHECK_CUDA(cudaSetDevice(options.device));
    TS_CHECK_CUDA(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    TS_CHECK_CUDNN(cudnnCreate(&cudnn_));
    TS_CHECK_CUDNN(cudnnSetStream(cudnn_, stream_));
    TS_CHECK_CUBLAS(cublasCreate(&cublas_));
    TS_CHECK_CUBLAS(cublasSetStream(cublas_, stream_));
    memory_ = std::make_unique<CudaMemory>(stream_);
  }
  ~CudaBackend() override {
    cudaStreamSynchronize(stream_);
    cublasDestroy(cublas_);
    cudnnDestroy(cudnn_);
    cudaStreamDestroy(stream_);
  }
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  [[nodiscard]] std::string name() const override {
    const std::size_t v = cudnnGetVersion();
    return "cuda (device " + std::to_string(options_.device) + ", cudnn " + std::to_string(v / 10000) + "." +
           std::to_string(v % 10000 / 100) + ", " + to_string(options_.precision) + ")";
  }
  [[nodiscard]] const engine::Memory& memory() const override { return *memory_; }
  [[nodiscard]] cudaStream_t stream() const { return stream_; }

  // --- Convolution -------------------------------------------------------------------------
  void conv1d_forward(OpStatePtr& state, const Conv1dShape& shape, const float* src, const float* weights,
                      const float* bias, float* dst, bool relu) override {
    ConvState& s = conv_state(state, shape);
    const ConvAlgos& a = s.algos.at(key(shape));
    TS_CHECK_CUDNN(cudnnSetConvolutionMathType(s.conv, a.forward_math));
    const float one = 1, zero = 0;
    void* workspace = workspace_.get(a.forward_bytes);
    const Index rows = shape.n * shape.t_out();
    if (a.bf16) {
      const kernels::bf16* x = bf16_copy(bf16_src_, shape.src().count(), src);
      auto* y = bf16_dst_.as<kernels::bf16>(shape.dst().count());
      if (unsupported(cudnnConvolutionForward(cudnn_, &one, s.src.desc, x, s.filter, okc_bf16(s, shape, weights),
                                              s.conv, a.forward, workspace, a.forward_bytes, &zero, s.dst.desc, y),
                      "cudnnConvolutionForward", __LINE__)) {
        demote(s, shape, "forward");
        conv1d_forward(state, shape, src, weights, bias, dst, relu);
        return;
      }
      kernels::bias_activation(rows, shape.c_out, bias, y, dst, relu, stream_);
      return;
    }
    TS_CHECK_CUDNN(cudnnConvolutionForward(cudnn_, &one, s.src.desc, src, s.filter, okc(s, shape, weights), s.conv,
                                           a.forward, workspace, a.forward_bytes, &zero, s.dst.desc, dst));
    kernels::bias_activation(rows, shape.c_out, bias, dst, relu, stream_);
  }
  void conv1d_backward_data(OpStatePtr& state, const Conv1dShape& shape, const float* diff_dst, const float* weights,
                            float* diff_src) override {
    ConvState& s = conv_state(state, shape);
    const ConvAlgos& a = s.algos.at(key(shape));
    TS_CHECK_CUDNN(cudnnSetConvolutionMathType(s.conv, a.data_math));
    const float one = 1, zero = 0;
    void* workspace = workspace_.get(a.data_bytes);
    if (a.bf16) {
      const kernels::bf16* dy = bf16_copy(bf16_dst_, shape.dst().count(), diff_dst);
      auto* dx = bf16_src_.as<kernels::bf16>(shape.src().count());
      if (unsupported(
              cudnnConvolutionBackwardData(cudnn_, &one, s.filter, okc_bf16(s, shape, weights), s.dst.desc, dy, s.conv,
                                           a.backward_data, workspace, a.data_bytes, &zero, s.src.desc, dx),
              "cudnnConvolutionBackwardData", __LINE__)) {
        demote(s, shape, "backward-data");
        conv1d_backward_data(state, shape, diff_dst, weights, diff_src);
        return;
      }
      kernels::to_float(shape.src().count(), dx, diff_src, stream_);
      return;
    }
    TS_CHECK_CUDNN(cudnnConvolutionBackwardData(cudnn_, &one, s.filter, okc(s, shape, weights), s.dst.desc, diff_dst,
                                                s.conv, a.backward_data, workspace, a.data_bytes, &zero, s.src.desc,
                                                diff_src));
  }
  void conv1d_backward_weights(OpStatePtr& state, const Conv1dShape& shape, const float* src, const float* diff_dst,
                               float* diff_weights, float* diff_bias) override {
    ConvState& s = conv_state(state, shape);
    const ConvAlgos& a = s.algos.at(key(shape));
    TS_CHECK_CUDNN(cudnnSetConvolutionMathType(s.conv, a.filter_math));
    const float one = 1, zero = 0;
    void* workspace = workspace_.get(a.filter_bytes);
    if (a.bf16) {
      const kernels::bf16* x = bf16_copy(bf16_src_, shape.src().count(), src);
      const kernels::bf16* dy = bf16_copy(bf16_dst_, shape.dst().count(), diff_dst);
      auto* dw = s.diff_okc.as<kernels::bf16>(shape.weights_count());
      if (unsupported(cudnnConvolutionBackwardFilter(cudnn_, &one, s.src.desc, x, s.dst.desc, dy, s.conv,
                                                     a.backward_filter, workspace, a.filter_bytes, &zero, s.filter, dw),
                      "cudnnConvolutionBackwardFilter", __LINE__)) {
        demote(s, shape, "backward-filter");
        conv1d_backward_weights(state, shape, src, diff_dst, diff_weights, diff_bias);
        return;
      }
      kernels::weights_from_okc(shape.c_out, shape.c_in, shape.kernel, dw, diff_weights, stream_);
    } else {
      float* dw = s.diff_okc.as<float>(shape.weights_count());
      TS_CHECK_CUDNN(cudnnConvolutionBackwardFilter(cudnn_, &one, s.src.desc, src, s.dst.desc, diff_dst, s.conv,
                                                    a.backward_filter, workspace, a.filter_bytes, &zero, s.filter, dw));
      kernels::weights_from_okc(shape.c_out, shape.c_in, shape.kernel, dw, diff_weights, stream_);
    }
    if (diff_bias) bias_gradient(shape.n * shape.t_out(), shape.c_out, diff_dst, diff_bias);
  }
  // In bf16 the output gradient is converted once for both products, with the ReLU's mask applied
  // in the same pass; the separate calls (the default) write the masked gradient in fp32 and
  // convert it once for each product. The results are the same bits either way.
  void conv1d_backward(OpStatePtr& weights_state, OpStatePtr& data_state, const Conv1dShape& shape, const float* src,
                       const float* relu_dst, const float* diff_dst, float* masked, const float* weights,
                       float* diff_weights, float* diff_bias, float* diff_src) override {
    auto in_bf16 = [&](OpStatePtr& state) { return conv_state(state, shape).algos.at(key(shape)).bf16; };
    if (!in_bf16(weights_state) || (diff_src && !in_bf16(data_state))) {
      Backend<float>::conv1d_backward(weights_state, data_state, shape, src, relu_dst, diff_dst, masked, weights,
                                      diff_weights, diff_bias, diff_src);
      return;
    }
    // What the products fall back on when cuDNN refuses the bf16 one it offered: the fp32 gradient.
    auto fp32_gradient = [&] {
      if (!relu_dst) return diff_dst;
      kernels::relu_backward(shape.dst().count(), relu_dst, diff_dst, masked, stream_);
      return static_cast<const float*>(masked);
    };
    const float one = 1, zero = 0;
    auto* dy = bf16_dst_.as<kernels::bf16>(shape.dst().count());
    if (relu_dst)
      kernels::relu_backward_to_bf16(shape.dst().count(), relu_dst, diff_dst, dy, stream_);
    else
      kernels::to_bf16(shape.dst().count(), diff_dst, dy, stream_);

    ConvState& w = conv_state(weights_state, shape);
    const ConvAlgos& aw = w.algos.at(key(shape));
    TS_CHECK_CUDNN(cudnnSetConvolutionMathType(w.conv, aw.filter_math));
    const kernels::bf16* x = bf16_copy(bf16_src_, shape.src().count(), src);
    auto* dw = w.diff_okc.as<kernels::bf16>(shape.weights_count());
    void* workspace = workspace_.get(aw.filter_bytes);
    if (unsupported(cudnnConvolutionBackwardFilter(cudnn_, &one, w.src.desc, x, w.dst.desc, dy, w.conv,
                                                   aw.backward_filter, workspace, aw.filter_bytes, &zero, w.filter, dw),
                    "cudnnConvolutionBackwardFilter", __LINE__)) {
      demote(w, shape, "backward-filter");
      const float* grad = fp32_gradient();
      conv1d_backward_weights(weights_state, shape, src, grad, diff_weights, diff_bias);
      if (diff_src) conv1d_backward_data(data_state, shape, grad, weights, diff_src);
      return;
    }
    kernels::weights_from_okc(shape.c_out, shape.c_in, shape.kernel, dw, diff_weights, stream_);
    const Index rows = shape.n * shape.t_out();
    if (diff_bias)
      kernels::column_sums(rows, shape.c_out, diff_dst, diff_bias,
                           scratch_.as<double>(kernels::column_sums_scratch(rows, shape.c_out)), stream_, relu_dst);
    if (!diff_src) return;

    ConvState& d = conv_state(data_state, shape);
    const ConvAlgos& ad = d.algos.at(key(shape));
    TS_CHECK_CUDNN(cudnnSetConvolutionMathType(d.conv, ad.data_math));
    auto* dx = bf16_src_.as<kernels::bf16>(shape.src().count());  // x is no longer needed
    workspace = workspace_.get(ad.data_bytes);
    if (unsupported(
            cudnnConvolutionBackwardData(cudnn_, &one, d.filter, okc_bf16(d, shape, weights), d.dst.desc, dy, d.conv,
                                         ad.backward_data, workspace, ad.data_bytes, &zero, d.src.desc, dx),
            "cudnnConvolutionBackwardData", __LINE__)) {
      demote(d, shape, "backward-data");
      conv1d_backward_data(data_state, shape, fp32_gradient(), weights, diff_src);
      return;
    }
    kernels::to_float(shape.src().count(), dx, diff_src, stream_);
  }

  void onehot_conv1d_forward(OpStatePtr& /*state*/, const Conv1dShape& shape, const std::uint8_t* codes,
                             const float* weights, const float* bias, float* dst, bool relu) override {
    check_onehot(shape);
    kernels::onehot_conv_forward(shape.n, shape.t_in, shape.c_in, shape.c_out, shape.kernel, codes, weights, bias, dst,
                                 relu, onehot_weights_.as<float>(shape.weights_count()), stream_);
  }
  // The weight gradient as a GEMM of the output gradient with the unfolded one-hot input, in
  // chunks of rows that bound the unfolded matrix to 256 MiB; chunks accumulate (beta = 1).
  void onehot_conv1d_backward_weights(OpStatePtr& /*state*/, const Conv1dShape& shape, const std::uint8_t* codes,
                                      const float* diff_dst, float* diff_weights, float* diff_bias) override {
    check_onehot(shape);
    const Index width = shape.c_in * shape.kernel, t_out = shape.t_out(), rows = shape.n * t_out;
    const Index chunk = std::max<Index>(1, std::min<Index>(rows, (Index{256} << 20) / (width * 4)));
    float* unfolded = unfold_.as<float>(chunk * width);
    for (Index row0 = 0; row0 < rows; row0 += chunk) {
      const Index count = std::min(chunk, rows - row0);
      kernels::onehot_unfold(row0, count, shape.t_in, t_out, shape.c_in, shape.kernel, codes, unfolded, stream_);
      const float one = 1, beta = row0 == 0 ? 0.0f : 1.0f;
      TS_CHECK_CUBLAS(cublasGemmEx(cublas_, CUBLAS_OP_N, CUBLAS_OP_T, static_cast<int>(width),
                                   static_cast<int>(shape.c_out), static_cast<int>(count), &one, unfolded, CUDA_R_32F,
                                   static_cast<int>(width), diff_dst + row0 * shape.c_out, CUDA_R_32F,
                                   static_cast<int>(shape.c_out), &beta, diff_weights, CUDA_R_32F,
                                   static_cast<int>(width), compute_type(), CUBLAS_GEMM_DEFAULT));
    }
    if (diff_bias) bias_gradient(rows, shape.c_out, diff_dst, diff_bias);
  }

  void onehot_conv1d_relu_pool_forward(OpStatePtr& state, const engine::OneHotPoolShape& shape,
                                       const std::uint8_t* codes, const float* weights, const float* bias, float* dst,
                                       bool training) override {
    check_onehot(shape.conv);
    if (shape.pool_kernel < 1 || shape.pool_kernel > 255 || shape.pool_stride < 1 || shape.pool().t_out() < 1)
      throw Error("one-hot convolution with pooling: window 1 to 255, stride >= 1, at least one output");
    auto& s = state_as<OneHotPoolState>(state);
    const Conv1dShape& c = shape.conv;
    std::uint8_t* winners = training ? s.winners.as<std::uint8_t>(shape.dst().count()) : nullptr;
    kernels::onehot_pool_forward(c.n, c.t_in, c.c_in, c.c_out, c.kernel, shape.pool_kernel, shape.pool_stride, codes,
                                 weights, bias, dst, winners, onehot_weights_.as<float>(c.weights_count()), stream_);
    s.shape = shape;
    s.trained = training;
  }
  void onehot_conv1d_relu_pool_backward_weights(OpStatePtr& state, const engine::OneHotPoolShape& shape,
                                                const std::uint8_t* codes, const float* dst, const float* diff_dst,
                                                float* diff_weights, float* diff_bias) override {
    auto* s = dynamic_cast<OneHotPoolState*>(state.get());
    if (!s || !s->trained || !(s->shape == shape))
      throw Error("one-hot convolution and pooling: backward without a training forward pass of this shape");
    const Conv1dShape& c = shape.conv;
    float* scratch = s->scratch.as<float>(kernels::onehot_pool_backward_scratch(c.n, c.t_in, c.c_in, c.c_out, c.kernel,
                                                                                shape.pool_kernel, shape.pool_stride));
    kernels::onehot_pool_backward(c.n, c.t_in, c.c_in, c.c_out, c.kernel, shape.pool_kernel, shape.pool_stride, codes,
                                  dst, diff_dst, s->winners.as<std::uint8_t>(shape.dst().count()), diff_weights,
                                  diff_bias, scratch, stream_);
  }

  // --- Pooling ------------------------------------------------------------------------------
  // Our kernels, not cuDNN's pooling: cuDNN's NHWC pooling backward took 10x the forward's time
  // here, and ties must go to the first maximum as on the other backends.
  void max_pool_forward(OpStatePtr& state, const Pool1dShape& shape, const float* src, float* dst,
                        bool training) override {
    PoolState& s = state_as<PoolState>(state);
    std::int32_t* winners = training ? s.winners.as<std::int32_t>(shape.dst().count()) : nullptr;
    kernels::max_pool_forward(shape.n, shape.t_in, shape.c, shape.kernel, shape.stride, shape.pad, src, dst, winners,
                              stream_);
    s.shape = shape;
    s.has_winners = training;
  }
  void max_pool_backward(OpStatePtr& state, const Pool1dShape& shape, const float* diff_dst, float* diff_src) override {
    auto* s = dynamic_cast<PoolState*>(state.get());
    if (!s || !s->has_winners || !(s->shape == shape))
      throw Error("max_pool_backward without a matching training forward pass");
    kernels::max_pool_backward(shape.n, shape.t_in, shape.c, shape.kernel, shape.stride, shape.pad, diff_dst,
                               s->winners.as<std::int32_t>(shape.dst().count()), diff_src, stream_);
  }
  void kmax_pool_forward(Dims src, Index k, const float* src_data, float* dst, std::int32_t* indices) override {
    kernels::kmax_forward(src.n, src.t, src.c, k, src_data, dst, indices, stream_);
  }
  void kmax_pool_backward(Dims src, Index k, const float* diff_dst, const std::int32_t* indices,
                          float* diff_src) override {
    kernels::kmax_backward(src.n, src.t, src.c, k, diff_dst, indices, diff_src, stream_);
  }

  // --- Normalisation --------------------------------------------------------------------------
  // Batch norm with our kernels rather than cuDNN's: its NHWC (channels-last) batch norm in fp32
  // took about 1 ms forward and 1.6 ms backward for 8M elements on an H200, 50 times what the
  // memory traffic needs. Statistics come from the deterministic column sums, in double.
  void batch_norm_forward(OpStatePtr& state, Dims dims, const float* src, const float* gamma, const float* beta,
                          float* dst, float* save_mean, float* save_var, float* running_mean, float* running_var,
                          bool training, double momentum, double epsilon, bool relu) override {
    NormState& s = state_as<NormState>(state);
    const Index rows = dims.n * dims.t, c = dims.c;
    float* scale = s.affine.as<float>(2 * c);
    float* shift = scale + c;
    double* sums = nullptr;
    if (training) {
      sums = s.sums.as<double>(2 * c);  // sum, sum of squares
      kernels::column_sums(rows, c, src, nullptr, sums, sums + c,
                           scratch_.as<double>(kernels::column_sums_scratch(rows, c)), stream_);
    }
    kernels::batch_norm_statistics(rows, c, sums, sums ? sums + c : nullptr, gamma, beta, save_mean, save_var,
                                   running_mean, running_var, momentum, epsilon, scale, shift, stream_);
    kernels::batch_norm_apply(rows, c, src, scale, shift, dst, relu, stream_);
  }
  void batch_norm_backward(OpStatePtr& state, Dims dims, const float* src, const float* dst, const float* diff_dst,
                           const float* gamma, const float* save_mean, const float* save_var, float* diff_src,
                           float* diff_gamma, float* diff_beta, double epsilon, bool relu) override {
    NormState& s = state_as<NormState>(state);
    const Index rows = dims.n * dims.t, c = dims.c;
    const float* mask = relu ? dst : nullptr;  // the ReLU's gradient is applied inside the kernels
    double* sums = s.sums.as<double>(6 * c);   // sum dy, sum dy * x, then the four per-channel arrays
    kernels::column_sums(rows, c, diff_dst, src, sums, sums + c,
                         scratch_.as<double>(kernels::column_sums_scratch(rows, c)), stream_, mask);
    double* per_channel = sums + 2 * c;  // mean, inv_std, mean_dy, mean_dy_xhat
    kernels::batch_norm_backward_statistics(rows, c, sums, sums + c, save_mean, save_var, epsilon, diff_gamma,
                                            diff_beta, per_channel, per_channel + c, per_channel + 2 * c,
                                            per_channel + 3 * c, stream_);
    kernels::batch_norm_backward_data(rows, c, src, diff_dst, per_channel, per_channel + c, gamma, per_channel + 2 * c,
                                      per_channel + 3 * c, diff_src, stream_, mask);
  }
  void channel_sums(Index rows, Index c, const float* a, const float* b, double* sum_a, double* sum_ab) override {
    double* device = sums_.as<double>(2 * c);
    double* scratch = scratch_.as<double>(kernels::column_sums_scratch(rows, c));
    kernels::column_sums(rows, c, a, b, device, sum_ab ? device + c : nullptr, scratch, stream_);
    memory_->copy_to_host(sum_a, device, static_cast<std::size_t>(c) * sizeof(double));
    if (sum_ab) memory_->copy_to_host(sum_ab, device + c, static_cast<std::size_t>(c) * sizeof(double));
  }
  void batch_norm_backward_data(Index rows, Index c, const float* src, const float* dy, const double* mean,
                                const double* inv_std, const float* gamma, const double* mean_dy,
                                const double* mean_dy_xhat, float* diff_src) override {
    double* device = sums_.as<double>(4 * c);
    const auto bytes = static_cast<std::size_t>(c) * sizeof(double);
    memory_->copy_to_device(device, mean, bytes);
    memory_->copy_to_device(device + c, inv_std, bytes);
    memory_->copy_to_device(device + 2 * c, mean_dy, bytes);
    memory_->copy_to_device(device + 3 * c, mean_dy_xhat, bytes);
    kernels::batch_norm_backward_data(rows, c, src, dy, device, device + c, gamma, device + 2 * c, device + 3 * c,
                                      diff_src, stream_);
  }

  // --- Element-wise ---------------------------------------------------------------------------
  void relu_forward(Index count, const float* src, float* dst) override {
    kernels::relu_forward(count, src, dst, stream_);
  }
  void relu_backward(Index count, const float* dst, const float* diff_dst, float* diff_src) override {
    kernels::relu_backward(count, dst, diff_dst, diff_src, stream_);
  }
  void copy(Index count, const float* src, float* dst) override {
    if (count && src != dst)
      TS_CHECK_CUDA(cudaMemcpyAsync(dst, src, static_cast<std::size_t>(count) * sizeof(float), cudaMemcpyDeviceToDevice,
                                    stream_));
  }
  void add(Index count, const float* a, const float* b, float* dst) override {
    kernels::add(count, a, b, dst, stream_);
  }
  void dropout_forward(Index count, double p, std::uint64_t seed, std::uint64_t first, const float* src, float* dst,
                       float* mask) override {
    kernels::dropout_forward(count, p, seed, first, src, dst, mask, stream_);
  }
  void multiply(Index count, const float* a, const float* b, float* dst) override {
    kernels::multiply(count, a, b, dst, stream_);
  }

  // --- Dense --------------------------------------------------------------------------------
  // Row-major (N, I) x (O, I)^T as cuBLAS's column-major dst^T (O, N) = W (O, I) x src^T (I, N).
  void linear_forward(OpStatePtr& /*state*/, const LinearShape& shape, const float* src, const float* weights,
                      const float* bias, float* dst, bool relu) override {
    gemm(CUBLAS_OP_T, CUBLAS_OP_N, shape.out, shape.n, shape.in, weights, shape.in, src, shape.in, dst, shape.out,
         0.0f);
    kernels::bias_activation(shape.n, shape.out, bias, dst, relu, stream_);
  }
  // diff_src^T (I, N) = W^T (I, O) x diff_dst^T (O, N).
  void linear_backward_data(OpStatePtr& /*state*/, const LinearShape& shape, const float* diff_dst,
                            const float* weights, float* diff_src) override {
    gemm(CUBLAS_OP_N, CUBLAS_OP_N, shape.in, shape.n, shape.out, weights, shape.in, diff_dst, shape.out, diff_src,
         shape.in, 0.0f);
  }
  // diff_W^T (I, O) = src^T (I, N) x diff_dst (N, O).
  void linear_backward_weights(OpStatePtr& /*state*/, const LinearShape& shape, const float* src, const float* diff_dst,
                               float* diff_weights, float* diff_bias) override {
    gemm(CUBLAS_OP_N, CUBLAS_OP_T, shape.in, shape.out, shape.n, src, shape.in, diff_dst, shape.out, diff_weights,
         shape.in, 0.0f);
    if (diff_bias) bias_gradient(shape.n, shape.out, diff_dst, diff_bias);
  }

  // --- Embedding ------------------------------------------------------------------------------
  void embedding_forward(Index n, Index t, Index /*vocab*/, Index dim, const std::uint8_t* codes, const float* table,
                         float* dst) override {
    kernels::embedding_forward(n * t, dim, codes, table, dst, stream_);
  }
  void embedding_backward(Index n, Index t, Index vocab, Index dim, const std::uint8_t* codes, const float* diff_dst,
                          float* diff_table) override {
    kernels::embedding_backward(n * t, vocab, dim, codes, diff_dst, diff_table,
                                scratch_.as<double>(kernels::embedding_backward_scratch(n * t, vocab, dim)), stream_);
  }
  void embedding_forward(Index n, Index t, Index vocab, Index dim, const std::int32_t* ids, const float* table,
                         float* dst) override {
    kernels::embedding_forward(n * t, vocab, dim, ids, table, dst, stream_);
  }
  void embedding_backward(Index n, Index t, Index vocab, Index dim, const std::int32_t* ids, const float* diff_dst,
                          float* diff_table) override {
    kernels::embedding_backward(n * t, vocab, dim, ids, diff_dst, diff_table,
                                scratch_.get(kernels::word_embedding_backward_scratch(n * t, vocab)), stream_);
  }

  // --- Recurrent ----------------------------------------------------------------------------
  // cuDNN's RNN API (cudnnRNNForward, cudnnRNNBackwardData_v8, cudnnRNNBackwardWeights_v8) on our
  // (N, T, C) tensors as its batch-major unpacked layout, one layer, no initial or final states.
  // The canonical weights (dims.h, PyTorch's layout with one bias) are copied into cuDNN's weight
  // space at each forward pass and the weight-space gradient copied back at each backward pass
  // (rnn_state); cuDNN's single input bias (CUDNN_RNN_SINGLE_INP_BIAS) is our bias exactly.
  // Rows with L = 0: cuDNN refuses empty sequences, so it runs them for one step on a zeroed input
  // with a zeroed output gradient (which contributes nothing to the weight gradients) and their
  // output and input gradient are zeroed afterwards (mask_padding), as the contract wants.
  void rnn_forward(OpStatePtr& state, const engine::RnnShape& shape, const float* src, const std::int32_t* lengths,
                   const float* weights, const float* bias, float* dst, bool training) override {
    RnnState& s = rnn_state(state, shape);
    s.shape = shape;
    s.trained = false;
    if (shape.n == 0 || shape.t == 0) {
      s.trained = training;
      return;
    }
    set_rnn_lengths(s, shape, lengths, "rnn_forward");
    const cudnnForwardMode_t mode = training ? CUDNN_FWD_MODE_TRAINING : CUDNN_FWD_MODE_INFERENCE;
    TS_CHECK_CUDNN(cudnnGetRNNTempSpaceSizes(cudnn_, s.rnn, mode, s.x, &s.work_bytes, &s.reserve_bytes));
    kernels::rnn_to_packed(s.device_blocks.as<kernels::RnnBlock>(static_cast<Index>(s.blocks.size())),
                           static_cast<int>(s.blocks.size()), s.largest_block, weights, bias,
                           static_cast<float*>(s.weight_space.get(s.weight_bytes)), stream_);
    const float* x = src;
    if (s.masked) {
      float* copy = s.masked_src.as<float>(shape.src().count());
      kernels::mask_padding(shape.n, shape.t, shape.c_in, lengths, src, copy, stream_);
      x = copy;
    }
    void* reserve = training ? s.reserve.get(s.reserve_bytes) : nullptr;
    TS_CHECK_CUDNN(cudnnRNNForward(cudnn_, s.rnn, mode, s.lengths.as<std::int32_t>(shape.n), s.x, x, s.y, dst, s.h.desc,
                                   nullptr, nullptr, s.h.desc, nullptr, nullptr, s.weight_bytes,
                                   s.weight_space.get(s.weight_bytes), s.work_bytes, workspace_.get(s.work_bytes),
                                   training ? s.reserve_bytes : 0, reserve));
    // cuDNN fills the padding of rows with L >= 1 (paddingFill 0); this also clears step 0 of the
    // rows with L = 0.
    if (s.padded)
      kernels::mask_padding(shape.n, shape.t, shape.hidden * shape.directions(), lengths, dst, dst, stream_);
    s.trained = training;
  }
  // Reads the weight space and lengths the training forward pass left in `state` (the contract's
  // same arguments), so nothing waits for the device here.
  void rnn_backward(OpStatePtr& state, const engine::RnnShape& shape, const float* src, const std::int32_t* lengths,
                    const float* /*weights*/, const float* dst, const float* diff_dst, float* diff_src,
                    float* diff_weights, float* diff_bias) override {
    auto* s = dynamic_cast<RnnState*>(state.get());
    if (!s || !s->trained || !(s->shape == shape)) throw Error("rnn_backward without a matching training forward pass");
    if (shape.n == 0 || shape.t == 0) {
      memory_->zero(diff_weights, static_cast<std::size_t>(shape.weights_count()) * sizeof(float));
      memory_->zero(diff_bias, static_cast<std::size_t>(shape.bias_count()) * sizeof(float));
      return;
    }
    const float* x = s->masked ? s->masked_src.as<float>(shape.src().count()) : src;
    const float* dy = diff_dst;
    if (s->masked) {  // the rows with L = 0 pass no gradient, whatever diff_dst holds there
      float* copy = s->masked_diff_dst.as<float>(shape.dst().count());
      kernels::mask_padding(shape.n, shape.t, shape.hidden * shape.directions(), lengths, diff_dst, copy, stream_);
      dy = copy;
    }
    // cuDNN computes the input gradient whether or not we want it (the weight gradient reads what
    // this pass leaves in the reserve space).
    float* dx = diff_src ? diff_src : s->diff_src_scratch.as<float>(shape.src().count());
    const std::int32_t* cudnn_lengths = s->lengths.as<std::int32_t>(shape.n);
    void* workspace = workspace_.get(s->work_bytes);
    void* reserve = s->reserve.get(s->reserve_bytes);
    TS_CHECK_CUDNN(cudnnRNNBackwardData_v8(cudnn_, s->rnn, cudnn_lengths, s->y, dst, dy, s->x, dx, s->h.desc, nullptr,
                                           nullptr, nullptr, s->h.desc, nullptr, nullptr, nullptr, s->weight_bytes,
                                           s->weight_space.get(s->weight_bytes), s->work_bytes, workspace,
                                           s->reserve_bytes, reserve));
    // CUDNN_WGRAD_MODE_ADD, the mode cuDNN documents for this call, adds to the buffer: clear it.
    void* diff_space = s->diff_weight_space.get(s->weight_bytes);
    TS_CHECK_CUDA(cudaMemsetAsync(diff_space, 0, s->weight_bytes, stream_));
    TS_CHECK_CUDNN(cudnnRNNBackwardWeights_v8(cudnn_, s->rnn, CUDNN_WGRAD_MODE_ADD, cudnn_lengths, s->x, x, s->h.desc,
                                              nullptr, s->y, dst, s->weight_bytes, diff_space, s->work_bytes, workspace,
                                              s->reserve_bytes, reserve));
    kernels::rnn_from_packed(s->device_blocks.as<kernels::RnnBlock>(static_cast<Index>(s->blocks.size())),
                             static_cast<int>(s->blocks.size()), s->largest_block,
                             static_cast<const float*>(diff_space), diff_weights, diff_bias, stream_);
    if (diff_src && s->padded)
      kernels::mask_padding(shape.n, shape.t, shape.c_in, lengths, diff_src, diff_src, stream_);
  }

  // --- Sequence pooling: the default bodies' loops as kernels (device memory) -------------------
  void sequence_pool_forward(engine::SequencePooling mode, Dims src, Index directions, const float* src_data,
                             const std::int32_t* lengths, float* dst, std::int32_t* argmax) override {
    kernels::sequence_pool_forward(mode, src.n, src.t, src.c, directions, src_data, lengths, dst, argmax, stream_);
  }
  void sequence_pool_backward(engine::SequencePooling mode, Dims src, Index directions, const std::int32_t* lengths,
                              const std::int32_t* argmax, const float* diff_dst, float* diff_src) override {
    kernels::sequence_pool_backward(mode, src.n, src.t, src.c, directions, lengths, argmax, diff_dst, diff_src,
                                    stream_);
  }

  // --- Loss ---------------------------------------------------------------------------------
  // softmax_cross_entropy_stats, read back at once.
  double softmax_cross_entropy(Index n, Index classes, const float* logits, const std::int32_t* labels,
                               float* diff_logits) override {
    if (n == 0) return 0;
    double* scratch = sums_.as<double>(2 * n + 4);
    double* stats = scratch + 2 * n + 1;
    kernels::softmax_cross_entropy_stats(n, classes, logits, labels, diff_logits, stats, scratch, stream_);
    double host[3] = {};
    memory_->copy_to_host(host, stats, sizeof host);
    if (host[2] > 0)
      throw Error("softmax_cross_entropy: the label of row " + std::to_string(static_cast<Index>(host[2]) - 1) +
                  " is outside [0, " + std::to_string(classes) + ")");
    return host[0];
  }

  void softmax_cross_entropy_stats(Index n, Index classes, const float* logits, const std::int32_t* labels,
                                   float* diff_logits, double* stats) override {
    kernels::softmax_cross_entropy_stats(n, classes, logits, labels, diff_logits, stats, sums_.as<double>(2 * n + 1),
                                         stream_);
  }

  // --- Optimizer ----------------------------------------------------------------------------
  void sgd_step(Index count, float* param, const float* grad, float* velocity, double lr, double momentum,
                double weight_decay, const float* factor) override {
    kernels::sgd_step(count, param, grad, velocity, static_cast<float>(lr), static_cast<float>(momentum),
                      static_cast<float>(weight_decay), factor, stream_);
  }
  void adam_step(Index count, float* param, const float* grad, float* m, float* v, double lr, double beta1,
                 double beta2, double epsilon, double weight_decay, std::int64_t step, const float* factor) override {
    const double c1 = 1.0 - std::pow(beta1, static_cast<double>(step));
    const double c2 = 1.0 - std::pow(beta2, static_cast<double>(step));
    kernels::adam_step(count, param, grad, m, v, static_cast<float>(lr / c1), static_cast<float>(beta1),
                       static_cast<float>(beta2), static_cast<float>(std::sqrt(c2)), static_cast<float>(epsilon),
                       static_cast<float>(weight_decay), factor, stream_);
  }
  double sum_squares(Index count, const float* data) override {
    if (count == 0) return 0;
    double* total = sums_.as<double>(1);
    kernels::sum_squares(count, data, total, scratch_.as<double>(kernels::reduction_blocks), stream_);
    double result = 0;
    memory_->copy_to_host(&result, total, sizeof result);
    return result;
  }
  void scale(Index count, float* data, double factor) override {
    kernels::scale(count, data, static_cast<float>(factor), stream_);
  }
  void sum_squares_to(Index count, const float* data, double* total) override {
    if (count == 0)
      TS_CHECK_CUDA(cudaMemsetAsync(total, 0, sizeof(double), stream_));
    else
      kernels::sum_squares(count, data, total, scratch_.as<double>(kernels::reduction_blocks), stream_);
  }
  void step_factor(const double* sum_squares, double clip_norm, float* factor) override {
    kernels::step_factor(sum_squares, clip_norm, factor, stream_);
  }

 private:
  [[nodiscard]] cublasComputeType_t compute_type() const {
    switch (options_.precision) {
      case Precision::fp32:
        return CUBLAS_COMPUTE_32F;
      case Precision::tf32:
        return CUBLAS_COMPUTE_32F_FAST_TF32;
      case Precision::bf16:
        return CUBLAS_COMPUTE_32F_FAST_16BF;
    }
    return CUBLAS_COMPUTE_32F;
  }
  // Column-major C (m, n) = op(A) op(B) + beta C, fp32 storage.
  void gemm(cublasOperation_t op_a, cublasOperation_t op_b, Index m, Index n, Index k, const float* a, Index lda,
            const float* b, Index ldb, float* c, Index ldc, float beta) {
    const float one = 1;
    TS_CHECK_CUBLAS(cublasGemmEx(cublas_, op_a, op_b, static_cast<int>(m), static_cast<int>(n), static_cast<int>(k),
                                 &one, a, CUDA_R_32F, static_cast<int>(lda), b, CUDA_R_32F, static_cast<int>(ldb),
                                 &beta, c, CUDA_R_32F, static_cast<int>(ldc), compute_type(), CUBLAS_GEMM_DEFAULT));
  }
  void bias_gradient(Index rows, Index cols, const float* diff_dst, float* diff_bias) {
    kernels::column_sums(rows, cols, diff_dst, diff_bias, scratch_.as<double>(kernels::column_sums_scratch(rows, cols)),
                         stream_);
  }
  static void check_onehot(const Conv1dShape& shape) {
    if (shape.stride != 1 || shape.pad != 0) throw Error("one-hot convolution supports stride 1 and no padding only");
  }
  float* okc(ConvState& s, const Conv1dShape& shape, const float* weights) {
    float* w = s.weights_okc.as<float>(shape.weights_count());
    kernels::weights_to_okc(shape.c_out, shape.c_in, shape.kernel, weights, w, stream_);
    return w;
  }
  kernels::bf16* okc_bf16(ConvState& s, const Conv1dShape& shape, const float* weights) {
    auto* w = s.weights_okc.as<kernels::bf16>(shape.weights_count());
    kernels::weights_to_okc(shape.c_out, shape.c_in, shape.kernel, weights, w, stream_);
    return w;
  }
  // `count` floats rounded to bf16 in `area`, one of the two operand areas every bf16 convolution
  // shares (operations run one at a time, in stream order).
  const kernels::bf16* bf16_copy(DeviceArea& area, Index count, const float* src) {
    auto* copy = area.as<kernels::bf16>(count);
    kernels::to_bf16(count, src, copy, stream_);
    return copy;
  }
  void set_descriptors(ConvState& s, const Conv1dShape& shape, bool bf16) {
    const cudnnDataType_t type = bf16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_FLOAT;
    s.src.set(shape.n, shape.t_in, shape.c_in, type);
    s.dst.set(shape.n, shape.t_out(), shape.c_out, type);
    TS_CHECK_CUDNN(cudnnSetFilter4dDescriptor(s.filter, type, CUDNN_TENSOR_NHWC, static_cast<int>(shape.c_out),
                                              static_cast<int>(shape.c_in), 1, static_cast<int>(shape.kernel)));
    // The compute type: fp32 in both (bf16: PSEUDO_BFLOAT16).
    TS_CHECK_CUDNN(cudnnSetConvolution2dDescriptor(s.conv, 0, static_cast<int>(shape.pad), 1,
                                                   static_cast<int>(shape.stride), 1, 1, CUDNN_CROSS_CORRELATION,
                                                   CUDNN_DATA_FLOAT));
    s.shape = shape;
    s.bf16 = bf16;
  }
  // The descriptors and algorithms of a call site (a state) for `shape`: chosen at its first
  // call with this batch size and length (bf16 first, where asked for), set again when they
  // return.
  ConvState& conv_state(OpStatePtr& state, const Conv1dShape& shape) {
    ConvState& s = state_as<ConvState>(state);
    if (s.shape == shape) return s;
    try {
      if (const auto known = s.algos.find(key(shape)); known != s.algos.end()) {
        set_descriptors(s, shape, known->second.bf16);
        return s;
      }
      std::optional<ConvAlgos> chosen;
      if (options_.precision == Precision::bf16 && options_.bf16_convolutions) {
        set_descriptors(s, shape, true);
        try {
          chosen = choose_algorithms(s);
        } catch (const NoAlgorithm& e) {
          TS_LOG(warn, "bf16: " << e.what() << "; this call site runs it in TF32");
        }
      }
      if (!chosen) {
        set_descriptors(s, shape, false);
        chosen = choose_algorithms(s);
      }
      s.algos.emplace(key(shape), *chosen);
      return s;
    } catch (...) {
      s.shape = Conv1dShape{};  // nothing chosen: the next call starts over
      throw;
    }
  }
  // A bf16 algorithm that cuDNN offered and then refused to run: this call site runs the shape in
  // TF32 from now on.
  void demote(ConvState& s, const Conv1dShape& shape, const char* pass) {
    TS_LOG(warn, "bf16: cuDNN refused the " << pass << " pass of " << describe(shape)
                                            << " that it had offered; this call site runs it in TF32");
    try {
      set_descriptors(s, shape, false);
      s.algos[key(shape)] = choose_algorithms(s);
    } catch (...) {
      s.algos.erase(key(shape));
      s.shape = Conv1dShape{};
      throw;
    }
  }
  // cuDNN's candidates, fastest first (AlgorithmSearch::measure: cuDNN times each on scratch
  // buffers, once per shape and batch size) or in the order of its heuristics: the first that
  // succeeds within the workspace limit, is deterministic (backward: a run must repeat bitwise)
  // and, for fp32, does not use tensor cores. For the data type of the descriptors of `s`.
  ConvAlgos choose_algorithms(ConvState& s) {
    constexpr std::size_t limit = std::size_t{1} << 30;
    const bool strict = options_.precision == Precision::fp32;
    TS_CHECK_CUDNN(cudnnSetConvolutionMathType(s.conv, strict ? CUDNN_FMA_MATH : CUDNN_TENSOR_OP_MATH));
    auto acceptable = [&](const auto& perf) {
      return perf.status == CUDNN_STATUS_SUCCESS && perf.memory <= limit &&
             (!strict || perf.mathType == CUDNN_FMA_MATH);  // DEFAULT_MATH permits TF32 on sm_80+
    };
    ConvAlgos a;
    a.bf16 = s.bf16;
    int found = 0;
    constexpr int wanted = 16;
    std::vector<cudnnConvolutionFwdAlgoPerf_t> forward(wanted);
    if (options_.algorithm_search == AlgorithmSearch::measure)
      TS_CHECK_CUDNN(cudnnFindConvolutionForwardAlgorithm(cudnn_, s.src.desc, s.filter, s.conv, s.dst.desc, wanted,
                                                          &found, forward.data()));
    else
      TS_CHECK_CUDNN(cudnnGetConvolutionForwardAlgorithm_v7(cudnn_, s.src.desc, s.filter, s.conv, s.dst.desc, wanted,
                                                            &found, forward.data()));
    bool ok = false;
    for (int i = 0; i < found && !ok; ++i)
      if (acceptable(forward[static_cast<std::size_t>(i)])) {
        const auto& p = forward[static_cast<std::size_t>(i)];
        a.forward = p.algo, a.forward_math = p.mathType, a.forward_bytes = p.memory, ok = true;
      }
    if (!ok) throw NoAlgorithm("cuDNN offers no forward convolution algorithm for " + describe(s.shape));
    std::vector<cudnnConvolutionBwdDataAlgoPerf_t> data(wanted);
    if (options_.algorithm_search == AlgorithmSearch::measure)
      TS_CHECK_CUDNN(cudnnFindConvolutionBackwardDataAlgorithm(cudnn_, s.filter, s.dst.desc, s.conv, s.src.desc, wanted,
                                                               &found, data.data()));
    else
      TS_CHECK_CUDNN(cudnnGetConvolutionBackwardDataAlgorithm_v7(cudnn_, s.filter, s.dst.desc, s.conv, s.src.desc,
                                                                 wanted, &found, data.data()));
    ok = false;
    for (int i = 0; i < found && !ok; ++i) {
      const auto& p = data[static_cast<std::size_t>(i)];
      if (acceptable(p) && p.determinism == CUDNN_DETERMINISTIC)
        a.backward_data = p.algo, a.data_math = p.mathType, a.data_bytes = p.memory, ok = true;
    }
    if (!ok) throw NoAlgorithm("cuDNN offers no deterministic backward-data algorithm for " + describe(s.shape));
    std::vector<cudnnConvolutionBwdFilterAlgoPerf_t> filter(wanted);
    if (options_.algorithm_search == AlgorithmSearch::measure)
      TS_CHECK_CUDNN(cudnnFindConvolutionBackwardFilterAlgorithm(cudnn_, s.src.desc, s.dst.desc, s.conv, s.filter,
                                                                 wanted, &found, filter.data()));
    else
      TS_CHECK_CUDNN(cudnnGetConvolutionBackwardFilterAlgorithm_v7(cudnn_, s.src.desc, s.dst.desc, s.conv, s.filter,
                                                                   wanted, &found, filter.data()));
    ok = false;
    for (int i = 0; i < found && !ok; ++i) {
      const auto& p = filter[static_cast<std::size_t>(i)];
      if (acceptable(p) && p.determinism == CUDNN_DETERMINISTIC)
        a.backward_filter = p.algo, a.filter_math = p.mathType, a.filter_bytes = p.memory, ok = true;
    }
    if (!ok) throw NoAlgorithm("cuDNN offers no deterministic backward-filter algorithm for " + describe(s.shape));
    return a;
  }
  static std::string describe(const Conv1dShape& s) {
    return "conv1d n " + std::to_string(s.n) + " t " + std::to_string(s.t_in) + " " + std::to_string(s.c_in) + "->" +
           std::to_string(s.c_out) + " k " + std::to_string(s.kernel) + " stride " + std::to_string(s.stride);
  }

  // The LSTM's math: fp32 uses FMA instructions only (CUDNN_DEFAULT_MATH would let cuDNN take
  // TF32 tensor cores on sm_80 and later, as PyTorch's allow_tf32 does); TF32 permits them
  // (CUDNN_DEFAULT_MATH; not CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION, which may convert fp32 data
  // to fp16 and its narrower range). bf16 keeps the LSTM's data in fp32 and runs it as TF32:
  // cuDNN's bf16 RNN would round the weights, the input and the recurrent state to bf16 at every
  // step, for layers whose cost is their sequential steps rather than their products.
  [[nodiscard]] cudnnMathType_t rnn_math() const {
    return options_.precision == Precision::fp32 ? CUDNN_FMA_MATH : CUDNN_DEFAULT_MATH;
  }
  // The state of a recurrent call site, with cuDNN's RNN descriptor and weight-space layout for
  // `shape`'s layer: set at its first call, and again only when the layer changes.
  RnnState& rnn_state(OpStatePtr& state, const engine::RnnShape& shape) {
    if (shape.cell != engine::RnnCell::lstm) throw Error("the CUDA backend runs LSTM cells only");
    if (shape.c_in < 1 || shape.hidden < 1 || shape.n < 0 || shape.t < 0)
      throw Error("recurrent layer: " + std::to_string(shape.c_in) + " inputs, " + std::to_string(shape.hidden) +
                  " hidden units, batch " + std::to_string(shape.n) + ", length " + std::to_string(shape.t));
    RnnState& s = state_as<RnnState>(state);
    engine::RnnShape layer = shape;
    layer.n = layer.t = 0;
    if (s.has_layer && s.layer == layer) return s;
    s.has_layer = false;
    s.trained = false;
    // No dropout (one layer); with dropout 0 the descriptor needs no random states.
    TS_CHECK_CUDNN(cudnnSetDropoutDescriptor(s.dropout, cudnn_, 0.0f, nullptr, 0, 0));
    // Padded input and output (CUDNN_RNN_PADDED_IO_ENABLED) for the unpacked layout.
    TS_CHECK_CUDNN(cudnnSetRNNDescriptor_v8(s.rnn, CUDNN_RNN_ALGO_STANDARD, CUDNN_LSTM, CUDNN_RNN_SINGLE_INP_BIAS,
                                            shape.bidirectional ? CUDNN_BIDIRECTIONAL : CUDNN_UNIDIRECTIONAL,
                                            CUDNN_LINEAR_INPUT, CUDNN_DATA_FLOAT, CUDNN_DATA_FLOAT, rnn_math(),
                                            static_cast<int>(shape.c_in), static_cast<int>(shape.hidden),
                                            static_cast<int>(shape.hidden), 1, s.dropout, CUDNN_RNN_PADDED_IO_ENABLED));
    TS_CHECK_CUDNN(cudnnGetRNNWeightSpaceSize(cudnn_, s.rnn, &s.weight_bytes));
    void* space = s.weight_space.get(s.weight_bytes);
    TS_CHECK_CUDA(cudaMemsetAsync(space, 0, s.weight_bytes, stream_));  // what no block covers stays 0
    s.blocks = rnn_blocks(s, shape, space);
    s.largest_block = 0;
    for (const auto& b : s.blocks) s.largest_block = std::max(s.largest_block, b.count);
    // From pageable memory: returns once `blocks` is staged.
    TS_CHECK_CUDA(cudaMemcpyAsync(s.device_blocks.as<kernels::RnnBlock>(static_cast<Index>(s.blocks.size())),
                                  s.blocks.data(), s.blocks.size() * sizeof(kernels::RnnBlock), cudaMemcpyHostToDevice,
                                  stream_));
    s.layer = layer;
    s.has_layer = true;
    return s;
  }
  // Where cuDNN keeps each canonical block (dims.h) in the weight space at `space`: per direction
  // d (cuDNN's pseudo-layer d), linear layer g < 4 is gate g's input matrix (H, C_in) and its bias
  // (H), linear layer 4 + g its recurrent matrix (H, H), in the gate order i, f, g, o that
  // PyTorch's layout shares with cuDNN. Each must be a dense row-major block of floats, as
  // cudnnGetRNNWeightParams reports it; anything else is an error rather than a silent reorder.
  std::vector<kernels::RnnBlock> rnn_blocks(RnnState& s, const engine::RnnShape& shape, void* space) {
    const Index hidden = shape.hidden, c_in = shape.c_in, rows = shape.gates() * hidden;
    const auto* base = static_cast<const char*>(space);
    TensorDesc matrix, vector;
    auto place = [&](const void* address, cudnnTensorDescriptor_t desc, Index cols, int d, int linear) {
      cudnnDataType_t type{};
      int dims = 0, dim[3] = {}, stride[3] = {};
      TS_CHECK_CUDNN(cudnnGetTensorNdDescriptor(desc, 3, &type, &dims, dim, stride));
      const auto offset = static_cast<const char*>(address) - base;
      const bool dense = type == CUDNN_DATA_FLOAT && dims == 3 && dim[0] == 1 && dim[1] == hidden && dim[2] == cols &&
                         stride[2] == 1 && (hidden == 1 || stride[1] == cols);
      if (!address || !dense || offset < 0 || offset % static_cast<std::ptrdiff_t>(sizeof(float)) != 0 ||
          static_cast<std::size_t>(offset) + static_cast<std::size_t>(hidden * cols) * sizeof(float) > s.weight_bytes)
        throw Error("cuDNN's LSTM weight space holds direction " + std::to_string(d) + ", linear layer " +
                    std::to_string(linear) + " as " + std::to_string(dims) + " dims (" + std::to_string(dim[0]) + ", " +
                    std::to_string(dim[1]) + ", " + std::to_string(dim[2]) + ") at byte " + std::to_string(offset) +
                    ", not the dense (" + std::to_string(hidden) + ", " + std::to_string(cols) +
                    ") block of floats the canonical layout maps onto");
      return static_cast<Index>(offset / static_cast<std::ptrdiff_t>(sizeof(float)));
    };
    std::vector<kernels::RnnBlock> blocks;
    for (int d = 0; d < static_cast<int>(shape.directions()); ++d) {
      const Index w_x = d * shape.direction_weights(), w_h = w_x + rows * c_in, b = d * rows;
      for (int linear = 0; linear < 8; ++linear) {
        const Index gate = linear % 4;
        const bool recurrent = linear >= 4;
        void* m = nullptr;
        void* v = nullptr;
        TS_CHECK_CUDNN(
            cudnnGetRNNWeightParams(cudnn_, s.rnn, d, s.weight_bytes, space, linear, matrix.desc, &m, vector.desc, &v));
        const Index cols = recurrent ? hidden : c_in;
        blocks.push_back({recurrent ? w_h + gate * hidden * hidden : w_x + gate * hidden * c_in,
                          place(m, matrix.desc, cols, d, linear), hidden * cols, 0});
        if (!recurrent)
          blocks.push_back({b + gate * hidden, place(v, vector.desc, 1, d, linear), hidden, 1});
        else if (v)
          throw Error("cuDNN's LSTM weight space has a recurrent bias with CUDNN_RNN_SINGLE_INP_BIAS");
      }
    }
    return blocks;
  }
  // Row lengths for cuDNN: the data descriptors' seqLengthArray on the host and the devSeqLengths
  // it reads on the device, each max(L, 1), and which rows need masking. The lengths arrive in
  // device memory and cuDNN plans its work from a host copy, so reading them back waits for the
  // stream, once per forward pass (backward reuses what forward set). devSeqLengths must hold the
  // same values as seqLengthArray, so it is a device copy of the clamped lengths (`s.lengths`,
  // made by a kernel), not the caller's array.
  void set_rnn_lengths(RnnState& s, const engine::RnnShape& shape, const std::int32_t* lengths, const char* op) {
    const auto n = static_cast<std::size_t>(shape.n);
    std::vector<std::int32_t> host(n, static_cast<std::int32_t>(shape.t));
    if (lengths) memory_->copy_to_host(host.data(), lengths, n * sizeof(std::int32_t));
    s.padded = s.masked = false;
    for (std::size_t i = 0; i < n; ++i) {
      if (host[i] < 0 || host[i] > shape.t)
        throw Error(std::string(op) + ": row " + std::to_string(i) + " has length " + std::to_string(host[i]) +
                    ", outside [0, " + std::to_string(shape.t) + "]");
      s.padded = s.padded || host[i] < shape.t;
      s.masked = s.masked || host[i] == 0;
      host[i] = std::max<std::int32_t>(host[i], 1);
    }
    kernels::rnn_lengths(shape.n, shape.t, lengths, s.lengths.as<std::int32_t>(shape.n), stream_);
    float fill = 0;  // cuDNN writes it at the output's padding
    const int t = static_cast<int>(shape.t), batch = static_cast<int>(shape.n);
    const int width = static_cast<int>(shape.hidden * shape.directions());
    TS_CHECK_CUDNN(cudnnSetRNNDataDescriptor(s.x, CUDNN_DATA_FLOAT, CUDNN_RNN_DATA_LAYOUT_BATCH_MAJOR_UNPACKED, t,
                                             batch, static_cast<int>(shape.c_in), host.data(), &fill));
    TS_CHECK_CUDNN(cudnnSetRNNDataDescriptor(s.y, CUDNN_DATA_FLOAT, CUDNN_RNN_DATA_LAYOUT_BATCH_MAJOR_UNPACKED, t,
                                             batch, width, host.data(), &fill));
    const int hidden = static_cast<int>(shape.hidden);
    const int dims[3] = {static_cast<int>(shape.directions()), batch, hidden}, strides[3] = {batch * hidden, hidden, 1};
    TS_CHECK_CUDNN(cudnnSetTensorNdDescriptor(s.h.desc, CUDNN_DATA_FLOAT, 3, dims, strides));
  }

  CudaOptions options_;
  cudaStream_t stream_ = nullptr;
  cudnnHandle_t cudnn_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  std::unique_ptr<CudaMemory> memory_;
  DeviceArea workspace_, scratch_, sums_, unfold_, onehot_weights_;
  DeviceArea bf16_src_, bf16_dst_;  // bf16 convolutions: copies of (N, T, C) operands and results
};

}  // namespace

std::unique_ptr<engine::Backend<float>> make_cuda_backend(const CudaOptions& options) {
  const int devices = device_count();
  if (devices == 0) throw CudaError("no CUDA device is visible (CUDA_VISIBLE_DEVICES, driver?)");
  if (options.device < 0 || options.device >= devices)
    throw CudaError("CUDA device " + std::to_string(options.device) + " does not exist (" + std::to_string(devices) +
                    " visible)");
  return std::make_unique<CudaBackend>(options);
}

void* backend_stream(engine::Backend<float>& backend) {
  auto* cuda = dynamic_cast<CudaBackend*>(&backend);
  return cuda ? static_cast<void*>(cuda->stream()) : nullptr;
}

}  // namespace textscale::cuda

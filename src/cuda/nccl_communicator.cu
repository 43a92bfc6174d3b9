#include <nccl.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <thread>

#include "check.h"
#include "kernels.h"
#include "textscale/cuda/cuda_backend.h"
#include "textscale/cuda/nccl_communicator.h"

namespace textscale::cuda {

namespace {

using Clock = std::chrono::steady_clock;

ncclRedOp_t to_nccl(dist::ReduceOp op) {
  switch (op) {
    case dist::ReduceOp::sum:
      return ncclSum;
    case dist::ReduceOp::max:
      return ncclMax;
    case dist::ReduceOp::min:
      return ncclMin;
  }
  return ncclSum;
}

class NcclCommunicator final : public dist::Communicator {
 public:
  NcclCommunicator(dist::Communicator& bootstrap, cudaStream_t compute, double timeout_seconds)
      : bootstrap_(bootstrap), compute_(compute), timeout_(timeout_seconds) {
    TS_CHECK_CUDA(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    ncclUniqueId id{};
    if (bootstrap.rank() == 0) TS_CHECK_NCCL(ncclGetUniqueId(&id));
    bootstrap.broadcast(&id, sizeof id, 0);
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;  // returns at once; progress() waits with a timeout
    TS_CHECK_NCCL(ncclCommInitRankConfig(&comm_, bootstrap.size(), id, bootstrap.rank(), &config));
    progress("ncclCommInitRank", [] { return true; });
  }
  ~NcclCommunicator() override {
    if (comm_) {
      if (failed_)
        ncclCommAbort(comm_);
      else
        ncclCommDestroy(comm_);
    }
    for (auto& [id, event] : pending_) cudaEventDestroy(event);
    if (staging_) cudaFree(staging_);
    cudaStreamDestroy(stream_);
  }
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  [[nodiscard]] int rank() const override { return bootstrap_.rank(); }
  [[nodiscard]] int size() const override { return bootstrap_.size(); }
  [[nodiscard]] std::string name() const override { return "nccl"; }

  void allreduce(float* data, std::size_t count, dist::ReduceOp op) override {
    wait(start(data, count, ncclFloat, op));
  }
  void allreduce(double* data, std::size_t count, dist::ReduceOp op) override {
    wait(start(data, count, ncclDouble, op));
  }
  void allreduce(std::int64_t* data, std::size_t count, dist::ReduceOp op) override {
    wait(start(data, count, ncclInt64, op));
  }
  dist::Handle allreduce_async(float* data, std::size_t count, dist::Wire wire) override {
    if (wire == dist::Wire::fp32) return start(data, count, ncclFloat, dist::ReduceOp::sum);
    // bf16: rounded into staging memory, summed there by NCCL in bf16, widened back, all on the
    // communicator's stream; the completion event follows the widening.
    kernels::bf16* narrow = staging(count);
    const auto n = static_cast<engine::Index>(count);
    return enqueue([&] {
      kernels::to_bf16(n, data, narrow, stream_);
      const ncclResult_t status = ncclAllReduce(narrow, narrow, count, ncclBfloat16, ncclSum, comm_, stream_);
      if (status == ncclSuccess || status == ncclInProgress) kernels::to_float(n, narrow, data, stream_);
      return status;
    });
  }
  bool test(dist::Handle handle) override {
    auto found = pending_.find(handle.id);
    if (found == pending_.end()) return true;
    check_async("all-reduce");
    const cudaError_t status = cudaEventQuery(found->second);
    if (status == cudaErrorNotReady) return false;
    TS_CHECK_CUDA(status);
    // Done: nobody waits for this handle now (the reducer does not wait for buckets it saw
    // finish), so its event goes here; later work on the compute stream follows it anyway.
    TS_CHECK_CUDA(cudaEventDestroy(found->second));
    pending_.erase(found);
    return true;
  }
  void wait(dist::Handle handle) override {
    auto found = pending_.find(handle.id);
    if (found == pending_.end()) return;
    const cudaEvent_t done = found->second;
    progress("all-reduce", [&] {
      const cudaError_t status = cudaEventQuery(done);
      if (status == cudaErrorNotReady) return false;
      TS_CHECK_CUDA(status);
      return true;
    });
    TS_CHECK_CUDA(cudaStreamWaitEvent(compute_, done, 0));  // later backend work sees the result
    TS_CHECK_CUDA(cudaEventDestroy(done));
    pending_.erase(found);
  }
  void broadcast(void* data, std::size_t bytes, int root) override {
    const dist::Handle h = enqueue([&] { return ncclBroadcast(data, data, bytes, ncclChar, root, comm_, stream_); });
    wait(h);
  }
  std::vector<std::uint64_t> allgather(std::uint64_t value) override { return bootstrap_.allgather(value); }
  std::vector<std::int32_t> allgatherv(const std::vector<std::int32_t>& values) override {
    return bootstrap_.allgatherv(values);
  }
  std::vector<std::string> gather(const std::string& bytes, int root) override {
    return bootstrap_.gather(bytes, root);
  }
  void barrier() override { bootstrap_.barrier(); }

 private:
  // Device memory for `count` bf16 values of a bf16 all-reduce, disjoint from the ones in flight:
  // taken in turn from one buffer, from its start again once none is pending (the reducer waits
  // for every bucket of a step). When the buckets in flight outgrow it, the stream is waited for
  // once and the buffer grown to hold them all, so later steps never wait here.
  kernels::bf16* staging(std::size_t count) {
    if (pending_.empty()) staging_used_ = 0;
    if (staging_used_ + count > staging_size_) {
      TS_CHECK_CUDA(cudaStreamSynchronize(stream_));
      const std::size_t needed = staging_used_ + count;
      staging_used_ = 0;
      if (needed > staging_size_) {
        if (staging_) TS_CHECK_CUDA(cudaFree(staging_));
        staging_ = nullptr;
        staging_size_ = std::max(needed, 2 * staging_size_);
        TS_CHECK_CUDA(cudaMalloc(reinterpret_cast<void**>(&staging_), staging_size_ * sizeof(kernels::bf16)));
      }
    }
    kernels::bf16* p = staging_ + staging_used_;
    staging_used_ += count;
    return p;
  }
  dist::Handle start(void* data, std::size_t count, ncclDataType_t type, dist::ReduceOp op) {
    return enqueue([&] { return ncclAllReduce(data, data, count, type, to_nccl(op), comm_, stream_); });
  }
  // Orders a collective after the backend's queued work and records its completion.
  template <typename Call>
  dist::Handle enqueue(Call call) {
    if (failed_) throw CommError("the NCCL communicator was aborted after an earlier failure");
    cudaEvent_t ready = nullptr, done = nullptr;
    TS_CHECK_CUDA(cudaEventCreateWithFlags(&ready, cudaEventDisableTiming));
    TS_CHECK_CUDA(cudaEventRecord(ready, compute_));
    TS_CHECK_CUDA(cudaStreamWaitEvent(stream_, ready, 0));
    TS_CHECK_CUDA(cudaEventDestroy(ready));
    const ncclResult_t status = call();
    if (status != ncclSuccess && status != ncclInProgress) fail(std::string("NCCL: ") + ncclGetErrorString(status));
    // A non-blocking communicator may still be enqueueing (e.g. connecting on first use): the
    // completion event must follow the collective on the stream.
    if (status == ncclInProgress) progress("enqueue", [] { return true; });
    TS_CHECK_CUDA(cudaEventCreateWithFlags(&done, cudaEventDisableTiming));
    TS_CHECK_CUDA(cudaEventRecord(done, stream_));
    const dist::Handle handle{next_++};
    pending_.emplace(handle.id, done);
    return handle;
  }
  // Polls until `finished` and NCCL reports no operation in progress, within the timeout.
  template <typename Finished>
  void progress(const char* what, Finished finished) {
    const auto start = Clock::now();
    for (;;) {
      const ncclResult_t state = check_async(what);
      if (state == ncclSuccess && finished()) return;
      if (timeout_ > 0 && std::chrono::duration<double>(Clock::now() - start).count() > timeout_)
        fail(std::string("NCCL ") + what + " did not finish within " + std::to_string(static_cast<int>(timeout_)) +
             " s (--comm-timeout): a rank died or stopped calling it");
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }
  ncclResult_t check_async(const char* what) {
    ncclResult_t state = ncclSuccess;
    TS_CHECK_NCCL(ncclCommGetAsyncError(comm_, &state));
    if (state != ncclSuccess && state != ncclInProgress)
      fail(std::string("NCCL ") + what + " failed: " + ncclGetErrorString(state) + " (" + ncclGetLastError(comm_) +
           ")");
    return state;
  }
  [[noreturn]] void fail(const std::string& message) {
    failed_ = true;
    ncclCommAbort(comm_);  // so that this rank's NCCL kernels end and peers see the failure
    comm_ = nullptr;
    throw CommError(message);
  }

  dist::Communicator& bootstrap_;
  cudaStream_t compute_;
  cudaStream_t stream_ = nullptr;
  ncclComm_t comm_ = nullptr;
  double timeout_;
  bool failed_ = false;
  std::int64_t next_ = 0;
  std::map<std::int64_t, cudaEvent_t> pending_;
  kernels::bf16* staging_ = nullptr;
  std::size_t staging_size_ = 0, staging_used_ = 0;
};

}  // namespace

std::shared_ptr<dist::Communicator> make_nccl_communicator(dist::Communicator& bootstrap,
                                                           engine::Backend<float>& backend, double timeout_seconds) {
  void* stream = backend_stream(backend);
  if (!stream) throw Error("the NCCL communicator needs a CUDA backend");
  return std::make_shared<NcclCommunicator>(bootstrap, static_cast<cudaStream_t>(stream), timeout_seconds);
}

}  // namespace textscale::cuda

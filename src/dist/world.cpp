#include <mpi.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "textscale/common/error.h"
#include "textscale/common/log.h"
#include "textscale/dist/communicator.h"
#include "textscale/dist/peer_watch.h"

namespace textscale::dist {
namespace {

std::string mpi_error_string(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, text, &length);
  return std::string(text, static_cast<std::size_t>(length));
}

// MPI errors come back as codes (MPI_ERRORS_RETURN is set on the communicators) and become
// CommError naming the call.
void check(int code, const char* call) {
  if (code != MPI_SUCCESS) throw CommError(std::string(call) + " failed: " + mpi_error_string(code));
}

MPI_Op mpi_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::sum:
      return MPI_SUM;
    case ReduceOp::max:
      return MPI_MAX;
    case ReduceOp::min:
      return MPI_MIN;
  }
  return MPI_SUM;
}

// MPI has no bf16 type: bf16 values travel as 16-bit integers, summed in float and rounded back.
void bf16_sum(void* in, void* inout, int* length, MPI_Datatype*) {
  const auto* a = static_cast<const std::uint16_t*>(in);
  auto* b = static_cast<std::uint16_t*>(inout);
  for (int i = 0; i < *length; ++i) b[i] = to_bf16(from_bf16(a[i]) + from_bf16(b[i]));
}

// MPI's non-blocking collectives advance only inside MPI calls, and backward spends long
// stretches inside oneDNN: a progress thread calls MPI_Test on the collectives in flight every
// `poll_interval` (WorldOptions::progress_microseconds), so that gradient buckets are reduced
// while backward computes. Every MPI call is made under one mutex (MPI_THREAD_SERIALIZED).
class MpiCommunicator final : public Communicator {
 public:
  // `poll_interval` 0: no progress thread.
  MpiCommunicator(MPI_Comm comm, double timeout_seconds, std::chrono::microseconds poll_interval)
      : comm_(comm), timeout_(timeout_seconds), poll_interval_(poll_interval) {
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
    check(MPI_Op_create(&bf16_sum, 1, &bf16_sum_), "MPI_Op_create");
    if (poll_interval_.count() > 0) progress_ = std::thread([this] { progress_loop(); });
  }
  ~MpiCommunicator() override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    wake_.notify_all();
    if (progress_.joinable()) progress_.join();
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Op_free(&bf16_sum_);
  }
  [[nodiscard]] int rank() const override { return rank_; }
  [[nodiscard]] int size() const override { return size_; }
  [[nodiscard]] std::string name() const override { return "mpi"; }
  // Waits then also end when the failure detector has lost a rank (set once, before training).
  void watch(std::shared_ptr<const PeerWatch> peers) {
    std::lock_guard<std::mutex> lock(mutex_);  // the progress thread reads it under the mutex
    peers_ = std::move(peers);
  }

  void allreduce(float* data, std::size_t count, ReduceOp op) override { blocking(data, count, MPI_FLOAT, op); }
  void allreduce(double* data, std::size_t count, ReduceOp op) override { blocking(data, count, MPI_DOUBLE, op); }
  void allreduce(std::int64_t* data, std::size_t count, ReduceOp op) override {
    blocking(data, count, MPI_INT64_T, op);
  }

  Handle allreduce_async(float* data, std::size_t count, Wire wire) override {
    if (wire == Wire::fp32) return start(data, count, MPI_FLOAT, ReduceOp::sum);
    // bf16: the bucket's values rounded into a buffer of the request's own, summed there with a
    // user-defined operation, widened back into `data` when the request is seen complete.
    // Buffers are reused: fresh ones of megabytes would be zeroed page by page on every bucket.
    std::vector<std::uint16_t> narrow;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!spare_.empty()) {
        narrow = std::move(spare_.back());
        spare_.pop_back();
      }
    }
    narrow.resize(count);
    for (std::size_t i = 0; i < count; ++i) narrow[i] = to_bf16(data[i]);
    return start(nullptr, count, MPI_UINT16_T, bf16_sum_, data, std::move(narrow));
  }

  bool test(Handle handle) override {
    std::lock_guard<std::mutex> lock(mutex_);
    // A finished request is forgotten here: the gradient reducer never waits for buckets it saw
    // finish, and requests kept would pile up, step after step, in the progress thread's loop
    // (a later wait() on the handle returns at once).
    if (!test_locked(handle.id)) return false;
    requests_.erase(handle.id);
    return true;
  }

  void wait(Handle handle) override {
    // Poll rather than MPI_Wait: ranks may share cores, and the wait has a time limit so that a
    // rank that died or diverged ends the job instead of stalling it. The first 200 us poll
    // back to back (a bucket about to finish); then the rank sleeps 50 us between polls, so that
    // a rank waiting for a slower one does not take the processor's shared resources (a
    // virtual machine's cores, a core's other hardware thread) from it or from this rank's own
    // progress thread.
    const auto start = std::chrono::steady_clock::now();
    for (int polls = 0;; ++polls) {
      // A lost rank ends the wait before MPI is called again (it might abort this process on
      // the peer's closed connection without naming it).
      if (peers_) {
        const std::string lost = peers_->lost();
        if (!lost.empty()) throw CommError(lost);
      }
      {
        std::lock_guard<std::mutex> lock(mutex_);
        if (test_locked(handle.id)) {
          requests_.erase(handle.id);
          return;
        }
      }
      if (timeout_ > 0 && polls % 64 == 63) {
        const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        if (waited > timeout_) {
          const std::string silent = peers_ ? peers_->silent(3.0) : "";
          throw CommError("a collective did not complete within " + std::to_string(static_cast<int>(timeout_)) +
                          " s (--comm-timeout): another rank died or stopped responding" +
                          (silent.empty() ? "" : "; no heartbeat from " + silent));
        }
      }
      if (std::chrono::steady_clock::now() - start < std::chrono::microseconds(200))
        sched_yield();
      else
        std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }

  void broadcast(void* data, std::size_t bytes, int root) override {
    auto* p = static_cast<char*>(data);
    constexpr std::size_t kPiece = std::size_t{1} << 30;  // MPI counts are int
    for (std::size_t done = 0; done < bytes; done += kPiece) {
      const auto piece = static_cast<int>(std::min(kPiece, bytes - done));
      MPI_Request request;
      {
        std::lock_guard<std::mutex> lock(mutex_);
        check(MPI_Ibcast(p + done, piece, MPI_BYTE, root, comm_, &request), "MPI_Ibcast");
      }
      wait(remember(request));
    }
  }

  std::vector<std::uint64_t> allgather(std::uint64_t value) override {
    std::vector<std::uint64_t> all(static_cast<std::size_t>(size_));
    MPI_Request request;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      check(MPI_Iallgather(&value, 1, MPI_UINT64_T, all.data(), 1, MPI_UINT64_T, comm_, &request), "MPI_Iallgather");
    }
    wait(remember(request));
    return all;
  }

  std::vector<std::int32_t> allgatherv(const std::vector<std::int32_t>& values) override {
    const Layout layout = gather_layout(values.size(), "all-gather of values");
    std::vector<std::int32_t> all(layout.total);
    MPI_Request request;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      check(MPI_Iallgatherv(values.data(), static_cast<int>(values.size()), MPI_INT32_T, all.data(),
                            layout.sizes.data(), layout.displacements.data(), MPI_INT32_T, comm_, &request),
            "MPI_Iallgatherv");
    }
    wait(remember(request));
    return all;
  }

  std::vector<std::string> gather(const std::string& bytes, int root) override {
    const Layout layout = gather_layout(bytes.size(), "gather of bytes");
    std::string all(rank_ == root ? layout.total : 0, '\0');
    MPI_Request request;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      check(MPI_Igatherv(bytes.data(), static_cast<int>(bytes.size()), MPI_BYTE, all.data(), layout.sizes.data(),
                         layout.displacements.data(), MPI_BYTE, root, comm_, &request),
            "MPI_Igatherv");
    }
    wait(remember(request));
    std::vector<std::string> parts;
    if (rank_ != root) return parts;
    for (std::size_t r = 0; r < layout.sizes.size(); ++r)
      parts.push_back(
          all.substr(static_cast<std::size_t>(layout.displacements[r]), static_cast<std::size_t>(layout.sizes[r])));
    return parts;
  }

  void barrier() override {
    MPI_Request request;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      check(MPI_Ibarrier(comm_, &request), "MPI_Ibarrier");
    }
    wait(remember(request));
  }

 private:
  // Every rank's count of a variable-size gather, and where each one's part starts.
  struct Layout {
    std::vector<int> sizes, displacements;
    std::size_t total = 0;
  };
  Layout gather_layout(std::size_t count, const std::string& what) {
    const auto limit = static_cast<std::uint64_t>(std::numeric_limits<int>::max());
    if (count > limit) throw CommError(what + ": " + std::to_string(count) + ", more than MPI's int count");
    const std::vector<std::uint64_t> counts = allgather(count);
    Layout layout{std::vector<int>(counts.size()), std::vector<int>(counts.size()), 0};
    for (std::size_t r = 0; r < counts.size(); ++r) {
      if (layout.total + counts[r] > limit) throw CommError(what + ": more in all than MPI's int count");
      layout.sizes[r] = static_cast<int>(counts[r]);
      layout.displacements[r] = static_cast<int>(layout.total);
      layout.total += counts[r];
    }
    return layout;
  }

  struct Request {
    MPI_Request request = MPI_REQUEST_NULL;
    bool done = false;
    float* widen_to = nullptr;          // a bf16 all-reduce's destination, until it is written
    std::vector<std::uint16_t> narrow;  // its bf16 values
  };

  Handle remember(MPI_Request request) { return remember(Request{request, false, nullptr, {}}); }
  Handle remember(Request request) {
    Handle handle;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      handle.id = next_id_++;
      requests_.emplace(handle.id, std::move(request));
    }
    wake_.notify_all();
    return handle;
  }

  // With mutex_ held. An unknown id has completed and been waited for.
  bool test_locked(std::int64_t id) {
    auto found = requests_.find(id);
    if (found == requests_.end()) return true;
    Request& request = found->second;
    if (!request.done) {
      int done = 0;
      check(MPI_Test(&request.request, &done, MPI_STATUS_IGNORE), "MPI_Test");
      request.done = done != 0;
    }
    if (request.done && request.widen_to) {
      for (std::size_t i = 0; i < request.narrow.size(); ++i) request.widen_to[i] = from_bf16(request.narrow[i]);
      request.widen_to = nullptr;
      spare_.push_back(std::move(request.narrow));
    }
    return request.done;
  }

  void progress_loop() {
    std::unique_lock<std::mutex> lock(mutex_);
    while (!stop_) {
      if (peers_ && !peers_->lost().empty()) {  // the waiting thread ends the job: no more MPI calls
        wake_.wait_for(lock, poll_interval_);
        continue;
      }
      bool pending = false;
      for (auto& [id, request] : requests_)
        if (!request.done) {
          int done = 0;
          // An error here is reported again by the waiting thread's own MPI_Test.
          if (MPI_Test(&request.request, &done, MPI_STATUS_IGNORE) == MPI_SUCCESS) request.done = done != 0;
          pending = pending || !request.done;
        }
      if (pending)
        wake_.wait_for(lock, poll_interval_);
      else
        wake_.wait(lock);
    }
  }

  Handle start(void* data, std::size_t count, MPI_Datatype type, ReduceOp op) {
    return start(data, count, type, mpi_op(op), nullptr, {});
  }
  // `widen_to` and `narrow`: a bf16 all-reduce of `narrow` (in place of `data`), widened into `widen_to`.
  Handle start(void* data, std::size_t count, MPI_Datatype type, MPI_Op op, float* widen_to,
               std::vector<std::uint16_t> narrow) {
    if (count > static_cast<std::size_t>(std::numeric_limits<int>::max()))
      throw CommError("all-reduce of " + std::to_string(count) + " elements: more than MPI's int count");
    Request request{MPI_REQUEST_NULL, false, widen_to, std::move(narrow)};  // moving keeps narrow's storage
    if (widen_to) data = request.narrow.data();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      check(MPI_Iallreduce(MPI_IN_PLACE, data, static_cast<int>(count), type, op, comm_, &request.request),
            "MPI_Iallreduce");
    }
    return remember(std::move(request));
  }

  void blocking(void* data, std::size_t count, MPI_Datatype type, ReduceOp op) {
    if (count == 0) return;
    wait(start(data, count, type, op));
  }

  MPI_Comm comm_;
  MPI_Op bf16_sum_ = MPI_OP_NULL;                  // Wire::bf16's sum
  std::vector<std::vector<std::uint16_t>> spare_;  // bf16 buffers of finished all-reduces
  double timeout_;
  std::chrono::microseconds poll_interval_;
  int rank_ = 0, size_ = 1;
  std::mutex mutex_;  // guards every MPI call and requests_
  std::condition_variable wake_;
  bool stop_ = false;
  std::int64_t next_id_ = 0;
  std::unordered_map<std::int64_t, Request> requests_;
  std::thread progress_;
  std::shared_ptr<const PeerWatch> peers_;
};

// One process: every collective is the identity.
class LocalCommunicator final : public Communicator {
 public:
  [[nodiscard]] int rank() const override { return 0; }
  [[nodiscard]] int size() const override { return 1; }
  [[nodiscard]] std::string name() const override { return "local"; }
  void allreduce(float*, std::size_t, ReduceOp) override {}
  void allreduce(double*, std::size_t, ReduceOp) override {}
  void allreduce(std::int64_t*, std::size_t, ReduceOp) override {}
  Handle allreduce_async(float*, std::size_t, Wire) override { return {}; }
  bool test(Handle) override { return true; }
  void wait(Handle) override {}
  void broadcast(void*, std::size_t, int) override {}
  std::vector<std::uint64_t> allgather(std::uint64_t value) override { return {value}; }
  std::vector<std::int32_t> allgatherv(const std::vector<std::int32_t>& values) override { return values; }
  std::vector<std::string> gather(const std::string& bytes, int) override { return {bytes}; }
  void barrier() override {}
};

World g_world;
bool g_initialized = false;
std::shared_ptr<PeerWatch> g_peer_watch;  // ranks > 1

// Every rank's host name, in rank order (blocking: called once at start).
std::vector<std::string> gather_hosts(const std::string& host, int size) {
  constexpr int kLength = 256;
  std::string mine = host.substr(0, kLength - 1);
  mine.resize(kLength, '\0');
  std::string all(static_cast<std::size_t>(kLength) * static_cast<std::size_t>(size), '\0');
  check(MPI_Allgather(mine.data(), kLength, MPI_CHAR, all.data(), kLength, MPI_CHAR, MPI_COMM_WORLD), "MPI_Allgather");
  std::vector<std::string> hosts;
  for (int r = 0; r < size; ++r) hosts.emplace_back(all.c_str() + static_cast<std::size_t>(r) * kLength);
  return hosts;
}

// Every collective here is non-blocking (MPI_Iallreduce with the buffer in place), which Open MPI
// runs in its libnbc component. libnbc's own choice for an in-place all-reduce, or for fewer than
// 4 ranks, is a binomial tree: rank 0 receives and sums the whole buffer and sends it back, about
// 2.7x the time of a ring on 2 ranks for a 4 MiB gradient bucket (bench/allreduce_bench
// --nonblocking; results/scaling.md), and rank 0's cores pay for the sums alone. The ring
// (reduce-scatter then all-gather) moves 2(p-1)/p of the buffer per rank and splits the sums
// evenly, as NCCL and Horovod's all-reduce do. Set before MPI_Init, unless the user chose an
// algorithm through Open MPI's own parameters (environment or `mpirun --mca`), which then hold.
void select_nonblocking_allreduce() {
#ifdef OPEN_MPI
  ::setenv("OMPI_MCA_coll_libnbc_iallreduce_algorithm", "ring", 0);
#endif
}

}  // namespace

std::string World::tag() const {
  return size > 1 ? "[rank " + std::to_string(rank) + "/" + std::to_string(size) + "] " : "";
}

bool launched_by_mpi() {
  // Open MPI's mpirun, PMIx launchers (srun --mpi=pmix, prterun), MPICH/Hydra and Slurm's PMI-2.
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"})
    if (std::getenv(name)) return true;
  return false;
}

World& init_world(bool force_mpi, double timeout_seconds) {
  return init_world(force_mpi, WorldOptions{.timeout_seconds = timeout_seconds});
}

World& init_world(bool force_mpi, const WorldOptions& options) {
  if (g_initialized) return g_world;
  if (options.progress_microseconds < 0 || options.progress_microseconds > 10'000'000)
    throw OptionError("--mpi-progress-us must be in 0..10000000 (0: no progress thread)");
  g_initialized = true;
  char host[256] = {0};
  ::gethostname(host, sizeof host - 1);
  g_world.processor = host;
  if (!force_mpi && !launched_by_mpi()) {
    g_world.comm = std::make_shared<LocalCommunicator>();
    g_world.hosts = {g_world.processor};
    return g_world;
  }
  select_nonblocking_allreduce();
  // A socket number taken before MPI opens its own: the failure detector's connection to rank 0
  // (peer_watch.h says why the order matters).
  const int reserved_fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  // The main thread and the communicator's progress thread call MPI, one at a time (the
  // communicator's mutex); the input prefetch thread and OpenMP workers do not.
  int provided = 0;
  check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided), "MPI_Init_thread");
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  g_world.mpi = true;
  MPI_Comm_rank(MPI_COMM_WORLD, &g_world.rank);
  MPI_Comm_size(MPI_COMM_WORLD, &g_world.size);
  MPI_Comm node;
  check(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, g_world.rank, MPI_INFO_NULL, &node),
        "MPI_Comm_split_type");
  MPI_Comm_rank(node, &g_world.local_rank);
  MPI_Comm_size(node, &g_world.local_size);
  MPI_Comm_free(&node);
  MPI_Comm comm;
  check(MPI_Comm_dup(MPI_COMM_WORLD, &comm), "MPI_Comm_dup");
  MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN);
  std::int64_t interval = options.progress_microseconds;
  if (provided < MPI_THREAD_SERIALIZED) {
    if (interval > 0)
      TS_LOG(warn,
             "the MPI library does not support MPI_THREAD_SERIALIZED: no progress thread, gradient "
             "all-reduce overlaps backward less");
    interval = 0;
  }
  auto mpi_comm = std::make_shared<MpiCommunicator>(comm, options.timeout_seconds, std::chrono::microseconds(interval));
  g_world.comm = mpi_comm;
  log::set_rank(g_world.rank, g_world.size);
  g_world.hosts = gather_hosts(g_world.processor, g_world.size);
  if (g_world.size > 1) {
    g_peer_watch = std::make_shared<PeerWatch>(*mpi_comm, g_world.processor, reserved_fd);
    mpi_comm->watch(g_peer_watch);
  } else if (reserved_fd >= 0) {
    ::close(reserved_fd);
  }
  return g_world;
}

World* current_world() {
  return g_initialized ? &g_world : nullptr;
}

void finalize_world() {
  if (!g_initialized || !g_world.mpi) return;
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (g_peer_watch) g_peer_watch->farewell();  // this rank's end is not a loss
  g_world.comm.reset();                        // stops the progress thread before MPI ends
  g_peer_watch.reset();
  if (!finalized) MPI_Finalize();
}

void abort_world(int exit_code) {
  std::fflush(stdout);
  std::fflush(stderr);
  // This rank reported its own error: the others need not report it as lost.
  if (g_peer_watch) g_peer_watch->farewell();
  if (g_initialized && g_world.mpi && g_world.size > 1) MPI_Abort(MPI_COMM_WORLD, exit_code);
  std::_Exit(exit_code);
}

}  // namespace textscale::dist

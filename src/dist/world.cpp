#include <mpi.h>
#include <sched.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <unordered_map>

#include "textscale/common/error.h"
#include "textscale/common/log.h"
#include "textscale/dist/communicator.h"

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

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator(MPI_Comm comm, double timeout_seconds) : comm_(comm), timeout_(timeout_seconds) {
    MPI_Comm_rank(comm_, &rank_);
    MPI_Comm_size(comm_, &size_);
  }
  [[nodiscard]] int rank() const override { return rank_; }
  [[nodiscard]] int size() const override { return size_; }
  [[nodiscard]] std::string name() const override { return "mpi"; }

  void allreduce(float* data, std::size_t count, ReduceOp op) override { blocking(data, count, MPI_FLOAT, op); }
  void allreduce(double* data, std::size_t count, ReduceOp op) override { blocking(data, count, MPI_DOUBLE, op); }
  void allreduce(std::int64_t* data, std::size_t count, ReduceOp op) override {
    blocking(data, count, MPI_INT64_T, op);
  }

  Handle allreduce_async(float* data, std::size_t count) override {
    return start(data, count, MPI_FLOAT, ReduceOp::sum);
  }

  bool test(Handle handle) override {
    auto found = requests_.find(handle.id);
    if (found == requests_.end()) return true;
    int done = 0;
    check(MPI_Test(&found->second, &done, MPI_STATUS_IGNORE), "MPI_Test");
    if (done) requests_.erase(found);
    return done != 0;
  }

  void wait(Handle handle) override {
    auto found = requests_.find(handle.id);
    if (found == requests_.end()) return;
    if (timeout_ <= 0) {
      check(MPI_Wait(&found->second, MPI_STATUS_IGNORE), "MPI_Wait");
      requests_.erase(found);
      return;
    }
    // MPI_Wait has no time limit: poll, yielding the core (ranks may share cores), and give up
    // after the timeout so that a rank that diverged or hangs ends the job instead of stalling it.
    const auto start = std::chrono::steady_clock::now();
    for (int polls = 0;; ++polls) {
      int done = 0;
      check(MPI_Test(&found->second, &done, MPI_STATUS_IGNORE), "MPI_Test");
      if (done) break;
      if (polls % 64 == 63) {
        const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        if (waited > timeout_)
          throw CommError("a collective did not complete within " + std::to_string(static_cast<int>(timeout_)) +
                          " s (--comm-timeout): another rank died or stopped responding");
      }
      sched_yield();
    }
    requests_.erase(found);
  }

  void broadcast(void* data, std::size_t bytes, int root) override {
    auto* p = static_cast<char*>(data);
    constexpr std::size_t kPiece = std::size_t{1} << 30;  // MPI counts are int
    for (std::size_t done = 0; done < bytes; done += kPiece) {
      const auto piece = static_cast<int>(std::min(kPiece, bytes - done));
      MPI_Request request;
      check(MPI_Ibcast(p + done, piece, MPI_BYTE, root, comm_, &request), "MPI_Ibcast");
      wait(remember(request));
    }
  }

  std::vector<std::uint64_t> allgather(std::uint64_t value) override {
    std::vector<std::uint64_t> all(static_cast<std::size_t>(size_));
    MPI_Request request;
    check(MPI_Iallgather(&value, 1, MPI_UINT64_T, all.data(), 1, MPI_UINT64_T, comm_, &request), "MPI_Iallgather");
    wait(remember(request));
    return all;
  }

  void barrier() override {
    MPI_Request request;
    check(MPI_Ibarrier(comm_, &request), "MPI_Ibarrier");
    wait(remember(request));
  }

 private:
  Handle remember(MPI_Request request) {
    const Handle handle{next_id_++};
    requests_.emplace(handle.id, request);
    return handle;
  }

  Handle start(void* data, std::size_t count, MPI_Datatype type, ReduceOp op) {
    if (count > static_cast<std::size_t>(std::numeric_limits<int>::max()))
      throw CommError("all-reduce of " + std::to_string(count) + " elements: more than MPI's int count");
    MPI_Request request;
    check(MPI_Iallreduce(MPI_IN_PLACE, data, static_cast<int>(count), type, mpi_op(op), comm_, &request),
          "MPI_Iallreduce");
    return remember(request);
  }

  void blocking(void* data, std::size_t count, MPI_Datatype type, ReduceOp op) {
    if (count == 0) return;
    wait(start(data, count, type, op));
  }

  MPI_Comm comm_;
  double timeout_;
  int rank_ = 0, size_ = 1;
  std::int64_t next_id_ = 0;
  std::unordered_map<std::int64_t, MPI_Request> requests_;
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
  Handle allreduce_async(float*, std::size_t) override { return {}; }
  bool test(Handle) override { return true; }
  void wait(Handle) override {}
  void broadcast(void*, std::size_t, int) override {}
  std::vector<std::uint64_t> allgather(std::uint64_t value) override { return {value}; }
  void barrier() override {}
};

World g_world;
bool g_initialized = false;

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
  if (g_initialized) return g_world;
  g_initialized = true;
  char host[256] = {0};
  ::gethostname(host, sizeof host - 1);
  g_world.processor = host;
  if (!force_mpi && !launched_by_mpi()) {
    g_world.comm = std::make_shared<LocalCommunicator>();
    return g_world;
  }
  // Only the main thread calls MPI (the input prefetch thread and OpenMP workers do not).
  int provided = 0;
  check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
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
  g_world.comm = std::make_shared<MpiCommunicator>(comm, timeout_seconds);
  log::set_rank(g_world.rank, g_world.size);
  return g_world;
}

World* current_world() {
  return g_initialized ? &g_world : nullptr;
}

void finalize_world() {
  if (!g_initialized || !g_world.mpi) return;
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

void abort_world(int exit_code) {
  std::fflush(stdout);
  std::fflush(stderr);
  if (g_initialized && g_world.mpi && g_world.size > 1) MPI_Abort(MPI_COMM_WORLD, exit_code);
  std::_Exit(exit_code);
}

}  // namespace textscale::dist

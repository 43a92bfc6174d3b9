// The process group a data-parallel run trains in: who we are (World) and how ranks exchange
// data (Communicator).
//
// One rank per device. World::init() starts MPI only when a launcher started this process
// (mpirun/mpiexec, or srun --mpi=pmix: it looks for the variables they set), so a plain
// `textscale train` needs no launcher and no MPI start-up. The Communicator is the interface the
// trainer and the gradient reducer use; MPI implements it for CPU ranks (MPI_Iallreduce with
// MPI_IN_PLACE), a single process has a trivial one, and NCCL implements it for GPU ranks.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace textscale::dist {

enum class ReduceOp { sum, max, min };

// How an all-reduce of floats travels. bf16 (`train --allreduce-precision bf16`) sends half the
// bytes: each rank's values are rounded to bf16 (to nearest, ties to even), every partial sum
// of the all-reduce is rounded to bf16 again, and the result is widened back to float. With
// a ring over p ranks an element carries up to p roundings of relative size 2^-8 each (bf16 keeps 8 significant bits).
enum class Wire { fp32, bf16 };

// bf16 <-> float on the host: the upper 16 bits of the float, rounded to nearest even (a NaN
// stays a NaN).
[[nodiscard]] inline std::uint16_t to_bf16(float value) {
  std::uint32_t bits = 0;
  std::memcpy(&bits, &value, sizeof bits);
  const std::uint32_t rounded = (bits + 0x7fffU + ((bits >> 16) & 1U)) >> 16;
  const std::uint32_t quiet_nan = (bits >> 16) | 0x40U;
  return static_cast<std::uint16_t>((bits & 0x7fffffffU) > 0x7f800000U ? quiet_nan : rounded);  // a select: vectorised
}
[[nodiscard]] inline float from_bf16(std::uint16_t value) {
  const std::uint32_t bits = static_cast<std::uint32_t>(value) << 16;
  float result = 0;
  std::memcpy(&result, &bits, sizeof result);
  return result;
}

// A collective that was started and has to be waited for. Backends keep their own request state
// behind the id; a handle is used once.
struct Handle {
  std::int64_t id = -1;
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  [[nodiscard]] virtual int rank() const = 0;
  [[nodiscard]] virtual int size() const = 0;

  // In-place all-reduce of `count` elements with `op` over every rank; sums are not divided by
  // size() (the caller averages where it needs to).
  virtual void allreduce(float* data, std::size_t count, ReduceOp op) = 0;
  virtual void allreduce(double* data, std::size_t count, ReduceOp op) = 0;
  virtual void allreduce(std::int64_t* data, std::size_t count, ReduceOp op) = 0;
  // Starts an in-place sum of `count` floats sent as `wire`; the data must not be touched until
  // wait() (or a test() that returned true).
  virtual Handle allreduce_async(float* data, std::size_t count, Wire wire) = 0;
  // Lets started collectives progress; true when `handle` has completed (it may still be waited).
  virtual bool test(Handle handle) = 0;
  // Blocks until `handle` completes. Throws CommError after the communicator's timeout.
  virtual void wait(Handle handle) = 0;
  // Copies `bytes` from `root` to every rank.
  virtual void broadcast(void* data, std::size_t bytes, int root) = 0;
  // Every rank's `value`, in rank order.
  virtual std::vector<std::uint64_t> allgather(std::uint64_t value) = 0;
  // Every rank's `values` (any number on each), concatenated in rank order.
  virtual std::vector<std::int32_t> allgatherv(const std::vector<std::int32_t>& values) = 0;
  // At `root`: every rank's `bytes`, in rank order; elsewhere: empty.
  virtual std::vector<std::string> gather(const std::string& bytes, int root) = 0;
  virtual void barrier() = 0;
  // Short name for logs: "mpi", "local".
  [[nodiscard]] virtual std::string name() const = 0;
};

// Where this process sits: global rank and size, and its place among the ranks on the same node.
struct World {
  int rank = 0, size = 1;
  int local_rank = 0, local_size = 1;
  bool mpi = false;                // MPI was started (a launcher is present)
  std::string processor;           // node name
  std::vector<std::string> hosts;  // every rank's node name, in rank order
  std::shared_ptr<Communicator> comm;

  [[nodiscard]] bool root() const { return rank == 0; }
  // "[rank r/N] " when size > 1, "" otherwise.
  [[nodiscard]] std::string tag() const;
};

// How the MPI communicator runs (command-line options of `train`).
struct WorldOptions {
  double timeout_seconds = 0;  // bound on every wait on a collective (0: no bound); --comm-timeout
  // MPI advances non-blocking collectives only inside MPI calls: a progress thread polls the ones
  // in flight every `progress_microseconds` (0: no thread); --mpi-progress-us.
  std::int64_t progress_microseconds = 1000;
};

// Starts MPI if a launcher is present (or `force_mpi`), otherwise a one-process world. Sets the
// log's rank tag. Idempotent: the first call's options hold.
World& init_world(bool force_mpi, const WorldOptions& options);
World& init_world(bool force_mpi = false, double timeout_seconds = 0);
// The world after init_world(), or nullptr.
World* current_world();
// True when this process was started by an MPI launcher.
bool launched_by_mpi();
// Ends MPI cleanly (all ranks must call it) / kills the whole job (one rank may call it).
void finalize_world();
[[noreturn]] void abort_world(int exit_code);

}  // namespace textscale::dist

// All-reduce time on this machine's interconnect, for the scaling cost model
// (bench/cost_model.py): MPI_Allreduce (in place, float sum) of 4 B to 256 MiB, after warm-up,
// the median of --reps repetitions, printed as JSON lines {"bytes", "seconds", "cpu_seconds",
// "ranks", "nonblocking"} by rank 0. "seconds" is the slowest rank's wall time, "cpu_seconds" the
// most CPU time a rank's process spent in it (the all-reduce's copies and sums take the cores the
// model's compute would otherwise use). --nonblocking times MPI_Iallreduce + MPI_Wait, as the
// trainer's gradient buckets are sent (Open MPI runs non-blocking collectives in its libnbc
// component, with algorithms of its own).
//
//   mpirun -np 2 build/bench/allreduce_bench [--reps 20] [--max-mib 256] [--min-mib 0] [--nonblocking]
#include <mpi.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <vector>

namespace {

double cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

double median(std::vector<double> v) {
  std::nth_element(v.begin(), v.begin() + static_cast<long>(v.size() / 2), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  int reps = 20;
  long max_mib = 256;
  double min_mib = 0;
  bool nonblocking = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--nonblocking") == 0) nonblocking = true;
    if (i + 1 >= argc) continue;
    if (std::strcmp(argv[i], "--reps") == 0) reps = std::atoi(argv[i + 1]);
    if (std::strcmp(argv[i], "--max-mib") == 0) max_mib = std::atol(argv[i + 1]);
    if (std::strcmp(argv[i], "--min-mib") == 0) min_mib = std::atof(argv[i + 1]);
  }
  const std::size_t largest = static_cast<std::size_t>(max_mib) * 1024 * 1024 / sizeof(float);
  std::vector<float> data(largest, 1.0f);
  for (std::size_t count = 1; count <= largest; count *= 4) {
    if (static_cast<double>(count * sizeof(float)) < min_mib * 1024 * 1024) continue;
    std::vector<double> times, cpu_times;
    for (int r = 0; r < reps + 2; ++r) {
      MPI_Barrier(MPI_COMM_WORLD);
      const double start = MPI_Wtime(), cpu_start = cpu_seconds();
      if (nonblocking) {
        MPI_Request request = MPI_REQUEST_NULL;
        MPI_Iallreduce(MPI_IN_PLACE, data.data(), static_cast<int>(count), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD,
                       &request);
        MPI_Wait(&request, MPI_STATUS_IGNORE);
      } else {
        MPI_Allreduce(MPI_IN_PLACE, data.data(), static_cast<int>(count), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
      }
      double took[2] = {MPI_Wtime() - start, cpu_seconds() - cpu_start}, slowest[2] = {0, 0};
      MPI_Allreduce(took, slowest, 2, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
      if (r >= 2) {  // two warm-up rounds
        times.push_back(slowest[0]);
        cpu_times.push_back(slowest[1]);
      }
      std::fill(data.begin(), data.begin() + static_cast<long>(count), 1.0f);  // keep values finite
    }
    if (rank == 0)
      std::printf("{\"bytes\": %zu, \"seconds\": %.9g, \"cpu_seconds\": %.9g, \"ranks\": %d, \"nonblocking\": %s}\n",
                  count * sizeof(float), median(times), median(cpu_times), size, nonblocking ? "true" : "false");
  }
  MPI_Finalize();
  return 0;
}

// All-reduce time on this machine's interconnect, for the scaling cost model
// (bench/cost_model.py): MPI_Allreduce (in place, float sum) of 4 B to 256 MiB, after warm-up,
// the median of --reps repetitions, printed as JSON lines {"bytes", "seconds", "ranks"} by rank 0.
//
//   mpirun -np 2 build/bench/allreduce_bench [--reps 20] [--max-mib 256]
#include <mpi.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  int reps = 20;
  long max_mib = 256;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--reps") == 0) reps = std::atoi(argv[i + 1]);
    if (std::strcmp(argv[i], "--max-mib") == 0) max_mib = std::atol(argv[i + 1]);
  }
  const std::size_t largest = static_cast<std::size_t>(max_mib) * 1024 * 1024 / sizeof(float);
  std::vector<float> data(largest, 1.0f);
  for (std::size_t count = 1; count <= largest; count *= 4) {
    std::vector<double> times;
    for (int r = 0; r < reps + 2; ++r) {
      MPI_Barrier(MPI_COMM_WORLD);
      const double start = MPI_Wtime();
      MPI_Allreduce(MPI_IN_PLACE, data.data(), static_cast<int>(count), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
      double took = MPI_Wtime() - start, slowest = 0;
      MPI_Allreduce(&took, &slowest, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
      if (r >= 2) times.push_back(slowest);                                    // two warm-up rounds
      std::fill(data.begin(), data.begin() + static_cast<long>(count), 1.0f);  // keep values finite
    }
    std::nth_element(times.begin(), times.begin() + static_cast<long>(times.size() / 2), times.end());
    if (rank == 0)
      std::printf("{\"bytes\": %zu, \"seconds\": %.9g, \"ranks\": %d}\n", count * sizeof(float),
                  times[times.size() / 2], size);
  }
  MPI_Finalize();
  return 0;
}

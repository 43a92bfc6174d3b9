// The MPI communicator on however many ranks mpirun starts (tests/mpi/test_communicator.sh runs
// it on 1, 2 and 3 ranks; ctest's test_communicator as one process started as MPI):
// - an fp32 all-reduce of integers is exact;
// - a bf16 all-reduce returns each rank's values rounded to bf16 and summed, every partial sum
//   rounded again: on 1 and 2 ranks exactly bf16(bf16(a) + bf16(b)); on p ranks within p
//   roundings of 2^-8 (bf16 keeps 8 significant bits) of the sum of magnitudes; most sums of
//   values with 12 significant bits are not the fp32 sum;
// - the gradient reducer with bf16 buckets gives the communicator's result, in one bucket and in
//   many.
#define BOOST_TEST_MODULE mpi_communicator
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <vector>

#include "textscale/dist/communicator.h"
#include "textscale/dist/reducer.h"

using namespace textscale;

namespace {

// Rank r's value of element i: 8 to 12 significant bits, signs and magnitudes varied.
float value(int rank, std::size_t i) {
  const auto k = static_cast<float>((i * 2654435761U + static_cast<std::size_t>(rank) * 40503U) % 4001U);
  return (1.0f + k / 1024.0f) * std::ldexp(1.0f, static_cast<int>(i % 7) - 3) * (((i + rank) % 3) ? 1.0f : -1.0f);
}

struct Mpi {
  dist::World& world = dist::init_world(true, dist::WorldOptions{.timeout_seconds = 60});
  ~Mpi() = default;
};

// The bf16 result expected of `size` ranks, and how far a ring's rounding may take it from there.
float bf16_exact_two(std::size_t i, int size) {
  float sum = dist::from_bf16(dist::to_bf16(value(0, i)));
  if (size == 2) sum = dist::from_bf16(dist::to_bf16(sum + dist::from_bf16(dist::to_bf16(value(1, i)))));
  return sum;
}

}  // namespace

BOOST_AUTO_TEST_CASE(fp32_sums_exact) {
  Mpi mpi;
  dist::Communicator& comm = *mpi.world.comm;
  std::vector<float> data(1000);
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<float>(i + 1000 * comm.rank());
  comm.wait(comm.allreduce_async(data.data(), data.size(), dist::Wire::fp32));
  const int n = comm.size();
  for (std::size_t i = 0; i < data.size(); ++i)
    BOOST_TEST(data[i] == static_cast<float>(n * static_cast<int>(i) + 1000 * n * (n - 1) / 2), "element " << i);
}

BOOST_AUTO_TEST_CASE(bf16_rounds_each_value_and_partial_sum) {
  Mpi mpi;
  dist::Communicator& comm = *mpi.world.comm;
  const int n = comm.size();
  // Odd sizes, so that a ring's segments are uneven; 0 elements too.
  for (const std::size_t count : {std::size_t{0}, std::size_t{1}, std::size_t{7}, std::size_t{100003}}) {
    std::vector<float> data(count);
    for (std::size_t i = 0; i < count; ++i) data[i] = value(comm.rank(), i);
    const dist::Handle h = comm.allreduce_async(data.data(), count, dist::Wire::bf16);
    while (!comm.test(h)) {
    }
    std::size_t inexact = 0;
    for (std::size_t i = 0; i < count; ++i) {
      double exact = 0, magnitude = 0;
      for (int r = 0; r < n; ++r) {
        exact += value(r, i);
        magnitude += std::fabs(value(r, i));
      }
      BOOST_TEST(dist::from_bf16(dist::to_bf16(data[i])) == data[i], "element " << i << " is not a bf16 value");
      if (n <= 2)
        BOOST_TEST(data[i] == bf16_exact_two(i, n),
                   "element " << i << ": " << data[i] << ", not " << bf16_exact_two(i, n));
      else
        BOOST_TEST(std::fabs(data[i] - exact) <= n * std::ldexp(magnitude, -8), "element " << i);
      inexact += static_cast<double>(data[i]) != exact;
    }
    // The values have up to 12 significant bits: most sums are not bf16 values.
    if (count > 1000) BOOST_TEST(inexact > count / 4, inexact << " of " << count << " sums inexact");
  }
}

BOOST_AUTO_TEST_CASE(reducer_sends_bf16_buckets) {
  Mpi mpi;
  dist::Communicator& comm = *mpi.world.comm;
  const engine::Index count = 10007;
  std::vector<float> gradients(count), direct(count);
  for (engine::Index i = 0; i < count; ++i)
    gradients[static_cast<std::size_t>(i)] = direct[static_cast<std::size_t>(i)] =
        value(comm.rank(), static_cast<std::size_t>(i));
  comm.wait(comm.allreduce_async(direct.data(), direct.size(), dist::Wire::bf16));
  // One bucket of the whole buffer: the same all-reduce as the direct one, so bitwise the same.
  dist::GradientReducer reducer(comm, gradients.data(), count, 0, {}, dist::Wire::bf16);
  reducer.begin();
  reducer.finish();
  BOOST_TEST(gradients == direct);
  // Small buckets: each bucket's elements are rounded the same way wherever the bucket ends.
  if (comm.size() <= 2) {
    for (engine::Index i = 0; i < count; ++i)
      gradients[static_cast<std::size_t>(i)] = value(comm.rank(), static_cast<std::size_t>(i));
    dist::GradientReducer small(comm, gradients.data(), count, 1000, {}, dist::Wire::bf16);
    small.begin();
    small.ready_from(count / 2);
    small.finish();
    BOOST_TEST(gradients == direct);
  }
}

struct Finalize {
  ~Finalize() { dist::finalize_world(); }
};
BOOST_TEST_GLOBAL_FIXTURE(Finalize);
